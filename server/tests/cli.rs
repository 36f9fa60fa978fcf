//! The `vidplay` command line, run as a user would: bad input gives a clear error and a non-zero
//! exit; a real generation with the shipped weights on wgpu writes playable files whose content
//! matches the prompt.

use image::RgbImage;
use model::vocab::Color;
use server::analysis;
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
fn bad_input_is_a_clear_error() {
    let dir = temp_dir("bad");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    assert_fails_with(&["generate", "--prompt", "", "--out", out], "prompt is empty");
    assert_fails_with(&["generate", "--prompt", "   ", "--out", out], "prompt is empty");
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
    assert_fails_with(&["generate", "--prompt", "a red ball", "--steps", "-3", "--out", out], "unexpected argument '-3'");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--motion", "9", "--out", out], "motion must be");
    assert_fails_with(&["generate", "--prompt", "a red ball", "--device", "tpu", "--out", out], "unknown device");
    assert_fails_with(&["generate", "--prompt", "a red ball"], "--out");
    assert!(!Path::new(out).exists(), "nothing is written for bad input");
}

/// Frames back at the model's resolution (the PNGs are upscaled for display).
fn native_frames(dir: &Path, size: u32) -> Vec<RgbImage> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join("frames"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_rgb8();
            image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle)
        })
        .collect()
}

#[test]
fn generates_a_clip_that_matches_its_prompt() {
    let dir = temp_dir("gen");
    let out = dir.join("clip");
    let result = vidplay(&[
        "generate",
        "--prompt",
        "a red square moving right on a plain background, static camera",
        "--seed",
        "3",
        "--png-frames",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "generate failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for f in ["video.mp4", "video.gif", "metadata.json", "frames/0000.png", "frames/0015.png"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 3);
    assert_eq!(meta["model"], "vidplay-toy-1");
    assert_eq!(meta["mode"], "text-to-video");
    assert_eq!(meta["frames"], 16);
    assert_eq!(meta["resolution"]["native"][0], 32);
    assert_eq!(meta["resolution"]["display"][0], 256);
    assert_eq!(meta["understood"]["color"], "red");

    let mp4 = std::fs::read(out.join("video.mp4")).unwrap();
    let embedded = server::media::embedded_metadata(&mp4).expect("parameters in the mp4");
    assert_eq!(embedded["parameters"]["seed"], 3);
    let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&mp4), mp4.len() as u64).unwrap();
    assert_eq!(reader.tracks()[&1].sample_count(), 16);
    let gif = std::fs::read(out.join("video.gif")).unwrap();
    assert_eq!(server::media::embedded_metadata(&gif).unwrap()["parameters"]["seed"], 3);

    let frames = native_frames(&out, 32);
    assert_eq!(frames.len(), 16);
    let (dx, dy) = analysis::displacement(&frames, Color::Red).expect("a red subject");
    assert!(dx > 3.0 && dx.abs() > dy.abs(), "the red square should move right: ({dx}, {dy})");
    assert!(analysis::blob(&frames[0], Color::Red).is_some_and(|b| b.1 >= 6), "red subject visible");
}
