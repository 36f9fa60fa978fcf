//! `vidplay generate`: a clip from a prompt, or an animated image, with the built-in model, with
//! Stable Video Diffusion (an image) or with Wan (text) from `--model-dir` or `--model`, written
//! as the playground writes results (video.mp4, video.gif, metadata.json, input.png when
//! animating, optionally frames/*.png).

use super::common::{ModelArgs, check_numbers, check_text, locate, metered_steps, read_tensor, step_bar};
use crate::engines::Rendered;
use crate::engines::builtin;
use crate::engines::stable_video_diffusion as svd_engine;
use crate::engines::wan as wan_engine;
use crate::ids::random_seed;
use crate::media::input;
use crate::media::writer::{WriteOptions, write_to_folder};
use crate::precision::PrecisionChoice;
use app::types::{JobParams, Mode};
use model::builtin::pipeline::GenerationRequest;
use model::device;
use model::free_memory::free_bytes;
use model::gpu_memory::GpuMemoryMeter;
use std::path::PathBuf;
use std::time::Instant;

/// The options of installed models: Stable Video Diffusion's and Wan's (diffusers' names and
/// defaults).
#[derive(clap::Args, Clone)]
pub struct SvdArgs {
    /// Motion bucket id: more motion when higher.
    #[arg(long, default_value_t = 127)]
    motion_bucket: u32,
    /// Noise added to the input image before encoding it.
    #[arg(long, default_value_t = 0.02)]
    noise_aug: f32,
    /// Guidance on the first frame; it ramps to --max-guidance on the last.
    #[arg(long, default_value_t = 1.0)]
    min_guidance: f32,
    #[arg(long, default_value_t = 3.0)]
    max_guidance: f32,
    /// Width in pixels (default: 1024 for SVD, 832 for Wan).
    #[arg(long)]
    width: Option<usize>,
    /// Height in pixels (default: 576 for SVD, 480 for Wan).
    #[arg(long)]
    height: Option<usize>,
    /// Wan: what the clip should not show.
    #[arg(long, default_value = "")]
    negative: String,
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
    /// Number of frames (default: the model's native clip length).
    #[arg(long)]
    frames: Option<usize>,
    /// Frames per second (default: 8 built-in, 7 for SVD, 16 for Wan).
    #[arg(long)]
    fps: Option<u32>,
    /// Sampling steps (default: 24 built-in, 25 for SVD, 50 for Wan).
    #[arg(long)]
    steps: Option<usize>,
    /// A local Stable Video Diffusion or Wan folder (diffusers layout).
    #[arg(long, conflicts_with_all = ["model", "weights"])]
    model_dir: Option<PathBuf>,
    /// A Hugging Face repo id, e.g. stabilityai/stable-video-diffusion-img2vid-xt or
    /// Wan-AI/Wan2.1-T2V-1.3B-Diffusers.
    #[arg(long, conflicts_with = "weights")]
    model: Option<String>,
    #[command(flatten)]
    svd: SvdArgs,
    /// Text guidance scale (1 turns classifier-free guidance off; default 3, 5 for Wan).
    #[arg(long)]
    guidance: Option<f32>,
    /// Image guidance scale for image-to-video.
    #[arg(long, default_value_t = 1.5)]
    image_guidance: f32,
    /// Motion strength: 1 normal, 0.5 slow, 1.5 fast.
    #[arg(long, default_value_t = 1.0)]
    motion: f32,
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
    check_text("the prompt", &a.prompt)?;
    check_numbers(&[
        ("guidance", a.guidance.unwrap_or(3.0) as f64),
        ("image_guidance", a.image_guidance as f64),
        ("motion", a.motion as f64),
    ])?;
    if let Some(fps) = a.fps {
        check_numbers(&[("fps", fps as f64)])?;
    }
    if a.model_dir.is_some() || a.model.is_some() {
        return run_installed(a);
    }
    let started = Instant::now();
    let req = GenerationRequest {
        prompt: a.prompt.clone(),
        frames: a.frames,
        fps: a.fps.unwrap_or(8),
        steps: a.steps.unwrap_or(24),
        guidance: a.guidance.unwrap_or(3.0),
        image_guidance: a.image_guidance,
        seed: a.seed.unwrap_or_else(random_seed),
        motion: a.motion,
        display_size: a.size.filter(|_| a.image.is_none()).unwrap_or(256),
        image_long_side: a.size.filter(|_| a.image.is_some()),
    };
    // Read the input before loading anything, so bad input fails fast.
    let input_image = a.image.as_deref().map(input::load).transpose()?;
    let (model, opened) = a.builtin.load_on_device()?;
    let mut meter = GpuMemoryMeter::start(&opened.device);
    model.validate(&req, input_image.is_some())?;
    let load_s = started.elapsed().as_secs_f64();
    let understood = model::builtin::prompt::parse(&req.prompt);
    if !understood.ignored.is_empty() {
        eprintln!("note: the model ignores: {}", understood.ignored.join(", "));
    }
    let bar = step_bar(req.steps);
    let clip = model.generate(&req, input_image.as_ref(), &mut metered_steps(&bar, &mut meter), &|| false)?;
    bar.finish_and_clear();
    let params = JobParams {
        prompt: req.prompt.clone(),
        fps: req.fps,
        steps: req.steps as u32,
        guidance: req.guidance,
        image_guidance: req.image_guidance,
        motion: req.motion,
        ..JobParams::default()
    };
    let mut meta = builtin::result_meta(&params, &clip, &req, &opened.description);
    meta.input_image = a.image.as_ref().map(|p| p.display().to_string());
    meta.timings.load_s = load_s;
    meta.timings.total_s = started.elapsed().as_secs_f64();
    meta.peak_gpu_memory_mib = meter.peak_mib();
    meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
    let native = clip.native_size;
    let (w, h) = clip.frames[0].dimensions();
    let how = if input_image.is_some() {
        format!("{w}x{h}, the picture moved by the motion model")
    } else {
        format!("{w}x{h} upscaled from {native}x{native}")
    };
    let mut result = Rendered {
        frames: clip.frames,
        fps: clip.fps,
        still: false,
        input: clip.native_input,
        keyframe: None,
        continue_from: None,
        meta,
    };
    write_to_folder(&mut result, WriteOptions { png_frames: a.png_frames, gallery: false }, &a.out)?;
    println!(
        "wrote {} ({} frames, {how}, seed {}) in {:.1} s",
        a.out.display(),
        result.meta.frames,
        req.seed,
        result.meta.timings.total_s,
    );
    Ok(())
}

/// Where Wan's text encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextEncoderPlacement {
    Auto,
    Cpu,
    /// On the device the model runs on.
    Same,
}

/// `vidplay generate` with an installed model: the folder's pipeline decides which.
fn run_installed(a: GenerateArgs) -> anyhow::Result<()> {
    use model::diffusers::common::folder::ModelFolder;
    use model::diffusers::stable_video_diffusion::StableVideoDiffusion;
    use model::diffusers::wan::pipeline::Wan;
    let started = Instant::now();
    // Check the cheap things before loading anything.
    let input_image = a.image.as_deref().map(input::load).transpose()?;
    for (name, v) in [("--width", a.svd.width), ("--height", a.svd.height)] {
        if v == Some(0) {
            anyhow::bail!("{name} must be positive");
        }
    }
    let opened = device::open(a.builtin.device)?;
    let dtype = a.svd.precision.resolve(&opened);
    let root = locate(a.model_dir.as_deref(), a.model.as_deref(), dtype)?;
    let class = ModelFolder::open(&root)?.class_name;
    if class == Wan::PIPELINE_CLASS {
        run_wan(a, input_image.is_some(), opened, dtype, root, started)
    } else if class == StableVideoDiffusion::PIPELINE_CLASS {
        let Some(image) = input_image else {
            anyhow::bail!("Stable Video Diffusion animates an image: give --image PATH");
        };
        run_svd(a, image, opened, dtype, root, started)
    } else {
        anyhow::bail!(
            "{}: a {class} makes no video here (use it with `vidplay image` or `vidplay edit`)",
            root.display()
        )
    }
}

/// `vidplay generate` with Wan: text to video.
fn run_wan(
    a: GenerateArgs,
    has_image: bool,
    opened: device::OpenedDevice,
    dtype: model::diffusers::DType,
    root: PathBuf,
    started: Instant,
) -> anyhow::Result<()> {
    use model::diffusers::common::video::MemoryMode;
    use model::diffusers::wan::pipeline::{TextVideoRequest, Wan, WanOptions};
    let o = a.svd;
    if has_image {
        anyhow::bail!("Wan text-to-video makes clips from text; it does not take --image");
    }
    if a.prompt.trim().is_empty() {
        anyhow::bail!("give --prompt TEXT: Wan makes the clip from the text");
    }
    check_text("the negative prompt", &o.negative)?;
    let mut req = TextVideoRequest::new(a.prompt.clone());
    req.negative_prompt = o.negative.clone();
    req.width = o.width.unwrap_or(req.width);
    req.height = o.height.unwrap_or(req.height);
    req.frames = a.frames.unwrap_or(req.frames);
    req.steps = a.steps.unwrap_or(req.steps);
    req.guidance = a.guidance.unwrap_or(req.guidance);
    req.seed = a.seed.unwrap_or_else(random_seed);
    let fps = a.fps.unwrap_or(wan_engine::FPS);
    let memory = if o.low_memory { MemoryMode::Low } else { MemoryMode::Resident };
    let options = match o.text_encoder_device {
        TextEncoderPlacement::Auto => WanOptions::auto(&opened, memory),
        TextEncoderPlacement::Same => WanOptions::on(
            &opened.device,
            if dtype == model::diffusers::DType::F16 { model::diffusers::DType::BF16 } else { dtype },
            memory,
        ),
        TextEncoderPlacement::Cpu => WanOptions {
            text_device: device::open(device::DeviceChoice::Cpu)?.device,
            text_dtype: model::diffusers::DType::F32,
            memory,
        },
    };
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let pipeline = Wan::load(&root, &opened.device, dtype, options)?;
    pipeline.validate(&req)?;
    if let Some(path) = &o.noise {
        let [c, f, h, w] = pipeline.latent_shape(&req);
        req.noise = read_tensor(path, "noise", &[1, c, f, h, w], true)?;
    }
    let load_s = started.elapsed().as_secs_f64();
    let warmup_s = warmup_seconds(o.warmup, || {
        pipeline.generate(&TextVideoRequest { steps: 1, ..req.clone() }, &mut |_| meter.sample(), &|| false)
    })?;
    let bar = step_bar(req.steps);
    let video = pipeline.generate(&req, &mut metered_steps(&bar, &mut meter), &|| false)?;
    bar.finish_and_clear();
    let name = a.model.unwrap_or_else(|| root.display().to_string());
    let mut meta = wan_engine::video_meta(&name, &pipeline, &req, &video, fps, &opened.description, load_s);
    meta.timings.warmup_s = warmup_s;
    let result =
        Rendered { frames: video.to_rgb8(), fps, still: false, input: None, keyframe: None, continue_from: None, meta };
    write_installed(result, o.noise.as_deref(), started, &mut meter, a.png_frames, &a.out)
}

/// Runs the `--warmup` pass when asked (one step at the same size: the kernels compiled and
/// tuned before the timed run) and returns its seconds, the first-run cost a benchmark reports.
pub(super) fn warmup_seconds<T>(
    warmup: bool,
    run: impl FnOnce() -> Result<T, model::generate::GenerateError>,
) -> anyhow::Result<f64> {
    if !warmup {
        return Ok(0.0);
    }
    let started = Instant::now();
    run()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Writes an installed model's clip as the playground writes results, with the noise file, the
/// total time and the peak GPU memory in its metadata, and says so.
fn write_installed(
    mut result: Rendered,
    noise: Option<&std::path::Path>,
    started: Instant,
    meter: &mut GpuMemoryMeter,
    png_frames: bool,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let meta = &mut result.meta;
    if let Some(noise) = noise {
        meta.details.insert("noise_file".into(), noise.display().to_string().into());
    }
    meta.timings.total_s = started.elapsed().as_secs_f64();
    meta.peak_gpu_memory_mib = meter.peak_mib();
    write_to_folder(&mut result, WriteOptions { png_frames, gallery: false }, out)?;
    let [w, h] = result.meta.resolution.native;
    println!(
        "wrote {} ({} frames at {w}x{h}, seed {}) in {:.1} s",
        out.display(),
        result.meta.frames,
        result.meta.seed,
        result.meta.timings.total_s
    );
    Ok(())
}

/// `vidplay generate` with Stable Video Diffusion: image to video.
fn run_svd(
    a: GenerateArgs,
    input_image: image::RgbImage,
    opened: device::OpenedDevice,
    dtype: model::diffusers::DType,
    root: PathBuf,
    started: Instant,
) -> anyhow::Result<()> {
    use model::diffusers::stable_video_diffusion::{MemoryMode, StableVideoDiffusion, VideoRequest};
    let svd = a.svd;
    let image_path = a.image.clone().unwrap_or_default();
    let (width, height) = (svd.width.unwrap_or(1024), svd.height.unwrap_or(576));
    if width % 8 != 0 || height % 8 != 0 {
        anyhow::bail!("--width and --height must be positive multiples of 8, got {width}x{height}");
    }
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let memory = if svd.low_memory { MemoryMode::Low } else { MemoryMode::Resident };
    let pipeline = StableVideoDiffusion::load(&root, &opened.device, dtype, memory)?;
    let load_s = started.elapsed().as_secs_f64();
    let mut req = VideoRequest::new(width, height);
    req.frames = a.frames;
    req.steps = a.steps.unwrap_or(25);
    req.fps = a.fps.unwrap_or(7);
    req.motion_bucket = svd.motion_bucket;
    req.noise_aug = svd.noise_aug;
    req.min_guidance = svd.min_guidance;
    req.max_guidance = svd.max_guidance;
    req.decode_chunk = svd.decode_chunk;
    req.decode_chunk = Some(pipeline.decode_chunk_for(&req, free_bytes(opened.choice, &opened.device)));
    req.seed = a.seed.unwrap_or_else(random_seed);
    if let Some(path) = &svd.noise {
        let f = pipeline.scale_factor();
        let n = a.frames.unwrap_or(pipeline.default_frames());
        let (c, h, w) = (pipeline.vae_config.latent_channels, height / f, width / f);
        req.noise = read_tensor(path, "noise", &[1, n, c, h, w], true)?;
        req.image_noise = read_tensor(path, "image_noise", &[1, 3, height, width], false)?;
    }
    let warmup_s = warmup_seconds(svd.warmup, || {
        pipeline.generate(&input_image, &VideoRequest { steps: 1, ..req.clone() }, &mut |_| meter.sample(), &|| false)
    })?;
    let bar = step_bar(req.steps);
    let video = pipeline.generate(&input_image, &req, &mut metered_steps(&bar, &mut meter), &|| false)?;
    bar.finish_and_clear();
    let name = a.model.unwrap_or_else(|| root.display().to_string());
    let mut meta = svd_engine::video_meta(&name, &pipeline, &req, &video, &opened.description, load_s);
    meta.timings.warmup_s = warmup_s;
    meta.input_image = Some(image_path.display().to_string());
    meta.mode = Mode::ImageToVideo;
    let input = svd_engine::fit(&input_image, req.width, req.height);
    let result = Rendered {
        frames: video.to_rgb8(),
        fps: req.fps,
        still: false,
        input: Some(input),
        keyframe: None,
        continue_from: None,
        meta,
    };
    write_installed(result, svd.noise.as_deref(), started, &mut meter, a.png_frames, &a.out)
}
