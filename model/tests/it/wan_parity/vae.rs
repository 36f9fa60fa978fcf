//! `AutoencoderKLWan` against diffusers: whole chunked encodes and decodes, every recorded
//! block call by call across chunk boundaries (one feature cache carried through, as diffusers
//! runs them), Wan 2.1 1.3B's VAE names and shapes, and configs this port refuses.

use crate::common::{Expected, assert_close, cpu, devices, fixtures_root, meta};
use burn::prelude::*;
use burn::tensor::DType;
use model::diffusers::common::folder::{ModelFolder, Precision};
use model::diffusers::common::weights::{LoadError, Weights};
use model::diffusers::wan::autoencoder_kl_wan::{AutoencoderKLWan, FeatCache, ResampleMode, WanVaeConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["wan1", "wan2"];
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    fixtures_root().join("wan").join(name)
}

/// The fixture's VAE in f32 (wan2 stores fp16 values; diffusers ran them upcast to f32), with
/// every tensor of the file used.
fn load_vae(name: &str, device: &Device) -> AutoencoderKLWan {
    let folder = ModelFolder::open(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    let files = folder.weights("vae", "diffusion_pytorch_model", Precision::F32).unwrap_or_else(|e| panic!("{e}"));
    let weights = Weights::open(&files, device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
    let config = WanVaeConfig::read(&fixture(name).join("vae/config.json")).unwrap_or_else(|e| panic!("{e}"));
    let vae = AutoencoderKLWan::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));
    vae
}

#[test]
fn vae_encode_and_decode_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let what = |s: &str| format!("{name} on {label}: {s}");
            let vae = load_vae(name, &device);
            let exp = Expected::open(&fixture(name), &device);

            // 9 frames: chunks of 1, 4 and 4 frames, one latent frame each.
            let (mean, logvar) = vae.encode(exp.t::<5>("vae.video"));
            assert_eq!(mean.dims(), [1, 16, 3, 2, 3], "{}", what("mean shape"));
            let d_mean = assert_close(mean, &exp.values("vae.mean"), TOL, &what("encode mean"));
            let d_logvar = assert_close(logvar, &exp.values("vae.logvar"), TOL, &what("encode logvar"));

            // 3 latent frames: 1 + 4 + 4 frames.
            let latent = exp.t::<5>("vae.latent");
            let decoded = vae.decode(latent.clone());
            assert_eq!(decoded.dims(), [1, 3, 9, 16, 24], "{}", what("decoded shape"));
            let want = exp.values("vae.decoded");
            let d_decoded = assert_close(decoded, &want, TOL, &what("decode"));
            eprintln!("{}", what(&format!("max abs: mean {d_mean:e}, logvar {d_logvar:e}, decoded {d_decoded:e}")));

            // The streaming decode hands over the same frames, one latent frame's worth at a time.
            let mut pieces = Vec::new();
            vae.decode_each(latent, |frames| pieces.push(frames));
            assert_eq!(
                pieces.iter().map(|p| p.dims()[2]).collect::<Vec<_>>(),
                [1, 4, 4],
                "{}",
                what("frames per latent frame")
            );
            assert_close(Tensor::cat(pieces, 2), &want, TOL, &what("decode_each"));
        }
    }
}

/// In f16 the convolutions and attention run in half precision (the norms in f32) and stay
/// close to diffusers' f32 results.
#[test]
fn vae_in_f16_stays_close() {
    for (label, device) in devices() {
        let name = "wan2";
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let weights = Weights::open(
            &folder.weights("vae", "diffusion_pytorch_model", Precision::F16).unwrap(),
            &device,
            DType::F16,
        )
        .unwrap();
        let config = WanVaeConfig::read(&fixture(name).join("vae/config.json")).unwrap();
        let vae = AutoencoderKLWan::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
        let exp = Expected::open(&fixture(name), &device);
        let (mean, _) = vae.encode(exp.t::<5>("vae.video"));
        assert_eq!(mean.dtype(), DType::F16);
        let d_mean = assert_close(mean, &exp.values("vae.mean"), 2e-2, &format!("{name} on {label}: f16 encode"));
        let decoded = vae.decode(exp.t::<5>("vae.latent"));
        let d_decoded =
            assert_close(decoded, &exp.values("vae.decoded"), 2e-2, &format!("{name} on {label}: f16 decode"));
        eprintln!("{name} on {label}: f16 max abs: mean {d_mean:e}, decoded {d_decoded:e}");
    }
}

/// Runs the block diffusers names `name` on one chunk.
fn run_block(vae: &AutoencoderKLWan, name: &str, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
    let parts: Vec<&str> = name.split('.').collect();
    let index = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("{name}: index {s}"));
    match parts.as_slice() {
        ["encoder", "conv_in"] => vae.encoder.conv_in.forward_cached(x, cache),
        ["encoder", "down_blocks", i] => vae.encoder.down_blocks[index(i)].forward(x, cache),
        ["encoder", "mid_block"] => vae.encoder.mid_block.forward(x, cache),
        ["encoder", "conv_out"] => vae.encoder.conv_out.forward_cached(x, cache),
        // diffusers runs both 1x1x1 convolutions once on the whole latent, without a cache.
        ["quant_conv"] => vae.quant_conv.forward(x, None),
        ["post_quant_conv"] => vae.post_quant_conv.forward(x, None),
        ["decoder", "conv_in"] => vae.decoder.conv_in.forward_cached(x, cache),
        ["decoder", "mid_block"] => vae.decoder.mid_block.forward(x, cache),
        ["decoder", "up_blocks", i] => vae.decoder.up_blocks[index(i)].forward(x, cache),
        ["decoder", "up_blocks", i, "upsamplers", "0"] => {
            let upsampler =
                vae.decoder.up_blocks[index(i)].upsampler.as_ref().unwrap_or_else(|| panic!("{name}: no upsampler"));
            // The fixtures hook the time-upsampling resamples only.
            assert_eq!(upsampler.mode(), ResampleMode::Upsample3d, "{name}");
            upsampler.forward(x, cache)
        }
        ["decoder", "conv_out"] => vae.decoder.conv_out.forward_cached(x, cache),
        _ => panic!("no entry point for {name}"),
    }
}

/// Every recorded block on diffusers' inputs, call after call with one cache (rewound before
/// each chunk): the first call runs without history, later ones read what earlier ones left.
#[test]
fn vae_blocks_match_diffusers_across_chunks() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let vae = load_vae(name, &device);
            let exp = Expected::open(&fixture(name), &device);
            let m = meta(&fixture(name));
            let calls = m["calls"].as_object().expect("calls");
            assert!(calls.len() >= 14, "{name}: {} recorded blocks", calls.len());
            for (key, info) in calls {
                let block = key.strip_prefix("vae.").expect("vae blocks");
                let count = info["count"].as_u64().unwrap() as usize;
                // Encode and decode both run three chunks; the quant convolutions run once. A
                // module hooked under two names (wan1's last down block is also a
                // time-downsampling resample) recorded each call twice.
                let chunks = if block.ends_with("quant_conv") { 1 } else { 3 };
                assert_eq!(count % chunks, 0, "{name}: {block}: {count} records");
                let mut cache = FeatCache::new();
                let mut worst = 0f32;
                for j in (0..count).step_by(count / chunks) {
                    cache.next_chunk();
                    let prefix = format!("call.vae.{block}.call{j}");
                    let out = run_block(&vae, block, exp.t::<5>(&format!("{prefix}.in0")), &mut cache);
                    let want = exp.t::<5>(&format!("{prefix}.out"));
                    assert_eq!(out.dims(), want.dims(), "{name} on {label}: {block} call {j} shape");
                    let d = assert_close(
                        out,
                        &exp.values(&format!("{prefix}.out")),
                        TOL,
                        &format!("{name} on {label}: {block} call {j}"),
                    );
                    worst = worst.max(d);
                }
                eprintln!("{name} on {label}: {block}: {chunks} calls, max abs {worst:e}");
            }
        }
    }
}

#[test]
fn wan21_vae_names_and_shapes_load_unchanged() {
    let root = fixtures_root().join("wan/wan2.1-t2v-1.3b-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let shapes = all["vae"].clone();
    assert_eq!(shapes.values().map(|s| s.iter().product::<usize>()).sum::<usize>(), 126_892_531);
    let device = cpu();

    let config = WanVaeConfig::read(&root.join("vae/config.json")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.scale_factor_temporal(), config.scale_factor_spatial()), (4, 8));
    assert_eq!((config.latents_mean.len(), config.latents_std.len()), (16, 16));
    let weights = Weights::shapes_only(&root.join("vae"), shapes.clone(), &device);
    AutoencoderKLWan::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));

    // A wider last level is caught by shape, naming the first tensor that differs.
    let mut wider = config.clone();
    wider.dim_mult = vec![1, 2, 4, 8];
    let weights = Weights::shapes_only(&root.join("vae"), shapes, &device);
    let e = AutoencoderKLWan::load(&weights.root(), &wider).expect_err("a wider level must not fit");
    assert!(matches!(e, LoadError::Shape { ref key, .. } if key.starts_with("encoder.down_blocks.")), "{e}");
}

/// Writes a config.json with `edit` applied to wan1's and reads it.
fn read_edited(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Result<WanVaeConfig, LoadError> {
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("wan1").join("vae/config.json")).unwrap()).unwrap();
    edit(&mut raw);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string(&raw).unwrap()).unwrap();
    WanVaeConfig::read(&path)
}

#[test]
fn bad_vae_configs_give_load_errors() {
    use serde_json::json;
    let dir = std::env::temp_dir().join(format!("vidplay-wan-vae-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 9] = [
        ("latents_mean", |c| c["latents_mean"].as_array_mut().unwrap().truncate(15)),
        ("latents_std", |c| c["latents_std"].as_array_mut().unwrap().push(json!(1.0))),
        ("is_residual", |c| c["is_residual"] = json!(true)),
        ("attn_scales", |c| c["attn_scales"] = json!([0.5])),
        ("patch_size", |c| c["patch_size"] = json!(2)),
        ("temperal_downsample", |c| c["temperal_downsample"] = json!([true, true])),
        ("dim_mult", |c| c["dim_mult"] = json!([])),
        ("scale_factor_temporal", |c| c["scale_factor_temporal"] = json!(8)),
        ("scale_factor_spatial", |c| c["scale_factor_spatial"] = json!(16)),
    ];
    for (key, edit) in cases {
        match read_edited(&dir, edit) {
            Err(LoadError::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: expected a config error, got {other:?}"),
        }
    }
    // A value of the wrong type is a parse error naming the file.
    match read_edited(&dir, |c| c["z_dim"] = json!("sixteen")) {
        Err(e @ LoadError::File { .. }) => assert!(e.to_string().contains("config.json"), "{e}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();

    // A config built in code is checked at load too, before any tensor is read.
    let device = cpu();
    let folder = ModelFolder::open(&fixture("wan1")).unwrap();
    let weights =
        Weights::open(&folder.weights("vae", "diffusion_pytorch_model", Precision::F32).unwrap(), &device, DType::F32)
            .unwrap();
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("wan1").join("vae/config.json")).unwrap()).unwrap();
    raw["is_residual"] = json!(true);
    let residual: WanVaeConfig = serde_json::from_value(raw).unwrap();
    assert!(matches!(AutoencoderKLWan::load(&weights.root(), &residual), Err(LoadError::Config { .. })));

    // wan2's architecture on wan1's weights: a shape error, not a panic.
    let wan2 = WanVaeConfig::read(&fixture("wan2").join("vae/config.json")).unwrap();
    let e = AutoencoderKLWan::load(&weights.root(), &wan2).expect_err("wan2's widths must not fit wan1's weights");
    assert!(matches!(e, LoadError::Shape { .. }), "{e}");
}
