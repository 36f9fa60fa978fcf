//! The [`Store`] in PostgreSQL (sqlx): one database that a web node and any number of GPU
//! workers on other machines share. Jobs are claimed with `FOR UPDATE SKIP LOCKED`, so two
//! workers never take the same job; the gallery is searched through a generated `tsvector`
//! column with a GIN index. The gallery (`gallery`), clip scores, embeddings and votes
//! (`extras`) have their own modules.

use super::{CRASHED_TWICE, Claim, Lease, Notice, Recovered, Store, StoreError, StoreResult, corrupt, unreadable_job};
use app::results::ResultMeta;
use app::scores::Scores;
use app::types::{Job, JobParams, JobState, Mode, Video, VideoPage, VideoQuery, WorkerStatus};
use app::votes::Vote;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row, SqlSafeStr};
use std::str::FromStr;
use std::time::Duration;

mod extras;
mod gallery;
mod leases;
mod notices;

/// A PostgreSQL database, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
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
        migration(1, "jobs, videos, search, scores, votes and embeddings", include_str!("migrations/0001_init.sql")),
        migration(2, "worker leases", include_str!("migrations/0002_leases.sql")),
        migration(3, "workers preparing GPU kernels", include_str!("migrations/0003_worker_warm_up.sql")),
    ])
}

/// The URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unreadable database URL)".into(),
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PostgresStore {
    /// Connects (waiting up to `wait` for the server) and brings the schema up to date; the
    /// migrations hold a lock, so workers starting together migrate once.
    pub async fn connect(url: &str, wait: Duration) -> StoreResult<Self> {
        let shown = redacted(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("{shown} is not a usable PostgreSQL URL: {e}")))?;
        // A first connection of its own, so an unreachable server is reported at once (the
        // pool would keep trying for its whole acquire timeout).
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            use sqlx::Connection;
            match sqlx::PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!("waiting for the database at {shown}: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(StoreError::Database(format!("cannot connect to the database at {shown}: {e}"))),
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // A connection broken by a server restart is found out before it is handed out.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        migrations().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for the queue's notifications and leases.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const JOB_COLUMNS: &str =
    "id, state, mode, params, created_ms, started_ms, finished_ms, step, total, message, video_id, owner";

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let state: String = row.try_get("state")?;
    let mode: String = row.try_get("mode")?;
    let params: serde_json::Value = row.try_get("params")?;
    Ok(Job {
        id: row.try_get("id")?,
        state: JobState::parse(&state).ok_or_else(|| corrupt(format!("job state {state:?}")))?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_value::<JobParams>(params).map_err(corrupt)?,
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

/// A job row for listings: one that cannot be read shows as failed with the reason.
fn job_or_failed(row: &PgRow) -> StoreResult<Job> {
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

fn video_from_row(row: &PgRow) -> StoreResult<Video> {
    let mode: String = row.try_get("mode")?;
    let params: serde_json::Value = row.try_get("params")?;
    let metadata: serde_json::Value = row.try_get("metadata")?;
    Ok(Video {
        id: row.try_get("id")?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_value(params).map_err(corrupt)?,
        created_ms: row.try_get("created_ms")?,
        favorite: row.try_get("favorite")?,
        metadata: ResultMeta::from_value(metadata),
        // Scores that cannot be read are measured again, never an error for the video.
        scores: row.try_get::<Option<serde_json::Value>, _>("scores")?.and_then(|s| serde_json::from_value(s).ok()),
    })
}

fn json(value: &impl serde::Serialize) -> StoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(corrupt)
}

/// Serialises the queue-limit check and insert of every submit (a transaction-scoped lock).
const ENQUEUE_LOCK: i64 = 0x7669_6470_6c61_7901;

impl Store for PostgresStore {
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ENQUEUE_LOCK).execute(&mut *tx).await?;
            let result = sqlx::query(
                "INSERT INTO jobs (id, state, mode, params, created_ms, step, total, message, owner) \
                 SELECT $1, 'queued', $2, $3, $4, 0, $5, $6, $7 \
                 WHERE (SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND owner = $7) < $8",
            )
            .bind(&job.id)
            .bind(job.mode.as_str())
            .bind(json(&job.params)?)
            .bind(job.created_ms)
            .bind(job.total as i64)
            .bind(&job.message)
            .bind(&job.owner)
            .bind(limit as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(job_or_failed).transpose()
        })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_ms DESC, id DESC LIMIT $1"
            ));
            let rows = sqlx::query(sql).bind(limit as i64).fetch_all(&self.pool).await?;
            rows.iter().map(job_or_failed).collect()
        })
    }

    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE jobs SET state = $1, params = $2, started_ms = $3, finished_ms = $4, step = $5, \
                 total = $6, message = $7, video_id = $8, \
                 attempts = CASE WHEN $1 = 'queued' THEN 0 ELSE attempts END WHERE id = $9",
            )
            .bind(job.state.as_str())
            .bind(json(&job.params)?)
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
            let sql = format!(
                "UPDATE jobs SET state = 'running', started_ms = $1, attempts = attempts + 1, worker = $2, \
                 lease_until_ms = $3, cancel_requested = FALSE WHERE id = \
                 (SELECT id FROM jobs WHERE state = 'queued' \
                  AND (cardinality($4::text[]) = 0 OR params->>'model' = ANY($4)) \
                  ORDER BY (SELECT MAX(j.started_ms) FROM jobs j WHERE j.owner = jobs.owner) ASC NULLS FIRST, \
                  COALESCE(params->>'model' = ANY($5), FALSE) DESC, created_ms, id \
                  LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING {JOB_COLUMNS}"
            );
            let now_ms = claim.now_ms;
            loop {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(now_ms)
                    .bind(&claim.worker)
                    .bind(claim.lease_ms.map(|ms| now_ms + ms))
                    .bind(&claim.models)
                    .bind(&claim.loaded)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                match job_from_row(&row) {
                    Err(StoreError::Corrupt(why)) => {
                        // Never run (or claim again and again) a job that cannot be read.
                        let id: String = row.try_get("id")?;
                        tracing::warn!(%id, "unreadable queued job failed: {why}");
                        sqlx::query("UPDATE jobs SET state = 'failed', finished_ms = $1, message = $2 WHERE id = $3")
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

    fn shared(&self) -> bool {
        true
    }

    fn announce(&self, notice: Notice, preview: Option<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(notices::announce(&self.pool, notice, preview))
    }

    fn notices(&self) -> BoxFuture<'_, StoreResult<Option<BoxStream<'static, Notice>>>> {
        Box::pin(async move { Ok(Some(notices::listen(&self.pool).await?)) })
    }

    fn preview(&self, id: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move { notices::preview(&self.pool, &id).await })
    }

    fn cancel_queued(&self, id: String, now_ms: i64) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_ms = $1, message = 'cancelled before it started' \
                 WHERE id = $2 AND state = 'queued'",
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
                "UPDATE jobs SET state = 'done', video_id = id, finished_ms = $1, step = total, message = NULL \
                 WHERE state = 'running' AND id IN (SELECT id FROM videos) RETURNING id",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            let failed = sqlx::query_scalar(
                "UPDATE jobs SET state = 'failed', finished_ms = $1, message = $2 \
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
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND owner = $1")
                .bind(owner)
                .fetch_one(&self.pool)
                .await?;
            Ok(n as u64)
        })
    }

    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT params->>'prompt' AS prompt FROM jobs \
                 WHERE jsonb_typeof(params->'prompt') = 'string' AND params->>'prompt' <> '' \
                 GROUP BY prompt ORDER BY MAX(created_ms) DESC LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows)
        })
    }

    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM videos WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            Ok(found)
        })
    }

    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(gallery::insert(&self.pool, video))
    }

    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {} FROM videos v WHERE v.id = $1", gallery::VIDEO_COLUMNS));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(video_from_row).transpose()
        })
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>> {
        Box::pin(gallery::page(&self.pool, query))
    }

    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos").fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("UPDATE videos SET favorite = $1 WHERE id = $2")
                .bind(favorite)
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM videos WHERE id = $1").bind(id).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { extras::write_scores(&self.pool, &id, &scores).await })
    }

    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(extras::unscored_clips(&self.pool, after, limit))
    }

    fn set_embedding(&self, id: String, model: String, vector: Vec<f32>) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { extras::set_embedding(&self.pool, &id, &model, &vector).await })
    }

    fn embeddings(&self, model: String) -> BoxFuture<'_, StoreResult<crate::storage::Embeddings>> {
        Box::pin(async move { extras::embeddings(&self.pool, &model).await })
    }

    fn unembedded_clips(
        &self,
        model: String,
        after: Option<String>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move { extras::unembedded_clips(&self.pool, &model, after, limit).await })
    }

    fn insert_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { extras::insert_vote(&self.pool, &vote).await })
    }

    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>> {
        Box::pin(extras::votes(&self.pool, limit))
    }
}

#[cfg(test)]
mod tests;
