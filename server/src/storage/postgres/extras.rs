//! What the gallery keeps beside each video in PostgreSQL: clip scores (the JSON and the
//! columns the gallery sorts and filters by), CLIP embeddings per model (little-endian f32),
//! and comparison votes.

use super::json;
use crate::storage::{Embeddings, StoreError, StoreResult, corrupt, vector_bytes, vector_from_bytes};
use app::scores::{SCORES_VERSION, Scores};
use app::votes::{Vote, VoteAxis};
use sqlx::{PgExecutor, PgPool, Row};

/// Writes a video's scores and the columns derived from them; false when there is no such video.
pub(super) async fn write_scores(conn: impl PgExecutor<'_>, id: &str, scores: &Scores) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE videos SET scores = $1, motion = $2, sharpness = $3, smoothness = $4, consistency = $5, flag = $6 WHERE id = $7")
        .bind(json(scores)?)
        .bind(scores.motion as f64)
        .bind(scores.sharpness as f64)
        .bind(scores.smoothness as f64)
        .bind(scores.consistency as f64)
        .bind(scores.flag().as_str())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Clips (not still images) without scores of the current version, in id order after `after`.
pub(super) async fn unscored_clips(pool: &PgPool, after: Option<String>, limit: u32) -> StoreResult<Vec<String>> {
    let ids = sqlx::query_scalar(
        "SELECT id FROM videos WHERE (scores IS NULL OR CASE WHEN jsonb_typeof(scores->'version') = 'number' \
         THEN (scores->>'version')::numeric ELSE 0 END < $1) \
         AND mode NOT IN ('text-to-image', 'edit') AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(SCORES_VERSION as i64)
    .bind(after.unwrap_or_default())
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

/// Stores (or replaces) a clip's embedding; false when there is no such video.
pub(super) async fn set_embedding(pool: &PgPool, id: &str, model: &str, vector: &[f32]) -> StoreResult<bool> {
    let bytes = vector_bytes(vector);
    let r = sqlx::query(
        "INSERT INTO video_embeddings (video_id, model, vector) SELECT id, $1, $2 FROM videos WHERE id = $3 \
         ON CONFLICT (model, video_id) DO UPDATE SET vector = excluded.vector",
    )
    .bind(model)
    .bind(bytes)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Every embedding of `model`: (video id, vector).
pub(super) async fn embeddings(pool: &PgPool, model: &str) -> StoreResult<Embeddings> {
    let rows = sqlx::query("SELECT video_id, vector FROM video_embeddings WHERE model = $1")
        .bind(model)
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let bytes: Vec<u8> = row.try_get("vector")?;
        out.push((row.try_get("video_id")?, vector_from_bytes(&bytes)));
    }
    Ok(out)
}

/// Clips without an embedding of `model`, in id order after `after`.
pub(super) async fn unembedded_clips(
    pool: &PgPool,
    model: &str,
    after: Option<String>,
    limit: u32,
) -> StoreResult<Vec<String>> {
    let ids = sqlx::query_scalar(
        "SELECT v.id FROM videos v WHERE v.mode NOT IN ('text-to-image', 'edit') AND v.id > $1 \
         AND NOT EXISTS (SELECT 1 FROM video_embeddings e WHERE e.model = $2 AND e.video_id = v.id) ORDER BY v.id LIMIT $3",
    )
    .bind(after.unwrap_or_default())
    .bind(model)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

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
