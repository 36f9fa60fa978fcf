//! The job queue: persisted in the [`Store`], run one at a time on a dedicated generation
//! thread that owns the models (never on the async runtime), with live progress broadcast to
//! whoever listens and cancel between steps. The queue runs whatever engine a job names; it
//! never knows the model family.
//!
//! The image a job starts from is a media key, resolved when the job is created: an upload is
//! normalised to PNG in the media store then, so a job interrupted by a restart can run again.
//! A result's files are all in the media store before its gallery record exists, and nothing
//! serves a result without one.

mod control;
pub mod defaults;
mod edits;
pub mod events;
mod fanout;
mod heartbeat;
mod publish;
pub mod recovery;
mod report;
mod submit;
mod variants;
pub mod warm_up;
mod worker;

pub use submit::{Picture, Pictures, Upload};

use crate::engines::Registry;
use crate::faults::Faults;
use crate::ids::{new_id, now_ms};
use crate::media::MediaStore;
use crate::storage::{Store, StoreError};
use app::media_files::upload_keys;
use app::people::Viewer;
use app::types::{Job, JobParams, JobState, Video, WorkerHealth};
use control::Control;
use defaults::Given;
use events::{JobEvent, StreamSlot};
use fanout::FanOut;
use model::builtin::pipeline::BuiltinModel;
use model::device::OpenedDevice;
use report::WorkerReport;
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;
use tokio::sync::broadcast;

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

/// Why a cancel or a delete was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Someone else's work ([`Viewer::may_change`]); the message says whose.
    #[error("{0}")]
    Forbidden(String),
    /// The change does not apply to it as it is now; the message says why.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// The queue's parts: submission ([`submit`]), the worker ([`worker`], which hands results to
/// [`publish`]), and the fan-out of what happens to jobs ([`fanout`], [`heartbeat`]), with what
/// they share about the running job ([`control`]) and the worker's own report ([`report`]).
struct Inner {
    store: Arc<dyn Store>,
    media: Arc<dyn MediaStore>,
    registry: Arc<Registry>,
    visual: Option<Arc<crate::visual::Visual>>,
    intake: submit::Intake,
    fanout: Arc<FanOut>,
    control: Arc<Control>,
    report: Arc<WorkerReport>,
    /// This process's worker; `None` without one.
    setup: Option<WorkerSetup>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
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
            heartbeat::log_recovered(&store.requeue_expired(now_ms(), MAX_ATTEMPTS).await?);
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
        let (control, bell) = Control::new();
        let control = Arc::new(control);
        let (fanout, announcements) = FanOut::new(store.clone(), new_id());
        let fanout = Arc::new(fanout);
        let report = Arc::new(WorkerReport::new());
        let jobs = Jobs {
            inner: Arc::new(Inner {
                store: store.clone(),
                media: media.clone(),
                registry: registry.clone(),
                visual: visual.clone(),
                intake: submit::Intake::new(store.clone(), media.clone(), registry.clone()),
                fanout: fanout.clone(),
                control: control.clone(),
                report: report.clone(),
                setup: worker.clone(),
                thread: Mutex::new(None),
            }),
        };
        if let Some(notices) = notices {
            tokio::spawn(fanout::announcements(store.clone(), announcements));
            tokio::spawn(fanout::relay(fanout.clone(), control.clone(), notices));
            let heartbeat = heartbeat::Heartbeat {
                store: store.clone(),
                fanout: fanout.clone(),
                control: control.clone(),
                report: report.clone(),
                setup: worker.clone(),
                models: registry.ids(),
            };
            tokio::spawn(heartbeat.run());
        }
        if let Some(setup) = worker {
            let retry_for = if store.shared() { setup.lease } else { std::time::Duration::ZERO };
            let publisher = publish::Publisher {
                store: store.clone(),
                media: media.clone(),
                registry: registry.clone(),
                visual,
                faults: faults.clone(),
                retry_for,
                backfill: Default::default(),
            };
            let worker = worker::Worker {
                store,
                media,
                registry,
                fanout,
                control,
                report,
                publisher,
                setup,
                faults,
                model_memory_mib,
            };
            let rt = Handle::current();
            let handle =
                std::thread::Builder::new().name("generation".into()).spawn(move || worker.run(rt, bell, load))?;
            *jobs.inner.thread.lock().expect("worker lock") = Some(handle);
        }
        Ok(jobs)
    }

    /// The id this worker claims jobs under: this process in a shared queue; none (the one
    /// embedded worker, without leases) otherwise.
    fn worker_id(&self) -> String {
        if self.inner.store.shared() { self.inner.fanout.node().to_string() } else { String::new() }
    }

    /// Begins shutting down: event streams end, and a running job is interrupted at its next
    /// step and queued again, so the next start runs it. Returns at once.
    pub fn begin_shutdown(&self) {
        self.inner.control.stop();
        self.inner.fanout.close();
    }

    /// Resolves when the server begins to shut down.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner.fanout.closing()
    }

    /// Puts the job the worker is running back in the queue, for a shutdown that cannot wait
    /// for it to stop (a step longer than the shutdown allows): it runs again on the next start,
    /// and it does not count as a crash.
    pub async fn requeue_current(&self) -> Result<(), StoreError> {
        if let Some(id) = self.inner.control.current()
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
        let handle = self.inner.thread.lock().expect("worker lock").take();
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
        self.inner.fanout.subscribe()
    }

    /// A slot for one more event stream, unless too many are open.
    pub fn stream_slot(&self) -> Option<StreamSlot> {
        self.inner.fanout.stream_slot()
    }

    /// Whether the worker is alive, what it runs, how long the queue is, the last failure.
    /// With a shared store, "alive" counts the workers heard from lately on any machine.
    pub async fn health(&self) -> Result<WorkerHealth, StoreError> {
        let own = self.inner.thread.lock().expect("worker lock").as_ref().is_some_and(|h| !h.is_finished());
        let report = &self.inner.report;
        let queue_length = self.inner.store.queued_count().await?;
        let workers = if self.inner.store.shared() {
            self.inner.store.workers(now_ms() - heartbeat::SEEN_WITHIN_MS).await?
        } else {
            Vec::new()
        };
        let others = workers.iter().any(|w| w.id != self.inner.fanout.node());
        let worker_alive = own || others;
        let mut last_error = report.last_error();
        if !worker_alive && self.inner.setup.is_none() {
            last_error = Some("no worker has reported in the last minute (start `vidplay worker` with this server's --database-url and --media)".into());
        }
        Ok(WorkerHealth {
            worker_alive,
            current_job: self.inner.control.current(),
            queue_length,
            last_error,
            stalled: !worker_alive || (report.model_failed() && !others),
            workers,
            warm_up: report.warm_up(),
        })
    }

    /// Checks and queues a job (see [`submit`]).
    pub async fn submit(&self, params: JobParams, upload: Option<Upload>) -> Result<Job, SubmitError> {
        self.submit_given("", params, upload.map(Picture::Upload).into(), &Given::All).await
    }

    /// [`Jobs::submit`] for the owner of a named token (empty: the administrator's token, or none), with
    /// the picture it starts from, for a request that gave only some parameters: the others
    /// take its model's defaults. Each owner has [`QUEUE_LIMIT`] jobs waiting at most, and
    /// owners take turns.
    pub async fn submit_given(
        &self,
        owner: &str,
        params: JobParams,
        pictures: Pictures,
        given: &Given,
    ) -> Result<Job, SubmitError> {
        let job = self.inner.intake.accept(owner, params, pictures, given).await?;
        self.inner.fanout.changed(&job);
        self.inner.control.wake();
        Ok(job)
    }

    /// The versions an edit was made from (see [`edits::chain`]).
    pub async fn chain(&self, id: &str) -> Result<Vec<Video>, StoreError> {
        edits::chain(self.inner.store.as_ref(), id).await
    }

    /// Cancels a queued or running job for `viewer`, who must be allowed to change it. Returns
    /// the job as it is now, or `None` if unknown.
    pub async fn cancel(&self, id: &str, viewer: &Viewer) -> Result<Option<Job>, ChangeError> {
        let Some(mut job) = self.inner.store.job(id.to_string()).await? else {
            return Ok(None);
        };
        if !viewer.may_change(&job.owner) {
            return Err(ChangeError::Forbidden(viewer.refusal("this job", &job.owner)));
        }
        if job.state.is_finished() {
            return Ok(Some(job));
        }
        // Raised before the queue is touched: if the worker claims the job meanwhile, it finds
        // the flag up and stops at once.
        self.inner.control.cancel_flag(id).store(true, std::sync::atomic::Ordering::Relaxed);
        if self.inner.store.cancel_queued(id.to_string(), now_ms()).await? {
            self.inner.control.forget_cancel_flag(id);
            for key in upload_keys(id) {
                let _ = self.inner.media.delete(&key).await;
            }
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            self.inner.fanout.changed(&job);
        } else {
            // Running, perhaps on another machine: its worker hears of it (at once, or at its
            // next heartbeat) and stops at its next step.
            self.inner.store.request_cancel(id.to_string()).await?;
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            if job.state.is_finished() {
                // It finished before the flag was seen: nothing left to stop.
                self.inner.control.forget_cancel_flag(id);
            }
        }
        Ok(Some(job))
    }

    /// Queues a decode-failed job again, for `viewer`, who must be allowed to change it: a
    /// worker decodes its kept latents alone, in smaller pieces than last time. `None` when
    /// there is no such job; [`ChangeError::Conflict`] when its decode did not fail.
    pub async fn retry_decode(&self, id: &str, viewer: &Viewer) -> Result<Option<Job>, ChangeError> {
        let Some(job) = self.inner.store.job(id.to_string()).await? else {
            return Ok(None);
        };
        if !viewer.may_change(&job.owner) {
            return Err(ChangeError::Forbidden(viewer.refusal("this job", &job.owner)));
        }
        if !self.inner.store.retry_decode(id.to_string()).await? {
            let now = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            return Err(ChangeError::Conflict(format!(
                "only a job whose decode failed can decode again; this one is {}",
                now.state.as_str()
            )));
        }
        let job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
        self.inner.fanout.changed(&job);
        self.inner.control.wake();
        Ok(Some(job))
    }

    /// Deletes a video for `viewer`, who must be allowed to change it: its record first (its
    /// media are unreachable from then on), then its files (a failed removal is retried at the
    /// next start). False when there is no such video.
    pub async fn delete_video(&self, id: &str, viewer: &Viewer) -> Result<bool, ChangeError> {
        let Some(video) = self.inner.store.video(id.to_string()).await? else {
            return Ok(false);
        };
        if !viewer.may_change(&video.owner) {
            return Err(ChangeError::Forbidden(viewer.refusal("this video", &video.owner)));
        }
        let existed = self.inner.store.delete_video(id.to_string()).await?;
        if existed {
            recovery::remove_media(self.inner.media.as_ref(), id).await;
        }
        Ok(existed)
    }
}
