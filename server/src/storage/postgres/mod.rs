//! The [`Store`] in PostgreSQL (sqlx): one database that a web node and any number of GPU
//! workers on other machines share. Jobs are claimed with `FOR UPDATE SKIP LOCKED`, so two
//! workers never take the same job; the gallery is searched through a generated `tsvector`
//! column with a GIN index. Each concern of the store is its own module: the queue (`jobs`),
//! what workers hold (`leases`), what processes tell each other (`notices`), the gallery,
//! scores, embeddings and votes; the rows they share are decoded here.

use super::{StoreError, StoreResult, corrupt, unreadable_job};
use app::results::ResultMeta;
use app::types::{Job, JobParams, JobState, Mode, Video};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row, SqlSafeStr};
use std::str::FromStr;
use std::time::Duration;

mod embeddings;
mod gallery;
mod jobs;
mod leases;
mod notices;
mod scores;
mod votes;

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

#[cfg(test)]
mod tests;
