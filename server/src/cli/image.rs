//! `vidplay image`: an image from a prompt with a Stable Diffusion-family model.

use super::common::{check_given, check_sides, check_text, given, locate, read_lora};
use super::engine_run;
use crate::engines::Overrides;
use crate::engines::cache::ModelCache;
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use anyhow::bail;
use app::types::{JobParams, Mode};
use model::device::{self, DeviceChoice};
use model::diffusers::common::scheduler::Kind;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ImageArgs {
    /// A local diffusers folder (model_index.json, unet/, vae/, text_encoder/, ...).
    #[arg(long, conflicts_with = "model")]
    model_dir: Option<PathBuf>,
    /// A Hugging Face repo id, e.g. stabilityai/sd-turbo (fetched into the HF cache if missing).
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    prompt: String,
    /// What the image should not show.
    #[arg(long)]
    negative: Option<String>,
    /// Sampling steps (default: the model's, 25).
    #[arg(long)]
    steps: Option<u32>,
    /// Classifier-free guidance scale; 1 or less turns it off (SD-Turbo wants 0; default: the
    /// model's, 7.5).
    #[arg(long)]
    guidance: Option<f32>,
    /// Width in pixels, a multiple of 8 (default: the model's, 512).
    #[arg(long)]
    width: Option<u32>,
    #[arg(long)]
    height: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Benchmarks: one one-step image first, so the timings leave out kernel compilation and
    /// autotuning (that image's seconds are `timings.warmup_s`).
    #[arg(long)]
    warmup: bool,
    /// Initial latents: a safetensors file with one f32 tensor `noise` [1, 4, H/8, W/8],
    /// meaning what diffusers' `latents` argument means.
    #[arg(long)]
    noise: Option<PathBuf>,
    /// Sampler: euler, euler-ancestral or ddim (default: the model's own scheduler config).
    #[arg(long)]
    scheduler: Option<String>,
    /// A LoRA to merge into the model, at a scale (default 1): `FILE` or `FILE:SCALE`, in
    /// diffusers/PEFT or kohya naming; repeat for several.
    #[arg(long = "lora", value_name = "FILE[:SCALE]")]
    loras: Vec<String>,
    #[arg(long, value_enum, default_value = "auto")]
    precision: PrecisionChoice,
    #[arg(long, env = "VIDPLAY_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ImageArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let scheduler = a.scheduler.as_deref().map(Kind::parse).transpose().map_err(anyhow::Error::msg)?;
    if a.prompt.trim().is_empty() {
        bail!("--prompt is empty");
    }
    check_text("the prompt", &a.prompt)?;
    check_text("the negative prompt", a.negative.as_deref().unwrap_or_default())?;
    let numbers = [
        ("guidance", a.guidance.map(f64::from)),
        ("steps", a.steps.map(f64::from)),
        ("width", a.width.map(f64::from)),
        ("height", a.height.map(f64::from)),
    ];
    check_given(&numbers)?;
    check_sides(&[a.width, a.height])?;
    let opened = device::open(a.device)?;
    let root = locate(a.model_dir.as_deref(), a.model.as_deref(), a.precision.resolve(&opened))?;
    let name = a.model.clone().unwrap_or_else(|| root.display().to_string());
    let engine = engine_run::engine_for(&name, &root, &[Mode::TextToImage], "images from text")?;
    let start = JobParams { prompt: a.prompt.clone(), model: name, seed: a.seed, ..JobParams::default() };
    let params = engine_run::params_for(engine.as_ref(), Mode::TextToImage, start, |p| {
        p.negative = a.negative.clone().unwrap_or(std::mem::take(&mut p.negative));
        p.steps = a.steps.unwrap_or(p.steps);
        p.guidance = a.guidance.unwrap_or(p.guidance);
        p.width = a.width.unwrap_or(p.width);
        p.height = a.height.unwrap_or(p.height);
    });
    let loras = a.loras.iter().map(|spec| read_lora(spec)).collect::<anyhow::Result<Vec<_>>>()?;
    let overrides =
        Overrides { precision: a.precision, noise: a.noise, scheduler, warmup: a.warmup, loras, ..Overrides::NONE };
    let given = given(&[
        ("negative", a.negative.is_some()),
        ("steps", a.steps.is_some()),
        ("guidance", a.guidance.is_some()),
        ("width", a.width.is_some()),
        ("height", a.height.is_some()),
    ]);
    let run = engine_run::Run { input: None, last_image: None, overrides: &overrides, given: &given, started };
    let mut result = engine_run::run(engine.as_ref(), params, run, &opened, &mut ModelCache::new(0))?;
    write_to_folder(&mut result, WriteOptions { png_frames: false, gallery: false }, &a.out)?;
    let [width, height] = result.meta.resolution.native;
    println!(
        "wrote {}/image.png ({width}x{height}, seed {}) in {:.1} s",
        a.out.display(),
        result.meta.seed,
        result.meta.timings.total_s
    );
    Ok(())
}
