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
    /// After a restart: jobs left running by a crash go back to the queue, with a note.
    fn requeue_interrupted(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>>;
    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>>;
    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>>;
    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// Returns false when there is no such video.
    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>>;
    /// Returns false when there is no such video.
    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
}

/// SQLite in one file, `DATA_DIR/vidplay.db`, in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn migrations() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(vec![Migration::new(
        1,
        "jobs, videos and prompt search".into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(include_str!("../migrations/0001_init.sql")).into_sql_str(),
        false,
    )])
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
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_ms DESC, id DESC LIMIT ?"
            ));
            let rows = sqlx::query(sql).bind(limit as i64).fetch_all(&self.pool).await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let params = serde_json::to_string(&job.params).map_err(corrupt)?;
            sqlx::query(
                "UPDATE jobs SET state = ?, params = ?, started_ms = ?, finished_ms = ?, step = ?, \
                 total = ?, message = ?, video_id = ? WHERE id = ?",
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
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'running', started_ms = ? WHERE id = \
                 (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_ms, id LIMIT 1) \
                 RETURNING {JOB_COLUMNS}"
            ));
            let row = sqlx::query(sql).bind(now_ms).fetch_optional(&self.pool).await?;
            row.as_ref().map(job_from_row).transpose()
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

    fn requeue_interrupted(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "UPDATE jobs SET state = 'queued', step = 0, started_ms = NULL, \
                 message = 'interrupted by a server restart; queued again' \
                 WHERE state = 'running' RETURNING id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
    }

    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, favorite) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&video.id)
            .bind(video.mode.as_str())
            .bind(&video.params.model)
            .bind(&video.params.prompt)
            .bind(serde_json::to_string(&video.params).map_err(corrupt)?)
            .bind(video.metadata.to_string())
            .bind(video.created_ms)
            .bind(video.favorite as i64)
            .execute(&self.pool)
            .await?;
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
            let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE 1"));
            if let Some(fts) = fts_query(&query.q) {
                sql.push(" AND v.rowid IN (SELECT rowid FROM videos_fts WHERE videos_fts MATCH ")
                    .push_bind(fts)
                    .push(")");
            }
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
                sql.push(" AND (v.created_ms, v.id) < (SELECT created_ms, id FROM videos WHERE id = ")
                    .push_bind(before)
                    .push(")");
            }
            sql.push(" ORDER BY v.created_ms DESC, v.id DESC LIMIT ").push_bind(limit as i64 + 1);
            let rows = sql.build().fetch_all(&self.pool).await?;
            let mut videos: Vec<Video> = rows.iter().map(video_from_row).collect::<StoreResult<_>>()?;
            let next = if videos.len() > limit as usize {
                videos.truncate(limit as usize);
                videos.last().map(|v| v.id.clone())
            } else {
                None
            };
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
        assert_eq!(store.requeue_interrupted().await.unwrap(), vec!["aaaa0001".to_string()]);
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
}
