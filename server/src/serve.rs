//! `vidplay serve`: a small playground over HTTP.
//!
//! A page to assemble a prompt (chips from the model's vocabulary, or free text), optionally
//! upload an image to animate, and queue a generation; a page per result with live progress,
//! cancel, the video and every parameter. Generation runs on one dedicated thread that owns the
//! model; the async runtime only queues and reads status. Results live under
//! `DATA_DIR/results/ID/` and are written to a temporary folder renamed into place when complete,
//! so they survive restarts and are never half-written.
//!
//! This is the foundation's playground; the Leptos app replaces its pages.

use crate::input;
use crate::output::{Metadata, Timings, write_clip};
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::pipeline::{BuiltinModel, GenerateError, GenerationRequest};
use model::vocab::categories;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use tower_http::services::ServeDir;

/// Most jobs waiting at once; more are refused with "queue full".
pub const QUEUE_LIMIT: usize = 16;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running { step: usize, total: usize },
    Done,
    Failed { reason: String },
    Cancelled,
}

struct Job {
    id: String,
    req: GenerationRequest,
    image: Option<image::RgbImage>,
    image_name: Option<String>,
}

#[derive(Clone)]
pub struct AppState {
    data_dir: PathBuf,
    jobs: Arc<Mutex<HashMap<String, (JobStatus, Arc<AtomicBool>)>>>,
    queue: SyncSender<Job>,
}

impl AppState {
    fn results(&self) -> PathBuf {
        self.data_dir.join("results")
    }
    fn set(&self, id: &str, status: JobStatus) {
        if let Some(entry) = self.jobs.lock().expect("jobs lock").get_mut(id) {
            entry.0 = status;
        }
    }
}

/// Starts the worker thread (which loads the model) and returns the shared state.
pub fn start(data_dir: PathBuf, load: impl FnOnce() -> anyhow::Result<(BuiltinModel, String)> + Send + 'static) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(data_dir.join("results"))?;
    // Leftovers of a crash mid-write are never shown; remove them.
    for entry in std::fs::read_dir(data_dir.join("results"))?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".partial") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let (tx, rx) = sync_channel::<Job>(QUEUE_LIMIT);
    let state = AppState {
        data_dir,
        jobs: Arc::default(),
        queue: tx,
    };
    let worker = state.clone();
    std::thread::Builder::new().name("generation".into()).spawn(move || {
        let (model, device) = match load() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cannot load the model: {e:#}");
                for job in rx {
                    worker.set(&job.id, JobStatus::Failed { reason: format!("model unavailable: {e:#}") });
                }
                return;
            }
        };
        tracing::info!(%device, "model loaded");
        for job in rx {
            run_job(&worker, &model, &device, job);
        }
    })?;
    Ok(state)
}

fn run_job(state: &AppState, model: &BuiltinModel, device: &str, job: Job) {
    let cancel = match state.jobs.lock().expect("jobs lock").get(&job.id) {
        Some((_, c)) => c.clone(),
        None => return,
    };
    if cancel.load(Ordering::Relaxed) {
        state.set(&job.id, JobStatus::Cancelled);
        return;
    }
    let span = tracing::info_span!("job", id = %job.id);
    let _guard = span.enter();
    let started = std::time::Instant::now();
    let total = job.req.steps;
    state.set(&job.id, JobStatus::Running { step: 0, total });
    let result = model.generate(
        &job.req,
        job.image.as_ref(),
        &mut |p| state.set(&job.id, JobStatus::Running { step: p.step, total: p.total }),
        &|| cancel.load(Ordering::Relaxed),
    );
    let status = match result {
        Ok(clip) => {
            let timings = Timings {
                load_s: 0.0,
                sampling_s: clip.sampling_seconds,
                encode_s: 0.0,
                total_s: started.elapsed().as_secs_f64(),
            };
            let mut meta = Metadata::new(model.id(), &job.req, &clip, job.image_name.clone(), device, timings);
            let partial = state.results().join(format!("{}.partial", job.id));
            let written = write_clip(&partial, &clip, &mut meta, false)
                .and_then(|_| Ok(std::fs::rename(&partial, state.results().join(&job.id))?));
            match written {
                Ok(()) => JobStatus::Done,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&partial);
                    JobStatus::Failed { reason: format!("writing the result: {e:#}") }
                }
            }
        }
        Err(GenerateError::Cancelled) => JobStatus::Cancelled,
        Err(e) => JobStatus::Failed { reason: e.to_string() },
    };
    tracing::info!(status = ?status, seconds = started.elapsed().as_secs_f64(), "job finished");
    state.set(&job.id, status);
}

pub fn router(state: AppState) -> Router {
    let media = ServeDir::new(state.results());
    Router::new()
        .route("/", get(index))
        .route("/generate", post(generate))
        .route("/v/{id}", get(result_page))
        .route("/api/jobs/{id}", get(job_status))
        .route("/jobs/{id}/cancel", post(cancel))
        .nest_service("/media", media)
        .layer(DefaultBodyLimit::max(input::MAX_BYTES as usize + 64 * 1024))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content='width=device-width,initial-scale=1'><title>{} · vidplay</title>\
         <style>{STYLE}</style></head><body><header><a href='/'>vidplay</a></header><main>{body}</main></body></html>",
        esc(title)
    ))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}\
header{padding:.8rem 1rem;background:#222}a{color:#8ab4ff}header a{color:#fff;font-weight:700;text-decoration:none}\
main{max-width:960px;margin:auto;padding:1rem}label{display:block;margin:.5rem 0 .2rem}\
input,textarea,select,button{font:inherit}textarea{width:100%;min-height:3rem}\
.chips{display:flex;flex-wrap:wrap;gap:.3rem;margin:.2rem 0}.chips button{background:#333;color:#eee;border:1px solid #555;border-radius:1rem;padding:.2rem .7rem;cursor:pointer}\
.row{display:flex;flex-wrap:wrap;gap:1rem}.row label{flex:1 1 8rem}\
button.primary{background:#4a7cff;color:#fff;border:0;padding:.6rem 1.4rem;border-radius:.4rem;margin-top:1rem}\
:focus-visible{outline:3px solid #ffb300}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.8rem}\
.card{background:#1c1c1c;padding:.4rem;border-radius:.4rem}.card video{width:100%}.card p{font-size:.85rem;margin:.3rem 0}\
.error{background:#611;padding:.6rem;border-radius:.3rem}table{border-collapse:collapse}td{padding:.2rem .6rem;border-bottom:1px solid #333}";

async fn index(State(state): State<AppState>) -> Html<String> {
    let chips: String = categories()
        .iter()
        .map(|c| {
            let buttons: String = c
                .phrases
                .iter()
                .map(|p| format!("<button type=button onclick=\"add('{0}')\">{0}</button>", esc(p)))
                .collect();
            format!("<div><b>{}</b><div class=chips role=group aria-label='{0}'>{buttons}</div></div>", esc(&c.name))
        })
        .collect();
    let results = list_results(&state.results());
    let gallery: String = results
        .iter()
        .take(24)
        .map(|(id, m)| {
            format!(
                "<div class=card><a href='/v/{id}'><video src='/media/{id}/video.mp4' autoplay muted loop playsinline aria-label='{p}'></video></a><p>{p}</p></div>",
                p = esc(if m.prompt.is_empty() { &m.mode } else { &m.prompt })
            )
        })
        .collect();
    let gallery = if gallery.is_empty() {
        "<p>Nothing made yet: pick a few chips above and press Generate.</p>".to_string()
    } else {
        format!("<div class=grid>{gallery}</div>")
    };
    page(
        "Create",
        &format!(
            "<h1>Create a video</h1>\
             <form method=post action='/generate' enctype='multipart/form-data'>\
             {chips}\
             <label for=prompt>Prompt</label><textarea id=prompt name=prompt placeholder='a red ball bouncing on a grass field, camera pans left'></textarea>\
             <label for=image>Image to animate (optional)</label><input id=image name=image type=file accept='image/*'>\
             <div class=row>\
             <label>Frames <input name=frames type=number min=2 max=16 value=16></label>\
             <label>FPS <input name=fps type=number min=1 max=60 value=8></label>\
             <label>Motion <input name=motion type=number min=0 max=2 step=0.1 value=1></label>\
             <label>Steps <input name=steps type=number min=1 max=200 value=24></label>\
             <label>Guidance <input name=guidance type=number min=0 max=20 step=0.5 value=3></label>\
             <label>Seed (empty: random) <input name=seed type=number min=0></label></div>\
             <button class=primary>Generate</button></form>\
             <script>function add(p){{const t=document.getElementById('prompt');t.value=(t.value.trim()?t.value.trim()+', ':'')+p;t.focus();}}</script>\
             <h2>Recent</h2>{gallery}"
        ),
    )
}

fn list_results(dir: &Path) -> Vec<(String, Metadata)> {
    let mut out: Vec<(String, Metadata)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().to_string();
            let meta = std::fs::read(e.path().join("metadata.json")).ok()?;
            Some((id, serde_json::from_slice(&meta).ok()?))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, page("Error", &format!("<p class=error role=alert>{}</p><p><a href='/'>Back</a></p>", esc(message)))).into_response()
}

fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:013x}{:04x}", now.as_millis(), now.subsec_nanos() & 0xffff)
}

async fn generate(State(state): State<AppState>, mut form: Multipart) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut image: Option<(String, Vec<u8>)> = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let file_name = field.file_name().map(str::to_string);
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => return bad_request(&format!("the upload failed: {e}")),
                };
                if name == "image" {
                    if !bytes.is_empty() {
                        image = Some((file_name.unwrap_or_else(|| "upload".into()), bytes.to_vec()));
                    }
                } else {
                    fields.insert(name, String::from_utf8_lossy(&bytes).to_string());
                }
            }
            Ok(None) => break,
            Err(e) => return bad_request(&format!("the form could not be read: {e}")),
        }
    }
    let num = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let defaults = GenerationRequest::default();
    macro_rules! parse_or {
        ($k:literal, $default:expr) => {
            match num($k).map(|v| v.parse()) {
                None => $default,
                Some(Ok(v)) => v,
                Some(Err(_)) => return bad_request(concat!("'", $k, "' must be a number")),
            }
        };
    }
    let req = GenerationRequest {
        prompt: fields.get("prompt").cloned().unwrap_or_default(),
        frames: match num("frames").map(str::parse::<usize>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return bad_request("'frames' must be a number"),
        },
        fps: parse_or!("fps", defaults.fps),
        steps: parse_or!("steps", defaults.steps),
        guidance: parse_or!("guidance", defaults.guidance),
        motion: parse_or!("motion", defaults.motion),
        seed: parse_or!("seed", new_seed()),
        ..defaults
    };
    let decoded = match &image {
        Some((name, bytes)) => match input::decode(bytes, name) {
            Ok(img) => Some(img),
            Err(e) => return bad_request(&e.to_string()),
        },
        None => None,
    };
    if req.prompt.trim().is_empty() && decoded.is_none() {
        return bad_request("The prompt is empty: pick some chips or type a description, or upload an image to animate.");
    }
    if req.prompt.chars().count() > model::pipeline::MAX_PROMPT_CHARS {
        return bad_request("The prompt is too long.");
    }
    let id = new_id();
    state
        .jobs
        .lock()
        .expect("jobs lock")
        .insert(id.clone(), (JobStatus::Queued, Arc::new(AtomicBool::new(false))));
    let job = Job {
        id: id.clone(),
        req,
        image: decoded,
        image_name: image.map(|i| i.0),
    };
    match state.queue.try_send(job) {
        Ok(()) => Redirect::to(&format!("/v/{id}")).into_response(),
        Err(TrySendError::Full(_)) => {
            state.jobs.lock().expect("jobs lock").remove(&id);
            (StatusCode::SERVICE_UNAVAILABLE, page("Busy", "<p class=error role=alert>The queue is full; try again when a job finishes.</p>")).into_response()
        }
        Err(TrySendError::Disconnected(_)) => {
            state.set(&id, JobStatus::Failed { reason: "the generation worker stopped".into() });
            Redirect::to(&format!("/v/{id}")).into_response()
        }
    }
}

fn new_seed() -> u64 {
    model::rng::mix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)) % 1_000_000_000
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

async fn job_status(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if !valid_id(&id) {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid id"}))).into_response();
    }
    if let Some((status, _)) = state.jobs.lock().expect("jobs lock").get(&id) {
        return Json(status.clone()).into_response();
    }
    if state.results().join(&id).join("metadata.json").is_file() {
        return Json(JobStatus::Done).into_response();
    }
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such job"}))).into_response()
}

async fn cancel(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if let Some((_, flag)) = state.jobs.lock().expect("jobs lock").get(&id) {
        flag.store(true, Ordering::Relaxed);
    }
    Redirect::to(&format!("/v/{id}")).into_response()
}

async fn result_page(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if !valid_id(&id) {
        return (StatusCode::NOT_FOUND, page("Not found", "<p class=error>No such video.</p>")).into_response();
    }
    let status = state.jobs.lock().expect("jobs lock").get(&id).map(|s| s.0.clone());
    let dir = state.results().join(&id);
    if let Ok(bytes) = std::fs::read(dir.join("metadata.json"))
        && let Ok(meta) = serde_json::from_slice::<Metadata>(&bytes)
    {
        let rows: String = [
            ("prompt", esc(&meta.prompt)),
            ("understood", esc(&meta.understood.understood())),
            ("ignored words", esc(&meta.understood.ignored.join(", "))),
            ("mode", meta.mode.clone()),
            ("seed", meta.seed.to_string()),
            ("frames / fps", format!("{} @ {} fps", meta.frames, meta.fps)),
            ("steps / guidance / motion", format!("{} / {} / {}", meta.parameters.steps, meta.parameters.guidance, meta.parameters.motion)),
            ("resolution", format!("{}x{} model, shown at {}x{}", meta.resolution.native[0], meta.resolution.native[1], meta.resolution.display[0], meta.resolution.display[1])),
            ("model / device", format!("{} on {}", esc(&meta.model), esc(&meta.device))),
            ("time", format!("{:.1} s", meta.timings.total_s)),
        ]
        .iter()
        .map(|(k, v)| format!("<tr><td>{k}</td><td>{v}</td></tr>"))
        .collect();
        let input = if meta.mode == "image-to-video" {
            format!("<p>Input (as the model saw it): <img src='/media/{id}/input.png' width=128 height=128 alt='input image' style='image-rendering:pixelated'></p>")
        } else {
            String::new()
        };
        return page(
            &meta.prompt,
            &format!(
                "<video src='/media/{id}/video.mp4' controls autoplay loop muted playsinline width=512 style='max-width:100%'></video>\
                 <p><a href='/media/{id}/video.mp4' download>MP4</a> · <a href='/media/{id}/video.gif' download>GIF</a> · <a href='/media/{id}/metadata.json'>metadata.json</a></p>{input}<table>{rows}</table>"
            ),
        )
        .into_response();
    }
    let body = match status {
        Some(JobStatus::Queued) => format!("<p role=status>Queued…</p>{}", cancel_form(&id)),
        Some(JobStatus::Running { step, total }) => format!(
            "<p role=status>Generating: step {step} of {total}</p><progress max={total} value={step}></progress>{}",
            cancel_form(&id)
        ),
        Some(JobStatus::Failed { reason }) => format!("<p class=error role=alert>Failed: {}</p>", esc(&reason)),
        Some(JobStatus::Cancelled) => "<p>Cancelled.</p>".into(),
        Some(JobStatus::Done) | None => {
            return (StatusCode::NOT_FOUND, page("Not found", "<p class=error>No such video.</p>")).into_response();
        }
    };
    let refresh = "<script>setTimeout(()=>location.reload(),700)</script>";
    page("Generating", &format!("{body}{refresh}<p><a href='/'>Back</a></p>")).into_response()
}

fn cancel_form(id: &str) -> String {
    format!("<form method=post action='/jobs/{id}/cancel'><button>Cancel</button></form>")
}
