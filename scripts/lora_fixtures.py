#!/usr/bin/env python3
"""Builds the LoRA parity fixture under model/tests/fixtures/sd/sd1-lora/, for the tiny sd1 fixture.

Run by hand (CI needs no Python), after scripts/sd_fixtures.py:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers safetensors peft
    /tmp/venv/bin/python scripts/lora_fixtures.py

A LoRA made with PEFT for sd1's UNet (attention projections) and text encoder (q, k, v, out),
rank 4 with lora_alpha 8 (so alpha / rank matters), saved by diffusers' `save_lora_weights`
(PEFT naming), and the same LoRA in kohya naming (`lora_unet_..._to_q.lora_down.weight`,
`.lora_up.weight`, `.alpha`). `expected.safetensors` holds images diffusers makes from fixed
noise: without the LoRA, and with it loaded and fused at two scales; `expected.json` the runs.
The LoRA's weights are drawn large enough that it moves the picture far (a LoRA dropped, or its
alpha ignored, scores far below the parity bound).
"""

import json
import os
import shutil

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "sd")
RANK, ALPHA = 4, 8.0
RUNS = [("a red cat in space", 7.5, 3, 0.8), ("an astronaut riding a horse", 0.0, 2, 1.3)]


def main():
    torch.manual_seed(0)
    base = os.path.join(ROOT, "sd1")
    out = os.path.join(ROOT, "sd1-lora")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    unet_cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False,
                          target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    te_cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_cfg)
    pipe.text_encoder.add_adapter(te_cfg)
    with torch.no_grad():
        for name, p in list(pipe.unet.named_parameters()) + list(pipe.text_encoder.named_parameters()):
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    unet_sd = get_peft_model_state_dict(pipe.unet)
    te_sd = get_peft_model_state_dict(pipe.text_encoder)
    StableDiffusionPipeline.save_lora_weights(
        out, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd, weight_name="peft.safetensors",
        unet_lora_adapter_metadata=unet_cfg.to_dict(), text_encoder_lora_adapter_metadata=te_cfg.to_dict())

    # The same LoRA in kohya naming: module paths with underscores, alpha stored per module.
    kohya = {}
    # (kohya names the text encoder's modules from the CLIPTextModel, `text_model.` included.)
    for prefix, sd in (("lora_unet_", unet_sd), ("lora_te_text_model_", te_sd)):
        for key, value in sd.items():
            module, kind = key.rsplit(".lora_", 1)
            name = prefix + module.replace(".", "_")
            kohya[f"{name}.lora_down.weight" if kind == "A.weight" else f"{name}.lora_up.weight"] = value.contiguous()
            kohya[f"{name}.alpha"] = torch.tensor(ALPHA)
    save_file(kohya, os.path.join(out, "kohya.safetensors"))

    tensors, meta = {}, {"rank": RANK, "alpha": ALPHA, "runs": []}
    gen = torch.Generator().manual_seed(7)
    for i, (prompt, guidance, steps, scale) in enumerate(RUNS):
        noise = torch.randn(1, 4, 8, 8, generator=gen)
        save_file({"noise": noise.clone().contiguous()}, os.path.join(out, f"noise_{i}.safetensors"))
        images = {}
        for label, lora_scale in (("plain", None), ("lora", scale)):
            p = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
            p.scheduler = EulerDiscreteScheduler.from_config(p.scheduler.config)
            if lora_scale is not None:
                p.load_lora_weights(out, weight_name="peft.safetensors")
                p.fuse_lora(lora_scale=lora_scale)
            img = p(prompt, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                    latents=noise.clone(), output_type="np").images[0]
            images[label] = img
            tensors[f"run.{i}.{label}"] = torch.from_numpy(np.ascontiguousarray(img)).float()
        diff = float(np.abs(images["plain"] - images["lora"]).max())
        meta["runs"].append({"prompt": prompt, "guidance": guidance, "steps": steps, "scale": scale,
                             "width": 64, "height": 64, "plain_vs_lora_max_abs": diff})
        print(f"run {i}: the LoRA moves pixels by up to {diff:.3f}")
    save_file(tensors, os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("written:", sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out)), "bytes")


if __name__ == "__main__":
    main()
