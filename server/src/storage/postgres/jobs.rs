//! The job queue in PostgreSQL: jobs added, read, claimed (`FOR UPDATE SKIP LOCKED`, so two
//! workers never take the same job), cancelled and recovered after a crash.

use super::{ENQUEUE_LOCK, PostgresStore, json};
use crate::storage::rows::{self, JOB_COLUMNS};
use crate::storage::{CRASHED_TWICE, Claim, JobStore, Recovered, StoreError, StoreResult, unreadable_job};
use app::types::Job;
use futures_util::future::BoxFuture;
use sqlx::Row;

impl JobStore for PostgresStore {
    fn enqueue(&self, job: Job, limit: usize) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ENQUEUE_LOCK).execute(&mut *tx).await?;
            let result = sqlx::query(
                "INSERT INTO jobs (id, state, mode, params, created_ms, step, total, message, owner, input) \
                 SELECT $1, 'queued', $2, $3, $4, 0, $5, $6, $7, $9 \
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
            .bind(&job.input)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn import_job(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let params = json(&job.params)?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO NOTHING"
            ));
            let result = rows::bind_job(sqlx::query(sql), &job, params).execute(&self.pool).await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(rows::job_or_failed).transpose()
        })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_ms DESC, id DESC LIMIT $1"
            ));
            let rows = sqlx::query(sql).bind(limit as i64).fetch_all(&self.pool).await?;
            rows.iter().map(rows::job_or_failed).collect()
        })
    }

    fn update_job(&self, job: Job) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE jobs SET state = $1, params = $2, started_ms = $3, finished_ms = $4, step = $5, \
                 total = $6, message = $7, video_id = $8, decode_retries = $10, \
                 attempts = CASE WHEN $1 = 'queued' THEN 0 ELSE attempts END WHERE id = $9",
            )
            .bind(crate::storage::rows::state_column(job.state))
            .bind(json(&job.params)?)
            .bind(job.started_ms)
            .bind(job.finished_ms)
            .bind(job.step as i64)
            .bind(job.total as i64)
            .bind(&job.message)
            .bind(&job.video_id)
            .bind(&job.id)
            .bind(job.decode_retries.map(i64::from))
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
                match rows::job(&row) {
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

    fn cancel_queued(&self, id: String, now_ms: i64) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE jobs SET state = CASE WHEN decode_retries > 0 THEN 'failed' ELSE 'cancelled' END, finished_ms = $1, \
                 message = CASE WHEN decode_retries > 0 THEN 'decoding failed: the decode retry was cancelled. The sampled latents are kept.' \
                 ELSE 'cancelled before it started' END \
                 WHERE id = $2 AND state = 'queued'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn retry_decode(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'queued', decode_retries = decode_retries + 1, step = 0, \
                 started_ms = NULL, finished_ms = NULL, message = NULL, attempts = 0, worker = NULL, \
                 lease_until_ms = NULL, result_attempt = NULL, cancel_requested = FALSE \
                 WHERE id = $1 AND state = 'failed' AND decode_retries IS NOT NULL",
            )
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
                "UPDATE jobs SET state = 'failed', finished_ms = $1, message = $2, result_attempt = NULL \
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
}
