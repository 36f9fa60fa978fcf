//! The playground server in-process, on a real SQLite database in a temporary data dir and the
//! real built-in model (Burn's CPU backend, few steps): the JSON API end to end, the pages,
//! media with Range support, cancel, the queue limit, a restart, and bad input answered with
//! 4xx JSON errors, never 500s.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;
use server::queue::events::JobEvent;
use std::path::PathBuf;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_and_media_end_to_end() {
    let data = data_dir("e2e");
    let (app, _jobs) = start(&data).await;

    // Text to video through the JSON API.
    let (status, job) = send_json(
        &app,
        post_json(json!({"prompt": "a red ball moving right on a grass field", "steps": 3, "seed": 11})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["params"]["seed"], 11);
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"] == "done").await;
    assert_eq!(done["video_id"], id.as_str());
    assert_eq!(done["step"], 3);

    // Image to video through the multipart form, with a random seed that gets recorded.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("prompt", "camera pans left"), ("steps", "2"), ("seed", "")],
            Some(("photo.png", &png(80, 60))),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["mode"], "image-to-video");
    assert!(job["params"]["seed"].as_u64().is_some());
    let i2v = job["id"].as_str().unwrap().to_string();
    wait_for(&app, &i2v, |j| j["state"] == "done").await;

    // An example image, chosen by name.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(&[("mode", "image-to-video"), ("example", "beach.png"), ("steps", "1")], None)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let example = job["id"].as_str().unwrap().to_string();
    wait_for(&app, &example, |j| j["state"] == "done").await;

    // Without JavaScript the Create form posts here and the browser is sent to the queue.
    let no_js = Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .body(multipart(
            &[("mode", "text-to-video"), ("prompt", "a white star spinning"), ("steps", "1"), ("seed", "")],
            None,
        ))
        .unwrap();
    let resp = app.clone().oneshot(no_js).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert!(location.starts_with("/queue#job-"), "{location}");
    wait_for(&app, location.trim_start_matches("/queue#job-"), |j| j["state"] == "done").await;

    // The gallery: search finds it, a non-matching search does not, filters work.
    let (_, page) = send_json(&app, get("/api/videos?q=red+ball")).await;
    assert_eq!(page["videos"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["videos"][0]["id"], id.as_str());
    let (_, page) = send_json(&app, get("/api/videos?q=purple")).await;
    assert!(page["videos"].as_array().unwrap().is_empty());
    let (_, page) = send_json(&app, get("/api/videos?mode=image-to-video")).await;
    assert_eq!(page["videos"].as_array().unwrap().len(), 2);
    let (_, page) = send_json(&app, get("/api/videos?model=vidplay-toy-1")).await;
    assert_eq!(page["videos"].as_array().unwrap().len(), 4);
    let (_, page) = send_json(&app, get("/api/videos?model=other")).await;
    assert!(page["videos"].as_array().unwrap().is_empty());
    let (status, page) = send_json(&app, get("/api/videos?q=%22red*%20OR%20(NEAR")).await;
    assert_eq!(status, StatusCode::OK, "FTS syntax in a search is just text: {page}");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(video["params"]["prompt"], "a red ball moving right on a grass field");
    assert_eq!(video["metadata"]["resolution"]["native"][0], 32);
    // Memory measured per job: host always; GPU only on a GPU backend (this server runs on flex).
    assert!(video["metadata"]["peak_host_memory_mib"].as_f64().unwrap() > 0.0, "{video}");
    assert!(video["metadata"]["peak_gpu_memory_mib"].is_null(), "{video}");

    // Media: every download exists with the right type; Range requests work.
    for (file, mime) in [
        ("video.mp4", "video/mp4"),
        ("video.gif", "image/gif"),
        ("frames.zip", "application/zip"),
        ("poster.png", "image/png"),
        ("metadata.json", "application/json"),
    ] {
        let resp = app.clone().oneshot(get(&format!("/media/{id}/{file}"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{file}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], mime, "{file}");
    }
    let ranged =
        Request::get(format!("/media/{id}/video.mp4")).header(header::RANGE, "bytes=0-99").body(Body::empty()).unwrap();
    let (status, bytes) = send(&app, ranged).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes.len(), 100);
    // The last bytes of a file, read as they are (a player seeking to the end).
    let (_, whole) = send(&app, get(&format!("/media/{id}/frames.zip"))).await;
    for (asked, expect) in [(1, 1), (100, 100), (whole.len() + 5, whole.len())] {
        let suffix = Request::get(format!("/media/{id}/frames.zip"))
            .header(header::RANGE, format!("bytes=-{asked}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(suffix).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        let range = resp.headers()[header::CONTENT_RANGE].to_str().unwrap().to_string();
        assert_eq!(range, format!("bytes {}-{}/{}", whole.len() - expect, whole.len() - 1, whole.len()));
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable", "no token");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], &whole[whole.len() - expect..]);
    }
    let nothing =
        Request::get(format!("/media/{id}/frames.zip")).header(header::RANGE, "bytes=-0").body(Body::empty()).unwrap();
    assert_eq!(send(&app, nothing).await.0, StatusCode::RANGE_NOT_SATISFIABLE);
    // Clients that stop reading (a paused video) hold no turn: with more responses open than
    // files are opened at once, the next file is still sent.
    let mut open = Vec::new();
    for _ in 0..server::web::media::MAX_READS + 1 {
        open.push(app.clone().oneshot(get(&format!("/media/{id}/frames.zip"))).await.unwrap());
    }
    let next = app.clone().oneshot(get(&format!("/media/{id}/poster.png")));
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), next).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let first = open.pop().unwrap().into_body().collect().await.unwrap().to_bytes();
    assert_eq!(first, whole);
    let (status, input) = send(&app, get(&format!("/media/{i2v}/input.png"))).await;
    assert_eq!(status, StatusCode::OK);
    let input = image::load_from_memory(&input).unwrap();
    assert_eq!((input.width(), input.height()), (80, 60), "the source at its own resolution");

    // Pages render on the server.
    let (status, html) = send(&app, get("/")).await;
    let html = String::from_utf8_lossy(&html);
    assert_eq!(status, StatusCode::OK);
    for needle in ["Create a video", "moving left", "camera pans left", "Generate", "beach.png"] {
        assert!(html.contains(needle), "create page lacks {needle:?}");
    }
    let (status, html) = send(&app, get("/gallery?q=red")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains(&format!("/v/{id}")), "gallery search shows the video");
    assert!(!html.contains(&format!("/v/{i2v}")), "and not the others");
    let (status, html) = send(&app, get(&format!("/v/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    for needle in
        ["a red ball moving right on a grass field", "Remix", "frames.zip", "11", "32×32 generated, shown at 256×256"]
    {
        assert!(html.contains(needle), "video page lacks {needle:?}");
    }
    let (status, html) = send(&app, get("/queue")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&html).contains("done"));
    let (status, _) = send(&app, get("/v/ffffffffffffffff")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete: gone from the API, the search and the disk.
    let (status, _) = send(&app, Request::delete(format!("/api/videos/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_rejected(&app, get(&format!("/api/videos/{id}")), StatusCode::NOT_FOUND, "no such video").await;
    assert!(!data.join("media").join(&id).exists());
    let (_, page) = send_json(&app, get("/api/videos?q=red")).await;
    assert!(page["videos"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx() {
    let data = data_dir("bad");
    let (app, _jobs) = start(&data).await;
    let bad = StatusCode::BAD_REQUEST;
    assert_rejected(&app, post_json(json!({"prompt": ""})), bad, "prompt is empty").await;
    assert_rejected(&app, post_json(json!({"prompt": "x".repeat(5000)})), bad, "longer than").await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "frames": 100000})), bad, "frames").await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "steps": 0})), bad, "steps").await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "model": "sdxl"})), bad, "unknown model").await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "colour": "red"})), bad, "unknown field").await;
    assert_rejected(
        &app,
        Request::post("/api/jobs")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
        bad,
        "invalid JSON",
    )
    .await;
    assert_rejected(
        &app,
        Request::post("/api/jobs").header(header::CONTENT_TYPE, "text/plain").body(Body::from("hi")).unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    )
    .await;
    // Uploads: not an image, truncated, a decompression bomb, too large, none at all.
    assert_rejected(
        &app,
        post_multipart(multipart(&[("prompt", "pan left")], Some(("notes.txt", b"hello")))),
        bad,
        "not an image",
    )
    .await;
    let truncated = png(64, 64)[..60].to_vec();
    assert_rejected(&app, post_multipart(multipart(&[], Some(("cut.png", &truncated)))), bad, "cut.png").await;
    let mut bomb = png(8, 8);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    assert_rejected(&app, post_multipart(multipart(&[], Some(("bomb.png", &bomb)))), bad, "bomb.png").await;
    let huge = vec![0u8; 40 * 1024 * 1024];
    assert_rejected(
        &app,
        post_multipart(multipart(&[], Some(("huge.png", &huge)))),
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than",
    )
    .await;
    assert_rejected(&app, post_multipart(multipart(&[("mode", "image-to-video")], None)), bad, "choose an image").await;
    assert_rejected(
        &app,
        post_multipart(multipart(&[("mode", "image-to-video"), ("example", "../vidplay.db")], None)),
        bad,
        "no example",
    )
    .await;
    assert_rejected(
        &app,
        post_multipart(multipart(&[("prompt", "a ball"), ("steps", "many")], None)),
        bad,
        "steps must be a number",
    )
    .await;
    // Unknown ids and path tricks.
    assert_rejected(&app, get("/api/jobs/0123456789abcdef"), StatusCode::NOT_FOUND, "no such job").await;
    assert_rejected(&app, get("/api/jobs/..%2F..%2Fetc"), StatusCode::NOT_FOUND, "no such job").await;
    assert_rejected(
        &app,
        Request::delete("/api/videos/zzzz").body(Body::empty()).unwrap(),
        StatusCode::NOT_FOUND,
        "no such video",
    )
    .await;
    assert_rejected(&app, get("/api/videos?mode=sideways"), bad, "mode").await;
    assert_rejected(&app, get("/api/videos?before=..%2F"), bad, "before").await;
    for path in [
        "/media/../vidplay.db",
        "/media/%2e%2e/vidplay.db",
        "/media/0123456789abcdef.partial/video.mp4",
        "/media/vidplay.db",
    ] {
        let (status, _) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Nothing was stored by any of it, and the server still works.
    let (_, jobs) = send_json(&app, get("/api/jobs")).await;
    assert!(jobs.as_array().unwrap().is_empty(), "{jobs}");
    let (status, _) = send_json(&app, post_json(json!({"prompt": "a green star", "steps": 1}))).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queue_limit_and_restart() {
    let data = data_dir("queue");
    {
        let (app, jobs) = start(&data).await;
        // A long job starts running; the queue then fills up to its limit.
        let (_, long) = send_json(&app, post_json(json!({"prompt": "a blue square spinning", "steps": 200}))).await;
        let long = long["id"].as_str().unwrap().to_string();
        wait_for(&app, &long, |j| j["state"] == "running" && j["step"].as_u64() > Some(0)).await;
        let mut queued = Vec::new();
        for k in 0..server::queue::QUEUE_LIMIT {
            let (status, job) =
                send_json(&app, post_json(json!({"prompt": format!("a red ball {k}"), "steps": 1}))).await;
            assert_eq!(status, StatusCode::CREATED, "{job}");
            queued.push(job["id"].as_str().unwrap().to_string());
        }
        assert_rejected(
            &app,
            post_json(json!({"prompt": "one red ball too many"})),
            StatusCode::TOO_MANY_REQUESTS,
            "queue is full",
        )
        .await;

        // Cancel the running job between steps, and a queued one before it starts.
        let (status, job) =
            send_json(&app, Request::delete(format!("/api/jobs/{}", queued[0])).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(job["state"], "cancelled");
        send_json(&app, Request::delete(format!("/api/jobs/{long}")).body(Body::empty()).unwrap()).await;
        let cancelled = wait_for(&app, &long, |j| j["state"] == "cancelled").await;
        assert!(cancelled["step"].as_u64().unwrap() < 200);
        assert!(!data.join("media").join(&long).exists(), "no media for a cancelled job");
        // The rest run; stop the server while some are still queued.
        wait_for(&app, &queued[1], |j| j["state"] == "done").await;
        jobs.shutdown().await;
    }
    // Simulate a crash mid-job: mark one job running in the database, as a killed server leaves it.
    {
        let store = server::storage::SqliteStore::open(&data.join("vidplay.db")).await.unwrap();
        use server::storage::JobStore;
        let mut job =
            store.jobs(100).await.unwrap().into_iter().find(|j| j.state == app::types::JobState::Queued).unwrap();
        job.state = app::types::JobState::Running;
        store.update_job(job).await.unwrap();
    }
    let (app, _jobs) = start(&data).await;
    // After the restart, every job finishes: the interrupted one was queued again.
    let (_, jobs) = send_json(&app, get("/api/jobs")).await;
    let ids: Vec<String> = jobs.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    for id in &ids {
        let job = wait_for(&app, id, |j| j["state"] != "queued" && j["state"] != "running").await;
        assert!(job["state"] == "done" || job["state"] == "cancelled", "{job}");
    }
    assert!(jobs.as_array().unwrap().iter().any(|j| j["message"].as_str().is_some_and(|m| m.contains("restart"))));
    let (_, page) = send_json(&app, get("/api/videos?limit=100")).await;
    assert_eq!(page["videos"].as_array().unwrap().len(), server::queue::QUEUE_LIMIT - 1);
}

/// An installed Stable Diffusion model (the tiny sd1 fixture): offered next to the built-in
/// model, its keyframes run as jobs, land in the gallery as images with a page, and can be
/// animated by the built-in model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframes_from_an_installed_text_to_image_model() {
    let data = data_dir("keyframes");
    let (app, _jobs) = start(&data).await;

    // The Create page offers it.
    let (status, page) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("sd1 (keyframes)") && page.contains("text-to-image"), "model picker lacks sd1");

    let (status, job) = send_json(
        &app,
        post_json(json!({"prompt": "a red cat in space", "model": "sd1", "steps": 2, "guidance": 4.0, "width": 64, "height": 64, "negative": "blurry"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["mode"], "text-to-image");
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["step"], 2);

    // The image, its metadata, the gallery filter and the page.
    let (status, png_bytes) = send(&app, get(&format!("/media/{id}/image.png"))).await;
    assert_eq!(status, StatusCode::OK);
    let img = image::load_from_memory(&png_bytes).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(video["mode"], "text-to-image");
    assert_eq!(video["metadata"]["params"]["negative"], "blurry");
    assert_eq!(video["metadata"]["precision"], "F32");
    let (_, page) = send_json(&app, get("/api/videos?mode=text-to-image")).await;
    assert_eq!(page["videos"].as_array().unwrap().len(), 1);
    let (_, page) = send_json(&app, get("/api/videos?mode=text-to-video")).await;
    assert!(page["videos"].as_array().unwrap().is_empty());
    // The gallery's model filter offers every model here, the one asked for chosen.
    let (_, html) = send(&app, get("/gallery?model=sd1")).await;
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains(&format!("/v/{id}")), "the gallery filtered by sd1 shows its image");
    for model in ["sd1", "vidplay-toy-1", "vidplay-edit-1"] {
        assert!(html.contains(&format!(r#"<option value="{model}""#)), "the model filter lacks {model}");
    }
    let (status, html) = send(&app, get(&format!("/v/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&html).contains("Animate this keyframe"));

    // Same seed, same image; then the keyframe animated by the built-in model.
    let seed = done["params"]["seed"].as_u64().unwrap();
    let (_, again) = send_json(
        &app,
        post_json(json!({"prompt": "a red cat in space", "model": "sd1", "steps": 2, "guidance": 4.0, "width": 64, "height": 64, "negative": "blurry", "seed": seed})),
    )
    .await;
    let again = again["id"].as_str().unwrap().to_string();
    wait_for(&app, &again, |j| j["state"] == "done").await;
    let (_, png2) = send(&app, get(&format!("/media/{again}/image.png"))).await;
    // The pixels (the files differ in the timings they carry).
    let pixels = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgb8().into_raw();
    assert_eq!(pixels(&png_bytes), pixels(&png2), "same seed and settings give the same image");
    let source = format!("/media/{id}/image.png");
    let (status, anim) = send_json(
        &app,
        post_multipart(multipart(
            &[("mode", "image-to-video"), ("source", &source), ("prompt", "camera pans left"), ("steps", "1")],
            None,
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{anim}");
    assert_eq!(anim["mode"], "image-to-video");
    wait_for(&app, anim["id"].as_str().unwrap(), |j| j["state"] == "done").await;

    // Bad requests: a clear 4xx, nothing queued.
    for (body, needle) in [
        (json!({"prompt": "a cat", "model": "sd1", "width": 100}), "multiple of 8"),
        (json!({"prompt": "  ", "model": "sd1"}), "prompt is empty"),
        (json!({"prompt": "a cat", "model": "sd1", "steps": 0}), "steps"),
        (json!({"prompt": "a cat", "model": "no-such-model"}), "unknown model"),
    ] {
        assert_rejected(&app, post_json(body), StatusCode::BAD_REQUEST, needle).await;
    }
    assert_rejected(
        &app,
        post_multipart(multipart(&[("model", "sd1"), ("prompt", "a cat")], Some(("photo.png", &png(64, 64))))),
        StatusCode::BAD_REQUEST,
        "does not take an input image",
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
}

/// With a text-to-image and an image-to-video model installed (the tiny SD and SVD fixtures):
/// text to video the Emu Video way (keyframe, then video, one job with both phases in its
/// progress, the keyframe kept with the video and shown on its page), and image to video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_video_through_a_keyframe_and_stable_video_diffusion() {
    let data = data_dir("svd");
    let models = data.with_extension("models");
    let _ = std::fs::remove_dir_all(&models);
    std::fs::create_dir_all(&models).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    std::os::unix::fs::symlink(fixtures.join("sd/sd1"), models.join("sd1")).unwrap();
    std::os::unix::fs::symlink(fixtures.join("svd/svd1"), models.join("svd1")).unwrap();
    let (app, jobs) = start_with(&data, models.clone()).await;
    // Every update of the text-to-video job counts both phases: the keyframe's steps, then the video's.
    let mut updates = jobs.subscribe();

    let (status, page) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains("svd1"), "model picker lacks svd1");

    let (status, job) = send_json(
        &app,
        post_json(json!({"prompt": "a red cat in space", "model": "svd1", "steps": 2, "frames": 4, "fps": 6, "width": 64, "height": 64, "keyframe_steps": 2, "keyframe_guidance": 4.0})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["mode"], "text-to-video");
    assert_eq!(job["total"], 4, "both phases count in the progress");
    assert_eq!(job["params"]["keyframe_model"], "sd1");
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["step"], 4);
    while let Ok(update) = updates.try_recv() {
        let total = match &update {
            JobEvent::Changed(job) => job.total,
            JobEvent::Step(step) => step.total,
        };
        if update.job_id() == id {
            assert_eq!(total, 4, "progress of {update:?}");
        }
    }
    for f in ["video.mp4", "video.gif", "keyframe.png", "poster.png", "frames.zip"] {
        let (status, _) = send(&app, get(&format!("/media/{id}/{f}"))).await;
        assert_eq!(status, StatusCode::OK, "{f}");
    }
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(video["metadata"]["keyframe"]["model"], "sd1");
    assert_eq!(video["metadata"]["frames"], 4);
    assert_eq!(video["metadata"]["model"], "svd1");
    let (status, html) = send(&app, get(&format!("/v/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(&format!("/media/{id}/keyframe.png")) && html.contains("made from the prompt by sd1"),
        "keyframe not shown"
    );

    // Image to video with an upload.
    let (status, anim) = send_json(
        &app,
        post_multipart(multipart(
            &[("model", "svd1"), ("steps", "1"), ("frames", "3"), ("width", "64"), ("height", "64")],
            Some(("photo.png", &png(80, 60))),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{anim}");
    assert_eq!(anim["mode"], "image-to-video");
    let done = wait_for(&app, anim["id"].as_str().unwrap(), |j| {
        j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");

    // Extending it continues from its last frame with the same engine.
    let (status, ext) = send_json(
        &app,
        post_json(json!({"task": "extend", "source": anim["id"], "model": "svd1", "steps": 1, "frames": 3, "width": 64, "height": 64})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ext}");
    assert_eq!(ext["mode"], "extend");
    let ext_id = ext["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &ext_id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{ext_id}"))).await;
    assert_eq!(video["metadata"]["frames"], 3 + 2, "the source's 3 frames, then 2 new ones");
    assert_eq!(video["metadata"]["parent"], anim["id"]);

    for (body, needle) in [
        (json!({"prompt": "a cat", "model": "svd1", "width": 100}), "multiple of 64"),
        (json!({"prompt": "a cat", "model": "svd1", "frames": 1}), "frames"),
        (json!({"prompt": "  ", "model": "svd1"}), "give an image to animate"),
        (json!({"prompt": "a cat", "model": "svd1", "keyframe_model": "nope"}), "keyframe model must be one of"),
    ] {
        assert_rejected(&app, post_json(body), StatusCode::BAD_REQUEST, needle).await;
    }
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&models);
}

/// An installed Wan model (the tiny wan1 fixture) is a text-to-video engine with its own
/// controls, and the default for text to video: a prompt without a model goes to it directly
/// (no keyframe), an upload without a model still goes to a model that animates images, and a
/// clip cannot be continued with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_video_with_an_installed_wan_model() {
    let data = data_dir("wan");
    let models = data.with_extension("models");
    let _ = std::fs::remove_dir_all(&models);
    std::fs::create_dir_all(&models).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    std::os::unix::fs::symlink(fixtures.join("wan/wan1"), models.join("wan1")).unwrap();
    let (app, _jobs) = start_with(&data, models.clone()).await;

    let (status, page) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("wan1") && page.contains("Negative prompt"), "the page offers wan1 with its controls");
    assert!(
        page.contains("aerial drone shot") && page.contains("Assembled prompt"),
        "the prompt builder offers Wan's parts"
    );
    let (_, listed) = send_json(&app, get("/api/models")).await;
    let wan = listed.as_array().unwrap().iter().find(|m| m["id"] == "wan1").expect("wan1 listed").clone();
    assert_eq!(wan["family"], "wan");
    assert_eq!(wan["tasks"], json!(["text-to-video"]));
    assert_eq!(listed[0]["id"], "wan1", "the default for text to video");

    let (status, job) = send_json(&app, post_json(json!({"prompt": "a red ball bounces across a table", "negative": "blurry", "steps": 2, "frames": 5, "fps": 16, "width": 32, "height": 32, "guidance": 4.0}))).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(
        (job["params"]["model"].as_str(), job["mode"].as_str(), job["total"].as_u64()),
        (Some("wan1"), Some("text-to-video"), Some(2))
    );
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    for f in ["video.mp4", "video.gif", "poster.png"] {
        let (status, _) = send(&app, get(&format!("/media/{id}/{f}"))).await;
        assert_eq!(status, StatusCode::OK, "{f}");
    }
    let (status, _) = send(&app, get(&format!("/media/{id}/keyframe.png"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no keyframe: the text goes to the model directly");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    let meta = &video["metadata"];
    assert_eq!(
        (meta["family"].as_str(), meta["frames"].as_u64(), meta["fps"].as_u64()),
        (Some("wan"), Some(5), Some(16))
    );
    assert_eq!(meta["resolution"]["native"], json!([32, 32]));
    assert_eq!(meta["params"]["negative"], "blurry");

    // An upload without a model is animated by the built-in model.
    let (status, anim) =
        send_json(&app, post_multipart(multipart(&[("steps", "1")], Some(("photo.png", &png(64, 48)))))).await;
    assert_eq!(status, StatusCode::CREATED, "{anim}");
    assert_eq!(
        (anim["mode"].as_str(), anim["params"]["model"].as_str()),
        (Some("image-to-video"), Some("vidplay-toy-1"))
    );
    wait_for(&app, anim["id"].as_str().unwrap(), |j| j["state"] == "done").await;

    for (body, needle) in [
        (json!({"prompt": "a cat", "model": "wan1", "frames": 200, "width": 32, "height": 32}), "frames must be"),
        (json!({"prompt": "a cat", "model": "wan1", "frames": 5, "width": 4000, "height": 32}), "width must be"),
        (json!({"prompt": "  ", "model": "wan1"}), "prompt is empty"),
        (
            json!({"task": "extend", "source": id, "model": "wan1", "frames": 5, "width": 32, "height": 32}),
            "cannot continue a clip",
        ),
    ] {
        assert_rejected(&app, post_json(body), StatusCode::BAD_REQUEST, needle).await;
    }
    assert_rejected(
        &app,
        post_multipart(multipart(&[("model", "wan1"), ("prompt", "a cat")], Some(("photo.png", &png(64, 64))))),
        StatusCode::BAD_REQUEST,
        "does not take an input image",
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&models);
}

/// An installed Wan 2.2 image-to-video model (the tiny two-expert wan-i2v1 fixture) animates an
/// upload from the form, with a last frame and the second expert's guidance among its controls;
/// a last frame is refused where it cannot be used, and both uploads go once the job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_to_video_with_an_installed_wan_model_and_a_last_frame() {
    let data = data_dir("wan-i2v");
    let models = data.with_extension("models");
    let _ = std::fs::remove_dir_all(&models);
    std::fs::create_dir_all(&models).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    std::os::unix::fs::symlink(fixtures.join("wan/wan-i2v1"), models.join("wan-i2v1")).unwrap();
    let (app, _jobs) = start_with(&data, models.clone()).await;

    let (_, listed) = send_json(&app, get("/api/models")).await;
    let wan = listed.as_array().unwrap().iter().find(|m| m["id"] == "wan-i2v1").expect("wan-i2v1 listed").clone();
    assert_eq!((wan["family"].as_str(), &wan["tasks"]), (Some("wan-image-to-video"), &json!(["image-to-video"])));
    let param = |name: &str| wan["params"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    assert_eq!(param("last_image").expect("a last frame")["kind"], "image");
    assert_eq!(param("guidance_2").expect("the second expert's guidance")["default"], "0", "0: the same as guidance");

    let fields = [
        ("model", "wan-i2v1"),
        ("prompt", "the ball rolls away"),
        ("steps", "2"),
        ("frames", "5"),
        ("width", "32"),
        ("height", "32"),
        ("guidance", "4"),
        ("guidance_2", "2"),
        ("memory", "one component at a time"),
    ];
    let (first, last) = (png(64, 48), png(40, 40));
    let files = [("image", "photo.png", &first[..]), ("last_image", "end.png", &last[..])];
    let (status, job) = send_json(&app, post_multipart(multipart_named(&fields, &files))).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!((job["mode"].as_str(), job["params"]["last_image"].as_bool()), (Some("image-to-video"), Some(true)));
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    let meta = &video["metadata"];
    assert_eq!((meta["family"].as_str(), meta["mode"].as_str()), (Some("wan-image-to-video"), Some("image-to-video")));
    assert_eq!(
        (meta["params"]["last_image"].as_bool(), meta["params"]["guidance_2"].as_f64()),
        (Some(true), Some(2.0))
    );
    assert_eq!(meta["resolution"]["native"], json!([32, 32]), "the picture's shape at about 32x32");
    assert_eq!(meta["memory_mode"], "low", "the components loaded one at a time: {meta}");
    let (status, _) = send(&app, get(&format!("/media/{id}/input.png"))).await;
    assert_eq!(status, StatusCode::OK, "the picture animated is kept");
    let (_, page) = send(&app, get(&format!("/v/{id}"))).await;
    assert!(String::from_utf8_lossy(&page).contains("Last frame"), "the page says the clip had a last frame");
    let leftover: Vec<_> = walk_files(&data)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&id) && p.to_string_lossy().contains("uploads"))
        .collect();
    assert!(leftover.is_empty(), "uploads left after the job: {leftover:?}");

    // It continues a clip from its last frame, and plans a shot list from a picture.
    let extend = json!({"task": "extend", "source": id, "model": "wan-i2v1", "prompt": "it rolls on", "frames": 5,
                        "width": 32, "height": 32, "steps": 2});
    let (status, job) = send_json(&app, post_json(extend)).await;
    assert_eq!((status, job["mode"].as_str()), (StatusCode::CREATED, Some("extend")), "{job}");
    let done = wait_for(&app, job["id"].as_str().unwrap(), |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{}", job["id"].as_str().unwrap()))).await;
    assert_eq!(video["metadata"]["frames"].as_u64(), Some(9), "the source's 5, then 4 new (the 5th is its last)");
    let shots = [
        ("model", "wan-i2v1"),
        ("segment", "the ball rolls left"),
        ("segment", "the ball stops"),
        ("steps", "1"),
        ("frames", "5"),
        ("width", "32"),
        ("height", "32"),
    ];
    let (status, job) = send_json(&app, post_multipart(multipart_named(&shots, &files[..1]))).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let done = wait_for(&app, job["id"].as_str().unwrap(), |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(done["state"], "done", "{done}");

    // A JSON request cannot claim a last frame; one without a picture is refused for the picture.
    assert_rejected(
        &app,
        post_json(json!({"prompt": "a cat", "model": "wan-i2v1", "last_image": true})),
        StatusCode::BAD_REQUEST,
        "animates images",
    )
    .await;
    // A last frame needs a clip of at least 5 frames (4k + 1, the first and the last).
    let short = [("model", "wan-i2v1"), ("prompt", "a cat"), ("frames", "1"), ("width", "32"), ("height", "32")];
    assert_rejected(
        &app,
        post_multipart(multipart_named(&short, &files)),
        StatusCode::BAD_REQUEST,
        "at least 5 frames",
    )
    .await;
    // The built-in model takes no last frame.
    let builtin = [("model", "vidplay-toy-1"), ("steps", "1")];
    assert_rejected(
        &app,
        post_multipart(multipart_named(&builtin, &files)),
        StatusCode::BAD_REQUEST,
        "takes no last frame",
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&models);
}

/// A worker that prepares GPU kernels (`--warm-up always`; on a GPU `auto` does) runs every
/// installed model once while no job waits, says so in the health answer and on the queue page,
/// runs a job that comes meanwhile before the models left, and goes on when one model fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_prepares_every_model_while_no_job_waits() {
    use server::queue::warm_up::WarmUpPolicy;
    let data = data_dir("warm-up");
    let mut setup = server::queue::WorkerSetup::new("test".into(), vec!["cpu".into()]);
    setup.warm_up = WarmUpPolicy::Always;
    // sd1, and a folder that says it is an SD pipeline but holds nothing else: it fails.
    let models_dir = data.join("models");
    std::fs::create_dir_all(models_dir.join("broken")).unwrap();
    let sd1 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/sd/sd1");
    std::os::unix::fs::symlink(&sd1, models_dir.join("sd1")).unwrap();
    std::fs::copy(sd1.join("model_index.json"), models_dir.join("broken/model_index.json")).unwrap();
    let faults = server::faults::Faults {
        pause_before_warm_up: Some(std::time::Duration::from_millis(1000)),
        ..Default::default()
    };
    let (app, _jobs) = start_options(server::web::ServeOptions {
        database_url: None,
        media: None,
        media_endpoint: None,
        worker: Some(setup),
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        site_root: site_root(),
        seed_examples: false,
        models_dir: Some(models_dir),
        access: server::web::security::Access::local(),
        model_memory_mib: 4096,
        faults,
        visual_min_similarity: server::visual::MIN_SIMILARITY,
    })
    .await;
    let (_, models) = send_json(&app, get("/api/models")).await;
    let total = models.as_array().unwrap().len() as u64;
    assert_eq!(total, 4, "the built-in model and editor, sd1, broken: {models}");

    // The first model is being prepared: the health answer and the queue page say so.
    let health = poll_health(&app, |h| h["warm_up"]["current"].is_string()).await;
    assert_eq!((health["warm_up"]["done"].as_u64(), health["warm_up"]["total"].as_u64()), (Some(0), Some(total)));
    let first = health["warm_up"]["current"].as_str().unwrap().to_string();
    let (_, html) = send(&app, get("/queue")).await;
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains(&format!("Preparing GPU kernels (1 of {total}: {first})")), "{html}");

    // A job that comes meanwhile runs before the models still to prepare.
    let (status, job) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1}))).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, |j| j["state"] == "done").await;
    let (_, health) = send_json(&app, get("/api/health")).await;
    assert!(health["warm_up"]["done"].as_u64().unwrap() < total, "the job did not wait for all: {health}");

    // Every model is prepared in the end (the broken one fails, is logged and counted); the page
    // no longer says so.
    let health = poll_health(&app, |h| h["warm_up"]["done"].as_u64() == Some(total)).await;
    assert!(health["warm_up"]["current"].is_null() && health["stalled"] == false, "{health}");
    let (_, html) = send(&app, get("/queue")).await;
    assert!(!String::from_utf8_lossy(&html).contains("Preparing GPU kernels"));
}

async fn poll_health(app: &axum::Router, until: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..1200 {
        let (status, health) = send_json(app, get("/api/health")).await;
        assert_eq!(status, StatusCode::OK);
        if until(&health) {
            return health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the health answer never got there");
}
