#!/usr/bin/env python3
"""Builds the tiny InstructPix2Pix parity fixtures under model/tests/fixtures/ip2p/.

Run by hand (CI needs no Python):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers safetensors
    /tmp/venv/bin/python scripts/ip2p_fixtures.py

Two configurations, each a complete diffusers `StableDiffusionInstructPix2PixPipeline` folder with
random weights (the UNet's conv_in takes 8 channels), an input image, and `expected.safetensors` /
`expected.json`: single blocks (inputs captured by forward hooks), the components, the scheduler
tables, and whole edits from fixed noise:
- ip2p1: SD 1.x layout, `EulerAncestralDiscreteScheduler` (as the published checkpoints ship); the
  noise each ancestral step drew is recorded (`step_noise` in noise_N.safetensors);
- ip2p2: SD 2.x layout (linear projections, per-block heads), `DDIMScheduler`, one run without
  guidance.
Plus instruct-pix2pix-shapes: the parameter names and shapes of timbrooks/instruct-pix2pix's
published configs, built on the meta device.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from diffusers import (AutoencoderKL, DDIMScheduler, EulerAncestralDiscreteScheduler,
                       StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel)
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ancestral
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd_fixtures import CONFIGS as SD_CONFIGS, SCHED_COMMON, hooked, write_tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "ip2p")

CONFIGS = {
    "ip2p1": dict(base="sd1", scheduler=("EulerAncestralDiscreteScheduler", dict(prediction_type="epsilon", steps_offset=1))),
    "ip2p2": dict(base="sd2", scheduler=("DDIMScheduler", dict(prediction_type="epsilon", steps_offset=1, clip_sample=False,
                                                              set_alpha_to_one=False, timestep_spacing="leading"))),
}

# Each run: (instruction, negative, steps, guidance, image guidance, image size).
RUNS = {
    "ip2p1": [("make it a red cat", "", 3, 7.5, 1.5, (64, 64)),
              ("add snow at night", "blurry", 4, 5.0, 1.2, (128, 64))],
    "ip2p2": [("turn the dog blue", "", 3, 7.5, 1.5, (64, 64)),
              ("a photo in space", "", 2, 1.0, 1.5, (64, 64))],
}


class Recorder:
    """Wraps diffusers' randn_tensor in the ancestral scheduler and keeps what it drew."""

    def __init__(self):
        self.draws = []
        self.inner = ancestral.randn_tensor

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self.draws.append(out.detach().clone())
        return out


def input_image(width, height, seed):
    """A smooth picture with some detail, as 8-bit RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + 1), 0.5 + 0.4 * np.cos(5 * y), 0.5 + 0.3 * np.sin(4 * (x + y))], -1)
    base += rng.normal(0, 0.05, base.shape)
    return Image.fromarray((np.clip(base, 0, 1) * 255).round().astype(np.uint8))


def build(name, cfg):
    base = SD_CONFIGS[cfg["base"]]
    torch.manual_seed({"ip2p1": 11, "ip2p2": 12}[name])
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer, vocab_size = write_tokenizer(os.path.join(folder, "tokenizer"), base["pad"])
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, bos_token_id=vocab_size - 2,
                                                eos_token_id=vocab_size - 1, pad_token_id=1, **base["clip"])).eval()
    unet = UNet2DConditionModel(in_channels=8, out_channels=4, **base["unet"]).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, **base["vae"]).eval()
    with torch.no_grad():
        for m in (text_encoder, unet, vae):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    cls, extra = cfg["scheduler"]
    sched_cfg = dict(SCHED_COMMON, **extra)
    scheduler = (EulerAncestralDiscreteScheduler if cls.startswith("EulerAncestral") else DDIMScheduler)(**sched_cfg)
    pipe = StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                                  scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
    if base["fp16_variant"]:
        # Saved as *.fp16.safetensors only, like sd2; the reference runs on the weights as stored.
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")
        pipe.to(torch.float32)
        with torch.no_grad():
            for m in (text_encoder, unet, vae):
                for p in m.parameters():
                    p.copy_(p.half().float())
    else:
        pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    write_tokenizer(os.path.join(folder, "tokenizer"), base["pad"])
    pipe.set_progress_bar_config(disable=True)

    tensors, meta = {}, {"blocks": {}, "pipelines": [], "schedulers": []}
    gen = torch.Generator().manual_seed(17)
    with torch.no_grad():
        prompts = ["make it a red cat", "add snow at night", ""]
        for i, p in enumerate(prompts):
            ids = tokenizer(p, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids
            tensors[f"tokenizer.{i}.ids"] = ids.to(torch.int32)
            tensors[f"text_encoder.{i}.out"] = text_encoder(ids)[0]
        meta["prompts"] = prompts

        # Blocks: the 8-channel conv_in, a resnet, the mid block; the VAE encoder's first block.
        store = {}
        blocks = ["conv_in", "down_blocks.0.resnets.0", "mid_block"]
        hs = hooked(unet, blocks, store, "")
        sample = torch.randn(3, 8, 8, 8, generator=gen)
        emb = torch.randn(3, 77, unet.config.cross_attention_dim, generator=gen)
        t = torch.tensor([999.0, 500.0, 1.0])
        out = unet(sample, t, encoder_hidden_states=emb).sample
        for h in hs:
            h.remove()
        tensors.update({"unet.sample": sample, "unet.timestep": t, "unet.encoder_hidden_states": emb, "unet.out": out})
        hs = hooked(vae, ["encoder.down_blocks.0"], store, "")
        image = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
        tensors.update({"vae.image": image, "vae.mode": vae.encode(image).latent_dist.mode()})
        for h in hs:
            h.remove()
        for bname, rec in store.items():
            comp = "vae" if bname.startswith("encoder.") else "unet"
            meta["blocks"][f"{comp}.{bname}"] = sorted(rec)
            for k, v in rec.items():
                tensors[f"block.{comp}.{bname}.{k}"] = v

        # Scheduler tables (ancestral: every spacing).
        for i, (c, extra2, steps) in enumerate([
            ("EulerAncestralDiscreteScheduler", {}, 10),
            ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1}, 7),
            ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, 4),
            ("EulerAncestralDiscreteScheduler", {"prediction_type": "v_prediction"}, 100),
        ]):
            sc = dict(SCHED_COMMON, **extra2)
            s = EulerAncestralDiscreteScheduler(**sc)
            s.set_timesteps(steps)
            tensors[f"scheduler.{i}.timesteps"] = s.timesteps.to(torch.float32)
            tensors[f"scheduler.{i}.sigmas"] = s.sigmas.to(torch.float32)
            tensors[f"scheduler.{i}.init_noise_sigma"] = torch.tensor([float(s.init_noise_sigma)])
            meta["schedulers"].append({"class": c, "config": sc, "steps": steps})

        # Whole edits from fixed noise.
        for i, (prompt, negative, steps, g, g_img, (width, height)) in enumerate(RUNS[name]):
            img = input_image(width, height, seed=100 + i)
            img_name = f"input_{i}.png"
            img.save(os.path.join(folder, img_name))
            noise = torch.randn(1, 4, height // 8, width // 8, generator=gen)
            recorder = Recorder()
            ancestral.randn_tensor = recorder
            try:
                out = pipe(prompt, image=img, negative_prompt=negative or None, num_inference_steps=steps,
                           guidance_scale=g, image_guidance_scale=g_img, latents=noise.clone(),
                           generator=torch.Generator().manual_seed(1000 + i), output_type="np").images[0]
            finally:
                ancestral.randn_tensor = recorder.inner
            noise_file = {"noise": noise.clone().contiguous()}
            if recorder.draws:
                assert len(recorder.draws) == steps, (len(recorder.draws), steps)
                noise_file["step_noise"] = torch.stack(recorder.draws).contiguous()
                tensors[f"pipeline.{i}.step_noise"] = noise_file["step_noise"]
            # The noise as `vidplay edit --noise` reads it.
            save_file(noise_file, os.path.join(folder, f"noise_{i}.safetensors"))
            tensors[f"pipeline.{i}.noise"] = noise
            tensors[f"pipeline.{i}.image"] = torch.from_numpy(np.ascontiguousarray(out))
            meta["pipelines"].append({"scheduler": cls, "scheduler_config": dict(pipe.scheduler.config), "prompt": prompt,
                                      "negative": negative, "steps": steps, "guidance": g, "image_guidance": g_img,
                                      "width": width, "height": height, "image": img_name})

    tensors = {k: v.detach().clone().contiguous().float() if v.is_floating_point() else v.detach().clone().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs), "bytes")


# timbrooks/instruct-pix2pix's published component configs (SD 1.5 with an 8-channel conv_in and
# CLIP ViT-L/14's text tower), transcribed; names and shapes from diffusers and transformers built
# on the meta device, so the Rust loader is checked against the real architecture without weights.
IP2P = {
    "unet": dict(sample_size=64, in_channels=8, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280],
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32, norm_eps=1e-5,
                 flip_sin_to_cos=True, freq_shift=0, act_fn="silu", center_input_sample=False,
                 downsample_padding=1, mid_block_scale_factor=1),
    "vae": dict(sample_size=256, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], norm_num_groups=32, act_fn="silu",
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4),
    "text_encoder": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                         projection_dim=768, layer_norm_eps=1e-5),
}


def ip2p_shapes():
    folder = os.path.join(ROOT, "instruct-pix2pix-shapes")
    os.makedirs(folder, exist_ok=True)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**IP2P["unet"])
        vae = AutoencoderKL(**IP2P["vae"])
        te = CLIPTextModel(CLIPTextConfig(**IP2P["text_encoder"]))
    shapes = {"unet": {k: list(v.shape) for k, v in unet.state_dict().items()},
              "vae": {k: list(v.shape) for k, v in vae.state_dict().items()},
              "text_encoder": {"text_model." + k: list(v.shape) for k, v in te.state_dict().items()}}
    for name, c in IP2P.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(c, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("instruct-pix2pix shapes:", {k: len(v) for k, v in shapes.items()},
          "parameters:", {k: sum(int(np.prod(s)) for s in v.values()) for k, v in shapes.items()})


if __name__ == "__main__":
    for n in (sys.argv[1:] or list(CONFIGS) + ["instruct-pix2pix-shapes"]):
        if n == "instruct-pix2pix-shapes":
            ip2p_shapes()
        else:
            build(n, CONFIGS[n])
