//! The `vidplay` command line, run as a user would: bad input gives a clear error and a non-zero
//! exit; a real generation with the shipped weights writes playable files whose content matches
//! the prompt's setting; and on wgpu (lavapipe without a GPU) the subject has the asked colour.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vidplay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidplay"))
        .args(args)
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .expect("run vidplay")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_fails_with(args: &[&str], needle: &str) {
    let out = vidplay(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: expected {needle:?} in stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
}

#[test]
fn devices_are_listed_and_a_missing_one_is_a_clear_error() {
    let out = vidplay(&["devices"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.lines().any(|l| l.starts_with("cpu ") && l.contains("flex")), "{listing}");
    assert_eq!(listing.matches("<- auto").count(), 1, "{listing}");
    let dir = temp_dir("devices");
    let o = dir.join("out");
    let o = o.to_str().unwrap();
    for (device, needle) in [
        ("cuda:99", "CUDA device 99 is not available"),
        ("vulkan:99", "Vulkan GPU 99 is not available"),
        ("tpu", "unknown device 'tpu'"),
    ] {
        assert_fails_with(&["generate", "--prompt", "a red ball", "--device", device, "--out", o], needle);
    }
    assert_fails_with(&["parity", "--fixtures", "/nonexistent", "--device", "cpu"], "--fixtures names");
    let out = vidplay(&["generate", "--prompt", "a red ball", "--device", "cuda:99", "--out", o]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NVIDIA") && stderr.contains("vidplay devices"),
        "says what to install and where to look:\n{stderr}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = temp_dir("bad");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    assert_fails_with(&["generate", "--prompt", "", "--out", out], "prompt is empty");
    assert_fails_with(&["generate", "--prompt", "   ", "--out", out], "prompt is empty");
    let lora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/wan/wan1-lora/comfyui.safetensors");
    let lora = lora.to_str().unwrap();
    assert_fails_with(&["generate", "--prompt", "a red ball", "--lora", lora, "--out", out], "takes no LoRAs");
    assert_fails_with(&["generate", "--prompt", "qwerty zxcv", "--out", out], "names nothing");
    assert_fails_with(
        &["generate", "--prompt", "a red ball", "--image", "/no/such/image.png", "--out", out],
        "cannot read image",
    );
    let text = dir.join("notes.png");
    std::fs::write(&text, "this is not a picture").unwrap();
    assert_fails_with(
        &["generate", "--prompt", "a red ball", "--image", text.to_str().unwrap(), "--out", out],
        "not an image",
    );
    assert_fails_with(&["generate", "--prompt", "a red ball", "--frames", "100000", "--out", out], "frames must be");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--frames", "1", "--out", out], "frames must be");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--size", "100000", "--out", out], "display size");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--steps", "0", "--out", out], "steps must be");
    assert_fails_with(
        &["generate", "--prompt", "a red ball", "--steps", "-3", "--out", out],
        "unexpected argument '-3'",
    );
    assert_fails_with(&["generate", "--prompt", "a red ball", "--motion", "9", "--out", out], "motion must be");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--device", "tpu", "--out", out], "unknown device");
    assert_fails_with(&["generate", "--prompt", "a red ball"], "--out");
    // Options the built-in model does not take are refused, not ignored.
    assert_fails_with(
        &["generate", "--prompt", "a red ball", "--noise-aug", "0.1", "--out", out],
        "only for installed models",
    );
    assert_fails_with(
        &["generate", "--prompt", "a red ball", "--width", "64", "--out", out],
        "--width: vidplay-toy-1 has no such setting",
    );
    assert!(!Path::new(out).exists(), "nothing is written for bad input");
}

/// The backdrop's colour: per-channel median in [0, 1] over every frame PNG of a result (the
/// subject covers well under half of the pixels, so it does not move the median).
fn backdrop_rgb(dir: &Path) -> [f32; 3] {
    let mut channels: [Vec<u8>; 3] = Default::default();
    for entry in std::fs::read_dir(dir.join("frames")).unwrap() {
        let img = image::open(entry.unwrap().path()).unwrap().to_rgb8();
        for p in img.pixels() {
            for (channel, value) in channels.iter_mut().zip(p.0) {
                channel.push(value);
            }
        }
    }
    channels.map(|mut v| {
        v.sort_unstable();
        v[v.len() / 2] as f32 / 255.0
    })
}

fn generate(out: &Path, prompt: &str, seed: &str, extra: &[&str]) {
    let mut args = vec!["generate", "--prompt", prompt, "--seed", seed, "--png-frames", "--out", out.to_str().unwrap()];
    args.extend(extra);
    let result = vidplay(&args);
    assert!(result.status.success(), "generate failed:\n{}", String::from_utf8_lossy(&result.stderr));
}

#[test]
fn generates_playable_files_faithful_to_the_setting() {
    let dir = temp_dir("gen");
    let out = dir.join("clip");
    generate(&out, "a white star spinning in the night sky, static camera", "3", &[]);
    for f in ["video.mp4", "video.gif", "metadata.json", "frames/0000.png", "frames/0015.png"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 3);
    assert!(meta["peak_host_memory_mib"].as_f64().unwrap() > 0.0, "host memory measured");
    assert_eq!(meta["model"], "vidplay-toy-1");
    assert_eq!(meta["mode"], "text-to-video");
    assert_eq!(meta["frames"], 16);
    assert_eq!(meta["resolution"]["native"][0], 32);
    assert_eq!(meta["resolution"]["display"][0], 256);
    assert_eq!(meta["understood"]["setting"], "night_sky");

    let mp4 = std::fs::read(out.join("video.mp4")).unwrap();
    let embedded = server::media::encode::embedded_metadata(&mp4).expect("parameters in the mp4");
    assert_eq!(embedded["params"]["seed"], 3);
    assert_eq!(embedded["version"], app::results::RESULT_VERSION);
    let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&mp4), mp4.len() as u64).unwrap();
    assert_eq!(reader.tracks()[&1].sample_count(), 16);
    let gif = std::fs::read(out.join("video.gif")).unwrap();
    assert_eq!(server::media::encode::embedded_metadata(&gif).unwrap()["params"]["seed"], 3);

    // The same subject in four settings: each backdrop comes out in its own colours. The other
    // three at the model's own size and in 6 steps (a quarter of the time), which still settles
    // the backdrop.
    let night = backdrop_rgb(&out);
    let mut others = Vec::new();
    for (name, setting) in [("grass", "on a grass field"), ("ocean", "over the ocean"), ("desert", "in the desert")] {
        let o = dir.join(name);
        generate(
            &o,
            &format!("a white star spinning {setting}, static camera"),
            "3",
            &["--size", "32", "--steps", "6"],
        );
        others.push((name, backdrop_rgb(&o)));
    }
    let luma = |c: [f32; 3]| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    let green_share = |c: [f32; 3]| c[1] / (c[0] + c[1] + c[2]);
    assert!(luma(night) < 0.25, "night sky is dark: {night:?}");
    for (name, c) in &others {
        assert!(luma(night) < luma(*c), "night sky darker than {name}: {night:?} vs {c:?}");
    }
    let [(_, grass), (_, ocean), (_, desert)] = [others[0], others[1], others[2]];
    assert!(ocean[2] > ocean[0] + 0.1, "ocean is blue: {ocean:?}");
    assert!(
        desert[0] > desert[2] + 0.05 && desert[0] >= desert[1] && desert[1] >= desert[2],
        "desert is sandy (warm): {desert:?}"
    );
    assert!(
        green_share(grass) > green_share(ocean) && green_share(grass) > green_share(desert),
        "grass is greenest: {grass:?}"
    );
}

/// Frames written at the model's own resolution (`--size 32`), as images.
fn native_frames(dir: &Path) -> Vec<image::RgbImage> {
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("frames")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| image::open(p).unwrap().to_rgb8()).collect()
}

#[test]
fn generated_clip_has_the_asked_colour_and_direction_on_wgpu() {
    use model::builtin::evaluation as eval;
    use model::builtin::vocab::{Color, Setting};
    let dir = temp_dir("faithful");
    // (prompt, colour, setting, the subject's net movement: x right, y down, in pixels)
    let cases = [
        ("a red ball moving right on a plain background, static camera", Color::Red, Setting::Plain, Some((1.0, 0.0))),
        (
            "a yellow star moving up on a grass field, static camera",
            Color::Yellow,
            Setting::GrassField,
            Some((0.0, -1.0)),
        ),
        ("a blue square bouncing in the desert, static camera", Color::Blue, Setting::Desert, None),
    ];
    for (k, (prompt, color, setting, direction)) in cases.into_iter().enumerate() {
        let out = dir.join(format!("clip{k}"));
        // wgpu for the first, the others on the CPU backend. On a GPU-less machine wgpu is
        // llvmpipe through OpenGL, where every sampling step takes about 3 s after half a minute
        // of shader compilation, so that clip samples in 6 steps rather than the default 24
        // (which still gives the asked colour and direction).
        let device = if k == 0 { "wgpu" } else { "cpu" };
        let out_s = out.to_str().unwrap();
        let mut args = vec!["generate", "--prompt", prompt, "--seed", "5", "--device", device, "--size", "32"];
        if device == "wgpu" {
            args.extend(["--steps", "6"]);
        }
        args.extend(["--png-frames", "--out", out_s]);
        let result = vidplay(&args);
        assert!(result.status.success(), "generate failed:\n{}", String::from_utf8_lossy(&result.stderr));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
        if device == "wgpu" {
            let gpu_mib = meta["peak_gpu_memory_mib"].as_f64().expect("a wgpu device reports its memory");
            assert!(gpu_mib > 0.0 && gpu_mib < 4096.0, "peak GPU memory {gpu_mib} MiB");
        } else {
            assert!(meta["peak_gpu_memory_mib"].is_null(), "the CPU backend has no GPU memory");
        }
        let frames = native_frames(&out);
        assert_eq!(frames.len(), 16);
        assert_eq!(frames[0].dimensions(), (32, 32));
        let got = eval::dominant_color_excluding(&frames, eval::backdrop_colors(setting));
        assert_eq!(got, Some(color), "{prompt}: subject colour");
        if let Some((dx, dy)) = direction {
            let (mx, my) =
                model::builtin::analysis::displacement(&frames, color).expect("the subject is found at both ends");
            assert!(mx * dx + my * dy > 5.0, "{prompt}: the subject moved ({mx:.1}, {my:.1}) px");
        }
    }
}

fn sd_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/sd").join(name)
}

/// `vidplay image` on the tiny SD fixture reproduces diffusers' image from diffusers' noise.
#[test]
fn image_reproduces_diffusers_from_the_same_noise() {
    let dir = temp_dir("image");
    let model = sd_fixture("sd1");
    let noise = model.join("noise_0.safetensors");
    let (model_s, noise_s, out_s) = (model.to_str().unwrap(), noise.to_str().unwrap(), dir.to_str().unwrap());
    let out = vidplay(&[
        "image",
        "--model-dir",
        model_s,
        "--prompt",
        "a red cat in space",
        "--negative",
        "blurry",
        "--steps",
        "3",
        "--guidance",
        "7.5",
        "--width",
        "64",
        "--height",
        "64",
        "--noise",
        noise_s,
        "--device",
        "cpu",
        "--out",
        out_s,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = image::open(dir.join("image.png")).unwrap().to_rgb8();
    assert_eq!(got.dimensions(), (64, 64));
    let device = model::device::open(model::device::DeviceChoice::Cpu).unwrap().device;
    let expected = model::diffusers::common::weights::Weights::open(
        &[model.join("expected.safetensors")],
        &device,
        model::diffusers::DType::F32,
    )
    .unwrap();
    let (want, _) = expected.read_f32("pipeline.0.image").unwrap();
    let mse = got.as_raw().iter().zip(&want).map(|(&a, &b)| ((a as f64 / 255.0) - b as f64).powi(2)).sum::<f64>()
        / want.len() as f64;
    let psnr = 10.0 * (1.0 / mse).log10();
    assert!(psnr >= 40.0, "PSNR {psnr:.1} dB against diffusers");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["prompt"], "a red cat in space");
    assert_eq!(meta["params"]["steps"], 3);
    assert_eq!(meta["params"]["negative"], "blurry");
    // The image carries its settings too (dropping it on the Create page restores them).
    let png = std::fs::read(dir.join("image.png")).unwrap();
    assert_eq!(server::media::encode::embedded_metadata(&png).expect("settings in the PNG")["params"]["steps"], 3);
    assert!(meta["noise_file"].as_str().unwrap().ends_with("noise_0.safetensors"));

    // `models` lists the fixture folders as text-to-image models.
    let out = Command::new(env!("CARGO_BIN_EXE_vidplay"))
        .args(["models", "--models-dir", model.parent().unwrap().to_str().unwrap()])
        .env("HF_HOME", dir.join("hf"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listing.contains("sd1") && listing.contains("text-to-image"), "{listing}");
}

/// `vidplay image --lora FILE:SCALE` (kohya naming) makes diffusers' picture with the same LoRA
/// loaded and fused at that scale, and the metadata records the LoRA.
#[test]
fn image_with_a_lora_reproduces_diffusers_fused_lora() {
    let dir = temp_dir("image-lora");
    let (model, lora) = (sd_fixture("sd1"), sd_fixture("sd1-lora"));
    let noise = lora.join("noise_0.safetensors");
    let spec = format!("{}:0.8", lora.join("kohya.safetensors").display());
    let out = vidplay(&[
        "image",
        "--model-dir",
        model.to_str().unwrap(),
        "--prompt",
        "a red cat in space",
        "--steps",
        "3",
        "--guidance",
        "7.5",
        "--width",
        "64",
        "--height",
        "64",
        "--noise",
        noise.to_str().unwrap(),
        "--lora",
        &spec,
        "--device",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = image::open(dir.join("image.png")).unwrap().to_rgb8();
    let device = model::device::open(model::device::DeviceChoice::Cpu).unwrap().device;
    let expected = model::diffusers::common::weights::Weights::open(
        &[lora.join("expected.safetensors")],
        &device,
        model::diffusers::DType::F32,
    )
    .unwrap();
    let psnr = |want: &[f32]| {
        let mse = got.as_raw().iter().zip(want).map(|(&a, &b)| ((a as f64 / 255.0) - b as f64).powi(2)).sum::<f64>()
            / want.len() as f64;
        10.0 * (1.0 / mse).log10()
    };
    let with = psnr(&expected.read_f32("run.0.lora").unwrap().0);
    let without = psnr(&expected.read_f32("run.0.plain").unwrap().0);
    assert!(with >= 40.0 && without < 25.0, "PSNR {with:.1} dB against the fused LoRA, {without:.1} without");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let recorded = &meta["loras"][0];
    assert_eq!(
        (&recorded["file"], &recorded["scale"]),
        (&serde_json::json!("kohya.safetensors"), &serde_json::json!(0.8))
    );
    assert_eq!(recorded["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn image_bad_input_is_a_clear_error() {
    let dir = temp_dir("image-bad");
    let model = sd_fixture("sd1");
    let m = model.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> =
            ["image", "--model-dir", m, "--prompt", "a cat", "--steps", "1", "--device", "cpu", "--out", o]
                .iter()
                .map(|s| s.to_string())
                .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails_with(&refs, needle);
    };
    run(base(&["--width", "100"]), "multiples of 8");
    let mut empty = base(&[]);
    empty[4] = "  ".into();
    run(empty, "prompt is empty");
    let wrong = model.join("noise_1.safetensors"); // 8x16 latents, not 8x8 (64x64)
    run(base(&["--width", "64", "--height", "64", "--noise", wrong.to_str().unwrap()]), "has shape");
    run(base(&["--noise", "/nonexistent.safetensors"]), "nonexistent.safetensors");
    run(base(&["--scheduler", "heun"]), "unknown scheduler");
    run(base(&["--lora", "/nonexistent.safetensors"]), "nonexistent.safetensors");
    let lora = sd_fixture("sd1-lora").join("peft.safetensors");
    run(base(&["--lora", &format!("{}:9", lora.display())]), "scale must be between");
    let not_a_lora = model.join("noise_0.safetensors");
    run(base(&["--lora", not_a_lora.to_str().unwrap()]), "not a LoRA weight");
    // A model of another task: its engine says what it does.
    let mut video = base(&[]);
    video[2] = svd_fixture("svd1").to_str().unwrap().into();
    run(
        video,
        "StableVideoDiffusionPipeline makes no images from text here (vidplay makes images from text with StableDiffusionPipeline)",
    );
    let mut missing = base(&[]);
    missing[2] = "/nonexistent/model".into();
    run(missing, "does not exist");
    // A folder without weights names the missing file.
    let broken = dir.join("broken");
    std::fs::create_dir_all(broken.join("tokenizer")).unwrap();
    for f in ["model_index.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json"] {
        std::fs::copy(model.join(f), broken.join(f)).unwrap();
    }
    let mut nofiles = base(&[]);
    nofiles[2] = broken.to_str().unwrap().into();
    run(nofiles, "text_encoder/config.json");
    assert!(!out.exists(), "nothing written on errors");
}

/// PSNR of the PNG frames `vidplay generate --png-frames` wrote to `dir` against the frames
/// diffusers made for a fixture's first run, and their shape [frames, H, W, 3].
fn frames_psnr(dir: &Path, fixture: &Path, name: &str) -> (f64, Vec<usize>) {
    frames_psnr_of(dir, fixture, "pipeline.0.frames", name)
}

/// [`frames_psnr`] against the fixture's frames under `key`.
fn frames_psnr_of(dir: &Path, fixture: &Path, key: &str, name: &str) -> (f64, Vec<usize>) {
    let device = model::device::open(model::device::DeviceChoice::Cpu).unwrap().device;
    let expected = model::diffusers::common::weights::Weights::open(
        &[fixture.join("expected.safetensors")],
        &device,
        model::diffusers::DType::F32,
    )
    .unwrap();
    let (want, shape) = expected.read_f32(key).unwrap();
    let mut got = Vec::new();
    for i in 0..shape[0] {
        got.extend(image::open(dir.join(format!("frames/{i:04}.png"))).unwrap().to_rgb8().into_raw());
    }
    assert_eq!(got.len(), want.len(), "{name}: frame count and size");
    let mse =
        got.iter().zip(&want).map(|(&a, &b)| ((a as f64 / 255.0) - b as f64).powi(2)).sum::<f64>() / want.len() as f64;
    (10.0 * (1.0 / mse).log10(), shape)
}

fn svd_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/svd").join(name)
}

/// `vidplay generate --model-dir` on each tiny SVD fixture reproduces diffusers' frames from
/// diffusers' noise, and writes the same files as the built-in model.
#[test]
fn generate_with_svd_reproduces_diffusers_from_the_same_noise() {
    for (name, args) in [
        (
            "svd1",
            [
                "--frames",
                "4",
                "--steps",
                "3",
                "--fps",
                "7",
                "--motion-bucket",
                "127",
                "--noise-aug",
                "0.02",
                "--min-guidance",
                "1",
                "--max-guidance",
                "3",
                "--decode-chunk",
                "3",
                "--width",
                "64",
                "--height",
                "64",
            ],
        ),
        (
            "svd2",
            [
                "--frames",
                "5",
                "--steps",
                "3",
                "--fps",
                "6",
                "--motion-bucket",
                "180",
                "--noise-aug",
                "0.05",
                "--min-guidance",
                "1.5",
                "--max-guidance",
                "2.5",
                "--decode-chunk",
                "2",
                "--width",
                "128",
                "--height",
                "64",
            ],
        ),
    ] {
        let dir = temp_dir(&format!("svd-{name}"));
        let model = svd_fixture(name);
        let (image, noise) = (model.join("image_0.png"), model.join("noise_0.safetensors"));
        let mut all = vec!["generate", "--model-dir", model.to_str().unwrap(), "--image", image.to_str().unwrap()];
        all.extend(args);
        all.extend([
            "--noise",
            noise.to_str().unwrap(),
            "--png-frames",
            "--device",
            "cpu",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let out = vidplay(&all);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        for f in ["video.mp4", "video.gif", "metadata.json", "input.png"] {
            assert!(dir.join(f).is_file(), "{name}: {f} missing");
        }
        let (psnr, shape) = frames_psnr(&dir, &model, name);
        assert!(psnr >= 40.0, "{name}: PSNR {psnr:.1} dB against diffusers");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(meta["mode"], "image-to-video");
        assert_eq!(meta["frames"].as_u64(), Some(shape[0] as u64));
        assert!(meta["timings"]["sampling_s"].as_f64().unwrap() > 0.0);
        let embedded = server::media::encode::embedded_metadata(&std::fs::read(dir.join("video.mp4")).unwrap())
            .expect("parameters in the MP4");
        assert_eq!(embedded["motion_bucket"], meta["motion_bucket"]);
    }
}

fn wan_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/wan").join(name)
}

/// `vidplay generate` with a Wan folder on each tiny fixture reproduces diffusers' frames from
/// diffusers' noise (text to video: no image), and writes the same files as every video engine.
#[test]
fn generate_with_wan_reproduces_diffusers_from_the_same_noise() {
    for name in ["wan1", "wan2"] {
        let dir = temp_dir(&format!("wan-{name}"));
        let model = wan_fixture(name);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(model.join("expected.json")).unwrap()).unwrap();
        let run = &meta["pipelines"][0];
        let arg = |k: &str| run[k].to_string().trim_matches('"').to_string();
        let (prompt, negative) = (arg("prompt"), arg("negative"));
        let (frames, width, height, steps, guidance) =
            (arg("frames"), arg("width"), arg("height"), arg("steps"), arg("guidance"));
        let noise = model.join("noise_0.safetensors");
        // The run's settings, then what differs between the runs of this test.
        let (model_s, noise_s) = (model.to_str().unwrap(), noise.to_str().unwrap());
        let settings = [
            "generate",
            "--model-dir",
            model_s,
            "--prompt",
            &prompt,
            "--negative",
            &negative,
            "--frames",
            &frames,
            "--width",
            &width,
            "--height",
            &height,
            "--steps",
            &steps,
            "--guidance",
            &guidance,
            "--noise",
            noise_s,
            "--png-frames",
            "--device",
            "cpu",
        ];
        let out = vidplay(&[&settings[..], &["--out", dir.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        for f in ["video.mp4", "video.gif", "metadata.json"] {
            assert!(dir.join(f).is_file(), "{name}: {f} missing");
        }
        assert!(!dir.join("input.png").exists(), "{name}: text to video has no input image");
        let (psnr, shape) = frames_psnr(&dir, &model, name);
        assert!(psnr >= 40.0, "{name}: PSNR {psnr:.1} dB against diffusers");
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(written["mode"], "text-to-video");
        assert_eq!(written["family"], "wan");
        assert_eq!(written["fps"], 16);
        assert_eq!(written["frames"].as_u64(), Some(shape[0] as u64));
        assert_eq!(written["params"]["negative"], negative);
        if name != "wan1" {
            continue;
        }
        // With a LoRA in ComfyUI's naming: diffusers' frames with the same LoRA fused.
        let lora = wan_fixture("wan1-lora");
        let with = temp_dir("wan-lora");
        let spec = format!("{}:0.9", lora.join("comfyui.safetensors").display());
        let args = [&settings[..], &["--lora", &spec, "--out", with.to_str().unwrap()]].concat();
        let out = vidplay(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (psnr, _) = frames_psnr_of(&with, &lora, "run.0.lora", "wan1 with a LoRA");
        let (plain, _) = frames_psnr_of(&with, &lora, "run.0.plain", "wan1 with a LoRA");
        assert!(psnr >= 40.0 && plain < psnr - 5.0, "PSNR {psnr:.1} dB with the LoRA, {plain:.1} against no LoRA");
    }
}

/// `vidplay generate --image` with a Wan 2.2 image-to-video folder (two experts, the tiny
/// wan-i2v1 fixture) reproduces diffusers' clips from the same noise: with a second guidance,
/// with a last frame (resized to the clip), and with a LoRA merged into both experts.
#[test]
fn generate_with_wan_image_to_video_reproduces_diffusers() {
    let lora = format!("{}:0.9", wan_fixture("wan-i2v1").join("lora.safetensors").display());
    // Wan 2.2 (two experts), and Wan 2.1 with its CLIP image encoder: one model without a last
    // frame, the first-last-frame model with one.
    let swap = "--gpu-blocks=1".to_string();
    for (fixture, i, extra, key, n) in [
        ("wan-i2v1", 0, None, "pipeline.0.frames"),
        // Block swap: one block of two on the device, the other streamed.
        ("wan-i2v1", 0, Some(&swap), "pipeline.0.frames"),
        ("wan-i2v1", 1, None, "pipeline.1.frames"),
        ("wan-i2v1", 0, Some(&lora), "lora.0.frames"),
        ("wan-i2v21", 0, None, "pipeline.0.frames"),
        ("wan-flf21", 0, None, "pipeline.0.frames"),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, (fixture, i, extra, key))| (fixture, i, extra, key, n))
    {
        let model = wan_fixture(fixture);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(model.join("expected.json")).unwrap()).unwrap();
        let run = &meta["pipelines"][i];
        let arg = |k: &str| run[k].to_string().trim_matches('"').to_string();
        let dir = temp_dir(&format!("{fixture}-{key}-{n}"));
        let mut args: Vec<String> = [
            "generate",
            "--model-dir",
            model.to_str().unwrap(),
            "--image",
            model.join(arg("image")).to_str().unwrap(),
            "--prompt",
            &arg("prompt"),
            "--negative",
            &arg("negative"),
            "--frames",
            &arg("frames"),
            "--width",
            &arg("width"),
            "--height",
            &arg("height"),
            "--steps",
            &arg("steps"),
            "--guidance",
            &arg("guidance"),
            "--noise",
            model.join(format!("noise_{i}.safetensors")).to_str().unwrap(),
            "--png-frames",
            "--device",
            "cpu",
            "--out",
            dir.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(g) = run["guidance_2"].as_f64() {
            args.extend(["--guidance-2".into(), g.to_string()]);
        }
        if let Some(last) = run["last_image"].as_str() {
            args.extend(["--last-image".into(), model.join(last).display().to_string()]);
        }
        match extra {
            Some(flag) if flag.starts_with("--") => args.push(flag.clone()),
            Some(lora) => args.extend(["--lora".into(), lora.clone()]),
            None => {}
        }
        let out = vidplay(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{key}: {}", String::from_utf8_lossy(&out.stderr));
        let (psnr, _) = frames_psnr_of(&dir, &model, key, key);
        assert!(psnr >= 40.0, "{key}: PSNR {psnr:.1} dB against diffusers");
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(
            (written["mode"].as_str(), written["family"].as_str()),
            (Some("image-to-video"), Some("wan-image-to-video"))
        );
        assert_eq!(written["params"]["last_image"].as_bool().unwrap_or(false), run["last_image"].is_string());
        assert!(dir.join("input.png").is_file(), "{key}: the picture animated is kept");
        match extra {
            Some(flag) if flag.starts_with("--") => assert_eq!(written["gpu_blocks"].as_u64(), Some(1), "{written}"),
            Some(_) => assert_eq!(written["loras"][0]["scale"].as_f64(), Some(0.9), "{written}"),
            None => {}
        }
    }
    // What the model does not take, or a picture it cannot end on, is a clear error.
    let model = wan_fixture("wan-i2v1");
    let image = model.join("image_0.png");
    let wan1 = wan_fixture("wan1");
    let dir = temp_dir("wan-i2v-bad");
    let small = ["--frames", "5", "--width", "32", "--height", "32", "--steps", "1", "--device", "cpu"];
    let out = ["--out", dir.to_str().unwrap()];
    let t2v = ["generate", "--model-dir", wan1.to_str().unwrap(), "--prompt", "a cat"];
    assert_fails_with(&[&t2v[..], &small, &out, &["--guidance-2", "3"]].concat(), "--guidance-2");
    let i2v = ["generate", "--model-dir", model.to_str().unwrap(), "--prompt", "a cat"];
    assert_fails_with(&[&i2v[..], &small, &out].concat(), "--image");
    assert_fails_with(&[&i2v[..], &small, &out, &["--last-image", image.to_str().unwrap()]].concat(), "--image");
    let with_image = ["--image", image.to_str().unwrap()];
    let i2v21 = wan_fixture("wan-i2v21");
    let plain = ["generate", "--model-dir", i2v21.to_str().unwrap(), "--prompt", "a cat"];
    let last = ["--last-image", image.to_str().unwrap()];
    assert_fails_with(&[&plain[..], &small, &out, &with_image, &last].concat(), "takes no --last-image");
    let flf = wan_fixture("wan-flf21");
    let flf = ["generate", "--model-dir", flf.to_str().unwrap(), "--prompt", "a cat"];
    assert_fails_with(&[&flf[..], &small, &out, &with_image].concat(), "add a last frame");
    let svd = svd_fixture("svd1");
    let svd = ["generate", "--model-dir", svd.to_str().unwrap(), "--prompt", "a cat", "--gpu-blocks", "1"];
    assert_fails_with(&[&svd[..], &small, &out, &with_image].concat(), "takes no --gpu-blocks");
    assert!(!dir.join("metadata.json").exists(), "nothing written on errors");
}

/// The command line runs installed models through their engines: what it leaves out takes the
/// model's own defaults (its description, as the server's jobs do), here SVD's clip length from
/// the folder's UNet config and its 7 fps, and Wan's 81 frames at 16 fps, guidance 5.
#[test]
fn generate_leaves_to_each_model_its_own_defaults() {
    let dir = temp_dir("defaults");
    let read = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap()
    };
    let svd = svd_fixture("svd1");
    let (out, image) = (dir.join("svd"), svd.join("image_0.png"));
    let args = ["generate", "--model-dir", svd.to_str().unwrap(), "--image", image.to_str().unwrap()];
    let small = ["--width", "64", "--height", "64", "--steps", "1", "--device", "cpu", "--out", out.to_str().unwrap()];
    let run = vidplay(&[&args[..], &small[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let meta = read(&out);
    // svd1's UNet was made for 4 frames.
    assert_eq!((meta["frames"].as_u64(), meta["fps"].as_u64()), (Some(4), Some(7)), "{meta}");
    assert_eq!((meta["params"]["guidance"].as_f64(), meta["motion_bucket"].as_u64()), (Some(3.0), Some(127)));

    let wan = wan_fixture("wan1");
    let out = dir.join("wan");
    let args = ["generate", "--model-dir", wan.to_str().unwrap(), "--prompt", "a red ball rolls"];
    let small = ["--width", "32", "--height", "32", "--steps", "1", "--device", "cpu", "--out", out.to_str().unwrap()];
    let run = vidplay(&[&args[..], &small[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let meta = read(&out);
    assert_eq!((meta["frames"].as_u64(), meta["fps"].as_u64()), (Some(81), Some(16)), "{meta}");
    assert_eq!(meta["params"]["guidance"].as_f64(), Some(5.0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_with_wan_bad_input_is_a_clear_error() {
    let dir = temp_dir("wan-bad");
    let model = wan_fixture("wan1");
    let m = model.to_str().unwrap().to_string();
    let out = dir.to_str().unwrap().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "generate",
            "--model-dir",
            &m,
            "--prompt",
            "a cat",
            "--height",
            "32",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--out",
            &out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needle: &str| {
        assert_fails_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle)
    };
    run(base(&["--frames", "6", "--width", "32"]), "4k + 1");
    run(base(&["--frames", "5", "--width", "40"]), "multiples of 16");
    let image = svd_fixture("svd1").join("image_0.png");
    run(base(&["--frames", "5", "--width", "32", "--image", image.to_str().unwrap()]), "does not take --image");
    let noise = svd_fixture("svd1").join("noise_0.safetensors");
    run(base(&["--frames", "5", "--width", "32", "--noise", noise.to_str().unwrap()]), "noise");
    let mut empty = base(&["--frames", "5", "--width", "32"]);
    empty[4] = "  ".into();
    run(empty, "--prompt");
    assert!(!dir.join("metadata.json").exists(), "nothing written on errors");
}

#[test]
fn generate_with_svd_bad_input_is_a_clear_error() {
    let dir = temp_dir("svd-bad");
    let model = svd_fixture("svd1");
    let (m, image) = (model.to_str().unwrap().to_string(), model.join("image_0.png"));
    let o = dir.join("out");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "generate",
            "--model-dir",
            &m,
            "--steps",
            "1",
            "--height",
            "64",
            "--device",
            "cpu",
            "--out",
            o.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails_with(&refs, needle);
    };
    let img = image.to_str().unwrap();
    run(base(&[]), "--image");
    run(base(&["--image", "/nonexistent.png"]), "nonexistent.png");
    run(base(&["--image", img, "--width", "100"]), "multiples of 8");
    run(base(&["--image", img, "--width", "64", "--frames", "0"]), "frames");
    run(base(&["--image", img, "--width", "64", "--fps", "0"]), "fps");
    run(base(&["--image", img, "--width", "64", "--decode-chunk", "0"]), "decode chunk");
    // svd2's noise is for 5 frames of 64x128.
    let wrong = svd_fixture("svd2").join("noise_0.safetensors");
    run(base(&["--image", img, "--width", "64", "--noise", wrong.to_str().unwrap()]), "has shape");
    let sd = sd_fixture("sd1");
    let mut t2i = base(&["--image", img, "--width", "64"]);
    t2i[2] = sd.to_str().unwrap().into();
    run(t2i, "StableDiffusionPipeline makes no video");
    assert!(!o.join("metadata.json").exists(), "nothing written on failure");
}

/// `vidplay extend` continues a clip from its last frame: the source frames first, unchanged,
/// then each segment without a repeated frame; the metadata knows the parent and the segments.
#[test]
fn extend_continues_a_clip_with_segments() {
    let dir = temp_dir("extend");
    let (src, out) = (dir.join("src"), dir.join("longer"));
    let picture = dir.join("photo.png");
    image::RgbImage::from_fn(72, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x + y) * 2) as u8]))
        .save(&picture)
        .unwrap();
    let made = vidplay(&[
        "generate",
        "--image",
        picture.to_str().unwrap(),
        "--prompt",
        "camera pans left",
        "--frames",
        "6",
        "--seed",
        "2",
        "--png-frames",
        "--out",
        src.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let ext = vidplay(&[
        "extend",
        "--from",
        src.to_str().unwrap(),
        "--prompt",
        "zoom in",
        "--prompt",
        "static camera, snow",
        "--frames",
        "4",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ext.status.success(), "{}", String::from_utf8_lossy(&ext.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["mode"], "extend");
    assert_eq!(meta["frames"], 6 + 3 + 3);
    assert_eq!(meta["segments"].as_array().unwrap().len(), 2);
    assert_eq!(meta["parent"], src.to_str().unwrap());
    let frame = |d: &Path, i: usize| image::open(d.join(format!("frames/{i:04}.png"))).unwrap().to_rgb8();
    for i in 0..6 {
        assert_eq!(frame(&out, i), frame(&src, i), "source frame {i} kept");
    }
    assert_eq!(frame(&out, 6).dimensions(), (72, 48));
    assert_ne!(frame(&out, 6), frame(&out, 5), "no repeated frame at the seam");
    // It can be extended again; a folder that is not a result, or has no frames, is refused.
    let again = vidplay(&[
        "extend",
        "--from",
        out.to_str().unwrap(),
        "--prompt",
        "camera pans right",
        "--out",
        dir.join("again").to_str().unwrap(),
    ]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_fails_with(
        &["extend", "--from", dir.to_str().unwrap(), "--prompt", "x", "--out", dir.join("x").to_str().unwrap()],
        "not a vidplay result",
    );
    std::fs::remove_file(src.join("frames/0005.png")).unwrap();
    assert_fails_with(
        &["extend", "--from", src.to_str().unwrap(), "--prompt", "x", "--out", dir.join("y").to_str().unwrap()],
        "--png-frames",
    );
    assert_fails_with(
        &[
            "extend",
            "--from",
            src.to_str().unwrap(),
            "--prompt",
            "x",
            "--segments",
            "30",
            "--out",
            dir.join("z").to_str().unwrap(),
        ],
        "--segments must be",
    );
}

fn ip2p_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/ip2p").join(name)
}

/// `vidplay edit` on the tiny InstructPix2Pix fixture reproduces diffusers' edit from the same
/// noise (the ancestral scheduler's per-step noise included), and records every parameter and
/// the source image's hash.
#[test]
fn edit_reproduces_diffusers_from_the_same_noise() {
    let dir = temp_dir("edit");
    let model = ip2p_fixture("ip2p1");
    let (image, noise) = (model.join("input_1.png"), model.join("noise_1.safetensors"));
    let out = vidplay(&[
        "edit",
        "--model-dir",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        "add snow at night",
        "--negative",
        "blurry",
        "--steps",
        "4",
        "--guidance",
        "5",
        "--image-guidance",
        "1.2",
        "--width",
        "128",
        "--height",
        "64",
        "--noise",
        noise.to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = image::open(dir.join("image.png")).unwrap().to_rgb8();
    assert_eq!(got.dimensions(), (128, 64));
    let device = model::device::open(model::device::DeviceChoice::Cpu).unwrap().device;
    let expected = model::diffusers::common::weights::Weights::open(
        &[model.join("expected.safetensors")],
        &device,
        model::diffusers::DType::F32,
    )
    .unwrap();
    let (want, _) = expected.read_f32("pipeline.1.image").unwrap();
    let mse = got.as_raw().iter().zip(&want).map(|(&a, &b)| ((a as f64 / 255.0) - b as f64).powi(2)).sum::<f64>()
        / want.len() as f64;
    let psnr = 10.0 * (1.0 / mse).log10();
    assert!(psnr >= 40.0, "PSNR {psnr:.1} dB against diffusers");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["mode"], "edit");
    assert_eq!(meta["prompt"], "add snow at night");
    let p = &meta["params"];
    assert_eq!(
        (p["steps"].as_u64(), p["negative"].as_str(), p["task"].as_str()),
        (Some(4), Some("blurry"), Some("edit"))
    );
    assert_eq!(p["guidance"].as_f64(), Some(5.0));
    assert!((p["image_guidance"].as_f64().unwrap() - 1.2).abs() < 1e-6, "{p}");
    assert_eq!(meta["scheduler"], "EulerAncestral");
    let source = image::open(&image).unwrap().to_rgb8();
    assert_eq!(meta["source_sha256"], server::media::input::image_sha256(&source));
    assert_eq!(meta["source_sha256"].as_str().unwrap().len(), 64);
    assert!(meta["noise_file"].as_str().unwrap().ends_with("noise_1.safetensors"));
    assert!(dir.join("input.png").is_file(), "the image as the editor saw it");

    // Without a size, the input's aspect at the model's native size (sample_size 8 x 8 = 64).
    let dir2 = temp_dir("edit-size");
    let out = vidplay(&[
        "edit",
        "--model-dir",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        "make it red",
        "--steps",
        "2",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        dir2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(image::open(dir2.join("image.png")).unwrap().to_rgb8().dimensions(), (64, 32));

    // Without a model, the built-in editor, through its engine as in the queue; it makes one
    // pass, so steps are not its to set, and the options of installed editors are refused.
    let dir3 = temp_dir("edit-builtin");
    let args = ["edit", "--image", image.to_str().unwrap(), "--prompt", "add snow", "--seed", "3", "--device", "cpu"];
    let out = vidplay(&[&args[..], &["--out", dir3.to_str().unwrap()][..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir3.join("metadata.json")).unwrap()).unwrap();
    assert_eq!((meta["model"].as_str(), meta["mode"].as_str()), (Some("vidplay-edit-1"), Some("edit")), "{meta}");
    assert!(dir3.join("image.png").is_file());
    let again = dir3.join("again");
    let steps = [&args[..], &["--steps", "5", "--out", again.to_str().unwrap()][..]].concat();
    assert_fails_with(&steps, "--steps: vidplay-edit-1 has no such setting");
    let noise = [&args[..], &["--noise", noise.to_str().unwrap(), "--out", again.to_str().unwrap()][..]].concat();
    assert_fails_with(&noise, "--noise (only for installed editors");
}

#[test]
fn edit_bad_input_is_a_clear_error() {
    let dir = temp_dir("edit-bad");
    let model = ip2p_fixture("ip2p1");
    let m = model.to_str().unwrap();
    let img = model.join("input_0.png");
    let i = img.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "edit",
            "--model-dir",
            m,
            "--image",
            i,
            "--prompt",
            "add snow",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--out",
            o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails_with(&refs, needle);
    };
    let mut empty = base(&[]);
    empty[6] = " ".into();
    run(empty, "--prompt is empty");
    let mut no_image = base(&[]);
    no_image[4] = "/no/such/picture.png".into();
    run(no_image, "cannot read the image");
    run(base(&["--width", "100", "--height", "64"]), "multiples of 8");
    run(base(&["--width", "64"]), "--height");
    run(base(&["--image-guidance", "-1"]), "unexpected argument");
    run(base(&["--image-guidance", "1000"]), "image-guidance");
    run(base(&["--scheduler", "heun"]), "unknown scheduler");
    // ip2p1's second noise is for 128x64; this image makes 64x64.
    run(base(&["--noise", model.join("noise_1.safetensors").to_str().unwrap()]), "has shape");
    // A recording of fewer steps than asked.
    let mut five = base(&["--noise", model.join("noise_0.safetensors").to_str().unwrap()]);
    five[8] = "5".into();
    run(five, "step_noise");
    // A text-to-image model is not an editor.
    let mut sd = base(&[]);
    sd[2] = sd_fixture("sd1").to_str().unwrap().into();
    run(sd, "StableDiffusionInstructPix2PixPipeline");
    assert!(!out.exists(), "nothing written on errors");
}

#[test]
fn score_measures_a_clip_from_its_files_and_bad_input_is_a_clear_error() {
    let dir = temp_dir("score");
    let out = dir.join("clip");
    generate(&out, "a red ball moving left on a plain background, static camera", "5", &[]);
    let score = |args: &[&str]| -> serde_json::Value {
        let result = vidplay(args);
        assert!(result.status.success(), "score {args:?} failed:\n{}", String::from_utf8_lossy(&result.stderr));
        serde_json::from_slice(&result.stdout).expect("JSON on stdout")
    };
    let frames = out.join("frames");
    let prompt = "a red ball moving left on a plain background, static camera";
    let from_frames = score(&["score", frames.to_str().unwrap(), "--prompt", prompt]);
    for key in [
        "motion",
        "camera_motion",
        "object_motion",
        "smoothness",
        "flicker",
        "sharpness",
        "consistency",
        "still",
        "camera_only",
    ] {
        assert!(!from_frames[key].is_null(), "no {key}: {from_frames}");
    }
    assert_eq!(from_frames["frames"], 16);
    assert_eq!(from_frames["still"], false, "the ball moves: {from_frames}");
    let concepts = from_frames["faithfulness"]["concepts"].as_array().unwrap();
    assert!(concepts.iter().any(|c| c["concept"] == "red"), "{from_frames}");
    // The MP4 and the GIF give nearly the same motion as the lossless frames.
    for file in ["video.mp4", "video.gif"] {
        let s = score(&["score", out.join(file).to_str().unwrap()]);
        assert_eq!(s["frames"], 16, "{file}");
        let (a, b) = (s["motion"].as_f64().unwrap(), from_frames["motion"].as_f64().unwrap());
        assert!((a - b).abs() <= 0.25 * b + 0.05, "{file}: motion {a} vs {b}");
    }
    // Against the first frame itself: fidelity is perfect.
    let s = score(&["score", frames.to_str().unwrap(), "--image", frames.join("0000.png").to_str().unwrap()]);
    assert_eq!(s["fidelity"]["psnr"], 99.0);

    std::fs::create_dir_all(dir.join("one")).unwrap();
    std::fs::copy(frames.join("0000.png"), dir.join("one/0000.png")).unwrap();
    std::fs::write(dir.join("clip.webm"), b"\x1a\x45\xdf\xa3").unwrap();
    assert_fails_with(&["score", dir.join("missing.mp4").to_str().unwrap()], "cannot read");
    assert_fails_with(&["score", dir.join("clip.webm").to_str().unwrap()], "WebM");
    assert_fails_with(&["score", dir.join("one").to_str().unwrap()], "at least 2 frames");
    assert_fails_with(
        &["score", frames.to_str().unwrap(), "--image", dir.join("nope.png").to_str().unwrap()],
        "nope.png",
    );
}

#[test]
fn an_empty_database_url_is_no_database() {
    // `VIDPLAY_DATABASE_URL=` (say, from an env file with the line left blank) is no database:
    // a web node without workers, or a worker, must not start on it (SQLite is nobody's queue).
    let data = temp_dir("empty-db");
    let data_arg = data.to_str().unwrap();
    for args in [
        vec!["serve", "--no-worker", "--data-dir", data_arg, "--addr", "127.0.0.1:0"],
        vec!["worker", "--media", data_arg],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vidplay"))
            .args(&args)
            .env("VIDPLAY_DATABASE_URL", "")
            .output()
            .expect("run vidplay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started without a database");
        assert!(stderr.contains("needs --database-url postgres://"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_fails_with(
        &["serve", "--no-worker", "--data-dir", data_arg, "--database-url", "/tmp/x.db"],
        "--no-worker needs --database-url postgres://",
    );
    assert!(!data.join("vidplay.db").exists(), "nothing was made in the data directory");
}

#[test]
fn a_short_token_is_refused() {
    let data = temp_dir("short-token");
    assert_fails_with(
        &["serve", "--data-dir", data.to_str().unwrap(), "--token", "s3cret"],
        "--token must be at least 12 characters",
    );
}
