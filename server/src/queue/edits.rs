//! Edits in the queue: which editor an edit goes to, the image it starts from (an upload, or a
//! stored image or frame: its parent), and the chain of versions an edited image was made from.

use super::{Jobs, SubmitError, Upload};
use crate::engines::Engine;
use crate::storage::StoreError;
use app::media_files::MediaFile;
use app::types::{JobParams, Mode, Video};

/// The most versions [`Jobs::chain`] follows back.
pub const MAX_CHAIN: usize = 200;

impl Jobs {
    /// An edit without a model goes to the first editor (a named model that does not edit is
    /// refused by [`Jobs::prepare_edit`], naming the editors).
    pub(super) fn route_edit(&self, params: &mut JobParams) {
        if params.task == app::params::EDIT_TASK
            && params.model.is_empty()
            && let Some(editor) = self.inner.registry.infos().into_iter().find(|m| m.tasks.contains(&Mode::Edit))
        {
            params.model = editor.id;
        }
    }

    /// Checks an edit against its engine and finds its image: the upload, else the stored
    /// result `params.source`; a parent deleted since an upload was sent starts a new chain.
    pub(super) async fn prepare_edit(
        &self,
        engine: &dyn Engine,
        params: &mut JobParams,
        upload: &mut Option<Upload>,
    ) -> Result<(), SubmitError> {
        if !engine.info().tasks.contains(&Mode::Edit) {
            let editors: Vec<String> = self
                .inner
                .registry
                .infos()
                .into_iter()
                .filter(|m| m.tasks.contains(&Mode::Edit))
                .map(|m| m.id)
                .collect();
            let have = if editors.is_empty() {
                "no editor is installed".to_string()
            } else {
                format!("editors here: {}", editors.join(", "))
            };
            return Err(SubmitError::Invalid(format!("{} does not edit images ({have})", params.model)));
        }
        if !params.segments.is_empty() {
            return Err(SubmitError::Invalid("an edit makes one image: it takes no shot list".into()));
        }
        if upload.is_none() {
            if params.source.is_empty() {
                return Err(SubmitError::Invalid(
                    "choose an image to edit: upload one, or give a stored image as the source".into(),
                ));
            }
            *upload = Some(self.source_image(params).await?);
        } else if !params.source.is_empty() && !self.inner.store.video_exists(params.source.clone()).await? {
            params.source.clear();
        }
        Ok(())
    }

    /// The image an edit starts from: the stored result `params.source` (an image, or the
    /// frame `params.source_frame` of a clip), as an upload.
    async fn source_image(&self, params: &JobParams) -> Result<Upload, SubmitError> {
        let id = &params.source;
        let missing = || SubmitError::Invalid(format!("there is no image {id:?} to edit"));
        if !app::types::is_valid_id(id) {
            return Err(missing());
        }
        let video = self.inner.store.video(id.to_string()).await?.ok_or_else(missing)?;
        let file = if video.is_image() {
            MediaFile::Image
        } else {
            let frames = video.metadata.frames.max(1);
            if params.source_frame >= frames {
                return Err(SubmitError::Invalid(format!(
                    "video {id} has {frames} frames; there is no frame {}",
                    params.source_frame
                )));
            }
            MediaFile::Frame(params.source_frame as usize)
        };
        let fetched = self
            .inner
            .media
            .get(&app::media_files::key(id, file), None)
            .await
            .map_err(|e| SubmitError::Internal(format!("reading the source image: {e}")))?
            .ok_or_else(|| SubmitError::Invalid(format!("{id} cannot be edited: its image is not stored")))?;
        Ok(Upload { bytes: fetched.bytes.to_vec(), name: file.name() })
    }

    /// The versions an edit was made from, the first edit's first and `id` last (empty when
    /// there is no such result); a chain is followed through edits only, at most
    /// [`MAX_CHAIN`] versions back.
    pub async fn chain(&self, id: &str) -> Result<Vec<Video>, StoreError> {
        let mut chain: Vec<Video> = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next.take() {
            if chain.len() >= MAX_CHAIN || chain.iter().any(|v| v.id == id) || !app::types::is_valid_id(&id) {
                break;
            }
            let Some(video) = self.inner.store.video(id).await? else { break };
            if video.mode == Mode::Edit && !video.params.source.is_empty() {
                next = Some(video.params.source.clone());
            }
            chain.push(video);
        }
        chain.reverse();
        Ok(chain)
    }
}
