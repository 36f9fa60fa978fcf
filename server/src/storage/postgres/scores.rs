//! Clip scores in PostgreSQL: the JSON and the columns the gallery sorts and filters by, and the
//! clips the backfill still has to measure.

use super::{PostgresStore, json};
use crate::storage::{ScoreStore, StoreResult};
use app::scores::{SCORES_VERSION, Scores};
use futures_util::future::BoxFuture;
use sqlx::{PgExecutor, PgPool};

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

impl ScoreStore for PostgresStore {
    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { write_scores(&self.pool, &id, &scores).await })
    }

    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(unscored_clips(&self.pool, after, limit))
    }
}
