//! `vidplay migrate`: moves a single-machine gallery (SQLite and the local media folder in a
//! data directory) into a shared PostgreSQL database and media store (an S3 bucket).
//!
//! Each video's files are copied and checked (size and SHA-256) before its gallery record is
//! written, so a video is either wholly moved or not visible; a run that stops is resumed by
//! running it again (videos already there are checked, not copied again). A file the target
//! already holds with other content is never overwritten: it is reported as a conflict, and
//! its video is not moved. Votes, jobs (each in its final state, with the uploads of those
//! still waiting) and the data directory itself are left as they were: nothing is deleted from
//! the source.

use super::common::StoreArgs;
use crate::media::MediaStore;
use crate::media::object::ObjectMedia;
use crate::storage::{SqliteStore, Store};
use anyhow::{Context, bail};
use app::types::{Job, JobState, VideoQuery};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The data directory of the gallery to move (its vidplay.db and media).
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    stores: StoreArgs,
}

/// What a run did.
#[derive(Debug, Default, PartialEq)]
pub struct Moved {
    pub videos: usize,
    pub already_there: usize,
    pub files: usize,
    pub bytes: u64,
    pub votes: usize,
    pub jobs: usize,
    /// Keys the target holds with content other than the source's, left as they are.
    pub conflicts: Vec<String>,
}

pub fn run(a: MigrateArgs) -> anyhow::Result<()> {
    let url = a.stores.shared_database("vidplay migrate")?.to_string();
    let location = a.stores.media.clone().context("vidplay migrate needs --media (s3://BUCKET/PREFIX, or a folder)")?;
    let db = a.from.join("vidplay.db");
    if !db.is_file() {
        bail!("{} has no gallery to move (no vidplay.db)", a.from.display());
    }
    if location == crate::media::s3::MediaLocation::Local(a.from.clone()) {
        bail!("--media is the data directory itself; give the new location");
    }
    let faults = crate::faults::Faults::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let source = SqliteStore::open(&db).await?;
        let source_media = ObjectMedia::local(&a.from)?;
        let target = crate::storage::open(Some(&url), &a.from).await?;
        let target_media = crate::media::s3::open_location(&location, a.stores.media_endpoint.as_deref())?;
        let moved = migrate(&source, &source_media, target.as_ref(), &target_media, &faults).await?;
        let checked = if moved.conflicts.is_empty() { "every video checked" } else { "every other video checked" };
        println!(
            "moved {} videos ({} files, {:.1} MB), {} already there, {} votes and {} jobs to {} and {location}; {checked}",
            moved.videos,
            moved.files,
            moved.bytes as f64 / 1e6,
            moved.already_there,
            moved.votes,
            moved.jobs,
            crate::storage::postgres::redacted(&url)
        );
        if !moved.conflicts.is_empty() {
            bail!(
                "{} files in {location} differ from the source and were left as they are (their videos were not \
                 moved; compare them, remove the wrong copy, and run this again): {}",
                moved.conflicts.len(),
                moved.conflicts.join(", ")
            );
        }
        anyhow::Ok(())
    })
}

/// Moves every video (files, then record), then the votes and the jobs; checks each video's
/// files in the target against the source's.
pub async fn migrate(
    source: &dyn Store,
    source_media: &dyn MediaStore,
    target: &dyn Store,
    target_media: &dyn MediaStore,
    faults: &crate::faults::Faults,
) -> anyhow::Result<Moved> {
    let mut moved = Moved::default();
    let mut held_back = HashSet::new();
    let mut before = None;
    loop {
        let page = source
            .videos(VideoQuery { limit: crate::storage::MAX_PAGE, before: before.clone(), ..Default::default() })
            .await?;
        for video in &page.videos {
            let present = target.video_exists(video.id.clone()).await?;
            let files = copy_files(source_media, target_media, &video.id).await?;
            if !files.conflicts.is_empty() {
                held_back.insert(video.id.clone());
                for key in &files.conflicts {
                    tracing::warn!(key, "the target holds other content under this name; left as it is");
                }
                moved.conflicts.extend(files.conflicts);
                continue;
            }
            if present {
                moved.already_there += 1;
            } else {
                moved.files += files.copied;
                moved.bytes += files.bytes;
                target.insert_video(video.clone()).await.with_context(|| format!("saving video {}", video.id))?;
                moved.videos += 1;
                faults.after_moved(moved.videos);
            }
            // Also for a video already there: a run stopped between its record and these.
            for person in source.favorited_by(video.id.clone()).await? {
                target.set_favorite(person, video.id.clone(), true).await?;
            }
        }
        before = page.next;
        if before.is_none() {
            break;
        }
    }
    let known: HashSet<String> = target.votes(u32::MAX).await?.into_iter().map(|v| v.id).collect();
    for vote in source.votes(u32::MAX).await? {
        if !known.contains(&vote.id) {
            // The comparison it names first (votes of earlier versions name none).
            if let Some(id) = &vote.comparison
                && let Some(comparison) = source.comparison(id.clone()).await?
            {
                target.open_comparison(comparison).await?;
            }
            target.cast_vote(vote).await?;
            moved.votes += 1;
        }
    }
    // The jobs of videos left behind for a conflict stay behind too (a finished job there
    // would name a video that is not).
    for job in source.jobs(u32::MAX).await? {
        let of_held_back = held_back.contains(&job.id) || job.video_id.as_ref().is_some_and(|v| held_back.contains(v));
        if of_held_back || target.job(job.id.clone()).await?.is_some() {
            continue;
        }
        // What it still needs: the upload of a job that has not run, the kept latents of one
        // whose decode failed or is to run again.
        let mut needed = Vec::new();
        if !job.state.is_finished() {
            needed.extend(app::media_files::upload_keys(&job.id));
        }
        if job.state == JobState::DecodeFailed || job.decodes_again() {
            needed.push(app::media_files::latents_key(&job.id));
        }
        let mut conflict = false;
        for key in needed {
            if let Some(f) = source_media.get(&key, None).await? {
                match target_media.get(&key, None).await? {
                    None => target_media.put(&key, f.bytes).await?,
                    Some(there) if there.bytes == f.bytes => {}
                    Some(_) => {
                        moved.conflicts.push(key);
                        conflict = true;
                    }
                }
            }
        }
        if conflict {
            continue;
        }
        // In its final state, in one statement: a finished job is never queued meanwhile, where a
        // live worker could take it. A job a crash left running waits again.
        let job = if job.state == JobState::Running {
            Job { state: JobState::Queued, started_ms: None, step: 0, ..job }
        } else {
            job
        };
        if target.import_job(job).await? {
            moved.jobs += 1;
        }
    }
    Ok(moved)
}

/// What [`copy_files`] did for one video.
#[derive(Default)]
struct Copied {
    copied: usize,
    bytes: u64,
    /// Keys the target holds with other content (not overwritten).
    conflicts: Vec<String>,
}

/// Copies video `id`'s files the target lacks, and checks each in the target against the
/// source by size and SHA-256; one the target holds with other content is a conflict, left as
/// it is.
async fn copy_files(from: &dyn MediaStore, to: &dyn MediaStore, id: &str) -> anyhow::Result<Copied> {
    let mut copied = Copied::default();
    for key in from.list(&app::media_files::result_prefix(id)).await? {
        let source = from.get(&key, None).await?.with_context(|| format!("{key} vanished while moving"))?.bytes;
        let digest = Sha256::digest(&source);
        if let Some(there) = to.get(&key, None).await?.map(|f| f.bytes) {
            if there.len() != source.len() || Sha256::digest(&there) != digest {
                copied.conflicts.push(key);
            }
        } else {
            to.put(&key, source.clone()).await?;
            let back = to
                .get(&key, None)
                .await?
                .with_context(|| format!("{key} is missing right after it was written"))?
                .bytes;
            if Sha256::digest(&back) != digest {
                bail!("{key} differs from the source after copying");
            }
            copied.copied += 1;
            copied.bytes += source.len() as u64;
        }
    }
    Ok(copied)
}
