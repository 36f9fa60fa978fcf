//! The gallery in SQLite: saving a video, one page of a search in gallery order (FTS5 over
//! prompts), favourites and deletes.

use super::{SqliteStore, VIDEO_COLUMNS};
use crate::storage::rows;
use crate::storage::{GalleryStore, MAX_PAGE, StoreError, StoreResult, corrupt, search_words, sort_column};
use app::types::{Video, VideoPage, VideoQuery};
use futures_util::future::BoxFuture;
use sqlx::Row;

/// Turns what a person typed into an FTS5 query that cannot be a syntax error: every word
/// becomes a quoted prefix term, all of them required. `None` when there are no words.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = search_words(text).iter().map(|w| format!("\"{w}\"*")).collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// A sort key strictly between `lo` and `hi`, the keys of the videos just before and just after
/// a new one in gallery order (`None`: none there); `None` when there is no room. A video
/// saved after all others gets the previous key plus 2^32 (room for 32 later videos saved out
/// of order between them), one saved between two others the middle of their keys.
pub(super) fn sort_key_between(lo: Option<i64>, hi: Option<i64>) -> Option<i64> {
    const GAP: i128 = 1 << 32;
    let lo_bound = lo.map_or(i64::MIN as i128 - 1, i128::from);
    let hi_bound = hi.map_or(i64::MAX as i128 + 1, i128::from);
    let middle = lo_bound + (hi_bound - lo_bound) / 2;
    let key = match (lo, hi) {
        (None, None) => 0,
        (Some(_), None) => lo_bound + GAP,
        (None, Some(_)) => hi_bound - GAP,
        (Some(_), Some(_)) => middle,
    };
    let inside = |k: i128| lo_bound < k && k < hi_bound;
    let key = if inside(key) { key } else { middle };
    inside(key).then_some(key as i64)
}

/// The sort key for a new video from its neighbours in gallery order, (created_ms, id).
async fn sort_key_for(conn: &mut sqlx::SqliteConnection, created_ms: i64, id: &str) -> StoreResult<Option<i64>> {
    let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT sort_key FROM videos WHERE (created_ms, id) < (?1, ?2) ORDER BY created_ms DESC, id DESC LIMIT 1), \
                (SELECT sort_key FROM videos WHERE (created_ms, id) > (?1, ?2) ORDER BY created_ms, id LIMIT 1)",
    )
    .bind(created_ms)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(sort_key_between(lo, hi))
}

/// Spreads the sort keys out again, 2^32 apart in gallery order (as migration 3 does), and
/// rebuilds the prompt index, which is keyed by them. Only when a gap is used up.
async fn renumber_sort_keys(conn: &mut sqlx::SqliteConnection) -> StoreResult<()> {
    tracing::info!("renumbering the gallery sort keys");
    sqlx::query(
        "UPDATE videos SET sort_key = k.n * 4294967296 \
         FROM (SELECT rowid AS r, row_number() OVER (ORDER BY created_ms, id) AS n FROM videos) AS k \
         WHERE k.r = videos.rowid",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO videos_fts (videos_fts) VALUES ('rebuild')").execute(&mut *conn).await?;
    Ok(())
}

/// A model with fewer videos than this is searched by walking its own videos (fewer in tests,
/// so the reference test goes both ways).
#[cfg(not(test))]
const RARE_MODEL: i64 = 500;
#[cfg(test)]
const RARE_MODEL: i64 = 100;

impl GalleryStore for SqliteStore {
    fn video_exists(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE id = ?").bind(id).fetch_one(&self.pool).await?;
            Ok(n > 0)
        })
    }

    fn insert_video(&self, video: Video) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let params = serde_json::to_string(&video.params).map_err(corrupt)?;
            // IMMEDIATE: the write lock is taken first, so no other insert can take the same
            // place in the gallery order between the neighbour lookup and the insert.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let sort_key = match sort_key_for(&mut tx, video.created_ms, &video.id).await? {
                Some(key) => key,
                None => {
                    renumber_sort_keys(&mut tx).await?;
                    sort_key_for(&mut tx, video.created_ms, &video.id)
                        .await?
                        .ok_or_else(|| corrupt("no room for a gallery sort key after renumbering"))?
                }
            };
            sqlx::query(
                "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, owner, sort_key) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&video.id)
            .bind(video.mode.as_str())
            .bind(&video.params.model)
            .bind(&video.params.prompt)
            .bind(params)
            .bind(serde_json::to_string(&video.metadata).map_err(corrupt)?)
            .bind(video.created_ms)
            .bind(&video.owner)
            .bind(sort_key)
            .execute(&mut *tx)
            .await?;
            if let Some(scores) = &video.scores {
                super::scores::write(&mut tx, &video.id, scores).await?;
            }
            if video.favorite {
                sqlx::query("INSERT INTO favorites (person, video_id) VALUES (?, ?)")
                    .bind(&video.owner)
                    .bind(&video.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn video(&self, id: String) -> BoxFuture<'_, StoreResult<Option<Video>>> {
        Box::pin(async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE v.id = ?"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
            row.as_ref().map(rows::video).transpose()
        })
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StoreResult<VideoPage>> {
        Box::pin(async move {
            let limit = query.limit.clamp(1, MAX_PAGE);
            let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("SELECT {VIDEO_COLUMNS} FROM "));
            let fts = fts_query(&query.q);
            let model = query.model.filter(|m| !m.is_empty());
            // How many videos the model has, counted up to RARE_MODEL on its index: none means no
            // results, whatever the words.
            let model_videos: Option<i64> = match &model {
                Some(m) => Some(
                    sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM videos WHERE model = ? LIMIT ?)")
                        .bind(m)
                        .bind(RARE_MODEL)
                        .fetch_one(&self.pool)
                        .await?,
                ),
                None => None,
            };
            if model_videos == Some(0) {
                return Ok(VideoPage { videos: Vec::new(), next: None, visual: Vec::new() });
            }
            // With words and a model with few videos: that model's videos newest first (its
            // index), each checked against the words' matches (collected once), so the walk is
            // at most the model's videos however few of them match.
            // With words otherwise: newest first straight from the prompt index, which is keyed
            // by `sort_key` (in gallery order), so the walk stops after one page instead of
            // sorting every match. CROSS JOIN keeps the index as the outer loop.
            let rare_model = model.clone().filter(|_| fts.is_some() && model_videos.is_some_and(|n| n < RARE_MODEL));
            let sorted = sort_column(query.sort);
            let (order, cursor) = if let Some((column, down)) = sorted {
                // By a score: that score's index, in gallery order among equal scores; the
                // words' matches (collected once) are a filter.
                sql.push(format!("videos v WHERE v.{column} IS NOT NULL"));
                if let Some(fts) = &fts {
                    sql.push(" AND v.sort_key IN (SELECT rowid FROM videos_fts WHERE videos_fts MATCH ")
                        .push_bind(fts.clone())
                        .push(")");
                }
                if down {
                    (
                        format!("v.{column} DESC, v.sort_key DESC"),
                        format!(" AND (v.{column}, v.sort_key) < (SELECT {column}, sort_key FROM videos WHERE id = "),
                    )
                } else {
                    (
                        format!("v.{column} ASC, v.sort_key ASC"),
                        format!(" AND (v.{column}, v.sort_key) > (SELECT {column}, sort_key FROM videos WHERE id = "),
                    )
                }
            } else if let (Some(fts), Some(model)) = (&fts, &rare_model) {
                sql.push("videos v INDEXED BY videos_by_model WHERE v.model = ")
                    .push_bind(model.clone())
                    .push(" AND v.sort_key IN (SELECT rowid FROM videos_fts WHERE videos_fts MATCH ")
                    .push_bind(fts.clone())
                    .push(")");
                ("v.sort_key DESC".into(), " AND v.sort_key < (SELECT sort_key FROM videos WHERE id = ".into())
            } else if let Some(fts) = fts {
                sql.push("videos_fts CROSS JOIN videos v ON v.sort_key = videos_fts.rowid WHERE videos_fts MATCH ")
                    .push_bind(fts);
                (
                    "videos_fts.rowid DESC".into(),
                    " AND videos_fts.rowid < (SELECT sort_key FROM videos WHERE id = ".into(),
                )
            } else {
                sql.push("videos v WHERE 1");
                (
                    "v.created_ms DESC, v.id DESC".into(),
                    " AND (v.created_ms, v.id) < (SELECT created_ms, id FROM videos WHERE id = ".into(),
                )
            };
            if let Some(mode) = query.mode {
                sql.push(" AND v.mode = ").push_bind(mode.as_str());
            }
            if let Some(model) = model.filter(|_| rare_model.is_none() || sorted.is_some()) {
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
            if let Some(group) = query.group.filter(|g| !g.is_empty()) {
                sql.push(" AND json_extract(v.params, '$.group') = ").push_bind(group);
            }
            if let Some(before) = query.before {
                sql.push(cursor).push_bind(before).push(")");
            }
            sql.push(" ORDER BY ").push(order).push(" LIMIT ").push_bind(limit as i64 + 1);
            let mut rows = sql.build().fetch_all(&self.pool).await?;
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
        })
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
                sqlx::query("INSERT INTO favorites (person, video_id) SELECT ?, id FROM videos WHERE id = ? ON CONFLICT DO NOTHING")
                    .bind(person)
                    .bind(&id)
                    .execute(&self.pool)
                    .await?;
            } else {
                sqlx::query("DELETE FROM favorites WHERE person = ? AND video_id = ?")
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
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let ids = serde_json::to_string(&ids).map_err(corrupt)?;
            Ok(sqlx::query_scalar(
                "SELECT video_id FROM favorites WHERE person = ? AND video_id IN (SELECT value FROM json_each(?))",
            )
            .bind(person)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn favorited_by(&self, id: String) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT person FROM favorites WHERE video_id = ? ORDER BY person")
                .bind(id)
                .fetch_all(&self.pool)
                .await?)
        })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM videos WHERE id = ?").bind(id).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
