//! The Postgres store against a real, throwaway PostgreSQL cluster.

use super::*;
use crate::services::postgres::PgCluster;
use crate::storage::conformance::{self, job, video};
use crate::storage::sqlite::SqliteStore;
use crate::storage::{GalleryStore, JobStore, Store};
use app::types::Mode;
use app::types::VideoQuery;

/// A store on a database of its own in the test binary's shared cluster.
async fn fresh(name: &str) -> PostgresStore {
    let url = crate::services::shared::database(name).await.unwrap();
    PostgresStore::connect(&url, Duration::from_secs(10)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    conformance::run(&|name: &str| {
        let name = name.to_string();
        Box::pin(async move { Box::new(fresh(&name).await) as Box<dyn Store> })
    })
    .await;
}

/// The same videos in both stores: every search, filter, sort and page gives the same ids in
/// the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_equal_the_sqlite_stores() {
    use app::scores::GallerySort;
    let pg = fresh("same").await;
    let dir = std::env::temp_dir().join(format!("vidplay-pg-vs-sqlite-{}", crate::ids::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = SqliteStore::open(&dir.join("vidplay.db")).await.unwrap();
    let mut all = conformance::mixed_videos(9, 250);
    for (i, v) in all.iter_mut().enumerate() {
        if i % 3 == 0 {
            v.scores = Some(conformance::scores((i % 7) as f32, (i % 11) as f32 * 10.0, i % 9 == 0, i % 6 == 0));
        }
        if i % 8 == 0 {
            v.params.group = "g0g0g0g0".into();
        }
    }
    for v in &all {
        pg.insert_video(v.clone()).await.unwrap();
        lite.insert_video(v.clone()).await.unwrap();
    }
    let stores: [&dyn Store; 2] = [&pg, &lite];
    for q in ["", "red", "b", "ball red", "bounc", "zebra", "left-star", "purple", "Ünïcode"] {
        for sort in [GallerySort::Newest, GallerySort::MostMotion, GallerySort::LeastMotion, GallerySort::Sharpest] {
            for (mode, model, favorites, group) in [
                (None, None, false, None),
                (Some(Mode::ImageToVideo), None, false, None),
                (None, Some("sd1"), true, None),
                (None, None, false, Some("g0g0g0g0")),
            ] {
                let query = VideoQuery {
                    q: q.into(),
                    sort,
                    mode,
                    model: model.map(str::to_string),
                    favorites,
                    group: group.map(str::to_string),
                    limit: 9,
                    ..Default::default()
                };
                let mut pages: Vec<Vec<String>> = Vec::new();
                for store in stores {
                    let mut ids = Vec::new();
                    let mut before = None;
                    loop {
                        let page = store.videos(VideoQuery { before: before.clone(), ..query.clone() }).await.unwrap();
                        ids.extend(page.videos.iter().map(|v| v.id.clone()));
                        before = page.next;
                        if before.is_none() {
                            break;
                        }
                    }
                    pages.push(ids);
                }
                assert_eq!(pages[0], pages[1], "{query:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two claimers at once never take the same job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_take_each_job_once() {
    let store = fresh("claims").await;
    for i in 0..40 {
        assert!(store.enqueue(job(&format!("a000{i:04}"), i, "p"), 100).await.unwrap());
    }
    let claimers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = store.claim_next(1).await.unwrap() {
                got.push(j.id);
            }
            got
        })
    });
    let mut all: Vec<String> = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (40, 40));
}

/// The queue limit holds when many submit at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_limit_holds_under_concurrent_submits() {
    let store = fresh("limit").await;
    let submits = (0..30).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(job(&format!("b000{i:04}"), i, "p"), 10).await.unwrap() })
    });
    let mut added = 0;
    for s in submits {
        added += s.await.unwrap() as usize;
    }
    assert_eq!((added, store.queued_count().await.unwrap()), (10, 10));
}

#[tokio::test]
async fn unreachable_databases_and_bad_urls_are_clear_errors() {
    let port = crate::services::postgres::unused_port();
    let url = format!("postgres://someone:hunter2@127.0.0.1:{port}/vidplay");
    let e = PostgresStore::connect(&url, Duration::from_millis(300)).await.err().unwrap().to_string();
    assert!(e.contains("cannot connect to the database at postgres://someone:***@127.0.0.1"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = PostgresStore::connect("postgres://[bad", Duration::from_millis(300)).await.err().unwrap().to_string();
    assert!(e.contains("not a usable PostgreSQL URL"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_across_a_server_restart() {
    // A cluster of its own: stopping the shared one would break the tests beside this one.
    let cluster = PgCluster::start().unwrap();
    let url = cluster.create_database("restart").await.unwrap();
    let store = PostgresStore::connect(&url, Duration::from_secs(10)).await.unwrap();
    assert!(store.enqueue(job("c0000001", 1, "kept"), 10).await.unwrap());
    store.insert_video(video("c0000002", 2, "a boat", Mode::TextToVideo)).await.unwrap();
    cluster.stop().unwrap();
    assert!(store.count_videos().await.is_err(), "the server is down");
    cluster.start_server().unwrap();
    // The pool reconnects by itself.
    assert_eq!(store.count_videos().await.unwrap(), 1);
    assert_eq!(store.job("c0000001".into()).await.unwrap().unwrap().params.prompt, "kept");
}
