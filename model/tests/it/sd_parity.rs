//! Stable Diffusion parity with diffusers, on the tiny random fixtures that
//! `scripts/sd_fixtures.py` wrote with diffusers itself (model/tests/fixtures/sd/*): tokenizer ids,
//! scheduler tables, single blocks (inputs captured by forward hooks), whole components, and
//! whole pipelines from the same noise.
//!
//! Every check runs on two backends (see `common::devices`).

use crate::common;

use burn::prelude::*;
use burn::tensor::DType;
use common::{Expected, assert_close, assert_pipelines, copy_dir, devices, max_diff, values};
use model::device::{self, DeviceChoice};
use model::diffusers::clip::tokenizer::ClipTokenizer;
use model::diffusers::common::scheduler::{Scheduler, SchedulerConfig};
use model::diffusers::common::weights::Weights;
use model::diffusers::parity;
use model::diffusers::stable_diffusion::StableDiffusion;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["sd1", "sd2"];

fn fixture(name: &str) -> PathBuf {
    common::fixtures_root().join("sd").join(name)
}

fn meta(name: &str) -> serde_json::Value {
    common::meta(&fixture(name))
}

#[test]
fn tokenizer_matches_transformers() {
    for name in FIXTURES {
        let tok = ClipTokenizer::load(&fixture(name).join("tokenizer")).unwrap();
        let device = device::open(DeviceChoice::Cpu).unwrap().device;
        let exp = Expected::open(&fixture(name), &device);
        let m = meta(name);
        for (i, prompt) in m["prompts"].as_array().unwrap().iter().enumerate() {
            let want: Vec<i64> = exp.weights.read_i64(&format!("tokenizer.{i}.ids")).unwrap();
            let got: Vec<i64> = tok.encode_padded(prompt.as_str().unwrap()).into_iter().map(i64::from).collect();
            assert_eq!(got, want, "{name}: ids of {prompt}");
        }
    }
}

#[test]
fn schedulers_match_diffusers() {
    let device = device::open(DeviceChoice::Cpu).unwrap().device;
    for name in FIXTURES {
        let exp = Expected::open(&fixture(name), &device);
        for (i, s) in meta(name)["schedulers"].as_array().unwrap().iter().enumerate() {
            let mut config = s["config"].clone();
            config["_class_name"] = s["class"].clone();
            let config: SchedulerConfig = serde_json::from_value(config).unwrap();
            let steps = s["steps"].as_u64().unwrap() as usize;
            let sched = Scheduler::new(&config, steps).unwrap();
            let what = format!("{name} scheduler {i} ({} {steps} steps, {})", s["class"], s["config"]);
            // Within 1e-6, relative to the value for values above 1 (an f32 has ~7 digits).
            let check = |got: &[f32], want: &[f32], label: &str| {
                assert_eq!(got.len(), want.len(), "{what}: {label} count");
                for (a, b) in got.iter().zip(want) {
                    assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}: {label} {got:?} vs {want:?}");
                }
            };
            check(&sched.timesteps, &exp.values(&format!("scheduler.{i}.timesteps")), "timesteps");
            if exp.has(&format!("scheduler.{i}.sigmas")) {
                check(&sched.sigmas, &exp.values(&format!("scheduler.{i}.sigmas")), "sigmas");
            }
            check(
                &[sched.init_noise_sigma],
                &exp.values(&format!("scheduler.{i}.init_noise_sigma")),
                "init_noise_sigma",
            );
        }
    }
}

/// Each block on diffusers' own inputs, then whole components, then whole pipelines.
#[test]
fn blocks_components_and_pipelines_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let what = |s: &str| format!("{name} on {label}: {s}");
            let sd = StableDiffusion::load(&fixture(name), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            let exp = Expected::open(&fixture(name), &device);
            let m = meta(name);
            let tol = 1e-4;

            // Blocks.
            let blocks: Vec<String> = m["blocks"].as_object().unwrap().keys().cloned().collect();
            let b = |block: &str, k: &str| format!("block.{block}.{k}");
            let mut checked = 0;
            for block in &blocks {
                let out = exp.values(&b(block, "out"));
                let got: Tensor<4> = match block.as_str() {
                    "text_encoder.encoder.layers.0" => {
                        assert_close(
                            sd.text_encoder.layers[0].forward(exp.t(&b(block, "in0")), true),
                            &out,
                            tol,
                            &what(block),
                        );
                        checked += 1;
                        continue;
                    }
                    "unet.time_embedding" => {
                        assert_close(
                            sd.unet.time_embedding().forward(exp.t(&b(block, "in0"))),
                            &out,
                            tol,
                            &what(block),
                        );
                        checked += 1;
                        continue;
                    }
                    "unet.down_blocks.0.resnets.0" => {
                        sd.unet.down_resnet(0, 0).forward(exp.t(&b(block, "in0")), Some(&exp.t(&b(block, "in1"))))
                    }
                    "unet.up_blocks.0.resnets.0" => {
                        sd.unet.up_resnet(0, 0).forward(exp.t(&b(block, "in0")), Some(&exp.t(&b(block, "in1"))))
                    }
                    "unet.down_blocks.0.attentions.0" => sd
                        .unet
                        .down_attention(0, 0)
                        .forward(exp.t(&b(block, "in0")), &exp.t(&b(block, "encoder_hidden_states"))),
                    s if s.starts_with("unet.up_blocks.") && s.ends_with(".attentions.0") => {
                        let i: usize = s.split('.').nth(2).unwrap().parse().unwrap();
                        sd.unet
                            .up_attention(i, 0)
                            .forward(exp.t(&b(block, "in0")), &exp.t(&b(block, "encoder_hidden_states")))
                    }
                    "unet.down_blocks.0.downsamplers.0" => {
                        sd.unet.downsampler(0).unwrap().forward(exp.t(&b(block, "in0")))
                    }
                    "unet.up_blocks.0.upsamplers.0" => {
                        sd.unet.upsampler(0).unwrap().forward(exp.t(&b(block, "in0")), None)
                    }
                    "unet.mid_block" => sd.unet.mid_block(
                        exp.t(&b(block, "in0")),
                        &exp.t(&b(block, "in1")),
                        &exp.t(&b(block, "encoder_hidden_states")),
                    ),
                    "vae.encoder.down_blocks.0" => sd.vae.encoder.down_blocks[0].forward(exp.t(&b(block, "in0"))),
                    "vae.decoder.up_blocks.0" => sd.vae.decoder.up_blocks[0].forward(exp.t(&b(block, "in0"))),
                    "vae.encoder.mid_block.attentions.0" => {
                        sd.vae.encoder_mid_attention().unwrap().forward_spatial(exp.t(&b(block, "in0")))
                    }
                    "vae.decoder.mid_block" => sd.vae.decoder_mid_block(exp.t(&b(block, "in0"))),
                    other => panic!("fixture block {other} has no check"),
                };
                assert_close(got, &out, tol, &what(block));
                checked += 1;
            }
            assert_eq!(checked, blocks.len());

            // Components.
            for i in 0..m["prompts"].as_array().unwrap().len() {
                let ids: Vec<i64> = exp.weights.read_i64(&format!("tokenizer.{i}.ids")).unwrap();
                let n = ids.len();
                let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
                assert_close(
                    sd.text_encoder.forward(ids),
                    &exp.values(&format!("text_encoder.{i}.out")),
                    tol,
                    &what("text encoder"),
                );
            }
            let ts = exp.values("unet.timestep");
            let unet = sd.unet.forward(exp.t("unet.sample"), &ts, &exp.t("unet.encoder_hidden_states"));
            assert_close(unet, &exp.values("unet.out"), tol, &what("UNet"));
            let ctx: Tensor<3> = exp.t("unet.encoder_hidden_states");
            let unet2 = sd.unet.forward(exp.t("unet2.sample"), &[500.0], &ctx.narrow(0, 0, 1));
            assert_close(unet2, &exp.values("unet2.out"), tol, &what("UNet, 8x16 latent"));
            let (mean, logvar) = sd.vae.encode(exp.t("vae.image"));
            assert_close(mean, &exp.values("vae.mean"), tol, &what("VAE encode mean"));
            assert_close(logvar, &exp.values("vae.logvar"), tol, &what("VAE encode log variance"));
            assert_close(sd.vae.decode(exp.t("vae.latent")), &exp.values("vae.decoded"), tol, &what("VAE decode"));

            // Pipelines from diffusers' noise.
            let results = parity::run_sd(&fixture(name), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 40.0, &format!("{name} on {label}"));
        }
    }
}

/// Half precision (what GPUs run by default) stays close to diffusers' f32 images: 30 dB where
/// f32 must reach 40. Runs on flex here and on every GPU backend present.
#[test]
fn pipelines_in_f16_stay_close() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let results = parity::run_sd(&fixture(name), &device, DType::F16).unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 30.0, &format!("{name} on {label}, f16"));
        }
    }
}

/// Copies a fixture folder so a test can break it.
fn broken_copy(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("vidplay-sd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&fixture(name), &dst);
    dst
}

fn load_err(root: &Path) -> String {
    let device = device::open(DeviceChoice::Cpu).unwrap().device;
    match StableDiffusion::load(root, &device, DType::F32) {
        Ok(_) => panic!("{} loaded", root.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_folders_give_errors_naming_file_and_key() {
    // Missing weights file.
    let d = broken_copy("sd1", "missing");
    std::fs::remove_file(d.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("vae/diffusion_pytorch_model.safetensors") && e.contains("missing"), "{e}");

    // A pickle-only component is refused.
    std::fs::write(d.join("vae/diffusion_pytorch_model.bin"), b"not really a pickle").unwrap();
    let e = load_err(&d);
    assert!(e.contains("diffusion_pytorch_model.bin") && e.contains("pickle"), "{e}");

    // A config that does not match the weights: a shape error naming file and key.
    let d = broken_copy("sd1", "shape");
    let cfg_path = d.join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["block_out_channels"] = serde_json::json!([16, 40]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load_err(&d);
    assert!(e.contains("unet/diffusion_pytorch_model.safetensors") && e.contains("down_blocks.1"), "{e}");

    // An unsupported config value names the file and the key.
    cfg["block_out_channels"] = serde_json::json!([16, 32]);
    cfg["resnet_time_scale_shift"] = serde_json::json!("scale_shift");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load_err(&d);
    assert!(e.contains("unet/config.json") && e.contains("resnet_time_scale_shift"), "{e}");

    // Fewer layers than the file has: the unused tensors are reported.
    cfg["resnet_time_scale_shift"] = serde_json::json!("default");
    cfg["layers_per_block"] = serde_json::json!(1);
    let te_cfg_path = d.join("text_encoder/config.json");
    let mut te: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&te_cfg_path).unwrap()).unwrap();
    te["num_hidden_layers"] = serde_json::json!(1);
    std::fs::write(&te_cfg_path, te.to_string()).unwrap();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load_err(&d);
    assert!(e.contains("text_encoder/model.safetensors") && e.contains("not used") && e.contains("layers.1"), "{e}");

    // Not a model folder at all.
    let e = load_err(Path::new("/nonexistent/folder"));
    assert!(e.contains("model_index.json"), "{e}");
}

#[test]
fn an_unknown_scheduler_class_falls_back_to_euler() {
    let d = broken_copy("sd1", "sched");
    let p = d.join("scheduler/scheduler_config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["_class_name"] = serde_json::json!("PNDMScheduler");
    cfg["skip_prk_steps"] = serde_json::json!(true);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let c = SchedulerConfig::read(&p).unwrap();
    assert_eq!(c.kind(), model::diffusers::common::scheduler::Kind::Euler);
    let s = Scheduler::new(&c, 5).unwrap();
    assert_eq!(s.sigmas.len(), 6);
    let _ = std::fs::remove_dir_all(&d);
}

/// SD-Turbo's real architecture (its published configs; names and shapes from diffusers and
/// transformers built without weights) loads unchanged: every tensor name and shape the configs
/// imply is in the checkpoint, and every tensor of the checkpoint is used.
#[test]
fn sd_turbo_names_and_shapes_load_unchanged() {
    use model::diffusers::clip::text::{ClipTextConfig, ClipTextModel};
    use model::diffusers::stable_diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
    use model::diffusers::stable_diffusion::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
    use std::collections::BTreeMap;
    let root = fixture("sd-turbo-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let device = device::open(DeviceChoice::Cpu).unwrap().device;
    let weights = |c: &str| Weights::shapes_only(&root.join(c), all[c].clone(), &device);
    let count = |c: &str| all[c].values().map(|s| s.iter().product::<usize>()).sum::<usize>();

    let w = weights("unet");
    let cfg = UNet2DConditionConfig::read(&root.join("unet/config.json")).unwrap();
    UNet2DConditionModel::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("unet"), 865_910_724);

    let w = weights("vae");
    let cfg = AutoencoderKLConfig::read(&root.join("vae/config.json")).unwrap();
    AutoencoderKL::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));

    let w = weights("text_encoder");
    let path = root.join("text_encoder/config.json");
    let cfg = ClipTextConfig::read(&path).unwrap();
    ClipTextModel::load(&w, &cfg, &path).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));

    // A wrong head layout is caught by shape, not silently accepted.
    let mut bad: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("unet/config.json")).unwrap()).unwrap();
    bad["cross_attention_dim"] = serde_json::json!(768);
    let bad: UNet2DConditionConfig = serde_json::from_value(bad).unwrap();
    let e = UNet2DConditionModel::load(&weights("unet"), &bad).expect_err("SD 1.x text width must not fit").to_string();
    assert!(e.contains("attn2.to_k.weight"), "{e}");
}

/// Tiled VAE decoding (diffusers' `enable_tiling`, which the pipelines use above 1024x1024) on a
/// latent cut into three rows and four columns of tiles, the last ones narrower: the picture
/// diffusers decodes, and far from it when the cross-fade or the tiling is dropped.
#[test]
fn tiled_vae_decoding_matches_diffusers() {
    use model::diffusers::stable_diffusion::vae_tiling::Tiling;
    let folder = fixture("sd1-vae-tiling");
    let m = common::meta(&folder);
    for (label, device) in devices() {
        let what = |s: &str| format!("sd1 VAE on {label}: {s}");
        let sd = StableDiffusion::load(&fixture("sd1"), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
        let exp = Expected::open(&folder, &device);
        let tiling = Tiling::of(&sd.vae.config).expect("the sd1 VAE has a tile grid");
        assert_eq!(tiling.latent_tile as u64, m["tile_latent_min_size"].as_u64().unwrap());
        assert_eq!((tiling.stride, tiling.blend, tiling.keep), (6, 16, 48));
        let latent: Tensor<4> = exp.t("latent");
        let want = exp.values("tiled");
        assert_close(sd.vae.decode_tiled(latent.clone(), tiling), &want, 1e-4, &what("tiled decode"));

        // Plausible bugs score far off: tiles butted together without the cross-fade, and the
        // untiled decode (which is what this small image gets from `decode_sized`).
        let butted = Tiling { blend: 0, ..tiling };
        let d = max_diff(&values(sd.vae.decode_tiled(latent.clone(), butted)), &want, "no cross-fade");
        assert!(d > 0.1, "{}", what(&format!("tiles without the cross-fade are only {d} off")));
        let whole = values(sd.vae.decode_sized(latent.clone()));
        assert_close(sd.vae.decode(latent), &whole, 1e-6, &what("a small image is decoded whole"));
        let d = max_diff(&whole, &want, "untiled");
        let seams = m["tiled_vs_whole_max_abs"].as_f64().unwrap() as f32;
        assert!((d - seams).abs() < 1e-3, "{}", what(&format!("untiled is {d} off, diffusers says {seams}")));
    }
}

/// The tile grid of a real VAE (SD-Turbo's, trained at 768) and when the pipelines tile.
#[test]
fn vae_tiles_real_sizes_above_a_megapixel() {
    use model::diffusers::stable_diffusion::autoencoder_kl::AutoencoderKLConfig;
    use model::diffusers::stable_diffusion::vae_tiling::Tiling;
    let cfg = AutoencoderKLConfig::read(&fixture("sd-turbo-shapes").join("vae/config.json")).unwrap();
    let t = Tiling::of(&cfg).unwrap();
    assert_eq!((t.latent_tile, t.stride, t.blend, t.keep), (96, 72, 192, 576));
    let tiled = |w: usize, h: usize| Tiling::for_latent(&cfg, h / 8, w / 8).is_some();
    assert!(!tiled(512, 512) && !tiled(1024, 1024) && !tiled(768, 1024));
    assert!(tiled(1024, 1032) && tiled(2048, 2048) && tiled(1920, 1088));
    // A decode retried after one that failed: tiles of half the latent's longer side, then a
    // quarter, never above the VAE's own tile nor below four latents.
    let retry = |h: usize, w: usize, n: u32| Tiling::for_retry(&cfg, h, w, n);
    // 1024x1024 was decoded whole (128 latents); 2048x1600 in tiles of 96.
    assert_eq!((retry(128, 128, 1).latent_tile, retry(256, 200, 1).latent_tile), (64, 48));
    assert_eq!((retry(96, 128, 2).latent_tile, retry(64, 64, 30).latent_tile), (32, 4));
    let small = retry(128, 128, 2);
    assert_eq!((small.stride, small.blend, small.keep), (24, 64, 192), "diffusers' overlaps, scaled");

    // `sample_size` may be a list (its first entry is the tile, as for diffusers' latent tile); a tile too small to step
    // gives no grid, so such a VAE always decodes whole.
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("sd-turbo-shapes").join("vae/config.json")).unwrap())
            .unwrap();
    raw["sample_size"] = serde_json::json!([512, 512]);
    let listed: AutoencoderKLConfig = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(Tiling::of(&listed).unwrap().latent_tile, 64);
    raw["sample_size"] = serde_json::json!(8);
    let tiny: AutoencoderKLConfig = serde_json::from_value(raw).unwrap();
    assert_eq!(Tiling::of(&tiny), None);
    assert_eq!(Tiling::for_latent(&tiny, 300, 300), None);
    assert_eq!(Tiling::for_retry(&tiny, 300, 300, 1).latent_tile, 150, "a retry tiles even so");
}

/// LoRAs (scripts/lora_fixtures.py: rank 4, alpha 8, on sd1's UNet attention and text encoder)
/// merged at load, from diffusers' own file (PEFT naming, alpha in its metadata) and from the same
/// LoRA in kohya naming: the pictures diffusers makes after `load_lora_weights` and
/// `fuse_lora(lora_scale)`. A LoRA dropped, or its alpha ignored, scores far off; a LoRA for
/// other weights is refused, naming what matched nothing.
#[test]
fn loras_merge_as_diffusers_fuses_them() {
    use model::diffusers::common::lora::{Lora, LoraUse};
    use model::diffusers::stable_diffusion::ImageRequest;
    use std::sync::Arc;
    let folder = fixture("sd1-lora");
    let m = meta("sd1-lora");
    let device = common::cpu();
    let exp = Expected::open(&folder, &device);
    let run = |i: usize, loras: &[LoraUse]| {
        let r = &m["runs"][i];
        let sd = StableDiffusion::load_with_loras(&fixture("sd1"), &device, DType::F32, loras)
            .unwrap_or_else(|e| panic!("{e}"));
        let noise = Weights::open(&[folder.join(format!("noise_{i}.safetensors"))], &device, DType::F32).unwrap();
        let req = ImageRequest {
            prompt: r["prompt"].as_str().unwrap().into(),
            negative: String::new(),
            steps: r["steps"].as_u64().unwrap() as usize,
            guidance: r["guidance"].as_f64().unwrap() as f32,
            width: 64,
            height: 64,
            seed: 0,
            noise: Some(noise.read_f32("noise").unwrap().0),
            scheduler: None,
        };
        sd.generate(&req, &mut |_| {}, &|| false).unwrap().pixels
    };
    let scale = |i: usize| m["runs"][i]["scale"].as_f64().unwrap() as f32;
    for file in ["peft.safetensors", "kohya.safetensors"] {
        let lora = Arc::new(Lora::read(&folder.join(file)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(lora.components(), ["text_encoder", "unet"], "{file}");
        assert_eq!(lora.sha256.len(), 64);
        for i in 0..2 {
            let got = run(i, &[LoraUse { lora: lora.clone(), scale: scale(i) }]);
            let d = max_diff(&got, &exp.values(&format!("run.{i}.lora")), file);
            assert!(d < 1e-4, "{file} run {i}: {d} off diffusers' fused LoRA");
        }
    }
    // Plausible bugs score far off: the LoRA dropped, alpha ignored (alpha / rank is 2 here).
    let lora = Arc::new(Lora::read(&folder.join("peft.safetensors")).unwrap());
    let want = exp.values("run.0.lora");
    let plain = run(0, &[]);
    assert!(max_diff(&plain, &exp.values("run.0.plain"), "plain") < 1e-3, "without a LoRA: the plain picture");
    let far = |got: &[f32], what: &str| {
        let d = max_diff(got, &want, what);
        assert!(d > 0.05, "{what} is only {d} off");
    };
    far(&plain, "the LoRA dropped");
    far(&run(0, &[LoraUse { lora: lora.clone(), scale: scale(0) / 2.0 }]), "alpha ignored");

    // A LoRA whose names match nothing of the model is an error naming the first such name.
    let dir = std::env::temp_dir().join(format!("vidplay-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stray = dir.join("stray.safetensors");
    let a = vec![0u8; 4 * 4 * 8];
    let b = vec![0u8; 8 * 4 * 4];
    let tensors = [
        ("lora_unet_down_blocks_9_nowhere.lora_down.weight", &a, vec![4, 8]),
        ("lora_unet_down_blocks_9_nowhere.lora_up.weight", &b, vec![8, 4]),
    ];
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, d, s)| (*k, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    std::fs::write(&stray, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    let stray = Arc::new(Lora::read(&stray).unwrap());
    let e =
        StableDiffusion::load_with_loras(&fixture("sd1"), &device, DType::F32, &[LoraUse { lora: stray, scale: 1.0 }])
            .err()
            .expect("refused")
            .to_string();
    assert!(e.contains("down_blocks_9_nowhere") && e.contains("matches no weight"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
