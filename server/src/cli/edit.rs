//! `vidplay edit`: an image changed by an instruction ("make it a fireman", "add snow") with an
//! InstructPix2Pix-family model (diffusers layout).

use super::common::{check_numbers, check_text, locate, metered_steps, read_tensor, step_bar};
use crate::engines::Rendered;
use crate::engines::instruct_pix2pix::edit_meta;
use crate::ids::random_seed;
use crate::media::input::image_sha256;
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use anyhow::{Context, bail};
use model::device::{self, DeviceChoice};
use model::diffusers::common::scheduler::Kind;
use model::diffusers::stable_diffusion::instruct_pix2pix::fit;
use model::diffusers::stable_diffusion::{EditRequest, InstructPix2Pix};
use model::gpu_memory::GpuMemoryMeter;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct EditArgs {
    /// A local diffusers folder of a StableDiffusionInstructPix2PixPipeline.
    #[arg(long, conflicts_with = "model")]
    model_dir: Option<PathBuf>,
    /// A Hugging Face repo id, e.g. timbrooks/instruct-pix2pix (fetched into the HF cache if missing).
    #[arg(long)]
    model: Option<String>,
    /// The image to edit (PNG, JPEG, WebP, ...).
    #[arg(long)]
    image: PathBuf,
    /// The instruction: what to change ("add snow").
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "")]
    negative: String,
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// How strongly the edit follows the instruction.
    #[arg(long, default_value_t = 7.5)]
    guidance: f32,
    /// How closely the edit keeps the input image (guidance is on when --guidance > 1 and this >= 1).
    #[arg(long, default_value_t = 1.5)]
    image_guidance: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Output width; with --height. Without both, the input's aspect at the model's native size.
    #[arg(long, requires = "height")]
    width: Option<usize>,
    #[arg(long, requires = "width")]
    height: Option<usize>,
    /// Noise: a safetensors file with `noise` [1, 4, H/8, W/8] (diffusers' `latents`) and, for
    /// ancestral schedulers, `step_noise` [steps, 1, 4, H/8, W/8] (each step's draw, in order).
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

pub fn run(a: EditArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let scheduler = a.scheduler.as_deref().map(Kind::parse).transpose().map_err(anyhow::Error::msg)?;
    if a.prompt.trim().is_empty() {
        bail!("--prompt is empty: give the instruction, what to change (\"add snow\")");
    }
    check_text("the instruction", &a.prompt)?;
    check_text("the negative prompt", &a.negative)?;
    check_numbers(&[
        ("guidance", a.guidance as f64),
        ("image_guidance", a.image_guidance as f64),
        ("steps", a.steps as f64),
    ])?;
    let source =
        image::open(&a.image).with_context(|| format!("cannot read the image {}", a.image.display()))?.to_rgb8();
    if source.width() < 8 || source.height() < 8 {
        bail!(
            "{} is {}x{}: an image to edit needs at least 8 pixels on each side",
            a.image.display(),
            source.width(),
            source.height()
        );
    }
    if let (Some(w), Some(h)) = (a.width, a.height) {
        check_numbers(&[("width", w as f64), ("height", h as f64)])?;
        if w == 0 || h == 0 || w % 8 != 0 || h % 8 != 0 {
            bail!("--width and --height must be positive multiples of 8, got {w}x{h}");
        }
    }
    let opened = device::open(a.device)?;
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let dtype = a.precision.resolve(&opened);
    let root = locate(a.model_dir.as_deref(), a.model.as_deref(), dtype)?;
    let editor = InstructPix2Pix::load(&root, &opened.device, dtype)?;
    let load_s = started.elapsed().as_secs_f64();
    let (width, height) = match (a.width, a.height) {
        (Some(w), Some(h)) => (w, h),
        _ => editor.size_for(source.width() as usize, source.height() as usize),
    };
    let (lh, lw) = (height / 8, width / 8);
    let (noise, step_noise) = match &a.noise {
        Some(path) => {
            let noise = read_tensor(path, "noise", &[1, 4, lh, lw], true)?;
            let steps = read_tensor(path, "step_noise", &[a.steps, 1, 4, lh, lw], false)?
                .map(|all| all.chunks(4 * lh * lw).map(<[f32]>::to_vec).collect());
            (noise, steps)
        }
        None => (None, None),
    };
    let req = EditRequest {
        prompt: a.prompt,
        negative: a.negative,
        steps: a.steps,
        guidance: a.guidance,
        image_guidance: a.image_guidance,
        seed: a.seed.unwrap_or_else(random_seed),
        noise,
        step_noise,
        scheduler,
    };
    let input = fit(&source, width, height);
    let bar = step_bar(req.steps);
    let image = editor.generate(&input, &req, &mut metered_steps(&bar, &mut meter), &|| false)?;
    bar.finish_and_clear();
    let name = a.model.clone().unwrap_or_else(|| root.display().to_string());
    let mut meta = edit_meta(&name, &editor, &req, &image, &image_sha256(&source), &opened.description);
    meta.details.insert("source_path".into(), a.image.display().to_string().into());
    meta.details.insert("source_size".into(), serde_json::json!([source.width(), source.height()]));
    if let Some(noise) = &a.noise {
        meta.details.insert("noise_file".into(), noise.display().to_string().into());
    }
    meta.timings.load_s = load_s;
    meta.timings.total_s = started.elapsed().as_secs_f64();
    meta.peak_gpu_memory_mib = meter.peak_mib();
    meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
    let mut result = Rendered {
        frames: vec![image.to_rgb8()],
        fps: 1,
        still: true,
        input: Some(input),
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
