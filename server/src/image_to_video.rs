//! Image-to-video with Stable Video Diffusion: `vidplay generate --model-dir DIR --image PATH`,
//! writing the same files as the built-in model (video.mp4, video.gif, metadata.json, input.png,
//! optionally frames/*.png).

use crate::media;
use anyhow::{bail, Context};
use app::types::JobParams;
use image::RgbImage;
use model::device::OpenedDevice;
use model::diffusers::stable_video_diffusion::{GeneratedVideo, MemoryMode, StableVideoDiffusion, VideoRequest};
use model::diffusers::common::weights::Weights;
use model::diffusers::DType;
use serde::Serialize;
use std::path::Path;

/// Reads `key` from a safetensors file as f32 of exactly `shape`; `None` when the key is absent
/// and not `required`.
pub fn read_tensor(path: &Path, key: &str, shape: &[usize], required: bool) -> anyhow::Result<Option<Vec<f32>>> {
    let device = model::device::open(model::device::DeviceChoice::Cpu)?.device;
    let file = Weights::open(&[path.to_path_buf()], &device, DType::F32)?;
    if !file.contains(key) {
        if required {
            bail!("{}: needs a tensor named `{key}` of shape {shape:?}", path.display());
        }
        return Ok(None);
    }
    let (values, found) = file.read_f32(key)?;
    if found != shape {
        bail!("{}: `{key}` has shape {found:?}, this request needs {shape:?}", path.display());
    }
    Ok(Some(values))
}

/// Reads `--noise FILE`: `noise` [1, frames, 4, H/8, W/8] (diffusers' `latents`) and, when
/// present, `image_noise` [1, 3, H, W] (the image's augmentation noise).
pub fn read_noise(path: &Path, frames: usize, latent: [usize; 3], size: [usize; 2]) -> anyhow::Result<(Vec<f32>, Option<Vec<f32>>)> {
    let [c, h, w] = latent;
    let noise = read_tensor(path, "noise", &[1, frames, c, h, w], true)?.expect("required");
    let image_noise = read_tensor(path, "image_noise", &[1, 3, size[0], size[1]], false)?;
    Ok((noise, image_noise))
}

/// Limits of Stable Video Diffusion jobs in the playground.
pub const MAX_VIDEO_SIDE: u32 = 1024;
pub const MAX_VIDEO_FRAMES: u32 = 32;
pub const MAX_VIDEO_STEPS: u32 = 100;

/// Checks an SVD job's parameters (`has_image`: an image to animate was given).
pub fn validate_job(p: &JobParams, has_image: bool) -> Result<(), String> {
    if !has_image && p.prompt.trim().is_empty() {
        return Err("give an image to animate, or a prompt to make a keyframe from".into());
    }
    for (what, v) in [("width", p.width), ("height", p.height)] {
        if v < 64 || v > MAX_VIDEO_SIDE || v % 64 != 0 {
            return Err(format!("{what} must be a multiple of 64 from 64 to {MAX_VIDEO_SIDE}, not {v}"));
        }
    }
    if p.frames < 2 || p.frames > MAX_VIDEO_FRAMES {
        return Err(format!("frames must be 2 to {MAX_VIDEO_FRAMES}, not {}", p.frames));
    }
    if p.fps == 0 || p.fps > 60 {
        return Err(format!("frames per second must be 1 to 60, not {}", p.fps));
    }
    if p.steps == 0 || p.steps > MAX_VIDEO_STEPS {
        return Err(format!("steps must be 1 to {MAX_VIDEO_STEPS}, not {}", p.steps));
    }
    if !p.guidance.is_finite() || !(1.0..=20.0).contains(&p.guidance) {
        return Err(format!("guidance must be 1 to 20, not {}", p.guidance));
    }
    if !p.motion.is_finite() || !(0.0..=2.0).contains(&p.motion) {
        return Err(format!("motion strength must be 0 to 2, not {}", p.motion));
    }
    if !has_image {
        if p.keyframe_steps == 0 || p.keyframe_steps > crate::jobs::MAX_IMAGE_STEPS {
            return Err(format!("keyframe steps must be 1 to {}, not {}", crate::jobs::MAX_IMAGE_STEPS, p.keyframe_steps));
        }
        if !p.keyframe_guidance.is_finite() || !(0.0..=30.0).contains(&p.keyframe_guidance) {
            return Err(format!("keyframe guidance must be 0 to 30, not {}", p.keyframe_guidance));
        }
    }
    Ok(())
}

/// The SVD request a playground job makes. Guidance is the last frame's (it ramps from 1 on
/// the first, diffusers' default), and motion strength scales SVD's motion bucket (1 is 127).
pub fn request_of(p: &JobParams) -> VideoRequest {
    let mut req = VideoRequest::new(p.width as usize, p.height as usize);
    req.frames = Some(p.frames as usize);
    req.fps = p.fps;
    req.steps = p.steps as usize;
    req.max_guidance = p.guidance;
    req.min_guidance = 1.0f32.min(p.guidance);
    req.motion_bucket = (127.0 * p.motion).round().clamp(0.0, 255.0) as u32;
    req.seed = p.seed.unwrap_or(0);
    req
}

/// `image` at exactly `width` x `height` (Lanczos, as diffusers' image processor resizes).
pub fn fit(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if (image.width() as usize, image.height() as usize) == (width, height) {
        image.clone()
    } else {
        image::imageops::resize(image, width as u32, height as u32, image::imageops::FilterType::Lanczos3)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoTimings {
    pub load_s: f64,
    /// CLIP image embedding and VAE encoding of the input.
    pub conditioning_s: f64,
    pub sampling_s: f64,
    pub decode_s: f64,
    /// Writing the video files.
    pub encode_s: f64,
    pub total_s: f64,
}

/// Everything one image-to-video run used and took.
#[derive(Debug, Clone, Serialize)]
pub struct VideoMetadata {
    pub kind: &'static str,
    pub mode: &'static str,
    pub model: String,
    pub model_path: String,
    pub prompt: String,
    pub input_image: Option<String>,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub fps: u32,
    pub duration_s: f64,
    pub steps: usize,
    pub motion_bucket: u32,
    pub noise_aug: f32,
    pub min_guidance: f32,
    pub max_guidance: f32,
    pub decode_chunk: usize,
    pub seed: u64,
    pub noise_file: Option<String>,
    pub precision: String,
    pub memory_mode: String,
    pub device: String,
    /// What the frames are: generated at this size, shown as they are.
    pub resolution: crate::output::Resolution,
    /// Text to video: the keyframe's own metadata (model, prompt, seed, timings).
    pub keyframe: Option<serde_json::Value>,
    /// Peak resident memory of the process (VmHWM) when the run ended; on a GPU this is host
    /// memory, not the GPU's.
    pub peak_host_memory_mib: Option<f64>,
    pub timings: VideoTimings,
    pub created_unix: u64,
    pub vidplay_version: String,
}

impl VideoMetadata {
    pub fn new(model: String, svd: &StableVideoDiffusion, req: &VideoRequest, video: &GeneratedVideo, device: &OpenedDevice, load_s: f64) -> Self {
        let frames = video.frames.len();
        Self {
            kind: "image-to-video",
            mode: "image-to-video",
            model,
            model_path: svd.root().display().to_string(),
            prompt: String::new(),
            input_image: None,
            width: req.width,
            height: req.height,
            frames,
            fps: req.fps,
            duration_s: frames as f64 / req.fps as f64,
            steps: req.steps,
            motion_bucket: req.motion_bucket,
            noise_aug: req.noise_aug,
            min_guidance: req.min_guidance,
            max_guidance: req.max_guidance,
            decode_chunk: req.decode_chunk.unwrap_or(frames),
            seed: req.seed,
            noise_file: None,
            precision: format!("{:?}", svd.dtype),
            memory_mode: match svd.memory {
                MemoryMode::Resident => "resident",
                MemoryMode::Low => "low",
            }
            .into(),
            device: device.description.clone(),
            resolution: crate::output::Resolution {
                native: [req.width as u32, req.height as u32],
                display: [req.width as u32, req.height as u32],
                upscale_filter: "none".into(),
            },
            keyframe: None,
            peak_host_memory_mib: crate::bench::peak_rss_mib(),
            timings: VideoTimings {
                load_s,
                conditioning_s: video.encode_seconds,
                sampling_s: video.sampling_seconds,
                decode_s: video.decode_seconds,
                encode_s: 0.0,
                total_s: load_s + video.encode_seconds + video.sampling_seconds + video.decode_seconds,
            },
            created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            vidplay_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Writes video.mp4 and video.gif (parameters embedded), input.png, optionally frames/*.png,
/// then metadata.json, each atomically. Fills in the encode time.
pub fn write_video(dir: &Path, frames: &[RgbImage], input: &RgbImage, meta: &mut VideoMetadata, png_frames: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let embedded = serde_json::to_string(&meta)?;
    media::write_atomic(&dir.join("video.mp4"), &media::encode_mp4(frames, meta.fps, &embedded)?)?;
    media::write_atomic(&dir.join("video.gif"), &media::encode_gif(frames, meta.fps, &embedded)?)?;
    if png_frames {
        media::write_png_frames(frames, &dir.join("frames"))?;
    }
    let mut bytes = Vec::new();
    input.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    media::write_atomic(&dir.join("input.png"), &bytes)?;
    meta.timings.encode_s = started.elapsed().as_secs_f64();
    meta.timings.total_s += meta.timings.encode_s;
    media::write_atomic(&dir.join("metadata.json"), &serde_json::to_vec_pretty(&meta)?)?;
    Ok(())
}
