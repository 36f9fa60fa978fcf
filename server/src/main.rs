#![recursion_limit = "512"]
//! The `vidplay` binary: the playground server and the command line.

use clap::{Parser, Subcommand};
use model::device::{self, DeviceChoice};
use model::builtin::pipeline::{BuiltinModel, GenerationRequest};
use server::output::{Metadata, Timings, write_clip};
use model::builtin::evaluation as eval;
use server::{bench, input};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "vidplay", version, about = "A self-hosted video-generation playground")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Compute device: auto (a GPU through wgpu if present, else Burn's CPU backend), wgpu
    /// (default adapter), wgpu:discrete:N, wgpu:integrated:N, wgpu:cpu (lavapipe), or cpu.
    #[arg(long, env = "VIDPLAY_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// Built-in model weights exported by the trainer (default: the weights shipped inside).
    #[arg(long, env = "VIDPLAY_WEIGHTS")]
    weights: Option<PathBuf>,
}

impl ModelArgs {
    fn load(&self) -> anyhow::Result<(BuiltinModel, String)> {
        let (model, opened) = self.load_on_device()?;
        Ok((model, opened.description))
    }

    /// The model and the device it runs on (the server runs installed models there too).
    fn load_on_device(&self) -> anyhow::Result<(BuiltinModel, device::OpenedDevice)> {
        let opened = device::open(self.device)?;
        let model = match &self.weights {
            Some(path) => BuiltinModel::load(path, &opened.device)?,
            None => BuiltinModel::shipped(&opened.device)?,
        };
        Ok((model, opened))
    }
}

/// Stable Video Diffusion's options (diffusers' names and defaults).
#[derive(clap::Args, Clone)]
struct SvdArgs {
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
    #[arg(long, default_value_t = 1024)]
    width: usize,
    #[arg(long, default_value_t = 576)]
    height: usize,
    /// Frames the VAE decodes at once (default: all; fewer use less memory).
    #[arg(long)]
    decode_chunk: Option<usize>,
    /// Initial latents: a safetensors file with an f32 tensor `noise` [1, frames, 4, H/8, W/8]
    /// (diffusers' `latents`) and optionally `image_noise` [1, 3, H, W].
    #[arg(long)]
    noise: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    precision: server::text_to_image::PrecisionChoice,
    /// Load each component only while it runs and run the guidance halves one at a time.
    #[arg(long)]
    low_memory: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a clip from a prompt, or animate an image: with the built-in model, or with
    /// Stable Video Diffusion (`--model-dir` or `--model`, image-to-video).
    Generate {
        /// What to show, e.g. "a red ball bouncing on a grass field, camera pans left".
        #[arg(long, default_value = "")]
        prompt: String,
        /// First frame to animate (image-to-video).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Number of frames (default: the model's native clip length).
        #[arg(long)]
        frames: Option<usize>,
        /// Frames per second (default: 8 built-in, 7 for SVD).
        #[arg(long)]
        fps: Option<u32>,
        /// Sampling steps (default: 24 built-in, 25 for SVD).
        #[arg(long)]
        steps: Option<usize>,
        /// A local Stable Video Diffusion folder (diffusers layout).
        #[arg(long, conflicts_with_all = ["model", "weights"])]
        model_dir: Option<PathBuf>,
        /// A Hugging Face repo id, e.g. stabilityai/stable-video-diffusion-img2vid-xt.
        #[arg(long, conflicts_with = "weights")]
        model: Option<String>,
        #[command(flatten)]
        svd: SvdArgs,
        /// Text guidance scale (1 turns classifier-free guidance off).
        #[arg(long, default_value_t = 3.0)]
        guidance: f32,
        /// Image guidance scale for image-to-video.
        #[arg(long, default_value_t = 1.5)]
        image_guidance: f32,
        /// Motion strength: 1 normal, 0.5 slow, 1.5 fast.
        #[arg(long, default_value_t = 1.0)]
        motion: f32,
        /// Random seed (default: a new random one; the one used is in metadata.json).
        #[arg(long)]
        seed: Option<u64>,
        /// Output frame size in pixels (frames are upscaled from the model's resolution).
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Also write every frame as DIR/frames/0000.png, ...
        #[arg(long)]
        png_frames: bool,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        builtin: ModelArgs,
    },
    /// Measure the built-in model's faithfulness on held-out prompts.
    Eval {
        /// Clips per category.
        #[arg(long, default_value_t = 8)]
        per_category: usize,
        #[arg(long, default_value_t = 24)]
        steps: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Benchmark seconds per clip and peak memory at the default settings.
    Bench {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Make an image from a prompt with a Stable Diffusion-family model (diffusers layout).
    Image {
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
        /// Initial latents: a safetensors file with one f32 tensor `noise` [1, 4, H/8, W/8],
        /// meaning what diffusers' `latents` argument means.
        #[arg(long)]
        noise: Option<PathBuf>,
        /// Sampler: euler or ddim (default: the model's own scheduler config).
        #[arg(long)]
        scheduler: Option<String>,
        #[arg(long, value_enum, default_value = "auto")]
        precision: server::text_to_image::PrecisionChoice,
        #[arg(long, env = "VIDPLAY_DEVICE", default_value = "auto")]
        device: DeviceChoice,
        #[arg(long)]
        out: PathBuf,
    },
    /// List installed diffusers models (the models folder and the Hugging Face cache).
    Models {
        #[arg(long, env = "VIDPLAY_MODELS_DIR", default_value = "models")]
        models_dir: PathBuf,
    },
    /// List graphics adapters wgpu can see.
    Devices,
    /// Start the playground web server.
    Serve {
        #[arg(long, env = "VIDPLAY_ADDR", default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// Database and media live here.
        #[arg(long, env = "VIDPLAY_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The browser bundle, styles and public files (`cargo xtask site` writes them).
        #[arg(long, env = "VIDPLAY_SITE_ROOT", default_value = "target/site")]
        site_root: PathBuf,
        /// Do not queue example videos on first start.
        #[arg(long)]
        no_examples: bool,
        /// Installed diffusers models (one folder each) offered next to the built-in model,
        /// besides those in the Hugging Face cache.
        #[arg(long, env = "VIDPLAY_MODELS_DIR", default_value = "models")]
        models_dir: PathBuf,
        /// A host name this server may be reached by besides localhost and the bound address
        /// (e.g. the machine's name on the lab network); repeatable, or comma-separated in
        /// the environment. Requests for other names are refused (DNS rebinding).
        #[arg(long = "public-host", env = "VIDPLAY_PUBLIC_HOST", value_delimiter = ',')]
        public_hosts: Vec<String>,
        /// Require this token: `Authorization: Bearer TOKEN` for the API, a sign-in for pages.
        /// Needed to listen beyond loopback.
        #[arg(long, env = "VIDPLAY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Listen beyond loopback without a token (only behind something that authenticates).
        #[arg(long)]
        no_auth: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers complain on stderr when this is unset (common in containers and
    // services); give them a private directory. Done first, before any thread exists.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join("vidplay-xdg-runtime");
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
        {
            // SAFETY: single-threaded at this point; nothing else reads the environment yet.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,wgpu=warn,cubecl=warn,naga=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (service managers, `docker stop`).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("warning: cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Checks command-line numbers against the table the API and the pages use.
fn check_numbers(numbers: &[(&str, f64)]) -> anyhow::Result<()> {
    for (name, value) in numbers {
        app::limits::check_number(name, *value).map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    }
    Ok(())
}

/// `vidplay generate` with Stable Video Diffusion.
#[allow(clippy::too_many_arguments)]
fn generate_svd(
    model_dir: Option<PathBuf>,
    model: Option<String>,
    image: Option<PathBuf>,
    frames: Option<usize>,
    fps: Option<u32>,
    steps: Option<usize>,
    seed: Option<u64>,
    png_frames: bool,
    out: PathBuf,
    svd: SvdArgs,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    use model::diffusers::stable_video_diffusion::{MemoryMode, StableVideoDiffusion, VideoRequest};
    use server::image_to_video as i2v;
    let started = Instant::now();
    let Some(image_path) = image else {
        anyhow::bail!("Stable Video Diffusion animates an image: give --image PATH");
    };
    // Check the cheap things before loading anything.
    let input_image = input::load(&image_path)?;
    if svd.width == 0 || svd.height == 0 || svd.width % 8 != 0 || svd.height % 8 != 0 {
        anyhow::bail!("--width and --height must be positive multiples of 8, got {}x{}", svd.width, svd.height);
    }
    let opened = device::open(device)?;
    let dtype = svd.precision.resolve(&opened);
    let root = server::text_to_image::locate(model_dir.as_deref(), model.as_deref(), dtype)?;
    let memory = if svd.low_memory { MemoryMode::Low } else { MemoryMode::Resident };
    let pipeline = StableVideoDiffusion::load(&root, &opened.device, dtype, memory)?;
    let load_s = started.elapsed().as_secs_f64();
    let mut req = VideoRequest::new(svd.width, svd.height);
    req.frames = frames;
    req.steps = steps.unwrap_or(25);
    req.fps = fps.unwrap_or(7);
    req.motion_bucket = svd.motion_bucket;
    req.noise_aug = svd.noise_aug;
    req.min_guidance = svd.min_guidance;
    req.max_guidance = svd.max_guidance;
    req.decode_chunk = svd.decode_chunk;
    req.seed = seed.unwrap_or_else(server::jobs::random_seed);
    if let Some(path) = &svd.noise {
        let f = pipeline.scale_factor();
        let n = frames.unwrap_or(pipeline.default_frames());
        let latent = [pipeline.vae_config.latent_channels, svd.height / f, svd.width / f];
        let (noise, image_noise) = i2v::read_noise(path, n, latent, [svd.height, svd.width])?;
        req.noise = Some(noise);
        req.image_noise = image_noise;
    }
    let bar = server::text_to_image::step_bar(req.steps);
    let video = pipeline.generate(&input_image, &req, &mut |p| bar.set_position(p.step as u64), &|| false)?;
    bar.finish_and_clear();
    let name = model.unwrap_or_else(|| root.display().to_string());
    let mut meta = i2v::VideoMetadata::new(name, &pipeline, &req, &video, &opened, load_s);
    meta.input_image = Some(image_path.display().to_string());
    meta.noise_file = svd.noise.as_ref().map(|p| p.display().to_string());
    let input = i2v::fit(&input_image, req.width, req.height);
    i2v::write_video(&out, &video.to_rgb8(), &input, &mut meta, png_frames)?;
    println!(
        "wrote {} ({} frames at {}x{}, seed {}) in {:.1} s",
        out.display(),
        meta.frames,
        req.width,
        req.height,
        req.seed,
        meta.timings.total_s
    );
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate {
            prompt,
            image,
            frames,
            fps,
            steps,
            guidance,
            image_guidance,
            motion,
            seed,
            size,
            png_frames,
            out,
            model_dir,
            model,
            svd,
            builtin,
        } => {
            app::limits::check_text("the prompt", &prompt, app::limits::MAX_PROMPT_CHARS).map_err(|e| anyhow::anyhow!(e))?;
            check_numbers(&[("guidance", guidance as f64), ("image_guidance", image_guidance as f64), ("motion", motion as f64)])?;
            if let Some(fps) = fps {
                check_numbers(&[("fps", fps as f64)])?;
            }
            if model_dir.is_some() || model.is_some() {
                return generate_svd(model_dir, model, image, frames, fps, steps, seed, png_frames, out, svd, builtin.device);
            }
            let (fps, steps, model) = (fps.unwrap_or(8), steps.unwrap_or(24), builtin);
            let started = Instant::now();
            let req = GenerationRequest {
                prompt,
                frames,
                fps,
                steps,
                guidance,
                image_guidance,
                seed: seed.unwrap_or_else(server::jobs::random_seed),
                motion,
                display_size: size,
            };
            // Read the input before loading anything, so bad input fails fast.
            let input_image = image.as_deref().map(input::load).transpose()?;
            let (model, device) = model.load()?;
            model.validate(&req, input_image.is_some())?;
            let load_s = started.elapsed().as_secs_f64();
            let understood = model::builtin::prompt::parse(&req.prompt);
            if !understood.ignored.is_empty() {
                eprintln!("note: the model ignores: {}", understood.ignored.join(", "));
            }
            let bar = server::text_to_image::step_bar(req.steps);
            let clip = model.generate(&req, input_image.as_ref(), &mut |p| bar.set_position(p.step as u64), &|| false)?;
            bar.finish_and_clear();
            let timings = Timings {
                load_s,
                sampling_s: clip.sampling_seconds,
                encode_s: 0.0,
                total_s: started.elapsed().as_secs_f64(),
            };
            let mut meta = Metadata::new(
                model.id(),
                &req,
                &clip,
                image.map(|p| p.display().to_string()),
                &device,
                timings,
            );
            write_clip(&out, &clip, &mut meta, png_frames)?;
            println!(
                "wrote {} ({} frames, {}x{} upscaled from {}x{}, seed {}) in {:.1} s",
                out.display(),
                meta.frames,
                size,
                size,
                clip.native_size,
                clip.native_size,
                req.seed,
                meta.timings.total_s
            );
            Ok(())
        }
        Command::Eval {
            per_category,
            steps,
            seed,
            json,
            model,
        } => {
            let (model, device) = model.load()?;
            println!("evaluating {} on {device}", model.id());
            let report = eval::run(
                &model,
                &eval::EvalOptions {
                    per_category,
                    steps,
                    seed,
                },
                |line| println!("  {line}"),
            )?;
            println!("\n{}", report.table());
            println!(
                "{} clips in {:.0} s; targets {}",
                report.clips,
                report.seconds,
                if report.meets_targets() { "met" } else { "NOT met" }
            );
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(())
        }
        Command::Bench { runs, model } => {
            let report = bench::run(|| model.load(), runs.max(1))?;
            println!("{}", report.table());
            Ok(())
        }
        Command::Serve { addr, data_dir, site_root, no_examples, models_dir, public_hosts, token, no_auth, model } => {
            server::security::check_exposure(addr, token.as_deref(), no_auth).map_err(|e| anyhow::anyhow!(e))?;
            let opts = server::serve::ServeOptions {
                addr,
                data_dir,
                site_root,
                seed_examples: !no_examples,
                models_dir: Some(models_dir),
                access: server::security::Access::new(addr, &public_hosts, token),
                faults: server::faults::Faults::from_env()?,
            };
            if !server::assets::site_is_built(&opts.site_root) {
                eprintln!(
                    "warning: no browser bundle in {}; pages work without JavaScript. Build it with `cargo xtask site --release` (scripts/play does).",
                    opts.site_root.display()
                );
            }
            let config = BuiltinModel::config_of(model.weights.as_deref())?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
                let bound = listener.local_addr()?;
                let (router, jobs) = server::serve::build(&opts, config, move || model.load_on_device()).await?;
                println!("vidplay playground on http://{bound} (data in {})", opts.data_dir.display());
                let stopping = jobs.clone();
                let runtime = tokio::runtime::Handle::current();
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        shutdown_signal().await;
                        eprintln!("shutting down: the running job (if any) goes back to the queue");
                        // Event streams end now, so open pages do not hold the shutdown.
                        stopping.begin_shutdown();
                        // A step that outlasts this is cut off; its job still goes back to the queue.
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_secs(20));
                            eprintln!("shutdown took too long; exiting");
                            if let Err(e) = runtime.block_on(stopping.requeue_current()) {
                                eprintln!("putting the running job back in the queue: {e}");
                            }
                            std::process::exit(1);
                        });
                    })
                    .await?;
                // A running job goes back to the queue and runs on the next start.
                jobs.shutdown().await;
                anyhow::Ok(())
            })
        }
        Command::Image {
            model_dir,
            model,
            prompt,
            negative,
            steps,
            guidance,
            width,
            height,
            seed,
            noise,
            scheduler,
            precision,
            device,
            out,
        } => {
            use server::text_to_image as t2i;
            let started = Instant::now();
            let scheduler = t2i::parse_scheduler(scheduler.as_deref())?;
            if prompt.trim().is_empty() {
                anyhow::bail!("--prompt is empty");
            }
            for (what, text) in [("the prompt", &prompt), ("the negative prompt", &negative)] {
                app::limits::check_text(what, text, app::limits::MAX_PROMPT_CHARS).map_err(|e| anyhow::anyhow!(e))?;
            }
            check_numbers(&[("guidance", guidance as f64), ("steps", steps as f64), ("width", width as f64), ("height", height as f64)])?;
            if width == 0 || height == 0 || width % 8 != 0 || height % 8 != 0 {
                anyhow::bail!("--width and --height must be positive multiples of 8, got {width}x{height}");
            }
            let noise_file = noise.as_ref().map(|p| p.display().to_string());
            let noise = noise
                .as_deref()
                .map(|p| t2i::read_noise(p, [1, 4, height / 8, width / 8]))
                .transpose()?;
            let opened = device::open(device)?;
            let dtype = precision.resolve(&opened);
            let root = t2i::locate(model_dir.as_deref(), model.as_deref(), dtype)?;
            let sd = model::diffusers::stable_diffusion::StableDiffusion::load(&root, &opened.device, dtype)?;
            let load_s = started.elapsed().as_secs_f64();
            let req = model::diffusers::stable_diffusion::ImageRequest {
                prompt,
                negative,
                steps,
                guidance,
                width,
                height,
                seed: seed.unwrap_or_else(server::jobs::random_seed),
                noise,
                scheduler,
            };
            let image = t2i::generate(&sd, &req)?;
            let name = model.clone().unwrap_or_else(|| root.display().to_string());
            let mut meta = t2i::ImageMetadata::new(name, &sd, &req, &image, &opened, load_s, started.elapsed().as_secs_f64());
            meta.noise_file = noise_file;
            t2i::write_image(&out, &image, &meta)?;
            println!("wrote {}/image.png ({width}x{height}, seed {}) in {:.1} s", out.display(), req.seed, meta.timings.total_s);
            Ok(())
        }
        Command::Models { models_dir } => {
            let lines = server::text_to_image::list_models(Some(&models_dir));
            if lines.is_empty() {
                println!(
                    "no diffusers models in {} or the Hugging Face cache ({}); `vidplay image --model REPO_ID` fetches one",
                    models_dir.display(),
                    model::diffusers::common::folder::hub_cache().display()
                );
            }
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        Command::Devices => {
            let adapters = device::list_adapters();
            if adapters.is_empty() {
                println!("no wgpu adapters (install mesa-vulkan-drivers for a CPU one); `--device cpu` still works");
            }
            for a in adapters {
                println!("{a}");
            }
            Ok(())
        }
    }
}
