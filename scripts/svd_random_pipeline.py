#!/usr/bin/env python3
"""Writes a Stable Video Diffusion pipeline folder with svd-xt's real shapes and random weights.

    python3 scripts/svd_random_pipeline.py OUT_DIR

For benchmarks (scripts/svd_bench): the component configs are
stabilityai/stable-video-diffusion-img2vid-xt's (SVD_XT in svd_fixtures.py), the weights random
(fp16 files, about 4.5 GB), the scheduler and feature extractor SVD's.
"""

import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline, \
    UNetSpatioTemporalConditionModel
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svd_fixtures import SVD_SCHEDULER, SVD_XT  # noqa: E402


def main(out):
    torch.manual_seed(0)
    shutil.rmtree(out, ignore_errors=True)
    unet = UNetSpatioTemporalConditionModel(**SVD_XT["unet"]).half()
    vae = AutoencoderKLTemporalDecoder(**SVD_XT["vae"]).half()
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT["image_encoder"])).half()
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=enc, unet=unet,
                                        scheduler=EulerDiscreteScheduler.from_config(SVD_SCHEDULER),
                                        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}))
    pipe.save_pretrained(out, safe_serialization=True, variant="fp16")
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(SVD_SCHEDULER, _class_name="EulerDiscreteScheduler"), f, indent=1)
    print(json.dumps({k: sum(p.numel() for p in m.parameters()) for k, m in
                      (("unet", unet), ("vae", vae), ("image_encoder", enc))}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/svd-xt-random")
