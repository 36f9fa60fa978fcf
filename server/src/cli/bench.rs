//! `vidplay bench`: seconds per clip and peak memory of the built-in model at default settings.

use super::common::ModelArgs;
use model::builtin::pipeline::{BuiltinModel, GenerationRequest};
use model::device::OpenedDevice;
use model::gpu_memory::GpuMemoryMeter;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub load_s: f64,
    /// First clip: includes shader compilation and autotuning.
    pub first_clip_s: f64,
    pub clip_s: Vec<f64>,
    /// Measuring each clip's scores (what the playground does after every job).
    pub score_s: Vec<f64>,
    pub steps: usize,
    pub frames: usize,
    pub native_size: usize,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Peak GPU memory Burn's allocator held (none on the CPU backend), MiB.
    pub peak_gpu_mib: Option<f64>,
}

impl BenchReport {
    pub fn mean_clip_s(&self) -> f64 {
        self.clip_s.iter().sum::<f64>() / self.clip_s.len().max(1) as f64
    }

    pub fn mean_score_s(&self) -> f64 {
        self.score_s.iter().sum::<f64>() / self.score_s.len().max(1) as f64
    }

    pub fn table(&self) -> String {
        let min = self.clip_s.iter().cloned().fold(f64::MAX, f64::min);
        format!(
            "device: {}\n\
             | measure | value |\n|---|---|\n\
             | model load | {:.2} s |\n\
             | first clip (shader compile + autotune) | {:.2} s |\n\
             | clip, mean of {} ({} frames {}x{}, {} steps) | {:.2} s |\n\
             | clip, best | {:.2} s |\n\
             | per sampling step | {:.3} s |\n\
             | scoring a clip (display frames), mean | {:.3} s ({:.1}% of the clip) |\n\
             | peak resident memory (host) | {} |\n\
             | peak GPU memory | {} |\n",
            self.device,
            self.load_s,
            self.first_clip_s,
            self.clip_s.len(),
            self.frames,
            self.native_size,
            self.native_size,
            self.steps,
            self.mean_clip_s(),
            min,
            self.mean_clip_s() / self.steps as f64,
            self.mean_score_s(),
            100.0 * self.mean_score_s() / self.mean_clip_s(),
            self.peak_rss_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB")),
            self.peak_gpu_mib.map_or("n/a (CPU backend)".into(), |m| format!("{m:.0} MiB")),
        )
    }
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn command(a: BenchArgs) -> anyhow::Result<()> {
    let report = run(|| a.model.load_on_device(), a.runs.max(1))?;
    println!("{}", report.table());
    Ok(())
}

pub fn run(
    load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)>,
    runs: usize,
) -> anyhow::Result<BenchReport> {
    let t0 = Instant::now();
    let (model, opened) = load()?;
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let load_s = t0.elapsed().as_secs_f64();
    let req = GenerationRequest {
        prompt: "a red ball bouncing on a grass field while it snows, camera pans left".into(),
        seed: 1,
        ..Default::default()
    };
    let mut score_s = Vec::new();
    let mut time = |seed: u64| -> anyhow::Result<f64> {
        let t = Instant::now();
        let clip =
            model.generate(&GenerationRequest { seed, ..req.clone() }, None, &mut |_| meter.sample(), &|| false)?;
        let took = t.elapsed().as_secs_f64();
        let t = Instant::now();
        crate::scores::score(&clip.frames, crate::scores::Against { input: None, prompt: Some(&req.prompt) })?;
        score_s.push(t.elapsed().as_secs_f64());
        Ok(took)
    };
    let first_clip_s = time(0)?;
    let clip_s = (0..runs).map(|i| time(i as u64 + 1)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(BenchReport {
        device: opened.description,
        load_s,
        first_clip_s,
        clip_s,
        score_s,
        steps: req.steps,
        frames: model.config().frames,
        native_size: model.config().size,
        peak_rss_mib: crate::memory::peak_rss_mib(),
        peak_gpu_mib: meter.peak_mib(),
    })
}
