//! Visual search and CLIP scores with an installed CLIP model (the tiny random CLIP fixture of
//! scripts/clip_fixtures.py, in the models folder): every new clip's frames are embedded once
//! and stored, a search finds clips by what they show besides their prompt's words (marked as
//! such, best first), a real model's clip gets a CLIP score, and clips stored without an
//! embedding are embedded while the queue is idle after a start.

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn ids(page: &Value) -> Vec<String> {
    page["videos"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

fn visual_ids(page: &Value) -> Vec<String> {
    page["visual"]
        .as_array()
        .map(|a| a.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn start_visual(data: &Path, models: &Path) -> (axum::Router, server::queue::Jobs) {
    start_options(server::web::ServeOptions {
        database_url: None,
        media: None,
        media_endpoint: None,
        worker: Some(server::queue::WorkerSetup::new("test".into(), vec!["cpu".into()])),
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        site_root: site_root(),
        seed_examples: false,
        models_dir: Some(models.to_path_buf()),
        access: server::web::security::Access::local(),
        model_memory_mib: 4096,
        faults: server::faults::Faults::default(),
        // The fixture's weights are random: every clip is "similar" enough.
        visual_min_similarity: -1.0,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_are_found_by_what_they_show() {
    let data = data_dir("visual");
    let models = data.with_extension("models");
    let _ = std::fs::remove_dir_all(&models);
    std::fs::create_dir_all(&models).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    for (name, rel) in [("clip1", "clip/clip1"), ("sd1", "sd/sd1"), ("svd1", "svd/svd1")] {
        std::os::unix::fs::symlink(fixtures.join(rel), models.join(name)).unwrap();
    }
    let (app, jobs) = start_visual(&data, &models).await;
    assert_eq!(jobs.visual().expect("the CLIP model is found").model_name, "clip1");
    let (_, models_listed) = send_json(&app, get("/api/models")).await;
    assert!(!models_listed.to_string().contains("clip1"), "CLIP is not a generation model");

    let (_, red) =
        send_json(&app, post_json(json!({"prompt": "a red ball moving right", "steps": 2, "seed": 1}))).await;
    let red = red["id"].as_str().unwrap().to_string();
    let (_, pan) = send_json(
        &app,
        post_multipart(multipart(&[("prompt", "camera pans left"), ("steps", "2")], Some(("photo.png", &png(64, 48))))),
    )
    .await;
    let pan = pan["id"].as_str().unwrap().to_string();
    let (status, cat) = send_json(
        &app,
        post_json(json!({"prompt": "a red cat in space", "model": "svd1", "steps": 2, "frames": 4, "fps": 6, "width": 64, "height": 64, "keyframe_steps": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cat}");
    let cat = cat["id"].as_str().unwrap().to_string();
    for id in [&red, &pan, &cat] {
        wait_for(&app, id, |j| j["state"] == "done").await;
    }

    // A word no prompt has: every clip is found by what it shows, best first, marked.
    let (status, page) = send_json(&app, get("/api/videos?q=zebra")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut found = visual_ids(&page);
    assert_eq!(ids(&page), found, "{page}");
    found.sort();
    let mut all = vec![red.clone(), pan.clone(), cat.clone()];
    all.sort();
    assert_eq!(found, all);
    let sims: Vec<f64> = page["visual"].as_array().unwrap().iter().map(|v| v["similarity"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    // Words that match: the prompt match first, the others after it as visual matches.
    let (_, page) = send_json(&app, get("/api/videos?q=ball")).await;
    assert_eq!(ids(&page)[0], red);
    assert!(!visual_ids(&page).contains(&red) && visual_ids(&page).len() == 2, "{page}");
    // Filters hold for visual matches too; other orders and later pages have none.
    let (_, page) = send_json(&app, get("/api/videos?q=zebra&mode=image-to-video")).await;
    assert_eq!(ids(&page), std::slice::from_ref(&pan));
    let (_, page) = send_json(&app, get("/api/videos?q=zebra&sort=sharpest")).await;
    assert!(ids(&page).is_empty() && visual_ids(&page).is_empty(), "{page}");

    // Each client brings only so many new texts a minute; a text seen before costs nothing.
    let from = |q: &str, client: u8| {
        let mut req = get(&format!("/api/videos?q={q}"));
        let addr = std::net::SocketAddr::from(([192, 0, 2, client], 50_000));
        req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        req
    };
    for i in 0..server::visual::NEW_TEXTS {
        let (_, page) = send_json(&app, from(&format!("zebra{i}"), 7)).await;
        assert_eq!(visual_ids(&page).len(), 3, "{page}");
    }
    let (status, page) = send_json(&app, from("giraffe", 7)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(visual_ids(&page).is_empty(), "words only, for a while: {page}");
    let (_, page) = send_json(&app, from("zebra", 7)).await;
    assert_eq!(visual_ids(&page).len(), 3, "a text seen before: {page}");
    let (_, page) = send_json(&app, from("giraffe", 8)).await;
    assert_eq!(visual_ids(&page).len(), 3, "another client: {page}");

    // A real model's clip gets a CLIP score; the built-in model's keeps its concepts.
    let (_, v) = send_json(&app, get(&format!("/api/videos/{cat}"))).await;
    assert_eq!(v["scores"]["faithfulness"]["method"], "clip", "{v}");
    let (_, v) = send_json(&app, get(&format!("/api/videos/{red}"))).await;
    assert_eq!(v["scores"]["faithfulness"]["method"], "concepts", "{v}");
    let (_, html) = send(&app, get("/gallery?q=zebra")).await;
    assert!(String::from_utf8_lossy(&html).contains("Seen in the clip"));
    jobs.shutdown().await;

    // Clips stored without an embedding are embedded while the queue is idle.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("vidplay.db").display())).await.unwrap();
    sqlx::query("DELETE FROM video_embeddings").execute(&pool).await.unwrap();
    pool.close().await;
    let (app, jobs) = start_visual(&data, &models).await;
    let mut seen = 0;
    for _ in 0..600 {
        let (_, page) = send_json(&app, get("/api/videos?q=zebra")).await;
        seen = visual_ids(&page).len();
        if seen == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 3, "every stored clip embedded again");
    jobs.shutdown().await;
}
