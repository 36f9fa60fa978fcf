//! Where jobs and videos are kept: the [`Store`] interface, its conformance suite, and the
//! SQLite implementation (one file in the data directory, with its migrations).
//!
//! Media files are not in the database: they live in the media store (see [`crate::media`]).
//! Another database (PostgreSQL) is one more module implementing [`Store`] and passing
//! [`conformance::run`].

pub mod conformance;
pub mod sqlite;

pub use sqlite::SqliteStore;

use app::scores::Scores;
use app::votes::Vote;
use app::types::{Job, Video, VideoPage, VideoQuery};
use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Most videos one gallery page returns.
pub const MAX_PAGE: u32 = 100;

/// Persistence for the job queue and the gallery.
pub trait Store: Send + Sync + 'static {
    /// Adds a queued job unless `limit` jobs are already queued; returns whether it was added.
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>>;
    fn job(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Job>>>;
    /// Most recent jobs first.
    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>>;
    /// Writes a job's state, progress, times, message and video id.
    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>>;
    /// Marks the oldest queued job running (started at `now_ms`) and returns it; atomic, so a
    /// job is never run twice or after it was cancelled.
    fn claim_next(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Option<Job>>>;
    /// Cancels a job if it is still queued; returns whether it was.
    fn cancel_queued(&self, id: String, now_ms: i64) -> BoxFuture<'_, StoreResult<bool>>;
    /// After a restart, jobs left running by a crash: one whose video is already in the gallery
    /// is done; one that was running during two crashes is failed; the rest go back to the queue.
    fn recover_interrupted(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Recovered>>;
    /// How many jobs are waiting.
    fn queued_count(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// The most recent distinct prompts, newest first.
    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>>;
    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>>;
    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>>;
    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// Returns false when there is no such video.
    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>>;
    /// Returns false when there is no such video.
    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// Records a clip's scores (what the gallery sorts and filters by follows them); returns
    /// false when there is no such video.
    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>>;
    /// Ids of clips (not still images) without scores of the current version, in id order
    /// after `after`: what the backfill measures.
    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Records what clip `id` shows, as `model`'s embedding; false when there is no such video.
    fn set_embedding(&self, id: String, model: String, vector: Vec<f32>) -> BoxFuture<'_, StoreResult<bool>>;
    /// Every stored embedding of `model`: (video id, vector).
    fn embeddings(&self, model: String) -> BoxFuture<'_, StoreResult<Vec<(String, Vec<f32>)>>>;
    /// Ids of clips without an embedding of `model`, in id order after `after`.
    fn unembedded_clips(&self, model: String, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Records a comparison's vote (checked against the gallery by the caller).
    fn insert_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<()>>;
    /// The most recent votes first.
    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>>;
}

/// What [`Store::recover_interrupted`] did, by job id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    pub done: Vec<String>,
    pub requeued: Vec<String>,
    pub failed: Vec<String>,
}

/// The message of a job failed because it was running during two crashes.
pub const CRASHED_TWICE: &str = "this job crashed the server twice; it is not run again";

