#!/usr/bin/env python3
"""Tiny random CLIP fixtures for the Burn port of transformers' `CLIPModel` (visual search and
CLIP scores), made with transformers itself. Run from the repository root; not run in CI:

    pip install torch transformers diffusers safetensors   # diffusers: sd_fixtures' tokenizer helper
    python3 scripts/clip_fixtures.py

- clip1: a complete CLIPModel folder in the transformers layout (config.json, model.safetensors,
  vocab.json, merges.txt, tokenizer files), with `expected.safetensors`: token ids of a few
  prompts, their `text_embeds`, fixed `pixel_values` and their `image_embeds`, every text
  layer's hidden states, and `logits_per_image`.
- clip-vit-large-patch14-shapes: openai/clip-vit-large-patch14's published config and its
  parameter names and shapes (the model built on the meta device, no weights).
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, os.path.dirname(__file__))
from sd_fixtures import write_tokenizer  # noqa: E402  (the same small CLIP-format BPE vocabulary)

ROOT = os.path.join(os.path.dirname(__file__), "..", "model", "tests", "fixtures", "clip")
PROMPTS = ["a red ball", "snow at night over the ocean", "a purple star moving left, camera pans right"]


def clip1():
    folder = os.path.join(ROOT, "clip1")
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer, vocab_size = write_tokenizer(folder, "<|endoftext|>")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    # Random, not CLIP's small init, so every block's output matters.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
        model.logit_scale.fill_(2.6592)
    model.save_pretrained(folder, safe_serialization=True)
    ids = tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels, output_hidden_states=True)
        text = model.text_model(input_ids=ids, output_hidden_states=True)
    with torch.no_grad():
        text_features = model.get_text_features(input_ids=ids).pooler_output
        image_features = model.get_image_features(pixel_values=pixels).pooler_output
    tensors = {
        "ids": ids.to(torch.int32),
        "pixel_values": pixels,
        "text_embeds": out.text_embeds,  # normalised, as CLIPModel returns them
        "image_embeds": out.image_embeds,
        # The projections before normalisation (`pooler_output` of get_*_features).
        "text_features": text_features,
        "image_features": image_features,
        "logits_per_image": out.logits_per_image,
        "text_last_hidden_state": text.last_hidden_state,
    }
    for i, h in enumerate(text.hidden_states):
        tensors[f"text_hidden_states.{i}"] = h
    save_file({k: v.contiguous().float() if v.is_floating_point() else v.contiguous() for k, v in tensors.items()},
              os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"prompts": PROMPTS}, f, indent=1)
    print("clip1:", sum(p.numel() for p in model.parameters()), "parameters")


# openai/clip-vit-large-patch14's config.json, transcribed (the parts that shape the model).
VIT_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=768),
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="quick_gelu", projection_dim=768),
    projection_dim=768,
    logit_scale_init_value=2.6592,
    model_type="clip",
    architectures=["CLIPModel"],
)


def vit_l14_shapes():
    folder = os.path.join(ROOT, "clip-vit-large-patch14-shapes")
    os.makedirs(folder, exist_ok=True)
    with torch.device("meta"):
        model = CLIPModel(CLIPConfig(**{k: v for k, v in VIT_L14.items() if k not in ("model_type", "architectures")}))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(VIT_L14, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("clip-vit-large-patch14:", len(shapes), "tensors")


if __name__ == "__main__":
    clip1()
    vit_l14_shapes()
