//! Publishing a result: its files to the media store (under the run's own prefix, then into the
//! result's folder once the store decided this run made it), its scores and what it shows
//! (with a CLIP model) measured, then its gallery record, in that order, so nothing serves a
//! result before its files are all stored. The idle worker measures stored clips that have no
//! scores yet the same way.

use crate::engines::{Registry, Rendered};
use crate::faults::{CrashPoint, Faults};
use crate::ids::now_ms;
use crate::media::MediaStore;
use crate::media::writer::{WriteOptions, write_result};
use crate::scores::backfill::Cursor;
use crate::storage::{Store, StoreError};
use crate::visual::Visual;
use app::media_files::{self, MediaFile};
use app::types::{Job, Video};
use model::generate::{GenerateError, panic_message};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// The gallery record of job `job`'s result, made now.
fn video_of(job: &Job, metadata: app::results::ResultMeta, scores: Option<app::scores::Scores>) -> Video {
    Video {
        id: job.id.clone(),
        mode: job.mode,
        params: job.params.clone(),
        created_ms: now_ms(),
        favorite: false,
        owner: job.owner.clone(),
        metadata,
        scores,
    }
}

pub(super) struct Publisher {
    pub(super) store: Arc<dyn Store>,
    pub(super) media: Arc<dyn MediaStore>,
    pub(super) registry: Arc<Registry>,
    pub(super) visual: Option<Arc<Visual>>,
    pub(super) faults: Faults,
    /// In a shared queue, how long a failed gallery insert is retried (the worker's lease).
    pub(super) retry_for: Duration,
    /// How far the idle worker has come measuring stored clips without scores or embeddings.
    pub(super) backfill: Cursor,
}

impl Publisher {
    /// Writes a result's files to the media store under this run's own prefix, has the store
    /// decide (while `worker` holds the job) that this run made the job's result, then
    /// publishes them ([`Publisher::complete`]). `holds` says whether this worker still holds
    /// the job (its lease, in a shared queue). A worker that lost the job (frozen past its
    /// lease, then continued) writes and removes only its own run's files: it can neither
    /// overwrite nor remove the result of the worker that took the job over.
    pub(super) fn publish(
        &self,
        rt: &Handle,
        job: &Job,
        worker: &str,
        rendered: &mut Rendered,
        holds: &dyn Fn() -> bool,
    ) -> Result<(), GenerateError> {
        let media = self.media.as_ref();
        let attempt = crate::ids::new_id();
        let staging = media_files::attempt_prefix(&job.id, &attempt);
        // This run's files, taken back (never anyone else's).
        let remove = || {
            let _ = rt.block_on(crate::media::store::delete_prefix(media, &staging));
        };
        let lost = || {
            GenerateError::Backend("this worker no longer holds the job (its lease ended while the database or the worker was unreachable); another worker runs it".into())
        };
        if !holds() {
            return Err(lost());
        }
        let written = {
            let _encode = tracing::info_span!("encode").entered();
            write_result(rendered, WriteOptions::GALLERY, &mut |file: MediaFile, bytes: Vec<u8>| {
                let put = rt.block_on(media.put(&format!("{staging}{}", file.name()), bytes.into()));
                self.faults.while_writing();
                put.map_err(anyhow::Error::from)
            })
        };
        if let Err(e) = written {
            remove();
            return Err(GenerateError::Backend(format!("writing the result failed: {e:#}")));
        }
        self.faults.at(CrashPoint::AfterWrite);
        let (scores, embedding) = self.measure(job, rendered);
        let video = video_of(job, rendered.meta.clone(), scores);
        let decided =
            self.retried(rt, || self.store.decide_result(job.id.clone(), worker.to_string(), attempt.clone()));
        match decided {
            Ok(Some(run)) if run == attempt => self.complete(rt, job, &attempt, Some(video), holds)?,
            Ok(Some(run)) => {
                // An earlier run made the job's result before its worker stopped: that one is
                // published, not this one.
                remove();
                self.complete(rt, job, &run, None, holds)?;
                return Ok(());
            }
            Ok(None) => {
                remove();
                return Err(lost());
            }
            Err(e) => {
                remove();
                return Err(GenerateError::Backend(format!("saving the result failed: {e}")));
            }
        }
        if let (Some(visual), Some(embedding)) = (&self.visual, embedding)
            && let Err(e) = rt.block_on(visual.remember(self.store.as_ref(), &job.id, embedding))
        {
            // The idle worker embeds it again later.
            tracing::warn!(id = %job.id, "storing what the clip shows: {e}");
        }
        Ok(())
    }

    /// Publishes run `attempt`'s result, which the store decided is job `job`'s: its files
    /// copied into the result's folder (a copy interrupted before is done again, with the same
    /// bytes), then its gallery record (`video`, or one made from the files' metadata), then
    /// the run's own files removed while this worker holds the job (`holds`). Whoever finishes
    /// the job does it: the worker of that run, or one that took the job over after it stopped
    /// (two may, one of them frozen meanwhile: the first to record the video wins, and the
    /// other finds it recorded).
    pub(super) fn complete(
        &self,
        rt: &Handle,
        job: &Job,
        attempt: &str,
        video: Option<Video>,
        holds: &dyn Fn() -> bool,
    ) -> Result<(), GenerateError> {
        let media = self.media.as_ref();
        let recorded = || rt.block_on(self.store.video_exists(job.id.clone())).unwrap_or(false);
        let failed = |e: &dyn std::fmt::Display| GenerateError::Backend(format!("publishing the result failed: {e}"));
        let staging = media_files::attempt_prefix(&job.id, attempt);
        let keys = rt.block_on(media.list(&staging)).map_err(|e| failed(&e))?;
        for key in &keys {
            let name = key.strip_prefix(&staging).unwrap_or(key);
            let to = format!("{}{name}", media_files::result_prefix(&job.id));
            if let Err(e) = rt.block_on(media.copy(key, &to)) {
                // Published meanwhile by the other worker finishing it (which removed the run's
                // files after recording the video).
                return if recorded() { Ok(()) } else { Err(failed(&e)) };
            }
        }
        let video = match video {
            Some(video) => video,
            None => self.stored_video(rt, job).map_err(|e| failed(&e))?,
        };
        if let Err(e) = self.insert_video(rt, video) {
            // Already in the gallery (finished by another, or before a shutdown put the job
            // back): the files are that video's.
            if !recorded() {
                return Err(GenerateError::Backend(format!("saving the result failed: {e}")));
            }
        }
        self.faults.at(CrashPoint::AfterInsert);
        if holds() {
            let _ = rt.block_on(crate::media::store::delete_prefix(media, &staging));
        }
        Ok(())
    }

    /// The gallery record of job `job`'s published files (a result another worker made), from
    /// their metadata; unmeasured (the idle worker measures it).
    fn stored_video(&self, rt: &Handle, job: &Job) -> Result<Video, String> {
        let key = media_files::key(&job.id, MediaFile::Metadata);
        let fetched = rt.block_on(self.media.get(&key, None)).map_err(|e| e.to_string())?;
        let bytes = fetched.ok_or("its files are gone")?.bytes;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(video_of(job, app::results::ResultMeta::from_value(value), None))
    }

    /// Removes the files of job `id`'s runs that will never be its result (runs of workers
    /// that stopped, or lost the job): all but the decided run `keep`. Only for the worker
    /// that holds the job now, which no other run may still be writing for.
    pub(super) fn forget_runs(&self, rt: &Handle, id: &str, keep: Option<&str>) {
        let media = self.media.as_ref();
        let Ok(keys) = rt.block_on(media.list(&media_files::attempts_prefix(id))) else { return };
        let kept = keep.map(|run| media_files::attempt_prefix(id, run));
        for key in keys.iter().filter(|k| kept.as_ref().is_none_or(|p| !k.starts_with(p.as_str()))) {
            let _ = rt.block_on(media.delete(key));
        }
    }

    /// `call` again while the database is away, for up to a lease.
    fn retried<'a, T>(
        &self,
        rt: &Handle,
        call: impl Fn() -> futures_util::future::BoxFuture<'a, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.retry_for;
        loop {
            match rt.block_on(call()) {
                Err(StoreError::Database(e)) if Instant::now() < deadline => {
                    tracing::warn!("the database: {e}; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// A clip's scores and, with a CLIP model, what it shows (for visual search) and its CLIP
    /// score. Measuring never fails the job: a panic here leaves the clip unmeasured (the idle
    /// worker tries again after a restart).
    fn measure(&self, job: &Job, rendered: &Rendered) -> (Option<app::scores::Scores>, Option<Vec<f32>>) {
        if rendered.still {
            return (None, None);
        }
        let reads_prompt = self.registry.reads_prompt(&job.params.model);
        let measure = std::panic::AssertUnwindSafe(|| {
            let mut scores = {
                let _measure = tracing::info_span!("scores").entered();
                crate::scores::of_result(&rendered.frames, rendered.input.as_ref(), &job.params, reads_prompt)
            };
            let embedding = self.visual.as_ref().map(|visual| {
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
        std::panic::catch_unwind(measure).unwrap_or_else(|panic| {
            tracing::error!(id = %job.id, "measuring the clip panicked: {}", panic_message(&*panic));
            (None, None)
        })
    }

    /// Saves a result's gallery record; in a shared queue, retried while the database is away
    /// (up to a lease), so a database restart costs no finished work.
    fn insert_video(&self, rt: &Handle, video: Video) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.retry_for;
        loop {
            match rt.block_on(self.store.insert_video(video.clone())) {
                Err(StoreError::Database(e))
                    if Instant::now() < deadline
                        && !rt.block_on(self.store.video_exists(video.id.clone())).unwrap_or(false) =>
                {
                    tracing::warn!(id = %video.id, "saving the result: {e}; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Scores one stored clip that has none, or embeds one (see [`crate::scores::backfill`]);
    /// false when every clip has been looked at since the start. A panic here ends the backfill.
    pub(super) fn backfill_one(&mut self, rt: &Handle) -> bool {
        let step = std::panic::AssertUnwindSafe(|| self.backfill_step(rt));
        std::panic::catch_unwind(step).unwrap_or_else(|panic| {
            tracing::error!("measuring stored clips panicked: {}", panic_message(&*panic));
            (self.backfill.finished, self.backfill.embedded) = (true, true);
            false
        })
    }

    fn backfill_step(&mut self, rt: &Handle) -> bool {
        let (store, media) = (self.store.as_ref(), self.media.as_ref());
        let registry = &self.registry;
        let reads_prompt = |model: &str| registry.reads_prompt(model);
        let cursor = &mut self.backfill;
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
        let Some(visual) = self.visual.as_ref().filter(|_| !cursor.embedded) else { return false };
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
}
