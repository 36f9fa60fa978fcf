//! Edits: which editor an edit goes to, the image it starts from (an upload, or a stored image
//! or frame: its parent), and the chain of versions an edited image was made from.

use super::SubmitError;
use super::submit::{Intake, Picture};
use crate::engines::Engine;
use crate::storage::{Store, StoreError};
use app::media_files::MediaFile;
use app::types::{JobParams, Mode, Video};

/// The most versions [`chain`] follows back.
pub const MAX_CHAIN: usize = 200;

impl Intake {
    /// An edit without a model goes to the first editor (a named model that does not edit is
    /// refused by [`Intake::prepare_edit`], naming the editors).
    pub(super) fn route_edit(&self, params: &mut JobParams) {
        if params.task == app::params::EDIT_TASK
            && params.model.is_empty()
            && let Some(editor) = self.registry.infos().into_iter().find(|m| m.tasks.contains(&Mode::Edit))
        {
            params.model = editor.id;
        }
    }

    /// Checks an edit against its engine and finds its image: the picture given, else the
    /// stored result `params.source` (its image, or its frame `params.source_frame`); a parent
    /// deleted since a picture was sent starts a new chain.
    pub(super) async fn prepare_edit(
        &self,
        engine: &dyn Engine,
        params: &mut JobParams,
        picture: &mut Option<Picture>,
    ) -> Result<(), SubmitError> {
        if !engine.info().tasks.contains(&Mode::Edit) {
            let editors: Vec<String> =
                self.registry.infos().into_iter().filter(|m| m.tasks.contains(&Mode::Edit)).map(|m| m.id).collect();
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
        if picture.is_none() {
            if params.source.is_empty() {
                return Err(SubmitError::Invalid(
                    "choose an image to edit: upload one, or give a stored image as the source".into(),
                ));
            }
            let file = MediaFile::Frame(params.source_frame as usize);
            *picture = Some(Picture::Stored { id: params.source.clone(), file });
        } else if !params.source.is_empty() && !self.store.video_exists(params.source.clone()).await? {
            params.source.clear();
        }
        Ok(())
    }
}

/// The versions an edit was made from, the first edit's first and `id` last (empty when there
/// is no such result); a chain is followed through edits only, at most [`MAX_CHAIN`] versions
/// back.
pub async fn chain(store: &dyn Store, id: &str) -> Result<Vec<Video>, StoreError> {
    let mut chain: Vec<Video> = Vec::new();
    let mut next = Some(id.to_string());
    while let Some(id) = next.take() {
        if chain.len() >= MAX_CHAIN || chain.iter().any(|v| v.id == id) || !app::types::is_valid_id(&id) {
            break;
        }
        let Some(video) = store.video(id).await? else { break };
        if video.mode == Mode::Edit && !video.params.source.is_empty() {
            next = Some(video.params.source.clone());
        }
        chain.push(video);
    }
    chain.reverse();
    Ok(chain)
}
