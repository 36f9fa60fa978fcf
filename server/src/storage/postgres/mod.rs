//! The [`Store`] in PostgreSQL (sqlx): one database that a web node and any number of GPU
//! workers on other machines share. Jobs are claimed with `FOR UPDATE SKIP LOCKED`, so two
//! workers never take the same job; the gallery is searched through a generated `tsvector`
//! column with a GIN index. Each concern of the store is its own module: the queue (`jobs`),
//! what workers hold (`leases`), what processes tell each other (`notices`), the gallery,
//! scores, embeddings and votes; the rows they share are decoded here.

use super::rows::RowRead;
use super::{StoreError, StoreResult, corrupt};
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
        migration(4, "the image a job starts from", include_str!("migrations/0004_job_input.sql")),
        migration(5, "owners and favourites per person", include_str!("migrations/0005_owners_and_favorites.sql")),
        migration(6, "comparisons and one vote per voter", include_str!("migrations/0006_comparisons.sql")),
        migration(
            7,
            "kept latents of failed decodes, decided results",
            include_str!("migrations/0007_decodes_and_results.sql"),
        ),
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

impl RowRead for PgRow {
    super::rows::read_alike!();

    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.try_get(column)?)
    }

    /// JSONB: the database has checked it.
    fn json(&self, column: &str) -> StoreResult<serde_json::Value> {
        Ok(self.try_get(column)?)
    }

    fn optional_json(&self, column: &str) -> StoreResult<Option<serde_json::Value>> {
        Ok(self.try_get(column)?)
    }
}

fn json(value: &impl serde::Serialize) -> StoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(corrupt)
}

/// Serialises the queue-limit check and insert of every submit (a transaction-scoped lock).
const ENQUEUE_LOCK: i64 = 0x7669_6470_6c61_7901;

#[cfg(test)]
mod tests;
