#!/usr/bin/env python3
"""Builds the tiny Stable Video Diffusion parity fixtures under model/tests/fixtures/svd/.

Run by hand (CI needs no Python):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers safetensors pillow
    /tmp/venv/bin/python scripts/svd_fixtures.py

Every configuration is a complete diffusers folder (model_index.json, feature_extractor/,
image_encoder/, unet/, vae/, scheduler/) with random weights, plus `expected.safetensors` and
`expected.json`: inputs and outputs of single blocks (captured with forward hooks during a real
forward), of each component, the scheduler's sigmas and timesteps, and whole pipeline runs from
fixed noise (the `noise_N.safetensors` files, as `vidplay generate --noise` reads them).

`svd-xt-shapes/` holds stabilityai/stable-video-diffusion-img2vid-xt's published component
configs and the tensor names and shapes diffusers and transformers give them (built on the meta
device, no weights), so the Rust loader is checked against the real architecture.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                       UNetSpatioTemporalConditionModel)
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd_fixtures import hooked  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "svd")

# SVD's scheduler: EDM-style Euler (Karras sigmas between fixed bounds, v-prediction, continuous
# timesteps 0.25 ln sigma), as in the published scheduler_config.json.
SVD_SCHEDULER = dict(beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", set_alpha_to_one=False,
                     sigma_max=700.0, sigma_min=0.002, skip_prk_steps=True, steps_offset=1,
                     timestep_spacing="leading", timestep_type="continuous", trained_betas=None,
                     use_karras_sigmas=True)

CONFIGS = {
    # Two levels, one layer per block, the image encoder's gelu, f32 files.
    "svd1": dict(
        clip=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                  image_size=224, patch_size=32, projection_dim=32, hidden_act="gelu"),
        unet=dict(sample_size=8, in_channels=8, out_channels=4, block_out_channels=(32, 32), layers_per_block=1,
                  down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                  up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                  num_attention_heads=(2, 4), cross_attention_dim=32, addition_time_embed_dim=8,
                  projection_class_embeddings_input_dim=24, num_frames=4),
        vae=dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                 down_block_types=("DownEncoderBlock2D",) * 4, latent_channels=4, sample_size=64),
        fp16_variant=False,
        runs=[dict(frames=4, steps=3, min_guidance=1.0, max_guidance=3.0, fps=7, motion=127, aug=0.02, chunk=3,
                   size=(64, 64)),
              dict(frames=3, steps=2, min_guidance=1.0, max_guidance=1.0, fps=12, motion=40, aug=0.1, chunk=8,
                   size=(64, 64))],
    ),
    # Three levels like the real model's pattern (cross-attention, cross-attention, plain), two
    # transformer layers in the middle level, two VAE layers per block, quick_gelu, a non-square
    # size, and fp16 variant files only.
    "svd2": dict(
        clip=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=3,
                  image_size=224, patch_size=28, projection_dim=32, hidden_act="quick_gelu"),
        unet=dict(sample_size=8, in_channels=8, out_channels=4, block_out_channels=(32, 32, 32), layers_per_block=1,
                  down_block_types=("CrossAttnDownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal",
                                    "DownBlockSpatioTemporal"),
                  up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal",
                                  "CrossAttnUpBlockSpatioTemporal"),
                  num_attention_heads=(1, 2, 2), transformer_layers_per_block=(1, 2, 1), cross_attention_dim=32,
                  addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, num_frames=5),
        vae=dict(block_out_channels=(32, 32, 32, 32), layers_per_block=2,
                 down_block_types=("DownEncoderBlock2D",) * 4, latent_channels=4, sample_size=64),
        fp16_variant=True,
        runs=[dict(frames=5, steps=3, min_guidance=1.5, max_guidance=2.5, fps=6, motion=180, aug=0.05, chunk=2,
                   size=(64, 128))],
    ),
}


def test_image(width, height, seed):
    """A smooth picture with an edge or two, as an 8-bit RGB image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    r = 0.5 + 0.5 * np.sin(6 * x + rng.uniform(0, 3))
    g = 0.5 + 0.5 * np.cos(5 * y + 3 * x)
    b = ((x - 0.5) ** 2 + (y - 0.3) ** 2 < 0.05).astype(float)
    img = np.stack([r, g, b], -1) * 0.8 + rng.uniform(0, 0.2, (height, width, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def build(name, cfg):
    torch.manual_seed({"svd1": 11, "svd2": 12}[name])
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["clip"])).eval()
    unet = UNetSpatioTemporalConditionModel(**cfg["unet"]).eval()
    vae = AutoencoderKLTemporalDecoder(in_channels=3, out_channels=3, **cfg["vae"]).eval()
    # Random init leaves norms at identity, mix factors equal and some biases at zero: perturb
    # everything so a wrong mapping of any tensor shows.
    with torch.no_grad():
        for m in (image_encoder, unet, vae):
            for pname, p in m.named_parameters():
                p.add_(torch.randn_like(p) * (0.5 if "mix_factor" in pname else 0.05))
    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER)
    feature_extractor = CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224})
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=feature_extractor)
    if cfg["fp16_variant"]:
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")
        pipe.to(torch.float32)
        # The reference runs on the weights exactly as stored.
        for m in (image_encoder, unet, vae):
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(p.half().float())
    else:
        pipe.save_pretrained(folder, safe_serialization=True)
    # The published scheduler file, with the keys EulerDiscreteScheduler does not take.
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(SVD_SCHEDULER, _class_name="EulerDiscreteScheduler", _diffusers_version="0.24.0.dev0"), f,
                  indent=1)

    tensors, meta = {}, {"blocks": {}, "pipelines": [], "schedulers": []}
    gen = torch.Generator().manual_seed(7)
    store = {}
    with torch.no_grad():
        # The UNet, with hooks on one block of each kind.
        blocks = ["time_embedding", "add_embedding",
                  "down_blocks.0.resnets.0", "down_blocks.0.resnets.0.temporal_res_block",
                  "down_blocks.0.attentions.0", "down_blocks.0.attentions.0.temporal_transformer_blocks.0",
                  "down_blocks.0.downsamplers.0", "mid_block", "up_blocks.0.resnets.0",
                  "up_blocks.0.upsamplers.0", f"up_blocks.{len(unet.up_blocks) - 1}.attentions.0"]
        hs = hooked(unet, blocks, store, "")
        frames = cfg["unet"]["num_frames"]
        sample = torch.randn(2, frames, 8, 8, 8, generator=gen)
        emb = torch.randn(2, 1, unet.config.cross_attention_dim, generator=gen)
        added = torch.tensor([[6.0, 127.0, 0.02], [11.0, 30.0, 0.3]])
        t = torch.tensor(0.25 * np.log(3.7), dtype=torch.float32)
        out = unet(sample, t, encoder_hidden_states=emb, added_time_ids=added).sample
        for h in hs:
            h.remove()
        tensors.update({"unet.sample": sample, "unet.timestep": t.reshape(1), "unet.encoder_hidden_states": emb,
                        "unet.added_time_ids": added, "unet.out": out})
        # Latents that are not a multiple of the down factor exercise the up path's size matching.
        sample2 = torch.randn(1, 2, 8, 5, 7, generator=gen)
        t2 = torch.tensor(-1.1)
        tensors.update({"unet2.sample": sample2, "unet2.timestep": t2.reshape(1),
                        "unet2.out": unet(sample2, t2, encoder_hidden_states=emb[:1], added_time_ids=added[:1]).sample})

        # VAE: encode an image, decode frames with the temporal decoder.
        vblocks = ["encoder.mid_block", "decoder.mid_block", "decoder.up_blocks.0",
                   "decoder.up_blocks.0.resnets.0"]
        hs = hooked(vae, vblocks, store, "")
        image = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
        dist = vae.encode(image).latent_dist
        latent = torch.randn(3, 4, 8, 8, generator=gen)
        decoded = vae.decode(latent, num_frames=3).sample
        for h in hs:
            h.remove()
        tensors.update({"vae.image": image, "vae.mean": dist.mean, "vae.logvar": dist.logvar,
                        "vae.latent": latent, "vae.decoded": decoded})

        for bname, rec in store.items():
            comp = ("image_encoder" if bname.startswith("vision_model")
                    else "vae" if bname.split(".")[0] in ("encoder", "decoder") else "unet")
            meta["blocks"][f"{comp}.{bname}"] = sorted(rec)
            for k, v in rec.items():
                tensors[f"block.{comp}.{bname}.{k}"] = v

        # Scheduler tables for a few step counts.
        for i, steps in enumerate([1, 3, 25, 30]):
            s = EulerDiscreteScheduler.from_config(SVD_SCHEDULER)
            s.set_timesteps(steps)
            tensors[f"scheduler.{i}.timesteps"] = s.timesteps.to(torch.float32)
            tensors[f"scheduler.{i}.sigmas"] = s.sigmas.to(torch.float32)
            tensors[f"scheduler.{i}.init_noise_sigma"] = torch.tensor([float(s.init_noise_sigma)])
            meta["schedulers"].append({"steps": steps})

        # The CLIP input the pipeline builds from a picture: antialiased resize to 224, normalised.
        width, height = cfg["runs"][0]["size"][1], cfg["runs"][0]["size"][0]
        picture = test_image(width, height, 3)
        captured = {}
        orig = image_encoder.forward

        def spy(pixel_values, *a, **k):
            captured.setdefault("pixels", pixel_values.clone())
            return orig(pixel_values, *a, **k)

        image_encoder.forward = spy
        for i, run in enumerate(cfg["runs"]):
            height, width = run["size"]
            picture = test_image(width, height, 3 + i)
            picture.save(os.path.join(folder, f"image_{i}.png"))
            captured.clear()
            # The pipeline draws the image's augmentation noise first from its generator; the
            # fixture draws it the same way so the Rust side can be given the very same values.
            run_gen = torch.Generator().manual_seed(100 + i)
            aug_noise = torch.randn((1, 3, height, width), generator=torch.Generator().manual_seed(100 + i))
            noise = torch.randn(1, run["frames"], 4, height // 8, width // 8, generator=gen)
            video = pipe(picture, height=height, width=width, num_frames=run["frames"],
                         num_inference_steps=run["steps"], min_guidance_scale=run["min_guidance"],
                         max_guidance_scale=run["max_guidance"], fps=run["fps"], motion_bucket_id=run["motion"],
                         noise_aug_strength=run["aug"], decode_chunk_size=run["chunk"], generator=run_gen,
                         latents=noise.clone(), output_type="np").frames[0]
            if i == 0:
                # A band of rows keeps the file small; the encoder output checks all of them.
                tensors[f"pipeline.{i}.clip_pixels_band"] = captured["pixels"][:, :, 96:128]
                # The image encoder alone on those pixels, with a hook on one encoder layer.
                hs = hooked(image_encoder, ["vision_model.encoder.layers.0"], store, "")
                tensors["image_encoder.out"] = orig(captured["pixels"]).image_embeds
                for h in hs:
                    h.remove()
            tensors[f"pipeline.{i}.noise"] = noise
            tensors[f"pipeline.{i}.image_noise"] = aug_noise
            tensors[f"pipeline.{i}.frames"] = torch.from_numpy(np.ascontiguousarray(video))
            save_file({"noise": noise.clone().contiguous(), "image_noise": aug_noise.clone().contiguous()},
                      os.path.join(folder, f"noise_{i}.safetensors"))
            meta["pipelines"].append(dict(run, image=f"image_{i}.png", noise=f"noise_{i}.safetensors"))
        image_encoder.forward = orig
        rec = store.get("vision_model.encoder.layers.0", {})
        meta["blocks"]["image_encoder.vision_model.encoder.layers.0"] = sorted(rec)
        for k, v in rec.items():
            tensors[f"block.image_encoder.vision_model.encoder.layers.0.{k}"] = v

    tensors = {k: v.detach().clone().contiguous().float() if v.is_floating_point() else v.detach().clone().contiguous()
               for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs),
          "bytes")


# stabilityai/stable-video-diffusion-img2vid-xt's published component configs, transcribed.
SVD_XT = {
    "unet": dict(sample_size=96, in_channels=8, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280],
                 down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
                 up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
                 num_attention_heads=[5, 10, 20, 20], cross_attention_dim=1024, transformer_layers_per_block=1,
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, num_frames=25),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4, sample_size=768,
                scaling_factor=0.18215, force_upcast=True),
    "image_encoder": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                          image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu",
                          layer_norm_eps=1e-5, num_channels=3),
}


def svd_xt_shapes():
    folder = os.path.join(ROOT, "svd-xt-shapes")
    os.makedirs(folder, exist_ok=True)
    shapes = {}
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel(**SVD_XT["unet"])
        vae = AutoencoderKLTemporalDecoder(**SVD_XT["vae"])
        enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT["image_encoder"]))
    for name, m in (("unet", unet), ("vae", vae), ("image_encoder", enc)):
        shapes[name] = {k: list(v.shape) for k, v in m.state_dict().items()}
    for name, cfg in SVD_XT.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("svd-xt shapes:", {k: len(v) for k, v in shapes.items()},
          "parameters:", {k: sum(int(np.prod(s)) for s in v.values()) for k, v in shapes.items()})


if __name__ == "__main__":
    for n in (sys.argv[1:] or list(CONFIGS) + ["svd-xt-shapes"]):
        if n == "svd-xt-shapes":
            svd_xt_shapes()
        else:
            build(n, CONFIGS[n])
