//! Preparing GPU kernels before the first jobs: a worker on a GPU runs every installed model's
//! first task once, briefly (one sampling step at its default settings, result dropped),
//! whenever no job is waiting, so that the kernels are compiled and tuned before a person waits
//! for them. A job that comes meanwhile waits only for the model being prepared now; a model a
//! job has run is not prepared again. Nothing is kept across restarts: cubecl keeps its kernel
//! and autotune caches in memory unless its `persistence` feature is on, which this build leaves
//! off (it adds a database engine and minutes to every build).

use super::Jobs;
use crate::engines::cache::ModelCache;
use crate::engines::{Engine, EngineJob, Overrides, RunContext};
use app::types::{JobParams, Mode, WarmUp};
use model::device::OpenedDevice;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
/// where the task takes one.
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
    let mode = engine.validate(&mut params, has_image).ok()?;
    let image = has_image.then(|| image::RgbImage::from_pixel(params.width, params.height, image::Rgb([128; 3])));
    Some((params, mode, image))
}

/// The models a worker still has to prepare, in the registry's order.
pub(super) struct Pending(VecDeque<Arc<dyn Engine>>);

impl Pending {
    /// Nothing to prepare (the device did not open).
    pub(super) fn none() -> Self {
        Self(VecDeque::new())
    }

    /// Whether `id` is still to be prepared; it no longer is (a job has run it).
    fn take(&mut self, id: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|e| e.info().id != id);
        self.0.len() < before
    }
}

impl Jobs {
    /// What this worker will prepare on `device`; the health figure starts at 0 of them.
    pub(super) fn warm_up_plan(&self, device: &OpenedDevice) -> Pending {
        let applies = self.inner.setup.as_ref().is_some_and(|s| s.warm_up.applies(device));
        let engines: VecDeque<Arc<dyn Engine>> =
            if applies { self.inner.registry.engines().iter().cloned().collect() } else { VecDeque::new() };
        if !engines.is_empty() {
            let total = engines.len() as u32;
            tracing::info!(models = total, "preparing GPU kernels while no job waits");
            *self.inner.warm_up.lock().expect("warm-up lock") = Some(WarmUp { done: 0, total, current: None });
        }
        Pending(engines)
    }

    /// A job has run `model`: its kernels are prepared, it counts as done.
    pub(super) fn warm_up_ran(&self, pending: &mut Pending, model: &str) {
        if pending.take(model) {
            self.set_warm_up(|w| w.done += 1);
        }
    }

    /// Prepares the next model of `pending`; false when none is left.
    pub(super) fn warm_up_next(&self, pending: &mut Pending, device: &OpenedDevice, models: &mut ModelCache) -> bool {
        let Some(engine) = pending.0.pop_front() else {
            return false;
        };
        let id = engine.info().id.clone();
        self.set_warm_up(|w| w.current = Some(id.clone()));
        self.inner.faults.before_warm_up();
        // Pages cached by the last model go back first, as before a job: the next model's
        // kernels are then tuned, and its decode chunk chosen, with the memory a job would have.
        device.device.memory_cleanup();
        let started = Instant::now();
        let run = std::panic::AssertUnwindSafe(|| {
            let (params, mode, image) =
                job_of(engine.as_ref()).ok_or("its default settings do not make a valid job".to_string())?;
            let mut progress = |_: model::generate::Progress| {};
            let cancelled = || self.inner.stopping.load(Ordering::Relaxed);
            let mut ctx = RunContext { device, models, progress: &mut progress, cancelled: &cancelled };
            let job = EngineJob { params: &params, mode, input: image.as_ref(), overrides: &Overrides::NONE };
            engine.run(job, &mut ctx).map(|_| ()).map_err(|e| e.to_string())
        });
        let outcome = std::panic::catch_unwind(run)
            .unwrap_or_else(|panic| Err(format!("panicked: {}", super::worker::panic_message(&*panic))));
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => tracing::info!(model = %id, seconds, "GPU kernels prepared"),
            Err(_) if self.inner.stopping.load(Ordering::Relaxed) => {
                tracing::info!(model = %id, seconds, "preparing GPU kernels stopped: shutting down")
            }
            Err(why) => tracing::warn!(model = %id, seconds, "preparing GPU kernels failed: {why}"),
        }
        self.set_warm_up(|w| {
            w.done += 1;
            w.current = None;
        });
        *self.inner.loaded.lock().expect("loaded lock") = models.loaded();
        true
    }

    fn set_warm_up(&self, change: impl FnOnce(&mut WarmUp)) {
        if let Some(w) = self.inner.warm_up.lock().expect("warm-up lock").as_mut() {
            change(w);
        }
    }
}
