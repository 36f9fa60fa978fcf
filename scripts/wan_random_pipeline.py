#!/usr/bin/env python3
"""Writes a Wan 2.1 T2V pipeline folder with the 1.3B model's transformer and VAE shapes and
random weights.

    python3 scripts/wan_random_pipeline.py OUT_DIR

For benchmarks (scripts/gpu_check): the transformer and VAE configs are
Wan-AI/Wan2.1-T2V-1.3B-Diffusers' (WAN_1_3B in wan_fixtures.py), their weights random (fp16
files, about 3 GB), the scheduler the published UniPC one. The text encoder keeps UMT5-xxl's width
(4096) but has 2 of its 24 layers and a 32k vocabulary: it runs once per clip, not per step, and
the real one would add 11 GB of random weights to write.
"""

import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wan_fixtures import UNIPC, WAN_1_3B, write_tokenizer  # noqa: E402


def main(out):
    torch.manual_seed(0)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    tokenizer = write_tokenizer(os.path.join(out, "tokenizer"), "nmt_nfkc")
    text_cfg = dict(WAN_1_3B["text_encoder"], num_layers=2, num_decoder_layers=2, vocab_size=len(tokenizer))
    text_cfg.pop("architectures")
    text = UMT5EncoderModel(UMT5Config(**text_cfg)).half()
    transformer = WanTransformer3DModel(**strip(WAN_1_3B["transformer"])).half()
    vae = AutoencoderKLWan(**strip(WAN_1_3B["vae"])).half()
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text, transformer=transformer, vae=vae,
                       scheduler=UniPCMultistepScheduler.from_config(UNIPC))
    pipe.save_pretrained(out, safe_serialization=True, variant="fp16")
    # save_pretrained rewrites the tokenizer folder: put the fast tokenizer back.
    shutil.rmtree(os.path.join(out, "tokenizer"))
    write_tokenizer(os.path.join(out, "tokenizer"), "nmt_nfkc")
    print(json.dumps({k: sum(p.numel() for p in m.parameters()) for k, m in
                      (("transformer", transformer), ("vae", vae), ("text_encoder", text))}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/wan-1.3b-random")
