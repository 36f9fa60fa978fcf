//! Editing step by step through the API, with the tiny InstructPix2Pix fixture installed and a
//! real SQLite database: an upload edited, the result edited again, an earlier version branched
//! from, a frame of a clip edited; every version in the gallery knowing its parent and its
//! chain; a remix; and bad requests answered with clear 400s.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use server::faults::Faults;
use server::web::security::Access;
use std::path::PathBuf;
use std::time::Duration;

fn models_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-edit-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    for (family, name) in [("ip2p", "ip2p1"), ("sd", "sd1")] {
        std::os::unix::fs::symlink(fixtures.join(family).join(name), dir.join(name)).unwrap();
    }
    dir
}

async fn finish(app: &axum::Router, status: StatusCode, job: &Value) -> Value {
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(app, get(&format!("/api/videos/{id}"))).await;
    video
}

async fn chain(app: &axum::Router, id: &str) -> Vec<String> {
    let (status, body) = send_json(app, get(&format!("/api/videos/{id}/chain"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["chain"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_chain_branch_and_remix() {
    let data = data_dir("edit");
    let (app, _jobs) = start_with(&data, models_dir()).await;

    // The editor is described by its own parameters and does one task.
    let (_, models) = send_json(&app, get("/api/models")).await;
    let editor =
        models.as_array().unwrap().iter().find(|m| m["id"] == "ip2p1").expect("the editor is installed").clone();
    assert_eq!(editor["tasks"], json!(["edit"]));
    assert!(editor["params"].as_array().unwrap().iter().any(|p| p["name"] == "image_guidance"));

    // An upload edited (the Create page's form: mode "edit", no model named: the editor).
    let upload = png(96, 64);
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("mode", "edit"), ("prompt", "make it a fireman"), ("steps", "2"), ("seed", "4")],
            Some(("photo.png", &upload)),
        )),
    )
    .await;
    assert_eq!(job["total"], 2, "{job}");
    let v1 = finish(&app, status, &job).await;
    let id1 = v1["id"].as_str().unwrap().to_string();
    assert_eq!((v1["mode"].as_str(), v1["params"]["model"].as_str()), (Some("edit"), Some("ip2p1")));
    assert_eq!(v1["params"]["source"], "", "an upload starts a chain");
    // The input's aspect at the model's native size (64): 64x40 from 96x64.
    assert_eq!(v1["metadata"]["resolution"]["display"], json!([64, 40]));
    let made = &v1["metadata"]["params"];
    assert_eq!(
        (made["width"].as_u64(), made["height"].as_u64()),
        (Some(64), Some(40)),
        "the settings it was made with"
    );
    assert_eq!(v1["metadata"]["source_sha256"].as_str().map(str::len), Some(64));
    for file in ["image.png", "input.png", "poster.png", "metadata.json"] {
        let (status, _) = send(&app, get(&format!("/media/{id1}/{file}"))).await;
        assert_eq!(status, StatusCode::OK, "{file}");
    }

    // Edited again, from the JSON API: the next instruction applies to that result.
    let (status, job) = send_json(
        &app,
        post_json(json!({"task": "edit", "source": id1, "prompt": "add snow", "steps": 2, "model": "ip2p1"})),
    )
    .await;
    // It reads the stored result where it is, not a copy.
    assert_eq!(job["input"], app::media_files::key(&id1, app::media_files::MediaFile::Image), "{job}");
    let v2 = finish(&app, status, &job).await;
    let id2 = v2["id"].as_str().unwrap().to_string();
    assert_eq!(v2["params"]["source"], id1.as_str(), "it knows its parent");
    let (_, parent_image) = send(&app, get(&format!("/media/{id1}/image.png"))).await;
    let (_, input2) = send(&app, get(&format!("/media/{id2}/input.png"))).await;
    assert_eq!(
        image::load_from_memory(&parent_image).unwrap().to_rgb8(),
        image::load_from_memory(&input2).unwrap().to_rgb8(),
        "the second edit starts from the first's result"
    );
    assert_eq!(chain(&app, &id2).await, [id1.clone(), id2.clone()]);

    // Back to the first version, and a branch from it (the page's form: its image by URL).
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[
                ("task", "edit"),
                ("source", &format!("/media/{id1}/image.png")),
                ("prompt", "make it blue"),
                ("steps", "1"),
                ("model", "ip2p1"),
            ],
            None,
        )),
    )
    .await;
    let v3 = finish(&app, status, &job).await;
    let id3 = v3["id"].as_str().unwrap().to_string();
    assert_eq!(chain(&app, &id3).await, [id1.clone(), id3.clone()]);
    assert_eq!(chain(&app, &id2).await, [id1.clone(), id2.clone()], "the other branch is unchanged");

    // Every version is in the gallery, and edits filter as such.
    let (_, page) = send_json(&app, get("/api/videos?mode=edit")).await;
    let ids: Vec<&str> = page["videos"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id3.as_str(), id2.as_str(), id1.as_str()]);

    // A remix (the Create page sends the version's input): the same parent again.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[
                ("mode", "edit"),
                ("source", &format!("/media/{id2}/input.png")),
                ("prompt", "add snow"),
                ("steps", "1"),
                ("model", "ip2p1"),
            ],
            None,
        )),
    )
    .await;
    let remix = finish(&app, status, &job).await;
    assert_eq!(remix["params"]["source"], id1.as_str());

    // An example picture, as the Create page offers them.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("mode", "edit"), ("example", "beach.png"), ("prompt", "add snow"), ("steps", "1"), ("model", "ip2p1")],
            None,
        )),
    )
    .await;
    let from_example = finish(&app, status, &job).await;
    assert_eq!(from_example["params"]["source"], "", "an example starts a chain");

    // A frame of a clip: the built-in model animates a picture, its third frame is edited.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("prompt", "camera pans left"), ("frames", "4"), ("seed", "2")],
            Some(("p.png", &png(64, 64))),
        )),
    )
    .await;
    let clip = finish(&app, status, &job).await;
    let clip_id = clip["id"].as_str().unwrap().to_string();
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("task", "edit"), ("source", &clip_id), ("source_frame", "2"), ("prompt", "add rain"), ("steps", "1")],
            None,
        )),
    )
    .await;
    let from_frame = finish(&app, status, &job).await;
    assert_eq!(
        (from_frame["params"]["source"].as_str(), from_frame["params"]["source_frame"].as_u64()),
        (Some(clip_id.as_str()), Some(2))
    );
    let from_frame_id = from_frame["id"].as_str().unwrap();
    let (_, frame) = send(&app, get(&format!("/media/{clip_id}/frames/0002.png"))).await;
    let (_, input) = send(&app, get(&format!("/media/{from_frame_id}/input.png"))).await;
    assert_eq!(image::load_from_memory(&frame).unwrap().to_rgb8(), image::load_from_memory(&input).unwrap().to_rgb8());
    assert_eq!(
        chain(&app, from_frame_id).await,
        [clip_id.clone(), from_frame_id.to_string()],
        "the clip is where it came from"
    );

    // The version's page shows its chain and the edit form; a clip's page offers to edit a frame.
    let (status, html) = send(&app, get(&format!("/v/{id2}"))).await;
    let html = String::from_utf8_lossy(&html);
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Versions") && html.contains(&format!("/v/{id1}")) && html.contains("Edit this image"),
        "{html}"
    );
    let (_, html) = send(&app, get(&format!("/v/{clip_id}"))).await;
    assert!(String::from_utf8_lossy(&html).contains("Edit a frame"));

    // Bad requests: clear 400s, and nothing stored is lost.
    let bad = |body: Value| post_json(body);
    assert_rejected(
        &app,
        bad(json!({"task": "edit", "prompt": "add snow"})),
        StatusCode::BAD_REQUEST,
        "choose an image to edit",
    )
    .await;
    assert_rejected(
        &app,
        bad(json!({"task": "edit", "source": id1, "prompt": "  "})),
        StatusCode::BAD_REQUEST,
        "instruction is empty",
    )
    .await;
    assert_rejected(
        &app,
        bad(json!({"task": "edit", "source": id1, "prompt": "add snow", "model": "sd1"})),
        StatusCode::BAD_REQUEST,
        "sd1 does not edit images (editors here: ip2p1, vidplay-edit-1)",
    )
    .await;
    assert_rejected(
        &app,
        bad(json!({"task": "edit", "source": "0123456789abcdef", "prompt": "add snow"})),
        StatusCode::BAD_REQUEST,
        "no image",
    )
    .await;
    assert_rejected(
        &app,
        bad(json!({"task": "edit", "source": clip_id, "source_frame": 9, "prompt": "add snow"})),
        StatusCode::BAD_REQUEST,
        "no frame 9",
    )
    .await;
    assert_rejected(
        &app,
        bad(json!({"prompt": "add snow", "model": "ip2p1"})),
        StatusCode::BAD_REQUEST,
        "send the task \"edit\"",
    )
    .await;
    assert_rejected(
        &app,
        post_multipart(multipart(
            &[("task", "edit"), ("source", &format!("/media/{id1}/metadata.json")), ("prompt", "x")],
            None,
        )),
        StatusCode::BAD_REQUEST,
        "source of an edit",
    )
    .await;
    assert_rejected(&app, get("/api/videos/0123456789abcdef/chain"), StatusCode::NOT_FOUND, "no such video").await;
    assert_eq!(chain(&app, &id2).await.len(), 2);
}

/// The built-in editor through the API: a toy-world picture edited offline, at its own
/// resolution, everything far from the subject kept exactly; an instruction it cannot do is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_editor_edits_offline() {
    use model::builtin::edit::instruction::Edit;
    use model::builtin::edit::pairs::apply;
    use model::builtin::vocab::Color;
    let data = data_dir("edit-builtin");
    let (app, _jobs) = start(&data).await;
    // A toy-world scene with a subject, drawn at 96x96.
    let mut rng = model::rng::Rng::new(11);
    let scene = loop {
        let s = model::builtin::edit::pairs::scene(&mut rng, false);
        if s.subject.is_some()
            && s.weather.is_none()
            && s.color != Color::Red
            && apply(&s, Edit::Recolor(Color::Red)).is_some()
        {
            break s;
        }
    };
    let size = 96;
    let planar = scene.render(1, size);
    let plane = size * size;
    let picture = image::RgbImage::from_fn(size as u32, size as u32, |x, y| {
        let i = y as usize * size + x as usize;
        image::Rgb(std::array::from_fn(|c| (planar[c * plane + i] * 255.0).round() as u8))
    });
    let mut png = Vec::new();
    picture.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("task", "edit"), ("model", "vidplay-edit-1"), ("prompt", "make it red")],
            Some(("scene.png", &png)),
        )),
    )
    .await;
    assert_eq!(job["total"], 1, "{job}");
    let v = finish(&app, status, &job).await;
    assert_eq!(v["metadata"]["resolution"]["display"], json!([96, 96]), "the picture's own size");
    assert_eq!(v["metadata"]["edit"], json!({"Recolor": "red"}));
    let id = v["id"].as_str().unwrap();
    let (_, bytes) = send(&app, get(&format!("/media/{id}/image.png"))).await;
    let edited = image::load_from_memory(&bytes).unwrap().to_rgb8();
    // Far from the subject (outside twice its radius) the picture is kept: PSNR against the
    // input of at least 30 dB there (the editor's own measure of this is in the model card).
    let (cx, cy, r) = (scene.x0 * size as f32, scene.y0 * size as f32, scene.size * size as f32);
    let (mut n, mut se) = (0usize, 0f64);
    for (x, y, p) in edited.enumerate_pixels() {
        let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
        if d > 2.0 * r + 4.0 {
            let q = picture.get_pixel(x, y).0;
            n += 1;
            se += (0..3).map(|c| ((p.0[c] as f64 - q[c] as f64) / 255.0).powi(2)).sum::<f64>() / 3.0;
        }
    }
    let far_psnr = if se == 0.0 { f64::INFINITY } else { 10.0 * (n as f64 / se).log10() };
    assert!(n > 1000 && far_psnr >= 30.0, "PSNR {far_psnr:.1} dB over {n} pixels far from the subject");
    assert_ne!(edited, picture, "the edit changed something");

    assert_rejected(
        &app,
        post_multipart(multipart(
            &[("task", "edit"), ("model", "vidplay-edit-1"), ("prompt", "make it a fireman")],
            Some(("scene.png", &png)),
        )),
        StatusCode::BAD_REQUEST,
        "does not know how to",
    )
    .await;
}

/// An edit of a stored frame starts from that frame where it is stored; when its clip is deleted
/// before the edit runs, the edit fails saying so, and nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_whose_source_is_deleted_before_it_runs_fails_saying_so() {
    let data = data_dir("edit-gone");
    // The worker waits between claiming a job and running it: the source is deleted then.
    let faults = Faults { pause_after_claim: Some(Duration::from_millis(1500)), ..Faults::default() };
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), faults).await;
    let (status, job) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1, "frames": 4}))).await;
    let clip = finish(&app, status, &job).await;
    let clip_id = clip["id"].as_str().unwrap().to_string();
    let (status, job) = send_json(
        &app,
        post_json(json!({"task": "edit", "source": clip_id, "source_frame": 1, "prompt": "make it blue"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["input"], app::media_files::key(&clip_id, app::media_files::MediaFile::Frame(1)));
    let id = job["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, |j| j["state"] == "running").await;
    let (status, _) = send(&app, Request::delete(format!("/api/videos/{clip_id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let end = wait_for(&app, &id, |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(end["state"], "failed", "{end}");
    let message = end["message"].as_str().unwrap();
    assert!(message.contains("is gone (deleted before the job ran)"), "{message}");
    // The worker goes on.
    let (status, job) = send_json(&app, post_json(json!({"prompt": "a blue star", "steps": 1, "frames": 4}))).await;
    finish(&app, status, &job).await;
}
