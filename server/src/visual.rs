//! Visual search and CLIP scores: the installed CLIP model (a CLIPModel folder in the models
//! directory or the Hugging Face cache), what every clip shows as an embedding (a few frames'
//! CLIP image embeddings, averaged; computed once and stored with the video), and the search
//! that compares a query's text embedding with all of them (brute-force cosine, in memory).
//! Search texts stay off the worker's path: their embeddings are cached, the model is shared
//! for reading (a search does not wait while a clip is embedded), and each client may bring
//! only so many new texts a minute (beyond that its searches match words only, for a while).

use crate::limits::Quota;
use crate::storage::{Store, StoreError};
use app::scores::Faithfulness;
use app::types::{VideoPage, VideoQuery, VisualMatch};
use image::RgbImage;
use model::device::OpenedDevice;
use model::diffusers::clip::model::ClipModel;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Search texts whose embeddings are kept.
const CACHED_TEXTS: usize = 1024;
/// New search texts (not cached) a client may have embedded per [`NEW_TEXT_WINDOW`].
pub const NEW_TEXTS: u32 = 30;
const NEW_TEXT_WINDOW: Duration = Duration::from_secs(60);

/// Frames of a clip embedded (evenly spread, first and last included).
pub const FRAMES_EMBEDDED: usize = 4;
/// Below this cosine similarity a clip does not match a search (CLIP's text-image similarities
/// of related pairs are about 0.2-0.35).
pub const MIN_SIMILARITY: f32 = 0.2;

pub struct Visual {
    /// The CLIP model's name (its folder or repository), under which embeddings are stored.
    pub model_name: String,
    /// Read by searches and the worker at once (a forward pass only reads the weights).
    model: RwLock<ClipModel>,
    device: OpenedDevice,
    /// Text embeddings of recent search texts, with when each was last used.
    texts: Mutex<HashMap<String, (u64, Vec<f32>)>>,
    /// New search texts per client.
    new_texts: Quota,
    /// (video id, normalised embedding) of every embedded clip.
    index: RwLock<crate::storage::Embeddings>,
    min_similarity: f32,
}

impl Visual {
    /// The first installed CLIP model, loaded on the CPU with the stored embeddings; `None`
    /// (logged) when there is none or it cannot be loaded.
    pub async fn start(models_dir: Option<&Path>, store: &dyn Store, min_similarity: f32) -> Option<Arc<Visual>> {
        let (name, path) = model::diffusers::common::folder::installed_clip(models_dir).into_iter().next()?;
        let device = model::device::open(model::device::DeviceChoice::Cpu).ok()?;
        let loaded = {
            let (path, device) = (path.clone(), device.device.clone());
            tokio::task::spawn_blocking(move || ClipModel::load_dir(&path, &device)).await.ok()?
        };
        let clip = match loaded {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(name, path = %path.display(), "the CLIP model cannot be loaded; no visual search: {e}");
                return None;
            }
        };
        let index = match store.embeddings(name.clone()).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!("reading stored clip embeddings: {e}");
                Vec::new()
            }
        };
        tracing::info!(name, clips = index.len(), "visual search with CLIP");
        Some(Arc::new(Visual {
            model_name: name,
            model: RwLock::new(clip),
            device,
            texts: Mutex::default(),
            new_texts: Quota::new(NEW_TEXTS, NEW_TEXT_WINDOW),
            index: RwLock::new(index),
            min_similarity,
        }))
    }

    /// What `frames` show: the normalised mean of a few frames' normalised CLIP embeddings.
    pub fn embed_frames(&self, frames: &[RgbImage]) -> Vec<f32> {
        let n = frames.len();
        let picks: Vec<RgbImage> = (0..FRAMES_EMBEDDED.min(n))
            .map(|k| if FRAMES_EMBEDDED.min(n) == 1 { 0 } else { k * (n - 1) / (FRAMES_EMBEDDED.min(n) - 1) })
            .map(|i| frames[i].clone())
            .collect();
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        let embeddings = model.image_embeddings(&picks, &self.device.device);
        let dim = embeddings.first().map_or(0, Vec::len);
        let mut mean = vec![0.0f32; dim];
        for e in &embeddings {
            mean.iter_mut().zip(e).for_each(|(m, x)| *m += x);
        }
        unit(mean)
    }

    /// A text's normalised CLIP embedding.
    pub fn embed_text(&self, text: &str) -> Vec<f32> {
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        model.text_embeddings(&[text], &self.device.device).and_then(|mut e| e.pop()).unwrap_or_default()
    }

    /// A search text's embedding: from the cache, else embedded when `client` may have another
    /// new text embedded now (`None` when it may not).
    pub async fn search_text(self: &Arc<Self>, text: &str, client: &str) -> Option<Vec<f32>> {
        let key = text.trim().to_lowercase();
        let tick = crate::ids::now_ms() as u64;
        if let Some((used, embedding)) = self.texts.lock().expect("texts lock").get_mut(&key) {
            *used = tick;
            return Some(embedding.clone());
        }
        self.new_texts.try_spend(client).ok()?;
        let (this, text) = (self.clone(), key.clone());
        let embedding = tokio::task::spawn_blocking(move || this.embed_text(&text)).await.ok()?;
        let mut texts = self.texts.lock().expect("texts lock");
        if texts.len() >= CACHED_TEXTS
            && let Some(oldest) = texts.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| k.clone())
        {
            texts.remove(&oldest);
        }
        texts.insert(key, (tick, embedding.clone()));
        Some(embedding)
    }

    /// The CLIP score of a clip for its prompt: the cosine similarity of the two embeddings.
    pub fn faithfulness(&self, frames_embedding: &[f32], prompt: &str) -> Faithfulness {
        let similarity = dot(frames_embedding, &self.embed_text(prompt));
        Faithfulness { method: "clip".into(), score: similarity.max(0.0), concepts: Vec::new() }
    }

    /// Records a clip's embedding (store first, then the in-memory index).
    pub async fn remember(&self, store: &dyn Store, id: &str, vector: Vec<f32>) -> Result<(), StoreError> {
        if store.set_embedding(id.to_string(), self.model_name.clone(), vector.clone()).await? {
            let mut index = self.index.write().expect("index lock");
            index.retain(|(v, _)| v != id);
            index.push((id.to_string(), vector));
        }
        Ok(())
    }

    /// The clips most like `query` (a normalised text embedding), best first, at least the
    /// minimum similarity, at most `limit`.
    pub fn nearest(&self, query: &[f32], limit: usize) -> Vec<VisualMatch> {
        nearest(&self.index.read().expect("index lock"), query, self.min_similarity, limit)
    }
}

/// The entries of `index` most like `query` (cosine of normalised vectors), best first, at
/// least `min_similarity`, at most `limit`: a scan of them all.
pub fn nearest(index: &[(String, Vec<f32>)], query: &[f32], min_similarity: f32, limit: usize) -> Vec<VisualMatch> {
    let mut hits: Vec<(usize, f32)> =
        index.iter().enumerate().map(|(i, (_, v))| (i, dot(query, v))).filter(|(_, s)| *s >= min_similarity).collect();
    let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(index[a.0].0.cmp(&index[b.0].0));
    if hits.len() > limit {
        hits.select_nth_unstable_by(limit, by_score);
        hits.truncate(limit);
    }
    hits.sort_by(by_score);
    hits.into_iter().map(|(i, similarity)| VisualMatch { id: index[i].0.clone(), similarity }).collect()
}

/// A search's first page with visual matches merged in: the prompt matches as the store finds
/// them, then clips found by what they show that the words did not find, best first, marked in
/// `visual`. Only a first page, newest-first search with words gets visual matches, and only
/// when `client` may have its text embedded ([`Visual::search_text`]). Favourites are those of
/// `query.favorites_of`.
pub async fn search(
    store: &dyn Store,
    visual: Option<&Arc<Visual>>,
    query: VideoQuery,
    client: &str,
) -> Result<VideoPage, StoreError> {
    let wants_visual =
        !query.q.trim().is_empty() && query.before.is_none() && query.sort == app::scores::GallerySort::Newest;
    let limit = query.limit.clamp(1, crate::storage::MAX_PAGE) as usize;
    let mut page = store.videos(query.clone()).await?;
    let person = &query.favorites_of;
    crate::storage::mark_favorites(store, person, &mut page.videos).await?;
    let Some(visual) = visual.filter(|_| wants_visual) else { return Ok(page) };
    let Some(embedding) = visual.search_text(&query.q, client).await else { return Ok(page) };
    let (mut hits, mut videos) = (Vec::new(), Vec::new());
    for hit in visual.nearest(&embedding, limit) {
        if page.videos.iter().any(|v| v.id == hit.id) {
            continue;
        }
        if let Some(video) = store.video(hit.id.clone()).await? {
            hits.push(hit);
            videos.push(video);
        }
    }
    // The matches' favourites in one query, before the favourites filter reads them.
    crate::storage::mark_favorites(store, person, &mut videos).await?;
    for (hit, video) in hits.into_iter().zip(videos) {
        // The page's filters hold for visual matches too.
        let fits = query.mode.is_none_or(|m| m == video.mode)
            && query.model.as_ref().is_none_or(|m| *m == video.params.model)
            && (!query.favorites || video.favorite)
            && query.group.as_ref().is_none_or(|g| *g == video.params.group)
            && query.flag.is_none_or(|f| video.scores.as_ref().is_some_and(|s| s.flag() == f));
        if fits {
            page.videos.push(video);
            page.visual.push(hit);
        }
    }
    Ok(page)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_ranks_filters_and_cuts() {
        let index: Vec<(String, Vec<f32>)> =
            [("a", [1.0, 0.0]), ("b", [0.6, 0.8]), ("c", [0.0, 1.0]), ("d", [-1.0, 0.0])]
                .into_iter()
                .map(|(id, v)| (id.to_string(), v.to_vec()))
                .collect();
        let ids = |hits: Vec<app::types::VisualMatch>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(super::nearest(&index, &[1.0, 0.0], -1.0, 10)), ["a", "b", "c", "d"]);
        assert_eq!(ids(super::nearest(&index, &[1.0, 0.0], 0.5, 10)), ["a", "b"]);
        assert_eq!(ids(super::nearest(&index, &[0.0, 1.0], -1.0, 2)), ["c", "b"]);
    }
}
