#!/usr/bin/env python3
"""diffusers' side of the Wan benchmark in scripts/gpu_check: times WanPipeline on a folder.

    python3 scripts/wan_diffusers_bench.py DIR WIDTH HEIGHT FRAMES STEPS DEVICE [warmup]

The transformer in f16 (f32 on a CPU), the VAE in f32 as diffusers' Wan examples load it, the text
encoder in bf16 (f32 on a CPU), all on DEVICE. `warmup`: one one-step run first, timed apart
(`warmup_s`), as `vidplay generate --warmup` does. Prints one JSON line: seconds per step, total,
and peak GPU memory (CUDA: allocated and reserved, the latter what Burn's figure counts) or peak RSS (CPU).
"""

import json
import resource
import sys
import time

import torch
from diffusers import AutoencoderKLWan, WanPipeline


def main(folder, width, height, frames, steps, device, warmup=False):
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    t0 = time.time()
    kw = {}
    try:
        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32, variant="fp16")
        kw["variant"] = "fp16"
    except (OSError, ValueError):  # a folder without fp16 files (the test fixtures)
        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
    # diffusers keeps the transformer's rotary table, time embedder and norms in f32 (this needs
    # accelerate installed); the text encoder in bf16 on a GPU.
    pipe = WanPipeline.from_pretrained(folder, vae=vae, torch_dtype=dtype, **kw)
    if cuda:
        pipe.text_encoder.to(torch.bfloat16)
    pipe.to(device)
    load_s = time.time() - t0
    args = dict(prompt="a red ball bounces across a wooden table", negative_prompt="", width=width, height=height,
                num_frames=frames, guidance_scale=5.0, output_type="np")
    warmup_s = 0.0
    if warmup:  # timed apart: the first run's cost, as Burn's --warmup reports it
        tw = time.time()
        pipe(num_inference_steps=1, generator=torch.Generator().manual_seed(1), **args)
        warmup_s = time.time() - tw
    stamps = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t1 = time.time()
    pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
         callback_on_step_end=lambda p, i, t, kw: (stamps.append(time.time()), kw)[1], **args)
    total = time.time() - t1
    per_step = (stamps[-1] - t1) / len(stamps) if stamps else float("nan")
    peak = (torch.cuda.max_memory_allocated() / 2**30) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
    print(json.dumps({"impl": "diffusers", "device": device, "load_s": load_s, "warmup_s": warmup_s,
                      "per_step_s": per_step, "total_s": total,
                      "peak_gib": peak, "peak_reserved_gib": reserved,
                      "peak_kind": "GPU allocated" if cuda else "host RSS", "dtype": "fp16" if cuda else "fp32"}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5], "warmup" in a[6:])
