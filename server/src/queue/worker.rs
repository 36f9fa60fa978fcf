//! The generation thread: claims queued jobs oldest first, runs each on its engine with
//! progress and cancel, writes the result's files to the media store and records it in the
//! gallery. A panic fails the job, not the worker.

use super::Jobs;
use super::events::{JobEvent, preview_url};
use crate::engines::cache::ModelCache;
use crate::engines::{EngineJob, Overrides, Rendered, RunContext, segments};
use crate::faults::CrashPoint;
use crate::ids::now_ms;
use crate::media::input;
use crate::media::writer::{WriteOptions, write_result};
use crate::storage::{Claim, NoticeKind};
use app::media_files::{self, MediaFile, upload_key};
use app::types::{Job, JobState, Mode, StepUpdate, Video};
use model::builtin::pipeline::{BUILTIN_MODEL_ID, BuiltinModel};
use model::device::OpenedDevice;
use model::generate::{GenerateError, Progress};
use model::gpu_memory::GpuMemoryMeter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use tokio::runtime::Handle;

/// A job interrupted by a shutdown, as it goes back to the queue (to run again on the next start).
pub(super) fn put_back_for_shutdown(job: &mut Job) {
    job.state = JobState::Queued;
    job.step = 0;
    job.started_ms = None;
    job.finished_ms = None;
    job.message = Some("interrupted by a server shutdown; queued again".into());
}

/// The text of a panic's payload.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Jobs {
    pub(super) fn run_worker(
        self,
        rt: Handle,
        wake: mpsc::Receiver<()>,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)>,
    ) {
        let mut models = ModelCache::new(self.inner.model_memory_mib);
        let device = {
            let _span = tracing::info_span!("load model").entered();
            let started = Instant::now();
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("loading panicked: {}", panic_message(&*panic))));
            tracing::info!(seconds = started.elapsed().as_secs_f64(), ok = loaded.is_ok(), "model load");
            match loaded {
                Ok((builtin, device)) => {
                    let mib = self.inner.registry.get(BUILTIN_MODEL_ID).map_or(1, |e| e.info().memory_mib);
                    models.insert_pinned(BUILTIN_MODEL_ID, mib, builtin);
                    Ok(device)
                }
                Err(e) => {
                    self.inner.model_failed.store(true, Ordering::Relaxed);
                    self.set_last_error(format!("the model could not be loaded: {e:#}"));
                    Err(e)
                }
            }
        };
        let mut warm_up = match &device {
            Ok(device) => self.warm_up_plan(device),
            Err(_) => super::warm_up::Pending::none(),
        };
        loop {
            if self.inner.stopping.load(Ordering::Relaxed) {
                return;
            }
            let job = match rt.block_on(self.inner.store.claim(self.claim())) {
                Ok(Some(job)) => job,
                Ok(None) => {
                    // Idle: prepare the next model's GPU kernels, if any are left; then
                    // look for a job again.
                    if let Ok(device) = &device
                        && self.warm_up_next(&mut warm_up, device, &mut models)
                    {
                        continue;
                    }
                    // Idle and prepared: measure one stored clip that has no scores yet, then look
                    // again. A panic there ends the backfill, not the worker.
                    let backfill = std::panic::AssertUnwindSafe(|| self.backfill_scores(&rt));
                    match std::panic::catch_unwind(backfill) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(panic) => {
                            tracing::error!("measuring stored clips panicked: {}", panic_message(&*panic));
                            let mut cursor = self.inner.backfill.lock().unwrap_or_else(|p| p.into_inner());
                            (cursor.finished, cursor.embedded) = (true, true);
                        }
                    }
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
            *self.inner.lost.lock().expect("lost lock") = None;
            self.inner.faults.after_claim();
            let id = job.id.clone();
            let finished = match &device {
                Ok(device) => {
                    let claimed = job.clone();
                    // A panic inside generation fails this job; the worker goes on with the next.
                    let run = std::panic::AssertUnwindSafe(|| self.run_job(&rt, device, &mut models, job));
                    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                        let why = panic_message(&*panic);
                        tracing::error!(id = %claimed.id, "generation panicked: {why}");
                        let _ = rt.block_on(crate::media::store::delete_prefix(
                            self.inner.media.as_ref(),
                            &media_files::result_prefix(&claimed.id),
                        ));
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
                let _ = rt.block_on(self.inner.media.delete(&upload_key(&id)));
            }
            if finished.state == JobState::Done {
                // Its model's kernels are prepared now.
                self.warm_up_ran(&mut warm_up, &finished.params.model);
            }
            if finished.state == JobState::Failed {
                self.set_last_error(format!("job {id}: {}", finished.message.as_deref().unwrap_or("failed")));
            }
            self.inner.faults.at(CrashPoint::BeforeJobUpdate);
            let saved = self.save_finished(&rt, &finished);
            // Only now: a cancel that lands before this finds the flag, one after finds the job finished.
            self.forget_cancel_flag(&id);
            *self.inner.current.lock().expect("current lock") = None;
            *self.inner.loaded.lock().expect("loaded lock") = models.loaded();
            if saved {
                self.publish(&finished);
            }
        }
    }

    /// This worker's setup when it shares the queue with others (leases apply).
    fn shared_setup(&self) -> Option<&super::WorkerSetup> {
        self.inner.setup.as_ref().filter(|_| self.inner.store.shared())
    }

    /// What this worker asks the queue for: in a shared queue, jobs for the models it has
    /// (those loaded first), held by a lease; the embedded worker takes any job, oldest first.
    fn claim(&self) -> Claim {
        let worker = self.worker_id();
        match self.shared_setup() {
            Some(setup) => Claim {
                worker,
                now_ms: now_ms(),
                lease_ms: Some(setup.lease.as_millis() as i64),
                models: self.inner.registry.ids(),
                loaded: self.inner.loaded.lock().expect("loaded lock").clone(),
            },
            None => Claim { worker, now_ms: now_ms(), ..Claim::default() },
        }
    }

    /// Records a finished job while this worker holds it, retrying while the database is away
    /// (up to a lease: after that the job is another worker's). False when it was not saved.
    fn save_finished(&self, rt: &Handle, finished: &Job) -> bool {
        let deadline = Instant::now() + self.inner.setup.as_ref().map_or(std::time::Duration::ZERO, |s| s.lease);
        loop {
            match rt.block_on(self.inner.store.finish_job(finished.clone(), self.worker_id())) {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::warn!(id = %finished.id, "the job is no longer this worker's (taken over, or cancelled); its outcome is dropped");
                    return false;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(id = %finished.id, "saving the job's outcome: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(id = %finished.id, "saving the job's outcome: {e}");
                    return false;
                }
            }
        }
    }

    /// Saves a result's gallery record; in a shared queue, retried while the database is away
    /// (up to a lease), so a database restart costs no finished work.
    fn insert_video(&self, rt: &Handle, video: Video) -> Result<(), crate::storage::StoreError> {
        let shared = self.shared_setup();
        let deadline = Instant::now() + shared.map_or(std::time::Duration::ZERO, |s| s.lease);
        loop {
            match rt.block_on(self.inner.store.insert_video(video.clone())) {
                Err(crate::storage::StoreError::Database(e))
                    if Instant::now() < deadline
                        && !rt.block_on(self.inner.store.video_exists(video.id.clone())).unwrap_or(false) =>
                {
                    tracing::warn!(id = %video.id, "saving the result: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Whether this worker may still write job `id`'s result: always for the embedded worker;
    /// in a shared queue, while it holds the job's lease (renewed now).
    fn still_holds(&self, rt: &Handle, id: &str) -> bool {
        let Some(setup) = self.shared_setup() else { return true };
        if self.inner.lost.lock().expect("lost lock").as_deref() == Some(id) {
            return false;
        }
        let until = now_ms() + setup.lease.as_millis() as i64;
        !matches!(
            rt.block_on(self.inner.store.renew_lease(id.to_string(), self.worker_id(), until)),
            Ok(crate::storage::Lease::Lost)
        )
    }

    /// Scores one stored clip that has none, or embeds one (see [`crate::scores::backfill`]);
    /// false when every clip has been looked at since the start.
    fn backfill_scores(&self, rt: &Handle) -> bool {
        let mut cursor = self.inner.backfill.lock().expect("backfill lock");
        let (store, media) = (self.inner.store.as_ref(), self.inner.media.as_ref());
        let registry = &self.inner.registry;
        let reads_prompt = |model: &str| registry.reads_prompt(model);
        if !cursor.finished {
            match crate::scores::backfill::one(rt, store, media, &reads_prompt, cursor.after.clone()) {
                Ok(Some(id)) => cursor.after = Some(id),
                Ok(None) => cursor.finished = true,
                Err(e) => {
                    tracing::warn!("measuring stored clips: {e}");
                    cursor.finished = true;
                }
            }
            return true;
        }
        let Some(visual) = self.inner.visual.as_ref().filter(|_| !cursor.embedded) else { return false };
        match crate::scores::backfill::embed_one(rt, store, media, visual, &reads_prompt, cursor.embed_after.clone()) {
            Ok(Some(id)) => cursor.embed_after = Some(id),
            Ok(None) => cursor.embedded = true,
            Err(e) => {
                tracing::warn!("embedding stored clips: {e}");
                cursor.embedded = true;
            }
        }
        true
    }

    fn set_last_error(&self, message: String) {
        *self.inner.last_error.lock().expect("error lock") = Some(message);
    }

    /// Runs one claimed job; returns it finished (done, failed or cancelled).
    fn run_job(&self, rt: &Handle, device: &OpenedDevice, models: &mut ModelCache, mut job: Job) -> Job {
        let span = tracing::info_span!("job", id = %job.id, mode = job.mode.as_str(), model = %job.params.model);
        let _entered = span.enter();
        let queue_wait_s = (job.started_ms.unwrap_or_else(now_ms) - job.created_ms) as f64 / 1000.0;
        tracing::info!(queue_wait_s, "job started");
        self.publish(&job);
        let cancel = self.cancel_flag(&job.id);
        let result = if self.cancelled(&cancel) {
            // Cancelled while it was being claimed.
            Err(GenerateError::Cancelled)
        } else {
            self.inner.faults.before_generating(&job.params.prompt);
            self.generate(rt, device, models, &mut job, &cancel)
        };
        job.finished_ms = Some(now_ms());
        match result {
            Ok(()) => {
                job.state = JobState::Done;
                job.video_id = Some(job.id.clone());
                let _ = rt.block_on(self.inner.media.delete(&upload_key(&job.id)));
            }
            Err(GenerateError::Cancelled)
                if self.inner.stopping.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) =>
            {
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

    /// Runs the job's engine and stores what it made.
    fn generate(
        &self,
        rt: &Handle,
        device: &OpenedDevice,
        models: &mut ModelCache,
        job: &mut Job,
        cancel: &AtomicBool,
    ) -> Result<(), GenerateError> {
        let Some(engine) = self.inner.registry.get(&job.params.model).cloned() else {
            return Err(GenerateError::InvalidRequest(format!("the model {} is not installed", job.params.model)));
        };
        let input = match job.mode {
            Mode::ImageToVideo | Mode::Edit => Some(self.load_upload(rt, &job.id)?),
            _ => None,
        };
        let prior = match job.mode {
            Mode::Extend => self.load_frames(rt, &job.params.source)?,
            _ => Vec::new(),
        };
        let params = job.params.clone();
        let mode = job.mode;
        // Pages cached by earlier jobs go back, so the figure is this job's.
        device.device.memory_cleanup();
        let mut meter = GpuMemoryMeter::start(&device.device);
        let mut rendered = {
            let mut report = self.progress(rt, job);
            let mut progress = |p: Progress| {
                meter.sample();
                report(p)
            };
            let cancelled = || self.cancelled(cancel);
            let mut ctx = RunContext { device, models, progress: &mut progress, cancelled: &cancelled };
            if segments::is_segmented(&params) {
                segments::run(engine.as_ref(), &params, prior, input, &mut ctx)?
            } else {
                engine.run(
                    EngineJob { params: &params, mode, input: input.as_ref(), overrides: &Overrides::NONE },
                    &mut ctx,
                )?
            }
        };
        rendered.meta.mode = mode;
        rendered.meta.peak_gpu_memory_mib = meter.peak_mib();
        rendered.meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
        self.store_result(rt, job, &mut rendered)
    }

    /// Progress reporting for a running job: live to listeners (with previews), to the
    /// database now and then.
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
                self.announce(
                    NoticeKind::Step { id: id.clone(), step, total, preview: preview.is_some() },
                    preview.clone(),
                );
            }
            let _ = self.inner.events.send(JobEvent::Step(StepUpdate { id: id.clone(), step, total, preview }));
            if last_saved.elapsed().as_secs_f32() > 1.0 {
                last_saved = Instant::now();
                let _ = rt.block_on(self.inner.store.save_progress(id, worker.clone(), step, total));
            }
        }
    }

    fn cancelled(&self, cancel: &AtomicBool) -> bool {
        cancel.load(Ordering::Relaxed) || self.inner.stopping.load(Ordering::Relaxed)
    }

    /// The stored upload of a job (no paths in the message: it is shown to users).
    fn load_upload(&self, rt: &Handle, id: &str) -> Result<image::RgbImage, GenerateError> {
        let gone = |why: String| GenerateError::InvalidRequest(format!("the uploaded image is gone ({why})"));
        let fetched = rt.block_on(self.inner.media.get(&upload_key(id), None)).map_err(|e| gone(e.to_string()))?;
        let bytes = fetched.ok_or_else(|| gone("not found".into()))?.bytes;
        input::decode(&bytes, "the uploaded image").map_err(|e| GenerateError::InvalidRequest(e.to_string()))
    }

    /// The stored frames of video `id`, in order (what an extension continues).
    fn load_frames(&self, rt: &Handle, id: &str) -> Result<Vec<image::RgbImage>, GenerateError> {
        let gone = |why: String| GenerateError::InvalidRequest(format!("the video to extend cannot be read ({why})"));
        let video = rt
            .block_on(self.inner.store.video(id.to_string()))
            .map_err(|e| gone(e.to_string()))?
            .ok_or_else(|| gone("it was deleted".into()))?;
        rt.block_on(crate::media::store::result_frames(self.inner.media.as_ref(), id, video.metadata.frames as usize))
            .map_err(gone)
    }

    /// Writes a result's files to the media store, then records it in the gallery; on any
    /// failure nothing of it stays.
    fn store_result(&self, rt: &Handle, job: &Job, rendered: &mut Rendered) -> Result<(), GenerateError> {
        let media = self.inner.media.as_ref();
        let remove = || {
            let _ = rt.block_on(crate::media::store::delete_prefix(media, &media_files::result_prefix(&job.id)));
        };
        let lost = || {
            GenerateError::Backend("this worker no longer holds the job (its lease ended while the database or the worker was unreachable); another worker runs it".into())
        };
        if !self.still_holds(rt, &job.id) {
            return Err(lost());
        }
        let written = {
            let _encode = tracing::info_span!("encode").entered();
            write_result(rendered, WriteOptions::GALLERY, &mut |file: MediaFile, bytes: Vec<u8>| {
                rt.block_on(media.put(&media_files::key(&job.id, file), bytes.into())).map_err(anyhow::Error::from)
            })
        };
        if let Err(e) = written {
            remove();
            return Err(GenerateError::Backend(format!("writing the result failed: {e:#}")));
        }
        self.inner.faults.at(CrashPoint::AfterWrite);
        // Measuring never fails the job: a panic there leaves the clip unmeasured (the idle
        // worker tries again after a restart).
        let reads_prompt = self.inner.registry.reads_prompt(&job.params.model);
        let measure = std::panic::AssertUnwindSafe(|| {
            let mut scores = (!rendered.still)
                .then(|| {
                    let _measure = tracing::info_span!("scores").entered();
                    crate::scores::of_result(&rendered.frames, rendered.input.as_ref(), &job.params, reads_prompt)
                })
                .flatten();
            // With a CLIP model: what the clip shows (for visual search), and its CLIP score.
            let embedding = self.inner.visual.as_ref().filter(|_| !rendered.still).map(|visual| {
                let _embed = tracing::info_span!("clip").entered();
                let embedding = visual.embed_frames(&rendered.frames);
                crate::scores::backfill::clip_faithfulness(
                    visual,
                    &embedding,
                    &job.params,
                    reads_prompt,
                    scores.as_mut(),
                );
                embedding
            });
            (scores, embedding)
        });
        let (scores, embedding) = std::panic::catch_unwind(measure).unwrap_or_else(|panic| {
            tracing::error!(id = %job.id, "measuring the clip panicked: {}", panic_message(&*panic));
            (None, None)
        });
        if !self.still_holds(rt, &job.id) {
            // The files are the other worker's to write (the same keys); they are left alone.
            return Err(lost());
        }
        let video = Video {
            id: job.id.clone(),
            mode: job.mode,
            params: job.params.clone(),
            created_ms: now_ms(),
            favorite: false,
            metadata: rendered.meta.clone(),
            scores,
        };
        if let Err(e) = self.insert_video(rt, video) {
            // Already in the gallery (a shutdown put the job back after its insert): the files
            // just written are that video's; keep them.
            if rt.block_on(self.inner.store.video_exists(job.id.clone())).unwrap_or(false) {
                return Ok(());
            }
            remove();
            return Err(GenerateError::Backend(format!("saving the result failed: {e}")));
        }
        self.inner.faults.at(CrashPoint::AfterInsert);
        if let (Some(visual), Some(embedding)) = (&self.inner.visual, embedding)
            && let Err(e) = rt.block_on(visual.remember(self.inner.store.as_ref(), &job.id, embedding))
        {
            // The idle worker embeds it again later.
            tracing::warn!(id = %job.id, "storing what the clip shows: {e}");
        }
        Ok(())
    }
}
