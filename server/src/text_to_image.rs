//! Text-to-image with a Stable Diffusion-family model: `vidplay image` and `vidplay models`.

use anyhow::{bail, Context};
use model::device::OpenedDevice;
use model::diffusers::common::folder::{self, Precision};
use model::diffusers::common::scheduler::Kind;
use model::diffusers::stable_diffusion::{GeneratedImage, ImageRequest, StableDiffusion};
use model::diffusers::common::weights::Weights;
use model::diffusers::DType;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Compute precision: f16 on GPUs, f32 on CPUs, unless chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    Auto,
    F32,
    F16,
}

impl PrecisionChoice {
    pub fn resolve(self, device: &OpenedDevice) -> DType {
        match self {
            PrecisionChoice::F32 => DType::F32,
            PrecisionChoice::F16 => DType::F16,
            PrecisionChoice::Auto if device.gpu => DType::F16,
            PrecisionChoice::Auto => DType::F32,
        }
    }
}

/// Where a model comes from: a folder, or a Hugging Face repo id (downloaded into the HF cache
/// when missing).
pub fn locate(model_dir: Option<&Path>, repo: Option<&str>, dtype: DType) -> anyhow::Result<PathBuf> {
    let precision = if dtype == DType::F32 { Precision::F32 } else { Precision::F16 };
    match (model_dir, repo) {
        (Some(dir), None) => {
            if !dir.is_dir() {
                bail!("model folder {} does not exist", dir.display());
            }
            Ok(dir.to_path_buf())
        }
        (None, Some(id)) => Ok(folder::resolve(id, precision, true)?),
        _ => bail!("give exactly one of --model-dir DIR or --model REPO_ID"),
    }
}

/// Reads `--noise FILE.safetensors`: one f32 tensor named `noise` of shape [1, 4, H/8, W/8].
pub fn read_noise(path: &Path, shape: [usize; 4]) -> anyhow::Result<Vec<f32>> {
    let device = model::device::open(model::device::DeviceChoice::Cpu)?.device;
    let file = Weights::open(&[path.to_path_buf()], &device, DType::F32)?;
    let (values, found) = file.read_f32("noise").with_context(|| format!("{}: needs a tensor named `noise`", path.display()))?;
    if found != shape {
        bail!("{}: `noise` has shape {found:?}, this request needs {shape:?}", path.display());
    }
    Ok(values)
}

#[derive(Debug, Serialize)]
pub struct ImageMetadata<'a> {
    pub kind: &'static str,
    pub model: String,
    pub model_path: String,
    pub prompt: &'a str,
    pub negative_prompt: &'a str,
    pub steps: usize,
    pub guidance: f32,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    pub noise_file: Option<String>,
    pub scheduler: String,
    pub precision: String,
    pub device: String,
    pub timings: ImageTimings,
}

#[derive(Debug, Serialize)]
pub struct ImageTimings {
    pub load_s: f64,
    pub sampling_s: f64,
    pub decode_s: f64,
    pub total_s: f64,
}

impl<'a> ImageMetadata<'a> {
    /// What one generation used and took: `model` is the name it was asked for, `load_s` the
    /// model load time and `total_s` the whole run's.
    pub fn new(
        model: String,
        sd: &StableDiffusion,
        req: &'a ImageRequest,
        image: &GeneratedImage,
        device: &OpenedDevice,
        load_s: f64,
        total_s: f64,
    ) -> Self {
        Self {
            kind: "text-to-image",
            model,
            model_path: sd.root.display().to_string(),
            prompt: &req.prompt,
            negative_prompt: &req.negative,
            steps: req.steps,
            guidance: req.guidance,
            width: req.width,
            height: req.height,
            seed: req.seed,
            noise_file: None,
            scheduler: format!("{:?}", req.scheduler.unwrap_or(sd.scheduler.kind())),
            precision: format!("{:?}", sd.dtype),
            device: device.description.clone(),
            timings: ImageTimings { load_s, sampling_s: image.sampling_seconds, decode_s: image.decode_seconds, total_s },
        }
    }
}

/// The terminal progress bar of a sampling run (hidden when stderr is not a terminal).
pub fn step_bar(steps: usize) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(steps as u64).with_style(
        indicatif::ProgressStyle::with_template("{spinner} sampling [{bar:30}] {pos}/{len} steps, {elapsed} (eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    )
}

/// Writes DIR/image.png and DIR/metadata.json.
pub fn write_image(out: &Path, image: &GeneratedImage, meta: &ImageMetadata) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    image.to_rgb8().save(out.join("image.png")).context("writing image.png")?;
    std::fs::write(out.join("metadata.json"), serde_json::to_vec_pretty(meta)?).context("writing metadata.json")?;
    Ok(())
}

/// The sampler named on the command line.
pub fn parse_scheduler(name: Option<&str>) -> anyhow::Result<Option<Kind>> {
    Ok(match name {
        None => None,
        Some("euler") => Some(Kind::Euler),
        Some("ddim") => Some(Kind::Ddim),
        Some(other) => bail!("unknown scheduler {other:?}: use euler or ddim"),
    })
}

/// Runs one request on a loaded model with a progress bar on the terminal.
pub fn generate(sd: &StableDiffusion, req: &ImageRequest) -> anyhow::Result<GeneratedImage> {
    let bar = step_bar(req.steps);
    let image = sd.generate(req, &mut |p| bar.set_position(p.step as u64), &|| false)?;
    bar.finish_and_clear();
    Ok(image)
}

/// `vidplay models`: installed diffusers models and where they are.
pub fn list_models(local: Option<&Path>) -> Vec<String> {
    folder::installed(local)
        .into_iter()
        .map(|m| {
            let kind = match &m.kind {
                folder::PipelineKind::TextToImage => "text-to-image".to_string(),
                folder::PipelineKind::ImageToVideo => "image-to-video".to_string(),
                folder::PipelineKind::Other(c) => format!("unsupported ({c})"),
            };
            format!("{:<40} {:<16} {}", m.name, kind, m.path.display())
        })
        .collect()
}
