//! Scores for results stored before they were measured (or measured by an older version),
//! then, with a CLIP model installed, what each stored clip shows: the generation thread does
//! them one at a time whenever the queue is empty, so new jobs never wait for it.

use crate::media::MediaStore;
use crate::storage::Store;
use crate::visual::Visual;
use app::scores::Scores;
use app::types::{JobParams, Mode};
use tokio::runtime::Handle;

/// How far a pass over the stored clips has come since the start.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The last id looked at (ids are taken in order).
    pub after: Option<String>,
    /// Every clip has been looked at.
    pub finished: bool,
    /// The same for embeddings (with a CLIP model).
    pub embed_after: Option<String>,
    pub embedded: bool,
}

/// Measures the next stored clip without scores after `after` and records its scores. Returns
/// its id (also when it could not be measured: its frames are gone, say, which is logged), or
/// `None` when no such clip is left. `reads_prompt` says whether a model reads its prompt word
/// by word (see [`super::of_result`]).
pub fn one(
    rt: &Handle,
    store: &dyn Store,
    media: &dyn MediaStore,
    reads_prompt: &dyn Fn(&str) -> bool,
    after: Option<String>,
) -> Result<Option<String>, String> {
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
    if let Some(mut scores) =
        super::of_result(&frames, input.as_ref(), &video.params, reads_prompt(&video.params.model))
    {
        // A clip embedded already keeps its CLIP score.
        if let Some(old) = video.scores.as_ref().and_then(|s| s.faithfulness.clone()).filter(|f| f.method == "clip") {
            scores.faithfulness = Some(old);
        }
        tracing::info!(%id, seconds = scores.seconds, "measured a stored clip");
        rt.block_on(store.set_scores(id.clone(), scores)).map_err(|e| e.to_string())?;
    }
    Ok(Some(id))
}

/// Gives `scores` the CLIP score of a clip (whose embedding is `embedding`) for its prompt,
/// unless its model reads its prompt word by word (`reads_prompt`: the concepts it knows judge
/// it better).
pub fn clip_faithfulness(
    visual: &Visual,
    embedding: &[f32],
    params: &JobParams,
    reads_prompt: bool,
    scores: Option<&mut Scores>,
) {
    if let Some(scores) = scores
        && !reads_prompt
        && !params.prompt.trim().is_empty()
    {
        scores.faithfulness = Some(visual.faithfulness(embedding, &params.prompt));
    }
}

/// Embeds the next stored clip without an embedding after `after` (and gives it its CLIP score);
/// returns its id, or `None` when no such clip is left.
pub fn embed_one(
    rt: &Handle,
    store: &dyn Store,
    media: &dyn MediaStore,
    visual: &Visual,
    reads_prompt: &dyn Fn(&str) -> bool,
    after: Option<String>,
) -> Result<Option<String>, String> {
    let ids = rt.block_on(store.unembedded_clips(visual.model_name.clone(), after, 1)).map_err(|e| e.to_string())?;
    let Some(id) = ids.into_iter().next() else { return Ok(None) };
    let Some(video) = rt.block_on(store.video(id.clone())).map_err(|e| e.to_string())? else {
        return Ok(Some(id));
    };
    let frames = match rt.block_on(crate::media::store::result_frames(media, &id, video.metadata.frames as usize)) {
        Ok(frames) if !frames.is_empty() => frames,
        Ok(_) => return Ok(Some(id)),
        Err(why) => {
            tracing::warn!(%id, "cannot embed a stored clip: {why}");
            return Ok(Some(id));
        }
    };
    let embedding = visual.embed_frames(&frames);
    let mut scores = video.scores.clone();
    clip_faithfulness(visual, &embedding, &video.params, reads_prompt(&video.params.model), scores.as_mut());
    if let Some(scores) = scores.filter(|s| Some(s) != video.scores.as_ref()) {
        rt.block_on(store.set_scores(id.clone(), scores)).map_err(|e| e.to_string())?;
    }
    rt.block_on(visual.remember(store, &id, embedding)).map_err(|e| e.to_string())?;
    Ok(Some(id))
}
