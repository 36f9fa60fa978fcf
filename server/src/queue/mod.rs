//! The job queue: persisted in the [`Store`], run one at a time on a dedicated generation
//! thread that owns the models (never on the async runtime), with live progress broadcast to
//! whoever listens and cancel between steps. The queue runs whatever engine a job names; it
//! never knows the model family.
//!
//! Uploaded images are normalised to PNG in the media store when the job is created, so a job
//! interrupted by a restart can run again. A result's files are all in the media store before
//! its gallery record exists, and nothing serves a result without one.

pub mod defaults;
mod edits;
pub mod events;
pub mod recovery;
mod shared;
mod variants;
pub mod warm_up;
mod worker;

use crate::engines::{Registry, segments};
use crate::faults::Faults;
use crate::ids::{new_id, now_ms};
use crate::media::{MediaStore, input};
use crate::storage::{Store, StoreError};
use app::media_files::{MediaFile, upload_key};
use app::types::{Job, JobParams, JobState, Mode, Video, WorkerHealth};
use defaults::Given;
use events::{JobEvent, StreamCounter, StreamSlot};
use model::builtin::pipeline::BuiltinModel;
use model::device::OpenedDevice;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, broadcast, watch};

/// Most jobs waiting at once; more are refused with "queue full".
pub const QUEUE_LIMIT: usize = 16;

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

/// An image given with a job.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub name: String,
}

/// How the queue is set up.
pub struct QueueConfig {
    pub store: Arc<dyn Store>,
    pub media: Arc<dyn MediaStore>,
    pub registry: Arc<Registry>,
    /// Loaded models are kept within this much memory (MiB).
    pub model_memory_mib: u64,
    pub faults: Faults,
    /// The installed CLIP model, when there is one: every clip's embedding and CLIP score.
    pub visual: Option<Arc<crate::visual::Visual>>,
    /// This process's generation worker; `None`: a web node alone (`serve --no-worker`).
    pub worker: Option<WorkerSetup>,
}

/// How this process's worker presents itself and holds jobs in a shared queue.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// Shown on the queue page.
    pub name: String,
    /// The devices it generates on.
    pub devices: Vec<String>,
    /// A job is this worker's for this long after each heartbeat (a shared store only); a
    /// worker silent for longer has its job given to another.
    pub lease: std::time::Duration,
    /// Whether it prepares every model's GPU kernels while no job waits.
    pub warm_up: warm_up::WarmUpPolicy,
}

impl WorkerSetup {
    pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

    pub fn new(name: String, devices: Vec<String>) -> Self {
        Self { name, devices, lease: Self::DEFAULT_LEASE, warm_up: warm_up::WarmUpPolicy::default() }
    }
}

/// Jobs whose workers stop answering this many times are failed.
pub const MAX_ATTEMPTS: u32 = 3;

struct Inner {
    store: Arc<dyn Store>,
    media: Arc<dyn MediaStore>,
    registry: Arc<Registry>,
    model_memory_mib: u64,
    /// Cancel flags of jobs that are running, or were asked to stop while being claimed.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    events: broadcast::Sender<JobEvent>,
    /// Turns true when the server begins to shut down (event streams end).
    closing: watch::Sender<bool>,
    streams: StreamCounter,
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
    /// How far the idle worker has come measuring stored clips without scores or embeddings.
    backfill: Mutex<crate::scores::backfill::Cursor>,
    visual: Option<Arc<crate::visual::Visual>>,
    /// This process, among those sharing the store (its notices carry it).
    node: String,
    /// The worker's setup; `None` without one.
    setup: Option<WorkerSetup>,
    /// How far the worker has come preparing GPU kernels; `None` when it does not.
    warm_up: Mutex<Option<app::types::WarmUp>>,
    /// The models the worker has loaded now (claimed first), and when it started.
    loaded: Mutex<Vec<String>>,
    started_ms: i64,
    /// Announcements to other processes, sent in order by one task.
    announcer: tokio::sync::mpsc::UnboundedSender<(crate::storage::Notice, Option<String>)>,
    /// The job whose lease this worker lost (another worker took it over): its result is
    /// not saved.
    lost: Mutex<Option<String>>,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl Jobs {
    /// Re-queues jobs a crash interrupted, removes what they left behind, then starts the
    /// generation thread, which opens the device and loads the built-in model with `load` and
    /// runs queued jobs oldest first.
    pub async fn start(
        config: QueueConfig,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)> + Send + 'static,
    ) -> anyhow::Result<Jobs> {
        let QueueConfig { store, media, registry, model_memory_mib, faults, visual, worker } = config;
        if store.shared() {
            // Other machines run jobs now: only those whose lease ended are recovered (and
            // every heartbeat does that again); media being written elsewhere are not orphans.
            shared::log_recovered(&store.requeue_expired(now_ms(), MAX_ATTEMPTS).await?);
        } else {
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
            recovery::clean_orphans(store.as_ref(), media.as_ref()).await?;
        }
        let notices = store.notices().await?;
        let (wake_tx, wake_rx) = mpsc::channel();
        let (announcer, announcements) = tokio::sync::mpsc::unbounded_channel();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                store,
                media,
                registry,
                model_memory_mib,
                cancels: Mutex::default(),
                events: broadcast::channel(256).0,
                closing: watch::channel(false).0,
                streams: StreamCounter::default(),
                decoding: Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))),
                faults,
                current: Mutex::default(),
                last_error: Mutex::default(),
                model_failed: AtomicBool::new(false),
                wake: Mutex::new(wake_tx),
                stopping: AtomicBool::new(false),
                worker: Mutex::new(None),
                backfill: Mutex::default(),
                visual,
                node: new_id(),
                setup: worker,
                warm_up: Mutex::default(),
                loaded: Mutex::default(),
                started_ms: now_ms(),
                announcer,
                lost: Mutex::default(),
            }),
        };
        if let Some(notices) = notices {
            tokio::spawn(shared::announcements(jobs.inner.store.clone(), announcements));
            tokio::spawn(jobs.clone().relay(notices));
            tokio::spawn(jobs.clone().heartbeat());
        }
        if jobs.inner.setup.is_some() {
            let worker = jobs.clone();
            let rt = Handle::current();
            let handle = std::thread::Builder::new()
                .name("generation".into())
                .spawn(move || worker.run_worker(rt, wake_rx, load))?;
            *jobs.inner.worker.lock().expect("worker lock") = Some(handle);
        }
        Ok(jobs)
    }

    /// The id this worker claims jobs under: this process in a shared queue; none (the one
    /// embedded worker, without leases) otherwise.
    fn worker_id(&self) -> String {
        if self.inner.store.shared() { self.inner.node.clone() } else { String::new() }
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
            worker::put_back_for_shutdown(&mut job);
            self.inner.store.finish_job(job, self.worker_id()).await?;
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

    /// The installed CLIP model's visual search, when there is one.
    pub fn visual(&self) -> Option<&Arc<crate::visual::Visual>> {
        self.inner.visual.as_ref()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Every job update (created, each step, finished).
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// A slot for one more event stream, unless too many are open.
    pub fn stream_slot(&self) -> Option<StreamSlot> {
        self.inner.streams.slot()
    }

    /// Tells listeners here, and the other processes sharing the store, that `job` changed.
    fn publish(&self, job: &Job) {
        let _ = self.inner.events.send(JobEvent::Changed(Box::new(job.clone())));
        self.announce(crate::storage::NoticeKind::Changed { id: job.id.clone() }, None);
    }

    /// Whether the worker is alive, what it runs, how long the queue is, the last failure.
    /// With a shared store, "alive" counts the workers heard from lately on any machine.
    pub async fn health(&self) -> Result<WorkerHealth, StoreError> {
        let own = self.inner.worker.lock().expect("worker lock").as_ref().is_some_and(|h| !h.is_finished());
        let model_failed = self.inner.model_failed.load(Ordering::Relaxed);
        let queue_length = self.inner.store.queued_count().await?;
        let workers = if self.inner.store.shared() {
            self.inner.store.workers(now_ms() - shared::SEEN_WITHIN_MS).await?
        } else {
            Vec::new()
        };
        let others = workers.iter().any(|w| w.id != self.inner.node);
        let worker_alive = own || others;
        let mut last_error = self.inner.last_error.lock().expect("error lock").clone();
        if !worker_alive && self.inner.setup.is_none() {
            last_error = Some("no worker has reported in the last minute (start `vidplay worker` with this server's --database-url and --media)".into());
        }
        Ok(WorkerHealth {
            worker_alive,
            current_job: self.inner.current.lock().expect("current lock").clone(),
            queue_length,
            last_error,
            stalled: !worker_alive || (model_failed && !others),
            workers,
            warm_up: self.inner.warm_up.lock().expect("warm-up lock").clone(),
        })
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

    /// Whether the stored video `id` can be continued: it exists, is a clip, and its frames
    /// are stored (the last one is where the extension starts).
    async fn check_continuable(&self, id: &str) -> Result<Video, SubmitError> {
        let missing = || SubmitError::Invalid(format!("there is no video {id:?} to extend"));
        if !app::types::is_valid_id(id) {
            return Err(missing());
        }
        let video = self.inner.store.video(id.to_string()).await?.ok_or_else(missing)?;
        if video.is_image() {
            return Err(SubmitError::Invalid(format!(
                "video {id} is a still image; only clips can be extended (animate it instead)"
            )));
        }
        let last = app::media_files::key(id, MediaFile::Frame(video.metadata.frames.saturating_sub(1) as usize));
        let stored = video.metadata.frames >= 2
            && self
                .inner
                .media
                .get(&last, Some(0..1))
                .await
                .map_err(|e| SubmitError::Internal(format!("reading the video's frames: {e}")))?
                .is_some();
        if !stored {
            return Err(SubmitError::Invalid(format!("video {id} cannot be continued: its frames are not stored")));
        }
        Ok(video)
    }

    /// Checks and queues a job: the shared outer bounds, then the model's own (its engine
    /// picks the task). The image, if any, is decoded with the upload limits and stored as PNG
    /// before the job is queued.
    pub async fn submit(&self, params: JobParams, upload: Option<Upload>) -> Result<Job, SubmitError> {
        self.submit_as("", params, upload).await
    }

    /// [`Jobs::submit`] for the owner of a named token (empty: the main token, or none): each
    /// owner has [`QUEUE_LIMIT`] jobs waiting at most, and owners take turns.
    pub async fn submit_as(&self, owner: &str, params: JobParams, upload: Option<Upload>) -> Result<Job, SubmitError> {
        self.submit_given(owner, params, upload, &Given::All).await
    }

    /// [`Jobs::submit_as`] for a request that gave only some parameters: the others take its
    /// model's defaults.
    pub async fn submit_given(
        &self,
        owner: &str,
        mut params: JobParams,
        mut upload: Option<Upload>,
        given: &Given,
    ) -> Result<Job, SubmitError> {
        app::limits::check_params(&params).map_err(SubmitError::Invalid)?;
        let registry = &self.inner.registry;
        self.route_edit(&mut params);
        if params.model.is_empty() {
            // An image to animate, or a clip to continue from its last frame, needs a model
            // that starts from a picture; text alone goes to the default text-to-video model.
            let from_picture = upload.is_some() || params.task == app::params::EXTEND_TASK;
            params.model = registry.default_id(from_picture).to_string();
        }
        let Some(engine) = registry.get(&params.model) else {
            return Err(SubmitError::Invalid(format!(
                "unknown model {:?}; this server has {:?}",
                params.model,
                registry.ids()
            )));
        };
        let has_picture = upload.is_some() || params.task == app::params::EXTEND_TASK;
        defaults::fill(engine.info(), &mut params, given, has_picture);
        // The seed is drawn now, so the result can be made again.
        let seed = params.seed.unwrap_or_else(crate::ids::random_seed);
        params.seed = Some(seed);
        let extending = params.task == app::params::EXTEND_TASK;
        if extending {
            let source = self.check_continuable(&params.source).await?;
            // The source keeps its speed; the new segments play at it.
            params.fps = source.metadata.fps.max(1);
            let planned = segments::plan(&params).len() * params.frames as usize;
            if source.metadata.frames as usize + planned > segments::MAX_CLIP_FRAMES {
                return Err(SubmitError::Invalid(format!(
                    "video {} is {} frames long; with {planned} more it would pass the longest clip, {} frames",
                    params.source,
                    source.metadata.frames,
                    segments::MAX_CLIP_FRAMES
                )));
            }
        } else if params.task == app::params::EDIT_TASK {
            self.prepare_edit(engine.as_ref(), &mut params, &mut upload).await?;
        } else {
            params.source.clear();
        }
        if !params.segments.is_empty() && params.prompt.trim().is_empty() {
            params.prompt = segments::shot_list_prompt(&params.segments);
        }
        let from_image = upload.is_some() && !extending;
        let (mode, total) = if segments::is_segmented(&params) {
            let checked =
                segments::check(engine.as_ref(), &params, extending || from_image).map_err(SubmitError::Invalid)?;
            params = segments::completed(&params, &checked);
            let mode = if extending {
                Mode::Extend
            } else if from_image {
                Mode::ImageToVideo
            } else {
                Mode::TextToVideo
            };
            (mode, checked.iter().map(|c| c.steps).sum())
        } else {
            let mode = engine.validate(&mut params, from_image).map_err(SubmitError::Invalid)?;
            (mode, engine.total_steps(&params, mode))
        };
        let upload = if extending { None } else { upload };
        // Refuse before decoding anything when there is no room for this owner (enqueue checks
        // again, atomically).
        if self.inner.store.queued_count_of(owner.to_string()).await? >= QUEUE_LIMIT as u64 {
            return Err(SubmitError::QueueFull);
        }
        let id = new_id();
        let key = upload_key(&id);
        if let Some(upload) = upload {
            let max_side = registry.max_input_side();
            // Held by the decoding itself, so a client that goes away does not free it early.
            let permit =
                self.inner.decoding.clone().acquire_owned().await.map_err(|e| SubmitError::Internal(e.to_string()))?;
            let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, SubmitError> {
                let _permit = permit;
                let img = input::decode(&upload.bytes, &upload.name).map_err(|e| SubmitError::Invalid(e.to_string()))?;
                // Kept no larger than any model uses, so an accepted upload never fails later.
                let img = input::fit_within(img, max_side);
                if img.width().min(img.height()) < input::MIN_SIDE {
                    return Err(SubmitError::Invalid(format!(
                        "the image is {}x{} pixels (after fitting it within {max_side}); it needs at least {} on each side",
                        img.width(),
                        img.height(),
                        input::MIN_SIDE
                    )));
                }
                crate::media::encode::encode_png(&img, None).map_err(|e| SubmitError::Internal(format!("encoding the upload: {e}")))
            })
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))??;
            self.inner
                .media
                .put(&key, png.into())
                .await
                .map_err(|e| SubmitError::Internal(format!("saving the upload: {e}")))?;
        }
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
            owner: owner.to_string(),
        };
        match self.inner.store.enqueue(job.clone(), QUEUE_LIMIT).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = self.inner.media.delete(&key).await;
                return Err(SubmitError::QueueFull);
            }
            Err(e) => {
                let _ = self.inner.media.delete(&key).await;
                return Err(e.into());
            }
        }
        tracing::info!(id = %job.id, mode = job.mode.as_str(), model = %job.params.model, "job queued");
        self.publish(&job);
        self.wake();
        Ok(job)
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
            let _ = self.inner.media.delete(&upload_key(id)).await;
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            self.publish(&job);
        } else {
            // Running, perhaps on another machine: its worker hears of it (at once, or at its
            // next heartbeat) and stops at its next step.
            self.inner.store.request_cancel(id.to_string()).await?;
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            if job.state.is_finished() {
                // It finished before the flag was seen: nothing left to stop.
                self.forget_cancel_flag(id);
            }
        }
        Ok(Some(job))
    }

    /// Deletes a video: its record first (its media are unreachable from then on), then its
    /// files (a failed removal is retried at the next start).
    pub async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.inner.store.delete_video(id.to_string()).await?;
        if existed {
            recovery::remove_media(self.inner.media.as_ref(), id).await;
        }
        Ok(existed)
    }
}
