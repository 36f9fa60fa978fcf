//! A finished clip on disk: video.mp4, video.gif, metadata.json, and optionally frames/*.png and
//! input.png. Every file is written under a temporary name and renamed into place.

use crate::media;
use anyhow::Result;
use model::builtin::pipeline::{GeneratedClip, GenerationRequest};
use model::builtin::prompt::Prompt;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub load_s: f64,
    pub sampling_s: f64,
    pub encode_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    /// What the model generated.
    pub native: [u32; 2],
    /// What the files contain (upscaled).
    pub display: [u32; 2],
    pub upscale_filter: String,
}

/// Everything needed to understand and reproduce a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub model: String,
    pub mode: String,
    pub prompt: String,
    pub understood: Prompt,
    pub parameters: GenerationRequest,
    /// The seed actually used (also in `parameters.seed`).
    pub seed: u64,
    pub frames: usize,
    pub fps: u32,
    pub duration_s: f64,
    pub resolution: Resolution,
    /// Where the input image came from, for image-to-video.
    pub input_image: Option<String>,
    pub device: String,
    pub timings: Timings,
    pub created_unix: u64,
    pub vidplay_version: String,
}

impl Metadata {
    pub fn new(
        model_id: &str,
        req: &GenerationRequest,
        clip: &GeneratedClip,
        input_image: Option<String>,
        device: &str,
        timings: Timings,
    ) -> Self {
        let frames = clip.frames.len();
        Self {
            model: model_id.into(),
            mode: if clip.native_input.is_some() { "image-to-video" } else { "text-to-video" }.into(),
            prompt: req.prompt.clone(),
            understood: clip.understood.clone(),
            parameters: GenerationRequest {
                frames: Some(frames),
                ..req.clone()
            },
            seed: req.seed,
            frames,
            fps: clip.fps,
            duration_s: frames as f64 / clip.fps as f64,
            resolution: Resolution {
                native: [clip.native_size; 2],
                display: [req.display_size; 2],
                upscale_filter: "catmull-rom".into(),
            },
            input_image,
            device: device.into(),
            timings,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            vidplay_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Encodes and writes the clip's files into `dir` (created if needed). Returns the seconds
/// spent encoding; `meta.timings.encode_s` is filled in before metadata.json is written.
pub fn write_clip(dir: &Path, clip: &GeneratedClip, meta: &mut Metadata, png_frames: bool) -> Result<f64> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir)?;
    let embedded = serde_json::to_string(&meta)?;
    let mp4 = media::encode_mp4(&clip.frames, clip.fps, &embedded)?;
    let gif = media::encode_gif(&clip.frames, clip.fps, &embedded)?;
    media::write_atomic(&dir.join("video.mp4"), &mp4)?;
    media::write_atomic(&dir.join("video.gif"), &gif)?;
    if png_frames {
        media::write_png_frames(&clip.frames, &dir.join("frames"))?;
    }
    if let Some(input) = &clip.native_input {
        let mut bytes = Vec::new();
        input.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
        media::write_atomic(&dir.join("input.png"), &bytes)?;
    }
    let encode_s = started.elapsed().as_secs_f64();
    meta.timings.encode_s = encode_s;
    meta.timings.total_s += encode_s;
    media::write_atomic(&dir.join("metadata.json"), &serde_json::to_vec_pretty(&meta)?)?;
    Ok(encode_s)
}
