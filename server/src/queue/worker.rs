//! The generation thread: claims queued jobs oldest first, runs each on its engine with
//! progress and cancel, and hands what it made to the publisher (files, scores, gallery
//! record). A panic fails the job, not the worker. While no job waits it prepares GPU kernels
//! (`warm_up`), then measures stored clips that have no scores.

use super::WorkerSetup;
use super::control::Control;
use super::events::{JobEvent, preview_url};
use super::fanout::FanOut;
use super::publish::Publisher;
use super::report::WorkerReport;
use super::warm_up::Warmer;
use crate::engines::cache::ModelCache;
use crate::engines::{EngineJob, Overrides, Registry, RunContext, segments};
use crate::faults::{CrashPoint, Faults};
use crate::ids::now_ms;
use crate::media::{MediaStore, input};
use crate::storage::{Claim, Lease, NoticeKind, Store};
use app::media_files::{last_upload_key, latents_key, upload_keys};
use app::types::{Job, JobState, Mode, StepUpdate};
use model::builtin::pipeline::{BUILTIN_MODEL_ID, BuiltinModel};
use model::device::OpenedDevice;
use model::generate::{GenerateError, Progress, panic_message};
use model::gpu_memory::GpuMemoryMeter;
use model::latents::Latents;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// A job interrupted by a shutdown, as it goes back to the queue (to run again on the next start).
pub(super) fn put_back_for_shutdown(job: &mut Job) {
    job.state = JobState::Queued;
    job.step = 0;
    job.started_ms = None;
    job.finished_ms = None;
    job.message = Some("interrupted by a server shutdown; queued again".into());
}

/// A job whose decode failed (`why`) with its sampled latents kept: its owner may ask for the
/// decode again ([`crate::queue::Jobs::retry_decode`]).
fn decode_failed(job: Job, why: &str) -> Job {
    Job {
        state: JobState::DecodeFailed,
        decode_retries: Some(job.decode_retries.unwrap_or(0)),
        message: Some(format!(
            "decoding failed: {why}. The sampled latents are kept: Retry decode decodes them again in smaller pieces, without sampling again."
        )),
        ..job
    }
}

/// The worker, owned by its thread.
pub(super) struct Worker {
    pub(super) store: Arc<dyn Store>,
    pub(super) media: Arc<dyn MediaStore>,
    pub(super) registry: Arc<Registry>,
    pub(super) fanout: Arc<FanOut>,
    pub(super) control: Arc<Control>,
    pub(super) report: Arc<WorkerReport>,
    pub(super) publisher: Publisher,
    pub(super) setup: WorkerSetup,
    pub(super) faults: Faults,
    /// Loaded models are kept within this much memory (MiB).
    pub(super) model_memory_mib: u64,
}

impl Worker {
    /// Loads the built-in model and opens the device with `load`, then runs queued jobs until
    /// the server stops.
    pub(super) fn run(
        mut self,
        rt: Handle,
        bell: mpsc::Receiver<()>,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)>,
    ) {
        let mut models = ModelCache::new(self.model_memory_mib);
        let device = {
            let _span = tracing::info_span!("load model").entered();
            let started = Instant::now();
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("loading panicked: {}", panic_message(&*panic))));
            tracing::info!(seconds = started.elapsed().as_secs_f64(), ok = loaded.is_ok(), "model load");
            match loaded {
                Ok((builtin, device)) => {
                    let mib = self.registry.get(BUILTIN_MODEL_ID).map_or(1, |e| e.info().memory_mib);
                    models.insert_pinned(BUILTIN_MODEL_ID, mib, builtin);
                    Ok(device)
                }
                Err(e) => {
                    self.report.set_model_failed();
                    self.report.set_last_error(format!("the model could not be loaded: {e:#}"));
                    Err(e)
                }
            }
        };
        let mut warm_up = Warmer::plan(
            self.setup.warm_up,
            device.as_ref().ok(),
            &self.registry,
            self.report.clone(),
            self.control.clone(),
            self.faults.clone(),
        );
        loop {
            if self.control.stopping() {
                return;
            }
            let job = match rt.block_on(self.store.claim(self.claim())) {
                Ok(Some(job)) => job,
                Ok(None) => {
                    // Idle: prepare the next model's GPU kernels, if any are left; then
                    // look for a job again.
                    if let Ok(device) = &device
                        && warm_up.next(device, &mut models)
                    {
                        continue;
                    }
                    // Idle and prepared: measure one stored clip that has no scores yet, then
                    // look again.
                    if self.publisher.backfill_one(&rt) {
                        continue;
                    }
                    // Sleep until a submit wakes us (or re-check now and then).
                    match bell.recv_timeout(Duration::from_secs(2)) {
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        _ => continue,
                    }
                }
                Err(e) => {
                    tracing::error!("reading the queue: {e}");
                    self.report.set_last_error(format!("reading the queue: {e}"));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            self.control.set_current(Some(job.id.clone()));
            self.faults.after_claim();
            let id = job.id.clone();
            let finished = match &device {
                Ok(device) => {
                    let claimed = job.clone();
                    // A panic inside generation fails this job; the worker goes on with the next.
                    let run = std::panic::AssertUnwindSafe(|| self.run_job(&rt, device, &mut models, job));
                    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                        let why = panic_message(&*panic);
                        tracing::error!(id = %claimed.id, "generation panicked: {why}");
                        // Its runs' files, only while the job is still this worker's: else
                        // another worker's run may be writing them.
                        if self.still_holds(&rt, &claimed.id) {
                            self.publisher.forget_runs(&rt, &claimed.id, None);
                        }
                        let finished = Job { finished_ms: Some(now_ms()), ..claimed };
                        if self.has_latents(&rt, &finished.id) {
                            decode_failed(finished, &format!("the decoder crashed: {why}"))
                        } else {
                            Job {
                                state: JobState::Failed,
                                message: Some(format!("the model crashed while generating: {why}")),
                                decode_retries: None,
                                ..finished
                            }
                        }
                    })
                }
                Err(e) if job.decodes_again() => decode_failed(
                    Job { finished_ms: Some(now_ms()), ..job },
                    &format!("the model could not be loaded: {e:#}"),
                ),
                Err(e) => Job {
                    state: JobState::Failed,
                    message: Some(format!("the model could not be loaded: {e:#}")),
                    finished_ms: Some(now_ms()),
                    decode_retries: None,
                    ..job
                },
            };
            // What the job is done with goes, while it is this worker's: a worker that lost it
            // (frozen past its lease) leaves the upload and latents to the one running it now.
            let upload_done = finished.state.is_finished() && finished.state != JobState::Done;
            let latents_done = finished.state.is_finished() && finished.state != JobState::DecodeFailed;
            if (upload_done || latents_done) && self.still_holds(&rt, &id) {
                if upload_done {
                    // Nothing will read a failed or cancelled job's upload again.
                    for key in upload_keys(&id) {
                        let _ = rt.block_on(self.media.delete(&key));
                    }
                }
                if latents_done {
                    // Decoded, or never to be: its latents are not needed any more.
                    let _ = rt.block_on(self.media.delete(&latents_key(&id)));
                }
            }
            if finished.state == JobState::Done {
                // Its model's kernels are prepared now.
                warm_up.ran(&finished.params.model);
            }
            if matches!(finished.state, JobState::Failed | JobState::DecodeFailed) {
                self.report.set_last_error(format!("job {id}: {}", finished.message.as_deref().unwrap_or("failed")));
            }
            self.faults.at(CrashPoint::BeforeJobUpdate);
            let saved = self.save_finished(&rt, &finished);
            // Only now: a cancel that lands before this finds the flag, one after finds the job finished.
            self.control.forget_cancel_flag(&id);
            self.control.set_current(None);
            self.report.set_loaded(models.loaded());
            if saved {
                self.fanout.changed(&finished);
            }
        }
    }

    /// Whether the queue is shared with other workers (leases apply).
    fn shared(&self) -> bool {
        self.store.shared()
    }

    /// The id this worker claims jobs under: this process in a shared queue; none (the one
    /// embedded worker, without leases) otherwise.
    fn worker_id(&self) -> String {
        if self.shared() { self.fanout.node().to_string() } else { String::new() }
    }

    /// What this worker asks the queue for: in a shared queue, jobs for the models it has
    /// (those loaded first), held by a lease; the embedded worker takes any job, oldest first.
    fn claim(&self) -> Claim {
        let worker = self.worker_id();
        if self.shared() {
            Claim {
                worker,
                now_ms: now_ms(),
                lease_ms: Some(self.setup.lease.as_millis() as i64),
                models: self.registry.ids(),
                loaded: self.report.loaded(),
            }
        } else {
            Claim { worker, now_ms: now_ms(), ..Claim::default() }
        }
    }

    /// Records a finished job while this worker holds it, retrying while the database is away
    /// (up to a lease: after that the job is another worker's). False when it was not saved.
    fn save_finished(&self, rt: &Handle, finished: &Job) -> bool {
        let deadline = Instant::now() + self.setup.lease;
        loop {
            match rt.block_on(self.store.finish_job(finished.clone(), self.worker_id())) {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::warn!(id = %finished.id, "the job is no longer this worker's (taken over, or cancelled); its outcome is dropped");
                    return false;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(id = %finished.id, "saving the job's outcome: {e}; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(id = %finished.id, "saving the job's outcome: {e}");
                    return false;
                }
            }
        }
    }

    /// Whether this worker may still write or delete job `id`'s result: always for the
    /// embedded worker; in a shared queue, only while the database confirms its lease (renewed
    /// now). A database that cannot be reached is asked again for up to half a lease (the rest
    /// is still this worker's); one that cannot confirm it by then means no: the job may be
    /// another worker's by the time it answers.
    fn still_holds(&self, rt: &Handle, id: &str) -> bool {
        if !self.shared() {
            return true;
        }
        let deadline = Instant::now() + self.setup.lease / 2;
        loop {
            if self.control.lost(id) {
                return false;
            }
            let until = now_ms() + self.setup.lease.as_millis() as i64;
            match rt.block_on(self.store.renew_lease(id.to_string(), self.worker_id(), until)) {
                Ok(Lease::Held { .. }) => return true,
                Ok(Lease::Lost) => return false,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(%id, "confirming the job's lease: {e}; asking again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(%id, "the job's lease cannot be confirmed ({e}): its result is neither written nor removed");
                    return false;
                }
            }
        }
    }

    /// Runs one claimed job; returns it finished (done, failed or cancelled).
    fn run_job(&self, rt: &Handle, device: &OpenedDevice, models: &mut ModelCache, mut job: Job) -> Job {
        let span = tracing::info_span!("job", id = %job.id, mode = job.mode.as_str(), model = %job.params.model);
        let _entered = span.enter();
        let queue_wait_s = (job.started_ms.unwrap_or_else(now_ms) - job.created_ms) as f64 / 1000.0;
        tracing::info!(queue_wait_s, "job started");
        self.fanout.changed(&job);
        let cancel = self.control.cancel_flag(&job.id);
        // Whether this job's sampled latents are kept (a failure from then on is the decode's).
        let kept = Cell::new(false);
        // A run of this job whose result the store decided (its worker stopped while publishing
        // it) is the job's result; any other run's files are not, and no other run writes them
        // now that this worker holds the job.
        let decided = rt.block_on(self.store.decided_result(job.id.clone()));
        if let Ok(decided) = &decided {
            self.publisher.forget_runs(rt, &job.id, decided.as_deref());
        }
        let holds = || self.still_holds(rt, &job.id);
        let result = if self.control.cancelled(&cancel) {
            // Cancelled while it was being claimed.
            Err(GenerateError::Cancelled)
        } else if let Err(e) = &decided {
            // Nothing is removed or made without knowing whether a result was decided.
            kept.set(self.has_latents(rt, &job.id));
            Err(GenerateError::Backend(format!("reading the job's state failed: {e}")))
        } else if let Ok(Some(run)) = &decided {
            self.publisher.complete(rt, &job, run, None, &holds)
        } else if job.decode_retries == Some(0) && self.has_latents(rt, &job.id) {
            // The store says a run of it kept its latents (`LeaseStore::latents_kept`; only that
            // job's media are looked at, not every job's), then ended before its result was
            // stored: while decoding
            // (out of memory, as often as not: decoding the same way would end the same way),
            // or after. Its latents are decoded again, in smaller pieces, without sampling.
            job.decode_retries = Some(1);
            self.generate(rt, device, models, &mut job, &cancel, &kept)
        } else {
            self.faults.before_generating(&job.params.prompt);
            self.generate(rt, device, models, &mut job, &cancel, &kept)
        };
        job.finished_ms = Some(now_ms());
        match result {
            Ok(()) => {
                job.state = JobState::Done;
                job.step = job.total;
                job.video_id = Some(job.id.clone());
                for key in upload_keys(&job.id) {
                    let _ = rt.block_on(self.media.delete(&key));
                }
            }
            Err(GenerateError::Cancelled)
                if self.control.stopping() && !cancel.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                if kept.get() && !job.decodes_again() && self.still_holds(rt, &job.id) {
                    // It samples again when it runs again.
                    let _ = rt.block_on(self.media.delete(&latents_key(&job.id)));
                }
                put_back_for_shutdown(&mut job);
            }
            Err(GenerateError::Cancelled) if job.decodes_again() => {
                // The kept latents stay: the decode can be asked again.
                job = decode_failed(job, "the decode was cancelled");
            }
            Err(GenerateError::Cancelled) => {
                job.state = JobState::Cancelled;
                job.message = Some("cancelled".into());
            }
            Err(e) if kept.get() => job = decode_failed(job, &e.to_string()),
            Err(e) => {
                job.state = JobState::Failed;
                job.message = Some(e.to_string());
                // No latents to decode again (gone, or never kept).
                job.decode_retries = None;
            }
        }
        tracing::info!(state = job.state.as_str(), "job finished");
        job
    }

    /// Runs the job's engine and publishes what it made: sampling and decoding, keeping the
    /// sampled latents in between (`kept` says when they are), or the decoder alone on latents
    /// kept before ([`Job::decodes_again`]).
    fn generate(
        &self,
        rt: &Handle,
        device: &OpenedDevice,
        models: &mut ModelCache,
        job: &mut Job,
        cancel: &AtomicBool,
        kept: &Cell<bool>,
    ) -> Result<(), GenerateError> {
        // A decode again keeps its latents whatever fails (the storage away, the model not
        // installed now), unless they are gone or unreadable.
        kept.set(job.decodes_again());
        let latents = match job.decodes_again() {
            true => match self.load_latents(rt, &job.id)? {
                Some(latents) => Some(latents),
                None => {
                    kept.set(false);
                    return Err(GenerateError::InvalidRequest(
                        "the kept latents cannot be decoded again: they are gone or unreadable".into(),
                    ));
                }
            },
            false => None,
        };
        let Some(engine) = self.registry.get(&job.params.model).cloned() else {
            return Err(GenerateError::InvalidRequest(format!("the model {} is not installed", job.params.model)));
        };
        // A decode alone reads neither (only tasks that start from nothing keep latents).
        let input = match job.mode {
            Mode::ImageToVideo | Mode::Edit if latents.is_none() => Some(self.load_input(rt, job)?),
            _ => None,
        };
        let last_image = match job.params.last_image && input.is_some() {
            true => Some(self.load_picture(rt, &last_upload_key(&job.id), "the last frame of this job")?),
            false => None,
        };
        let prior = match job.mode {
            Mode::Extend if latents.is_none() => self.load_frames(rt, &job.params.source)?,
            _ => Vec::new(),
        };
        let params = job.params.clone();
        let mode = job.mode;
        // Pages cached by earlier jobs go back, so the figure is this job's.
        device.device.memory_cleanup();
        let mut meter = GpuMemoryMeter::start(&device.device);
        let (id, prompt, retry) = (job.id.clone(), params.prompt.clone(), job.decode_retries.unwrap_or(0));
        // A decode alone needs no LoRA (the VAE is the model's own): they are only recorded.
        let loras = match &latents {
            Some(_) => self.registry.loras.load(&params.loras).unwrap_or_default(),
            None => self.registry.loras.load(&params.loras)?,
        };
        let overrides = Overrides { loras, ..Overrides::NONE };
        let mut keep = |latents: &Latents| -> Result<(), GenerateError> {
            if !self.still_holds(rt, &id) {
                return Err(GenerateError::Backend("this worker no longer holds the job".into()));
            }
            match latents.to_bytes() {
                Ok(bytes) => match rt.block_on(self.media.put(&latents_key(&id), bytes.into())) {
                    Ok(()) => {
                        kept.set(true);
                        // So that a crash from here leaves the job decode-failed, not failed.
                        if let Err(e) = rt.block_on(self.store.latents_kept(id.clone(), self.worker_id())) {
                            tracing::warn!(%id, "recording the kept latents: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(%id, "keeping the sampled latents (the decode runs without them): {e}"),
                },
                Err(e) => tracing::warn!(%id, "{e}"),
            }
            self.faults.before_decoding(&prompt)
        };
        let mut rendered = {
            let mut report = self.progress(rt, job);
            let mut progress = |p: Progress| {
                meter.sample();
                report(p)
            };
            let cancelled = || self.control.cancelled(cancel);
            let mut ctx =
                RunContext { device, models, progress: &mut progress, cancelled: &cancelled, keep: Some(&mut keep) };
            let job = EngineJob {
                params: &params,
                mode,
                input: input.as_ref(),
                last_image: last_image.as_ref(),
                overrides: &overrides,
            };
            if let Some(latents) = &latents {
                // The decoder alone: one step, in pieces that shrink with every retry.
                (ctx.progress)(Progress::new(0, 1));
                let mut decoded = engine.decode(job, latents, retry, &mut ctx)?;
                (ctx.progress)(Progress::new(1, 1));
                decoded.meta.details.insert("decode_retry".into(), retry.into());
                decoded
            } else if segments::is_segmented(&params) {
                segments::run(engine.as_ref(), &params, prior, input, &mut ctx)?
            } else {
                engine.run(job, &mut ctx)?
            }
        };
        rendered.meta.mode = mode;
        rendered.meta.peak_gpu_memory_mib = meter.peak_mib();
        rendered.meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
        self.publisher.publish(rt, job, &self.worker_id(), &mut rendered, &|| self.still_holds(rt, &job.id))
    }

    /// Progress reporting for a running job: live to listeners here (with previews), to
    /// other processes at most a few times a second (every preview), to the database now and
    /// then.
    fn progress<'a>(&'a self, rt: &'a Handle, job: &'a mut Job) -> impl FnMut(Progress) + 'a {
        let mut last_saved = Instant::now();
        let mut last_announced: Option<Instant> = None;
        let worker = self.worker_id();
        move |p| {
            job.step = p.step as u32;
            job.total = p.total as u32;
            let preview = p.preview.as_ref().and_then(preview_url);
            let (id, step, total) = (job.id.clone(), job.step, job.total);
            if preview.is_some() || last_announced.is_none_or(|t| t.elapsed().as_millis() >= 250) || step == total {
                last_announced = Some(Instant::now());
                self.fanout.announce(
                    NoticeKind::Step { id: id.clone(), step, total, preview: preview.is_some() },
                    preview.clone(),
                );
            }
            self.fanout.send(JobEvent::Step(StepUpdate { id: id.clone(), step, total, preview }));
            if last_saved.elapsed().as_secs_f32() > 1.0 {
                last_saved = Instant::now();
                let _ = rt.block_on(self.store.save_progress(id, worker.clone(), step, total));
            }
        }
    }

    /// Whether job `id` has sampled latents kept.
    fn has_latents(&self, rt: &Handle, id: &str) -> bool {
        matches!(rt.block_on(self.media.get(&latents_key(id), Some(0..1))), Ok(Some(_)))
    }

    /// The sampled latents kept for job `id`: `None` when they are gone or unreadable, an error
    /// when the media store cannot be read now (no paths in the message: it is shown to users).
    fn load_latents(&self, rt: &Handle, id: &str) -> Result<Option<Latents>, GenerateError> {
        let fetched = rt
            .block_on(self.media.get(&latents_key(id), None))
            .map_err(|e| GenerateError::Backend(format!("the kept latents cannot be read now ({e}); they are kept")))?;
        Ok(fetched.and_then(|f| Latents::from_bytes(&f.bytes).map_err(|e| tracing::warn!(%id, "{e}")).ok()))
    }

    /// The image a job starts from, by the media key its submission resolved (no paths in the
    /// message: it is shown to users).
    fn load_input(&self, rt: &Handle, job: &Job) -> Result<image::RgbImage, GenerateError> {
        let key = job.input.as_deref().ok_or_else(|| {
            GenerateError::InvalidRequest("the image this job starts from is gone (the job names none)".into())
        })?;
        self.load_picture(rt, key, "the image this job starts from")
    }

    /// A picture a job was given, by its media key (`what` names it for people).
    fn load_picture(&self, rt: &Handle, key: &str, what: &str) -> Result<image::RgbImage, GenerateError> {
        let gone = |why: &str| GenerateError::InvalidRequest(format!("{what} is gone ({why})"));
        let fetched = rt.block_on(self.media.get(key, None)).map_err(|e| gone(&e.to_string()))?;
        let bytes = fetched.ok_or_else(|| gone("deleted before the job ran"))?.bytes;
        input::decode(&bytes, what).map_err(|e| GenerateError::InvalidRequest(e.to_string()))
    }

    /// The stored frames of video `id`, in order (what an extension continues).
    fn load_frames(&self, rt: &Handle, id: &str) -> Result<Vec<image::RgbImage>, GenerateError> {
        let gone = |why: String| GenerateError::InvalidRequest(format!("the video to extend cannot be read ({why})"));
        let video = rt
            .block_on(self.store.video(id.to_string()))
            .map_err(|e| gone(e.to_string()))?
            .ok_or_else(|| gone("it was deleted".into()))?;
        rt.block_on(crate::media::store::result_frames(self.media.as_ref(), id, video.metadata.frames as usize))
            .map_err(gone)
    }
}
