#!/usr/bin/env python3
"""diffusers' side of the SD-Turbo rows of scripts/gpu_check: times StableDiffusionPipeline.

    python3 scripts/sd_diffusers_bench.py DIR SIZE STEPS DEVICE

The pipeline in f16 on a GPU (f32 on a CPU), guidance 0 as SD-Turbo runs, SIZE x SIZE. One
warm-up image first (cuDNN autotune, the allocator), timed apart (`warmup_s`), as `vidplay image
--warmup` runs one image before its timed one (kernel compilation, autotune); then one timed.
Prints one JSON line: seconds per step, total, peak GPU memory (allocated and reserved) or peak RSS
(CPU).
"""

import json
import resource
import sys
import time

import torch
from diffusers import StableDiffusionPipeline


def main(folder, size, steps, device):
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    t0 = time.time()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype, variant="fp16", safety_checker=None)
    except (OSError, ValueError):  # a folder without fp16 files (the test fixtures)
        pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype, safety_checker=None)
    pipe.to(device)
    load_s = time.time() - t0
    run = dict(prompt="a lighthouse at dusk", width=size, height=size, num_inference_steps=steps, guidance_scale=0.0,
               output_type="np")
    tw = time.time()
    pipe(**run, generator=torch.Generator().manual_seed(0))
    warmup_s = time.time() - tw
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    stamps = []
    t1 = time.time()
    pipe(**run, generator=torch.Generator().manual_seed(1),
         callback_on_step_end=lambda p, i, t, kw: (stamps.append(time.time()), kw)[1])
    if cuda:
        torch.cuda.synchronize()
    total = time.time() - t1
    per_step = (stamps[-1] - t1) / len(stamps) if stamps else float("nan")
    peak = (torch.cuda.max_memory_allocated() / 2**30) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
    print(json.dumps({"impl": "diffusers", "device": device, "load_s": load_s, "warmup_s": warmup_s,
                      "per_step_s": per_step, "total_s": total,
                      "peak_gib": peak, "peak_reserved_gib": reserved, "peak_kind": "GPU allocated" if cuda else "host RSS",
                      "dtype": "fp16" if cuda else "fp32"}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), a[3])
