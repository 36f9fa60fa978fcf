//! Stable Video Diffusion parity with diffusers, on the tiny random fixtures that
//! `scripts/svd_fixtures.py` wrote with diffusers itself (model/tests/fixtures/svd/*): scheduler
//! tables, CLIP preprocessing, single blocks (inputs captured by forward hooks), whole
//! components, and whole pipelines from the same noise, on both backends (`common::devices`).
//! Also: svd-xt's real architecture loads unchanged (names and shapes), and the low-memory mode
//! gives the same frames as the resident one.

use crate::common;

use burn::prelude::*;
use burn::tensor::DType;
use common::{Expected, assert_close, assert_pipelines, copy_dir, cpu, devices, max_diff, meta};
use model::diffusers::common::scheduler::{Scheduler, SchedulerConfig};
use model::diffusers::common::weights::Weights;
use model::diffusers::parity;
use model::diffusers::stable_video_diffusion::{MemoryMode, StableVideoDiffusion, VideoRequest};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["svd1", "svd2"];

fn fixture(name: &str) -> PathBuf {
    common::fixtures_root().join("svd").join(name)
}

fn image(name: &str, file: &str) -> image::RgbImage {
    image::open(fixture(name).join(file)).unwrap().to_rgb8()
}

#[test]
fn edm_scheduler_matches_diffusers() {
    let device = cpu();
    for name in FIXTURES {
        let exp = Expected::open(&fixture(name), &device);
        let config = SchedulerConfig::read(&fixture(name).join("scheduler/scheduler_config.json")).unwrap();
        for (i, s) in meta(&fixture(name))["schedulers"].as_array().unwrap().iter().enumerate() {
            let steps = s["steps"].as_u64().unwrap() as usize;
            let sched = Scheduler::new(&config, steps).unwrap();
            let what = format!("{name} scheduler, {steps} steps");
            let check = |got: &[f32], want: &[f32], label: &str| {
                assert_eq!(got.len(), want.len(), "{what}: {label} count");
                for (a, b) in got.iter().zip(want) {
                    assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}: {label} {got:?} vs {want:?}");
                }
            };
            check(&sched.timesteps, &exp.values(&format!("scheduler.{i}.timesteps")), "timesteps");
            check(&sched.sigmas, &exp.values(&format!("scheduler.{i}.sigmas")), "sigmas");
            check(
                &[sched.init_noise_sigma],
                &exp.values(&format!("scheduler.{i}.init_noise_sigma")),
                "init_noise_sigma",
            );
        }
    }
}

#[test]
fn clip_input_matches_the_pipeline() {
    let device = cpu();
    for name in FIXTURES {
        let svd = StableVideoDiffusion::load(&fixture(name), &device, DType::F32, MemoryMode::Low)
            .unwrap_or_else(|e| panic!("{e}"));
        let exp = Expected::open(&fixture(name), &device);
        let px = svd.clip_pixels(&image(name, "image_0.png"));
        assert_eq!((px.width, px.height), (224, 224));
        // The fixture keeps rows 96..128 of each channel.
        let band: Vec<f32> =
            (0..3).flat_map(|c| px.data[c * 224 * 224 + 96 * 224..c * 224 * 224 + 128 * 224].to_vec()).collect();
        let want = exp.values("pipeline.0.clip_pixels_band");
        let d = max_diff(&band, &want, "clip pixels");
        assert!(d <= 1e-4, "{name}: CLIP input max abs difference {d:e}");
    }
}

/// Each block on diffusers' own inputs, then whole components, then whole pipelines.
#[test]
fn blocks_components_and_pipelines_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let what = |s: &str| format!("{name} on {label}: {s}");
            let svd = StableVideoDiffusion::load(&fixture(name), &device, DType::F32, MemoryMode::Resident)
                .unwrap_or_else(|e| panic!("{e}"));
            let (encoder, vae, unet) = svd.parts().unwrap();
            let exp = Expected::open(&fixture(name), &device);
            let m = meta(&fixture(name));
            let tol = 1e-4;
            let frames = exp.t::<5>("unet.sample").dims()[1];

            // Blocks.
            let blocks: Vec<String> = m["blocks"].as_object().unwrap().keys().cloned().collect();
            let b = |block: &str, k: &str| format!("block.{block}.{k}");
            // The per-clip conditioning from diffusers' per-frame (or per-pixel) copies of it.
            let per_clip = |key: &str, copies: usize| {
                let ctx: Tensor<3> = exp.t(key);
                let [n, l, d] = ctx.dims();
                ctx.reshape([n / copies, copies, l, d]).narrow(1, 0, 1).reshape([n / copies, l, d])
            };
            let block_frames = |block: &str| exp.t::<2>(&b(block, "image_only_indicator")).dims()[1];
            for block in &blocks {
                let out = exp.values(&b(block, "out"));
                let in0 = || exp.t::<4>(&b(block, "in0"));
                let d = match block.as_str() {
                    "image_encoder.vision_model.encoder.layers.0" => {
                        assert_close(encoder.layers[0].forward(exp.t(&b(block, "in0")), false), &out, tol, &what(block))
                    }
                    "unet.time_embedding" => {
                        assert_close(unet.time_embedding().forward(exp.t(&b(block, "in0"))), &out, tol, &what(block))
                    }
                    "unet.add_embedding" => {
                        assert_close(unet.add_embedding().forward(exp.t(&b(block, "in0"))), &out, tol, &what(block))
                    }
                    "unet.down_blocks.0.resnets.0" | "unet.up_blocks.0.resnets.0" => {
                        let r = if block.contains("down") { unet.down_resnet(0, 0) } else { unet.up_resnet(0, 0) };
                        assert_close(
                            r.forward(in0(), Some(&exp.t(&b(block, "in1"))), block_frames(block)),
                            &out,
                            tol,
                            &what(block),
                        )
                    }
                    "unet.down_blocks.0.resnets.0.temporal_res_block" => {
                        let got = unet
                            .down_resnet(0, 0)
                            .temporal_res_block()
                            .forward(exp.t(&b(block, "in0")), Some(&exp.t(&b(block, "in1"))));
                        assert_close(got, &out, tol, &what(block))
                    }
                    "unet.down_blocks.0.attentions.0.temporal_transformer_blocks.0" => {
                        let x: Tensor<3> = exp.t(&b(block, "in0"));
                        let positions = x.dims()[1];
                        let ctx = per_clip(&b(block, "encoder_hidden_states"), positions);
                        let got = unet.down_attention(0, 0).temporal_block(0).forward(x, frames, Some(&ctx));
                        assert_close(got, &out, tol, &what(block))
                    }
                    s if s.ends_with(".attentions.0") => {
                        let f = block_frames(block);
                        let ctx = per_clip(&b(block, "encoder_hidden_states"), f);
                        let i: usize = s.split('.').nth(2).unwrap().parse().unwrap();
                        let a =
                            if s.contains("down_blocks") { unet.down_attention(i, 0) } else { unet.up_attention(i, 0) };
                        assert_close(a.forward(in0(), &ctx, f), &out, tol, &what(block))
                    }
                    "unet.down_blocks.0.downsamplers.0" => {
                        assert_close(unet.downsampler(0).unwrap().forward(in0()), &out, tol, &what(block))
                    }
                    "unet.up_blocks.0.upsamplers.0" => {
                        assert_close(unet.upsampler(0).unwrap().forward(in0(), None), &out, tol, &what(block))
                    }
                    "unet.mid_block" => {
                        let f = block_frames(block);
                        let ctx = per_clip(&b(block, "encoder_hidden_states"), f);
                        let got = unet.mid_block(exp.t(&b(block, "hidden_states")), &exp.t(&b(block, "temb")), &ctx, f);
                        assert_close(got, &out, tol, &what(block))
                    }
                    "vae.encoder.mid_block" => assert_close(vae.encoder.mid_block(in0()), &out, tol, &what(block)),
                    "vae.decoder.mid_block" => assert_close(vae.decoder.mid_block(in0()), &out, tol, &what(block)),
                    "vae.decoder.up_blocks.0" => assert_close(vae.decoder.up_block(0, in0()), &out, tol, &what(block)),
                    "vae.decoder.up_blocks.0.resnets.0" => {
                        let x = in0();
                        let f = x.dims()[0];
                        assert_close(vae.decoder.up_resnet(0, 0).forward(x, None, f), &out, tol, &what(block))
                    }
                    other => panic!("fixture block {other} has no check"),
                };
                eprintln!("{}: max abs {d:e}", what(block));
            }

            // Components.
            let px = svd.clip_pixels(&image(name, "image_0.png"));
            let pixels = Tensor::<4>::from_data(TensorData::new(px.data, [1, 3, 224, 224]), &device);
            assert_close(encoder.forward(pixels), &exp.values("image_encoder.out"), tol, &what("image encoder"));
            let added: Vec<[f32; 3]> =
                exp.values("unet.added_time_ids").chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
            let ctx: Tensor<3> = exp.t("unet.encoder_hidden_states");
            let got = unet.forward(exp.t("unet.sample"), exp.values("unet.timestep")[0], &ctx, &added);
            let d = assert_close(got, &exp.values("unet.out"), tol, &what("UNet"));
            eprintln!("{}: max abs {d:e}", what("UNet"));
            let got =
                unet.forward(exp.t("unet2.sample"), exp.values("unet2.timestep")[0], &ctx.narrow(0, 0, 1), &added[..1]);
            assert_close(got, &exp.values("unet2.out"), tol, &what("UNet, 5x7 latents"));
            let (mean, logvar) = vae.encode(exp.t("vae.image"));
            assert_close(mean, &exp.values("vae.mean"), tol, &what("VAE encode mean"));
            assert_close(logvar, &exp.values("vae.logvar"), tol, &what("VAE encode log variance"));
            assert_close(
                vae.decode(exp.t("vae.latent")),
                &exp.values("vae.decoded"),
                tol,
                &what("VAE temporal decode"),
            );

            // Pipelines from diffusers' noise.
            let results = parity::run_svd(&fixture(name), &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 40.0, &format!("{name} on {label}"));
        }
    }
}

/// Half precision (what GPUs run by default) stays close to diffusers' f32 frames: 30 dB where
/// f32 must reach 40. Runs on flex here and on every GPU backend present.
#[test]
fn pipelines_in_f16_stay_close() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let results = parity::run_svd(&fixture(name), &device, DType::F16).unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 30.0, &format!("{name} on {label}, f16"));
        }
    }
}

/// Loading per phase and running the guidance halves apart changes nothing in the result.
#[test]
fn low_memory_mode_gives_the_same_frames() {
    let device = cpu();
    let name = "svd1";
    let (req, image_path, _) = parity::svd_runs(&fixture(name), &device).unwrap().remove(0);
    let img = image::open(image_path).unwrap().to_rgb8();
    let mut frames = vec![];
    for mode in [MemoryMode::Resident, MemoryMode::Low] {
        let svd = StableVideoDiffusion::load(&fixture(name), &device, DType::F32, mode).unwrap();
        frames.push(svd.generate(&img, &req, &mut |_| {}, &|| false).unwrap().frames.concat());
    }
    let d = max_diff(&frames[0], &frames[1], "frames");
    assert!(d < 1e-5, "low-memory frames differ by {d:e}");
}

/// Progress per step, cancel between steps, and bad requests refused with a message.
#[test]
fn progress_cancel_and_bad_requests() {
    let device = cpu();
    let svd = StableVideoDiffusion::load(&fixture("svd1"), &device, DType::F32, MemoryMode::Resident).unwrap();
    let img = image("svd1", "image_0.png");
    let mut req = VideoRequest::new(64, 64);
    req.steps = 2;
    req.seed = 5;
    let mut seen = vec![];
    let a = svd.generate(&img, &req, &mut |p| seen.push((p.step, p.total)), &|| false).unwrap();
    assert_eq!(seen, vec![(1, 2), (2, 2)]);
    assert_eq!(a.frames.len(), svd.default_frames());
    let b = svd.generate(&img, &req, &mut |_| {}, &|| false).unwrap();
    assert_eq!(a.frames, b.frames, "same request and seed, same frames");
    // A photo of another size is resized to the request's.
    let big = image::imageops::resize(&img, 100, 80, image::imageops::FilterType::Triangle);
    assert_eq!(svd.generate(&big, &req, &mut |_| {}, &|| false).unwrap().frames[0].len(), 64 * 64 * 3);
    let cancelled = svd.generate(&img, &req, &mut |_| {}, &|| true);
    assert_eq!(cancelled.err(), Some(model::generate::GenerateError::Cancelled));
    for (tweak, needle) in [
        (Box::new(|r: &mut VideoRequest| r.width = 60) as Box<dyn Fn(&mut VideoRequest)>, "multiples of 8"),
        (Box::new(|r: &mut VideoRequest| r.frames = Some(0)), "frames"),
        (Box::new(|r: &mut VideoRequest| r.steps = 0), "steps"),
        (Box::new(|r: &mut VideoRequest| r.fps = 0), "fps"),
        (Box::new(|r: &mut VideoRequest| r.max_guidance = f32::NAN), "max guidance"),
        (Box::new(|r: &mut VideoRequest| r.decode_chunk = Some(0)), "decode chunk"),
        (Box::new(|r: &mut VideoRequest| r.noise = Some(vec![0.0; 3])), "noise must hold"),
    ] {
        let mut bad = req.clone();
        tweak(&mut bad);
        let e = svd.generate(&img, &bad, &mut |_| {}, &|| false).expect_err("refused").to_string();
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn bad_folders_give_errors_naming_file_and_key() {
    let load = |root: &Path| match StableVideoDiffusion::load(root, &cpu(), DType::F32, MemoryMode::Low) {
        Ok(_) => panic!("{} loaded", root.display()),
        Err(e) => e.to_string(),
    };
    let copy = |tag: &str| {
        let dst = std::env::temp_dir().join(format!("vidplay-svd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        copy_dir(&fixture("svd1"), &dst);
        dst
    };
    // A text-to-image folder is not an image-to-video one.
    let sd = common::fixtures_root().join("sd/sd1");
    assert!(load(&sd).contains("StableVideoDiffusionPipeline"));
    // A UNet whose cross-attention width does not match the image encoder.
    let d = copy("cross");
    let p = d.join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["cross_attention_dim"] = serde_json::json!(48);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let e = load(&d);
    assert!(e.contains("unet/config.json") && e.contains("cross_attention_dim"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
    // A VAE checkpoint missing a tensor of the temporal decoder.
    let d = copy("missing");
    let p = d.join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(k, _)| k != "decoder.time_conv_out.weight").collect();
    let out = safetensors::serialize(kept, None).unwrap();
    std::fs::write(&p, out).unwrap();
    let e = load(&d);
    assert!(e.contains("decoder.time_conv_out.weight"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// svd-xt's real architecture (its published configs; names and shapes from diffusers and
/// transformers built without weights) loads unchanged: every tensor the configs imply is in
/// the checkpoint with its shape, and every tensor of the checkpoint is used.
#[test]
fn svd_xt_names_and_shapes_load_unchanged() {
    use model::diffusers::clip::vision::{ClipVisionConfig, ClipVisionModelWithProjection};
    use model::diffusers::stable_video_diffusion::autoencoder_kl_temporal_decoder::{
        AutoencoderKLTemporalDecoder, TemporalDecoderVaeConfig,
    };
    use model::diffusers::stable_video_diffusion::unet_spatio_temporal::{
        UNetSpatioTemporalConditionModel, UNetSpatioTemporalConfig,
    };
    use std::collections::BTreeMap;
    let root = fixture("svd-xt-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let device = cpu();
    let weights = |c: &str| Weights::shapes_only(&root.join(c), all[c].clone(), &device);
    let count = |c: &str| all[c].values().map(|s| s.iter().product::<usize>()).sum::<usize>();

    let w = weights("unet");
    let cfg = UNetSpatioTemporalConfig::read(&root.join("unet/config.json")).unwrap();
    UNetSpatioTemporalConditionModel::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("unet"), 1_524_623_082);

    let w = weights("vae");
    let cfg = TemporalDecoderVaeConfig::read(&root.join("vae/config.json")).unwrap();
    AutoencoderKLTemporalDecoder::load(&w, &cfg).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("vae"), 97_742_847);

    let w = weights("image_encoder");
    let path = root.join("image_encoder/config.json");
    let cfg = ClipVisionConfig::read(&path).unwrap();
    ClipVisionModelWithProjection::load(&w, &cfg, &path).unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("image_encoder"), 632_076_800);

    // A wrong head count is caught by shape, not silently accepted.
    let mut bad: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("unet/config.json")).unwrap()).unwrap();
    bad["cross_attention_dim"] = serde_json::json!(768);
    let bad: UNetSpatioTemporalConfig = serde_json::from_value(bad).unwrap();
    let e = UNetSpatioTemporalConditionModel::load(&weights("unet"), &bad)
        .expect_err("a 768-wide context must not fit")
        .to_string();
    assert!(e.contains("attn2.to_k.weight"), "{e}");
}

/// The decode chunk chosen from free memory: svd-xt's VAE at 1024x576 (f32, as its config forces)
/// needs about 3 GB a frame by the estimate, so low-memory mode decodes 2 frames at a time (the
/// chunk of diffusers' low-memory recipe) at most, however much is free; a request's own chunk
/// stands.
#[test]
fn the_decode_chunk_follows_free_memory() {
    use model::diffusers::stable_video_diffusion::autoencoder_kl_temporal_decoder::TemporalDecoderVaeConfig;
    use model::diffusers::stable_video_diffusion::pipeline::{
        LOW_MEMORY_DECODE_BYTES, decode_bytes_per_frame, decode_chunk_within,
    };
    let vae = TemporalDecoderVaeConfig::read(&fixture("svd-xt-shapes").join("vae/config.json")).unwrap();
    let per_frame = decode_bytes_per_frame(&vae, DType::F32, 1024, 576);
    assert_eq!(per_frame, 10 * 1024 * 576 * 128 * 4);
    assert_eq!(decode_bytes_per_frame(&vae, DType::F16, 1024, 576), per_frame / 2);
    const GIB: u64 = 1 << 30;
    let chunk = |memory, free| decode_chunk_within(25, per_frame, memory, free);
    assert_eq!(chunk(MemoryMode::Low, Some(80 * GIB)), 2);
    assert_eq!(chunk(MemoryMode::Low, None), 2);
    assert!(2 * per_frame <= LOW_MEMORY_DECODE_BYTES && 3 * per_frame > LOW_MEMORY_DECODE_BYTES);
    assert_eq!(chunk(MemoryMode::Low, Some(4 * GIB)), 1);
    assert_eq!(chunk(MemoryMode::Resident, Some(16 * GIB)), 4); // 0.8 x 16 GiB / 3.0 GB
    assert_eq!(chunk(MemoryMode::Resident, Some(200 * GIB)), 25);
    assert_eq!(chunk(MemoryMode::Resident, Some(GIB)), 1, "at least one frame, even when it will not fit");
    assert_eq!(chunk(MemoryMode::Resident, None), 25, "unknown (wgpu): all at once, diffusers' default");

    // Through a loaded pipeline: the request's own chunk stands (0 too, for validation to refuse).
    let svd = StableVideoDiffusion::load(&fixture("svd1"), &cpu(), DType::F32, MemoryMode::Resident).unwrap();
    let mut req = VideoRequest::new(64, 64);
    req.frames = Some(6);
    assert_eq!(svd.decode_chunk_for(&req, Some(64 * GIB)), 6);
    assert_eq!(svd.decode_chunk_for(&req, Some(1)), 1);
    req.decode_chunk = Some(4);
    assert_eq!(svd.decode_chunk_for(&req, Some(1)), 4);
    req.decode_chunk = Some(0);
    assert_eq!(svd.decode_chunk_for(&req, Some(64 * GIB)), 0);
}
