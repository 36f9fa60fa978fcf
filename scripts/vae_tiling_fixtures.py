#!/usr/bin/env python3
"""Builds the tiled-VAE-decoding parity fixture, model/tests/fixtures/sd/sd1-vae-tiling/.

Run by hand after scripts/sd_fixtures.py (CI needs no Python):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers safetensors
    /tmp/venv/bin/python scripts/vae_tiling_fixtures.py

It loads the tiny sd1 VAE (sample_size 64, so 8-latent tiles, a 6-latent stride and 16 blended
pixels), turns diffusers' tiling on and decodes a latent of 14 x 20: three rows and four columns
of tiles, edge tiles narrower than the rest, so every blend and crop is exercised. The untiled
decode is not stored (the Rust port decodes it itself); how far it is from the tiled one is, to
show how far tiling moves the picture (the seams).
"""

import json
import os

import diffusers
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SD1 = os.path.join(HERE, "..", "model", "tests", "fixtures", "sd", "sd1")
OUT = os.path.join(HERE, "..", "model", "tests", "fixtures", "sd", "sd1-vae-tiling")


def main():
    vae = AutoencoderKL.from_pretrained(os.path.join(SD1, "vae")).eval()
    latent = torch.randn(1, 4, 14, 20, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        whole = vae.decode(latent).sample
        vae.enable_tiling()
        assert vae.use_tiling
        tiled = vae.decode(latent).sample
    os.makedirs(OUT, exist_ok=True)
    save_file({"latent": latent.contiguous(), "tiled": tiled.contiguous()},
              os.path.join(OUT, "expected.safetensors"))
    meta = {
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "vae": "../sd1/vae",
        "tile_sample_min_size": vae.tile_sample_min_size,
        "tile_latent_min_size": vae.tile_latent_min_size,
        "tile_overlap_factor": vae.tile_overlap_factor,
        "tiled_vs_whole_max_abs": float((tiled - whole).abs().max()),
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
