//! Scores, variants, votes and the leaderboard through the real server (SQLite, the built-in
//! model on Burn's CPU backend, few steps): every new clip is measured, stored clips without
//! scores are measured while the queue is idle, a variants request makes a group, votes on
//! it change the leaderboard (JSON and CSV), and bad requests are clear 4xx errors.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use server::storage::GalleryStore;
use tower::ServiceExt;

fn ids(page: &Value) -> Vec<String> {
    page["videos"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

async fn video(app: &axum::Router, id: &str) -> Value {
    let (status, v) = send_json(app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_variants_votes_and_the_leaderboard() {
    let data = data_dir("compare");
    let (app, jobs) = start(&data).await;

    // Variants: the same prompt over two seeds, one group.
    let (status, group) = send_json(
        &app,
        post_json(json!({"prompt": "a red ball moving right on a plain background, camera pans left", "steps": 2, "variants": {"seeds": [1, 2]}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["group"].as_str().unwrap().to_string();
    let variant_ids: Vec<String> =
        group["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(variant_ids.len(), 2);
    for (job, seed) in group["jobs"].as_array().unwrap().iter().zip([1, 2]) {
        assert_eq!(job["params"]["seed"], seed);
        assert_eq!(job["params"]["group"], group_id.as_str());
    }
    // One parameter over values, from the Create form's fields.
    let (status, by_motion) = send_json(
        &app,
        post_multipart(multipart(
            &[
                ("prompt", "a blue square moving left"),
                ("steps", "1"),
                ("seed", "3"),
                ("vary", "motion"),
                ("vary_values", "0.5, 1.5"),
            ],
            None,
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{by_motion}");
    assert_eq!(by_motion["jobs"][1]["params"]["motion"], 1.5);
    // Image to video: the clip is measured against its picture.
    let (status, i2v) = send_json(
        &app,
        post_multipart(multipart(&[("prompt", "camera pans left"), ("steps", "2")], Some(("photo.png", &png(80, 60))))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{i2v}");
    let i2v = i2v["id"].as_str().unwrap().to_string();
    let motion_ids: Vec<String> =
        by_motion["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    for id in variant_ids.iter().chain(&motion_ids).chain([&i2v]) {
        wait_for(&app, id, |j| j["state"] == "done").await;
    }

    // Every clip has scores in its API record.
    let v = video(&app, &variant_ids[0]).await;
    let s = &v["scores"];
    assert_eq!(s["frames"], 16, "{v}");
    for key in [
        "motion",
        "camera_motion",
        "object_motion",
        "smoothness",
        "flicker",
        "sharpness",
        "consistency",
        "still",
        "camera_only",
    ] {
        assert!(!s[key].is_null(), "scores lack {key}: {s}");
    }
    let concepts: Vec<&str> =
        s["faithfulness"]["concepts"].as_array().unwrap().iter().map(|c| c["concept"].as_str().unwrap()).collect();
    assert!(concepts.contains(&"red") && concepts.contains(&"camera pans left"), "{concepts:?}");
    let fidelity = &video(&app, &i2v).await["scores"]["fidelity"];
    assert!(fidelity["psnr"].as_f64().unwrap() > 20.0, "the first frame is the picture: {fidelity}");

    // The gallery: a group, sorted by a score, filtered by a flag; bad values are 400s.
    let (_, page) = send_json(&app, get(&format!("/api/videos?group={group_id}"))).await;
    let mut got = ids(&page);
    got.sort();
    let mut want = variant_ids.clone();
    want.sort();
    assert_eq!(got, want);
    let (status, page) = send_json(&app, get("/api/videos?sort=most_motion&limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let motions: Vec<f64> =
        page["videos"].as_array().unwrap().iter().map(|v| v["scores"]["motion"].as_f64().unwrap()).collect();
    assert!(motions.windows(2).all(|w| w[0] >= w[1]), "{motions:?}");
    assert!(page["next"].is_string());
    let (status, _) = send_json(&app, get("/api/videos?flag=camera_only")).await;
    assert_eq!(status, StatusCode::OK);
    assert_rejected(&app, get("/api/videos?sort=loudest"), StatusCode::BAD_REQUEST, "sort must be one of").await;
    assert_rejected(&app, get("/api/videos?flag=blurry"), StatusCode::BAD_REQUEST, "flag must be one of").await;
    assert_rejected(
        &app,
        post_json(json!({"prompt": "a", "variants": {"count": 1}})),
        StatusCode::BAD_REQUEST,
        "at least 2",
    )
    .await;
    assert_rejected(
        &app,
        post_json(json!({"prompt": "a", "variants": {"param": "volume", "values": [1, 2]}})),
        StatusCode::BAD_REQUEST,
        "volume",
    )
    .await;

    // Votes: on a blind comparison the server issued for the group; the leaderboard by seed
    // follows.
    let post = |uri: &str, body: Value, cookie: Option<&str>| {
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        req.body(Body::from(body.to_string())).unwrap()
    };
    // The API's comparisons are not blind, whatever a script says; the same clips compared the
    // same way are one comparison.
    let (status, open) =
        send_json(&app, post("/api/comparisons", json!({"candidates": variant_ids, "blind": true}), None)).await;
    assert_eq!((status, &open["blind"]), (StatusCode::CREATED, &json!(false)), "{open}");
    let (_, reversed) =
        send_json(&app, post("/api/comparisons", json!({"candidates": [variant_ids[1], variant_ids[0]]}), None)).await;
    assert_eq!(reversed["id"], open["id"], "one comparison");
    // A blind one is issued to the compare page shown blind (by its server function).
    use leptos::server_fn::ServerFn;
    let page = json!({"ids": [], "group": group_id, "blind": true});
    let (status, shown) = send_json(&app, post(app::calls::CompareVideos::PATH, page, None)).await;
    assert_eq!((status, &shown["comparison"]["blind"]), (StatusCode::OK, &json!(true)), "{shown}");
    let compared = shown["comparison"]["id"].as_str().unwrap().to_string();
    assert_ne!(json!(compared), open["id"]);
    let vote = |axis: &str, winner: &str, cookie: Option<&str>| {
        post(
            "/api/votes",
            json!({"comparison": compared, "axis": axis, "winner": winner, "reasons": ["sharper"]}),
            cookie,
        )
    };
    let resp = app.clone().oneshot(vote("quality", &variant_ids[0], None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The voter's id, in a signed cookie: the same browser votes again as the same voter.
    let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("vidplay_voter="), "{cookie}");
    let (status, stored) = send_json(&app, vote("quality", &variant_ids[1], Some(&cookie))).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!((&stored["blind"], &stored["winner"]), (&json!(true), &json!(variant_ids[1])), "{stored}");
    assert!(stored.get("voter").is_none(), "who voted is not sent: {stored}");
    let (status, _) = send_json(&app, vote("faithfulness", &variant_ids[0], Some(&cookie))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, votes) = send_json(&app, get("/api/votes")).await;
    assert_eq!(votes["votes"].as_array().unwrap().len(), 2, "the second quality vote replaced the first: {votes}");
    let (status, board) = send_json(&app, get("/api/leaderboard?by=seed")).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let row = |axis: &str, group: &str| {
        board["standings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["axis"] == axis && s["group"] == group)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row("quality", "seed 2")["wins"], 1, "{board}");
    assert_eq!(row("quality", "seed 1")["wins"], 0);
    assert_eq!(row("faithfulness", "seed 1")["win_rate"], 1.0);
    let (status, csv) = send(&app, get("/api/leaderboard?by=seed&format=csv")).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.starts_with("axis,seed,wins,comparisons,win_rate,ci95_low,ci95_high\n")
            && csv.contains("quality,seed 2,1,1,1.0000,"),
        "{csv}"
    );
    // By model both are the same model: nothing to rank.
    let (_, board) = send_json(&app, get("/api/leaderboard")).await;
    assert!(board["standings"].as_array().unwrap().is_empty(), "{board}");

    // A vote without a comparison is a comparison of its own, and not blind whatever it says.
    let (status, own) = send_json(
        &app,
        post(
            "/api/votes",
            json!({"axis": "quality", "winner": variant_ids[0], "candidates": [variant_ids[0], variant_ids[1]], "blind": true}),
            None,
        ),
    )
    .await;
    assert_eq!((status, &own["blind"]), (StatusCode::CREATED, &json!(false)), "{own}");
    assert_eq!(own["comparison"], open["id"], "the clips' comparison that is not blind");
    let unknown = json!({"comparison": "0123456789", "axis": "quality", "winner": variant_ids[0]});
    assert_rejected(&app, post("/api/votes", unknown, None), StatusCode::BAD_REQUEST, "no comparison").await;

    // Bad votes.
    let raw = |body: &str| {
        Request::post("/api/votes")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let bad = |winner: &str, candidates: Value| {
        raw(&json!({"axis": "quality", "winner": winner, "candidates": candidates}).to_string())
    };
    assert_rejected(&app, bad(&variant_ids[0], json!([variant_ids[0]])), StatusCode::BAD_REQUEST, "2 to 4").await;
    assert_rejected(&app, bad("ffffffff", json!([variant_ids[0], variant_ids[1]])), StatusCode::BAD_REQUEST, "winner")
        .await;
    assert_rejected(
        &app,
        bad("ffffffff", json!([variant_ids[0], "ffffffff"])),
        StatusCode::BAD_REQUEST,
        "no video ffffffff",
    )
    .await;
    assert_rejected(
        &app,
        raw(r#"{"axis": "loudness", "winner": "a", "candidates": []}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a vote is JSON",
    )
    .await;
    assert_rejected(&app, raw("not json"), StatusCode::BAD_REQUEST, "a vote is JSON").await;
    // Reasons are distinct known words, and a vote is a small request.
    let reasons = |n: usize| {
        let body = json!({"axis": "quality", "winner": variant_ids[0], "candidates": [variant_ids[0], variant_ids[1]],
            "reasons": vec!["sharper"; n]});
        raw(&body.to_string())
    };
    assert_rejected(&app, reasons(2), StatusCode::BAD_REQUEST, "given twice").await;
    assert_rejected(&app, reasons(200_000), StatusCode::PAYLOAD_TOO_LARGE, "a vote is JSON").await;
    assert_rejected(&app, get("/api/leaderboard?by=colour"), StatusCode::BAD_REQUEST, "by must be one of").await;
    assert_rejected(&app, get("/api/leaderboard?format=xls"), StatusCode::BAD_REQUEST, "format").await;
    let (_, votes) = send_json(&app, get("/api/votes")).await;
    assert_eq!(votes["votes"].as_array().unwrap().len(), 3, "nothing refused is stored");

    // The pages.
    let (status, html) = send(&app, get(&format!("/v/{}", variant_ids[0]))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    for needle in
        ["Scores", "Camera motion", "Smoothness", "Compare the variants", &format!("/compare?group={group_id}")]
    {
        assert!(html.contains(needle), "video page lacks {needle:?}");
    }
    let (status, html) = send(&app, get(&format!("/compare?group={group_id}&blind=1"))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    for needle in ["Clip A", "Clip B", "Hidden until you vote", "Vote for quality", "Vote for faithfulness"] {
        assert!(html.contains(needle), "compare page lacks {needle:?}");
    }
    let (_, html) = send(&app, get("/leaderboard?by=seed")).await;
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("seed 2") && html.contains("Win rate"), "leaderboard page");
    let (_, html) = send(&app, get("/gallery?sort=most_motion")).await;
    assert!(String::from_utf8_lossy(&html).contains("Compare selected"));
    jobs.shutdown().await;

    // Clips stored without scores are measured while the queue is idle after a start.
    {
        let store = server::storage::SqliteStore::open(&data.join("vidplay.db")).await.unwrap();
        let before = store.video(i2v.clone()).await.unwrap().unwrap().scores.unwrap();
        drop(store);
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("vidplay.db").display())).await.unwrap();
        sqlx::query("UPDATE videos SET scores = NULL, motion = NULL, flag = NULL").execute(&pool).await.unwrap();
        pool.close().await;
        let store = server::storage::SqliteStore::open(&data.join("vidplay.db")).await.unwrap();
        assert!(store.video(i2v.clone()).await.unwrap().unwrap().scores.is_none());
        assert_eq!(before.frames, 16);
    }
    let (app, jobs) = start(&data).await;
    for _ in 0..600 {
        let (_, page) = send_json(&app, get("/api/videos?sort=least_motion&limit=100")).await;
        if ids(&page).len() == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let v = video(&app, &i2v).await;
    assert!(v["scores"]["fidelity"]["psnr"].as_f64().unwrap() > 20.0, "measured again with its input: {v}");
    jobs.shutdown().await;
}

/// Animate many: several pictures in one form, each animated with the form's settings, as one
/// group; more than 8, several to edit, or variants of several are refused, and nothing queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_pictures_are_animated_as_one_group() {
    let data = data_dir("animate-many");
    let (app, _jobs) = start_with(&data, no_models()).await;
    let app = &app;
    let images: Vec<Vec<u8>> = (0..3).map(|i| png(48 + 8 * i, 40)).collect();
    let files: Vec<(&str, &[u8])> = images.iter().map(|b| ("p.png", b.as_slice())).collect();
    let fields = [("mode", "image-to-video"), ("prompt", "camera pans left"), ("frames", "4")];
    let (status, group) = send_json(app, post_multipart(multipart_files(&fields, &files))).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let jobs = group["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    let mut sizes = Vec::new();
    for job in jobs {
        assert_eq!((&job["params"]["group"], &job["mode"]), (&group["group"], &json!("image-to-video")));
        let id = job["id"].as_str().unwrap();
        wait_for(app, id, |j| j["state"] == "done").await;
        let (_, input) = send(app, get(&format!("/media/{id}/input.png"))).await;
        sizes.push(image::load_from_memory(&input).unwrap().width());
    }
    assert_eq!(sizes, [48, 56, 64], "each its own picture, in order");

    let before = send_json(app, get("/api/jobs")).await.1.as_array().unwrap().len();
    let nine: Vec<(&str, &[u8])> = (0..9).map(|_| ("p.png", images[0].as_slice())).collect();
    let refused = [
        (multipart_files(&fields, &nine), "at most 8 pictures"),
        (multipart_files(&[("mode", "edit"), ("prompt", "add snow")], &files), "an edit changes one image"),
        (
            multipart_files(&[fields[0], fields[1], ("vary", "seed"), ("vary_values", "2")], &files),
            "variants of several",
        ),
    ];
    for (body, needle) in refused {
        assert_rejected(app, post_multipart(body), StatusCode::BAD_REQUEST, needle).await;
    }
    assert_eq!(send_json(app, get("/api/jobs")).await.1.as_array().unwrap().len(), before, "nothing queued");
    let _ = std::fs::remove_dir_all(&data);
}
