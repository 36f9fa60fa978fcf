//! The job queue: persisted in the [`Store`], run one at a time on a dedicated generation
//! thread that owns the model (never on the async runtime), with live progress broadcast to
//! whoever listens and cancel between steps.
//!
//! A job's files are written to `DATA_DIR/media/ID.partial/` and renamed to
//! `DATA_DIR/media/ID/` only when complete, so no half-written media are ever served. Uploaded
//! images are normalised to PNG in `DATA_DIR/uploads/ID.png` when the job is created, so a job
//! interrupted by a restart can run again.

use crate::faults::{CrashPoint, Faults};
use crate::input;
use crate::media;
use crate::output::{Metadata, Timings, write_clip};
use crate::storage::{Store, StoreError};
use app::types::{Job, JobParams, JobState, Mode, StepUpdate, Video, WorkerHealth};
use model::device::OpenedDevice;
use model::diffusers::stable_diffusion::{ImageRequest, StableDiffusion};
use model::diffusers::stable_video_diffusion::{MemoryMode, StableVideoDiffusion};
use model::builtin::net::NetConfig;
use model::builtin::pipeline::{BuiltinModel, GenerationRequest};
use model::generate::{GenerateError, Progress};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, broadcast, watch};

/// Most jobs waiting at once; more are refused with "queue full".
pub const QUEUE_LIMIT: usize = 16;
/// Most event streams open at once; more are refused with 503.
pub const MAX_EVENT_STREAMS: usize = 64;

/// What listeners of the queue hear: a job whose state changed (the whole job), or a running
/// job's progress (just the numbers).
#[derive(Debug, Clone)]
pub enum JobEvent {
    Changed(Box<Job>),
    Step(StepUpdate),
}

impl JobEvent {
    pub fn job_id(&self) -> &str {
        match self {
            JobEvent::Changed(job) => &job.id,
            JobEvent::Step(step) => &step.id,
        }
    }
}

/// One open event stream; the slot is given back when it is dropped.
pub struct StreamSlot(Arc<Inner>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request or its image is unusable; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("the queue is full ({QUEUE_LIMIT} jobs waiting); try again when some have finished")]
    QueueFull,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// An installed diffusers model the queue can run: text-to-image (keyframes), or
/// image-to-video (Stable Video Diffusion, also text-to-video through a keyframe).
#[derive(Debug, Clone)]
pub struct ImageModel {
    pub name: String,
    pub path: PathBuf,
    pub video: bool,
}

/// Limits of text-to-image jobs in the playground.
pub const MAX_IMAGE_SIDE: u32 = 1024;
pub const MAX_IMAGE_STEPS: u32 = 150;

/// Checks a text-to-image job's parameters.
pub fn validate_image_params(params: &JobParams) -> Result<(), String> {
    if params.prompt.trim().is_empty() {
        return Err("the prompt is empty: describe the image".into());
    }
    for (what, v) in [("width", params.width), ("height", params.height)] {
        if v < 64 || v > MAX_IMAGE_SIDE || v % 8 != 0 {
            return Err(format!("{what} must be a multiple of 8 from 64 to {MAX_IMAGE_SIDE}, not {v}"));
        }
    }
    if params.steps == 0 || params.steps > MAX_IMAGE_STEPS {
        return Err(format!("steps must be 1 to {MAX_IMAGE_STEPS}, not {}", params.steps));
    }
    if !params.guidance.is_finite() || !(0.0..=30.0).contains(&params.guidance) {
        return Err(format!("guidance must be 0 to 30, not {}", params.guidance));
    }
    Ok(())
}

/// An image given with a job.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub name: String,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A new id: time-ordered lowercase hex (16 digits).
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let salt = model::rng::mix(nanos ^ (n << 32) ^ std::process::id() as u64) & 0xf_ffff;
    format!("{:011x}{:05x}", now_ms() as u64 & 0xfff_ffff_ffff, salt)
}

/// A seed for requests that leave it out (recorded with the result, so it can be reused).
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    model::rng::mix(nanos ^ std::process::id() as u64) % 1_000_000_000
}

/// The model request a job's parameters make.
pub fn request_of(params: &JobParams) -> GenerationRequest {
    GenerationRequest {
        prompt: params.prompt.clone(),
        frames: Some(params.frames as usize),
        fps: params.fps,
        steps: params.steps as usize,
        guidance: params.guidance,
        image_guidance: params.image_guidance,
        seed: params.seed.unwrap_or(0),
        motion: params.motion,
        ..GenerationRequest::default()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    examples_dir: PathBuf,
    config: NetConfig,
    model_id: String,
    image_models: Vec<ImageModel>,
    /// Cancel flags of jobs that are running, or were asked to stop while being claimed.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    events: broadcast::Sender<JobEvent>,
    /// Turns true when the server begins to shut down (event streams end).
    closing: watch::Sender<bool>,
    open_streams: AtomicUsize,
    /// Image decoding at once: about one per core.
    decoding: Arc<Semaphore>,
    faults: Faults,
    /// The job the worker is running now, and the last failure it saw.
    current: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    model_failed: AtomicBool,
    wake: Mutex<mpsc::Sender<()>>,
    /// Set by [`Jobs::begin_shutdown`]: the worker puts its job back in the queue and stops.
    stopping: AtomicBool,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl Jobs {
    /// Re-queues jobs a crash interrupted, then starts the generation thread, which loads the
    /// model with `load` and runs queued jobs oldest first.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: Arc<dyn Store>,
        data_dir: PathBuf,
        examples_dir: PathBuf,
        config: NetConfig,
        model_id: &str,
        image_models: Vec<ImageModel>,
        faults: Faults,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)> + Send + 'static,
    ) -> anyhow::Result<Jobs> {
        for dir in ["media", "uploads"] {
            std::fs::create_dir_all(data_dir.join(dir))?;
        }
        let recovered = store.recover_interrupted(now_ms()).await?;
        if !recovered.requeued.is_empty() {
            tracing::warn!(ids = ?recovered.requeued, "jobs interrupted by a restart are queued again");
        }
        if !recovered.done.is_empty() {
            tracing::warn!(ids = ?recovered.done, "jobs that finished just before a crash are marked done");
        }
        if !recovered.failed.is_empty() {
            tracing::error!(ids = ?recovered.failed, "jobs that crashed the server twice are failed");
        }
        crate::recovery::clean_orphans(store.as_ref(), &data_dir).await?;
        let (wake_tx, wake_rx) = mpsc::channel();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                store,
                data_dir,
                examples_dir,
                config,
                model_id: model_id.into(),
                image_models,
                cancels: Mutex::default(),
                events: broadcast::channel(256).0,
                closing: watch::channel(false).0,
                open_streams: AtomicUsize::new(0),
                decoding: Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))),
                faults,
                current: Mutex::default(),
                last_error: Mutex::default(),
                model_failed: AtomicBool::new(false),
                wake: Mutex::new(wake_tx),
                stopping: AtomicBool::new(false),
                worker: Mutex::new(None),
            }),
        };
        let worker = jobs.clone();
        let rt = Handle::current();
        let handle = std::thread::Builder::new()
            .name("generation".into())
            .spawn(move || worker.run_worker(rt, wake_rx, load))?;
        *jobs.inner.worker.lock().expect("worker lock") = Some(handle);
        Ok(jobs)
    }

    /// Begins shutting down: event streams end, and a running job is interrupted at its next
    /// step and queued again, so the next start runs it. Returns at once.
    pub fn begin_shutdown(&self) {
        // The worker sees `stopping` between steps; a cancel flag stays a user's cancel.
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.closing.send_replace(true);
        self.wake();
    }

    /// Resolves when the server begins to shut down.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Puts the job the worker is running back in the queue, for a shutdown that cannot wait
    /// for it to stop (a step longer than the shutdown allows): it runs again on the next start,
    /// and it does not count as a crash.
    pub async fn requeue_current(&self) -> Result<(), StoreError> {
        let current = self.inner.current.lock().expect("current lock").clone();
        if let Some(id) = current
            && let Some(mut job) = self.inner.store.job(id).await?
            && job.state == JobState::Running
        {
            put_back_for_shutdown(&mut job);
            self.inner.store.update_job(job).await?;
        }
        Ok(())
    }

    /// Stops the generation thread (see [`Jobs::begin_shutdown`]); returns when it has exited.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let handle = self.inner.worker.lock().expect("worker lock").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn media_dir(&self) -> PathBuf {
        self.inner.data_dir.join("media")
    }

    pub fn examples_dir(&self) -> &Path {
        &self.inner.examples_dir
    }

    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    pub fn image_models(&self) -> &[ImageModel] {
        &self.inner.image_models
    }

    pub fn config(&self) -> &NetConfig {
        &self.inner.config
    }

    /// Every job update (created, each step, finished).
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// A slot for one more event stream, unless [`MAX_EVENT_STREAMS`] are open.
    pub fn stream_slot(&self) -> Option<StreamSlot> {
        let taken = self.inner.open_streams.fetch_add(1, Ordering::Relaxed);
        let slot = StreamSlot(self.inner.clone());
        (taken < MAX_EVENT_STREAMS).then_some(slot)
    }

    fn publish(&self, job: &Job) {
        let _ = self.inner.events.send(JobEvent::Changed(Box::new(job.clone())));
    }

    /// Whether the worker is alive, what it runs, how long the queue is, the last failure.
    pub async fn health(&self) -> Result<WorkerHealth, StoreError> {
        let worker_alive = self.inner.worker.lock().expect("worker lock").as_ref().is_some_and(|h| !h.is_finished());
        let model_failed = self.inner.model_failed.load(Ordering::Relaxed);
        let queue_length = self.inner.store.queued_count().await?;
        Ok(WorkerHealth {
            worker_alive,
            current_job: self.inner.current.lock().expect("current lock").clone(),
            queue_length,
            last_error: self.inner.last_error.lock().expect("error lock").clone(),
            stalled: !worker_alive || model_failed,
        })
    }

    /// The largest side an accepted upload keeps: the largest any installed model uses.
    pub fn max_input_side(&self) -> u32 {
        let svd = self.inner.image_models.iter().any(|m| m.video);
        let builtin = model::builtin::pipeline::MAX_DISPLAY_SIZE;
        if svd { builtin.max(crate::image_to_video::MAX_VIDEO_SIDE) } else { builtin }
    }

    /// The cancel flag of a job, made if it has none yet (shared by a cancel and the worker,
    /// whichever comes first, so a cancel that lands while the job is claimed is not lost).
    fn cancel_flag(&self, id: &str) -> Arc<AtomicBool> {
        self.inner.cancels.lock().expect("cancels lock").entry(id.to_string()).or_default().clone()
    }

    fn forget_cancel_flag(&self, id: &str) {
        self.inner.cancels.lock().expect("cancels lock").remove(id);
    }

    fn wake(&self) {
        let _ = self.inner.wake.lock().expect("wake lock").send(());
    }

    /// Checks and queues a job. The image, if any, is decoded with the upload limits and
    /// stored as PNG before the job is queued.
    pub async fn submit(&self, mut params: JobParams, upload: Option<Upload>) -> Result<Job, SubmitError> {
        app::limits::check_params(&params).map_err(SubmitError::Invalid)?;
        if params.model.is_empty() {
            params.model = self.inner.model_id.clone();
        }
        let installed = self.inner.image_models.iter().find(|m| m.name == params.model);
        let is_image_model = installed.is_some_and(|m| !m.video);
        let is_video_model = installed.is_some_and(|m| m.video);
        if params.model != self.inner.model_id && installed.is_none() {
            let mut names = vec![self.inner.model_id.clone()];
            names.extend(self.inner.image_models.iter().map(|m| m.name.clone()));
            return Err(SubmitError::Invalid(format!("unknown model {:?}; this server has {names:?}", params.model)));
        }
        let seed = params.seed.unwrap_or_else(random_seed);
        params.seed = Some(seed);
        let mode = if is_video_model {
            crate::image_to_video::validate_job(&params, upload.is_some()).map_err(SubmitError::Invalid)?;
            if upload.is_some() {
                Mode::ImageToVideo
            } else {
                let Some(keyframe) = self.keyframe_model(&params) else {
                    return Err(SubmitError::Invalid(format!(
                        "{} animates images; for text to video install a text-to-image model too (it makes the keyframe), or give an image",
                        params.model
                    )));
                };
                params.keyframe_model = keyframe.name.clone();
                Mode::TextToVideo
            }
        } else if is_image_model {
            if upload.is_some() {
                return Err(SubmitError::Invalid(format!(
                    "{} makes images from text; it does not take an input image",
                    params.model
                )));
            }
            validate_image_params(&params).map_err(SubmitError::Invalid)?;
            Mode::TextToImage
        } else {
            model::builtin::pipeline::validate(&self.inner.config, &request_of(&params), upload.is_some())
                .map_err(|e| SubmitError::Invalid(e.to_string()))?;
            if upload.is_some() { Mode::ImageToVideo } else { Mode::TextToVideo }
        };
        // Refuse before decoding anything when there is no room (enqueue checks again, atomically).
        if self.inner.store.queued_count().await? >= QUEUE_LIMIT as u64 {
            return Err(SubmitError::QueueFull);
        }
        let id = new_id();
        let upload_path = self.upload_path(&id);
        if let Some(upload) = upload {
            let path = upload_path.clone();
            let max_side = self.max_input_side();
            // Held by the decoding itself, so a client that goes away does not free it early.
            let permit = self.inner.decoding.clone().acquire_owned().await.map_err(|e| SubmitError::Internal(e.to_string()))?;
            tokio::task::spawn_blocking(move || -> Result<(), SubmitError> {
                let _permit = permit;
                let img = input::decode(&upload.bytes, &upload.name).map_err(|e| SubmitError::Invalid(e.to_string()))?;
                // Kept no larger than any model uses, so an accepted upload never fails later.
                let img = input::fit_within(img, max_side);
                let mut png = Vec::new();
                img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|e| SubmitError::Internal(format!("encoding the upload: {e}")))?;
                media::write_atomic(&path, &png).map_err(|e| SubmitError::Internal(format!("saving the upload: {e:#}")))
            })
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))??;
        }
        let total = if is_video_model && mode == Mode::TextToVideo { params.keyframe_steps + params.steps } else { params.steps };
        let job = Job {
            id: id.clone(),
            state: JobState::Queued,
            mode,
            total,
            params,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            step: 0,
            message: None,
            video_id: None,
        };
        match self.inner.store.enqueue(job.clone(), QUEUE_LIMIT).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = std::fs::remove_file(&upload_path);
                return Err(SubmitError::QueueFull);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&upload_path);
                return Err(e.into());
            }
        }
        tracing::info!(id = %job.id, mode = job.mode.as_str(), "job queued");
        self.publish(&job);
        self.wake();
        Ok(job)
    }

    /// The text-to-image model that makes a text-to-video job's keyframe.
    fn keyframe_model(&self, params: &JobParams) -> Option<&ImageModel> {
        let mut t2i = self.inner.image_models.iter().filter(|m| !m.video);
        if params.keyframe_model.is_empty() { t2i.next() } else { t2i.find(|m| m.name == params.keyframe_model) }
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        crate::recovery::upload_path(&self.inner.data_dir, id)
    }

    /// The stored upload of a job (no paths in the message: it is shown to users).
    fn load_upload(&self, id: &str) -> Result<image::RgbImage, GenerateError> {
        let bytes = std::fs::read(self.upload_path(id))
            .map_err(|e| GenerateError::InvalidRequest(format!("the uploaded image is gone ({})", e.kind())))?;
        input::decode(&bytes, "the uploaded image").map_err(|e| GenerateError::InvalidRequest(e.to_string()))
    }

    /// Cancels a queued or running job. Returns the job as it is now, or `None` if unknown.
    pub async fn cancel(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let Some(mut job) = self.inner.store.job(id.to_string()).await? else {
            return Ok(None);
        };
        if job.state.is_finished() {
            return Ok(Some(job));
        }
        // Raised before the queue is touched: if the worker claims the job meanwhile, it finds
        // the flag up and stops at once.
        self.cancel_flag(id).store(true, Ordering::Relaxed);
        if self.inner.store.cancel_queued(id.to_string(), now_ms()).await? {
            self.forget_cancel_flag(id);
            let _ = std::fs::remove_file(self.upload_path(id));
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            self.publish(&job);
        } else {
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            if job.state.is_finished() {
                // It finished before the flag was seen: nothing left to stop.
                self.forget_cancel_flag(id);
            }
        }
        Ok(Some(job))
    }

    /// Deletes a video: its record first (its media are unreachable from then on), then its
    /// files, moved aside at once and removed (a failed removal is retried at the next start).
    pub async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.inner.store.delete_video(id.to_string()).await?;
        if existed {
            crate::recovery::remove_media(&self.media_dir(), id).await;
        }
        Ok(existed)
    }

    fn run_worker(
        self,
        rt: Handle,
        wake: mpsc::Receiver<()>,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)>,
    ) {
        // The installed text-to-image model last used, kept loaded until another one is asked for.
        let mut image_model: Option<(String, StableDiffusion)> = None;
        // Likewise the image-to-video model.
        let mut video_model: Option<(String, StableVideoDiffusion)> = None;
        let loaded = {
            let _span = tracing::info_span!("load model").entered();
            let started = Instant::now();
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("loading panicked: {}", panic_message(&*panic))));
            tracing::info!(seconds = started.elapsed().as_secs_f64(), ok = loaded.is_ok(), "model load");
            if let Err(e) = &loaded {
                self.inner.model_failed.store(true, Ordering::Relaxed);
                self.set_last_error(format!("the model could not be loaded: {e:#}"));
            }
            loaded
        };
        loop {
            if self.inner.stopping.load(Ordering::Relaxed) {
                return;
            }
            let claimed = rt.block_on(self.inner.store.claim_next(now_ms()));
            let job = match claimed {
                Ok(Some(job)) => job,
                Ok(None) => {
                    // Sleep until a submit wakes us (or re-check now and then).
                    match wake.recv_timeout(std::time::Duration::from_secs(2)) {
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        _ => continue,
                    }
                }
                Err(e) => {
                    tracing::error!("reading the queue: {e}");
                    self.set_last_error(format!("reading the queue: {e}"));
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    continue;
                }
            };
            *self.inner.current.lock().expect("current lock") = Some(job.id.clone());
            self.inner.faults.after_claim();
            let id = job.id.clone();
            let finished = match &loaded {
                Ok((model, device)) => {
                    let claimed = job.clone();
                    // A panic inside generation fails this job; the worker goes on with the next.
                    let run = std::panic::AssertUnwindSafe(|| self.run_job(&rt, model, device, &mut image_model, &mut video_model, job));
                    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                        let why = panic_message(&*panic);
                        tracing::error!(id = %claimed.id, "generation panicked: {why}");
                        let _ = std::fs::remove_dir_all(self.partial_dir(&claimed.id));
                        Job {
                            state: JobState::Failed,
                            message: Some(format!("the model crashed while generating: {why}")),
                            finished_ms: Some(now_ms()),
                            ..claimed
                        }
                    })
                }
                Err(e) => Job {
                    state: JobState::Failed,
                    message: Some(format!("the model could not be loaded: {e:#}")),
                    finished_ms: Some(now_ms()),
                    ..job
                },
            };
            if finished.state.is_finished() && finished.state != JobState::Done {
                // Nothing will read a failed or cancelled job's upload again.
                let _ = std::fs::remove_file(self.upload_path(&id));
            }
            if finished.state == JobState::Failed {
                self.set_last_error(format!("job {id}: {}", finished.message.as_deref().unwrap_or("failed")));
            }
            self.inner.faults.at(CrashPoint::BeforeJobUpdate);
            if let Err(e) = rt.block_on(self.inner.store.update_job(finished.clone())) {
                tracing::error!(id = %finished.id, "saving the job's result: {e}");
            }
            // Only now: a cancel that lands before this finds the flag, one after finds the job finished.
            self.forget_cancel_flag(&id);
            *self.inner.current.lock().expect("current lock") = None;
            self.publish(&finished);
        }
    }

    fn set_last_error(&self, message: String) {
        *self.inner.last_error.lock().expect("error lock") = Some(message);
    }

    fn partial_dir(&self, id: &str) -> PathBuf {
        self.media_dir().join(format!("{id}.partial"))
    }

    /// Runs one claimed job; returns it finished (done, failed or cancelled).
    fn run_job(
        &self,
        rt: &Handle,
        model: &BuiltinModel,
        device: &OpenedDevice,
        image_model: &mut Option<(String, StableDiffusion)>,
        video_model: &mut Option<(String, StableVideoDiffusion)>,
        mut job: Job,
    ) -> Job {
        let span = tracing::info_span!("job", id = %job.id, mode = job.mode.as_str());
        let _entered = span.enter();
        let queue_wait_s = (job.started_ms.unwrap_or_else(now_ms) - job.created_ms) as f64 / 1000.0;
        tracing::info!(queue_wait_s, "job started");
        self.publish(&job);
        let cancel = self.cancel_flag(&job.id);
        let video = self.inner.image_models.iter().any(|m| m.video && m.name == job.params.model);
        let result = if self.cancelled(&cancel) {
            // Cancelled while it was being claimed.
            Err(GenerateError::Cancelled)
        } else {
            self.inner.faults.before_generating(&job.params.prompt);
            if video {
                self.generate_svd(rt, device, image_model, video_model, &mut job, &cancel)
            } else if job.mode == Mode::TextToImage {
                self.generate_image(rt, device, image_model, &mut job, &cancel)
            } else {
                self.generate(rt, model, &device.description, &mut job, &cancel)
            }
        };
        job.finished_ms = Some(now_ms());
        match result {
            Ok(()) => {
                job.state = JobState::Done;
                job.video_id = Some(job.id.clone());
                let _ = std::fs::remove_file(self.upload_path(&job.id));
            }
            Err(GenerateError::Cancelled) if self.inner.stopping.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) => {
                put_back_for_shutdown(&mut job);
            }
            Err(GenerateError::Cancelled) => {
                job.state = JobState::Cancelled;
                job.message = Some("cancelled".into());
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.message = Some(e.to_string());
            }
        }
        tracing::info!(state = job.state.as_str(), "job finished");
        job
    }

    fn generate(
        &self,
        rt: &Handle,
        model: &BuiltinModel,
        device: &str,
        job: &mut Job,
        cancel: &AtomicBool,
    ) -> Result<(), GenerateError> {
        let started = Instant::now();
        let image = match job.mode {
            Mode::TextToVideo | Mode::TextToImage => None,
            Mode::ImageToVideo => Some(self.load_upload(&job.id)?),
        };
        let req = request_of(&job.params);
        let steps_span = tracing::info_span!("sampling", steps = req.steps);
        let clip = {
            let _s = steps_span.enter();
            model.generate(&req, image.as_ref(), &mut self.progress(rt, job), &|| self.cancelled(cancel))?
        };
        tracing::info!(seconds = clip.sampling_seconds, "sampling done");

        let _encode = tracing::info_span!("encode").entered();
        let timings = Timings {
            load_s: 0.0,
            sampling_s: clip.sampling_seconds,
            encode_s: 0.0,
            total_s: started.elapsed().as_secs_f64(),
        };
        let input_name = image.as_ref().map(|_| "upload".to_string());
        let partial = self.partial_dir(&job.id);
        let mut meta = Metadata::new(model.id(), &req, &clip, input_name, device, timings);
        let mut write = || -> anyhow::Result<()> {
            let encode_s = write_clip(&partial, &clip, &mut meta, true)?;
            tracing::info!(seconds = encode_s, "encoded");
            crate::zip::zip_dir(&partial.join("frames"), &partial.join("frames.zip"))?;
            // The poster is the middle frame, already written as PNG.
            let poster = format!("{:04}.png", clip.frames.len() / 2);
            std::fs::copy(partial.join("frames").join(poster), partial.join("poster.png"))?;
            Ok(())
        };
        let written = write();
        self.publish_result(rt, job, &partial, written, serde_json::to_value(&meta).unwrap_or_default())
    }

    /// Progress reporting for a running job: live to listeners, to the database now and then.
    fn progress<'a>(&'a self, rt: &'a Handle, job: &'a mut Job) -> impl FnMut(Progress) + 'a {
        let mut last_saved = Instant::now();
        move |p| {
            job.step = p.step as u32;
            job.total = p.total as u32;
            let _ = self.inner.events.send(JobEvent::Step(StepUpdate { id: job.id.clone(), step: job.step, total: job.total }));
            if last_saved.elapsed().as_secs_f32() > 1.0 {
                last_saved = Instant::now();
                let _ = rt.block_on(self.inner.store.update_job(job.clone()));
            }
        }
    }

    fn cancelled(&self, cancel: &AtomicBool) -> bool {
        cancel.load(Ordering::Relaxed) || self.inner.stopping.load(Ordering::Relaxed)
    }

    /// Moves a fully written `ID.partial` folder into place and records the result in the
    /// gallery; on any failure nothing half-written stays.
    fn publish_result(
        &self,
        rt: &Handle,
        job: &Job,
        partial: &Path,
        written: anyhow::Result<()>,
        metadata: serde_json::Value,
    ) -> Result<(), GenerateError> {
        let media = self.media_dir();
        if written.is_ok() {
            self.inner.faults.at(CrashPoint::AfterWrite);
        }
        if let Err(e) = written.and_then(|()| Ok(std::fs::rename(partial, media.join(&job.id))?)) {
            let _ = std::fs::remove_dir_all(partial);
            return Err(GenerateError::InvalidRequest(format!("writing the result failed: {e:#}")));
        }
        self.inner.faults.at(CrashPoint::AfterRename);
        let video = Video {
            id: job.id.clone(),
            mode: job.mode,
            params: job.params.clone(),
            created_ms: now_ms(),
            favorite: false,
            metadata,
        };
        if let Err(e) = rt.block_on(self.inner.store.insert_video(video)) {
            let _ = std::fs::remove_dir_all(media.join(&job.id));
            return Err(GenerateError::InvalidRequest(format!("saving the result failed: {e}")));
        }
        self.inner.faults.at(CrashPoint::AfterInsert);
        Ok(())
    }

    /// A text-to-image job on an installed model (loaded on first use, on the server's device:
    /// f16 on a GPU, f32 on a CPU).
    fn generate_image(
        &self,
        rt: &Handle,
        device: &OpenedDevice,
        loaded: &mut Option<(String, StableDiffusion)>,
        job: &mut Job,
        cancel: &AtomicBool,
    ) -> Result<(), GenerateError> {
        let started = Instant::now();
        let p = job.params.clone();
        let Some(entry) = self.inner.image_models.iter().find(|m| m.name == p.model) else {
            return Err(GenerateError::InvalidRequest(format!("the model {} is not installed", p.model)));
        };
        let sd = load_image_model(entry, device, loaded)?;
        let load_s = started.elapsed().as_secs_f64();
        let req = image_request(&p, p.steps, p.guidance);
        let image = {
            let _s = tracing::info_span!("sampling", steps = req.steps).entered();
            sd.generate(&req, &mut self.progress(rt, job), &|| self.cancelled(cancel))?
        };
        let meta = crate::text_to_image::ImageMetadata::new(
            entry.name.clone(),
            sd,
            &req,
            &image,
            device,
            load_s,
            started.elapsed().as_secs_f64(),
        );
        let partial = self.partial_dir(&job.id);
        let written = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&partial)?;
            crate::text_to_image::write_image(&partial, &image, &meta)?;
            std::fs::copy(partial.join("image.png"), partial.join("poster.png"))?;
            Ok(())
        })();
        self.publish_result(rt, job, &partial, written, serde_json::to_value(&meta).unwrap_or_default())
    }

    /// An image-to-video job on an installed Stable Video Diffusion model; without an input
    /// image, text to video the Emu Video way: a keyframe from the text-to-image model first,
    /// then the video from it, one job with both phases in its progress.
    fn generate_svd(
        &self,
        rt: &Handle,
        device: &OpenedDevice,
        image_loaded: &mut Option<(String, StableDiffusion)>,
        loaded: &mut Option<(String, StableVideoDiffusion)>,
        job: &mut Job,
        cancel: &AtomicBool,
    ) -> Result<(), GenerateError> {
        use crate::image_to_video as i2v;
        let started = Instant::now();
        let p = job.params.clone();
        let Some(entry) = self.inner.image_models.iter().find(|m| m.video && m.name == p.model) else {
            return Err(GenerateError::InvalidRequest(format!("the model {} is not installed", p.model)));
        };
        let partial = self.partial_dir(&job.id);
        // Phase 1 (text to video): the keyframe.
        let mut keyframe_meta = None;
        let input = match job.mode {
            Mode::TextToVideo => {
                let Some(kf) = self.keyframe_model(&p) else {
                    return Err(GenerateError::InvalidRequest(format!("the keyframe model {} is not installed", p.keyframe_model)));
                };
                let sd = load_image_model(kf, device, image_loaded)?;
                let req = image_request(&p, p.keyframe_steps, p.keyframe_guidance);
                // The job's total counts both phases from the start.
                let total = (p.keyframe_steps + p.steps) as usize;
                let image = {
                    let mut progress = self.progress(rt, job);
                    sd.generate(&req, &mut |pr: Progress| progress(Progress::new(pr.step, total)), &|| self.cancelled(cancel))?
                };
                let meta = crate::text_to_image::ImageMetadata::new(kf.name.clone(), sd, &req, &image, device, 0.0, started.elapsed().as_secs_f64());
                keyframe_meta = Some(serde_json::to_value(&meta).unwrap_or_default());
                image.to_rgb8()
            }
            _ => self.load_upload(&job.id)?,
        };
        // Phase 2: the video.
        let keyframe_steps = if job.mode == Mode::TextToVideo { p.keyframe_steps as usize } else { 0 };
        let load_started = Instant::now();
        if loaded.as_ref().map(|(name, _)| name) != Some(&entry.name) {
            *loaded = None;
            let _span = tracing::info_span!("load model", model = %entry.name).entered();
            let dtype = crate::text_to_image::PrecisionChoice::Auto.resolve(device);
            let svd = StableVideoDiffusion::load(&entry.path, &device.device, dtype, MemoryMode::Resident)
                .map_err(|e| GenerateError::InvalidRequest(format!("the model {} cannot be loaded: {e}", entry.name)))?;
            *loaded = Some((entry.name.clone(), svd));
        }
        let svd = &loaded.as_ref().expect("loaded above").1;
        let load_s = load_started.elapsed().as_secs_f64();
        let req = i2v::request_of(&p);
        let video = {
            let mut progress = self.progress(rt, job);
            let mut offset = |pr: Progress| progress(Progress::new(keyframe_steps + pr.step, keyframe_steps + pr.total));
            svd.generate(&input, &req, &mut offset, &|| self.cancelled(cancel))?
        };
        let mut meta = i2v::VideoMetadata::new(entry.name.clone(), svd, &req, &video, device, load_s);
        meta.prompt = p.prompt.clone();
        meta.mode = job.mode.as_str();
        meta.keyframe = keyframe_meta;
        meta.timings.total_s = started.elapsed().as_secs_f64();
        let frames = video.to_rgb8();
        let written = (|| -> anyhow::Result<()> {
            let input = i2v::fit(&input, req.width, req.height);
            i2v::write_video(&partial, &frames, &input, &mut meta, true)?;
            if meta.keyframe.is_some() {
                std::fs::copy(partial.join("input.png"), partial.join("keyframe.png"))?;
            }
            crate::zip::zip_dir(&partial.join("frames"), &partial.join("frames.zip"))?;
            std::fs::copy(partial.join("frames").join(format!("{:04}.png", frames.len() / 2)), partial.join("poster.png"))?;
            Ok(())
        })();
        self.publish_result(rt, job, &partial, written, serde_json::to_value(&meta).unwrap_or_default())
    }
}

/// The text-to-image request of a job: its prompt, negative prompt, size and seed, with the
/// steps and guidance of the phase (a keyframe job's own, or a text-to-video job's keyframe's).
fn image_request(p: &JobParams, steps: u32, guidance: f32) -> ImageRequest {
    ImageRequest {
        prompt: p.prompt.clone(),
        negative: p.negative.clone(),
        steps: steps as usize,
        guidance,
        width: p.width as usize,
        height: p.height as usize,
        seed: p.seed.unwrap_or(0),
        noise: None,
        scheduler: None,
    }
}

/// The text-to-image model `entry`, loaded into `slot` unless it is there already (the one there
/// before is freed first), on the server's device: f16 on a GPU, f32 on a CPU.
fn load_image_model<'a>(
    entry: &ImageModel,
    device: &OpenedDevice,
    slot: &'a mut Option<(String, StableDiffusion)>,
) -> Result<&'a StableDiffusion, GenerateError> {
    if slot.as_ref().map(|(name, _)| name) != Some(&entry.name) {
        *slot = None;
        let _span = tracing::info_span!("load model", model = %entry.name).entered();
        let dtype = crate::text_to_image::PrecisionChoice::Auto.resolve(device);
        let sd = StableDiffusion::load(&entry.path, &device.device, dtype)
            .map_err(|e| GenerateError::InvalidRequest(format!("the model {} cannot be loaded: {e}", entry.name)))?;
        *slot = Some((entry.name.clone(), sd));
    }
    Ok(&slot.as_ref().expect("loaded above").1)
}

/// A job interrupted by a shutdown, as it goes back to the queue (to run again on the next start).
fn put_back_for_shutdown(job: &mut Job) {
    job.state = JobState::Queued;
    job.step = 0;
    job.started_ms = None;
    job.finished_ms = None;
    job.message = Some("interrupted by a server shutdown; queued again".into());
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
