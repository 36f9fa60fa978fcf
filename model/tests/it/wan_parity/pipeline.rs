//! Whole `WanPipeline` runs against diffusers from the same noise (PSNR >= 40 dB in f32), the
//! low-memory mode, progress, cancel, bad requests and bad folders.

use super::transformer::{FIXTURES, fixture};
use crate::common::{assert_pipelines, copy_dir, cpu, devices};
use burn::tensor::DType;
use model::diffusers::common::video::MemoryMode;
use model::diffusers::parity;
use model::diffusers::wan::pipeline::{Wan, WanOptions, WanRequest};
use model::generate::GenerateError;

#[test]
fn pipelines_match_diffusers() {
    for (label, device) in devices() {
        for name in FIXTURES {
            let results = parity::run_wan(&fixture(name), &device, DType::F32, MemoryMode::Resident)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_pipelines(results, 40.0, &format!("{name} on {label}"));
        }
    }
}

#[test]
fn low_memory_mode_gives_the_same_frames() {
    let device = cpu();
    let name = "wan1";
    let resident = parity::run_wan(&fixture(name), &device, DType::F32, MemoryMode::Resident).unwrap();
    let low = parity::run_wan(&fixture(name), &device, DType::F32, MemoryMode::Low).unwrap();
    for (a, b) in resident.iter().zip(&low) {
        assert!(b.psnr_db >= 40.0 && (a.max_abs - b.max_abs).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

#[test]
fn progress_cancel_and_bad_requests() {
    let device = cpu();
    let wan =
        Wan::load(&fixture("wan1"), &device, DType::F32, WanOptions::on(&device, DType::F32, MemoryMode::Resident))
            .unwrap();
    let mut req = WanRequest::new("a cat walks through the snow");
    (req.width, req.height, req.frames, req.steps, req.seed) = (32, 32, 5, 3, 9);

    let mut steps = Vec::new();
    let video = wan.generate(&req, &mut |p| steps.push((p.step, p.total)), &|| false).unwrap();
    assert_eq!(steps, vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!((video.frames.len(), video.width, video.height), (5, 32, 32));
    assert!(video.frames.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
    // The seed decides the noise: the same seed gives the same clip, another one another.
    let again = wan.generate(&req, &mut |_| {}, &|| false).unwrap();
    assert_eq!(video.frames, again.frames);
    let other = wan.generate(&WanRequest { seed: 10, ..req.clone() }, &mut |_| {}, &|| false).unwrap();
    assert_ne!(video.frames, other.frames);

    let calls = std::cell::Cell::new(0);
    let cancelled = wan.generate(&req, &mut |_| {}, &|| {
        calls.set(calls.get() + 1);
        calls.get() > 2
    });
    assert!(matches!(cancelled, Err(GenerateError::Cancelled)), "{cancelled:?}");

    for (bad, needle) in [
        (WanRequest { frames: 8, ..req.clone() }, "4k + 1"),
        (WanRequest { width: 40, ..req.clone() }, "multiples of 16"),
        (WanRequest { steps: 0, ..req.clone() }, "steps"),
        (WanRequest { guidance: f32::NAN, ..req.clone() }, "guidance"),
        (WanRequest { noise: Some(vec![0.0; 7]), ..req.clone() }, "noise must hold"),
        (WanRequest { width: 32 * 70, height: 32 * 40, ..req.clone() }, "too large"),
        (WanRequest { width: 32 * 40, ..req.clone() }, "position table"),
    ] {
        match wan.generate(&bad, &mut |_| {}, &|| false) {
            Err(GenerateError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
}

#[test]
fn bad_folders_give_errors_naming_the_file() {
    let device = cpu();
    let options = WanOptions::on(&device, DType::F32, MemoryMode::Resident);
    let root = std::env::temp_dir().join(format!("wan-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&fixture("wan1"), &root);

    std::fs::write(root.join("tokenizer/tokenizer.json"), "{ not json").unwrap();
    let err = Wan::load(&root, &device, DType::F32, options.clone())
        .err()
        .expect("a broken tokenizer is refused")
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::copy(fixture("wan1").join("tokenizer/tokenizer.json"), root.join("tokenizer/tokenizer.json")).unwrap();

    // A text encoder narrower than the transformer expects.
    let path = root.join("transformer/config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["text_dim"] = serde_json::json!(64);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = Wan::load(&root, &device, DType::F32, options.clone())
        .err()
        .expect("mismatched widths are refused")
        .to_string();
    assert!(err.contains("text_dim"), "{err}");
    std::fs::copy(fixture("wan1").join("transformer/config.json"), &path).unwrap();

    std::fs::remove_file(root.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    let err = Wan::load(&root, &device, DType::F32, options).err().expect("a missing VAE is refused").to_string();
    assert!(err.contains("vae"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// LoRAs for the Wan transformer (scripts/wan_lora_fixtures.py: rank 4, alpha 8 on every
/// attention projection and the feed-forward), from diffusers' own file and from the same LoRA
/// in ComfyUI's naming of the original Wan modules, with and without whole differences: the frames diffusers makes after
/// `load_lora_weights` and `fuse_lora(0.9)`; without the LoRA, far off.
#[test]
fn loras_merge_into_the_transformer_as_diffusers_fuses_them() {
    use model::diffusers::common::lora::{Lora, LoraUse};
    use std::sync::Arc;
    let device = cpu();
    let folder = fixture("wan1").parent().unwrap().join("wan1-lora");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("expected.json")).unwrap()).unwrap();
    let expected =
        model::diffusers::common::weights::Weights::open(&[folder.join("expected.safetensors")], &device, DType::F32)
            .unwrap();
    let noise = model::diffusers::common::weights::Weights::open(
        &[fixture("wan1").join("noise_0.safetensors")],
        &device,
        DType::F32,
    )
    .unwrap()
    .read_f32("noise")
    .unwrap()
    .0;
    let run = &meta["run"];
    let frames_with = |options: WanOptions| {
        let wan = Wan::load(&fixture("wan1"), &device, DType::F32, options).unwrap_or_else(|e| panic!("{e}"));
        let mut req = WanRequest::new(run["prompt"].as_str().unwrap());
        req.negative_prompt = run["negative"].as_str().unwrap().into();
        req.width = run["width"].as_u64().unwrap() as usize;
        req.height = run["height"].as_u64().unwrap() as usize;
        req.frames = run["frames"].as_u64().unwrap() as usize;
        req.steps = run["steps"].as_u64().unwrap() as usize;
        req.guidance = run["guidance"].as_f64().unwrap() as f32;
        req.noise = Some(noise.clone());
        wan.generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat()
    };
    let frames = |loras: Vec<LoraUse>| {
        frames_with(WanOptions { loras, ..WanOptions::on(&device, DType::F32, MemoryMode::Resident) })
    };
    let diff = |got: &[f32], key: &str| {
        let want = expected.read_f32(key).unwrap().0;
        assert_eq!(got.len(), want.len());
        got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
    };
    let scale = meta["scale"].as_f64().unwrap() as f32;
    // comfyui-diff.safetensors also carries lightx2v's whole differences (bias `.diff_b`, the
    // head's `.diff`; a norm's and a block weight's `.diff`, which diffusers leaves out).
    for (file, key) in [
        ("diffusers.safetensors", "run.0.lora"),
        ("comfyui.safetensors", "run.0.lora"),
        ("comfyui-diff.safetensors", "run.0.lora_diff"),
    ] {
        let lora = Arc::new(Lora::read(&folder.join(file)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(lora.components(), ["transformer"]);
        let got = frames(vec![LoraUse { lora, scale }]);
        let d = diff(&got, key);
        assert!(d < 1e-4, "{file}: {d} off diffusers' fused LoRA");
        if key == "run.0.lora_diff" {
            let without = diff(&got, "run.0.lora");
            assert!(without > 0.05, "the differences left out are only {without} off");
        }
    }
    // A file named for Wan 2.2's low-noise expert still updates a model with one transformer.
    let renamed = std::env::temp_dir().join(format!("wan-lora-{}-low_noise_model.safetensors", std::process::id()));
    std::fs::copy(folder.join("comfyui.safetensors"), &renamed).unwrap();
    let lora = Arc::new(Lora::read(&renamed).unwrap());
    let _ = std::fs::remove_file(&renamed);
    let options = WanOptions::on(&device, DType::F32, MemoryMode::Resident).with_loras(vec![LoraUse { lora, scale }]);
    assert!(options.loras.is_empty() && options.loras_2.len() == 1, "sorted to the second expert");
    let d = diff(&frames_with(options), "run.0.lora");
    assert!(d < 1e-4, "a low-noise LoRA on one transformer: {d} off");
    let plain = frames(Vec::new());
    assert!(diff(&plain, "run.0.plain") < 1e-4, "without a LoRA: diffusers' plain frames");
    let d = diff(&plain, "run.0.lora");
    assert!(d > 0.05, "the LoRA dropped is only {d} off");
}
