//! Scores for results stored before they were measured (or measured by an older version):
//! the generation thread measures them one at a time whenever the queue is empty, so new jobs
//! never wait for it.

use crate::media::MediaStore;
use crate::storage::Store;
use app::types::Mode;
use tokio::runtime::Handle;

/// How far a pass over the stored clips has come since the start.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The last id looked at (ids are taken in order).
    pub after: Option<String>,
    /// Every clip has been looked at.
    pub finished: bool,
}

/// Measures the next stored clip without scores after `after` and records its scores. Returns
/// its id (also when it could not be measured: its frames are gone, say, which is logged), or
/// `None` when no such clip is left.
pub fn one(rt: &Handle, store: &dyn Store, media: &dyn MediaStore, after: Option<String>) -> Result<Option<String>, String> {
    let ids = rt.block_on(store.unscored_clips(after, 1)).map_err(|e| e.to_string())?;
    let Some(id) = ids.into_iter().next() else { return Ok(None) };
    let Some(video) = rt.block_on(store.video(id.clone())).map_err(|e| e.to_string())? else {
        return Ok(Some(id));
    };
    let frames = match rt.block_on(crate::media::store::result_frames(media, &id, video.metadata.frames as usize)) {
        Ok(frames) => frames,
        Err(why) => {
            tracing::warn!(%id, "cannot measure a stored clip: {why}");
            return Ok(Some(id));
        }
    };
    let input = if video.mode == Mode::ImageToVideo {
        let key = app::media_files::key(&id, app::media_files::MediaFile::Input);
        rt.block_on(media.get(&key, None))
            .ok()
            .flatten()
            .and_then(|f| crate::media::input::decode(&f.bytes, "a stored input").ok())
    } else {
        None
    };
    if let Some(scores) = super::of_result(&frames, input.as_ref(), &video.params) {
        tracing::info!(%id, seconds = scores.seconds, "measured a stored clip");
        rt.block_on(store.set_scores(id.clone(), scores)).map_err(|e| e.to_string())?;
    }
    Ok(Some(id))
}
