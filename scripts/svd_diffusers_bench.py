#!/usr/bin/env python3
"""diffusers' side of scripts/svd_bench: times StableVideoDiffusionPipeline on a folder.

    python3 scripts/svd_diffusers_bench.py DIR WIDTH HEIGHT FRAMES STEPS DEVICE [lowmem] [warmup]

Default: the pipeline in f16 (f32 on a CPU) on DEVICE. `lowmem`: diffusers' documented
low-memory recipe (model CPU offload, feed-forward chunking, decode_chunk_size 2). `warmup`: one
one-step run first, timed apart (`warmup_s`), as `vidplay generate --warmup` does. Prints one
JSON line: seconds per step, total, and peak GPU memory (CUDA: allocated and reserved, the
latter what Burn's figure counts) or peak RSS (CPU).
"""

import json
import resource
import sys
import time

import numpy as np
import torch
from diffusers import StableVideoDiffusionPipeline
from PIL import Image


def main(folder, width, height, frames, steps, device, lowmem=False, warmup=False):
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    t0 = time.time()
    try:
        pipe = StableVideoDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype, variant="fp16")
    except (OSError, ValueError):  # a folder without fp16 files (the test fixtures)
        pipe = StableVideoDiffusionPipeline.from_pretrained(folder, torch_dtype=dtype)
    if lowmem:
        pipe.enable_model_cpu_offload()
        pipe.unet.enable_forward_chunking()
    else:
        pipe.to(device)
    load_s = time.time() - t0
    image = Image.fromarray((np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8))
    warmup_s = 0.0
    if warmup:  # one one-step run first (cuDNN autotune, allocator), timed apart: Burn's --warmup
        tw = time.time()
        pipe(image, width=width, height=height, num_frames=frames, num_inference_steps=1,
             decode_chunk_size=2 if lowmem else frames, generator=torch.Generator().manual_seed(1), output_type="np")
        warmup_s = time.time() - tw
    stamps = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t1 = time.time()
    pipe(image, width=width, height=height, num_frames=frames, num_inference_steps=steps,
         decode_chunk_size=2 if lowmem else frames, generator=torch.Generator().manual_seed(0),
         callback_on_step_end=lambda p, i, t, kw: (stamps.append(time.time()), kw)[1], output_type="np")
    total = time.time() - t1
    per_step = (stamps[-1] - t1) / len(stamps) if stamps else float("nan")
    peak = (torch.cuda.max_memory_allocated() / 2**30) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
    print(json.dumps({"impl": "diffusers" + (" low-memory" if lowmem else ""), "device": device, "load_s": load_s,
                      "warmup_s": warmup_s, "per_step_s": per_step, "total_s": total, "peak_gib": peak, "peak_reserved_gib": reserved,
                      "peak_kind": "GPU allocated" if cuda else "host RSS",
                      "dtype": "fp16" if cuda else "fp32"}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5], "lowmem" in a[6:], "warmup" in a[6:])
