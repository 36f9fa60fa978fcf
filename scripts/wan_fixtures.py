#!/usr/bin/env python3
"""Builds the tiny Wan 2.1 text-to-video parity fixtures under model/tests/fixtures/wan/.

Run by hand (CI needs no Python):

    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install torch diffusers transformers tokenizers sentencepiece safetensors numpy
    /tmp/venv/bin/python scripts/wan_fixtures.py

Every configuration is a complete diffusers `WanPipeline` folder (model_index.json, tokenizer/,
text_encoder/, transformer/, vae/, scheduler/) with random weights, plus `expected.safetensors`
and `expected.json`:

- the tokenizer: a SentencePiece unigram model trained here on a few sentences with the
  `nmt_nfkc` normaliser and converted to `tokenizer.json` by transformers, as umt5-xxl's was
  (Precompiled normaliser, Metaspace, `</s>` appended); `expected.json` lists texts and the ids
  transformers gives them;
- the text encoder (`UMT5EncoderModel`): ids, the hidden state entering every layer and the
  output;
- the transformer (`WanTransformer3DModel`): inputs and outputs of the rotary table, the patch
  embedding, the condition embedder, every block and the whole model;
- the VAE (`AutoencoderKLWan`): a 9-frame encode (three chunks: 1, 4, 4 frames) and a 3-latent-
  frame decode, and every call of a few blocks across those chunks (`callN`);
- the schedulers (`UniPCMultistepScheduler` in its flow setting, `FlowMatchEulerDiscreteScheduler`):
  timesteps and sigmas for several step counts, and whole step sequences on fixed model outputs;
- whole pipeline runs from fixed noise (`noise_N.safetensors`, as `vidplay generate --noise`
  reads it), frames as numpy `[F, H, W, 3]` in [0, 1].

`wan2.1-t2v-1.3b-shapes/` holds Wan-AI/Wan2.1-T2V-1.3B-Diffusers' component configs and the
tensor names and shapes diffusers and transformers give them (built on the meta device).
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanPipeline,
                       WanTransformer3DModel)
from safetensors.torch import save_file
from transformers import UMT5Config, UMT5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd_fixtures import hooked  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "tests", "fixtures", "wan")

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers' scheduler/scheduler_config.json.
UNIPC = dict(beta_end=0.02, beta_schedule="linear", beta_start=0.0001, disable_corrector=[],
             dynamic_thresholding_ratio=0.995, final_sigmas_type="zero", flow_shift=3.0, lower_order_final=True,
             num_train_timesteps=1000, predict_x0=True, prediction_type="flow_prediction",
             rescale_betas_zero_snr=False, sample_max_value=1.0, solver_order=2, solver_p=None, solver_type="bh2",
             steps_offset=0, thresholding=False, timestep_spacing="linspace", trained_betas=None,
             use_beta_sigmas=False, use_exponential_sigmas=False, use_flow_sigmas=True, use_karras_sigmas=False)
# diffusers' own Wan tests use this one.
EULER = dict(num_train_timesteps=1000, shift=7.0)

CORPUS = [
    "a red ball bounces across a wooden table",
    "a cat walks through the snow at night",
    "the camera pans slowly over a green valley with a river",
    "two dogs run on the beach while waves crash",
    "a fireman sprays water on a burning house",
    "rain falls on a city street, neon lights glow",
    "Ein Hund läuft über die Wiese",
    "un chat noir dort sur le canapé",
    "日本の桜の木の下で猫が眠る",
    "a timelapse of clouds moving over mountains",
    "close-up of a flower opening, 4k, cinematic",
]

TOKENIZER_TEXTS = [
    "a red ball bounces across a wooden table",
    "  Two   dogs\trun on the BEACH!  ",
    "ｆｕｌｌｗｉｄｔｈ letters and ①②③ numbers",
    "日本の桜 and émigré café",
    "zqxv unknown wordzz 🙂",
    "",
]

CONFIGS = {
    # diffusers' test shapes (the Wan tests' transformer and VAE), the published UniPC scheduler,
    # a non-square size, f32 files.
    "wan1": dict(
        text=dict(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, relative_attention_num_buckets=8,
                  relative_attention_max_distance=16),
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                         out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                         qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
        vae=dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                 temperal_downsample=[False, True, True]),
        scheduler=("UniPCMultistepScheduler", UNIPC),
        normalization="nmt_nfkc",
        fp16_variant=False,
        runs=[dict(prompt="a red ball bounces across a wooden table", negative="blurry, static", frames=9,
                   width=48, height=32, steps=3, guidance=5.0),
              dict(prompt="rain falls on a city street", negative="", frames=5, width=32, height=32, steps=2,
                   guidance=1.0)],
    ),
    # Three layers without the cross-attention norm, a larger head, a VAE with two residual blocks
    # per level, the attention-free middle shared by all, FlowMatchEuler with a shift, fp16 files.
    "wan2": dict(
        text=dict(d_model=48, d_ff=64, d_kv=12, num_heads=3, num_layers=3, relative_attention_num_buckets=16,
                  relative_attention_max_distance=20),
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=16,
                         out_channels=16, text_dim=48, freq_dim=64, ffn_dim=48, num_layers=3, cross_attn_norm=False,
                         qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
        vae=dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=2,
                 temperal_downsample=[False, True, True]),
        scheduler=("FlowMatchEulerDiscreteScheduler", EULER),
        normalization="identity",
        fp16_variant=True,
        runs=[dict(prompt="the camera pans slowly over a green valley", negative="", frames=5, width=32,
                   height=48, steps=3, guidance=4.0)],
    ),
}


def write_tokenizer(folder, normalization):
    """A SentencePiece unigram vocabulary trained on a few sentences, converted to tokenizer.json
    the way transformers converts umt5-xxl's (the normaliser's compiled character map, Metaspace,
    `</s>` appended, extra ids)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2
    from transformers import T5Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("\n".join(CORPUS * 3))
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "spiece"), vocab_size=100,
                                       hard_vocab_limit=False, model_type="unigram",
                                       normalization_rule_name=normalization, pad_id=0, eos_id=1, unk_id=2,
                                       bos_id=-1, character_coverage=1.0, minloglevel=2)
        proto = sentencepiece_model_pb2.ModelProto()
        with open(os.path.join(tmp, "spiece.model"), "rb") as f:
            proto.ParseFromString(f.read())
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = T5Tokenizer(vocab=vocab, _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap or None,
                      extra_ids=4)
    tok.save_pretrained(folder)
    return T5Tokenizer.from_pretrained(folder)


def perturb(*modules):
    """Random init leaves norms at one and some biases at zero: perturb everything so a wrong
    mapping of any tensor shows."""
    with torch.no_grad():
        for m in modules:
            for _, p in m.named_parameters():
                p.add_(torch.randn_like(p) * 0.05)


def record_calls(module, names, store):
    """Records (inputs, output) of every call of the named submodules (the VAE runs its blocks
    once per chunk)."""
    handles = []
    for name in names:
        sub = module.get_submodule(name)

        def hook(mod, args, out, name=name):
            calls = store.setdefault(name, [])
            rec = {f"in{i}": a for i, a in enumerate(args) if torch.is_tensor(a)}
            rec["out"] = out[0] if isinstance(out, tuple) else out
            calls.append(rec)

        handles.append(sub.register_forward_hook(hook))
    return handles


def scheduler_tables(cls, config, tensors, meta, gen, shape):
    """Timesteps and sigmas for several step counts, and a whole step sequence each on fixed
    model outputs."""
    for steps in [1, 2, 3, 5, 10, 50]:
        s = cls.from_config(config)
        s.set_timesteps(steps)
        i = len(meta["schedulers"])
        tensors[f"scheduler.{i}.timesteps"] = s.timesteps.to(torch.float32)
        tensors[f"scheduler.{i}.sigmas"] = s.sigmas.to(torch.float32)
        sample = torch.randn(shape, generator=gen)
        tensors[f"scheduler.{i}.sample"] = sample.clone()
        outputs, samples = [], []
        for t in s.timesteps:
            out = torch.randn(shape, generator=gen)
            sample = s.step(out, t, sample, return_dict=False)[0]
            outputs.append(out)
            samples.append(sample)
        tensors[f"scheduler.{i}.model_outputs"] = torch.stack(outputs)
        tensors[f"scheduler.{i}.samples"] = torch.stack(samples)
        meta["schedulers"].append({"class": cls.__name__, "config": config, "steps": steps})


def build(name, cfg):
    torch.manual_seed({"wan1": 21, "wan2": 22}[name])
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    tokenizer = write_tokenizer(os.path.join(folder, "tokenizer"), cfg["normalization"])
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), feed_forward_proj="gated-gelu",
                                               dense_act_fn="gelu_new", is_gated_act=True, dropout_rate=0.0,
                                               tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                                               **cfg["text"])).eval()
    transformer = WanTransformer3DModel(**cfg["transformer"]).eval()
    vae = AutoencoderKLWan(**cfg["vae"]).eval()
    perturb(text_encoder, transformer, vae)
    sched_cls, sched_cfg = cfg["scheduler"]
    scheduler = {"UniPCMultistepScheduler": UniPCMultistepScheduler,
                 "FlowMatchEulerDiscreteScheduler": FlowMatchEulerDiscreteScheduler}[sched_cls].from_config(sched_cfg)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae,
                       scheduler=scheduler)
    tokenizer_folder_files = {n: open(os.path.join(folder, "tokenizer", n), "rb").read()
                              for n in os.listdir(os.path.join(folder, "tokenizer"))}
    if cfg["fp16_variant"]:
        # Buffers (the rotary table) are not saved and diffusers keeps them in f32 on loading:
        # keep their f32 values through the round trip.
        buffers = {(id(m), n): b.clone() for m in (text_encoder, transformer, vae) for n, b in m.named_buffers()}
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")
        pipe.to(torch.float32)
        for m in (text_encoder, transformer, vae):
            for n, b in m.named_buffers():
                b.copy_(buffers[(id(m), n)])
        # The reference runs on the weights exactly as stored.
        for m in (text_encoder, transformer, vae):
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(p.half().float())
    else:
        pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained rewrites the tokenizer folder; keep the fast tokenizer files only.
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    os.makedirs(os.path.join(folder, "tokenizer"))
    for n, data in tokenizer_folder_files.items():
        with open(os.path.join(folder, "tokenizer", n), "wb") as f:
            f.write(data)

    tensors, meta = {}, {"tokenizer": [], "blocks": {}, "calls": {}, "schedulers": [], "pipelines": []}
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        # Tokenizer and text encoder.
        for text in TOKENIZER_TEXTS:
            enc = tokenizer(text, add_special_tokens=True)
            meta["tokenizer"].append({"text": text, "ids": enc.input_ids})
        long_text = " ".join(CORPUS * 8)
        enc = tokenizer(long_text, padding="max_length", max_length=512, truncation=True, add_special_tokens=True)
        meta["tokenizer"].append({"text": long_text, "max_length": 512, "ids": enc.input_ids,
                                  "attention_mask": enc.attention_mask})
        ids = torch.tensor([tokenizer(CORPUS[0]).input_ids])
        out = text_encoder(ids, output_hidden_states=True)
        tensors["text_encoder.input_ids"] = ids
        tensors["text_encoder.out"] = out.last_hidden_state
        for i, h in enumerate(out.hidden_states):
            tensors[f"text_encoder.hidden.{i}"] = h
        # With padding to the pipeline's length and the mask, as the pipeline runs it.
        enc = tokenizer(CORPUS[2], padding="max_length", max_length=64, truncation=True, return_tensors="pt")
        tensors["text_encoder.padded_ids"] = enc.input_ids
        tensors["text_encoder.padded_mask"] = enc.attention_mask
        tensors["text_encoder.padded_out"] = text_encoder(enc.input_ids, enc.attention_mask).last_hidden_state

        # Transformer, with hooks on every part.
        store = {}
        tcfg = cfg["transformer"]
        blocks = ["patch_embedding", "condition_embedder", "proj_out"] + \
            [f"blocks.{i}" for i in range(tcfg["num_layers"])]
        hs = hooked(transformer, blocks, store, "")
        sample = torch.randn(2, tcfg["in_channels"], 3, 6, 8, generator=gen)
        t = torch.tensor([999.0, 412.5])
        ehs = torch.randn(2, 20, tcfg["text_dim"], generator=gen)
        out = transformer(sample, t, encoder_hidden_states=ehs).sample
        for h in hs:
            h.remove()
        cos, sin = transformer.rope(sample)
        tensors.update({"transformer.hidden_states": sample, "transformer.timestep": t,
                        "transformer.encoder_hidden_states": ehs, "transformer.out": out,
                        "transformer.rope_cos": cos, "transformer.rope_sin": sin})
        temb, tproj, text, _ = transformer.condition_embedder(t, ehs)
        tensors.update({"transformer.temb": temb, "transformer.timestep_proj": tproj,
                        "transformer.text_embeds": text})
        for bname, rec in store.items():
            if bname == "condition_embedder":
                continue
            meta["blocks"][f"transformer.{bname}"] = sorted(rec)
            for k, v in rec.items():
                tensors[f"block.transformer.{bname}.{k}"] = v

        # VAE: encode 9 frames (chunks of 1, 4, 4), decode 3 latent frames (one at a time).
        calls = {}
        n_down = len(cfg["vae"]["dim_mult"])
        vblocks = ["encoder.conv_in", "encoder.down_blocks.0", f"encoder.down_blocks.{n_down - 1}", "encoder.mid_block",
                   "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.0", f"decoder.up_blocks.{n_down - 1}",
                   "decoder.conv_out", "quant_conv", "post_quant_conv"]
        # Resampling blocks with a time stride, found by name (they differ per config).
        for mname, m in vae.named_modules():
            if type(m).__name__ == "WanResample" and getattr(m, "mode", "").endswith("3d"):
                vblocks.append(mname)
        hs = record_calls(vae, vblocks, calls)
        video = torch.rand(1, 3, 9, 16, 24, generator=gen) * 2 - 1
        dist = vae.encode(video).latent_dist
        enc_calls = {k: len(v) for k, v in calls.items()}
        latent = torch.randn(1, cfg["vae"]["z_dim"], 3, 2, 3, generator=gen)
        decoded = vae.decode(latent).sample
        for h in hs:
            h.remove()
        tensors.update({"vae.video": video, "vae.mean": dist.mean, "vae.logvar": dist.logvar,
                        "vae.latent": latent, "vae.decoded": decoded})
        for bname, recs in calls.items():
            meta["calls"][f"vae.{bname}"] = {"count": len(recs), "encode_calls": enc_calls.get(bname, 0),
                                             "keys": sorted(recs[0])}
            for j, rec in enumerate(recs):
                for k, v in rec.items():
                    tensors[f"call.vae.{bname}.call{j}.{k}"] = v

        # Schedulers.
        scheduler_tables(UniPCMultistepScheduler, UNIPC, tensors, meta, gen, (1, 4, 2, 3, 3))
        scheduler_tables(FlowMatchEulerDiscreteScheduler, EULER, tensors, meta, gen, (1, 4, 2, 3, 3))
        scheduler_tables(FlowMatchEulerDiscreteScheduler, dict(num_train_timesteps=1000, shift=3.0,
                                                               use_dynamic_shifting=False), tensors, meta, gen,
                         (1, 4, 2, 3, 3))

        # Whole pipeline runs.
        for i, run in enumerate(cfg["runs"]):
            latent_frames = (run["frames"] - 1) // 4 + 1
            noise = torch.randn(1, tcfg["in_channels"], latent_frames, run["height"] // 8, run["width"] // 8,
                                generator=gen)
            video = pipe(prompt=run["prompt"], negative_prompt=run["negative"], height=run["height"],
                         width=run["width"], num_frames=run["frames"], num_inference_steps=run["steps"],
                         guidance_scale=run["guidance"], latents=noise.clone(), output_type="np").frames[0]
            tensors[f"pipeline.{i}.noise"] = noise
            tensors[f"pipeline.{i}.frames"] = torch.from_numpy(np.ascontiguousarray(video))
            save_file({"noise": noise.clone().contiguous()}, os.path.join(folder, f"noise_{i}.safetensors"))
            meta["pipelines"].append(dict(run, noise=f"noise_{i}.safetensors"))

    tensors = {k: v.detach().clone().contiguous().float() if v.is_floating_point() else v.detach().clone().contiguous()
               for k, v in tensors.items()}
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(folder) for x in xs),
          "bytes")


# Wan-AI/Wan2.1-T2V-1.3B-Diffusers' component configs, transcribed.
WAN_1_3B = {
    "transformer": dict(_class_name="WanTransformer3DModel", added_kv_proj_dim=None, attention_head_dim=128,
                        cross_attn_norm=True, eps=1e-06, ffn_dim=8960, freq_dim=256, image_dim=None, in_channels=16,
                        num_attention_heads=12, num_layers=30, out_channels=16, patch_size=[1, 2, 2],
                        qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, text_dim=4096),
    "vae": dict(_class_name="AutoencoderKLWan", attn_scales=[], base_dim=96, dim_mult=[1, 2, 4, 4], dropout=0.0,
                latents_mean=[-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
                              0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
                latents_std=[2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
                             1.5579, 1.6382, 1.1253, 2.8251, 1.916],
                num_res_blocks=2, temperal_downsample=[False, True, True], z_dim=16),
    "text_encoder": dict(architectures=["UMT5EncoderModel"], classifier_dropout=0.0, d_ff=10240, d_kv=64, d_model=4096,
                         decoder_start_token_id=0, dense_act_fn="gelu_new", dropout_rate=0.1, eos_token_id=1,
                         feed_forward_proj="gated-gelu", initializer_factor=1.0, is_encoder_decoder=True,
                         is_gated_act=True, layer_norm_epsilon=1e-06, model_type="umt5", num_decoder_layers=24,
                         num_heads=64, num_layers=24, output_past=True, pad_token_id=0,
                         relative_attention_max_distance=128, relative_attention_num_buckets=32,
                         scalable_attention=True, tie_word_embeddings=False, use_cache=True, vocab_size=256384),
}


def wan_shapes():
    folder = os.path.join(ROOT, "wan2.1-t2v-1.3b-shapes")
    os.makedirs(folder, exist_ok=True)
    shapes = {}
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    with torch.device("meta"):
        transformer = WanTransformer3DModel(**strip(WAN_1_3B["transformer"]))
        vae = AutoencoderKLWan(**strip(WAN_1_3B["vae"]))
        text = UMT5EncoderModel(UMT5Config(**WAN_1_3B["text_encoder"]))
    for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", text)):
        shapes[name] = {k: list(v.shape) for k, v in m.state_dict().items()}
    for name, cfg in WAN_1_3B.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f)
    print("wan 1.3b shapes:", {k: len(v) for k, v in shapes.items()},
          "parameters:", {k: sum(int(np.prod(s)) for s in v.values()) for k, v in shapes.items()})


if __name__ == "__main__":
    for n in (sys.argv[1:] or list(CONFIGS) + ["wan2.1-t2v-1.3b-shapes"]):
        if n == "wan2.1-t2v-1.3b-shapes":
            wan_shapes()
        else:
            build(n, CONFIGS[n])
