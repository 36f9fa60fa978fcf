//! Comparisons' votes in PostgreSQL.

use super::{PostgresStore, json};
use crate::storage::{StoreError, StoreResult, VoteStore, corrupt};
use app::votes::{Vote, VoteAxis};
use futures_util::future::BoxFuture;
use sqlx::{PgPool, Row};

pub(super) async fn insert_vote(pool: &PgPool, vote: &Vote) -> StoreResult<()> {
    sqlx::query("INSERT INTO votes (id, created_ms, axis, winner, candidates, reasons, blind) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&vote.id)
        .bind(vote.created_ms)
        .bind(vote.axis.as_str())
        .bind(&vote.winner)
        .bind(json(&vote.candidates)?)
        .bind(json(&vote.reasons)?)
        .bind(vote.blind)
        .execute(pool)
        .await?;
    Ok(())
}

/// The most recent votes first; a row that cannot be read is left out (and logged).
pub(super) async fn votes(pool: &PgPool, limit: u32) -> StoreResult<Vec<Vote>> {
    let rows = sqlx::query("SELECT id, created_ms, axis, winner, candidates, reasons, blind FROM votes ORDER BY created_ms DESC, id DESC LIMIT $1")
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    let mut votes = Vec::with_capacity(rows.len());
    for row in &rows {
        match read_vote(row) {
            Ok(v) => votes.push(v),
            Err(StoreError::Corrupt(why)) => tracing::warn!("unreadable vote left out: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(votes)
}

fn read_vote(row: &sqlx::postgres::PgRow) -> StoreResult<Vote> {
    let axis: String = row.try_get("axis")?;
    Ok(Vote {
        id: row.try_get("id")?,
        created_ms: row.try_get("created_ms")?,
        axis: VoteAxis::parse(&axis).ok_or_else(|| corrupt(format!("vote axis {axis:?}")))?,
        winner: row.try_get("winner")?,
        candidates: serde_json::from_value(row.try_get("candidates")?).map_err(corrupt)?,
        reasons: serde_json::from_value(row.try_get("reasons")?).map_err(corrupt)?,
        blind: row.try_get("blind")?,
    })
}

impl VoteStore for PostgresStore {
    fn insert_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { insert_vote(&self.pool, &vote).await })
    }

    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>> {
        Box::pin(votes(&self.pool, limit))
    }
}
