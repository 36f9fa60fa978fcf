//! The gallery in PostgreSQL: saving a video, and one page of a search in gallery order.
//!
//! The order and the matches are the SQLite store's: newest first by (created_ms, id), or by a
//! score with that order among equal scores; every search word must begin a word of the prompt.
//! `websearch_to_tsquery` has no prefix matching, so the query is built from the same words
//! (letters and digits only, so it cannot be a syntax error) as `word:* & word:*`.
//!
//! The tests check that both stores give the same ids in the same order (RECENT_WINDOW is
//! small there, so both ways of finding a page are taken).

use super::PostgresStore;
use super::json;
use crate::storage::GalleryStore;
use crate::storage::rows;
use crate::storage::{MAX_PAGE, StoreError, StoreResult, search_words, sort_column};
use app::types::{Video, VideoPage, VideoQuery};
use futures_util::future::BoxFuture;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

pub(super) const VIDEO_COLUMNS: &str = "v.id, v.mode, v.params, v.metadata, v.created_ms, v.owner, v.scores";

/// The tsquery text for a search, `None` when it has no words.
pub fn tsquery(text: &str) -> Option<String> {
    let words = search_words(text);
    (!words.is_empty()).then(|| words.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & "))
}

pub(super) async fn insert(pool: &PgPool, video: Video) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, owner) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&video.id)
    .bind(video.mode.as_str())
    .bind(&video.params.model)
    .bind(&video.params.prompt)
    .bind(json(&video.params)?)
    .bind(json(&video.metadata)?)
    .bind(video.created_ms)
    .bind(&video.owner)
    .execute(&mut *tx)
    .await?;
    if let Some(scores) = &video.scores {
        super::scores::write_scores(&mut *tx, &video.id, scores).await?;
    }
    if video.favorite {
        sqlx::query("INSERT INTO favorites (person, video_id) VALUES ($1, $2)")
            .bind(&video.owner)
            .bind(&video.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many of the newest videos a search in gallery order looks through before it asks the
/// prompt index for every match (see [`page`]); fewer in tests, so both ways are taken.
#[cfg(not(test))]
const RECENT_WINDOW: i64 = 2_000;
#[cfg(test)]
const RECENT_WINDOW: i64 = 100;

/// One page of the gallery. A search in gallery order first looks for its page among the
/// newest [`RECENT_WINDOW`] videos (walking the time index, cheap however common the words
/// are): when the page and one more are there, they are the newest matches of all. Otherwise
/// (rare words) the prompt index finds every match and the newest are picked.
pub(super) async fn page(pool: &PgPool, query: VideoQuery) -> StoreResult<VideoPage> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let words = tsquery(&query.q);
    let mut rows = Vec::new();
    if let Some(words) = words.as_ref().filter(|_| sort_column(query.sort).is_none()) {
        let mut sql =
            QueryBuilder::<Postgres>::new(format!("SELECT {VIDEO_COLUMNS} FROM (SELECT * FROM videos v WHERE TRUE"));
        let order = filters(&mut sql, &query);
        sql.push(" ORDER BY ").push(order.clone()).push(" LIMIT ").push_bind(RECENT_WINDOW);
        sql.push(") v WHERE v.prompt_words @@ to_tsquery('simple', ").push_bind(words.clone()).push(")");
        sql.push(" ORDER BY ").push(order).push(" LIMIT ").push_bind(limit as i64 + 1);
        rows = sql.build().fetch_all(pool).await?;
    }
    if rows.len() <= limit as usize {
        let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE TRUE"));
        if let Some(words) = words {
            sql.push(" AND v.prompt_words @@ to_tsquery('simple', ").push_bind(words).push(")");
        }
        let order = filters(&mut sql, &query);
        sql.push(" ORDER BY ").push(order).push(" LIMIT ").push_bind(limit as i64 + 1);
        rows = sql.build().fetch_all(pool).await?;
    }
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.try_get::<String, _>("id")).transpose()?
    } else {
        None
    };
    // A row that cannot be read is left out (and logged), never an error for the page.
    let mut videos = Vec::with_capacity(rows.len());
    for row in &rows {
        match rows::video(row) {
            Ok(v) => videos.push(v),
            Err(StoreError::Corrupt(why)) => tracing::warn!("unreadable video record left out: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(VideoPage { videos, next, visual: Vec::new() })
}

/// Adds the query's filters (all but the words) and its cursor to `sql`, whose table is `v`;
/// returns the order.
fn filters(sql: &mut QueryBuilder<Postgres>, query: &VideoQuery) -> String {
    let (order, cursor) = match sort_column(query.sort) {
        Some((column, down)) => {
            sql.push(format!(" AND v.{column} IS NOT NULL"));
            let (dir, cmp) = if down { ("DESC", "<") } else { ("ASC", ">") };
            (
                format!("v.{column} {dir}, v.created_ms {dir}, v.id {dir}"),
                format!(
                    " AND (v.{column}, v.created_ms, v.id) {cmp} (SELECT {column}, created_ms, id FROM videos WHERE id = "
                ),
            )
        }
        None => (
            "v.created_ms DESC, v.id DESC".into(),
            " AND (v.created_ms, v.id) < (SELECT created_ms, id FROM videos WHERE id = ".into(),
        ),
    };
    if let Some(mode) = query.mode {
        sql.push(" AND v.mode = ").push_bind(mode.as_str());
    }
    if let Some(model) = query.model.clone().filter(|m| !m.is_empty()) {
        sql.push(" AND v.model = ").push_bind(model);
    }
    if query.favorites {
        sql.push(" AND v.id IN (SELECT video_id FROM favorites WHERE person = ")
            .push_bind(query.favorites_of.clone())
            .push(")");
    }
    if let Some(flag) = query.flag {
        sql.push(" AND v.flag = ").push_bind(flag.as_str());
    }
    if let Some(group) = query.group.clone().filter(|g| !g.is_empty()) {
        sql.push(" AND v.params->>'group' = ").push_bind(group);
    }
    if let Some(before) = query.before.clone() {
        sql.push(cursor).push_bind(before).push(")");
    }
    order
}

impl GalleryStore for PostgresStore {
    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM videos WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            Ok(found)
        })
    }

    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(insert(&self.pool, video))
    }

    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {} FROM videos v WHERE v.id = $1", VIDEO_COLUMNS));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(rows::video).transpose()
        })
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>> {
        Box::pin(page(&self.pool, query))
    }

    fn count_videos(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos").fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn set_favorite(&self, person: String, id: String, favorite: bool) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            if favorite {
                // Through the video's row: a video deleted meanwhile gets no mark.
                sqlx::query(
                    "INSERT INTO favorites (person, video_id) SELECT $1, id FROM videos WHERE id = $2 ON CONFLICT DO NOTHING",
                )
                .bind(person)
                .bind(&id)
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query("DELETE FROM favorites WHERE person = $1 AND video_id = $2")
                    .bind(person)
                    .bind(&id)
                    .execute(&self.pool)
                    .await?;
            }
            self.video_exists(id).await
        })
    }

    fn favorites_among(&self, person: String, ids: Vec<String>) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT video_id FROM favorites WHERE person = $1 AND video_id = ANY($2)")
                .bind(person)
                .bind(ids)
                .fetch_all(&self.pool)
                .await?)
        })
    }

    fn favorited_by(&self, id: String) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT person FROM favorites WHERE video_id = $1 ORDER BY person")
                .bind(id)
                .fetch_all(&self.pool)
                .await?)
        })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM videos WHERE id = $1").bind(id).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
