//! `WanTransformer3DModel` against diffusers: the rotary table, the patch embedding, the
//! condition embedder, every block and the whole model (f32, max abs 1e-4), and Wan 2.1 1.3B's
//! published names and shapes.

use crate::common::{Expected, assert_close, cpu, devices, fixtures_root, values};
use burn::prelude::*;
use burn::tensor::DType;
use model::diffusers::common::weights::Weights;
use model::diffusers::wan::transformer_wan::{Rotary, WanTransformer3DModel, WanTransformerConfig};
use std::path::PathBuf;

pub const FIXTURES: [&str; 2] = ["wan1", "wan2"];

pub fn fixture(name: &str) -> PathBuf {
    fixtures_root().join("wan").join(name)
}

fn load(name: &str, device: &Device) -> WanTransformer3DModel {
    let dir = fixture(name).join("transformer");
    let config = WanTransformerConfig::read(&dir.join("config.json")).unwrap();
    let file = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap();
    let weights = Weights::open(&[file], device, DType::F32).unwrap();
    let model = WanTransformer3DModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));
    model
}

#[test]
fn transformer_blocks_and_whole_model_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let what = |part: &str| format!("{name} {part} on {label}");
            let exp = Expected::open(&fixture(name), &device);
            let model = load(name, &device);
            let x: Tensor<5> = exp.t("transformer.hidden_states");
            let [_, _, f, h, w] = x.dims();
            let grid = model.grid([f, h, w]).unwrap();

            // The rotary table: diffusers repeats each angle for the pair it rotates.
            let rotary = Rotary::new(&model.config, grid, &device);
            let half: Vec<f32> = exp.values("transformer.rope_cos").iter().step_by(2).copied().collect();
            assert_close(rotary.cos.clone(), &half, 1e-6, &what("rotary cos"));
            let half: Vec<f32> = exp.values("transformer.rope_sin").iter().skip(1).step_by(2).copied().collect();
            assert_close(rotary.sin.clone(), &half, 1e-6, &what("rotary sin"));

            // Patch embedding: diffusers' Conv3d output, flattened to tokens.
            let patches = model.patchify(exp.t("block.transformer.patch_embedding.in0"));
            let want: Tensor<5> = exp.t("block.transformer.patch_embedding.out");
            let [b, d, ..] = want.dims();
            let want = values(want.reshape([b, d, grid.iter().product()]).swap_dims(1, 2));
            assert_close(patches, &want, 1e-5, &what("patch embedding"));

            // Condition embedder.
            let timesteps = exp.values("transformer.timestep");
            let time = model.embed_time(&timesteps, &device);
            assert_close(time.temb.clone(), &exp.values("transformer.temb"), 1e-4, &what("time embedding"));
            assert_close(
                time.modulation.clone(),
                &exp.values("transformer.timestep_proj"),
                1e-4,
                &what("time projection"),
            );
            let text = model.embed_text(exp.t("transformer.encoder_hidden_states"));
            assert_close(text.clone(), &exp.values("transformer.text_embeds"), 1e-4, &what("text embedding"));

            // Every block on diffusers' own inputs.
            for (i, block) in model.blocks.iter().enumerate() {
                let key = |k: &str| format!("block.transformer.blocks.{i}.{k}");
                let out = block.forward(exp.t(&key("in0")), &exp.t(&key("in1")), &exp.t(&key("in2")), &rotary, None);
                assert_close(out, &exp.values(&key("out")), 1e-4, &what(&format!("block {i}")));
            }

            // The whole model.
            let out = model.forward(x, &timesteps, &text, &rotary, None);
            assert_close(out, &exp.values("transformer.out"), 1e-4, &what("whole transformer"));
        }
    }
}

/// Wan 2.1 T2V 1.3B's transformer (its published config; names and shapes from diffusers built
/// without weights) loads unchanged: every tensor the config implies is in the checkpoint with
/// its shape, and every tensor of the checkpoint is used.
#[test]
fn wan_1_3b_transformer_names_and_shapes_load_unchanged() {
    use std::collections::BTreeMap;
    let root = fixture("wan2.1-t2v-1.3b-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let weights = Weights::shapes_only(&root.join("transformer"), all["transformer"].clone(), &cpu());
    let config = WanTransformerConfig::read(&root.join("transformer/config.json")).unwrap();
    assert_eq!((config.inner_dim(), config.num_layers, config.ffn_dim), (1536, 30, 8960));
    WanTransformer3DModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));
    let count: usize = all["transformer"].values().map(|s| s.iter().product::<usize>()).sum();
    assert_eq!(count, 1_418_996_800);
}

#[test]
fn unsupported_transformer_configs_are_refused_by_name() {
    let dir = tempdir();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("wan1").join("transformer/config.json")).unwrap())
            .unwrap();
    // Image settings that do not fit together are named: image tokens without image keys (or
    // keys of another width), keys or positions without image tokens.
    for (key, value, needle) in [
        ("image_dim", serde_json::json!(1280), "added_kv_proj_dim"),
        ("added_kv_proj_dim", serde_json::json!(5120), "added_kv_proj_dim"),
        ("pos_embed_seq_len", serde_json::json!(514), "pos_embed_seq_len"),
        ("qk_norm", serde_json::json!("rms_norm"), "qk_norm"),
        ("attention_head_dim", serde_json::json!(5), "attention_head_dim"),
    ] {
        let mut c = base.clone();
        c[key] = value;
        let path = dir.join("config.json");
        std::fs::write(&path, c.to_string()).unwrap();
        let err = WanTransformerConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains(needle), "{key}: {err}");
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wan-transformer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
