//! The [`Store`] in SQLite (sqlx, WAL mode, FTS5 over prompts), `DATA_DIR/vidplay.db`: jobs and
//! the gallery here; clip scores (`scores`), CLIP embeddings (`embeddings`) and comparison
//! votes (`votes`) in their own modules.

use super::{
    CRASHED_TWICE, Claim, Lease, MAX_PAGE, Notice, Recovered, Store, StoreError, StoreResult, corrupt, search_words,
    sort_column, unreadable_job,
};
use app::results::ResultMeta;
use app::scores::Scores;
use app::types::{Job, JobParams, JobState, Mode, Video, VideoPage, VideoQuery, WorkerStatus};
use app::votes::Vote;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};
use std::path::Path;

mod embeddings;
mod leases;
mod scores;
mod votes;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

/// SQLite in one file, `DATA_DIR/vidplay.db`, in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn migrations() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migration = |version, name: &str, sql: &'static str| {
        Migration::new(
            version,
            name.to_string().into(),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "jobs, videos and prompt search", include_str!("migrations/0001_init.sql")),
        migration(2, "job attempts", include_str!("migrations/0002_attempts.sql")),
        migration(3, "gallery search in gallery order", include_str!("migrations/0003_search_order.sql")),
        migration(4, "gallery search by model", include_str!("migrations/0004_search_by_model.sql")),
        migration(5, "clip scores", include_str!("migrations/0005_scores.sql")),
        migration(6, "comparison votes", include_str!("migrations/0006_votes.sql")),
        migration(7, "clip embeddings", include_str!("migrations/0007_embeddings.sql")),
        migration(8, "worker leases", include_str!("migrations/0008_leases.sql")),
        migration(9, "workers preparing GPU kernels", include_str!("migrations/0009_worker_warm_up.sql")),
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
        owner: row.try_get("owner")?,
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
                message: Some(unreadable_job(&why)),
                video_id: None,
                owner: row.try_get("owner").unwrap_or_default(),
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
        metadata: ResultMeta::from_value(serde_json::from_str(&metadata).map_err(corrupt)?),
        // Scores that cannot be read are measured again, never an error for the video.
        scores: row.try_get::<Option<String>, _>("scores")?.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// Turns what a person typed into an FTS5 query that cannot be a syntax error: every word
/// becomes a quoted prefix term, all of them required. `None` when there are no words.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = search_words(text).iter().map(|w| format!("\"{w}\"*")).collect();
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

/// A model with fewer videos than this is searched by walking its own videos (fewer in tests,
/// so the reference test goes both ways).
#[cfg(not(test))]
const RARE_MODEL: i64 = 500;
#[cfg(test)]
const RARE_MODEL: i64 = 100;

const JOB_COLUMNS: &str =
    "id, state, mode, params, created_ms, started_ms, finished_ms, step, total, message, video_id, owner";
const VIDEO_COLUMNS: &str = "v.id, v.mode, v.params, v.metadata, v.created_ms, v.favorite, v.scores";

impl Store for SqliteStore {
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let params = serde_json::to_string(&job.params).map_err(corrupt)?;
            // One statement, so the check and the insert cannot interleave with another submit.
            let result = sqlx::query(
                "INSERT INTO jobs (id, state, mode, params, created_ms, step, total, message, owner) \
                 SELECT ?1, 'queued', ?2, ?3, ?4, 0, ?5, ?6, ?7 \
                 WHERE (SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND owner = ?7) < ?8",
            )
            .bind(&job.id)
            .bind(job.mode.as_str())
            .bind(params)
            .bind(job.created_ms)
            .bind(job.total as i64)
            .bind(&job.message)
            .bind(&job.owner)
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

    fn claim(&self, claim: Claim) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        Box::pin(async move {
            let model = "CASE WHEN json_valid(params) THEN json_extract(params, '$.model') END";
            let sql = format!(
                "UPDATE jobs SET state = 'running', started_ms = ?1, attempts = attempts + 1, worker = ?2, \
                 lease_until_ms = ?3, cancel_requested = 0 WHERE id = \
                 (SELECT id FROM jobs WHERE state = 'queued' \
                  AND (json_array_length(?4) = 0 OR {model} IN (SELECT value FROM json_each(?4))) \
                  ORDER BY (SELECT MAX(j.started_ms) FROM jobs j WHERE j.owner = jobs.owner), \
                  COALESCE({model} IN (SELECT value FROM json_each(?5)), 0) DESC, created_ms, id LIMIT 1) \
                 RETURNING {JOB_COLUMNS}"
            );
            let models = serde_json::to_string(&claim.models).map_err(corrupt)?;
            let loaded = serde_json::to_string(&claim.loaded).map_err(corrupt)?;
            let now_ms = claim.now_ms;
            loop {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(now_ms)
                    .bind(&claim.worker)
                    .bind(claim.lease_ms.map(|ms| now_ms + ms))
                    .bind(&models)
                    .bind(&loaded)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                match job_from_row(&row) {
                    Err(StoreError::Corrupt(why)) => {
                        // Never run (or claim again and again) a job that cannot be read.
                        let id: String = row.try_get("id")?;
                        tracing::warn!(%id, "unreadable queued job failed: {why}");
                        sqlx::query("UPDATE jobs SET state = 'failed', finished_ms = ?, message = ? WHERE id = ?")
                            .bind(now_ms)
                            .bind(unreadable_job(&why))
                            .bind(id)
                            .execute(&self.pool)
                            .await?;
                    }
                    other => return other.map(Some),
                }
            }
        })
    }

    fn renew_lease(&self, id: String, worker: String, until_ms: i64) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move { leases::renew(&self.pool, &id, &worker, until_ms).await })
    }

    fn request_cancel(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { leases::request_cancel(&self.pool, &id).await })
    }

    fn finish_job(&self, job: Job, worker: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { leases::finish(&self.pool, &job, &worker).await })
    }

    fn requeue_expired(&self, now_ms: i64, max_attempts: u32) -> BoxFuture<'_, StoreResult<Recovered>> {
        Box::pin(leases::requeue_expired(&self.pool, now_ms, max_attempts))
    }

    fn worker_seen(&self, status: WorkerStatus) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { leases::worker_seen(&self.pool, &status).await })
    }

    fn workers(&self, since_ms: i64) -> BoxFuture<'_, StoreResult<Vec<WorkerStatus>>> {
        Box::pin(leases::workers(&self.pool, since_ms))
    }

    fn save_progress(&self, id: String, worker: String, step: u32, total: u32) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { leases::save_progress(&self.pool, &id, &worker, step, total).await })
    }

    /// One machine: the web node's own worker, and nobody to tell.
    fn shared(&self) -> bool {
        false
    }

    fn announce(&self, _notice: Notice, _preview: Option<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn notices(&self) -> BoxFuture<'_, StoreResult<Option<BoxStream<'static, Notice>>>> {
        Box::pin(async { Ok(None) })
    }

    fn preview(&self, _id: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async { Ok(None) })
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
            Ok(Recovered { done, requeued, failed, cancelled: Vec::new() })
        })
    }

    fn queued_count(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn queued_count_of(&self, owner: String) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND owner = ?")
                .bind(owner)
                .fetch_one(&self.pool)
                .await?;
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
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE id = ?").bind(id).fetch_one(&self.pool).await?;
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
            .bind(serde_json::to_string(&video.metadata).map_err(corrupt)?)
            .bind(video.created_ms)
            .bind(video.favorite as i64)
            .bind(sort_key)
            .execute(&mut *tx)
            .await?;
            if let Some(scores) = &video.scores {
                scores::write(&mut tx, &video.id, scores).await?;
            }
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
            let model = query.model.filter(|m| !m.is_empty());
            // How many videos the model has, counted up to RARE_MODEL on its index: none means no
            // results, whatever the words.
            let model_videos: Option<i64> = match &model {
                Some(m) => Some(
                    sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM videos WHERE model = ? LIMIT ?)")
                        .bind(m)
                        .bind(RARE_MODEL)
                        .fetch_one(&self.pool)
                        .await?,
                ),
                None => None,
            };
            if model_videos == Some(0) {
                return Ok(VideoPage { videos: Vec::new(), next: None, visual: Vec::new() });
            }
            // With words and a model with few videos: that model's videos newest first (its
            // index), each checked against the words' matches (collected once), so the walk is
            // at most the model's videos however few of them match.
            // With words otherwise: newest first straight from the prompt index, which is keyed
            // by `sort_key` (in gallery order), so the walk stops after one page instead of
            // sorting every match. CROSS JOIN keeps the index as the outer loop.
            let rare_model = model.clone().filter(|_| fts.is_some() && model_videos.is_some_and(|n| n < RARE_MODEL));
            let sorted = sort_column(query.sort);
            let (order, cursor) = if let Some((column, down)) = sorted {
                // By a score: that score's index, in gallery order among equal scores; the
                // words' matches (collected once) are a filter.
                sql.push(format!("videos v WHERE v.{column} IS NOT NULL"));
                if let Some(fts) = &fts {
                    sql.push(" AND v.sort_key IN (SELECT rowid FROM videos_fts WHERE videos_fts MATCH ")
                        .push_bind(fts.clone())
                        .push(")");
                }
                if down {
                    (
                        format!("v.{column} DESC, v.sort_key DESC"),
                        format!(" AND (v.{column}, v.sort_key) < (SELECT {column}, sort_key FROM videos WHERE id = "),
                    )
                } else {
                    (
                        format!("v.{column} ASC, v.sort_key ASC"),
                        format!(" AND (v.{column}, v.sort_key) > (SELECT {column}, sort_key FROM videos WHERE id = "),
                    )
                }
            } else if let (Some(fts), Some(model)) = (&fts, &rare_model) {
                sql.push("videos v INDEXED BY videos_by_model WHERE v.model = ")
                    .push_bind(model.clone())
                    .push(" AND v.sort_key IN (SELECT rowid FROM videos_fts WHERE videos_fts MATCH ")
                    .push_bind(fts.clone())
                    .push(")");
                ("v.sort_key DESC".into(), " AND v.sort_key < (SELECT sort_key FROM videos WHERE id = ".into())
            } else if let Some(fts) = fts {
                sql.push("videos_fts CROSS JOIN videos v ON v.sort_key = videos_fts.rowid WHERE videos_fts MATCH ")
                    .push_bind(fts);
                (
                    "videos_fts.rowid DESC".into(),
                    " AND videos_fts.rowid < (SELECT sort_key FROM videos WHERE id = ".into(),
                )
            } else {
                sql.push("videos v WHERE 1");
                (
                    "v.created_ms DESC, v.id DESC".into(),
                    " AND (v.created_ms, v.id) < (SELECT created_ms, id FROM videos WHERE id = ".into(),
                )
            };
            if let Some(mode) = query.mode {
                sql.push(" AND v.mode = ").push_bind(mode.as_str());
            }
            if let Some(model) = model.filter(|_| rare_model.is_none() || sorted.is_some()) {
                sql.push(" AND v.model = ").push_bind(model);
            }
            if query.favorites {
                sql.push(" AND v.favorite = 1");
            }
            if let Some(flag) = query.flag {
                sql.push(" AND v.flag = ").push_bind(flag.as_str());
            }
            if let Some(group) = query.group.filter(|g| !g.is_empty()) {
                sql.push(" AND json_extract(v.params, '$.group') = ").push_bind(group);
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
            Ok(VideoPage { videos, next, visual: Vec::new() })
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

    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            scores::write(&mut conn, &id, &scores).await
        })
    }

    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(scores::unscored_clips(&self.pool, after, limit))
    }

    fn set_embedding(&self, id: String, model: String, vector: Vec<f32>) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { embeddings::set(&self.pool, &id, &model, &vector).await })
    }

    fn embeddings(&self, model: String) -> BoxFuture<'_, StoreResult<crate::storage::Embeddings>> {
        Box::pin(async move { embeddings::all(&self.pool, &model).await })
    }

    fn unembedded_clips(
        &self,
        model: String,
        after: Option<String>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move { embeddings::missing(&self.pool, &model, after, limit).await })
    }

    fn insert_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { votes::insert(&self.pool, &vote).await })
    }

    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>> {
        Box::pin(votes::recent(&self.pool, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{self, SEARCHES, check_against_reference, job, mixed_videos, video};

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vidplay-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("vidplay.db")
    }

    #[tokio::test]
    async fn sqlite_conforms() {
        conformance::run(&|name: &str| {
            let path = temp_db(&format!("conformance-{name}"));
            Box::pin(async move { Box::new(SqliteStore::open(&path).await.unwrap()) as Box<dyn Store> })
        })
        .await;
    }

    #[tokio::test]
    async fn nothing_is_lost_across_a_reopen() {
        let path = temp_db("reopen");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.enqueue(job("aaaa0001", 1, "a"), 2).await.unwrap());
        store.claim_next(100).await.unwrap().unwrap();
        store.insert_video(video("bbbb0001", 5, "a boat", Mode::TextToVideo)).await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.recover_interrupted(150).await.unwrap().requeued, ["aaaa0001"]);
        assert_eq!(store.job("aaaa0001".into()).await.unwrap().unwrap().params.prompt, "a");
        assert_eq!(store.video("bbbb0001".into()).await.unwrap().unwrap().metadata.details["note"], "kept");
    }

    /// Metadata written before it was versioned reads as typed metadata.
    #[tokio::test]
    async fn old_metadata_rows_still_read() {
        let store = SqliteStore::open(&temp_db("old-metadata")).await.unwrap();
        store.insert_video(video("dddd0003", 5, "old", Mode::TextToVideo)).await.unwrap();
        let old = r#"{"model":"vidplay-toy-1","mode":"text-to-video","prompt":"old","parameters":{"frames":12,"fps":6,"steps":20,"seed":3},"seed":3,"resolution":{"native":[32,32],"display":[256,256],"upscale_filter":"catmull-rom"},"device":"cpu","timings":{"sampling_s":1.5}}"#;
        sqlx::query("UPDATE videos SET metadata = ? WHERE id = 'dddd0003'")
            .bind(old)
            .execute(&store.pool)
            .await
            .unwrap();
        let v = store.video("dddd0003".into()).await.unwrap().unwrap();
        assert_eq!((v.metadata.version, v.metadata.params.frames, v.metadata.resolution.display), (1, 12, [256, 256]));
        assert_eq!(v.metadata.timings.sampling_s, 1.5);
    }

    #[test]
    fn fts_queries_are_always_valid() {
        assert_eq!(fts_query("red ball"), Some("\"red\"* \"ball\"*".into()));
        assert_eq!(fts_query("  \"*^()- OR NEAR:  "), Some("\"or\"* \"near\"*".into()));
        assert_eq!(fts_query("\"*^()-:"), None);
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
        sqlx::query("UPDATE jobs SET params = '{\"prompt\": 5}' WHERE id = 'cccc0001'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.recent_prompts(5).await.unwrap(), ["b"]);
    }
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
            let v = video(
                &format!("fffe{i:04x}"),
                70,
                if i % 2 == 0 { "red star" } else { "blue ball" },
                Mode::ImageToVideo,
            );
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
                .bind(serde_json::to_string(&v.metadata).unwrap())
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
