//! Publishing a result: its files to the media store, its scores and what it shows (with a CLIP
//! model) measured, then its gallery record, in that order, so nothing serves a result before
//! its files are all stored. The idle worker measures stored clips that have no scores yet the
//! same way.

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
    /// Writes a result's files to the media store, then records it in the gallery; on any
    /// failure nothing of it stays. `holds` says whether this worker still holds the job (its
    /// lease, in a shared queue): a job taken over by another worker is that worker's to save.
    pub(super) fn publish(
        &self,
        rt: &Handle,
        job: &Job,
        rendered: &mut Rendered,
        holds: &dyn Fn() -> bool,
    ) -> Result<(), GenerateError> {
        let media = self.media.as_ref();
        // What this worker wrote, taken back; only while the job is still its own (the same
        // keys may be another worker's by now).
        let remove = || {
            if holds() {
                let _ = rt.block_on(crate::media::store::delete_prefix(media, &media_files::result_prefix(&job.id)));
            }
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
                rt.block_on(media.put(&media_files::key(&job.id, file), bytes.into())).map_err(anyhow::Error::from)
            })
        };
        if let Err(e) = written {
            remove();
            return Err(GenerateError::Backend(format!("writing the result failed: {e:#}")));
        }
        self.faults.at(CrashPoint::AfterWrite);
        let (scores, embedding) = self.measure(job, rendered);
        if !holds() {
            // The files are the other worker's to write (the same keys); they are left alone.
            return Err(lost());
        }
        let video = Video {
            id: job.id.clone(),
            mode: job.mode,
            params: job.params.clone(),
            created_ms: now_ms(),
            favorite: false,
            owner: job.owner.clone(),
            metadata: rendered.meta.clone(),
            scores,
        };
        if let Err(e) = self.insert_video(rt, video) {
            // Already in the gallery (a shutdown put the job back after its insert): the files
            // just written are that video's; keep them.
            if rt.block_on(self.store.video_exists(job.id.clone())).unwrap_or(false) {
                return Ok(());
            }
            remove();
            return Err(GenerateError::Backend(format!("saving the result failed: {e}")));
        }
        self.faults.at(CrashPoint::AfterInsert);
        if let (Some(visual), Some(embedding)) = (&self.visual, embedding)
            && let Err(e) = rt.block_on(visual.remember(self.store.as_ref(), &job.id, embedding))
        {
            // The idle worker embeds it again later.
            tracing::warn!(id = %job.id, "storing what the clip shows: {e}");
        }
        Ok(())
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
