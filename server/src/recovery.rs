//! What the data directory must look like after any crash, and the file moves that keep it so:
//! at start, media folders without a gallery record, half-written `.partial` folders, folders
//! of deleted videos and uploads of jobs that will never run again are removed.

use crate::storage::{Store, StoreError};
use app::types::is_valid_id;
use std::path::{Path, PathBuf};

/// Where a job's normalised input image waits until the job has run.
pub fn upload_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("uploads").join(format!("{id}.png"))
}

/// A deleted video's folder, moved aside so nothing serves it while it is removed.
const DELETED: &str = ".deleted";

/// Removes every file the store does not account for (run once at start, after
/// [`Store::recover_interrupted`]). Returns how many entries were removed.
pub async fn clean_orphans(store: &dyn Store, data_dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in read_dir(&data_dir.join("media")) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = if name.ends_with(".partial") || name.contains(DELETED) {
            true
        } else if is_valid_id(&name) {
            // Renamed into place, but the crash came before the gallery knew of it.
            !store.video_exists(name.clone()).await?
        } else {
            false
        };
        if orphan {
            tracing::warn!(name, "removing media left by a crash or a failed removal");
            removed += remove(&entry.path());
        }
    }
    for entry in read_dir(&data_dir.join("uploads")) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".png") else { continue };
        if !is_valid_id(id) {
            continue;
        }
        let waiting = store.job(id.to_string()).await?.is_some_and(|job| !job.state.is_finished());
        if !waiting {
            tracing::warn!(name, "removing the upload of a job that will not run again");
            removed += remove(&entry.path());
        }
    }
    Ok(removed)
}

/// Moves a video's folder aside at once, then removes it; a removal that fails is finished at
/// the next start.
pub async fn remove_media(media_dir: &Path, id: &str) {
    let dir = media_dir.join(id);
    let aside = media_dir.join(format!("{id}{DELETED}-{}", crate::jobs::new_id()));
    let target = match tokio::fs::rename(&dir, &aside).await {
        Ok(()) => aside,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(id, "moving a deleted video's files aside: {e}");
            dir
        }
    };
    if let Err(e) = tokio::fs::remove_dir_all(&target).await {
        tracing::warn!(id, "removing a deleted video's files (retried at the next start): {e}");
    }
}

fn read_dir(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().collect()).unwrap_or_default()
}

fn remove(path: &Path) -> usize {
    let result = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Ok(()) => 1,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot remove: {e}");
            0
        }
    }
}
