//! What the stores must look like after any crash: at start, the results of this store's
//! finished jobs that have no gallery record (written just before a crash, or whose removal
//! failed), the files of its finished jobs' runs, the uploads of its jobs that will never run
//! again and the sampled latents of its jobs that will never decode them again are removed. Nothing else is:
//! a media folder or bucket may be shared with other stores (a lab's gallery, another
//! playground), so an id this store does not know is never its to delete.

use crate::media::MediaStore;
use crate::media::store::{delete_prefix, result_ids};
use crate::storage::{Store, StoreError};
use app::media_files::{ATTEMPTS, LATENTS, UPLOADS, attempts_prefix, result_prefix};
use app::types::JobState;
use app::types::is_valid_id;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
}

/// Whether this store made `id`'s job and is done with it: finished (a running or waiting
/// job's files may be in the making, by a worker elsewhere).
async fn finished_here(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    Ok(is_valid_id(id) && store.job(id.to_string()).await?.is_some_and(|job| job.state.is_finished()))
}

/// Removes the files this store's jobs left behind (run once at start, after
/// [`Store::recover_interrupted`]). Returns how many results and uploads were removed.
pub async fn clean_orphans(store: &dyn Store, media: &dyn MediaStore) -> Result<usize, RecoveryError> {
    let mut removed = 0;
    // Removal is best effort: what cannot be removed is logged and left alone, and never stops
    // the start.
    for folder in result_ids(media).await? {
        // Folders of older versions (`ID.partial`, `ID.deleted-...`) belong to job ID.
        let id = folder.split_once('.').map_or(folder.as_str(), |(id, _)| id);
        if !finished_here(store, id).await? {
            continue;
        }
        if folder == id && store.video_exists(id.to_string()).await? {
            continue;
        }
        tracing::warn!(folder, "removing media left by a crash or a failed removal");
        match delete_prefix(media, &result_prefix(&folder)).await {
            Ok(_) => removed += 1,
            Err(e) => tracing::warn!(folder, "cannot remove it: {e}"),
        }
    }
    for key in media.list(&format!("{UPLOADS}/")).await? {
        let id = app::media_files::upload_job(&key).unwrap_or_default();
        if finished_here(store, id).await? {
            tracing::warn!(key, "removing the upload of a job that will not run again");
            match media.delete(&key).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(key, "cannot remove it: {e}"),
            }
        }
    }
    // Runs' own files (attempts/ID/RUN/...): the job's result is published from them, so once
    // the job is finished they are not needed.
    let mut runs: Vec<String> = media
        .list(&format!("{ATTEMPTS}/"))
        .await?
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{ATTEMPTS}/"))?.split('/').next().map(str::to_string))
        .collect();
    runs.sort();
    runs.dedup();
    for id in runs {
        if finished_here(store, &id).await? {
            tracing::warn!(id, "removing the files of runs of a finished job");
            match delete_prefix(media, &attempts_prefix(&id)).await {
                Ok(_) => removed += 1,
                Err(e) => tracing::warn!(id, "cannot remove them: {e}"),
            }
        }
    }
    for key in media.list(&format!("{LATENTS}/")).await? {
        let id =
            key.strip_prefix(&format!("{LATENTS}/")).and_then(|n| n.strip_suffix(".safetensors")).unwrap_or_default();
        // A decode-failed job's latents wait for a retry; a running one's are being decoded.
        let needless = is_valid_id(id)
            && store
                .job(id.to_string())
                .await?
                .is_some_and(|job| job.state.is_finished() && job.state != JobState::DecodeFailed);
        if needless {
            tracing::warn!(key, "removing the latents of a job that will not decode them again");
            match media.delete(&key).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(key, "cannot remove them: {e}"),
            }
        }
    }
    Ok(removed)
}

/// Removes a deleted video's files. Its gallery record is gone first, so nothing serves them
/// meanwhile; a removal that fails is finished at the next start.
pub async fn remove_media(media: &dyn MediaStore, id: &str) {
    if let Err(e) = delete_prefix(media, &result_prefix(id)).await {
        tracing::warn!(id, "removing a deleted video's files (retried at the next start): {e}");
    }
}
