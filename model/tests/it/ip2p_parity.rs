//! InstructPix2Pix parity with diffusers, on the tiny random editors that
//! `scripts/ip2p_fixtures.py` wrote with diffusers (model/tests/fixtures/ip2p/*): the ancestral
//! scheduler's tables, single blocks of the 8-channel UNet and the VAE encoder (inputs captured by
//! forward hooks), whole components, and whole edits from the same noise (for the ancestral
//! scheduler, the same noise at every step too).
//!
//! Every check runs on flex and on every GPU backend present (see `common::devices`).

use crate::common;

use burn::prelude::*;
use burn::tensor::DType;
use common::{Expected, assert_close, assert_pipelines, copy_dir, devices};
use model::device::{self, DeviceChoice};
use model::diffusers::common::scheduler::{Kind, Scheduler, SchedulerConfig, StepNoise};
use model::diffusers::common::weights::Weights;
use model::diffusers::parity;
use model::diffusers::stable_diffusion::InstructPix2Pix;
use std::path::PathBuf;

const FIXTURES: [&str; 2] = ["ip2p1", "ip2p2"];

fn fixture(name: &str) -> PathBuf {
    common::fixtures_root().join("ip2p").join(name)
}

#[test]
fn ancestral_scheduler_tables_match_diffusers() {
    let device = common::cpu();
    let folder = fixture("ip2p1");
    let exp = Expected::open(&folder, &device);
    let m = common::meta(&folder);
    let schedulers = m["schedulers"].as_array().unwrap();
    assert!(schedulers.len() >= 4);
    for (i, s) in schedulers.iter().enumerate() {
        let mut config = s["config"].clone();
        config["_class_name"] = s["class"].clone();
        let config: SchedulerConfig = serde_json::from_value(config).unwrap();
        assert_eq!(config.kind(), Kind::EulerAncestral);
        let steps = s["steps"].as_u64().unwrap() as usize;
        let sched = Scheduler::new(&config, steps).unwrap();
        assert!(sched.draws_step_noise());
        let what = format!("scheduler {i} ({steps} steps, {})", s["config"]);
        let check = |got: &[f32], want: &[f32], label: &str| {
            assert_eq!(got.len(), want.len(), "{what}: {label} count");
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}: {label} {got:?} vs {want:?}");
            }
        };
        check(&sched.timesteps, &exp.values(&format!("scheduler.{i}.timesteps")), "timesteps");
        check(&sched.sigmas, &exp.values(&format!("scheduler.{i}.sigmas")), "sigmas");
        check(&[sched.init_noise_sigma], &exp.values(&format!("scheduler.{i}.init_noise_sigma")), "init_noise_sigma");
    }
}

/// An ancestral step with zero noise lands on sigma_down; the noise it adds scales with sigma_up,
/// and the last step (to sigma 0) adds none.
#[test]
fn ancestral_steps_add_their_noise() {
    let device = common::cpu();
    let config: SchedulerConfig = serde_json::from_value(serde_json::json!({
        "_class_name": "EulerAncestralDiscreteScheduler", "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "beta_end": 0.012
    }))
    .unwrap();
    let s = Scheduler::new(&config, 4).unwrap();
    let shape = [1, 1, 2, 2];
    let sample = Tensor::<4>::ones(shape, &device) * 3.0;
    let eps = Tensor::<4>::ones(shape, &device) * 0.5;
    let step = |i: usize, noise: f32| {
        let mut n = StepNoise::Recorded(vec![vec![noise; 4]; 4]);
        common::values(s.step(eps.clone(), i, sample.clone(), &mut n))[0]
    };
    let (sigma, next) = (s.sigmas[0], s.sigmas[1]);
    let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
    let down = (next * next - up * up).sqrt();
    assert!((step(0, 0.0) - (3.0 + 0.5 * (down - sigma))).abs() < 1e-4);
    assert!((step(0, 1.0) - step(0, 0.0) - up).abs() < 1e-4);
    assert_eq!(step(3, 1.0), step(3, 0.0), "the last step adds no noise");
    // Seeded noise is reproducible and differs between seeds.
    let seeded = |seed| common::values(s.step(eps.clone(), 0, sample.clone(), &mut StepNoise::seeded(seed)));
    assert_eq!(seeded(1), seeded(1));
    assert_ne!(seeded(1), seeded(2));
}

#[test]
fn blocks_components_and_edits_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let what = |s: &str| format!("{name} on {label}: {s}");
            let editor = InstructPix2Pix::load(&fixture(name), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            let (sd, exp, m) = (&editor.sd, Expected::open(&fixture(name), &device), common::meta(&fixture(name)));
            assert_eq!(sd.unet.config.in_channels, 8);
            let tol = 1e-4;
            let b = |block: &str, k: &str| format!("block.{block}.{k}");
            let blocks: Vec<String> = m["blocks"].as_object().unwrap().keys().cloned().collect();
            for block in &blocks {
                let out = exp.values(&b(block, "out"));
                let got: Tensor<4> = match block.as_str() {
                    "unet.conv_in" => sd.unet.conv_in().forward(exp.t(&b(block, "in0"))),
                    "unet.down_blocks.0.resnets.0" => {
                        sd.unet.down_resnet(0, 0).forward(exp.t(&b(block, "in0")), Some(&exp.t(&b(block, "in1"))))
                    }
                    "unet.mid_block" => sd.unet.mid_block(
                        exp.t(&b(block, "in0")),
                        &exp.t(&b(block, "in1")),
                        &exp.t(&b(block, "encoder_hidden_states")),
                    ),
                    "vae.encoder.down_blocks.0" => sd.vae.encoder.down_blocks[0].forward(exp.t(&b(block, "in0"))),
                    other => panic!("fixture block {other} has no check"),
                };
                assert_close(got, &out, tol, &what(block));
            }
            assert_eq!(blocks.len(), 4, "{name}: blocks in the fixture");

            for i in 0..m["prompts"].as_array().unwrap().len() {
                let ids: Vec<i64> = exp.weights.read_i64(&format!("tokenizer.{i}.ids")).unwrap();
                let got: Vec<i64> =
                    sd.tokenizer.encode_padded(m["prompts"][i].as_str().unwrap()).into_iter().map(i64::from).collect();
                assert_eq!(got, ids, "{name}: token ids of prompt {i}");
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
            assert_close(unet, &exp.values("unet.out"), tol, &what("8-channel UNet"));
            let (mode, _) = sd.vae.encode(exp.t("vae.image"));
            assert_close(mode, &exp.values("vae.mode"), tol, &what("VAE encoder mode"));

            let results = parity::run_ip2p(&fixture(name), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(results.len(), 2);
            assert_pipelines(results, 40.0, &format!("{name} on {label}"));
        }
    }
}

/// Half precision stays close to diffusers' f32 edits: 30 dB where f32 must reach 40.
#[test]
fn edits_in_f16_stay_close() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let results = parity::run_ip2p(&fixture(name), &device, DType::F16).unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 30.0, &format!("{name} on {label}, f16"));
        }
    }
}

/// Without the recorded step noise the ancestral edit is a different picture (the noise matters),
/// and the same seed gives the same picture.
#[test]
fn ancestral_edits_follow_their_step_noise() {
    let device = common::cpu();
    let editor = InstructPix2Pix::load(&fixture("ip2p1"), &device, DType::F32).unwrap();
    let run = parity::ip2p_runs(&fixture("ip2p1"), &device).unwrap().remove(0);
    let (mut req, want) = (run.request, run.expected);
    let input = image::open(&run.image).unwrap().to_rgb8();
    req.step_noise = None;
    req.seed = 5;
    let a = editor.generate(&input, &req, &mut |_| {}, &|| false).unwrap();
    let b = editor.generate(&input, &req, &mut |_| {}, &|| false).unwrap();
    assert_eq!(a.pixels, b.pixels);
    assert!(parity::psnr(&a.pixels, &want) < 40.0, "seeded step noise reproduced diffusers' draws");
    let mut steps = 0;
    editor.generate(&input, &req, &mut |p| steps = p.step, &|| false).unwrap();
    assert_eq!(steps, req.steps);
    let cancelled = editor.generate(&input, &req, &mut |_| {}, &|| true);
    assert!(matches!(cancelled, Err(model::generate::GenerateError::Cancelled)));
}

#[test]
fn bad_requests_and_folders_get_clear_errors() {
    let device = common::cpu();
    let editor = InstructPix2Pix::load(&fixture("ip2p1"), &device, DType::F32).unwrap();
    let input = image::RgbImage::new(64, 64);
    let run = |req: &model::diffusers::stable_diffusion::EditRequest, img: &image::RgbImage| {
        editor.generate(img, req, &mut |_| {}, &|| false).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let mut req = model::diffusers::stable_diffusion::EditRequest::new("  ");
    req.steps = 2;
    assert!(run(&req, &input).contains("instruction is empty"));
    req.prompt = "add snow".into();
    assert!(run(&req, &image::RgbImage::new(60, 64)).contains("multiples of 8"));
    req.noise = Some(vec![0.0; 3]);
    assert!(run(&req, &input).contains("noise must hold 256"));
    req.noise = None;
    req.step_noise = Some(vec![vec![0.0; 256]]);
    assert!(run(&req, &input).contains("step noise must hold 2 steps"));

    // A text-to-image folder is not an editor.
    let sd = common::fixtures_root().join("sd/sd1");
    let e = InstructPix2Pix::load(&sd, &device, DType::F32).err().expect("sd1 is no editor").to_string();
    assert!(e.contains("model_index.json") && e.contains("StableDiffusionInstructPix2PixPipeline"), "{e}");

    // An editor folder whose UNet takes 4 channels.
    let dst = std::env::temp_dir().join(format!("vidplay-ip2p-channels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&fixture("ip2p1"), &dst);
    let cfg_path = dst.join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["in_channels"] = serde_json::json!(4);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = InstructPix2Pix::load(&dst, &device, DType::F32).err().expect("4 channels").to_string();
    assert!(e.contains("unet") && (e.contains("in_channels") || e.contains("conv_in")), "{e}");
    let _ = std::fs::remove_dir_all(&dst);
}

/// timbrooks/instruct-pix2pix's real architecture (its published configs; names and shapes from
/// diffusers and transformers built without weights) loads unchanged.
#[test]
fn instruct_pix2pix_names_and_shapes_load_unchanged() {
    use model::diffusers::clip::text::{ClipTextConfig, ClipTextModel};
    use model::diffusers::stable_diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
    use model::diffusers::stable_diffusion::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
    use std::collections::BTreeMap;
    let root = fixture("instruct-pix2pix-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let device = device::open(DeviceChoice::Cpu).unwrap().device;
    let weights = |c: &str| Weights::shapes_only(&root.join(c), all[c].clone(), &device);
    let count = |c: &str| all[c].values().map(|s| s.iter().product::<usize>()).sum::<usize>();

    let w = weights("unet");
    let cfg = UNet2DConditionConfig::read(&root.join("unet/config.json")).unwrap();
    assert_eq!(cfg.in_channels, 8);
    UNet2DConditionModel::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("unet"), 859_532_484);
    assert_eq!(all["unet"]["conv_in.weight"], vec![320, 8, 3, 3]);

    let w = weights("vae");
    let cfg = AutoencoderKLConfig::read(&root.join("vae/config.json")).unwrap();
    AutoencoderKL::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));

    let w = weights("text_encoder");
    let path = root.join("text_encoder/config.json");
    let cfg = ClipTextConfig::read(&path).unwrap();
    ClipTextModel::load(&w, &cfg, &path).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
}
