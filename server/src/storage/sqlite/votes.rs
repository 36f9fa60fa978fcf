//! Comparison votes in SQLite (`candidates` and `reasons` as JSON arrays).

use super::SqliteStore;
use super::corrupt;
use crate::storage::VoteStore;
use crate::storage::{StoreError, StoreResult};
use app::votes::{Vote, VoteAxis};
use futures_util::future::BoxFuture;
use sqlx::{Row, SqlitePool};

pub(super) async fn insert(pool: &SqlitePool, vote: &Vote) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO votes (id, created_ms, axis, winner, candidates, reasons, blind) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&vote.id)
    .bind(vote.created_ms)
    .bind(vote.axis.as_str())
    .bind(&vote.winner)
    .bind(serde_json::to_string(&vote.candidates).map_err(corrupt)?)
    .bind(serde_json::to_string(&vote.reasons).map_err(corrupt)?)
    .bind(vote.blind as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// The most recent votes first; a row that cannot be read is left out (and logged).
pub(super) async fn recent(pool: &SqlitePool, limit: u32) -> StoreResult<Vec<Vote>> {
    let rows = sqlx::query("SELECT id, created_ms, axis, winner, candidates, reasons, blind FROM votes ORDER BY created_ms DESC, id DESC LIMIT ?")
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    let mut votes = Vec::with_capacity(rows.len());
    for row in &rows {
        match read(row) {
            Ok(v) => votes.push(v),
            Err(StoreError::Corrupt(why)) => tracing::warn!("unreadable vote left out: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(votes)
}

fn read(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Vote> {
    let axis: String = row.try_get("axis")?;
    Ok(Vote {
        id: row.try_get("id")?,
        created_ms: row.try_get("created_ms")?,
        axis: VoteAxis::parse(&axis).ok_or_else(|| corrupt(format!("vote axis {axis:?}")))?,
        winner: row.try_get("winner")?,
        candidates: serde_json::from_str(&row.try_get::<String, _>("candidates")?).map_err(corrupt)?,
        reasons: serde_json::from_str(&row.try_get::<String, _>("reasons")?).map_err(corrupt)?,
        blind: row.try_get::<i64, _>("blind")? != 0,
    })
}

impl VoteStore for SqliteStore {
    fn insert_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { insert(&self.pool, &vote).await })
    }

    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>> {
        Box::pin(recent(&self.pool, limit))
    }
}
