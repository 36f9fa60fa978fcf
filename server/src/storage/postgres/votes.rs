//! Comparisons and their votes in PostgreSQL, and the leaderboard's sums.

use super::{PostgresStore, json};
use crate::storage::rows::{self, VOTE_COLUMNS};
use crate::storage::{StoreResult, VoteStore, corrupt};
use app::votes::{Comparison, GroupBy, PairCount, Vote};
use futures_util::future::BoxFuture;
use sqlx::PgPool;

async fn open_comparison(pool: &PgPool, c: Comparison) -> StoreResult<Comparison> {
    sqlx::query(
        "INSERT INTO comparisons (id, created_ms, candidates, blind) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&c.id)
    .bind(c.created_ms)
    .bind(json(&c.candidates)?)
    .bind(c.blind)
    .execute(pool)
    .await?;
    comparison(pool, c.id).await?.ok_or_else(|| corrupt("a comparison just kept is gone"))
}

async fn comparison(pool: &PgPool, id: String) -> StoreResult<Option<Comparison>> {
    let row = sqlx::query("SELECT id, created_ms, candidates, blind FROM comparisons WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::comparison).transpose()
}

async fn cast(pool: &PgPool, mut vote: Vote) -> StoreResult<Vote> {
    vote.id = sqlx::query_scalar(
        "INSERT INTO votes (id, created_ms, comparison_id, voter, axis, winner, candidates, reasons, blind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
    .bind(json(&vote.candidates)?)
    .bind(json(&vote.reasons)?)
    .bind(vote.blind)
    .fetch_one(pool)
    .await?;
    Ok(vote)
}

/// The most recent votes first; a row that cannot be read is left out (and logged).
async fn votes(pool: &PgPool, limit: u32) -> StoreResult<Vec<Vote>> {
    let sql =
        sqlx::AssertSqlSafe(format!("SELECT {VOTE_COLUMNS} FROM votes ORDER BY created_ms DESC, id DESC LIMIT $1"));
    rows::votes(&sqlx::query(sql).bind(limit as i64).fetch_all(pool).await?)
}

/// The group of video `v` by `by`, as SQL: its model, or a setting of its parameters as text.
fn group_of(v: &str, by: GroupBy) -> String {
    match by {
        GroupBy::Model => format!("{v}.model"),
        setting => format!("({v}.params ->> '{}')", setting.as_str()),
    }
}

/// Each vote's winner against every other result it compared, both still in the gallery.
const PAIRS: &str = "FROM votes v \
     CROSS JOIN LATERAL jsonb_array_elements_text(v.candidates) AS c(value) \
     JOIN videos w ON w.id = v.winner \
     JOIN videos l ON l.id = c.value \
     WHERE c.value <> v.winner";

async fn pair_counts(pool: &PgPool, by: GroupBy) -> StoreResult<(Vec<PairCount>, u32)> {
    let (w, l) = (group_of("w", by), group_of("l", by));
    let sql = format!("SELECT v.axis AS axis, {w} AS winner, {l} AS loser, COUNT(*) AS n {PAIRS} GROUP BY 1, 2, 3");
    let pairs = rows::pair_counts(&sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?, by)?;
    let sql = format!("SELECT COUNT(DISTINCT v.id) {PAIRS} AND {w} IS DISTINCT FROM {l}");
    let votes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
    Ok((pairs, votes as u32))
}

async fn voter_key(pool: &PgPool, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES ('voter', $1) ON CONFLICT (name) DO NOTHING")
        .bind(fresh)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT value FROM secrets WHERE name = 'voter'").fetch_one(pool).await?)
}

impl VoteStore for PostgresStore {
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
        Box::pin(votes(&self.pool, limit))
    }

    fn pair_counts(&self, by: GroupBy) -> BoxFuture<'_, StoreResult<(Vec<PairCount>, u32)>> {
        Box::pin(pair_counts(&self.pool, by))
    }

    fn voter_key(&self, fresh: Vec<u8>) -> BoxFuture<'_, StoreResult<Vec<u8>>> {
        Box::pin(voter_key(&self.pool, fresh))
    }
}
