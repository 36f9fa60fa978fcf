//! `vidplay image`: an image from a prompt with a Stable Diffusion-family model.

use super::common::{check_numbers, check_text, locate, metered_steps, read_tensor, step_bar};
use crate::engines::Rendered;
use crate::engines::stable_diffusion::image_meta;
use crate::ids::random_seed;
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use anyhow::bail;
use model::device::{self, DeviceChoice};
use model::diffusers::common::scheduler::Kind;
use model::diffusers::stable_diffusion::{ImageRequest, StableDiffusion};
use model::gpu_memory::GpuMemoryMeter;
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
    #[arg(long, default_value = "")]
    negative: String,
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// Classifier-free guidance scale; 1 or less turns it off (SD-Turbo wants 0).
    #[arg(long, default_value_t = 7.5)]
    guidance: f32,
    #[arg(long, default_value_t = 512)]
    width: usize,
    #[arg(long, default_value_t = 512)]
    height: usize,
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
    check_text("the negative prompt", &a.negative)?;
    let (width, height) = (a.width, a.height);
    check_numbers(&[
        ("guidance", a.guidance as f64),
        ("steps", a.steps as f64),
        ("width", width as f64),
        ("height", height as f64),
    ])?;
    if width == 0 || height == 0 || width % 8 != 0 || height % 8 != 0 {
        bail!("--width and --height must be positive multiples of 8, got {width}x{height}");
    }
    let noise = a
        .noise
        .as_deref()
        .map(|p| read_tensor(p, "noise", &[1, 4, height / 8, width / 8], true))
        .transpose()?
        .flatten();
    let opened = device::open(a.device)?;
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let dtype = a.precision.resolve(&opened);
    let root = locate(a.model_dir.as_deref(), a.model.as_deref(), dtype)?;
    let sd = StableDiffusion::load(&root, &opened.device, dtype)?;
    let load_s = started.elapsed().as_secs_f64();
    let req = ImageRequest {
        prompt: a.prompt,
        negative: a.negative,
        steps: a.steps,
        guidance: a.guidance,
        width,
        height,
        seed: a.seed.unwrap_or_else(random_seed),
        noise,
        scheduler,
    };
    let warmup_s = super::generate::warmup_seconds(a.warmup, || {
        sd.generate(&ImageRequest { steps: 1, ..req.clone() }, &mut |_| meter.sample(), &|| false)
    })?;
    let bar = step_bar(req.steps);
    let image = sd.generate(&req, &mut metered_steps(&bar, &mut meter), &|| false)?;
    bar.finish_and_clear();
    let name = a.model.clone().unwrap_or_else(|| root.display().to_string());
    let mut meta = image_meta(&name, &sd, &req, &image, &opened.description);
    if let Some(noise) = &a.noise {
        meta.details.insert("noise_file".into(), noise.display().to_string().into());
    }
    meta.timings.load_s = load_s;
    meta.timings.warmup_s = warmup_s;
    meta.timings.total_s = started.elapsed().as_secs_f64();
    meta.peak_gpu_memory_mib = meter.peak_mib();
    meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
    let mut result = Rendered {
        frames: vec![image.to_rgb8()],
        fps: 1,
        still: true,
        input: None,
        keyframe: None,
        continue_from: None,
        meta,
    };
    write_to_folder(&mut result, WriteOptions { png_frames: false, gallery: false }, &a.out)?;
    println!(
        "wrote {}/image.png ({width}x{height}, seed {}) in {:.1} s",
        a.out.display(),
        req.seed,
        result.meta.timings.total_s
    );
    Ok(())
}
