#!/usr/bin/env python3
"""Writes a Stable Diffusion pipeline folder with SD-Turbo's real shapes and random weights.

    python3 scripts/sd_random_pipeline.py OUT_DIR

For benchmarks (scripts/sd_bench): the component configs are SD-Turbo's (see SD_TURBO in
sd_fixtures.py), the weights random (fp16 files), the tokenizer the small fixture one (its ids all
fit CLIP's 49408-token table), the scheduler Euler with trailing spacing as SD-Turbo uses.
"""

import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd_fixtures import ROOT, SD_TURBO  # noqa: E402


def main(out):
    torch.manual_seed(0)
    shutil.rmtree(out, ignore_errors=True)
    unet = UNet2DConditionModel(**SD_TURBO["unet"]).half()
    vae = AutoencoderKL(**SD_TURBO["vae"]).half()
    te = CLIPTextModel(CLIPTextConfig(**SD_TURBO["text_encoder"])).half()
    tok = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "sd1", "tokenizer"))
    sched = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True, variant="fp16")
    shutil.rmtree(os.path.join(out, "tokenizer"))
    shutil.copytree(os.path.join(ROOT, "sd1", "tokenizer"), os.path.join(out, "tokenizer"))
    print(json.dumps({k: sum(p.numel() for p in m.parameters()) for k, m in
                      (("unet", unet), ("vae", vae), ("text_encoder", te))}))


if __name__ == "__main__":
    main(sys.argv[1])
