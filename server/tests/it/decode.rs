//! No generation lost at decode: a job whose decode fails (an out-of-memory error, a panic, the
//! process ending) keeps its sampled latents and is "decode-failed"; Retry decode runs the
//! decoder alone on them, in smaller pieces, and stores the result. Faults are injected at the
//! decode of the built-in model and of a Stable Diffusion fixture (diffusers layout).

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use server::faults::{DecodeFault, Faults};
use server::web::security::Access;
use std::path::{Path, PathBuf};

fn decode_fault(fault: DecodeFault) -> Faults {
    Faults { decode: Some((fault, "DECODEFAULT".into())), ..Faults::default() }
}

fn latents_file(data: &Path, id: &str) -> PathBuf {
    data.join("latents").join(format!("{id}.safetensors"))
}

fn retry(id: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(format!("/api/jobs/{id}/retry-decode")).body(axum::body::Body::empty()).unwrap()
}

async fn submit(app: &axum::Router, body: Value) -> String {
    let (status, job) = send_json(app, post_json(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job["id"].as_str().unwrap().to_string()
}

fn finished(j: &Value) -> bool {
    !["queued", "running"].contains(&j["state"].as_str().unwrap_or(""))
}

/// The built-in model: the decode runs out of memory; the job is decode-failed with its
/// latents kept and no result; the page offers Retry decode; the retry (once per ask) makes the
/// very clip an undisturbed run of the same settings makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_decode_keeps_the_latents_and_a_retry_decodes_them() {
    let data = data_dir("decode-fails");
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), decode_fault(DecodeFault::Fails)).await;
    let app = &app;
    // The marker is a word the built-in model ignores: both prompts mean the same clip.
    let failing = submit(app, json!({"prompt": "a red ball moving right DECODEFAULT", "steps": 2, "seed": 5})).await;
    let plain = submit(app, json!({"prompt": "a red ball moving right", "steps": 2, "seed": 5})).await;

    let job = wait_for(app, &failing, finished).await;
    assert_eq!((&job["state"], &job["decode_retries"]), (&json!("decode-failed"), &json!(0)), "{job}");
    let message = job["message"].as_str().unwrap();
    assert!(message.contains("decoding failed") && message.contains("out of GPU memory"), "{message}");
    assert!(latents_file(&data, &failing).is_file(), "the sampled latents are kept");
    assert_eq!(send(app, get(&format!("/api/videos/{failing}"))).await.0, StatusCode::NOT_FOUND);
    let (_, html) = send(app, get("/queue")).await;
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("Retry decode") && html.contains("decode failed"), "the page offers the retry");

    wait_for(app, &plain, |j| j["state"] == "done").await;
    let (status, queued) = send_json(app, retry(&failing)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!((&queued["state"], &queued["decode_retries"]), (&json!("queued"), &json!(1)), "{queued}");
    // Asked twice: queued once.
    let (status, refused) = send_json(app, retry(&failing)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("decode failed"), "{refused}");

    let job = wait_for(app, &failing, finished).await;
    assert_eq!(job["state"], "done", "{job}");
    assert!(!latents_file(&data, &failing).exists(), "decoded: the latents are removed");
    let (status, video) = send_json(app, get(&format!("/api/videos/{failing}"))).await;
    assert_eq!(status, StatusCode::OK, "{video}");
    assert_eq!(video["metadata"]["decode_retry"], 1, "{video}");
    for file in ["poster.png", "frames.zip"] {
        let (_, retried) = send(app, get(&format!("/media/{failing}/{file}"))).await;
        let (_, undisturbed) = send(app, get(&format!("/media/{plain}/{file}"))).await;
        assert!(!retried.is_empty() && retried == undisturbed, "{file}: the retry decodes the very clip");
    }
    // Done, unknown, malformed: nothing to retry.
    assert_eq!(send(app, retry(&failing)).await.0, StatusCode::CONFLICT);
    assert_eq!(send(app, retry("00000000000000000000000000000000")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(app, retry("nope")).await.0, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&data);
}

/// A decoder that panics leaves the job decode-failed too; the worker goes on; a job that
/// keeps no latents (image to video animates pixels) fails as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoder_that_panics_leaves_the_job_decode_failed() {
    let data = data_dir("decode-panics");
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), decode_fault(DecodeFault::Panics)).await;
    let app = &app;
    let id = submit(app, json!({"prompt": "a blue star DECODEFAULT", "steps": 1})).await;
    let job = wait_for(app, &id, finished).await;
    assert_eq!(job["state"], "decode-failed", "{job}");
    assert!(job["message"].as_str().unwrap().contains("the decoder crashed"), "{job}");
    assert!(latents_file(&data, &id).is_file());
    let after = submit(app, json!({"prompt": "a green ball", "steps": 1})).await;
    wait_for(app, &after, |j| j["state"] == "done").await;
    assert_eq!(send(app, retry(&id)).await.0, StatusCode::ACCEPTED);
    wait_for(app, &id, |j| j["state"] == "done").await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A diffusers model (the Stable Diffusion fixture): its VAE decode fails; the retry decodes
/// the kept latents in smaller tiles and stores the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diffusers_decode_is_retried_in_tiles() {
    let data = data_dir("decode-sd");
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/sd");
    let (app, _jobs) = start_custom(&data, models, Access::local(), decode_fault(DecodeFault::Fails)).await;
    let app = &app;
    let body = json!({"model": "sd1", "prompt": "a lighthouse DECODEFAULT", "width": 64, "height": 64, "steps": 2});
    let id = submit(app, body).await;
    let job = wait_for(app, &id, finished).await;
    assert_eq!(job["state"], "decode-failed", "{job}");
    let kept = std::fs::read(latents_file(&data, &id)).unwrap();
    let latents = model::latents::Latents::from_bytes(&kept).unwrap();
    assert_eq!(latents.shape[..2], [1, 4], "the UNet's latents, before the VAE");
    assert_eq!(send(app, retry(&id)).await.0, StatusCode::ACCEPTED);
    let job = wait_for(app, &id, finished).await;
    assert_eq!(job["state"], "done", "{job}");
    let (_, video) = send_json(app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(video["metadata"]["decode_retry"], 1, "{video}");
    let (status, png) = send(app, get(&format!("/media/{id}/image.png"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&png).unwrap().to_rgb8().dimensions(), (64, 64));
    let _ = std::fs::remove_dir_all(&data);
}
