//! `vidplay generate`: a clip from a prompt, or an animated image, with the built-in model or an
//! installed video model (`--model-dir`, `--model`: Stable Video Diffusion and Wan image-to-video
//! animate an image, Wan text-to-video makes a clip from text), run through the model's engine
//! as the queue runs a job, and written as the playground writes results (video.mp4, video.gif,
//! metadata.json, input.png when animating, optionally frames/*.png).

use super::common::{ModelArgs, check_given, check_sides, check_text, given, locate};
use super::engine_run;
use crate::engines::builtin::BuiltinEngine;
use crate::engines::cache::ModelCache;
use crate::engines::overrides::TextEncoderPlacement;
use crate::engines::{Engine, Overrides};
use crate::media::input;
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use anyhow::bail;
use app::types::{JobParams, Mode};
use model::device;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The largest SVD motion bucket: motion strength 2 (the motion parameter's bound).
const MAX_MOTION_BUCKET: u32 = 254;

/// The options of installed models: Stable Video Diffusion's and Wan's (diffusers' names); what
/// is left out takes the model's default.
#[derive(clap::Args, Clone)]
pub struct InstalledArgs {
    /// SVD: motion bucket id, more motion when higher (default 127; sets --motion to it / 127).
    #[arg(long, conflicts_with = "motion")]
    motion_bucket: Option<u32>,
    /// SVD: noise added to the input image before encoding it (default 0.02).
    #[arg(long)]
    noise_aug: Option<f32>,
    /// SVD: guidance on the first frame; it ramps to --max-guidance on the last (default 1).
    #[arg(long)]
    min_guidance: Option<f32>,
    /// SVD: guidance on the last frame (the same as --guidance; default 3).
    #[arg(long, conflicts_with = "guidance")]
    max_guidance: Option<f32>,
    /// Width in pixels (default: the model's, 1024 for SVD, 832 for Wan).
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels (default: the model's, 576 for SVD, 480 for Wan).
    #[arg(long)]
    height: Option<u32>,
    /// Wan: what the clip should not show.
    #[arg(long)]
    negative: Option<String>,
    /// Wan image to video: the clip's last frame (it ends on this picture).
    #[arg(long, requires = "image")]
    last_image: Option<PathBuf>,
    /// Wan: block swap, the transformer blocks kept on the GPU (each expert's), the others
    /// streamed from host memory for each pass; `auto`: as many as 60% of the free memory holds
    /// (default: all on the GPU).
    #[arg(long, value_name = "N|auto")]
    gpu_blocks: Option<crate::engines::overrides::GpuBlocks>,
    /// Wan 2.2 A14B: guidance of the low-noise expert, which makes the last steps (default:
    /// the model's).
    #[arg(long = "guidance-2")]
    guidance_2: Option<f32>,
    /// Wan: where the text encoder runs (auto: the GPU when it has 24 GiB or more, else the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    text_encoder_device: TextEncoderPlacement,
    /// SVD: frames the VAE decodes at once (default: as many as the free memory allows, at most
    /// 6 GiB of it with --low-memory; all of them where the free memory is unknown, as on wgpu).
    #[arg(long)]
    decode_chunk: Option<usize>,
    /// Initial latents (diffusers' `latents`): a safetensors file with an f32 tensor `noise`,
    /// for SVD [1, frames, 4, H/8, W/8] and optionally `image_noise` [1, 3, H, W], for Wan
    /// [1, 16, (frames - 1)/4 + 1, H/8, W/8].
    #[arg(long)]
    noise: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    precision: PrecisionChoice,
    /// Load each component only while it runs and run the guidance halves one at a time.
    #[arg(long)]
    low_memory: bool,
    /// Wan: a LoRA to merge into the transformer, at a scale (default 1): `FILE` or
    /// `FILE:SCALE`, in diffusers or ComfyUI naming; repeat for several. With Wan 2.2's two
    /// experts, a file named for the high-noise model (`high_noise_model`, `..._HIGH_...`) goes
    /// to the first, one for the low-noise model to the second, any other to both.
    #[arg(long = "lora", value_name = "FILE[:SCALE]")]
    loras: Vec<String>,
    /// Benchmarks: one one-step run at the same size first, so the timings leave out kernel
    /// compilation and autotuning (that run's seconds are `timings.warmup_s`).
    #[arg(long)]
    warmup: bool,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// What to show, e.g. "a red ball bouncing on a grass field, camera pans left".
    #[arg(long, default_value = "")]
    prompt: String,
    /// First frame to animate (image-to-video).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Number of frames (default: the model's: 16 built-in, SVD's own clip length, 81 for Wan).
    #[arg(long)]
    frames: Option<u32>,
    /// Frames per second (default: 8 built-in, 7 for SVD, 16 for Wan).
    #[arg(long)]
    fps: Option<u32>,
    /// Sampling steps (default: 24 built-in, 25 for SVD, 50 for Wan).
    #[arg(long)]
    steps: Option<u32>,
    /// A local Stable Video Diffusion or Wan folder (diffusers layout).
    #[arg(long, conflicts_with_all = ["model", "weights"])]
    model_dir: Option<PathBuf>,
    /// A Hugging Face repo id, e.g. stabilityai/stable-video-diffusion-img2vid-xt or
    /// Wan-AI/Wan2.1-T2V-1.3B-Diffusers.
    #[arg(long, conflicts_with = "weights")]
    model: Option<String>,
    #[command(flatten)]
    installed: InstalledArgs,
    /// Text guidance scale (1 turns classifier-free guidance off; default: the model's, 3 for
    /// the built-in model and SVD, 5 for Wan).
    #[arg(long)]
    guidance: Option<f32>,
    /// Image guidance scale for image-to-video (the built-in model; default 1.5).
    #[arg(long)]
    image_guidance: Option<f32>,
    /// Motion strength: 1 normal, 0.5 slow, 1.5 fast (default 1).
    #[arg(long)]
    motion: Option<f32>,
    /// Random seed (default: a new random one; the one used is in metadata.json).
    #[arg(long)]
    seed: Option<u64>,
    /// Output size in pixels: text-to-video frames are this many pixels square (default 256,
    /// upscaled from the model's resolution); an animated image keeps its own resolution
    /// unless this sets its longest side.
    #[arg(long)]
    size: Option<u32>,
    /// Also write every frame as DIR/frames/0000.png, ...
    #[arg(long)]
    png_frames: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    builtin: ModelArgs,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    check_text("the prompt", &a.prompt)?;
    let o = &a.installed;
    check_text("the negative prompt", o.negative.as_deref().unwrap_or_default())?;
    let numbers = [
        ("guidance", a.guidance.or(o.max_guidance).map(f64::from)),
        ("guidance_2", o.guidance_2.map(f64::from)),
        ("image_guidance", a.image_guidance.map(f64::from)),
        ("motion", a.motion.map(f64::from)),
        ("fps", a.fps.map(f64::from)),
    ];
    check_given(&numbers)?;
    check_sides(&[o.width, o.height])?;
    if let Some(bucket) = o.motion_bucket.filter(|b| *b > MAX_MOTION_BUCKET) {
        bail!("--motion-bucket must be from 0 to {MAX_MOTION_BUCKET} (twice SVD's default 127), not {bucket}");
    }
    // Read the input before loading anything, so bad input fails fast.
    let input_image = a.image.as_deref().map(input::load).transpose()?;
    let last_image = o.last_image.as_deref().map(input::load).transpose()?;
    let mut load_s = 0.0;
    let (engine, opened, mut models) = match (&a.model_dir, &a.model) {
        (None, None) => {
            let installed_only = [
                ("--noise", o.noise.is_some()),
                ("--decode-chunk", o.decode_chunk.is_some()),
                ("--noise-aug", o.noise_aug.is_some()),
                ("--min-guidance", o.min_guidance.is_some()),
                ("--max-guidance", o.max_guidance.is_some()),
                ("--motion-bucket", o.motion_bucket.is_some()),
                ("--negative", o.negative.is_some()),
                ("--last-image", o.last_image.is_some()),
                ("--guidance-2", o.guidance_2.is_some()),
                ("--gpu-blocks", o.gpu_blocks.is_some()),
                ("--low-memory", o.low_memory),
                ("--warmup", o.warmup),
                ("--precision", o.precision != PrecisionChoice::Auto),
                ("--text-encoder-device", o.text_encoder_device != TextEncoderPlacement::Auto),
            ];
            let given = given(&installed_only);
            if !given.is_empty() {
                bail!(
                    "{} (only for installed models: give --model or --model-dir; the built-in model takes none of these)",
                    given.join(", ")
                );
            }
            let loading = Instant::now();
            let (model, opened) = a.builtin.load_on_device()?;
            load_s = loading.elapsed().as_secs_f64();
            let engine: Arc<dyn Engine> = Arc::new(BuiltinEngine::new(model.config().clone()));
            let mut models = ModelCache::new(0);
            models.insert_pinned(&engine.info().id, engine.info().memory_mib, model);
            (engine, opened, models)
        }
        (dir, repo) => {
            let opened = device::open(a.builtin.device)?;
            let root = locate(dir.as_deref(), repo.as_deref(), o.precision.resolve(&opened))?;
            let name = repo.clone().unwrap_or_else(|| root.display().to_string());
            let video = [Mode::TextToVideo, Mode::ImageToVideo];
            (engine_run::engine_for(&name, &root, &video, "video")?, opened, ModelCache::new(0))
        }
    };
    let info = engine.info();
    if !o.loras.is_empty() && !info.takes_loras {
        bail!("{} takes no LoRAs (--lora is for Wan and Stable Diffusion models)", info.id);
    }
    let task = match &input_image {
        Some(_) if !info.tasks.contains(&Mode::ImageToVideo) => {
            bail!("{} makes videos from text; it does not take --image", info.id)
        }
        Some(_) => Mode::ImageToVideo,
        None if !info.tasks.contains(&Mode::TextToVideo) => bail!("{} animates an image: give --image PATH", info.id),
        None => Mode::TextToVideo,
    };
    if o.gpu_blocks.is_some() && !info.family.starts_with("wan") {
        bail!("{} takes no --gpu-blocks (block swap is for Wan models)", info.id);
    }
    if last_image.is_some() && !info.takes_last_image() {
        bail!("{} takes no --last-image (Wan image-to-video models do)", info.id);
    }
    if task == Mode::TextToVideo && a.prompt.trim().is_empty() {
        bail!("the prompt is empty: give --prompt TEXT, what the clip shows");
    }
    if info.reads_prompt {
        let understood = model::builtin::prompt::parse(&a.prompt);
        if !understood.ignored.is_empty() {
            eprintln!("note: the model ignores: {}", understood.ignored.join(", "));
        }
    }
    let start = JobParams { prompt: a.prompt.clone(), model: info.id.clone(), seed: a.seed, ..JobParams::default() };
    let params = engine_run::params_for(engine.as_ref(), task, start, |p| {
        p.frames = a.frames.unwrap_or(p.frames);
        p.fps = a.fps.unwrap_or(p.fps);
        p.steps = a.steps.unwrap_or(p.steps);
        p.guidance = a.guidance.or(o.max_guidance).unwrap_or(p.guidance);
        p.guidance_2 = o.guidance_2.unwrap_or(p.guidance_2);
        p.last_image = last_image.is_some();
        p.image_guidance = a.image_guidance.unwrap_or(p.image_guidance);
        p.motion = o.motion_bucket.map(|b| b as f32 / 127.0).or(a.motion).unwrap_or(p.motion);
        p.width = o.width.unwrap_or(p.width);
        p.height = o.height.unwrap_or(p.height);
        p.negative = o.negative.clone().unwrap_or(std::mem::take(&mut p.negative));
    });
    let given = given(&[
        ("frames", a.frames.is_some()),
        ("fps", a.fps.is_some()),
        ("steps", a.steps.is_some()),
        ("guidance", a.guidance.or(o.max_guidance).is_some()),
        ("guidance_2", o.guidance_2.is_some()),
        ("image_guidance", a.image_guidance.is_some()),
        ("motion", a.motion.or(o.motion_bucket.map(|b| b as f32)).is_some()),
        ("width", o.width.is_some()),
        ("height", o.height.is_some()),
        ("negative", o.negative.is_some()),
    ]);
    let overrides = Overrides {
        precision: o.precision,
        noise: o.noise.clone(),
        low_memory: o.low_memory,
        warmup: o.warmup,
        text_encoder: o.text_encoder_device,
        decode_chunk: o.decode_chunk,
        noise_aug: o.noise_aug,
        min_guidance: o.min_guidance,
        size: a.size,
        loras: o.loras.iter().map(|spec| super::common::read_lora(spec)).collect::<anyhow::Result<_>>()?,
        gpu_blocks: o.gpu_blocks,
        ..Overrides::NONE
    };
    let run = engine_run::Run {
        input: input_image.as_ref(),
        last_image: last_image.as_ref(),
        overrides: &overrides,
        given: &given,
        started,
    };
    let mut result = engine_run::run(engine.as_ref(), params, run, &opened, &mut models)?;
    result.meta.input_image = a.image.as_ref().map(|p| p.display().to_string());
    // The built-in model was loaded before its engine ran.
    result.meta.timings.load_s += load_s;
    write_to_folder(&mut result, WriteOptions { png_frames: a.png_frames, gallery: false }, &a.out)?;
    let meta = &result.meta;
    let [w, h] = meta.resolution.display;
    let how = match (meta.resolution.native, meta.resolution.upscale_filter.as_str()) {
        (_, "motion-warp") => format!("{w}x{h}, the picture moved by the motion model"),
        ([nw, nh], _) if [nw, nh] != [w, h] => format!("{w}x{h} upscaled from {nw}x{nh}"),
        _ => format!("{w}x{h}"),
    };
    println!(
        "wrote {} ({} frames, {how}, seed {}) in {:.1} s",
        a.out.display(),
        meta.frames,
        meta.seed,
        meta.timings.total_s,
    );
    Ok(())
}
