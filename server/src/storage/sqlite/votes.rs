//! Comparisons and their votes in SQLite (`candidates` and `reasons` as JSON arrays), and the
//! leaderboard's sums.

use super::SqliteStore;
use super::corrupt;
use crate::storage::rows::{self, VOTE_COLUMNS};
use crate::storage::{StoreResult, VoteStore};
use app::votes::{Comparison, GroupBy, PairCount, Vote};
use futures_util::future::BoxFuture;
use sqlx::SqlitePool;

async fn open_comparison(pool: &SqlitePool, c: Comparison) -> StoreResult<Comparison> {
    sqlx::query(
        "INSERT INTO comparisons (id, created_ms, candidates, blind) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&c.id)
    .bind(c.created_ms)
    .bind(serde_json::to_string(&c.candidates).map_err(corrupt)?)
    .bind(c.blind as i64)
    .execute(pool)
    .await?;
    comparison(pool, c.id).await?.ok_or_else(|| corrupt("a comparison just kept is gone"))
}

async fn comparison(pool: &SqlitePool, id: String) -> StoreResult<Option<Comparison>> {
    let row = sqlx::query("SELECT id, created_ms, candidates, blind FROM comparisons WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::comparison).transpose()
}

async fn cast(pool: &SqlitePool, mut vote: Vote) -> StoreResult<Vote> {
    vote.id = sqlx::query_scalar(
        "INSERT INTO votes (id, created_ms, comparison_id, voter, axis, winner, candidates, reasons, blind) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (comparison_id, axis, voter) WHERE comparison_id IS NOT NULL DO UPDATE SET \
         created_ms = excluded.created_ms, winner = excluded.winner, reasons = excluded.reasons \
         RETURNING id",
    )
    .bind(&vote.id)
    .bind(vote.created_ms)
    .bind(&vote.comparison)
    .bind(&vote.voter)
    .bind(vote.axis.as_str())
    .bind(&vote.winner)
    .bind(serde_json::to_string(&vote.candidates).map_err(corrupt)?)
    .bind(serde_json::to_string(&vote.reasons).map_err(corrupt)?)
    .bind(vote.blind as i64)
    .fetch_one(pool)
    .await?;
    Ok(vote)
}

/// The most recent votes first; a row that cannot be read is left out (and logged).
async fn recent(pool: &SqlitePool, limit: u32) -> StoreResult<Vec<Vote>> {
    let sql =
        sqlx::AssertSqlSafe(format!("SELECT {VOTE_COLUMNS} FROM votes ORDER BY created_ms DESC, id DESC LIMIT ?"));
    rows::votes(&sqlx::query(sql).bind(limit as i64).fetch_all(pool).await?)
}

/// The group of video `v` by `by`, as SQL: its model, or a setting of its parameters as JSON
/// text (exact for any seed, where a number read as SQL would round seeds past 2^63).
fn group_of(v: &str, by: GroupBy) -> String {
    match by {
        GroupBy::Model => format!("{v}.model"),
        setting => format!("({v}.params -> '$.{}')", setting.as_str()),
    }
}

/// Each vote's winner against every other result it compared, both still in the gallery.
const PAIRS: &str = "FROM votes v \
     JOIN json_each(v.candidates) c ON c.value <> v.winner \
     JOIN videos w ON w.id = v.winner \
     JOIN videos l ON l.id = c.value";

async fn pair_counts(pool: &SqlitePool, by: GroupBy) -> StoreResult<(Vec<PairCount>, u32)> {
    let (w, l) = (group_of("w", by), group_of("l", by));
    let sql = format!("SELECT v.axis AS axis, {w} AS winner, {l} AS loser, COUNT(*) AS n {PAIRS} GROUP BY 1, 2, 3");
    let pairs = rows::pair_counts(&sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?, by)?;
    let sql = format!("SELECT COUNT(DISTINCT v.id) {PAIRS} WHERE {w} IS NOT {l}");
    let votes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
    Ok((pairs, votes as u32))
}

async fn voter_key(pool: &SqlitePool, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES ('voter', ?) ON CONFLICT (name) DO NOTHING")
        .bind(fresh)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT value FROM secrets WHERE name = 'voter'").fetch_one(pool).await?)
}

impl VoteStore for SqliteStore {
    fn open_comparison(&self, comparison: Comparison) -> BoxFuture<'_, StoreResult<Comparison>> {
        Box::pin(open_comparison(&self.pool, comparison))
    }

    fn comparison(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Comparison>>> {
        Box::pin(comparison(&self.pool, id))
    }

    fn cast_vote(&self, vote: Vote) -> BoxFuture<'_, StoreResult<Vote>> {
        Box::pin(cast(&self.pool, vote))
    }

    fn votes(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<Vote>>> {
        Box::pin(recent(&self.pool, limit))
    }

    fn pair_counts(&self, by: GroupBy) -> BoxFuture<'_, StoreResult<(Vec<PairCount>, u32)>> {
        Box::pin(pair_counts(&self.pool, by))
    }

    fn voter_key(&self, fresh: Vec<u8>) -> BoxFuture<'_, StoreResult<Vec<u8>>> {
        Box::pin(voter_key(&self.pool, fresh))
    }
}
