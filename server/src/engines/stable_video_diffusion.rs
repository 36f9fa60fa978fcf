//! Stable Video Diffusion models (diffusers folders) as an engine: image to video.

use super::family::Family;
use super::{EngineJob, Overrides, Rendered, RunContext};
use app::models::{ModelInfo, ParamSpec};
use app::results::{Resolution, ResultMeta};
use app::types::{JobParams, Mode};
use image::RgbImage;
use model::diffusers::stable_video_diffusion::{GeneratedVideo, MemoryMode, StableVideoDiffusion, VideoRequest};
use model::free_memory::free_bytes;
use model::generate::GenerateError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Largest side of a generated clip.
pub const MAX_SIDE: u32 = 1024;
pub const MAX_FRAMES: u32 = 32;
pub const MAX_STEPS: u32 = 100;

/// The family: the pipelines it runs, and its engine for a folder.
pub const FAMILY: Family = Family {
    name: "stable-video-diffusion",
    pipelines: &[StableVideoDiffusion::PIPELINE_CLASS],
    tasks: &[Mode::ImageToVideo],
    build: |name, path| Arc::new(StableVideoDiffusionEngine::new(name, path)),
};

pub struct StableVideoDiffusionEngine {
    info: ModelInfo,
    path: PathBuf,
}

impl StableVideoDiffusionEngine {
    /// Its defaults are diffusers' for the folder: 1024x576, and the clip length the UNet was
    /// trained for (`num_frames`: 14 for SVD, 25 for SVD-XT).
    pub fn new(name: &str, path: &Path) -> Self {
        let frames = native_frames(path);
        let info = ModelInfo {
            id: name.into(),
            family: FAMILY.name.into(),
            description: format!("Stable Video Diffusion (diffusers folder {}): animates an image.", path.display()),
            tasks: FAMILY.tasks.to_vec(),
            params: vec![
                ParamSpec::integer(
                    "width",
                    "Width",
                    64,
                    MAX_SIDE,
                    64,
                    1024,
                    "width in pixels (the image is resized to it)",
                ),
                ParamSpec::integer("height", "Height", 64, MAX_SIDE, 64, 576, "height in pixels"),
                ParamSpec::integer("frames", "Frames", 2, MAX_FRAMES, 1, frames, "frames in the clip"),
                ParamSpec::integer(
                    "fps",
                    "Frames per second",
                    1,
                    60,
                    1,
                    7,
                    "the frame rate the model is told, and the files'",
                ),
                ParamSpec::integer("steps", "Steps", 1, MAX_STEPS, 1, 25, "sampling steps: more is slower and cleaner"),
                ParamSpec::number(
                    "guidance",
                    "Guidance",
                    1.0,
                    20.0,
                    0.5,
                    3.0,
                    "guidance on the last frame (it ramps up from 1 on the first)",
                ),
                ParamSpec::number(
                    "motion",
                    "Motion strength",
                    0.0,
                    2.0,
                    0.1,
                    1.0,
                    "scales SVD's motion bucket: 1 is 127",
                ),
            ],
            native_width: 1024,
            native_height: 576,
            native_frames: frames,
            memory_mib: super::family::weights_mib(path),
            chips: Vec::new(),
            reads_prompt: false,
            input_note: "The image is resized to the width and height below.".into(),
            takes_loras: false,
        };
        Self { info, path: path.to_path_buf() }
    }

    /// Animates `input` with the settings of `params`.
    fn animate(
        &self,
        params: &JobParams,
        input: &RgbImage,
        o: &Overrides,
        ctx: &mut RunContext<'_>,
    ) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let dtype = o.precision.resolve(ctx.device);
        let memory = if o.low_memory { MemoryMode::Low } else { MemoryMode::Resident };
        let device = ctx.device.device.clone();
        let svd = ctx.models.get_or_load(&self.info.id, self.info.memory_mib, || {
            StableVideoDiffusion::load(&self.path, &device, dtype, memory)
                .map_err(|e| super::load_error(&self.info.id, e))
        })?;
        let load_s = started.elapsed().as_secs_f64();
        let mut req = request_of(params);
        req.noise_aug = o.noise_aug.unwrap_or(req.noise_aug);
        req.min_guidance = o.min_guidance.unwrap_or(req.min_guidance);
        req.decode_chunk = o.decode_chunk;
        let free = free_bytes(ctx.device.choice, &ctx.device.device);
        req.decode_chunk = Some(svd.decode_chunk_for(&req, free));
        let (f, c) = (svd.scale_factor(), svd.vae_config.latent_channels);
        let latents = [1, params.frames as usize, c, req.height / f, req.width / f];
        let image = [1, 3, req.height, req.width];
        let [noise, image_noise] =
            <[_; 2]>::try_from(o.noise_tensors(&[("noise", &latents, true), ("image_noise", &image, false)])?)
                .expect("two tensors asked for");
        (req.noise, req.image_noise) = (noise, image_noise);
        let warmup_s =
            o.warm_up(|| svd.generate(input, &VideoRequest { steps: 1, ..req.clone() }, &mut |_| {}, ctx.cancelled))?;
        let video = svd.generate(input, &req, ctx.progress, ctx.cancelled)?;
        let mut meta = video_meta(&self.info.id, &svd, &req, &video, &ctx.device.description, load_s);
        meta.timings.warmup_s = warmup_s;
        o.record(&mut meta);
        meta.prompt = params.prompt.clone();
        meta.params = JobParams { model: self.info.id.clone(), seed: Some(req.seed), ..params.clone() };
        meta.input_image = Some("upload".into());
        meta.timings.total_s = started.elapsed().as_secs_f64();
        Ok(Rendered {
            frames: video.to_rgb8(),
            fps: req.fps,
            still: false,
            input: Some(fit(input, req.width, req.height)),
            keyframe: None,
            continue_from: None,
            meta,
        })
    }
}

/// The clip length the folder's UNet was trained for (its config's `num_frames`), within what
/// the engine offers; 14 (SVD's) when the config cannot be read.
fn native_frames(path: &Path) -> u32 {
    let config: Option<serde_json::Value> =
        model::diffusers::common::config::read_json(&path.join("unet/config.json")).ok();
    let frames = config.as_ref().and_then(|c| c.get("num_frames")).and_then(serde_json::Value::as_u64);
    frames.map_or(14, |n| n.clamp(2, MAX_FRAMES as u64) as u32)
}

/// The SVD request a job makes. Guidance is the last frame's (it ramps from 1 on the first,
/// diffusers' default), and motion strength scales SVD's motion bucket (1 is 127).
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

/// The metadata of one generated clip.
pub fn video_meta(
    model: &str,
    svd: &StableVideoDiffusion,
    req: &VideoRequest,
    video: &GeneratedVideo,
    device: &str,
    load_s: f64,
) -> ResultMeta {
    let frames = video.frames.len() as u32;
    let size = [req.width as u32, req.height as u32];
    let mut details = serde_json::Map::new();
    details.insert("model_path".into(), svd.root().display().to_string().into());
    details.insert("motion_bucket".into(), req.motion_bucket.into());
    details.insert("noise_aug".into(), serde_json::json!(req.noise_aug));
    details.insert("min_guidance".into(), serde_json::json!(req.min_guidance));
    details.insert("max_guidance".into(), serde_json::json!(req.max_guidance));
    details.insert("decode_chunk".into(), req.decode_chunk.unwrap_or(frames as usize).into());
    details.insert("memory_mode".into(), svd.memory.name().into());
    ResultMeta {
        mode: Mode::ImageToVideo,
        model: model.into(),
        family: FAMILY.name.into(),
        params: JobParams {
            model: model.into(),
            frames,
            fps: req.fps,
            steps: req.steps as u32,
            guidance: req.max_guidance,
            motion: req.motion_bucket as f32 / 127.0,
            width: size[0],
            height: size[1],
            seed: Some(req.seed),
            ..JobParams::default()
        },
        seed: req.seed,
        frames,
        fps: req.fps,
        duration_s: frames as f64 / req.fps.max(1) as f64,
        resolution: Resolution { native: size, display: size, upscale_filter: "none".into() },
        device: device.into(),
        precision: format!("{:?}", svd.dtype),
        timings: super::metadata::clip_timings(video, load_s),
        peak_host_memory_mib: crate::memory::peak_rss_mib(),
        details,
        ..super::metadata::made_now()
    }
}

impl super::Engine for StableVideoDiffusionEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let Some(input) = job.input else {
            return Err(GenerateError::InvalidRequest(format!("{} animates an image: none was given", self.info.id)));
        };
        self.animate(job.params, input, job.overrides, ctx)
    }
}
