//! Longer videos through the API, on the real built-in models and a real SQLite database:
//! a photo-like upload animated at its own resolution (continuity and pan direction), an
//! extension joined without a repeated or jumping frame and knowing its parent, a
//! three-segment shot list with progress over all segments, a segment re-rolled from the
//! video page's form, and bad sources answered with clear 400s.

use crate::common;

use axum::http::StatusCode;
use common::*;
use image::RgbImage;
use model::builtin::analysis::psnr;
use model::builtin::motion::evaluation::pan_pixels;
use serde_json::{Value, json};

/// A photo-like picture: smooth colour fields with soft detail, not square.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
        let r = 120.0 + 90.0 * (6.0 * u + 2.0 * v).sin();
        let g = 110.0 + 70.0 * (9.0 * v - 3.0 * u).cos();
        let b = 140.0 + 60.0 * (4.0 * (u + v)).sin() * (7.0 * u).cos();
        image::Rgb([r as u8, g as u8, b as u8])
    });
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

async fn frames(app: &axum::Router, id: &str, n: usize) -> Vec<RgbImage> {
    let mut out = Vec::new();
    for i in 0..n {
        let (status, bytes) = send(app, get(&format!("/media/{id}/frames/{i:04}.png"))).await;
        assert_eq!(status, StatusCode::OK, "frame {i} of {id}");
        out.push(image::load_from_memory(&bytes).unwrap().to_rgb8());
    }
    out
}

async fn finish(app: &axum::Router, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(app, &id, |j| j["state"].as_str().is_some_and(|s| s != "queued" && s != "running")).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(app, get(&format!("/api/videos/{id}"))).await;
    video
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn animate_extend_shot_lists_and_rerolls() {
    let data = data_dir("extend");
    let (app, _jobs) = start(&data).await;
    let upload = photo(96, 64);
    let picture = image::load_from_memory(&upload).unwrap().to_rgb8();

    // A photo moves at its own resolution, the camera's way, continuing from the picture.
    let (status, job) = send_json(
        &app,
        post_multipart(multipart(
            &[("prompt", "camera pans left"), ("frames", "8"), ("seed", "5")],
            Some(("photo.png", &upload)),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["total"], 8, "image-to-video counts frames");
    let video = finish(&app, &job).await;
    let id = video["id"].as_str().unwrap().to_string();
    assert_eq!(video["metadata"]["resolution"]["display"], json!([96, 64]));
    let clip = frames(&app, &id, 8).await;
    assert_eq!(clip[0], picture, "the first frame is the picture itself");
    let pan = pan_pixels(&clip, 8);
    assert!(pan > 4.0, "camera pans left: the content moves right, measured {pan:+} px");
    let step = (pan / 7.0).round() as i64;
    // Second frame against the picture moved by the measured per-frame shift, inside the frame.
    let moved = RgbImage::from_fn(80, 64, |x, y| *picture.get_pixel((x as i64 + 8 - step) as u32, y));
    let second = RgbImage::from_fn(80, 64, |x, y| *clip[1].get_pixel(x + 8, y));
    let continuity = psnr(&moved, &second);
    assert!(continuity > 25.0, "second frame against the moved picture: {continuity:.1} dB");

    // Extend it through the API: the source's frames, then the new segment without a repeat.
    let (status, ext) = send_json(
        &app,
        post_json(json!({"task": "extend", "source": id, "prompt": "zoom in", "frames": 6, "seed": 9})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ext}");
    assert_eq!(ext["mode"], "extend");
    let extended = finish(&app, &ext).await;
    let ext_id = extended["id"].as_str().unwrap().to_string();
    let m = &extended["metadata"];
    assert_eq!(m["frames"], 8 + 5, "{m}");
    assert_eq!(m["parent"], id.as_str());
    assert_eq!(extended["params"]["source"], id.as_str());
    assert_eq!(m["segments"][0]["start"], 8);
    let joined = frames(&app, &ext_id, 13).await;
    assert_eq!(&joined[..8], &clip[..], "the source comes first, unchanged");
    assert_ne!(joined[8], joined[7], "no repeated frame at the seam");
    let seam = psnr(&joined[7], &joined[8]);
    assert!(seam > 20.0, "no jump at the seam: {seam:.1} dB");
    let (status, html) = send(&app, get(&format!("/v/{ext_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(&format!("/v/{id}")) && html.contains("the video it continues") && html.contains("Re-roll"),
        "timeline and parent link"
    );
    assert!(html.contains("name=\"task\" value=\"extend\""), "every video page offers Extend");

    // A three-segment shot list from the picture, as the Create form sends it.
    let (status, shots) = send_json(
        &app,
        post_multipart(multipart(
            &[
                ("prompt", "camera pans right"),
                ("shots", "zoom in while it snows\n\nstatic camera"),
                ("frames", "4"),
                ("seed", "21"),
            ],
            Some(("photo.png", &upload)),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{shots}");
    assert_eq!(shots["total"], 12, "progress counts every segment");
    assert_eq!(shots["params"]["segments"].as_array().unwrap().len(), 3);
    let list = finish(&app, &shots).await;
    let list_id = list["id"].as_str().unwrap().to_string();
    let spans = list["metadata"]["segments"].as_array().unwrap().clone();
    assert_eq!(spans.len(), 3);
    assert_eq!(list["metadata"]["frames"], 4 + 3 + 3);
    assert_eq!(spans.iter().map(|s| s["seed"].as_u64().unwrap()).collect::<Vec<_>>(), [21, 22, 23]);
    assert!(
        list["params"]["prompt"].as_str().unwrap().contains("zoom in while it snows"),
        "searchable by every segment"
    );
    let original = frames(&app, &list_id, 10).await;

    // Re-roll the second segment the way the video page's form does.
    let mut fields = vec![
        ("frames", "4".to_string()),
        ("seed", "21".to_string()),
        ("source", format!("/media/{list_id}/input.png")),
    ];
    for (k, s) in spans.iter().enumerate() {
        fields.push(("segment", s["prompt"].as_str().unwrap().to_string()));
        fields.push(("segment_seed", if k == 1 { "new".into() } else { s["seed"].to_string() }));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, reroll) = send_json(&app, post_multipart(multipart(&fields, None))).await;
    assert_eq!(status, StatusCode::CREATED, "{reroll}");
    let rerolled = finish(&app, &reroll).await;
    let again = frames(&app, rerolled["id"].as_str().unwrap(), 10).await;
    assert_eq!(&again[..4], &original[..4], "the segment before the re-rolled one is made again exactly");
    assert!((4..7).any(|i| again[i] != original[i]), "the re-rolled segment changed");

    // An odd-sized picture is cropped to even sides (video encoders need them); a tiny one is refused.
    let (status, odd) = send_json(
        &app,
        post_multipart(multipart(&[("prompt", "zoom out"), ("frames", "3")], Some(("odd.png", &photo(97, 65))))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{odd}");
    let odd = finish(&app, &odd).await;
    assert_eq!(odd["metadata"]["resolution"]["display"], json!([96, 64]));
    assert_rejected(
        &app,
        post_multipart(multipart(&[("prompt", "zoom in")], Some(("tiny.png", &photo(8, 8))))),
        StatusCode::BAD_REQUEST,
        "at least 16",
    )
    .await;

    // Bad sources get clear errors.
    let (status, still) = send_json(
        &app,
        post_json(json!({"prompt": "a lighthouse", "model": "sd1", "steps": 1, "width": 64, "height": 64})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{still}");
    let still = finish(&app, &still).await;
    for (body, needle) in [
        (json!({"task": "extend", "source": "ffffffffffffffff"}), "no video"),
        (json!({"task": "extend", "source": "../etc"}), "no video"),
        (json!({"task": "extend"}), "source video"),
        (json!({"task": "extend", "source": still["id"]}), "still image"),
        (json!({"task": "loop", "prompt": "x"}), "unknown task"),
        (json!({"prompt": "x", "segments": vec![json!({"prompt": "camera pans left"}); 9]}), "at most 8 segments"),
        (json!({"task": "extend", "source": id, "model": "sd1"}), "cannot continue a clip"),
    ] {
        assert_rejected(&app, post_json(body), StatusCode::BAD_REQUEST, needle).await;
    }
    // A video whose frames are gone cannot be continued (and nothing else is touched).
    std::fs::remove_file(data.join("media").join(&id).join("frames/0007.png")).unwrap();
    assert_rejected(
        &app,
        post_json(json!({"task": "extend", "source": id})),
        StatusCode::BAD_REQUEST,
        "cannot be continued",
    )
    .await;
    let (status, _) = send(&app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let _ = std::fs::remove_dir_all(&data);
}
