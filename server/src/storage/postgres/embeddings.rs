//! CLIP embeddings per model in PostgreSQL (little-endian f32s), for visual search.

use super::PostgresStore;
use crate::storage::{EmbeddingStore, Embeddings, StoreResult, vector_bytes, vector_from_bytes};
use futures_util::future::BoxFuture;
use sqlx::{PgPool, Row};

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

impl EmbeddingStore for PostgresStore {
    fn set_embedding(&self, id: String, model: String, vector: Vec<f32>) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move { set_embedding(&self.pool, &id, &model, &vector).await })
    }

    fn embeddings(&self, model: String) -> BoxFuture<'_, StoreResult<crate::storage::Embeddings>> {
        Box::pin(async move { embeddings(&self.pool, &model).await })
    }

    fn unembedded_clips(
        &self,
        model: String,
        after: Option<String>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move { unembedded_clips(&self.pool, &model, after, limit).await })
    }
}
