//! Whole-pipeline parity with diffusers on its own fixtures: the tiny random pipelines that
//! `scripts/sd_fixtures.py`, `scripts/ip2p_fixtures.py`, `scripts/svd_fixtures.py` and
//! `scripts/wan_fixtures.py` wrote with diffusers (in `model/tests/fixtures/{sd,ip2p,svd,wan}/*`), each with the runs diffusers made (`expected.json`), the
//! noise it drew and the outputs it got (`expected.safetensors`). Running a fixture's runs here on
//! a device and precision and comparing frames (PSNR) is what the parity tests and
//! `vidplay parity` (every GPU backend, in scripts/gpu_check) do.

use super::common::scheduler::{Kind, SchedulerConfig};
use super::common::video::MemoryMode;
use super::common::weights::{LoadError, Weights};
use super::stable_diffusion::{EditRequest, ImageRequest, InstructPix2Pix, StableDiffusion};
use super::stable_video_diffusion::{StableVideoDiffusion, VideoRequest};
use super::wan::pipeline::{Wan, WanOptions, WanRequest};
use crate::generate::GenerateError;
use burn::prelude::*;
use burn::tensor::DType;
use std::path::{Path, PathBuf};

/// What a fixture could not give.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{0}: {1}")]
    Read(PathBuf, String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// One run of a fixture pipeline against diffusers' output.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `sd1 pipeline 0`, ...
    pub name: String,
    pub psnr_db: f64,
    pub max_abs: f32,
}

/// The fixture's `expected.json`.
pub fn meta(folder: &Path) -> Result<serde_json::Value, FixtureError> {
    let path = folder.join("expected.json");
    let text = std::fs::read_to_string(&path).map_err(|e| FixtureError::Read(path.clone(), e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| FixtureError::Read(path, e.to_string()))
}

fn expected(folder: &Path, device: &Device) -> Result<Weights, FixtureError> {
    Ok(Weights::open(&[folder.join("expected.safetensors")], device, DType::F32)?)
}

fn values(exp: &Weights, key: &str) -> Result<Vec<f32>, FixtureError> {
    Ok(exp.read_f32(key)?.0)
}

/// PSNR of values in [0, 1].
pub fn psnr(got: &[f32], want: &[f32]) -> f64 {
    let mse = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / got.len().max(1) as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (1.0 / mse).log10() }
}

fn compare(name: String, got: &[f32], want: &[f32]) -> Result<RunResult, FixtureError> {
    if got.len() != want.len() {
        return Err(FixtureError::Read(name.into(), format!("{} values, diffusers made {}", got.len(), want.len())));
    }
    let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    Ok(RunResult { psnr_db: psnr(got, want), max_abs, name })
}

/// The text-to-image runs of an SD fixture, as diffusers made them (its noise, its scheduler
/// options), and the image each gave (values in [0, 1]).
pub fn sd_runs(folder: &Path, device: &Device) -> Result<Vec<(ImageRequest, SchedulerConfig, Vec<f32>)>, FixtureError> {
    let exp = expected(folder, device)?;
    let m = meta(folder)?;
    let runs = m["pipelines"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .enumerate()
        .map(|(i, p)| {
            let num = |k: &str| p[k].as_f64().unwrap_or_default();
            let ddim = p["scheduler"] == "DDIMScheduler";
            let req = ImageRequest {
                prompt: p["prompt"].as_str().unwrap_or_default().into(),
                negative: p["negative"].as_str().unwrap_or_default().into(),
                steps: num("steps") as usize,
                guidance: num("guidance") as f32,
                width: num("width") as usize,
                height: num("height") as usize,
                seed: 0,
                noise: Some(values(&exp, &format!("pipeline.{i}.noise"))?),
                scheduler: Some(if ddim { Kind::Ddim } else { Kind::Euler }),
            };
            // The run's own scheduler options.
            let mut config = p["scheduler_config"].clone();
            config["_class_name"] = p["scheduler"].clone();
            let config: SchedulerConfig =
                serde_json::from_value(config).map_err(|e| FixtureError::Read(folder.into(), e.to_string()))?;
            Ok((req, config, values(&exp, &format!("pipeline.{i}.image"))?))
        })
        .collect()
}

/// One edit of an InstructPix2Pix fixture.
#[derive(Debug, Clone)]
pub struct Ip2pRun {
    /// The request with diffusers' noise (and, for an ancestral scheduler, the noise of every step).
    pub request: EditRequest,
    pub scheduler: SchedulerConfig,
    /// The input image.
    pub image: PathBuf,
    /// The image diffusers made (values in [0, 1]).
    pub expected: Vec<f32>,
}

/// The edits of an InstructPix2Pix fixture.
pub fn ip2p_runs(folder: &Path, device: &Device) -> Result<Vec<Ip2pRun>, FixtureError> {
    let exp = expected(folder, device)?;
    let m = meta(folder)?;
    let runs = m["pipelines"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .enumerate()
        .map(|(i, p)| {
            let num = |k: &str| p[k].as_f64().unwrap_or_default();
            let mut config = p["scheduler_config"].clone();
            config["_class_name"] = p["scheduler"].clone();
            let config: SchedulerConfig =
                serde_json::from_value(config).map_err(|e| FixtureError::Read(folder.into(), e.to_string()))?;
            let (h, w) = (num("height") as usize / 8, num("width") as usize / 8);
            let step_key = format!("pipeline.{i}.step_noise");
            let step_noise = if exp.contains(&step_key) {
                let all = values(&exp, &step_key)?;
                Some(all.chunks(4 * h * w).map(<[f32]>::to_vec).collect())
            } else {
                None
            };
            let req = EditRequest {
                prompt: p["prompt"].as_str().unwrap_or_default().into(),
                negative: p["negative"].as_str().unwrap_or_default().into(),
                steps: num("steps") as usize,
                guidance: num("guidance") as f32,
                image_guidance: num("image_guidance") as f32,
                seed: 0,
                noise: Some(values(&exp, &format!("pipeline.{i}.noise"))?),
                step_noise,
                scheduler: Some(config.kind()),
            };
            Ok(Ip2pRun {
                request: req,
                scheduler: config,
                image: folder.join(p["image"].as_str().unwrap_or_default()),
                expected: values(&exp, &format!("pipeline.{i}.image"))?,
            })
        })
        .collect()
}

/// The image-to-video runs of an SVD fixture: the request with diffusers' noise, the input image,
/// and the frames diffusers made (values in [0, 1]).
pub fn svd_runs(folder: &Path, device: &Device) -> Result<Vec<(VideoRequest, PathBuf, Vec<f32>)>, FixtureError> {
    let exp = expected(folder, device)?;
    let m = meta(folder)?;
    let runs = m["pipelines"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .enumerate()
        .map(|(i, run)| {
            let num = |k: &str| run[k].as_f64().unwrap_or_default();
            let size = |j: usize| run["size"][j].as_u64().unwrap_or_default() as usize;
            let mut req = VideoRequest::new(size(1), size(0));
            req.frames = Some(num("frames") as usize);
            req.steps = num("steps") as usize;
            req.min_guidance = num("min_guidance") as f32;
            req.max_guidance = num("max_guidance") as f32;
            req.fps = num("fps") as u32;
            req.motion_bucket = num("motion") as u32;
            req.noise_aug = num("aug") as f32;
            req.decode_chunk = Some(num("chunk") as usize);
            req.noise = Some(values(&exp, &format!("pipeline.{i}.noise"))?);
            req.image_noise = Some(values(&exp, &format!("pipeline.{i}.image_noise"))?);
            let image = folder.join(run["image"].as_str().unwrap_or_default());
            Ok((req, image, values(&exp, &format!("pipeline.{i}.frames"))?))
        })
        .collect()
}

/// Runs every pipeline of an SD fixture at `dtype` and compares with diffusers.
pub fn run_sd(folder: &Path, device: &Device, dtype: DType) -> Result<Vec<RunResult>, FixtureError> {
    let sd = StableDiffusion::load(folder, device, dtype)?;
    let name = folder.file_name().map_or("sd".into(), |n| n.to_string_lossy().to_string());
    sd_runs(folder, device)?
        .into_iter()
        .enumerate()
        .map(|(i, (req, scheduler, want))| {
            let pipeline = StableDiffusion { scheduler, ..sd.clone() };
            let image = pipeline.generate(&req, &mut |_| {}, &|| false)?;
            compare(format!("{name} pipeline {i}"), &image.pixels, &want)
        })
        .collect()
}

/// Runs every edit of an InstructPix2Pix fixture at `dtype` and compares with diffusers.
pub fn run_ip2p(folder: &Path, device: &Device, dtype: DType) -> Result<Vec<RunResult>, FixtureError> {
    let editor = InstructPix2Pix::load(folder, device, dtype)?;
    let name = folder.file_name().map_or("ip2p".into(), |n| n.to_string_lossy().to_string());
    ip2p_runs(folder, device)?
        .into_iter()
        .enumerate()
        .map(|(i, run)| {
            let input =
                image::open(&run.image).map_err(|e| FixtureError::Read(run.image.clone(), e.to_string()))?.to_rgb8();
            let mut pipeline = editor.clone();
            pipeline.sd.scheduler = run.scheduler;
            let edited = pipeline.generate(&input, &run.request, &mut |_| {}, &|| false)?;
            compare(format!("{name} edit {i}"), &edited.pixels, &run.expected)
        })
        .collect()
}

/// Runs every pipeline of an SVD fixture at `dtype` and compares with diffusers.
pub fn run_svd(folder: &Path, device: &Device, dtype: DType) -> Result<Vec<RunResult>, FixtureError> {
    let svd = StableVideoDiffusion::load(folder, device, dtype, MemoryMode::Resident)?;
    let name = folder.file_name().map_or("svd".into(), |n| n.to_string_lossy().to_string());
    svd_runs(folder, device)?
        .into_iter()
        .enumerate()
        .map(|(i, (req, image, want))| {
            let input = image::open(&image).map_err(|e| FixtureError::Read(image.clone(), e.to_string()))?.to_rgb8();
            let video = svd.generate(&input, &req, &mut |_| {}, &|| false)?;
            compare(format!("{name} pipeline {i}"), &video.frames.concat(), &want)
        })
        .collect()
}

/// The text-to-video runs of a Wan fixture: the request with diffusers' noise, and the frames
/// diffusers made (values in [0, 1]).
pub fn wan_runs(folder: &Path, device: &Device) -> Result<Vec<(WanRequest, Vec<f32>)>, FixtureError> {
    let exp = expected(folder, device)?;
    let m = meta(folder)?;
    let runs = m["pipelines"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .enumerate()
        .map(|(i, run)| {
            let num = |k: &str| run[k].as_f64().unwrap_or_default();
            let mut req = WanRequest::new(run["prompt"].as_str().unwrap_or_default());
            req.negative_prompt = run["negative"].as_str().unwrap_or_default().to_string();
            req.width = num("width") as usize;
            req.height = num("height") as usize;
            req.frames = num("frames") as usize;
            req.steps = num("steps") as usize;
            req.guidance = num("guidance") as f32;
            req.guidance_2 = run["guidance_2"].as_f64().map(|g| g as f32);
            // Image to video: the pictures, by file name in the folder.
            let picture = |key: &str| -> Result<Option<image::RgbImage>, FixtureError> {
                let Some(name) = run[key].as_str() else { return Ok(None) };
                let path = folder.join(name);
                let img = image::open(&path).map_err(|e| FixtureError::Read(path.clone(), e.to_string()))?;
                Ok(Some(img.to_rgb8()))
            };
            req.image = picture("image")?;
            req.last_image = picture("last_image")?;
            req.noise = Some(values(&exp, &format!("pipeline.{i}.noise"))?);
            Ok((req, values(&exp, &format!("pipeline.{i}.frames"))?))
        })
        .collect()
}

/// Runs every pipeline of a Wan fixture at `dtype` (the text encoder on the same device) and
/// compares with diffusers.
pub fn run_wan(
    folder: &Path,
    device: &Device,
    dtype: DType,
    memory: MemoryMode,
) -> Result<Vec<RunResult>, FixtureError> {
    let wan = Wan::load(folder, device, dtype, WanOptions::on(device, dtype, memory))?;
    let name = folder.file_name().map_or("wan".into(), |n| n.to_string_lossy().to_string());
    wan_runs(folder, device)?
        .into_iter()
        .enumerate()
        .map(|(i, (req, want))| {
            let video = wan.generate(&req, &mut |_| {}, &|| false)?;
            compare(format!("{name} pipeline {i}"), &video.frames.concat(), &want)
        })
        .collect()
}
