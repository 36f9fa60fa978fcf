//! The job queue: persisted in the [`Store`], run one at a time on a dedicated generation
//! thread that owns the model (never on the async runtime), with live progress broadcast to
//! whoever listens and cancel between steps.
//!
//! A job's files are written to `DATA_DIR/media/ID.partial/` and renamed to
//! `DATA_DIR/media/ID/` only when complete, so no half-written media are ever served. Uploaded
//! images are normalised to PNG in `DATA_DIR/uploads/ID.png` when the job is created, so a job
//! interrupted by a restart can run again.

use crate::input;
use crate::media;
use crate::output::{Metadata, Timings, write_clip};
use crate::storage::{Store, StoreError};
use app::types::{Job, JobParams, JobState, Mode, Video};
use model::device::OpenedDevice;
use model::diffusers::stable_diffusion::{ImageRequest, StableDiffusion};
use model::diffusers::stable_video_diffusion::{MemoryMode, StableVideoDiffusion};
use model::net::NetConfig;
use model::pipeline::{BuiltinModel, GenerateError, GenerationRequest, Progress};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;
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
    /// Cancel flags of jobs that are queued or running in this process.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    events: broadcast::Sender<Job>,
    wake: Mutex<mpsc::Sender<()>>,
    /// Set by [`Jobs::shutdown`]: the worker puts its job back in the queue and stops.
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
    pub async fn start(
        store: Arc<dyn Store>,
        data_dir: PathBuf,
        examples_dir: PathBuf,
        config: NetConfig,
        model_id: &str,
        image_models: Vec<ImageModel>,
        load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)> + Send + 'static,
    ) -> anyhow::Result<Jobs> {
        for dir in ["media", "uploads"] {
            std::fs::create_dir_all(data_dir.join(dir))?;
        }
        // Leftovers of a crash mid-write are never shown; remove them.
        for entry in std::fs::read_dir(data_dir.join("media"))?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let requeued = store.requeue_interrupted().await?;
        if !requeued.is_empty() {
            tracing::warn!(?requeued, "jobs interrupted by a restart are queued again");
        }
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

    /// Stops the generation thread: a running job is interrupted between steps and queued
    /// again, so the next start runs it. Returns when the thread has exited.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        for flag in self.inner.cancels.lock().expect("cancels lock").values() {
            flag.store(true, Ordering::Relaxed);
        }
        self.wake();
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
    pub fn subscribe(&self) -> broadcast::Receiver<Job> {
        self.inner.events.subscribe()
    }

    fn publish(&self, job: &Job) {
        let _ = self.inner.events.send(job.clone());
    }

    fn wake(&self) {
        let _ = self.inner.wake.lock().expect("wake lock").send(());
    }

    /// Checks and queues a job. The image, if any, is decoded with the upload limits and
    /// stored as PNG before the job is queued.
    pub async fn submit(&self, mut params: JobParams, upload: Option<Upload>) -> Result<Job, SubmitError> {
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
            model::pipeline::validate(&self.inner.config, &request_of(&params), upload.is_some())
                .map_err(|e| SubmitError::Invalid(e.to_string()))?;
            if upload.is_some() { Mode::ImageToVideo } else { Mode::TextToVideo }
        };
        let id = new_id();
        let upload_path = self.upload_path(&id);
        if let Some(upload) = upload {
            let path = upload_path.clone();
            tokio::task::spawn_blocking(move || -> Result<(), SubmitError> {
                let img = input::decode(&upload.bytes, &upload.name).map_err(|e| SubmitError::Invalid(e.to_string()))?;
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
        if !self.inner.store.enqueue(job.clone(), QUEUE_LIMIT).await? {
            let _ = std::fs::remove_file(&upload_path);
            return Err(SubmitError::QueueFull);
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
        self.inner.data_dir.join("uploads").join(format!("{id}.png"))
    }

    /// Cancels a queued or running job. Returns the job as it is now, or `None` if unknown.
    pub async fn cancel(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let Some(mut job) = self.inner.store.job(id.to_string()).await? else {
            return Ok(None);
        };
        if let Some(flag) = self.inner.cancels.lock().expect("cancels lock").get(id) {
            flag.store(true, Ordering::Relaxed);
        }
        if job.state == JobState::Queued && self.inner.store.cancel_queued(id.to_string(), now_ms()).await? {
            job = self.inner.store.job(id.to_string()).await?.unwrap_or(job);
            self.publish(&job);
        }
        Ok(Some(job))
    }

    /// Deletes a video: its record first (so it disappears from the gallery at once), then
    /// its files.
    pub async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.inner.store.delete_video(id.to_string()).await?;
        if existed {
            let dir = self.media_dir().join(id);
            let _ = tokio::fs::remove_dir_all(&dir).await;
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
            let loaded = load();
            tracing::info!(seconds = started.elapsed().as_secs_f64(), ok = loaded.is_ok(), "model load");
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
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    continue;
                }
            };
            let finished = match &loaded {
                Ok((model, device)) => self.run_job(&rt, model, device, &mut image_model, &mut video_model, job),
                Err(e) => Job {
                    state: JobState::Failed,
                    message: Some(format!("the model could not be loaded: {e:#}")),
                    finished_ms: Some(now_ms()),
                    ..job
                },
            };
            if let Err(e) = rt.block_on(self.inner.store.update_job(finished.clone())) {
                tracing::error!(id = %finished.id, "saving the job's result: {e}");
            }
            self.publish(&finished);
        }
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
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner.cancels.lock().expect("cancels lock").insert(job.id.clone(), cancel.clone());
        let video = self.inner.image_models.iter().any(|m| m.video && m.name == job.params.model);
        let result = if video {
            self.generate_svd(rt, device, image_model, video_model, &mut job, &cancel)
        } else if job.mode == Mode::TextToImage {
            self.generate_image(rt, device, image_model, &mut job, &cancel)
        } else {
            self.generate(rt, model, &device.description, &mut job, &cancel)
        };
        self.inner.cancels.lock().expect("cancels lock").remove(&job.id);
        job.finished_ms = Some(now_ms());
        match result {
            Ok(()) => {
                job.state = JobState::Done;
                job.video_id = Some(job.id.clone());
                let _ = std::fs::remove_file(self.upload_path(&job.id));
            }
            Err(GenerateError::Cancelled) if self.inner.stopping.load(Ordering::Relaxed) => {
                job.state = JobState::Queued;
                job.step = 0;
                job.started_ms = None;
                job.finished_ms = None;
                job.message = Some("interrupted by a server shutdown; queued again".into());
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
            Mode::ImageToVideo => Some(
                input::load(&self.upload_path(&job.id))
                    .map_err(|e| GenerateError::InvalidRequest(format!("the uploaded image is gone: {e}")))?,
            ),
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
        let partial = self.media_dir().join(format!("{}.partial", job.id));
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
            self.publish(job);
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
        if let Err(e) = written.and_then(|()| Ok(std::fs::rename(partial, media.join(&job.id))?)) {
            let _ = std::fs::remove_dir_all(partial);
            return Err(GenerateError::InvalidRequest(format!("writing the result failed: {e:#}")));
        }
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
        let partial = self.media_dir().join(format!("{}.partial", job.id));
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
        let partial = self.media_dir().join(format!("{}.partial", job.id));
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
                    sd.generate(&req, &mut |pr: Progress| progress(Progress { step: pr.step, total }), &|| self.cancelled(cancel))?
                };
                let meta = crate::text_to_image::ImageMetadata::new(kf.name.clone(), sd, &req, &image, device, 0.0, started.elapsed().as_secs_f64());
                keyframe_meta = Some(serde_json::to_value(&meta).unwrap_or_default());
                image.to_rgb8()
            }
            _ => input::load(&self.upload_path(&job.id))
                .map_err(|e| GenerateError::InvalidRequest(format!("the uploaded image is gone: {e}")))?,
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
            let mut offset = |pr: Progress| progress(Progress { step: keyframe_steps + pr.step, total: keyframe_steps + pr.total });
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
