//! `vidplay edit`: an image changed by an instruction ("make it a fireman", "add snow") with an
//! InstructPix2Pix-family model (diffusers layout), or without one with the built-in editor, run
//! through the editor's engine as the queue runs an edit.

use super::common::{check_given, check_sides, check_text, given, locate};
use super::engine_run;
use crate::engines::builtin_edit::BuiltinEditEngine;
use crate::engines::cache::ModelCache;
use crate::engines::{Engine, Overrides};
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use anyhow::{Context, bail};
use app::types::{JobParams, Mode};
use model::device::{self, DeviceChoice};
use model::diffusers::common::scheduler::Kind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct EditArgs {
    /// A local diffusers folder of a StableDiffusionInstructPix2PixPipeline (without it or
    /// --model: the built-in editor).
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
    /// What the edit should not show.
    #[arg(long)]
    negative: Option<String>,
    /// Sampling steps (default: the model's, 50 for InstructPix2Pix).
    #[arg(long)]
    steps: Option<u32>,
    /// How strongly the edit follows the instruction (default: the model's, 7.5).
    #[arg(long)]
    guidance: Option<f32>,
    /// How closely the edit keeps the input image (guidance is on when --guidance > 1 and this >= 1;
    /// default: the model's, 1.5).
    #[arg(long)]
    image_guidance: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output width; with --height. Without both, the input's aspect at the model's native size.
    #[arg(long, requires = "height")]
    width: Option<u32>,
    #[arg(long, requires = "width")]
    height: Option<u32>,
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
    check_text("the negative prompt", a.negative.as_deref().unwrap_or_default())?;
    check_given(&[
        ("guidance", a.guidance.map(f64::from)),
        ("image_guidance", a.image_guidance.map(f64::from)),
        ("steps", a.steps.map(f64::from)),
        ("width", a.width.map(f64::from)),
        ("height", a.height.map(f64::from)),
    ])?;
    check_sides(&[a.width, a.height])?;
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
    let opened = device::open(a.device)?;
    let engine: Arc<dyn Engine> = match (&a.model_dir, &a.model) {
        (None, None) => {
            let installed_only = [
                ("--noise", a.noise.is_some()),
                ("--scheduler", a.scheduler.is_some()),
                ("--width/--height", a.width.is_some()),
                ("--precision", a.precision != PrecisionChoice::Auto),
            ];
            let given = given(&installed_only);
            if !given.is_empty() {
                bail!(
                    "{} (only for installed editors: give --model or --model-dir; the built-in editor takes none of these)",
                    given.join(", ")
                );
            }
            Arc::new(BuiltinEditEngine::new())
        }
        (dir, repo) => {
            let root = locate(dir.as_deref(), repo.as_deref(), a.precision.resolve(&opened))?;
            let name = repo.clone().unwrap_or_else(|| root.display().to_string());
            engine_run::engine_for(&name, &root, &[Mode::Edit], "edits")?
        }
    };
    let start = JobParams {
        prompt: a.prompt.clone(),
        model: engine.info().id.clone(),
        task: app::params::EDIT_TASK.into(),
        seed: a.seed,
        ..JobParams::default()
    };
    let params = engine_run::params_for(engine.as_ref(), Mode::Edit, start, |p| {
        p.negative = a.negative.clone().unwrap_or(std::mem::take(&mut p.negative));
        p.steps = a.steps.unwrap_or(p.steps);
        p.guidance = a.guidance.unwrap_or(p.guidance);
        p.image_guidance = a.image_guidance.unwrap_or(p.image_guidance);
    });
    let overrides = Overrides {
        precision: a.precision,
        noise: a.noise.clone(),
        scheduler,
        edit_size: a.width.zip(a.height),
        ..Overrides::NONE
    };
    let given = given(&[
        ("negative", a.negative.is_some()),
        ("steps", a.steps.is_some()),
        ("guidance", a.guidance.is_some()),
        ("image_guidance", a.image_guidance.is_some()),
    ]);
    let run = engine_run::Run { input: Some(&source), last_image: None, overrides: &overrides, given: &given, started };
    let mut result = engine_run::run(engine.as_ref(), params, run, &opened, &mut ModelCache::new(0))?;
    let meta = &mut result.meta;
    meta.details.insert("source_path".into(), a.image.display().to_string().into());
    meta.details.insert("source_size".into(), serde_json::json!([source.width(), source.height()]));
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
