//! Where jobs and videos are kept: the [`Store`] interface, and its SQLite implementation
//! (sqlx, migrations, FTS5 over prompts) in the data directory.
//!
//! Media files are not in the database: they live under `DATA_DIR/media/ID/` (see
//! [`crate::jobs`]). A server database can replace SQLite by implementing [`Store`].

use app::types::{Job, JobParams, JobState, Mode, Video, VideoPage, VideoQuery};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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

/// SQLite in one file, `DATA_DIR/vidplay.db`, in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn migrations() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migration = |version, name: &str, sql: &'static str| {
        Migration::new(version, name.to_string().into(), MigrationType::Simple, sqlx::AssertSqlSafe(sql).into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        migration(1, "jobs, videos and prompt search", include_str!("../migrations/0001_init.sql")),
        migration(2, "job attempts", include_str!("../migrations/0002_attempts.sql")),
        migration(3, "gallery search in gallery order", include_str!("../migrations/0003_search_order.sql")),
    ])
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        migrations().run(&pool).await?;
        Ok(Self { pool })
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    let state: String = row.try_get("state")?;
    let mode: String = row.try_get("mode")?;
    let params: String = row.try_get("params")?;
    Ok(Job {
        id: row.try_get("id")?,
        state: JobState::parse(&state).ok_or_else(|| corrupt(format!("job state {state:?}")))?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_str::<JobParams>(&params).map_err(corrupt)?,
        created_ms: row.try_get("created_ms")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        step: row.try_get::<i64, _>("step")? as u32,
        total: row.try_get::<i64, _>("total")? as u32,
        message: row.try_get("message")?,
        video_id: row.try_get("video_id")?,
    })
}

/// A job row for listings: one that cannot be read shows as failed with the reason, so a bad
/// row never breaks the queue page or the API.
fn job_or_failed(row: &SqliteRow) -> StoreResult<Job> {
    match job_from_row(row) {
        Err(StoreError::Corrupt(why)) => {
            let id: String = row.try_get("id")?;
            tracing::warn!(%id, "unreadable job record: {why}");
            Ok(Job {
                id,
                state: JobState::Failed,
                mode: Mode::TextToVideo,
                params: JobParams::default(),
                created_ms: row.try_get("created_ms").unwrap_or(0),
                started_ms: None,
                finished_ms: None,
                step: 0,
                total: 0,
                message: Some(format!("this job's stored record cannot be read ({why})")),
                video_id: None,
            })
        }
        other => other,
    }
}

fn video_from_row(row: &SqliteRow) -> StoreResult<Video> {
    let mode: String = row.try_get("mode")?;
    let params: String = row.try_get("params")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(Video {
        id: row.try_get("id")?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_str(&params).map_err(corrupt)?,
        created_ms: row.try_get("created_ms")?,
        favorite: row.try_get::<i64, _>("favorite")? != 0,
        metadata: serde_json::from_str(&metadata).map_err(corrupt)?,
    })
}

/// Turns what a person typed into an FTS5 query that cannot be a syntax error: every word
/// becomes a quoted prefix term, all of them required. `None` when there are no words.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("\"{}\"*", w.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// A sort key strictly between `lo` and `hi`, the keys of the videos just before and just after
/// a new one in gallery order (`None`: none there); `None` when there is no room. A video
/// saved after all others gets the previous key plus 2^32 (room for 32 later videos saved out
/// of order between them), one saved between two others the middle of their keys.
fn sort_key_between(lo: Option<i64>, hi: Option<i64>) -> Option<i64> {
    const GAP: i128 = 1 << 32;
    let lo_bound = lo.map_or(i64::MIN as i128 - 1, i128::from);
    let hi_bound = hi.map_or(i64::MAX as i128 + 1, i128::from);
    let middle = lo_bound + (hi_bound - lo_bound) / 2;
    let key = match (lo, hi) {
        (None, None) => 0,
        (Some(_), None) => lo_bound + GAP,
        (None, Some(_)) => hi_bound - GAP,
        (Some(_), Some(_)) => middle,
    };
    let inside = |k: i128| lo_bound < k && k < hi_bound;
    let key = if inside(key) { key } else { middle };
    inside(key).then_some(key as i64)
}

/// The sort key for a new video from its neighbours in gallery order, (created_ms, id).
async fn sort_key_for(conn: &mut sqlx::SqliteConnection, created_ms: i64, id: &str) -> StoreResult<Option<i64>> {
    let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT sort_key FROM videos WHERE (created_ms, id) < (?1, ?2) ORDER BY created_ms DESC, id DESC LIMIT 1), \
                (SELECT sort_key FROM videos WHERE (created_ms, id) > (?1, ?2) ORDER BY created_ms, id LIMIT 1)",
    )
    .bind(created_ms)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(sort_key_between(lo, hi))
}

/// Spreads the sort keys out again, 2^32 apart in gallery order (as migration 3 does), and
/// rebuilds the prompt index, which is keyed by them. Only when a gap is used up.
async fn renumber_sort_keys(conn: &mut sqlx::SqliteConnection) -> StoreResult<()> {
    tracing::info!("renumbering the gallery sort keys");
    sqlx::query(
        "UPDATE videos SET sort_key = k.n * 4294967296 \
         FROM (SELECT rowid AS r, row_number() OVER (ORDER BY created_ms, id) AS n FROM videos) AS k \
         WHERE k.r = videos.rowid",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO videos_fts (videos_fts) VALUES ('rebuild')").execute(&mut *conn).await?;
    Ok(())
}

const JOB_COLUMNS: &str = "id, state, mode, params, created_ms, started_ms, finished_ms, step, total, message, video_id";
const VIDEO_COLUMNS: &str = "v.id, v.mode, v.params, v.metadata, v.created_ms, v.favorite";

impl Store for SqliteStore {
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let params = serde_json::to_string(&job.params).map_err(corrupt)?;
            // One statement, so the check and the insert cannot interleave with another submit.
            let result = sqlx::query(
                "INSERT INTO jobs (id, state, mode, params, created_ms, step, total, message) \
                 SELECT ?, 'queued', ?, ?, ?, 0, ?, ? \
                 WHERE (SELECT COUNT(*) FROM jobs WHERE state = 'queued') < ?",
            )
            .bind(&job.id)
            .bind(job.mode.as_str())
            .bind(params)
            .bind(job.created_ms)
            .bind(job.total as i64)
            .bind(&job.message)
            .bind(limit as i64)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(job_or_failed).transpose()
        })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_ms DESC, id DESC LIMIT ?"
            ));
            let rows = sqlx::query(sql).bind(limit as i64).fetch_all(&self.pool).await?;
            rows.iter().map(job_or_failed).collect()
        })
    }

    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let params = serde_json::to_string(&job.params).map_err(corrupt)?;
            sqlx::query(
                "UPDATE jobs SET state = ?1, params = ?2, started_ms = ?3, finished_ms = ?4, step = ?5, \
                 total = ?6, message = ?7, video_id = ?8, \
                 attempts = CASE WHEN ?1 = 'queued' THEN 0 ELSE attempts END WHERE id = ?9",
            )
            .bind(job.state.as_str())
            .bind(params)
            .bind(job.started_ms)
            .bind(job.finished_ms)
            .bind(job.step as i64)
            .bind(job.total as i64)
            .bind(&job.message)
            .bind(&job.video_id)
            .bind(&job.id)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn claim_next(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        Box::pin(async move {
            let sql = format!(
                "UPDATE jobs SET state = 'running', started_ms = ?, attempts = attempts + 1 WHERE id = \
                 (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_ms, id LIMIT 1) \
                 RETURNING {JOB_COLUMNS}"
            );
            loop {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now_ms).fetch_optional(&self.pool).await?;
                let Some(row) = row else { return Ok(None) };
                match job_from_row(&row) {
                    Err(StoreError::Corrupt(why)) => {
                        // Never run (or claim again and again) a job that cannot be read.
                        let id: String = row.try_get("id")?;
                        tracing::warn!(%id, "unreadable queued job failed: {why}");
                        sqlx::query("UPDATE jobs SET state = 'failed', finished_ms = ?, message = ? WHERE id = ?")
                            .bind(now_ms)
                            .bind(format!("this job's stored record cannot be read ({why})"))
                            .bind(id)
                            .execute(&self.pool)
                            .await?;
                    }
                    other => return other.map(Some),
                }
            }
        })
    }

    fn cancel_queued(&self, id: String, now_ms: i64) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_ms = ?, message = 'cancelled before it started' \
                 WHERE id = ? AND state = 'queued'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn recover_interrupted(&self, now_ms: i64) -> BoxFuture<'_, StoreResult<Recovered>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Finished, but the crash came before the job itself was updated.
            let done = sqlx::query_scalar(
                "UPDATE jobs SET state = 'done', video_id = id, finished_ms = ?, step = total, message = NULL \
                 WHERE state = 'running' AND id IN (SELECT id FROM videos) RETURNING id",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            let failed = sqlx::query_scalar(
                "UPDATE jobs SET state = 'failed', finished_ms = ?, message = ? \
                 WHERE state = 'running' AND attempts >= 2 RETURNING id",
            )
            .bind(now_ms)
            .bind(CRASHED_TWICE)
            .fetch_all(&mut *tx)
            .await?;
            let requeued = sqlx::query_scalar(
                "UPDATE jobs SET state = 'queued', step = 0, started_ms = NULL, \
                 message = 'interrupted by a server restart; queued again' \
                 WHERE state = 'running' RETURNING id",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Recovered { done, requeued, failed })
        })
    }

    fn queued_count(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT json_extract(params, '$.prompt') AS prompt FROM jobs \
                 WHERE json_valid(params) AND json_type(params, '$.prompt') = 'text' \
                 AND json_extract(params, '$.prompt') <> '' \
                 GROUP BY prompt ORDER BY MAX(created_ms) DESC LIMIT ?",
            )
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows)
        })
    }

    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE id = ?").bind(id).fetch_one(&self.pool).await?;
            Ok(n > 0)
        })
    }

    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let params = serde_json::to_string(&video.params).map_err(corrupt)?;
            // IMMEDIATE: the write lock is taken first, so no other insert can take the same
            // place in the gallery order between the neighbour lookup and the insert.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let sort_key = match sort_key_for(&mut tx, video.created_ms, &video.id).await? {
                Some(key) => key,
                None => {
                    renumber_sort_keys(&mut tx).await?;
                    sort_key_for(&mut tx, video.created_ms, &video.id)
                        .await?
                        .ok_or_else(|| corrupt("no room for a gallery sort key after renumbering"))?
                }
            };
            sqlx::query(
                "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, favorite, sort_key) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&video.id)
            .bind(video.mode.as_str())
            .bind(&video.params.model)
            .bind(&video.params.prompt)
            .bind(params)
            .bind(video.metadata.to_string())
            .bind(video.created_ms)
            .bind(video.favorite as i64)
            .bind(sort_key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE v.id = ?"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(video_from_row).transpose()
        })
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>> {
        Box::pin(async move {
            let limit = query.limit.clamp(1, MAX_PAGE);
            let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("SELECT {VIDEO_COLUMNS} FROM "));
            let fts = fts_query(&query.q);
            // With words: newest first straight from the prompt index, which is keyed by
            // `sort_key` (in gallery order), so the walk stops after one page instead of sorting
            // every match. CROSS JOIN keeps the index as the outer loop.
            let (order, cursor) = if let Some(fts) = fts {
                sql.push("videos_fts CROSS JOIN videos v ON v.sort_key = videos_fts.rowid WHERE videos_fts MATCH ")
                    .push_bind(fts);
                ("videos_fts.rowid DESC", " AND videos_fts.rowid < (SELECT sort_key FROM videos WHERE id = ")
            } else {
                sql.push("videos v WHERE 1");
                ("v.created_ms DESC, v.id DESC", " AND (v.created_ms, v.id) < (SELECT created_ms, id FROM videos WHERE id = ")
            };
            if let Some(mode) = query.mode {
                sql.push(" AND v.mode = ").push_bind(mode.as_str());
            }
            if let Some(model) = query.model.filter(|m| !m.is_empty()) {
                sql.push(" AND v.model = ").push_bind(model);
            }
            if query.favorites {
                sql.push(" AND v.favorite = 1");
            }
            if let Some(before) = query.before {
                sql.push(cursor).push_bind(before).push(")");
            }
            sql.push(" ORDER BY ").push(order).push(" LIMIT ").push_bind(limit as i64 + 1);
            let mut rows = sql.build().fetch_all(&self.pool).await?;
            let next = if rows.len() > limit as usize {
                rows.truncate(limit as usize);
                rows.last().map(|r| r.try_get::<String, _>("id")).transpose()?
            } else {
                None
            };
            // A row that cannot be read is left out (and logged), never an error for the page.
            let mut videos = Vec::with_capacity(rows.len());
            for row in &rows {
                match video_from_row(row) {
                    Ok(v) => videos.push(v),
                    Err(StoreError::Corrupt(why)) => tracing::warn!("unreadable video record left out: {why}"),
                    Err(e) => return Err(e),
                }
            }
            Ok(VideoPage { videos, next })
        })
    }

    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos").fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("UPDATE videos SET favorite = ? WHERE id = ?")
                .bind(favorite as i64)
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM videos WHERE id = ?").bind(id).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vidplay-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("vidplay.db")
    }

    fn job(id: &str, ms: i64, prompt: &str) -> Job {
        Job {
            id: id.into(),
            state: JobState::Queued,
            mode: Mode::TextToVideo,
            params: JobParams { prompt: prompt.into(), seed: Some(7), ..Default::default() },
            created_ms: ms,
            started_ms: None,
            finished_ms: None,
            step: 0,
            total: 24,
            message: None,
            video_id: None,
        }
    }

    fn video(id: &str, ms: i64, prompt: &str, mode: Mode) -> Video {
        Video {
            id: id.into(),
            mode,
            params: JobParams { prompt: prompt.into(), seed: Some(1), ..Default::default() },
            created_ms: ms,
            favorite: false,
            metadata: serde_json::json!({"seed": 1}),
        }
    }

    #[test]
    fn fts_queries_are_always_valid() {
        assert_eq!(fts_query("red ball"), Some("\"red\"* \"ball\"*".into()));
        assert_eq!(fts_query("  \"*^()- OR NEAR:  "), Some("\"or\"* \"near\"*".into()));
        assert_eq!(fts_query("\"*^()-:"), None);
    }

    #[tokio::test]
    async fn queue_limit_order_and_recovery() {
        let path = temp_db("queue");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.enqueue(job("aaaa0001", 1, "a"), 2).await.unwrap());
        assert!(store.enqueue(job("aaaa0002", 2, "b"), 2).await.unwrap());
        assert!(!store.enqueue(job("aaaa0003", 3, "c"), 2).await.unwrap(), "queue full");
        let mut first = store.claim_next(100).await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.state, first.started_ms), ("aaaa0001", JobState::Running, Some(100)));
        first.step = 5;
        store.update_job(first).await.unwrap();
        assert!(store.enqueue(job("aaaa0003", 3, "c"), 2).await.unwrap(), "room again");
        assert!(store.cancel_queued("aaaa0003".into(), 101).await.unwrap());
        assert!(!store.cancel_queued("aaaa0003".into(), 102).await.unwrap(), "only once");
        assert!(!store.cancel_queued("aaaa0001".into(), 102).await.unwrap(), "running jobs are not");
        assert_eq!(store.job("aaaa0003".into()).await.unwrap().unwrap().state, JobState::Cancelled);
        drop(store);

        // A restart: the running job is queued again, with a note, and nothing is lost.
        let store = SqliteStore::open(&path).await.unwrap();
        let recovered = store.recover_interrupted(150).await.unwrap();
        assert_eq!(recovered, Recovered { requeued: vec!["aaaa0001".to_string()], ..Default::default() });
        let j = store.job("aaaa0001".into()).await.unwrap().unwrap();
        assert_eq!((j.state, j.step), (JobState::Queued, 0));
        assert!(j.message.unwrap().contains("restart"));
        assert_eq!(j.params.prompt, "a");
        assert_eq!(store.jobs(10).await.unwrap().len(), 3);
        assert_eq!(store.claim_next(200).await.unwrap().unwrap().id, "aaaa0001", "oldest first");
        assert_eq!(store.claim_next(201).await.unwrap().unwrap().id, "aaaa0002");
        assert!(store.claim_next(202).await.unwrap().is_none());
        assert!(store.job("ffff0000".into()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unreadable_rows_never_break_listings() {
        let path = temp_db("corrupt");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.enqueue(job("cccc0001", 1, "a"), 10).await.unwrap());
        assert!(store.enqueue(job("cccc0002", 2, "b"), 10).await.unwrap());
        store.insert_video(video("dddd0001", 5, "fine", Mode::TextToVideo)).await.unwrap();
        store.insert_video(video("dddd0002", 6, "broken", Mode::TextToVideo)).await.unwrap();
        // What an infinite number used to become: `null` where a number must be.
        sqlx::query("UPDATE jobs SET params = '{\"prompt\":\"a\",\"guidance\":null}' WHERE id = 'cccc0001'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE videos SET params = 'not json' WHERE id = 'dddd0002'").execute(&store.pool).await.unwrap();
        let jobs = store.jobs(10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let bad = jobs.iter().find(|j| j.id == "cccc0001").unwrap();
        assert_eq!(bad.state, JobState::Failed);
        assert!(bad.message.as_deref().unwrap().contains("cannot be read"), "{bad:?}");
        assert_eq!(store.job("cccc0001".into()).await.unwrap().unwrap().state, JobState::Failed);
        // The worker skips it (failing it for good) and runs the next one.
        assert_eq!(store.claim_next(10).await.unwrap().unwrap().id, "cccc0002");
        assert!(store.claim_next(11).await.unwrap().is_none());
        let page = store.videos(VideoQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.videos.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["dddd0001"]);
        // A prompt that is not text is left out of the recent prompts, not an error.
        sqlx::query("UPDATE jobs SET params = '{\"prompt\": 5}' WHERE id = 'cccc0001'").execute(&store.pool).await.unwrap();
        assert_eq!(store.recent_prompts(5).await.unwrap(), ["b"]);
    }

    #[tokio::test]
    async fn a_job_that_crashed_twice_is_failed_and_a_finished_one_is_done() {
        let store = SqliteStore::open(&temp_db("crashes")).await.unwrap();
        assert!(store.enqueue(job("eeee0001", 1, "a"), 10).await.unwrap());
        // First crash: queued again.
        assert_eq!(store.claim_next(2).await.unwrap().unwrap().id, "eeee0001");
        assert_eq!(store.recover_interrupted(3).await.unwrap().requeued, ["eeee0001"]);
        // Put back on purpose (a shutdown): that does not count as a crash.
        let mut j = store.claim_next(4).await.unwrap().unwrap();
        j.state = JobState::Queued;
        store.update_job(j).await.unwrap();
        assert_eq!(store.claim_next(5).await.unwrap().unwrap().id, "eeee0001");
        assert_eq!(store.recover_interrupted(6).await.unwrap().requeued, ["eeee0001"]);
        // Second crash while it runs: failed, not queued a third time.
        assert_eq!(store.claim_next(7).await.unwrap().unwrap().id, "eeee0001");
        let r = store.recover_interrupted(8).await.unwrap();
        assert_eq!((r.failed.as_slice(), r.requeued.len()), (["eeee0001".to_string()].as_slice(), 0));
        let j = store.job("eeee0001".into()).await.unwrap().unwrap();
        assert_eq!((j.state, j.message.as_deref()), (JobState::Failed, Some(CRASHED_TWICE)));
        assert!(store.claim_next(9).await.unwrap().is_none());

        // A crash after the gallery insert but before the job update: the job is done.
        assert!(store.enqueue(job("eeee0002", 10, "b"), 10).await.unwrap());
        assert_eq!(store.claim_next(11).await.unwrap().unwrap().id, "eeee0002");
        store.insert_video(video("eeee0002", 12, "b", Mode::TextToVideo)).await.unwrap();
        assert_eq!(store.recover_interrupted(13).await.unwrap().done, ["eeee0002"]);
        let j = store.job("eeee0002".into()).await.unwrap().unwrap();
        assert_eq!((j.state, j.video_id.as_deref()), (JobState::Done, Some("eeee0002")));
        assert_eq!(store.queued_count().await.unwrap(), 0);
        assert!(store.video_exists("eeee0002".into()).await.unwrap());
        assert!(!store.video_exists("eeee0003".into()).await.unwrap());
        assert_eq!(store.recent_prompts(5).await.unwrap(), ["b", "a"]);
    }

    #[tokio::test]
    async fn gallery_search_filters_and_pages() {
        let store = SqliteStore::open(&temp_db("gallery")).await.unwrap();
        store.insert_video(video("b0000001", 10, "a red ball bouncing on grass", Mode::TextToVideo)).await.unwrap();
        store.insert_video(video("b0000002", 20, "a blue star moving left", Mode::TextToVideo)).await.unwrap();
        store.insert_video(video("b0000003", 30, "camera pans left", Mode::ImageToVideo)).await.unwrap();
        let ids = |p: &VideoPage| p.videos.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
        let q = |q: &str| VideoQuery { q: q.into(), limit: 10, ..Default::default() };

        assert_eq!(ids(&store.videos(q("")).await.unwrap()), ["b0000003", "b0000002", "b0000001"]);
        assert_eq!(ids(&store.videos(q("left")).await.unwrap()), ["b0000003", "b0000002"]);
        assert_eq!(ids(&store.videos(q("RED bou")).await.unwrap()), ["b0000001"]);
        assert!(store.videos(q("purple")).await.unwrap().videos.is_empty());
        // FTS syntax in a search is just text.
        assert!(store.videos(q("\"red* OR (NEAR")).await.unwrap().videos.is_empty());
        assert_eq!(ids(&store.videos(q("red)*")).await.unwrap()), ["b0000001"]);

        let i2v = VideoQuery { mode: Some(Mode::ImageToVideo), limit: 10, ..Default::default() };
        assert_eq!(ids(&store.videos(i2v).await.unwrap()), ["b0000003"]);

        assert!(store.set_favorite("b0000001".into(), true).await.unwrap());
        assert!(!store.set_favorite("ffffffff".into(), true).await.unwrap());
        let favs = VideoQuery { favorites: true, limit: 10, ..Default::default() };
        assert_eq!(ids(&store.videos(favs).await.unwrap()), ["b0000001"]);

        let page1 = store.videos(VideoQuery { limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(ids(&page1), ["b0000003", "b0000002"]);
        let page2 = store
            .videos(VideoQuery { limit: 2, before: page1.next.clone(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(ids(&page2), ["b0000001"]);
        assert_eq!(page2.next, None);

        assert!(store.delete_video("b0000002".into()).await.unwrap());
        assert!(!store.delete_video("b0000002".into()).await.unwrap());
        assert!(store.videos(q("star")).await.unwrap().videos.is_empty(), "the index forgets deleted videos");
        assert_eq!(store.count_videos().await.unwrap(), 2);
        let v = store.video("b0000001".into()).await.unwrap().unwrap();
        assert!(v.favorite);
        assert_eq!(v.metadata["seed"], 1);
    }

    /// Videos for the order tests: prompts of 1-4 words from a small vocabulary, random ids and
    /// modes, some favorites, and times that mostly grow with `i` but are often older than
    /// earlier videos, or equal to another video's (ties are ordered by id).
    fn mixed_videos(seed: u64, n: u64) -> Vec<Video> {
        const WORDS: [&str; 10] = ["red", "blue", "ball", "balloon", "star", "left", "bouncing", "bounce", "rare", "zebra"];
        (0..n)
            .map(|i| {
                let r = model::rng::mix(seed.wrapping_mul(1_000_003) + i);
                let words = 1 + r % 4;
                let prompt = (0..words).map(|w| WORDS[((r >> (8 + 4 * w)) % 10) as usize]);
                let created_ms = match (r >> 32) % 10 {
                    0..=2 => ((r >> 40) % 40) as i64,
                    3 => 100 + i as i64 / 2,
                    _ => 100 + i as i64,
                };
                let mode = [Mode::TextToVideo, Mode::ImageToVideo, Mode::TextToImage][((r >> 50) % 3) as usize];
                let mut v = video(&format!("{:08x}{i:04x}", (r >> 20) as u32), created_ms, &prompt.collect::<Vec<_>>().join(" "), mode);
                v.favorite = (r >> 60).is_multiple_of(3);
                v
            })
            .collect()
    }

    /// Pages through every query built from `texts`, modes, favorites and page sizes and checks
    /// the ids, in order, against `all` filtered in Rust and sorted by (created_ms, id), newest
    /// first; and that `next` is given exactly when more follow.
    async fn check_against_reference(store: &SqliteStore, all: &[Video], texts: &[&str]) {
        let words = |s: &str| s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect::<Vec<_>>();
        for text in texts {
            for mode in [None, Some(Mode::TextToVideo), Some(Mode::ImageToVideo)] {
                for favorites in [false, true] {
                    let mut expected: Vec<&Video> = all
                        .iter()
                        .filter(|v| {
                            let prompt = words(&v.params.prompt);
                            words(text).iter().all(|w| prompt.iter().any(|p| p.starts_with(w.as_str())))
                                && mode.is_none_or(|m| v.mode == m)
                                && (!favorites || v.favorite)
                        })
                        .collect();
                    expected.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
                    let expected: Vec<&str> = expected.iter().map(|v| v.id.as_str()).collect();
                    for limit in [1, 7, 100] {
                        let query = VideoQuery { q: text.to_string(), mode, favorites, limit, ..Default::default() };
                        let mut got = Vec::new();
                        let mut before = None;
                        for _ in 0..=expected.len() {
                            let page = store.videos(VideoQuery { before: before.clone(), ..query.clone() }).await.unwrap();
                            assert!(page.videos.len() <= limit as usize);
                            got.extend(page.videos.iter().map(|v| v.id.clone()));
                            assert_eq!(page.next.is_some(), got.len() < expected.len(), "{query:?} after {}", got.len());
                            before = page.next;
                            if before.is_none() {
                                break;
                            }
                        }
                        assert_eq!(got, expected, "{query:?}");
                    }
                }
            }
        }
    }

    const SEARCHES: [&str; 12] =
        ["", "red", "RE", "b", "ball", "ball red", "bounc", "bounce", "rare", "zebra ball", "left-star", "purple"];

    #[tokio::test]
    async fn gallery_order_and_matches_equal_a_reference() {
        let store = SqliteStore::open(&temp_db("reference")).await.unwrap();
        let mut all = mixed_videos(1, 300);
        for v in &all {
            store.insert_video(v.clone()).await.unwrap();
        }
        // Deleted videos leave the index (by their sort key).
        let deleted: Vec<String> = all.iter().step_by(17).map(|v| v.id.clone()).collect();
        for id in &deleted {
            assert!(store.delete_video(id.clone()).await.unwrap());
        }
        all.retain(|v| !deleted.contains(&v.id));
        // Favorites changed afterwards are found by the favorites filter.
        for v in all.iter_mut().step_by(5) {
            v.favorite = !v.favorite;
            assert!(store.set_favorite(v.id.clone(), v.favorite).await.unwrap());
        }
        // Videos at one time, each with an id just above the previous one and below another's
        // there: each halves the same gap, which runs out (at the latest after 64) and every
        // key is renumbered.
        let mut last = video("ffff0000", 70, "red ball", Mode::TextToVideo);
        last.favorite = true;
        store.insert_video(last.clone()).await.unwrap();
        all.push(last);
        for i in 0..70 {
            let v = video(&format!("fffe{i:04x}"), 70, if i % 2 == 0 { "red star" } else { "blue ball" }, Mode::ImageToVideo);
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        let min_key: i64 = sqlx::query_scalar("SELECT MIN(sort_key) FROM videos").fetch_one(&store.pool).await.unwrap();
        assert_eq!(min_key, 1 << 32, "renumbered");
        // A few more after the renumbering, among the others.
        for v in mixed_videos(2, 30) {
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        assert_eq!(store.count_videos().await.unwrap(), all.len() as u64);
        check_against_reference(&store, &all, &SEARCHES).await;
    }

    #[test]
    fn sort_keys_fall_strictly_between_their_neighbours() {
        assert_eq!(sort_key_between(None, None), Some(0));
        assert_eq!(sort_key_between(Some(5), None), Some(5 + (1 << 32)));
        assert_eq!(sort_key_between(None, Some(5)), Some(5 - (1 << 32)));
        assert_eq!(sort_key_between(Some(4), Some(10)), Some(7));
        assert_eq!(sort_key_between(Some(4), Some(6)), Some(5));
        assert_eq!(sort_key_between(Some(4), Some(5)), None);
        assert_eq!(sort_key_between(Some(i64::MAX - 2), None), Some(i64::MAX - 1));
        assert_eq!(sort_key_between(Some(i64::MAX), None), None);
        assert_eq!(sort_key_between(None, Some(i64::MIN + 2)), Some(i64::MIN));
        assert_eq!(sort_key_between(None, Some(i64::MIN)), None);
    }

    /// A database made before migration 3 keeps every video, and searches it in gallery order.
    #[tokio::test]
    async fn older_databases_migrate_to_search_in_order() {
        let path = temp_db("migrate3");
        let all = mixed_videos(3, 200);
        {
            let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            migrations().run_to(2, &pool).await.unwrap();
            for v in &all {
                sqlx::query(
                    "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, favorite) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&v.id)
                .bind(v.mode.as_str())
                .bind(&v.params.model)
                .bind(&v.params.prompt)
                .bind(serde_json::to_string(&v.params).unwrap())
                .bind(v.metadata.to_string())
                .bind(v.created_ms)
                .bind(v.favorite as i64)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.count_videos().await.unwrap(), all.len() as u64);
        check_against_reference(&store, &all, &SEARCHES).await;
        // And new videos find their place among the migrated ones.
        let mut all = all;
        for v in mixed_videos(4, 50) {
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        check_against_reference(&store, &all, &SEARCHES).await;
    }
}
