//! Preparing GPU kernels before the first jobs: a worker on a GPU runs every installed model's
//! first task once, briefly (one sampling step at its default settings, result dropped),
//! whenever no job is waiting, so that the kernels are compiled and tuned before a person waits
//! for them. A job that comes meanwhile waits only for the model being prepared now; a model a
//! job has run is not prepared again. Nothing is kept across restarts: cubecl keeps its kernel
//! and autotune caches in memory unless its `persistence` feature is on, which this build leaves
//! off (it adds a database engine and minutes to every build).

use super::control::Control;
use super::report::WorkerReport;
use crate::engines::cache::ModelCache;
use crate::engines::{Engine, EngineJob, Overrides, Registry, RunContext};
use crate::faults::Faults;
use app::types::{JobParams, Mode};
use model::device::OpenedDevice;
use model::generate::panic_message;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// When a worker prepares its kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WarmUpPolicy {
    /// On a GPU (CUDA, Vulkan, a wgpu GPU); not on Burn's CPU backend, which compiles nothing,
    /// nor on lavapipe, where compiling every model's shaders takes many minutes of CPU.
    #[default]
    Auto,
    /// On any device (tests; a lavapipe server that should be ready before its first visitor).
    Always,
    Never,
}

impl WarmUpPolicy {
    pub fn applies(self, device: &OpenedDevice) -> bool {
        match self {
            WarmUpPolicy::Auto => device.gpu,
            WarmUpPolicy::Always => true,
            WarmUpPolicy::Never => false,
        }
    }
}

/// The short job that prepares `engine`'s kernels: its first task at the model's default
/// settings, one sampling step (one keyframe step for a chain), a grey picture of that size
/// where the task takes one (and as the last frame where the model takes one: a model may
/// require it).
pub fn job_of(engine: &dyn Engine) -> Option<(JobParams, Mode, Option<image::RgbImage>)> {
    let info = engine.info();
    let task = *info.tasks.first()?;
    let has_image = matches!(task, Mode::ImageToVideo | Mode::Edit);
    let (prompt, job_task) = if task == Mode::Edit { ("make it red", "edit") } else { ("a red ball", "") };
    let start = JobParams {
        prompt: prompt.into(),
        model: info.id.clone(),
        task: job_task.into(),
        seed: Some(0),
        ..JobParams::default()
    };
    let mut params = info.defaults(task, start);
    params.steps = 1;
    params.keyframe_steps = params.keyframe_steps.min(1);
    params.last_image = has_image && info.takes_last_image();
    let mode = engine.validate(&mut params, has_image).ok()?;
    let image = has_image.then(|| image::RgbImage::from_pixel(params.width, params.height, image::Rgb([128; 3])));
    Some((params, mode, image))
}

/// A worker's preparation of its models' kernels: the models still to prepare, in the
/// registry's order, and how far it has come (in the worker's report).
pub(super) struct Warmer {
    pending: VecDeque<Arc<dyn Engine>>,
    report: Arc<WorkerReport>,
    control: Arc<Control>,
    faults: Faults,
}

impl Warmer {
    /// What a worker will prepare on `device` (nothing where `policy` does not apply, or
    /// without a device); the report starts at 0 of them.
    pub(super) fn plan(
        policy: WarmUpPolicy,
        device: Option<&OpenedDevice>,
        registry: &Registry,
        report: Arc<WorkerReport>,
        control: Arc<Control>,
        faults: Faults,
    ) -> Self {
        let pending: VecDeque<Arc<dyn Engine>> = match device {
            Some(device) if policy.applies(device) => registry.engines().iter().cloned().collect(),
            _ => VecDeque::new(),
        };
        if !pending.is_empty() {
            let total = pending.len() as u32;
            tracing::info!(models = total, "preparing GPU kernels while no job waits");
            report.begin_warm_up(total);
        }
        Self { pending, report, control, faults }
    }

    /// A job has run `model`: its kernels are prepared, it counts as done.
    pub(super) fn ran(&mut self, model: &str) {
        let before = self.pending.len();
        self.pending.retain(|e| e.info().id != model);
        if self.pending.len() < before {
            self.report.change_warm_up(|w| w.done += 1);
        }
    }

    /// Prepares the next model; false when none is left.
    pub(super) fn next(&mut self, device: &OpenedDevice, models: &mut ModelCache) -> bool {
        let Some(engine) = self.pending.pop_front() else {
            return false;
        };
        let id = engine.info().id.clone();
        self.report.change_warm_up(|w| w.current = Some(id.clone()));
        self.faults.before_warm_up();
        // Pages cached by the last model go back first, as before a job: the next model's
        // kernels are then tuned, and its decode chunk chosen, with the memory a job would have.
        device.device.memory_cleanup();
        let started = Instant::now();
        let run = std::panic::AssertUnwindSafe(|| {
            let (params, mode, image) =
                job_of(engine.as_ref()).ok_or("its default settings do not make a valid job".to_string())?;
            let mut progress = |_: model::generate::Progress| {};
            let cancelled = || self.control.stopping();
            let mut ctx = RunContext { device, models, progress: &mut progress, cancelled: &cancelled, keep: None };
            let job = EngineJob {
                params: &params,
                mode,
                input: image.as_ref(),
                last_image: image.as_ref().filter(|_| params.last_image),
                overrides: &Overrides::NONE,
            };
            engine.run(job, &mut ctx).map(|_| ()).map_err(|e| e.to_string())
        });
        let outcome =
            std::panic::catch_unwind(run).unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))));
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => tracing::info!(model = %id, seconds, "GPU kernels prepared"),
            Err(_) if self.control.stopping() => {
                tracing::info!(model = %id, seconds, "preparing GPU kernels stopped: shutting down")
            }
            Err(why) => tracing::warn!(model = %id, seconds, "preparing GPU kernels failed: {why}"),
        }
        self.report.change_warm_up(|w| {
            w.done += 1;
            w.current = None;
        });
        self.report.set_loaded(models.loaded());
        true
    }
}
