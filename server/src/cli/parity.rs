//! `vidplay parity`: diffusers' own fixture pipelines (model/tests/fixtures, written by diffusers
//! with its noise and its outputs) run on one device at one precision, each compared with what
//! diffusers made. How a new machine or backend is checked without the test suite:
//! scripts/gpu_check runs it on every GPU backend, in f32 and in f16.

use crate::precision::PrecisionChoice;
use anyhow::bail;
use model::device::{self, DeviceChoice};
use model::diffusers::DType;
use model::diffusers::common::video::MemoryMode;
use model::diffusers::parity;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ParityArgs {
    /// The fixtures folder: every `sd/*`, `ip2p/*`, `svd/*` and `wan/*` pipeline in it runs.
    #[arg(long, default_value = "model/tests/fixtures")]
    fixtures: PathBuf,
    #[arg(long, env = "VIDPLAY_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// f32 (the default) or f16; auto is the device's default.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionChoice,
    /// The least PSNR each pipeline must reach, in dB: 40 in f32, 30 in f16 unless given.
    #[arg(long)]
    min_psnr: Option<f64>,
}

pub fn run(a: ParityArgs) -> anyhow::Result<()> {
    let family = |name: &str| -> anyhow::Result<Vec<PathBuf>> {
        let dir = a.fixtures.join(name);
        let mut folders: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e} (--fixtures names model/tests/fixtures)", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("expected.json").is_file() && p.join("model_index.json").is_file())
            .collect();
        folders.sort();
        Ok(folders)
    };
    let (sd, svd) = (family("sd")?, family("svd")?);
    // Older fixture folders (scripts/gpu_check packs them) may have no editors or Wan.
    let optional = |name: &str| if a.fixtures.join(name).is_dir() { family(name) } else { Ok(Vec::new()) };
    let (ip2p, wan) = (optional("ip2p")?, optional("wan")?);
    if sd.is_empty() && svd.is_empty() && ip2p.is_empty() && wan.is_empty() {
        bail!("no fixture pipelines under {}", a.fixtures.display());
    }
    let opened = device::open(a.device)?;
    let dtype = a.precision.resolve(&opened);
    let bound = a.min_psnr.unwrap_or(if dtype == DType::F32 { 40.0 } else { 30.0 });
    println!("parity with diffusers on {} ({}), {dtype:?}, at least {bound} dB", opened.description, opened.choice);
    let mut worst = f64::INFINITY;
    let mut failed = Vec::new();
    let all = sd
        .iter()
        .map(|f| ("sd", f))
        .chain(ip2p.iter().map(|f| ("ip2p", f)))
        .chain(svd.iter().map(|f| ("svd", f)))
        .chain(wan.iter().map(|f| ("wan", f)));
    for (kind, folder) in all {
        let results = match kind {
            "sd" => parity::run_sd(folder, &opened.device, dtype)?,
            "ip2p" => parity::run_ip2p(folder, &opened.device, dtype)?,
            "wan" => parity::run_wan(folder, &opened.device, dtype, MemoryMode::Resident)?,
            _ => parity::run_svd(folder, &opened.device, dtype)?,
        };
        for r in results {
            println!("{kind} {}: PSNR {:.1} dB, max abs {:.2e}", r.name, r.psnr_db, r.max_abs);
            worst = worst.min(r.psnr_db);
            if r.psnr_db < bound {
                failed.push(format!("{} ({:.1} dB)", r.name, r.psnr_db));
            }
        }
    }
    if !failed.is_empty() {
        bail!("below {bound} dB against diffusers: {}", failed.join(", "));
    }
    println!("all pipelines within {bound} dB (worst {worst:.1} dB)");
    Ok(())
}
