//! Clip scores in SQLite: the JSON and the columns the gallery sorts and filters by, and the
//! clips the backfill still has to measure.

use super::SqliteStore;
use super::corrupt;
use crate::storage::ScoreStore;
use crate::storage::StoreResult;
use app::scores::{SCORES_VERSION, Scores};
use futures_util::future::BoxFuture;
use sqlx::SqlitePool;

/// Writes a video's scores and the columns derived from them; false when there is no such video.
pub(super) async fn write(conn: &mut sqlx::SqliteConnection, id: &str, scores: &Scores) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE videos SET scores = ?, motion = ?, sharpness = ?, smoothness = ?, consistency = ?, flag = ? WHERE id = ?")
        .bind(serde_json::to_string(scores).map_err(corrupt)?)
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
pub(super) async fn unscored_clips(pool: &SqlitePool, after: Option<String>, limit: u32) -> StoreResult<Vec<String>> {
    let ids = sqlx::query_scalar(
        "SELECT id FROM videos WHERE (scores IS NULL OR COALESCE(json_extract(scores, '$.version'), 0) < ?) \
         AND mode NOT IN ('text-to-image', 'edit') AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(SCORES_VERSION as i64)
    .bind(after.unwrap_or_default())
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

impl ScoreStore for SqliteStore {
    fn set_scores(&self, id: String, scores: Scores) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            write(&mut conn, &id, &scores).await
        })
    }

    fn unscored_clips(&self, after: Option<String>, limit: u32) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(unscored_clips(&self.pool, after, limit))
    }
}
