#!/usr/bin/env python3
"""Builds the tiny Wan 2.2 image-to-video (A14B layout) parity fixture under
model/tests/fixtures/wan/wan-i2v1/.

Run by hand (CI needs no Python):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers sentencepiece safetensors peft
    /tmp/venv/bin/python scripts/wan_i2v_fixtures.py
    /tmp/venv/bin/python scripts/wan_i2v_fixtures.py wan2.2-i2v-a14b-shapes wan2.1-i2v-14b-shapes

A complete diffusers `WanImageToVideoPipeline` folder as Wan-AI/Wan2.2-I2V-A14B-Diffusers lays
it out: two transformers (36 input channels: noise, the 4-channel frame mask, the picture's
latents) switched at `boundary_ratio`, no image encoder, a VAE, UMT5 and its tokenizer, the
published UniPC scheduler, random weights. `expected.safetensors` holds, per run, the noise, the
condition diffusers' `prepare_latents` builds, and the frames; runs use a picture at the clip's
size and one that is resized, with and without a last frame, and with a PEFT LoRA (rank 4,
alpha 8, `lora.safetensors`) loaded into both experts and fused at 0.9.

Random tiny weights can hide bugs, so the script also runs simulated bugs through diffusers
(the last picture ignored, one expert only, `guidance_2` ignored, the negative prompt dropped,
the mask zeroed, the picture's latents zeroed) and records their PSNR against the right frames
in `expected.json` (`bugs`): the weights are scaled (`GAIN`) until every one is far below the
37 dB a port has to beat.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline, WanTransformer3DModel
from PIL import Image
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import UMT5Config, UMT5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wan_fixtures import UNIPC, perturb, write_tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "wan")
NAME = "wan-i2v1"
# Wan-AI/Wan2.2-I2V-A14B-Diffusers' boundary and scheduler shift.
BOUNDARY, FLOW_SHIFT = 0.9, 5.0
TEXT = dict(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, relative_attention_num_buckets=8,
            relative_attention_max_distance=16)
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                   out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                   qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True],
           latents_mean=[0.0] * 16, latents_std=[0.5] * 16)
# Scales of weights so that the text, the picture, the last picture and each expert reach the
# pixels (tuned with WAN_I2V_GAIN='{...}' until every simulated bug is far below 37 dB).
GAIN = json.loads(os.environ.get("WAN_I2V_GAIN", "null")) or dict(
    proj_out=3.0, patch_embedding=2.0, cross_attention=16.0, text_embedder=4.0, decoder_out=1.3,
    encoder_newest_frame=30.0, decoder_newest_frame=30.0, condition_channels=16.0, mask_channels=8.0)
RANK, ALPHA, SCALE = 4, 8.0, 0.9

RUNS = [
    dict(prompt="a red ball bounces across a wooden table", negative="blurry, static", frames=9, width=48,
         height=32, steps=4, guidance=5.0, guidance_2=3.0, image="image_0.png", last_image=None),
    dict(prompt="a cat walks through the snow at night", negative="", frames=9, width=32, height=32, steps=4,
         guidance=4.0, guidance_2=None, image="image_1.png", last_image="last_1.png"),
]


def picture(width, height, seed):
    """A picture with structure a VAE keeps: a gradient, a disc and a bar, colours from `seed`."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    c = g.uniform(0, 1, (3, 3))
    img = c[0][None, None] * x[..., None] + c[1][None, None] * y[..., None]
    cy, cx, r = g.uniform(0.3, 0.7), g.uniform(0.3, 0.7), g.uniform(0.15, 0.3)
    img[((y - cy) ** 2 + (x - cx) ** 2) < r * r] = c[2]
    img[:, int(width * g.uniform(0.1, 0.8)):][:, :2] = 1.0
    return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def start(name, seed):
    """A fresh fixture folder `name` after seeding torch: its tokenizer (and the tokenizer
    files, which `save` puts back) and a tiny UMT5 text encoder."""
    torch.manual_seed(seed)
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    tokenizer = write_tokenizer(os.path.join(folder, "tokenizer"), "nmt_nfkc")
    tokenizer_files = {n: open(os.path.join(folder, "tokenizer", n), "rb").read()
                       for n in os.listdir(os.path.join(folder, "tokenizer"))}
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), feed_forward_proj="gated-gelu",
                                               dense_act_fn="gelu_new", is_gated_act=True, dropout_rate=0.0,
                                               tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                                               **TEXT)).eval()
    return folder, tokenizer, tokenizer_files, text_encoder


def save(pipe, folder, tokenizer_files):
    """`save_pretrained`, with the fast tokenizer's files put back (it rewrites the folder)."""
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    os.makedirs(os.path.join(folder, "tokenizer"))
    for n, data in tokenizer_files.items():
        with open(os.path.join(folder, "tokenizer", n), "wb") as f:
            f.write(data)


def scale_transformer(t):
    """GAIN on a transformer: its output, its patch embedding (more on the condition's channels),
    its text embedding and its cross-attention outputs."""
    t.proj_out.weight.mul_(GAIN["proj_out"])
    t.patch_embedding.weight.mul_(GAIN["patch_embedding"])
    t.patch_embedding.weight[:, 20:].mul_(GAIN["condition_channels"])
    t.patch_embedding.weight[:, 16:20].mul_(GAIN["mask_channels"])
    t.condition_embedder.text_embedder.linear_2.weight.mul_(GAIN["text_embedder"])
    for block in t.blocks:
        block.attn2.to_out[0].weight.mul_(GAIN["cross_attention"])


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def run_pipe(pipe, run, folder, noise, **over):
    args = dict(image=Image.open(os.path.join(folder, run["image"])).convert("RGB"), prompt=run["prompt"],
                negative_prompt=run["negative"], height=run["height"], width=run["width"],
                num_frames=run["frames"], num_inference_steps=run["steps"], guidance_scale=run["guidance"],
                guidance_scale_2=run["guidance_2"], latents=noise.clone(), output_type="np")
    if run["last_image"]:
        args["last_image"] = Image.open(os.path.join(folder, run["last_image"])).convert("RGB")
    args.update(over)
    return pipe(**args).frames[0]


def main():
    folder, tokenizer, tokenizer_files, text_encoder = start(NAME, 31)
    experts = [WanTransformer3DModel(**TRANSFORMER).eval() for _ in range(2)]
    vae = AutoencoderKLWan(**VAE).eval()
    perturb(text_encoder, vae, *experts)
    with torch.no_grad():
        for t in experts:
            scale_transformer(t)
        vae.decoder.conv_out.weight.mul_(GAIN.get("decoder_out", 1.0))
        vae.decoder.conv_out.bias.mul_(GAIN.get("decoder_out", 1.0))
        # The encoder's temporal downsampling: its kernel's newest tap, which carries the last
        # frame of each chunk (a random encoder barely passes it on).
        for m in vae.encoder.modules():
            if hasattr(m, "time_conv"):
                m.time_conv.weight[:, :, -1].mul_(GAIN.get("encoder_newest_frame", 1.0))
        for m in vae.decoder.modules():
            if hasattr(m, "time_conv"):
                m.time_conv.weight[:, :, -1].mul_(GAIN.get("decoder_newest_frame", 1.0))
    scheduler = UniPCMultistepScheduler.from_config(dict(UNIPC, flow_shift=FLOW_SHIFT))
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                                   transformer=experts[0], transformer_2=experts[1], image_encoder=None,
                                   image_processor=None, boundary_ratio=BOUNDARY)
    save(pipe, folder, tokenizer_files)

    # Pictures: at the clip's size, a resized one (64x40 to 32x32) as the last frame.
    picture(48, 32, 1).save(os.path.join(folder, "image_0.png"))
    picture(32, 32, 2).save(os.path.join(folder, "image_1.png"))
    picture(64, 40, 3).save(os.path.join(folder, "last_1.png"))

    gen = torch.Generator().manual_seed(7)
    tensors, meta = {}, {"boundary_ratio": BOUNDARY, "gain": GAIN, "pipelines": [], "bugs": []}
    conditions = []
    original_prepare = pipe.prepare_latents

    def recording_prepare(*args, **kwargs):
        out = original_prepare(*args, **kwargs)
        conditions.append(out[1].clone())
        return out

    with torch.no_grad():
        frames = []
        for i, run in enumerate(RUNS):
            noise = torch.randn(1, 16, (run["frames"] - 1) // 4 + 1, run["height"] // 8, run["width"] // 8,
                                generator=gen)
            pipe.prepare_latents = recording_prepare
            video = run_pipe(pipe, run, folder, noise)
            pipe.prepare_latents = original_prepare
            frames.append(video)
            tensors[f"pipeline.{i}.noise"] = noise
            tensors[f"pipeline.{i}.condition"] = conditions[-1]
            tensors[f"pipeline.{i}.frames"] = torch.from_numpy(np.ascontiguousarray(video))
            save_file({"noise": noise.clone().contiguous()}, os.path.join(folder, f"noise_{i}.safetensors"))
            meta["pipelines"].append(dict(run, noise=f"noise_{i}.safetensors"))

        # Simulated bugs, each against the run it breaks.
        def bug(label, i, **over):
            noise = tensors[f"pipeline.{i}.noise"]
            got = run_pipe(pipe, RUNS[i], folder, noise, **over)
            meta["bugs"].append({"bug": label, "run": i, "psnr_db": round(psnr(got, frames[i]), 2)})

        bug("the last picture ignored", 1, last_image=None)
        bug("guidance_2 ignored (guidance for both experts)", 0, guidance_scale_2=RUNS[0]["guidance"])
        bug("the negative prompt dropped", 0, negative_prompt="")
        pipe.register_to_config(boundary_ratio=None)
        bug("one expert only (transformer for every step)", 1, guidance_scale_2=None)
        pipe.register_to_config(boundary_ratio=BOUNDARY)

        def broken(change):
            def prepare(*args, **kwargs):
                latents, condition = original_prepare(*args, **kwargs)
                return latents, change(condition.clone())
            return prepare

        def zero_mask(c):
            c[:, :4] = 0
            return c

        def zero_picture(c):
            c[:, 4:] = 0
            return c

        def mask_first_channel_only(c):
            c[:, 1:4, 0] = 0
            return c

        for label, change in [("the mask zeroed", zero_mask), ("the first latent frame's mask on one channel",
                                                                mask_first_channel_only),
                              ("the picture's latents zeroed", zero_picture)]:
            pipe.prepare_latents = broken(change)
            bug(label, 0)
            pipe.prepare_latents = original_prepare

        # A LoRA for both experts, made with PEFT; diffusers loads it into each and fuses it.
        cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False,
                         target_modules=["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"])
        probe = WanTransformer3DModel(**TRANSFORMER)
        probe.add_adapter(cfg)
        for name, p in probe.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.5)
        sd = get_peft_model_state_dict(probe)
        WanImageToVideoPipeline.save_lora_weights(folder, transformer_lora_layers=sd, weight_name="lora.safetensors",
                                                  transformer_lora_adapter_metadata=cfg.to_dict())
        lora_pipe = WanImageToVideoPipeline.from_pretrained(folder)
        # `load_into_transformer_2` loads into transformer_2 only: once for each expert.
        lora_pipe.load_lora_weights(folder, weight_name="lora.safetensors", adapter_name="high")
        lora_pipe.load_lora_weights(folder, weight_name="lora.safetensors", adapter_name="low",
                                    load_into_transformer_2=True)
        lora_pipe.fuse_lora(lora_scale=SCALE, components=["transformer", "transformer_2"])
        video = run_pipe(lora_pipe, RUNS[0], folder, tensors["pipeline.0.noise"])
        tensors["lora.0.frames"] = torch.from_numpy(np.ascontiguousarray(video))
        meta["lora"] = {"file": "lora.safetensors", "rank": RANK, "alpha": ALPHA, "scale": SCALE, "run": 0,
                        "psnr_without_db": round(psnr(video, frames[0]), 2)}

    tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    meta["saturated"] = round(float(np.mean([(np.isin(f, [0.0, 1.0])).mean() for f in frames])), 3)
    print("saturated pixels:", meta["saturated"])
    for b in meta["bugs"]:
        print(f"{b['psnr_db']:7.2f} dB  {b['bug']}")
    print(f"{meta['lora']['psnr_without_db']:7.2f} dB  the LoRA dropped")
    print(NAME, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs),
          "bytes")


# Wan 2.1 image to video: one transformer with image cross-attention (`image_dim`,
# `added_kv_proj_dim`), a CLIP image encoder whose penultimate layer it reads, and its image
# processor; the first-last-frame model (FLF2V) adds position embeddings over both pictures'
# tokens (`pos_embed_seq_len`) and always takes a last picture.
CLIP_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4, image_size=32,
                   patch_size=8, hidden_act="gelu", layer_norm_eps=1e-5)
CLIP_TOKENS = (32 // 8) ** 2 + 1
WAN21 = {
    "wan-i2v21": dict(seed=41, transformer=dict(TRANSFORMER, image_dim=32, added_kv_proj_dim=24),
                      runs=[dict(RUNS[0], guidance_2=None, image="image_0.png", last_image=None)]),
    "wan-flf21": dict(seed=42, transformer=dict(TRANSFORMER, image_dim=32, added_kv_proj_dim=24,
                                                pos_embed_seq_len=2 * CLIP_TOKENS),
                      runs=[dict(RUNS[1], image="image_0.png", last_image="last_1.png", width=48, height=32)]),
}
# Scales for the image tokens, on top of GAIN.
IMAGE_GAIN = dict(add_kv=8.0)


def build_21(name, cfg):
    """A tiny Wan 2.1 image-to-video folder (`name` in WAN21), its runs, and what the image
    tokens change."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    folder, tokenizer, tokenizer_files, text_encoder = start(name, cfg["seed"])
    transformer = WanTransformer3DModel(**cfg["transformer"]).eval()
    # wan-i2v1's VAE, weights scaled already: the same bytes, which git stores once.
    vae = AutoencoderKLWan.from_pretrained(os.path.join(ROOT, NAME, "vae")).eval()
    image_encoder = CLIPVisionModel(CLIPVisionConfig(**CLIP_VISION)).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    perturb(text_encoder, transformer, image_encoder)
    with torch.no_grad():
        scale_transformer(transformer)
        if transformer.condition_embedder.image_embedder.pos_embed is not None:
            transformer.condition_embedder.image_embedder.pos_embed.normal_()
        for block in transformer.blocks:
            block.attn2.add_v_proj.weight.mul_(IMAGE_GAIN["add_kv"])
            block.attn2.add_k_proj.weight.mul_(IMAGE_GAIN["add_kv"])
    scheduler = UniPCMultistepScheduler.from_config(dict(UNIPC, flow_shift=FLOW_SHIFT))
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                                   transformer=transformer, image_encoder=image_encoder, image_processor=processor)
    save(pipe, folder, tokenizer_files)
    picture(48, 32, 1).save(os.path.join(folder, "image_0.png"))
    picture(64, 40, 3).save(os.path.join(folder, "last_1.png"))

    gen = torch.Generator().manual_seed(8)
    tensors, meta = {}, {"gain": GAIN, "image_gain": IMAGE_GAIN, "pipelines": [], "bugs": []}
    with torch.no_grad():
        for i, run in enumerate(cfg["runs"]):
            pictures = [Image.open(os.path.join(folder, run[k])).convert("RGB") for k in ("image", "last_image")
                        if run[k]]
            # The image encoder's input and output as the pipeline makes them.
            pixels = processor(images=pictures, return_tensors="pt").pixel_values
            tensors[f"pipeline.{i}.clip_pixels"] = pixels
            tensors[f"pipeline.{i}.image_embeds"] = pipe.encode_image(pictures if len(pictures) > 1 else pictures[0],
                                                                      "cpu")
            noise = torch.randn(1, 16, (run["frames"] - 1) // 4 + 1, run["height"] // 8, run["width"] // 8,
                                generator=gen)
            video = run_pipe(pipe, run, folder, noise)
            tensors[f"pipeline.{i}.noise"] = noise
            tensors[f"pipeline.{i}.frames"] = torch.from_numpy(np.ascontiguousarray(video))
            save_file({"noise": noise.clone().contiguous()}, os.path.join(folder, f"noise_{i}.safetensors"))
            meta["pipelines"].append(dict(run, noise=f"noise_{i}.safetensors"))
            # Simulated bugs in the image tokens (the pipeline's `encode_image` replaced).
            embeds = tensors[f"pipeline.{i}.image_embeds"]
            first = embeds[:1]
            bugs = [("the image tokens zeroed", torch.zeros_like(embeds))]
            if run["last_image"]:
                bugs.append(("the last picture's tokens from the first", torch.cat([first, first])))
            encode = pipe.encode_image
            for label, wrong in bugs:
                pipe.encode_image = lambda *_, wrong=wrong: wrong
                got = run_pipe(pipe, run, folder, noise)
                meta["bugs"].append({"bug": label, "run": i, "psnr_db": round(psnr(got, video), 2)})
            pipe.encode_image = encode
    tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    for b in meta["bugs"]:
        print(f"{name}: {b['psnr_db']:7.2f} dB  {b['bug']}")
    print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs),
          "bytes")


# Wan-AI/Wan2.2-I2V-A14B-Diffusers' transformer config (both experts have it) and pipeline index,
# transcribed.
A14B_TRANSFORMER = dict(_class_name="WanTransformer3DModel", added_kv_proj_dim=None, attention_head_dim=128,
                        cross_attn_norm=True, eps=1e-06, ffn_dim=13824, freq_dim=256, image_dim=None, in_channels=36,
                        num_attention_heads=40, num_layers=40, out_channels=16, patch_size=[1, 2, 2],
                        pos_embed_seq_len=None, qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, text_dim=4096)
A14B_INDEX = {"_class_name": "WanImageToVideoPipeline", "boundary_ratio": 0.9, "expand_timesteps": False,
              "image_encoder": [None, None], "image_processor": [None, None],
              "scheduler": ["diffusers", "UniPCMultistepScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
              "tokenizer": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "WanTransformer3DModel"],
              "transformer_2": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}


def a14b_shapes():
    """`wan2.2-i2v-a14b-shapes/`: the A14B folder's index, its experts' config and every tensor name
    and shape diffusers gives an expert (built on the meta device); the VAE and UMT5 are Wan
    2.1's (`wan2.1-t2v-1.3b-shapes/`)."""
    folder = os.path.join(ROOT, "wan2.2-i2v-a14b-shapes")
    os.makedirs(folder, exist_ok=True)
    with torch.device("meta"):
        expert = WanTransformer3DModel(**{k: v for k, v in A14B_TRANSFORMER.items() if not k.startswith("_")})
    shapes = {k: list(v.shape) for k, v in expert.state_dict().items()}
    for name in ("transformer", "transformer_2"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(A14B_TRANSFORMER, f, indent=1)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(A14B_INDEX, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump({"transformer": shapes}, f)
    print("wan 2.2 i2v a14b expert:", len(shapes), "tensors,", sum(int(np.prod(s)) for s in shapes.values()),
          "parameters")


# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers' transformer and image encoder configs, transcribed.
I2V_14B_TRANSFORMER = dict(A14B_TRANSFORMER, image_dim=1280, added_kv_proj_dim=5120)
I2V_14B_IMAGE_ENCODER = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
                             patch_size=14, image_size=224, hidden_act="gelu", layer_norm_eps=1e-05,
                             projection_dim=1024)


def i2v_14b_shapes():
    """`wan2.1-i2v-14b-shapes/`: the transformer and CLIP image encoder of Wan 2.1 I2V 14B, their
    configs and every tensor name and shape (the image encoder's under `vision_model.`, as the
    published file, saved by transformers 4, names them)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = os.path.join(ROOT, "wan2.1-i2v-14b-shapes")
    os.makedirs(folder, exist_ok=True)
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    with torch.device("meta"):
        transformer = WanTransformer3DModel(**strip(I2V_14B_TRANSFORMER))
        encoder = CLIPVisionModel(CLIPVisionConfig(**I2V_14B_IMAGE_ENCODER))
    prefixed = lambda k: k if k.startswith("vision_model.") else "vision_model." + k  # noqa: E731
    shapes = {"transformer": {k: list(v.shape) for k, v in transformer.state_dict().items()},
              "image_encoder": {prefixed(k): list(v.shape) for k, v in encoder.state_dict().items()}}
    for name, cfg in (("transformer", I2V_14B_TRANSFORMER), ("image_encoder", I2V_14B_IMAGE_ENCODER)):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("wan 2.1 i2v 14b:", {k: (len(v), sum(int(np.prod(s)) for s in v.values())) for k, v in shapes.items()})


if __name__ == "__main__":
    for arg in sys.argv[1:] or [NAME, *WAN21]:
        if arg == "wan2.2-i2v-a14b-shapes":
            a14b_shapes()
        elif arg == "wan2.1-i2v-14b-shapes":
            i2v_14b_shapes()
        elif arg in WAN21:
            build_21(arg, WAN21[arg])
        else:
            main()
