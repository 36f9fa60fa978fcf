//! The playground server, in-process with the real built-in model (Burn's CPU backend, few
//! steps) and a temporary data dir: a generation from the form end to end, media with Range
//! support, and bad input answered with 4xx, not 500s.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use model::device::{self, DeviceChoice};
use model::pipeline::BuiltinModel;
use tower::ServiceExt;

const BOUNDARY: &str = "vidplayboundary";

fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Body {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Body::from(body)
}

fn post_form(body: Body) -> Request<Body> {
    Request::post("/generate")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .unwrap()
}

async fn text(resp: axum::response::Response) -> String {
    String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_end_to_end() {
    let data = std::env::temp_dir().join(format!("vidplay-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let state = server::serve::start(data.clone(), || {
        let opened = device::open(DeviceChoice::Cpu)?;
        Ok((BuiltinModel::shipped(&opened.device)?, opened.description))
    })
    .unwrap();
    let app = server::serve::router(state);

    // The create page lists the vocabulary as chips.
    let resp = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = text(resp).await;
    assert!(html.contains("bouncing") && html.contains("camera pans left"));
    assert!(html.contains("Nothing made yet"));

    // Generate from the form.
    let form = multipart(&[("prompt", "a green star spinning in the night sky"), ("steps", "3"), ("seed", "5")], None);
    let resp = app.clone().oneshot(post_form(form)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()[header::LOCATION].to_str().unwrap().to_string();
    let id = location.trim_start_matches("/v/").to_string();

    let mut state_name = String::new();
    for _ in 0..600 {
        let resp = app
            .clone()
            .oneshot(Request::get(format!("/api/jobs/{id}")).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
        state_name = json["state"].as_str().unwrap().to_string();
        if state_name != "queued" && state_name != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(state_name, "done");
    let page = text(app.clone().oneshot(Request::get(&location).body(Body::empty()).unwrap()).await.unwrap()).await;
    assert!(page.contains(&format!("/media/{id}/video.mp4")), "{page}");
    assert!(page.contains("a green star spinning in the night sky"));

    // Media: correct type, byte ranges.
    let resp = app
        .clone()
        .oneshot(Request::get(format!("/media/{id}/video.mp4")).header(header::RANGE, "bytes=0-99").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes().len(), 100);

    // Bad input: clear 4xx answers, and the stored result is untouched.
    let resp = app.clone().oneshot(post_form(multipart(&[("prompt", "  ")], None))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(text(resp).await.contains("prompt is empty"));
    let resp = app
        .clone()
        .oneshot(post_form(multipart(&[("prompt", "a ball")], Some(("cat.png", b"not really a png")))))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(text(resp).await.contains("not an image"));
    let resp = app.clone().oneshot(post_form(multipart(&[("prompt", "a ball"), ("steps", "many")], None))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    for path in ["/v/..%2F..%2Fetc", "/media/../Cargo.toml", "/media/%2e%2e/%2e%2e/Cargo.toml", "/api/jobs/nope"] {
        let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    assert!(data.join("results").join(&id).join("video.mp4").is_file());
    let index = text(app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap()).await;
    assert!(index.contains(&format!("/v/{id}")));
    std::fs::remove_dir_all(&data).unwrap();
}
