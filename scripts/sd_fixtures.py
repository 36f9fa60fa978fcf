#!/usr/bin/env python3
"""Builds the tiny Stable Diffusion parity fixtures under model/tests/fixtures/sd/.

Run by hand (CI needs no Python):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers safetensors
    /tmp/venv/bin/python scripts/sd_fixtures.py

Every configuration is a complete diffusers folder (model_index.json, text_encoder/, tokenizer/,
unet/, vae/, scheduler/) with random weights, plus `expected.safetensors` and `expected.json`:
inputs and outputs of single blocks (captured with forward hooks during a real forward), of each
component, the scheduler's sigmas and timesteps, and whole pipeline runs from fixed noise.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "sd")
WORDS = ("a photo of an astronaut riding horse on the moon red blue cat dog ball in space "
         "painting city night sky with stars, beautiful detailed 4k").split()


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer(folder, pad_token):
    """A CLIP-format BPE vocabulary learned from a few words (like CLIP's, much smaller)."""
    chars = bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars]
    words = [list(w[:-1]) + [w[-1] + "</w>"] for w in WORDS]
    merges = []
    for _ in range(60):
        pairs = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        merged = best[0] + best[1]
        vocab.append(merged)
        new_words = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words.append(out)
        words = new_words
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = CLIPTokenizer(vocab_file=os.path.join(folder, "vocab.json"),
                        merges_file=os.path.join(folder, "merges.txt"), pad_token=pad_token,
                        model_max_length=77)
    tok.save_pretrained(folder)
    # Keep only the files the Rust loader reads, as old SD repositories have them.
    for name in os.listdir(folder):
        if name not in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            os.remove(os.path.join(folder, name))
    return CLIPTokenizer.from_pretrained(folder), len(vocab)


CONFIGS = {
    # SD 1.x style: conv projections, epsilon, leading spacing, heads as one number, quick_gelu CLIP.
    "sd1": dict(
        clip=dict(hidden_size=16, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                  hidden_act="quick_gelu", max_position_embeddings=77),
        pad="<|endoftext|>",
        unet=dict(sample_size=8, block_out_channels=(16, 32), layers_per_block=1,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
                  use_linear_projection=False),
        vae=dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 latent_channels=4, sample_size=64),
        scheduler=dict(prediction_type="epsilon", timestep_spacing="leading", steps_offset=1),
        fp16_variant=False,
    ),
    # SD 2.x / Turbo style: linear projections, v_prediction, trailing spacing + karras sigmas,
    # per-block head counts, two transformer layers in a block, three levels, gelu CLIP, "!" padding,
    # upcast attention; also saved as *.fp16.safetensors variants only.
    "sd2": dict(
        clip=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=3,
                  hidden_act="gelu", max_position_embeddings=77),
        pad="!",
        unet=dict(sample_size=8, block_out_channels=(16, 24, 32), layers_per_block=2,
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=24, attention_head_dim=(2, 3, 4), norm_num_groups=8,
                  transformer_layers_per_block=(1, 2, 1), use_linear_projection=True, upcast_attention=True),
        vae=dict(block_out_channels=(8, 16, 16, 16), layers_per_block=2, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 latent_channels=4, sample_size=64, scaling_factor=0.13025),
        scheduler=dict(prediction_type="v_prediction", timestep_spacing="trailing", use_karras_sigmas=True),
        fp16_variant=True,
    ),
}

SCHED_COMMON = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def hooked(module, names, store, prefix):
    """Records (inputs, output) of the named submodules during the next forward."""
    handles = []
    for name in names:
        sub = module.get_submodule(name)

        def hook(mod, args, kwargs, out, name=name):
            if name in store:
                return
            rec = {}
            for i, a in enumerate(args):
                if torch.is_tensor(a):
                    rec[f"in{i}"] = a
            for k, v in kwargs.items():
                if torch.is_tensor(v):
                    rec[k] = v
            rec["out"] = out[0] if isinstance(out, tuple) else (out.sample if hasattr(out, "sample") else out)
            store[name] = rec

        handles.append(sub.register_forward_hook(hook, with_kwargs=True))
    return handles


def build(name, cfg):
    torch.manual_seed({"sd1": 1, "sd2": 2}[name])
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer, vocab_size = write_tokenizer(os.path.join(folder, "tokenizer"), cfg["pad"])
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, bos_token_id=vocab_size - 2,
                                                eos_token_id=vocab_size - 1, pad_token_id=1, **cfg["clip"])).eval()
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **cfg["unet"]).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, **cfg["vae"]).eval()
    # Random init leaves norms at identity and some biases at zero: perturb everything a little so
    # a wrong mapping of any tensor shows.
    with torch.no_grad():
        for m in (text_encoder, unet, vae):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    sched_cfg = dict(SCHED_COMMON, **cfg["scheduler"])
    scheduler = EulerDiscreteScheduler(**sched_cfg)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    variant = "fp16" if cfg["fp16_variant"] else None
    if variant:
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")
        pipe.to(torch.float32)
        # The reference runs on the weights exactly as stored.
        for m in (text_encoder, unet, vae):
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(p.half().float())
    else:
        pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    write_tokenizer(os.path.join(folder, "tokenizer"), cfg["pad"])
    if name == "sd1":
        # Published SD repositories were written by older transformers: keys under `text_model.`
        # and the `position_ids` buffer. Recent transformers writes neither; sd2 keeps that form.
        path = os.path.join(folder, "text_encoder", "model.safetensors")
        state = {"text_model." + k: v.contiguous() for k, v in text_encoder.state_dict().items()}
        state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
        save_file(state, path, metadata={"format": "pt"})

    tensors, meta = {}, {"blocks": {}, "pipelines": [], "schedulers": []}
    gen = torch.Generator().manual_seed(7)

    with torch.no_grad():
        # Tokenizer and text encoder.
        prompts = ["a photo of an astronaut riding a horse on the moon", "A RED cat, in space!! 4k", ""]
        for i, p in enumerate(prompts):
            ids = tokenizer(p, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids
            tensors[f"tokenizer.{i}.ids"] = ids.to(torch.int32)
            tensors[f"text_encoder.{i}.out"] = text_encoder(ids)[0]
        meta["prompts"] = prompts
        store = {}
        layer = "encoder.layers.0"
        hs = hooked(text_encoder, [layer], store, "")
        text_encoder(tensors["tokenizer.0.ids"].long())
        for h in hs:
            h.remove()

        # The UNet, with hooks on one block of each kind.
        blocks = ["time_embedding", "down_blocks.0.resnets.0", "down_blocks.0.attentions.0",
                  "down_blocks.0.downsamplers.0", "mid_block", "up_blocks.0.resnets.0",
                  "up_blocks.0.upsamplers.0", f"up_blocks.{len(unet.up_blocks) - 1}.attentions.0"]
        blocks = [b for b in blocks if b in dict(unet.named_modules())]
        hs = hooked(unet, blocks, store, "")
        h, w = 8, 8
        sample = torch.randn(2, 4, h, w, generator=gen)
        emb = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen)
        t = torch.tensor([999.0, 281.5])
        out = unet(sample, t, encoder_hidden_states=emb).sample
        for hnd in hs:
            hnd.remove()
        tensors.update({"unet.sample": sample, "unet.timestep": t, "unet.encoder_hidden_states": emb, "unet.out": out})
        # Non-square latents exercise the up path's size matching.
        sample2 = torch.randn(1, 4, 8, 16, generator=gen)
        tensors.update({"unet2.sample": sample2, "unet2.out": unet(sample2, torch.tensor([500.0]), encoder_hidden_states=emb[:1]).sample})

        # VAE encode and decode, with block hooks.
        vblocks = ["encoder.down_blocks.0", "encoder.mid_block.attentions.0", "decoder.up_blocks.0", "decoder.mid_block"]
        hs = hooked(vae, vblocks, store, "")
        image = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
        dist = vae.encode(image).latent_dist
        latent = torch.randn(1, 4, 8, 8, generator=gen)
        decoded = vae.decode(latent).sample
        for hnd in hs:
            hnd.remove()
        tensors.update({"vae.image": image, "vae.mean": dist.mean, "vae.logvar": dist.logvar,
                        "vae.latent": latent, "vae.decoded": decoded})

        for bname, rec in store.items():
            comp = "text_encoder" if bname.startswith("encoder.layers") else ("vae" if bname.split(".")[0] in ("encoder", "decoder") else "unet")
            meta["blocks"][f"{comp}.{bname}"] = sorted(rec)
            for k, v in rec.items():
                tensors[f"block.{comp}.{bname}.{k}"] = v

        # Schedulers: sigmas and timesteps for several settings.
        for i, (cls, extra, steps) in enumerate([
            ("EulerDiscreteScheduler", {}, 4), ("EulerDiscreteScheduler", {}, 25),
            ("EulerDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1}, 7),
            ("EulerDiscreteScheduler", {"timestep_spacing": "linspace"}, 10),
            ("EulerDiscreteScheduler", {"timestep_spacing": "trailing", "use_karras_sigmas": False}, 1),
            ("EulerDiscreteScheduler", {"timestep_spacing": "leading", "use_karras_sigmas": True, "steps_offset": 1}, 12),
            ("DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False}, 10),
            ("DDIMScheduler", {"timestep_spacing": "trailing", "clip_sample": False}, 3),
            ("DDIMScheduler", {"timestep_spacing": "linspace", "clip_sample": False}, 6),
        ]):
            base = sched_cfg if cls.startswith("Euler") else dict(SCHED_COMMON, prediction_type=sched_cfg["prediction_type"])
            c = dict(base, **extra)
            s = (EulerDiscreteScheduler if cls.startswith("Euler") else DDIMScheduler)(**c)
            s.set_timesteps(steps)
            tensors[f"scheduler.{i}.timesteps"] = s.timesteps.to(torch.float32)
            if cls.startswith("Euler"):
                tensors[f"scheduler.{i}.sigmas"] = s.sigmas.to(torch.float32)
            tensors[f"scheduler.{i}.init_noise_sigma"] = torch.tensor([float(s.init_noise_sigma)])
            meta["schedulers"].append({"class": cls, "config": {k: v for k, v in c.items()}, "steps": steps})

        # Whole pipelines from fixed noise: with and without guidance, both schedulers.
        runs = [("EulerDiscreteScheduler", 7.5, 3, "a red cat in space", "blurry"),
                ("EulerDiscreteScheduler", 0.0, 2, "an astronaut riding a horse", ""),
                ("DDIMScheduler", 4.0, 3, "a photo of a dog on the moon", "")]
        for i, (cls, guidance, steps, prompt, negative) in enumerate(runs):
            height, width = (64, 64) if i != 1 else (64, 128)
            if cls == "DDIMScheduler":
                pipe.scheduler = DDIMScheduler(**dict(SCHED_COMMON, prediction_type=sched_cfg["prediction_type"], clip_sample=False, set_alpha_to_one=False,
                                                      steps_offset=1, timestep_spacing="leading"))
            else:
                pipe.scheduler = EulerDiscreteScheduler(**sched_cfg)
            noise = torch.randn(1, 4, height // 8, width // 8, generator=gen)
            img = pipe(prompt, negative_prompt=negative or None, num_inference_steps=steps, guidance_scale=guidance,
                       height=height, width=width, latents=noise.clone(), output_type="np").images[0]
            tensors[f"pipeline.{i}.noise"] = noise
            # The same noise as `vidplay image --noise` reads it.
            save_file({"noise": noise.clone().contiguous()}, os.path.join(folder, f"noise_{i}.safetensors"))
            tensors[f"pipeline.{i}.image"] = torch.from_numpy(np.ascontiguousarray(img))
            meta["pipelines"].append({"scheduler": cls, "scheduler_config": dict(pipe.scheduler.config),
                                      "guidance": guidance, "steps": steps, "prompt": prompt, "negative": negative,
                                      "width": width, "height": height})

    tensors = {k: v.detach().clone().contiguous().float() if v.is_floating_point() else v.detach().clone().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs), "bytes")




# SD-Turbo's published component configs (stabilityai/sd-turbo: the SD 2.1-base architecture with an
# OpenCLIP ViT-H text tower), transcribed. Their parameter names and shapes, taken from diffusers
# and transformers built on the meta device (no weights), let the Rust loader be checked against the
# real architecture without downloading it.
SD_TURBO = {
    "unet": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280],
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, use_linear_projection=True,
                 norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0, act_fn="silu"),
    "vae": dict(sample_size=768, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], norm_num_groups=32, act_fn="silu",
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4),
    "text_encoder": dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                         num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
                         projection_dim=512, layer_norm_eps=1e-5),
}


def sd_turbo_shapes():
    folder = os.path.join(ROOT, "sd-turbo-shapes")
    os.makedirs(folder, exist_ok=True)
    shapes = {}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD_TURBO["unet"])
        vae = AutoencoderKL(**SD_TURBO["vae"])
        te = CLIPTextModel(CLIPTextConfig(**SD_TURBO["text_encoder"]))
    shapes["unet"] = {k: list(v.shape) for k, v in unet.state_dict().items()}
    shapes["vae"] = {k: list(v.shape) for k, v in vae.state_dict().items()}
    # Published SD text encoders were saved by older transformers: under `text_model.`.
    shapes["text_encoder"] = {"text_model." + k: list(v.shape) for k, v in te.state_dict().items()}
    for name, cfg in SD_TURBO.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("sd-turbo shapes:", {k: len(v) for k, v in shapes.items()},
          "parameters:", {k: sum(int(np.prod(s)) for s in v.values()) for k, v in shapes.items()})


if __name__ == "__main__":
    for n in (sys.argv[1:] or list(CONFIGS) + ["sd-turbo-shapes"]):
        if n == "sd-turbo-shapes":
            sd_turbo_shapes()
        else:
            build(n, CONFIGS[n])
