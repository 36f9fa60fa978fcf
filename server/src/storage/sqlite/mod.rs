//! The [`Store`] in SQLite (sqlx, WAL mode, FTS5 over prompts), `DATA_DIR/vidplay.db`. Each
//! concern of the store is its own module: the queue (`jobs`), what a worker holds (`leases`),
//! the gallery, scores, embeddings and votes; the rows they share are decoded here.

use super::rows::RowRead;
use super::{Notice, NoticeStore, StoreError, StoreResult, corrupt};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};
use std::path::Path;

mod embeddings;
mod gallery;
mod jobs;
mod leases;
mod scores;
mod votes;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

/// SQLite in one file, `DATA_DIR/vidplay.db`, in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn migrations() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migration = |version, name: &str, sql: &'static str| {
        Migration::new(
            version,
            name.to_string().into(),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "jobs, videos and prompt search", include_str!("migrations/0001_init.sql")),
        migration(2, "job attempts", include_str!("migrations/0002_attempts.sql")),
        migration(3, "gallery search in gallery order", include_str!("migrations/0003_search_order.sql")),
        migration(4, "gallery search by model", include_str!("migrations/0004_search_by_model.sql")),
        migration(5, "clip scores", include_str!("migrations/0005_scores.sql")),
        migration(6, "comparison votes", include_str!("migrations/0006_votes.sql")),
        migration(7, "clip embeddings", include_str!("migrations/0007_embeddings.sql")),
        migration(8, "worker leases", include_str!("migrations/0008_leases.sql")),
        migration(9, "workers preparing GPU kernels", include_str!("migrations/0009_worker_warm_up.sql")),
        migration(10, "the image a job starts from", include_str!("migrations/0010_job_input.sql")),
        migration(11, "owners and favourites per person", include_str!("migrations/0011_owners_and_favorites.sql")),
        migration(12, "comparisons and one vote per voter", include_str!("migrations/0012_comparisons.sql")),
        migration(
            13,
            "kept latents of failed decodes, decided results",
            include_str!("migrations/0013_decodes_and_results.sql"),
        ),
    ])
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        migrations().run(&pool).await?;
        Ok(Self { pool })
    }
}

impl RowRead for SqliteRow {
    super::rows::read_alike!();

    /// SQLite has no booleans: 0 or 1.
    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }

    /// JSON is stored as TEXT.
    fn json(&self, column: &str) -> StoreResult<serde_json::Value> {
        serde_json::from_str(&self.try_get::<String, _>(column)?).map_err(corrupt)
    }

    fn optional_json(&self, column: &str) -> StoreResult<Option<serde_json::Value>> {
        self.try_get::<Option<String>, _>(column)?.map(|s| serde_json::from_str(&s).map_err(corrupt)).transpose()
    }
}

const VIDEO_COLUMNS: &str = "v.id, v.mode, v.params, v.metadata, v.created_ms, v.owner, v.scores";

impl NoticeStore for SqliteStore {
    /// One machine: the web node's own worker, and nobody to tell.
    fn shared(&self) -> bool {
        false
    }

    fn announce(&self, _notice: Notice, _preview: Option<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn notices(&self) -> BoxFuture<'_, StoreResult<Option<BoxStream<'static, Notice>>>> {
        Box::pin(async { Ok(None) })
    }

    fn preview(&self, _id: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{self, SEARCHES, check_against_reference, job, mixed_videos, video};
    use crate::storage::{GalleryStore, JobStore, Store};
    use app::types::VideoQuery;
    use app::types::{JobState, Mode};

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vidplay-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("vidplay.db")
    }

    #[tokio::test]
    async fn sqlite_conforms() {
        conformance::run(&|name: &str| {
            let path = temp_db(&format!("conformance-{name}"));
            Box::pin(async move { Box::new(SqliteStore::open(&path).await.unwrap()) as Box<dyn Store> })
        })
        .await;
    }

    #[tokio::test]
    async fn nothing_is_lost_across_a_reopen() {
        let path = temp_db("reopen");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.enqueue(job("aaaa0001", 1, "a"), 2).await.unwrap());
        store.claim_next(100).await.unwrap().unwrap();
        store.insert_video(video("bbbb0001", 5, "a boat", Mode::TextToVideo)).await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.recover_interrupted(150).await.unwrap().requeued, ["aaaa0001"]);
        assert_eq!(store.job("aaaa0001".into()).await.unwrap().unwrap().params.prompt, "a");
        assert_eq!(store.video("bbbb0001".into()).await.unwrap().unwrap().metadata.details["note"], "kept");
    }

    /// Jobs waiting when the store learned where a job's image is (migration 10) read the
    /// upload they were queued with.
    #[tokio::test]
    async fn jobs_queued_before_inputs_were_kept_read_their_upload() {
        let path = temp_db("inputs");
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let before = sqlx::migrate::Migrator::with_migrations(migrations().migrations[..9].to_vec());
        before.run(&pool).await.unwrap();
        let params = serde_json::to_string(&app::types::JobParams::default()).unwrap();
        for (id, mode, state) in [
            ("aaaa0001", "image-to-video", "queued"),
            ("aaaa0002", "edit", "running"),
            ("aaaa0003", "text-to-video", "queued"),
            ("aaaa0004", "image-to-video", "done"),
        ] {
            sqlx::query("INSERT INTO jobs (id, state, mode, params, created_ms) VALUES (?, ?, ?, ?, 1)")
                .bind(id)
                .bind(state)
                .bind(mode)
                .bind(&params)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let mut inputs = Vec::new();
        for id in ["aaaa0001", "aaaa0002", "aaaa0003", "aaaa0004"] {
            inputs.push(store.job(id.into()).await.unwrap().unwrap().input);
        }
        let upload = |id: &str| Some(app::media_files::upload_key(id));
        assert_eq!(inputs, [upload("aaaa0001"), upload("aaaa0002"), None, None]);
    }

    /// Metadata written before it was versioned reads as typed metadata.
    #[tokio::test]
    async fn old_metadata_rows_still_read() {
        let store = SqliteStore::open(&temp_db("old-metadata")).await.unwrap();
        store.insert_video(video("dddd0003", 5, "old", Mode::TextToVideo)).await.unwrap();
        let old = r#"{"model":"vidplay-toy-1","mode":"text-to-video","prompt":"old","parameters":{"frames":12,"fps":6,"steps":20,"seed":3},"seed":3,"resolution":{"native":[32,32],"display":[256,256],"upscale_filter":"catmull-rom"},"device":"cpu","timings":{"sampling_s":1.5}}"#;
        sqlx::query("UPDATE videos SET metadata = ? WHERE id = 'dddd0003'")
            .bind(old)
            .execute(&store.pool)
            .await
            .unwrap();
        let v = store.video("dddd0003".into()).await.unwrap().unwrap();
        assert_eq!((v.metadata.version, v.metadata.params.frames, v.metadata.resolution.display), (1, 12, [256, 256]));
        assert_eq!(v.metadata.timings.sampling_s, 1.5);
    }

    #[test]
    fn fts_queries_are_always_valid() {
        assert_eq!(gallery::fts_query("red ball"), Some("\"red\"* \"ball\"*".into()));
        assert_eq!(gallery::fts_query("  \"*^()- OR NEAR:  "), Some("\"or\"* \"near\"*".into()));
        assert_eq!(gallery::fts_query("\"*^()-:"), None);
    }

    #[tokio::test]
    async fn unreadable_rows_never_break_listings() {
        let path = temp_db("corrupt");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.enqueue(job("cccc0001", 1, "a"), 10).await.unwrap());
        assert!(store.enqueue(job("cccc0002", 2, "b"), 10).await.unwrap());
        store.insert_video(video("dddd0001", 5, "fine", Mode::TextToVideo)).await.unwrap();
        store.insert_video(video("dddd0002", 6, "broken", Mode::TextToVideo)).await.unwrap();
        // What an infinite number used to become: `null` where a number must be.
        sqlx::query("UPDATE jobs SET params = '{\"prompt\":\"a\",\"guidance\":null}' WHERE id = 'cccc0001'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE videos SET params = 'not json' WHERE id = 'dddd0002'").execute(&store.pool).await.unwrap();
        let jobs = store.jobs(10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let bad = jobs.iter().find(|j| j.id == "cccc0001").unwrap();
        assert_eq!(bad.state, JobState::Failed);
        assert!(bad.message.as_deref().unwrap().contains("cannot be read"), "{bad:?}");
        assert_eq!(store.job("cccc0001".into()).await.unwrap().unwrap().state, JobState::Failed);
        // The worker skips it (failing it for good) and runs the next one.
        assert_eq!(store.claim_next(10).await.unwrap().unwrap().id, "cccc0002");
        assert!(store.claim_next(11).await.unwrap().is_none());
        let page = store.videos(VideoQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.videos.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["dddd0001"]);
        // A prompt that is not text is left out of the recent prompts, not an error.
        sqlx::query("UPDATE jobs SET params = '{\"prompt\": 5}' WHERE id = 'cccc0001'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.recent_prompts(5).await.unwrap(), ["b"]);
    }
    #[tokio::test]
    async fn gallery_order_and_matches_equal_a_reference() {
        let store = SqliteStore::open(&temp_db("reference")).await.unwrap();
        let mut all = mixed_videos(1, 300);
        for v in &all {
            store.insert_video(v.clone()).await.unwrap();
        }
        // Deleted videos leave the index (by their sort key).
        let deleted: Vec<String> = all.iter().step_by(17).map(|v| v.id.clone()).collect();
        for id in &deleted {
            assert!(store.delete_video(id.clone()).await.unwrap());
        }
        all.retain(|v| !deleted.contains(&v.id));
        // Favorites changed afterwards are found by the favorites filter.
        for v in all.iter_mut().step_by(5) {
            v.favorite = !v.favorite;
            assert!(store.set_favorite(String::new(), v.id.clone(), v.favorite).await.unwrap());
        }
        // Videos at one time, each with an id just above the previous one and below another's
        // there: each halves the same gap, which runs out (at the latest after 64) and every
        // key is renumbered.
        let mut last = video("ffff0000", 70, "red ball", Mode::TextToVideo);
        last.favorite = true;
        store.insert_video(last.clone()).await.unwrap();
        all.push(last);
        for i in 0..70 {
            let v = video(
                &format!("fffe{i:04x}"),
                70,
                if i % 2 == 0 { "red star" } else { "blue ball" },
                Mode::ImageToVideo,
            );
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        let min_key: i64 = sqlx::query_scalar("SELECT MIN(sort_key) FROM videos").fetch_one(&store.pool).await.unwrap();
        assert_eq!(min_key, 1 << 32, "renumbered");
        // A few more after the renumbering, among the others.
        for v in mixed_videos(2, 30) {
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        assert_eq!(store.count_videos().await.unwrap(), all.len() as u64);
        check_against_reference(&store, &all, &SEARCHES).await;
    }

    #[test]
    fn sort_keys_fall_strictly_between_their_neighbours() {
        assert_eq!(gallery::sort_key_between(None, None), Some(0));
        assert_eq!(gallery::sort_key_between(Some(5), None), Some(5 + (1 << 32)));
        assert_eq!(gallery::sort_key_between(None, Some(5)), Some(5 - (1 << 32)));
        assert_eq!(gallery::sort_key_between(Some(4), Some(10)), Some(7));
        assert_eq!(gallery::sort_key_between(Some(4), Some(6)), Some(5));
        assert_eq!(gallery::sort_key_between(Some(4), Some(5)), None);
        assert_eq!(gallery::sort_key_between(Some(i64::MAX - 2), None), Some(i64::MAX - 1));
        assert_eq!(gallery::sort_key_between(Some(i64::MAX), None), None);
        assert_eq!(gallery::sort_key_between(None, Some(i64::MIN + 2)), Some(i64::MIN));
        assert_eq!(gallery::sort_key_between(None, Some(i64::MIN)), None);
    }

    /// A database made before migration 3 keeps every video, and searches it in gallery order.
    #[tokio::test]
    async fn older_databases_migrate_to_search_in_order() {
        let path = temp_db("migrate3");
        let all = mixed_videos(3, 200);
        {
            let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            migrations().run_to(2, &pool).await.unwrap();
            for v in &all {
                sqlx::query(
                    "INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms, favorite) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&v.id)
                .bind(v.mode.as_str())
                .bind(&v.params.model)
                .bind(&v.params.prompt)
                .bind(serde_json::to_string(&v.params).unwrap())
                .bind(serde_json::to_string(&v.metadata).unwrap())
                .bind(v.created_ms)
                .bind(v.favorite as i64)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.count_videos().await.unwrap(), all.len() as u64);
        check_against_reference(&store, &all, &SEARCHES).await;
        // And new videos find their place among the migrated ones.
        let mut all = all;
        for v in mixed_videos(4, 50) {
            store.insert_video(v.clone()).await.unwrap();
            all.push(v);
        }
        check_against_reference(&store, &all, &SEARCHES).await;
    }
}
