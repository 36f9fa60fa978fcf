//! A command run through a model's engine, as the queue runs a job: the folder's family builds
//! the engine, the engine checks the parameters (the model's defaults fill what the command
//! line leaves out) and runs with a terminal progress bar instead of the queue's events.

use super::common::{metered_steps, step_bar};
use crate::engines::cache::ModelCache;
use crate::engines::family::Family;
use crate::engines::registry::{FAMILIES, family_of};
use crate::engines::{Engine, EngineJob, Overrides, Rendered, RunContext};
use anyhow::bail;
use app::models::ParamValue;
use app::types::{JobParams, Mode};
use image::RgbImage;
use model::device::OpenedDevice;
use model::diffusers::common::folder::ModelFolder;
use model::gpu_memory::GpuMemoryMeter;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The engine of the model `name` in the diffusers folder `root`, if its family does one of
/// `wanted` (`what` names them for people: "video", "edits").
pub fn engine_for(name: &str, root: &Path, wanted: &[Mode], what: &str) -> anyhow::Result<Arc<dyn Engine>> {
    let class = ModelFolder::open(root)?.class_name;
    let doing = |f: &&Family| f.tasks.iter().any(|t| wanted.contains(t));
    let runs: Vec<&str> = FAMILIES.iter().filter(doing).flat_map(|f| f.pipelines.iter().copied()).collect();
    match family_of(&class) {
        Some(family) if doing(&family) => Ok((family.build)(name, root)),
        Some(_) => {
            bail!("{}: a {class} makes no {what} here (vidplay makes {what} with {})", root.display(), runs.join(", "))
        }
        None => {
            bail!(
                "{}: a {class} is not a pipeline vidplay runs (it makes {what} with {})",
                root.display(),
                runs.join(", ")
            )
        }
    }
}

/// `params` at the defaults of `engine`'s model for `task`, with what the command line gave
/// set by `given` afterwards.
pub fn params_for(engine: &dyn Engine, task: Mode, start: JobParams, given: impl FnOnce(&mut JobParams)) -> JobParams {
    let mut params = engine.info().defaults(task, start);
    given(&mut params);
    params
}

/// What a command runs besides the parameters.
pub struct Run<'a> {
    pub input: Option<&'a RgbImage>,
    /// The clip's last frame (`--last-image`).
    pub last_image: Option<&'a RgbImage>,
    pub overrides: &'a Overrides,
    /// The parameters the command line gave: one the model does not take, or a value it would
    /// change (Wan rounds frames to 4k + 1), is an error here rather than silently another clip.
    pub given: &'a [&'a str],
    /// When the command started: the result's total time counts from it.
    pub started: Instant,
}

/// Checks and runs one job of `engine` (its seed drawn when not given; `models` holds what is
/// loaded already); the result carries the whole command's time and the peak memory.
pub fn run(
    engine: &dyn Engine,
    mut params: JobParams,
    run: Run<'_>,
    device: &OpenedDevice,
    models: &mut ModelCache,
) -> anyhow::Result<Rendered> {
    let info = engine.info();
    if let Some(name) = run.given.iter().find(|name| info.param(name).is_none()) {
        let takes: Vec<String> = info.params.iter().map(|p| format!("--{}", p.name.replace('_', "-"))).collect();
        let takes = if takes.is_empty() { "none of these".to_string() } else { takes.join(", ") };
        bail!("--{}: {} has no such setting (it takes {takes})", name.replace('_', "-"), info.id);
    }
    let asked = params.clone();
    let mode = engine.validate(&mut params, run.input.is_some()).map_err(anyhow::Error::msg)?;
    for name in run.given {
        let (want, got) = (asked.value(name), params.value(name));
        if want != got {
            let help = engine.info().param(name).map_or(String::new(), |p| format!("; {}", p.help));
            let show = |v: Option<ParamValue>| match v {
                Some(ParamValue::Number(n)) => n.to_string(),
                Some(ParamValue::Text(t)) => t,
                None => String::new(),
            };
            bail!(
                "--{} {}: {} would make {} instead{help}",
                name.replace('_', "-"),
                show(want),
                engine.info().id,
                show(got)
            );
        }
    }
    params.seed = Some(params.seed.unwrap_or_else(crate::ids::random_seed));
    let mut meter = GpuMemoryMeter::start(&device.device);
    let bar = step_bar(engine.total_steps(&params, mode) as usize);
    let mut rendered = {
        let mut progress = metered_steps(&bar, &mut meter);
        let mut ctx = RunContext { device, models, progress: &mut progress, cancelled: &|| false, keep: None };
        let job =
            EngineJob { params: &params, mode, input: run.input, last_image: run.last_image, overrides: run.overrides };
        engine.run(job, &mut ctx)?
    };
    bar.finish_and_clear();
    let meta = &mut rendered.meta;
    meta.timings.total_s = run.started.elapsed().as_secs_f64();
    meta.peak_gpu_memory_mib = meter.peak_mib();
    meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
    Ok(rendered)
}
