//! Taking a job in: the shared outer bounds, the model's defaults for what the request left out,
//! the model's own checks (its engine picks the task), and the image it starts from, resolved
//! once into a media key the worker reads: an upload is decoded with the upload limits and
//! stored as PNG under the job's id (so a job interrupted by a restart can run again); a stored
//! result's image or frame is used where it is, unread and unchanged. Such a job fails, saying
//! so, when that result is deleted before the job runs.

use super::defaults::{self, Given};
use super::{QUEUE_LIMIT, SubmitError};
use crate::engines::{Registry, segments};
use crate::ids::{new_id, now_ms};
use crate::media::{MediaStore, input};
use crate::storage::Store;
use app::media_files::{self, MediaFile, upload_key};
use app::types::{Job, JobParams, JobState, Mode, Video};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// An image sent with a request.
#[derive(Clone)]
pub struct Upload {
    pub bytes: Vec<u8>,
    pub name: String,
}

/// The image a job starts from.
#[derive(Clone)]
pub enum Picture {
    /// Sent with the request (a file, an example image): checked, fitted within what the
    /// models take, and stored for the job.
    Upload(Upload),
    /// A stored result's file: its image, keyframe or input, or a frame of a clip (a still
    /// image's frames are its image).
    Stored { id: String, file: MediaFile },
}

/// The pictures a job starts from.
#[derive(Clone, Default)]
pub struct Pictures {
    /// The picture to animate or edit.
    pub first: Option<Picture>,
    /// The clip's last frame (the models that take one: Wan image to video).
    pub last: Option<Upload>,
}

impl From<Option<Picture>> for Pictures {
    fn from(first: Option<Picture>) -> Self {
        Self { first, last: None }
    }
}

pub(super) struct Intake {
    pub(super) store: Arc<dyn Store>,
    pub(super) media: Arc<dyn MediaStore>,
    pub(super) registry: Arc<Registry>,
    /// Image decoding at once: about one per core.
    decoding: Arc<Semaphore>,
}

impl Intake {
    pub(super) fn new(store: Arc<dyn Store>, media: Arc<dyn MediaStore>, registry: Arc<Registry>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { store, media, registry, decoding: Arc::new(Semaphore::new(cores)) }
    }

    /// Checks a request for `owner` and queues it; returns the queued job. What the request
    /// did not give (`given`) takes its model's defaults.
    pub(super) async fn accept(
        &self,
        owner: &str,
        mut params: JobParams,
        pictures: Pictures,
        given: &Given,
    ) -> Result<Job, SubmitError> {
        app::limits::check_params(&params).map_err(SubmitError::Invalid)?;
        let Pictures { first: mut picture, last } = pictures;
        // Set by the upload alone: a request cannot name another job's picture.
        params.last_image = last.is_some();
        let registry = &self.registry;
        self.route_edit(&mut params);
        let extending = params.task == app::params::EXTEND_TASK;
        if params.model.is_empty() {
            // An image to animate, or a clip to continue from its last frame, needs a model
            // that starts from a picture; text alone goes to the default text-to-video model.
            params.model = registry.default_id(picture.is_some() || extending).to_string();
        }
        let Some(engine) = registry.get(&params.model) else {
            return Err(SubmitError::Invalid(format!(
                "unknown model {:?}; this server has {:?}",
                params.model,
                registry.ids()
            )));
        };
        defaults::fill(engine.info(), &mut params, given, picture.is_some() || extending);
        // The seed is drawn now, so the result can be made again.
        let seed = params.seed.unwrap_or_else(crate::ids::random_seed);
        params.seed = Some(seed);
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
            // The clip continues from its own frames.
            picture = None;
        } else if params.task == app::params::EDIT_TASK {
            self.prepare_edit(engine.as_ref(), &mut params, &mut picture).await?;
        } else {
            params.source.clear();
        }
        if !params.segments.is_empty() && params.prompt.trim().is_empty() {
            params.prompt = segments::shot_list_prompt(&params.segments);
        }
        let from_image = picture.is_some();
        self.registry.loras.check(&params.loras, engine.info()).map_err(SubmitError::Invalid)?;
        if params.last_image {
            if !engine.info().takes_last_image() {
                return Err(SubmitError::Invalid(format!("{} takes no last frame", params.model)));
            }
            if !from_image || extending || !params.segments.is_empty() {
                return Err(SubmitError::Invalid(
                    "a last frame ends one clip animated from a first picture (not an extension, a shot list or text alone)"
                        .into(),
                ));
            }
        }
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
        let (stored, upload) = match picture {
            None => (None, None),
            Some(Picture::Stored { id, file }) => (Some(self.stored_key(&id, file).await?), None),
            Some(Picture::Upload(upload)) => (None, Some(upload)),
        };
        // Refuse before decoding anything when there is no room for this owner (enqueue checks
        // again, atomically).
        if self.store.queued_count_of(owner.to_string()).await? >= QUEUE_LIMIT as u64 {
            return Err(SubmitError::QueueFull);
        }
        let id = new_id();
        let key = upload_key(&id);
        let input = match upload {
            Some(upload) => {
                self.store_upload(&key, upload).await?;
                Some(key.clone())
            }
            None => stored,
        };
        if let Some(last) = last
            && let Err(e) = self.store_upload(&media_files::last_upload_key(&id), last).await
        {
            let _ = self.media.delete(&key).await;
            return Err(e);
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
            input,
            decode_retries: None,
        };
        let refused = match self.store.enqueue(job.clone(), QUEUE_LIMIT).await {
            Ok(true) => None,
            Ok(false) => Some(SubmitError::QueueFull),
            Err(e) => Some(e.into()),
        };
        if let Some(refused) = refused {
            for key in media_files::upload_keys(&id) {
                let _ = self.media.delete(&key).await;
            }
            return Err(refused);
        }
        tracing::info!(id = %job.id, mode = job.mode.as_str(), model = %job.params.model, "job queued");
        Ok(job)
    }

    /// Decodes an upload with the upload limits, fits it within the largest side any model
    /// takes, and stores it as PNG under `key`.
    async fn store_upload(&self, key: &str, upload: Upload) -> Result<(), SubmitError> {
        let max_side = self.registry.max_input_side();
        // Held by the decoding itself, so a client that goes away does not free it early.
        let permit = self.decoding.clone().acquire_owned().await.map_err(|e| SubmitError::Internal(e.to_string()))?;
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
            crate::media::encode::encode_png(&img, None)
                .map_err(|e| SubmitError::Internal(format!("encoding the upload: {e}")))
        })
        .await
        .map_err(|e| SubmitError::Internal(e.to_string()))??;
        self.media.put(key, png.into()).await.map_err(|e| SubmitError::Internal(format!("saving the upload: {e}")))
    }

    /// The media key of a stored result's file, checked: the result exists, the frame is one
    /// of its frames, and the file is stored.
    async fn stored_key(&self, id: &str, file: MediaFile) -> Result<String, SubmitError> {
        let missing = || SubmitError::Invalid(format!("there is no image {id:?} to start from"));
        if !app::types::is_valid_id(id) {
            return Err(missing());
        }
        let video = self.store.video(id.to_string()).await?.ok_or_else(missing)?;
        let file = match file {
            MediaFile::Frame(_) if video.is_image() => MediaFile::Image,
            MediaFile::Frame(i) if i >= video.metadata.frames.max(1) as usize => {
                return Err(SubmitError::Invalid(format!(
                    "video {id} has {} frames; there is no frame {i}",
                    video.metadata.frames.max(1)
                )));
            }
            MediaFile::Frame(_) | MediaFile::Image | MediaFile::Keyframe | MediaFile::Input => file,
            _ => return Err(SubmitError::Invalid(format!("{} of {id} is not an image to start from", file.name()))),
        };
        let key = media_files::key(id, file);
        if !self.is_stored(&key).await? {
            return Err(SubmitError::Invalid(format!("{id} cannot be used: its {} is not stored", file.name())));
        }
        Ok(key)
    }

    /// Whether the media store has `key` (its first byte is read).
    async fn is_stored(&self, key: &str) -> Result<bool, SubmitError> {
        let first = self.media.get(key, Some(0..1)).await;
        Ok(first.map_err(|e| SubmitError::Internal(format!("reading {key}: {e}")))?.is_some())
    }

    /// Whether the stored video `id` can be continued: it exists, is a clip, and its frames
    /// are stored (the last one is where the extension starts).
    async fn check_continuable(&self, id: &str) -> Result<Video, SubmitError> {
        let missing = || SubmitError::Invalid(format!("there is no video {id:?} to extend"));
        if !app::types::is_valid_id(id) {
            return Err(missing());
        }
        let video = self.store.video(id.to_string()).await?.ok_or_else(missing)?;
        if video.is_image() {
            return Err(SubmitError::Invalid(format!(
                "video {id} is a still image; only clips can be extended (animate it instead)"
            )));
        }
        let last = media_files::key(id, MediaFile::Frame(video.metadata.frames.saturating_sub(1) as usize));
        if video.metadata.frames < 2 || !self.is_stored(&last).await? {
            return Err(SubmitError::Invalid(format!("video {id} cannot be continued: its frames are not stored")));
        }
        Ok(video)
    }
}
