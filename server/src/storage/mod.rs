//! Where jobs and videos are kept: the [`Store`] interface (one trait per concern: the queue,
//! what workers hold, what processes tell each other, the gallery, scores, embeddings, votes),
//! its conformance suite, and its two implementations: SQLite (one file in the data directory,
//! the embedded default) and PostgreSQL (a shared database for a web node and GPU workers on
//! other machines). Both keep their own migrations, cut into the same modules, and pass
//! `conformance::run` (built with the `testkit` feature, as the tests build it).
//!
//! Media files are not in the database: they live in the media store (see [`crate::media`]).

#[cfg(feature = "testkit")]
pub mod conformance;
pub mod postgres;
pub mod rows;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use app::scores::{GallerySort, Scores};
use app::types::{Job, Video, VideoPage, VideoQuery, WorkerStatus};
use app::votes::{Comparison, GroupBy, PairCount, Vote};
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

/// Stored embeddings of one model: (video id, vector) per clip.
pub type Embeddings = Vec<(String, Vec<f32>)>;

/// An embedding as both stores keep it: little-endian f32s in a blob.
fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The embedding in a blob written by [`vector_bytes`].
fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.as_chunks::<4>().0.iter().map(|c| f32::from_le_bytes(*c)).collect()
}

/// Opens the store: the PostgreSQL database at `database_url`, or SQLite in `data_dir`.
pub async fn open(
    database_url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match database_url.filter(|u| !u.is_empty()) {
        Some(url) if postgres::is_postgres_url(url) => {
            std::sync::Arc::new(PostgresStore::connect(url, std::time::Duration::from_secs(30)).await?)
        }
        Some(url) => {
            return Err(StoreError::Database(format!(
                "{} is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
                postgres::redacted(url)
            )));
        }
        None => std::sync::Arc::new(SqliteStore::open(&data_dir.join("vidplay.db")).await?),
    })
}

/// Most videos one gallery page returns.
pub const MAX_PAGE: u32 = 100;

/// The words of a gallery search, lowercased (at most 16): every one must begin a word of a
/// matching prompt. Anything but letters and digits separates words, so no search is a syntax
/// error in either database's query language.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(16).map(str::to_lowercase).collect()
}

/// The column a gallery order sorts by, and whether it goes down (`None`: newest first).
pub fn sort_column(sort: GallerySort) -> Option<(&'static str, bool)> {
    match sort {
        GallerySort::Newest => None,
        GallerySort::MostMotion => Some(("motion", true)),
        GallerySort::LeastMotion => Some(("motion", false)),
        GallerySort::Sharpest => Some(("sharpness", true)),
        GallerySort::Smoothest => Some(("smoothness", true)),
        GallerySort::MostConsistent => Some(("consistency", true)),
    }
}

/// Marks which of `videos` are `person`'s favourites (the stores leave `favorite` unset: it
/// depends on who asks).
pub async fn mark_favorites(store: &dyn Store, person: &str, videos: &mut [Video]) -> StoreResult<()> {
    if videos.is_empty() {
        return Ok(());
    }
    let ids = videos.iter().map(|v| v.id.clone()).collect();
    let favorites = store.favorites_among(person.to_string(), ids).await?;
    for video in videos {
        video.favorite = favorites.contains(&video.id);
    }
    Ok(())
}

/// A stored record that cannot be read back.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The message of a job whose stored record cannot be read.
pub fn unreadable_job(why: &str) -> String {
    format!("this job's stored record cannot be read ({why})")
}

/// Persistence for the job queue and the gallery, each concern its own trait; every store
/// implements them all (and passes `conformance::run`).
pub trait Store:
    JobStore + LeaseStore + NoticeStore + GalleryStore + ScoreStore + EmbeddingStore + VoteStore + 'static
{
}

impl<T> Store for T where
    T: JobStore + LeaseStore + NoticeStore + GalleryStore + ScoreStore + EmbeddingStore + VoteStore + 'static
{
}

/// The job queue: jobs added, read, claimed, cancelled and recovered after a crash.
pub trait JobStore: Send + Sync {
    /// Adds a queued job unless `limit` jobs of its owner are already queued; returns whether
    /// it was added.
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>>;
    /// Adds a job as it is, in its state, in one statement (so a finished job moved here is
    /// never waiting meanwhile for a worker to take); returns false when its id is here already.
    fn import_job(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>>;
    fn job(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Job>>>;
    /// Most recent jobs first.
    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>>;
    /// Writes a job's state, progress, times, message and video id.
    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>>;
    /// Marks the oldest queued job running (started at `now_ms`) and returns it; atomic, so a
    /// job is never run twice or after it was cancelled. No lease: for the one worker of an
    /// embedded store, which [`JobStore::recover_interrupted`] recovers after a crash.
    fn claim_next(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        self.claim(Claim { worker: String::new(), now_ms, lease_ms: None, models: Vec::new(), loaded: Vec::new() })
    }
    /// Marks a queued job running for `claim.worker` and returns it: only jobs for
    /// `claim.models` (all when empty); of the owner served least recently (round-robin
    /// between owners), those for `claim.loaded` first, then the oldest.
    /// Atomic: two workers never take the same job, and a cancelled job is never taken.
    fn claim(&self, claim: Claim) -> BoxFuture<'_, StoreResult<Option<Job>>>;
    /// Cancels a job if it is still queued; returns whether it was.
    fn cancel_queued(&self, id: String, now_ms: i64) -> BoxFuture<'_, StoreResult<bool>>;
    /// Queues a decode-failed job again to decode its kept latents ([`Job::decodes_again`]),
    /// one more retry counted; returns false when it is not decode-failed (any more: atomic, so
    /// two asks queue it once).
    fn retry_decode(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// After a restart, jobs left running by a crash: one whose video is already in the gallery
    /// is done; one that was running during two crashes is failed; the rest go back to the queue.
    fn recover_interrupted(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Recovered>>;
    /// How many jobs are waiting.
    fn queued_count(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// How many jobs of `owner` are waiting.
    fn queued_count_of(&self, owner: String) -> BoxFuture<'_, StoreResult<u64>>;
    /// The most recent distinct prompts, newest first.
    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}

/// What workers sharing a store hold: leases on running jobs, cancels asked of them, their
/// progress and heartbeats.
pub trait LeaseStore: Send + Sync {
    /// Extends the lease of running job `id` held by `worker` to `until_ms`; says whether the
    /// worker still holds it and whether a cancel was asked for.
    fn renew_lease(&self, id: String, worker: String, until_ms: i64) -> BoxFuture<'_, StoreResult<Lease>>;
    /// Asks the worker running job `id` to stop (it sees this at its next step or heartbeat);
    /// returns whether the job is running.
    fn request_cancel(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// Writes a job's result like [`JobStore::update_job`], but only while `worker` holds it (a
    /// worker whose lease expired must not overwrite the job another worker took over);
    /// returns whether it did.
    fn finish_job(&self, job: Job, worker: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// Running jobs whose lease ended before `now_ms` (their worker died or lost the
    /// database): one whose video is in the gallery is done; one taken `max_attempts` times is
    /// failed; the rest go back to the queue.
    fn requeue_expired(&self, now_ms: i64, max_attempts: u32) -> BoxFuture<'_, StoreResult<Recovered>>;
    /// Records a worker's heartbeat (what it runs, which models it has loaded).
    fn worker_seen(&self, status: WorkerStatus) -> BoxFuture<'_, StoreResult<()>>;
    /// Workers seen at or after `since_ms`, most recently seen first.
    fn workers(&self, since_ms: i64) -> BoxFuture<'_, StoreResult<Vec<WorkerStatus>>>;
    /// Records a running job's progress while `worker` holds it; returns whether it does.
    fn save_progress(&self, id: String, worker: String, step: u32, total: u32) -> BoxFuture<'_, StoreResult<bool>>;
    /// Decides that run `attempt` of job `id` made the job's result, while `worker` holds the
    /// job (the fence: a worker that lost the job decides nothing). Returns the run whose
    /// files are the job's result: `attempt`, or a run decided before (its files are the
    /// result, whoever finishes the job); `None` when `worker` does not hold the job.
    fn decide_result(&self, id: String, worker: String, attempt: String) -> BoxFuture<'_, StoreResult<Option<String>>>;
    /// Records that running job `id` has sampled latents kept (its decode retries counted from
    /// 0), while `worker` holds it: a crash from then on leaves it decode-failed, not failed.
    fn latents_kept(&self, id: String, worker: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// The run decided to be job `id`'s result ([`LeaseStore::decide_result`]), if any.
    fn decided_result(&self, id: String) -> BoxFuture<'_, StoreResult<Option<String>>>;
}

/// What processes sharing a store tell each other (nothing to tell when not shared).
pub trait NoticeStore: Send + Sync {
    /// Whether other processes (workers on other machines) share this store: then jobs are
    /// held by leases, and what happens is announced to every process ([`NoticeStore::announce`]).
    fn shared(&self) -> bool;
    /// Tells every process listening ([`NoticeStore::notices`]) what happened; a step's preview (a
    /// data URL) is kept for them to read ([`NoticeStore::preview`]). Nothing to do when not shared.
    fn announce(&self, notice: Notice, preview: Option<String>) -> BoxFuture<'_, StoreResult<()>>;
    /// What other processes announce, from now on; `None` when not shared. The stream goes on
    /// across lost connections (announcements made meanwhile are missed; a
    /// [`NoticeKind::Reconnected`] says so).
    fn notices(&self) -> BoxFuture<'_, StoreResult<Option<futures_util::stream::BoxStream<'static, Notice>>>>;
    /// The last preview announced for job `id`.
    fn preview(&self, id: String) -> BoxFuture<'_, StoreResult<Option<String>>>;
}

/// The gallery: finished results, searched and paged in gallery order.
pub trait GalleryStore: Send + Sync {
    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// Adds a result to the gallery; `favorite` makes it one of its owner's favourites.
    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>>;
    /// A result, with `favorite` unset: favourites depend on who asks ([`mark_favorites`]).
    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>>;
    /// A page of results, with `favorite` unset, as for [`GalleryStore::video`].
    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>>;
    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// Marks video `id` as one of `person`'s favourites, or unmarks it (`person`: a named
    /// token's name, empty for everyone else). Returns false when there is no such video.
    fn set_favorite(&self, person: String, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>>;
    /// Which of `ids` are `person`'s favourites.
    fn favorites_among(&self, person: String, ids: Vec<String>) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Whose favourite video `id` is (what `vidplay migrate` moves with it).
    fn favorited_by(&self, id: String) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Returns false when there is no such video.
    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
}

/// Clip scores, and the clips the backfill still has to measure.
pub trait ScoreStore: Send + Sync {
    /// Records a clip's scores (what the gallery sorts and filters by follows them); returns
    /// false when there is no such video.
    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>>;
    /// Ids of clips (not still images) without scores of the current version, in id order
    /// after `after`: what the backfill measures.
    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}

/// CLIP embeddings per model, for visual search.
pub trait EmbeddingStore: Send + Sync {
    /// Records what clip `id` shows, as `model`'s embedding; false when there is no such video.
    fn set_embedding(&self, id: String, model: String, vector: Vec<f32>) -> BoxFuture<'_, StoreResult<bool>>;
    /// Every stored embedding of `model`: (video id, vector).
    fn embeddings(&self, model: String) -> BoxFuture<'_, StoreResult<Embeddings>>;
    /// Ids of clips without an embedding of `model`, in id order after `after`.
    fn unembedded_clips(
        &self,
        model: String,
        after: Option<String>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}

/// Comparisons and their votes.
pub trait VoteStore: Send + Sync {
    /// Keeps a comparison (checked against the gallery by the caller); one already kept under
    /// its id stays as it is. Returns the comparison as kept.
    fn open_comparison(&self, comparison: Comparison) -> BoxFuture<'_, StoreResult<Comparison>>;
    fn comparison(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Comparison>>>;
    /// Records a vote (checked by the caller), replacing its voter's earlier vote on the same
    /// comparison and axis (which keeps its id). Returns the vote as kept.
    fn cast_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<Vote>>;
    /// The most recent votes first.
    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>>;
    /// The votes added up by `by`: how often each group's results won over each other group's
    /// (a vote is a win of its winner over every other result compared; results since deleted
    /// are left out), and how many votes had a pair of different groups. The database adds
    /// them up: the votes are never loaded.
    fn pair_counts(&self, by: GroupBy) -> BoxFuture<'_, StoreResult<(Vec<PairCount>, u32)>>;
    /// The key that signs voter cookies: the one kept, else `fresh`, kept from now on (the
    /// first of several web nodes starting at once wins).
    fn voter_key(&self, fresh: Vec<u8>) -> BoxFuture<'_, StoreResult<Vec<u8>>>;
}

/// What one process sharing a store tells the others (see [`NoticeStore::announce`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// The process that announces it (each ignores its own).
    pub from: String,
    pub kind: NoticeKind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoticeKind {
    /// Job `id` changed (queued, started, finished): read it again.
    Changed { id: String },
    /// Job `id` made a step; with `preview`, a new preview is kept for it.
    Step { id: String, step: u32, total: u32, preview: bool },
    /// Job `id` is to stop (its cancel was asked for).
    Cancel { id: String },
    /// The listener lost its connection and has it again: anything may have changed.
    Reconnected,
}

/// A worker asking for a job (see [`JobStore::claim`]).
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub worker: String,
    pub now_ms: i64,
    /// How long the job is the worker's without a renewal; `None`: until it finishes.
    pub lease_ms: Option<i64>,
    /// The models the worker can run (any when empty).
    pub models: Vec<String>,
    /// The models it has loaded, preferred.
    pub loaded: Vec<String>,
}

/// Whether a worker still holds a job (see [`LeaseStore::renew_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Held {
        cancel_requested: bool,
    },
    /// Finished, cancelled, taken over or gone: the worker stops working on it.
    Lost,
}

/// The message of a job failed because its workers kept dying.
pub fn lost_too_often(attempts: u32) -> String {
    format!("this job's worker stopped answering {attempts} times; it is not run again")
}

/// What [`JobStore::recover_interrupted`] did, by job id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    pub done: Vec<String>,
    pub requeued: Vec<String>,
    pub failed: Vec<String>,
    /// Jobs whose cancel was asked for before their worker stopped answering.
    pub cancelled: Vec<String>,
}

/// The message of a job failed because it was running during two crashes.
pub const CRASHED_TWICE: &str = "this job crashed the server twice; it is not run again";
