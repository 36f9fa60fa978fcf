//! Leases of running jobs, cancels asked of remote workers, and the workers' heartbeats in
//! PostgreSQL. A cancel is also announced (see [`super::notices`]), so the worker stops
//! within one step instead of at its next heartbeat.

use super::PostgresStore;
use super::json;
use super::notices::notify;
use crate::storage::LeaseStore;
use crate::storage::{Lease, Notice, NoticeKind, Recovered, StoreResult, lost_too_often};
use app::types::{Job, WorkerStatus};
use futures_util::future::BoxFuture;
use sqlx::{PgPool, Row};

pub(super) async fn renew(pool: &PgPool, id: &str, worker: &str, until_ms: i64) -> StoreResult<Lease> {
    let row: Option<bool> = sqlx::query_scalar(
        "UPDATE jobs SET lease_until_ms = CASE WHEN lease_until_ms IS NULL THEN NULL ELSE $1 END \
         WHERE id = $2 AND COALESCE(worker, '') = $3 AND state = 'running' RETURNING cancel_requested",
    )
    .bind(until_ms)
    .bind(id)
    .bind(worker)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(cancel_requested) => Lease::Held { cancel_requested },
        None => Lease::Lost,
    })
}

pub(super) async fn request_cancel(pool: &PgPool, id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let r = sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND state = 'running'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 1 {
        let notice = Notice { from: String::new(), kind: NoticeKind::Cancel { id: id.to_string() } };
        notify(&mut *tx, &notice).await?;
    }
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn finish(pool: &PgPool, job: &Job, worker: &str) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET state = $1, params = $2, started_ms = $3, finished_ms = $4, step = $5, total = $6, \
         message = $7, video_id = $8, decode_retries = $11, result_attempt = CASE WHEN $1 IN ('done', 'queued') THEN result_attempt END, lease_until_ms = NULL, cancel_requested = FALSE, \
         worker = CASE WHEN $1 = 'queued' THEN NULL ELSE worker END, \
         attempts = CASE WHEN $1 = 'queued' THEN 0 ELSE attempts END \
         WHERE id = $9 AND state = 'running' AND COALESCE(worker, '') = $10",
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
    .bind(worker)
    .bind(job.decode_retries.map(i64::from))
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM job_previews WHERE id = $1").bind(&job.id).execute(pool).await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn save_progress(pool: &PgPool, id: &str, worker: &str, step: u32, total: u32) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET step = $1, total = $2 WHERE id = $3 AND state = 'running' AND COALESCE(worker, '') = $4",
    )
    .bind(step as i64)
    .bind(total as i64)
    .bind(id)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn requeue_expired(pool: &PgPool, now_ms: i64, max_attempts: u32) -> StoreResult<Recovered> {
    let mut tx = pool.begin().await?;
    // The expired jobs, locked (a worker renewing one now waits, then finds it gone).
    const EXPIRED: &str = "id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms IS NOT NULL \
                           AND lease_until_ms < $1 FOR UPDATE)";
    let done = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'done', video_id = id, finished_ms = $1, step = total, message = NULL, lease_until_ms = NULL \
         WHERE {EXPIRED} AND id IN (SELECT id FROM videos) RETURNING id"
    )))
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    let cancelled = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = CASE WHEN decode_retries > 0 THEN 'failed' ELSE 'cancelled' END, finished_ms = $1, \
         message = CASE WHEN decode_retries > 0 THEN 'decoding failed: the decode retry was cancelled. The sampled latents are kept.' \
         ELSE 'cancelled' END, lease_until_ms = NULL, result_attempt = NULL \
         WHERE {EXPIRED} AND cancel_requested RETURNING id"
    )))
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    let failed = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'failed', finished_ms = $1, message = $2, lease_until_ms = NULL, result_attempt = NULL \
         WHERE {EXPIRED} AND attempts >= $3 RETURNING id"
    )))
    .bind(now_ms)
    .bind(lost_too_often(max_attempts))
    .bind(max_attempts as i32)
    .fetch_all(&mut *tx)
    .await?;
    let requeued = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'queued', step = 0, started_ms = NULL, worker = NULL, lease_until_ms = NULL, \
         message = 'its worker stopped answering; queued again' WHERE {EXPIRED} RETURNING id"
    )))
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Recovered { done, requeued, failed, cancelled })
}

pub(super) async fn worker_seen(pool: &PgPool, w: &WorkerStatus) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO workers (id, name, devices, models, loaded, current_job, started_ms, seen_ms, warm_up) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, devices = excluded.devices, models = excluded.models, \
         loaded = excluded.loaded, current_job = excluded.current_job, seen_ms = excluded.seen_ms, warm_up = excluded.warm_up",
    )
    .bind(&w.id)
    .bind(&w.name)
    .bind(json(&w.devices)?)
    .bind(json(&w.models)?)
    .bind(json(&w.loaded)?)
    .bind(&w.current_job)
    .bind(w.started_ms)
    .bind(w.seen_ms)
    .bind(w.warm_up.as_ref().map(json).transpose()?)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn workers(pool: &PgPool, since_ms: i64) -> StoreResult<Vec<WorkerStatus>> {
    let rows = sqlx::query("SELECT id, name, devices, models, loaded, current_job, started_ms, seen_ms, warm_up FROM workers WHERE seen_ms >= $1 ORDER BY seen_ms DESC, id")
        .bind(since_ms)
        .fetch_all(pool)
        .await?;
    let list = |row: &sqlx::postgres::PgRow, column: &str| -> StoreResult<Vec<String>> {
        Ok(serde_json::from_value(row.try_get::<serde_json::Value, _>(column)?).unwrap_or_default())
    };
    rows.iter()
        .map(|row| {
            Ok(WorkerStatus {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                devices: list(row, "devices")?,
                models: list(row, "models")?,
                loaded: list(row, "loaded")?,
                current_job: row.try_get("current_job")?,
                started_ms: row.try_get("started_ms")?,
                seen_ms: row.try_get("seen_ms")?,
                // A report this build cannot read shows as none rather than hiding the worker.
                warm_up: row
                    .try_get::<Option<serde_json::Value>, _>("warm_up")?
                    .and_then(|value| serde_json::from_value(value).ok()),
            })
        })
        .collect()
}

impl LeaseStore for PostgresStore {
    fn renew_lease(&self, id: String, worker: String, until_ms: i64) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move { renew(&self.pool, &id, &worker, until_ms).await })
    }

    fn request_cancel(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { request_cancel(&self.pool, &id).await })
    }

    fn finish_job(&self, job: Job, worker: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { finish(&self.pool, &job, &worker).await })
    }

    fn requeue_expired(&self, now_ms: i64, max_attempts: u32) -> BoxFuture<'_, StoreResult<Recovered>> {
        Box::pin(requeue_expired(&self.pool, now_ms, max_attempts))
    }

    fn worker_seen(&self, status: WorkerStatus) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { worker_seen(&self.pool, &status).await })
    }

    fn workers(&self, since_ms: i64) -> BoxFuture<'_, StoreResult<Vec<WorkerStatus>>> {
        Box::pin(workers(&self.pool, since_ms))
    }

    fn save_progress(&self, id: String, worker: String, step: u32, total: u32) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { save_progress(&self.pool, &id, &worker, step, total).await })
    }

    fn decide_result(&self, id: String, worker: String, attempt: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move {
            let decided: Option<Option<String>> = sqlx::query_scalar(
                "UPDATE jobs SET result_attempt = COALESCE(result_attempt, $1) \
                 WHERE id = $2 AND state = 'running' AND COALESCE(worker, '') = $3 RETURNING result_attempt",
            )
            .bind(attempt)
            .bind(id)
            .bind(worker)
            .fetch_optional(&self.pool)
            .await?;
            Ok(decided.flatten())
        })
    }

    fn latents_kept(&self, id: String, worker: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE jobs SET decode_retries = COALESCE(decode_retries, 0) \
                 WHERE id = $1 AND state = 'running' AND COALESCE(worker, '') = $2",
            )
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn decided_result(&self, id: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move {
            let decided: Option<Option<String>> = sqlx::query_scalar("SELECT result_attempt FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(decided.flatten())
        })
    }
}
