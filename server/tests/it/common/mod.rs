//! Helpers shared by the server's integration tests: an in-process playground on a real
//! SQLite database in a temporary data dir with the real built-in model (Burn's CPU backend),
//! and requests to it.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use model::builtin::pipeline::BuiltinModel;
use model::device::{self, DeviceChoice};
use serde_json::{Value, json};
use server::faults::Faults;
use server::web::security::Access;
use server::web::{ServeOptions, build};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tower::ServiceExt;

pub const BOUNDARY: &str = "vidplayboundary";

pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Body {
    multipart_files(fields, file.as_slice())
}

/// A form with several `image` files (animate many).
pub fn multipart_files(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Body {
    let named: Vec<(&str, &str, &[u8])> = files.iter().map(|(file, bytes)| ("image", *file, *bytes)).collect();
    multipart_named(fields, &named)
}

/// A form with files under their own field names: (field, file name, bytes).
pub fn multipart_named(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Body {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    for (field, filename, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Body::from(body)
}

pub fn post_multipart(body: Body) -> Request<Body> {
    Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .unwrap()
}

pub fn post_json(value: Value) -> Request<Body> {
    Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

pub async fn send_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, body) = send(app, req).await;
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&body) }));
    (status, value)
}

/// A client error with a JSON message containing `needle`.
pub async fn assert_rejected(app: &Router, req: Request<Body>, status: StatusCode, needle: &str) {
    let (got, body) = send_json(app, req).await;
    assert_eq!(got, status, "{body}");
    let msg = body["error"].as_str().unwrap_or_else(|| panic!("JSON error expected, got {body}"));
    assert!(msg.to_lowercase().contains(&needle.to_lowercase()), "{msg:?} should mention {needle:?}");
}

/// An empty models folder: the server runs the built-in models only.
pub fn no_models() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-no-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn site_root() -> PathBuf {
    // The examples are served from the site root; the repository's public/ is its source.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public")
}

pub async fn start(data: &Path) -> (Router, server::queue::Jobs) {
    start_with(data, PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/sd")).await
}

pub async fn start_with(data: &Path, models_dir: PathBuf) -> (Router, server::queue::Jobs) {
    start_custom(data, models_dir, Access::local(), Faults::default()).await
}

pub async fn start_custom(
    data: &Path,
    models_dir: PathBuf,
    access: Access,
    faults: Faults,
) -> (Router, server::queue::Jobs) {
    start_options(ServeOptions {
        database_url: None,
        media: None,
        media_endpoint: None,
        worker: Some(server::queue::WorkerSetup::new("test".into(), vec!["cpu".into()])),
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        site_root: site_root(),
        seed_examples: false,
        models_dir: Some(models_dir),
        access,
        model_memory_mib: 4096,
        faults,
        visual_min_similarity: server::visual::MIN_SIMILARITY,
    })
    .await
}

/// The server with these options, the built-in model on the CPU.
pub async fn start_options(opts: ServeOptions) -> (Router, server::queue::Jobs) {
    let config = BuiltinModel::config_of(None).unwrap();
    build(&opts, config, || {
        let opened = device::open(DeviceChoice::Cpu)?;
        Ok((BuiltinModel::shipped(&opened.device)?, opened))
    })
    .await
    .unwrap()
}

pub async fn wait_for(app: &Router, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1200 {
        let (status, job) = send_json(app, get(&format!("/api/jobs/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never got there");
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// Every file under `dir`, recursively.
pub fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
