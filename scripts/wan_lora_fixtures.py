#!/usr/bin/env python3
"""Builds the Wan LoRA parity fixture under model/tests/fixtures/wan/wan1-lora/, for the tiny wan1 fixture.

Run by hand (CI needs no Python), after scripts/wan_fixtures.py:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers transformers safetensors peft
    /tmp/venv/bin/python scripts/wan_lora_fixtures.py

A LoRA made with PEFT for wan1's transformer (every attention projection and the feed-forward),
rank 4 with lora_alpha 8, saved by diffusers' `save_lora_weights` (diffusers naming), and the same
LoRA in the original Wan naming that ComfyUI's Wan LoRAs (Lightning, lightx2v) ship in
(`diffusion_model.blocks.0.self_attn.q.lora_down.weight`, `...lora_up.weight`, `...alpha`).
`comfyui-diff.safetensors` adds the full differences lightx2v's files carry (`.diff_b`, the head's
`.diff`, a norm's and a block weight's `.diff`). `expected.safetensors` holds the frames diffusers
makes from wan1's first run's noise, without a LoRA and with each loaded and fused at 0.9.
"""

import json
import os
import shutil

import numpy as np
import torch
from diffusers import WanPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "wan")
RANK, ALPHA, SCALE = 4, 8.0, 0.9
# diffusers' Wan module names -> the original ones (the inverse of diffusers'
# `_convert_non_diffusers_wan_lora_to_diffusers`).
TO_ORIGINAL = [(".attn1.to_q", ".self_attn.q"), (".attn1.to_k", ".self_attn.k"), (".attn1.to_v", ".self_attn.v"),
               (".attn1.to_out.0", ".self_attn.o"), (".attn2.to_q", ".cross_attn.q"), (".attn2.to_k", ".cross_attn.k"),
               (".attn2.to_v", ".cross_attn.v"), (".attn2.to_out.0", ".cross_attn.o"), (".ffn.net.0.proj", ".ffn.0"),
               (".ffn.net.2", ".ffn.2")]


def main():
    torch.manual_seed(0)
    base = os.path.join(ROOT, "wan1")
    out = os.path.join(ROOT, "wan1-lora")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    meta_base = json.load(open(os.path.join(base, "expected.json")))
    run = meta_base["pipelines"][0]
    noise = load_file(os.path.join(base, run["noise"]))["noise"]

    pipe = WanPipeline.from_pretrained(base)
    cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False,
                     target_modules=["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"])
    pipe.transformer.add_adapter(cfg)
    with torch.no_grad():
        for name, p in pipe.transformer.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    sd = get_peft_model_state_dict(pipe.transformer)
    WanPipeline.save_lora_weights(out, transformer_lora_layers=sd, weight_name="diffusers.safetensors",
                                  transformer_lora_adapter_metadata=cfg.to_dict())
    original = {}
    for key, value in sd.items():
        module, kind = key.rsplit(".lora_", 1)
        for new, old in TO_ORIGINAL:
            if module.endswith(new):
                module = module[: -len(new)] + old
                break
        else:
            raise SystemExit(f"no original name for {module}")
        name = "diffusion_model." + module
        original[f"{name}.lora_down.weight" if kind == "A.weight" else f"{name}.lora_up.weight"] = value.contiguous()
        original[f"{name}.alpha"] = torch.tensor(ALPHA)
    save_file(original, os.path.join(out, "comfyui.safetensors"))
    # The same with the full differences the lightx2v / Lightning files carry: `diff_b` bias
    # differences of every LoRA'd module and of the output head, the head's weight difference
    # (`head.head.diff`), a norm's difference and a block weight's difference (both of which
    # diffusers leaves out).
    g = torch.Generator().manual_seed(3)
    with_diffs = dict(original)
    for key in original:
        if key.endswith(".lora_up.weight"):
            module = key[: -len(".lora_up.weight")]
            with_diffs[f"{module}.diff_b"] = torch.randn(original[key].shape[0], generator=g) * 0.2
    head = pipe.transformer.proj_out
    with_diffs["diffusion_model.head.head.diff"] = torch.randn(head.weight.shape, generator=g) * 0.2
    with_diffs["diffusion_model.head.head.diff_b"] = torch.randn(head.bias.shape, generator=g) * 0.2
    with_diffs["diffusion_model.blocks.0.norm3.diff"] = torch.randn(pipe.transformer.blocks[0].norm2.weight.shape,
                                                                    generator=g)
    with_diffs["diffusion_model.blocks.0.self_attn.q.diff"] = torch.randn(
        pipe.transformer.blocks[0].attn1.to_q.weight.shape, generator=g)
    save_file({k: v.contiguous() for k, v in with_diffs.items()}, os.path.join(out, "comfyui-diff.safetensors"))

    tensors = {}
    for label, file in (("plain", None), ("lora", "diffusers.safetensors"), ("lora_diff", "comfyui-diff.safetensors")):
        p = WanPipeline.from_pretrained(base)
        if file is not None:
            p.load_lora_weights(out, weight_name=file)
            p.fuse_lora(lora_scale=SCALE)
        video = p(prompt=run["prompt"], negative_prompt=run["negative"], height=run["height"], width=run["width"],
                  num_frames=run["frames"], num_inference_steps=run["steps"], guidance_scale=run["guidance"],
                  latents=noise.clone(), output_type="np").frames[0]
        tensors[f"run.0.{label}"] = torch.from_numpy(np.ascontiguousarray(video)).float()
    diff = float((tensors["run.0.plain"] - tensors["run.0.lora"]).abs().max())
    print("the differences move pixels by up to",
          float((tensors["run.0.lora_diff"] - tensors["run.0.lora"]).abs().max()))
    print(f"the LoRA moves pixels by up to {diff:.3f}")
    save_file(tensors, os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"rank": RANK, "alpha": ALPHA, "scale": SCALE, "run": run, "plain_vs_lora_max_abs": diff}, f, indent=1)
    print("written:", sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out)), "bytes")


if __name__ == "__main__":
    main()
