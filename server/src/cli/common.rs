//! What several commands share: the built-in model's options, number checks against the
//! shared bounds, the terminal progress bar, and finding a diffusers folder.

use anyhow::bail;
use app::params::MAX_LORA_SCALE;
use model::builtin::pipeline::BuiltinModel;
use model::device::{self, DeviceChoice};
use model::diffusers::DType;
use model::diffusers::common::folder::{self, Precision};
use model::diffusers::common::lora::{Lora, LoraUse};
use std::path::{Path, PathBuf};

/// Where jobs, the gallery and media are kept when not in the data directory.
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// A PostgreSQL database shared by the web node and workers
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE); default: SQLite in the data directory.
    #[arg(long = "database-url", env = "VIDPLAY_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// Where media live: a folder, or an S3-compatible bucket, s3://BUCKET/PREFIX (credentials
    /// and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); default: the data
    /// directory.
    #[arg(long, env = "VIDPLAY_MEDIA", value_parser = crate::media::s3::MediaLocation::parse)]
    pub media: Option<crate::media::s3::MediaLocation>,
    /// The S3 endpoint for --media s3://... (e.g. http://storage.lab:8333); default:
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long, env = "VIDPLAY_MEDIA_ENDPOINT")]
    pub media_endpoint: Option<String>,
}

impl StoreArgs {
    /// The database given, if any: an empty one (`VIDPLAY_DATABASE_URL=`) counts as none, as
    /// everywhere it is read.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    /// The PostgreSQL database given, or why a command that shares its queue cannot run.
    pub fn shared_database(&self, command: &str) -> anyhow::Result<&str> {
        self.database_url().filter(|u| crate::storage::postgres::is_postgres_url(u)).ok_or_else(|| {
            anyhow::anyhow!(
                "{command} needs --database-url postgres://... (or VIDPLAY_DATABASE_URL): the web node and workers \
                 share their queue through one PostgreSQL database"
            )
        })
    }
}

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Compute device: auto (CUDA, else a Vulkan GPU, else another GPU, else Burn's CPU
    /// backend), cuda[:N], vulkan[:N], wgpu (default adapter), wgpu:discrete:N,
    /// wgpu:integrated:N, wgpu:cpu (lavapipe), or cpu. `vidplay devices` lists them.
    #[arg(long, env = "VIDPLAY_DEVICE", default_value = "auto")]
    pub device: DeviceChoice,
    /// Built-in model weights exported by the trainer (default: the weights shipped inside).
    #[arg(long, env = "VIDPLAY_WEIGHTS")]
    pub weights: Option<PathBuf>,
}

impl ModelArgs {
    /// The model and the device it runs on (the server runs installed models there too).
    pub fn load_on_device(&self) -> anyhow::Result<(BuiltinModel, device::OpenedDevice)> {
        let opened = device::open(self.device)?;
        let model = match &self.weights {
            Some(path) => BuiltinModel::load(path, &opened.device)?,
            None => BuiltinModel::shipped(&opened.device)?,
        };
        Ok((model, opened))
    }
}

/// Checks command-line numbers against the table the API and the pages use.
pub fn check_numbers(numbers: &[(&str, f64)]) -> anyhow::Result<()> {
    for (name, value) in numbers {
        app::limits::check_number(name, *value).map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    }
    Ok(())
}

/// [`check_numbers`] for the options given (`None`: left to the model's default).
pub fn check_given(numbers: &[(&str, Option<f64>)]) -> anyhow::Result<()> {
    check_numbers(&numbers.iter().filter_map(|(name, v)| v.map(|v| (*name, v))).collect::<Vec<_>>())
}

/// Checks the `--width`/`--height` given: every diffusers pipeline needs positive multiples of 8
/// (a model may need more; its description says).
pub fn check_sides(sides: &[Option<u32>]) -> anyhow::Result<()> {
    for side in sides.iter().flatten() {
        if *side == 0 || side % 8 != 0 {
            bail!("--width and --height must be positive multiples of 8, got {side}");
        }
    }
    Ok(())
}

/// The names of the options given, of `(name, given)` pairs.
pub fn given<'a>(options: &[(&'a str, bool)]) -> Vec<&'a str> {
    options.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect()
}

/// Checks a free-text option's length.
pub fn check_text(what: &str, text: &str) -> anyhow::Result<()> {
    app::limits::check_text(what, text, app::limits::MAX_PROMPT_CHARS).map_err(|e| anyhow::anyhow!(e))
}

/// The terminal progress bar of a sampling run (hidden when stderr is not a terminal).
pub fn step_bar(steps: usize) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(steps as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} sampling [{bar:30}] {pos}/{len} steps, {elapsed} (eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    )
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

/// The progress hook of a CLI run: moves the bar and samples GPU memory after every step.
pub fn metered_steps<'a>(
    bar: &'a indicatif::ProgressBar,
    meter: &'a mut model::gpu_memory::GpuMemoryMeter,
) -> impl FnMut(model::generate::Progress) + 'a {
    move |p| {
        meter.sample();
        bar.set_position(p.step as u64)
    }
}

/// `name`, else the machine's host name (how a worker is shown on the queue page).
pub fn machine_name(name: Option<String>) -> String {
    name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".into())
    })
}

/// Ctrl-C (SIGINT) or SIGTERM (service managers, `docker stop`).
pub async fn shutdown_signal() {
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

/// A `--lora FILE[:SCALE]`: the file read, at its scale (1 when none is given).
pub fn read_lora(spec: &str) -> anyhow::Result<LoraUse> {
    let (path, scale) = match spec.rsplit_once(':') {
        Some((path, scale)) if scale.parse::<f32>().is_ok() => (path, scale.parse::<f32>()?),
        _ => (spec, 1.0),
    };
    if !scale.is_finite() || scale.abs() > MAX_LORA_SCALE {
        bail!("--lora {spec}: the scale must be between -{MAX_LORA_SCALE} and {MAX_LORA_SCALE}");
    }
    let lora = Lora::read(std::path::Path::new(path)).map_err(|e| anyhow::anyhow!("--lora {spec}: {e}"))?;
    Ok(LoraUse { lora: std::sync::Arc::new(lora), scale })
}
