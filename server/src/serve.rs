//! `vidplay serve`: the playground. Axum serves the Leptos pages (server-rendered, then
//! hydrated by the wasm bundle in the site directory), their server functions, the JSON API,
//! the job event stream and the media files.

use crate::api;
use crate::faults::Faults;
use crate::jobs::Jobs;
use crate::security::{self, Access};
use crate::storage::{SqliteStore, Store};
use crate::studio::ServerStudio;
use app::backend::SharedStudio;
use app::types::JobParams;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use model::device::OpenedDevice;
use model::builtin::pipeline::BuiltinModel;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeDir;

pub struct ServeOptions {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Where `cargo xtask site` wrote the browser bundle, styles and public files.
    pub site_root: PathBuf,
    /// Queue example jobs when the gallery is empty and nothing was ever queued.
    pub seed_examples: bool,
    /// Installed diffusers models, one folder each (the Hugging Face cache is looked at too).
    pub models_dir: Option<PathBuf>,
    /// Host names answered and the token required (see [`crate::security`]).
    pub access: Access,
    /// Test-only fault injection; none in normal use.
    pub faults: Faults,
}

/// Prompts made on first start, so a new gallery is never an empty dead end.
pub const EXAMPLE_PROMPTS: [&str; 3] = [
    "a red ball bouncing on a grass field",
    "a yellow star moving right in the night sky while it snows",
    "a blue square spinning over the ocean, camera pans left",
];

/// Opens the store, starts the job queue (the model loads on its own thread) and builds the
/// router.
pub async fn build(
    opts: &ServeOptions,
    config: model::builtin::net::NetConfig,
    load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)> + Send + 'static,
) -> anyhow::Result<(Router, Jobs)> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", opts.data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&opts.data_dir.join("vidplay.db")).await?);
    let examples_dir = opts.site_root.join("examples");
    let jobs = Jobs::start(
        store,
        opts.data_dir.clone(),
        examples_dir.clone(),
        config,
        model::builtin::pipeline::BUILTIN_MODEL_ID,
        image_models(opts.models_dir.as_deref()),
        opts.faults.clone(),
        load,
    )
    .await?;
    if opts.seed_examples {
        seed_examples(&jobs, &examples_dir).await;
    }
    let studio: SharedStudio = Arc::new(ServerStudio { jobs: jobs.clone(), examples_dir });
    Ok((router(jobs.clone(), studio, leptos_options(opts), Arc::new(opts.access.clone())), jobs))
}

/// Installed text-to-image and image-to-video models, by name.
pub fn image_models(models_dir: Option<&Path>) -> Vec<crate::jobs::ImageModel> {
    use model::diffusers::common::folder::PipelineKind;
    let mut out: Vec<crate::jobs::ImageModel> = Vec::new();
    for m in model::diffusers::common::folder::installed(models_dir) {
        let video = match m.kind {
            PipelineKind::TextToImage => false,
            PipelineKind::ImageToVideo => true,
            PipelineKind::Other(_) => continue,
        };
        if !out.iter().any(|o| o.name == m.name) {
            tracing::info!(name = %m.name, path = %m.path.display(), video, "installed model");
            out.push(crate::jobs::ImageModel { name: m.name, path: m.path, video });
        }
    }
    out
}

pub fn leptos_options(opts: &ServeOptions) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(crate::assets::bundle_name(&opts.site_root))
        .site_root(opts.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(opts.addr)
        .build()
}

async fn seed_examples(jobs: &Jobs, examples_dir: &Path) {
    let fresh = matches!(jobs.store().jobs(1).await, Ok(list) if list.is_empty())
        && matches!(jobs.store().count_videos().await, Ok(0));
    if !fresh {
        return;
    }
    tracing::info!("empty gallery: queuing example videos");
    for prompt in EXAMPLE_PROMPTS {
        let params = JobParams { prompt: prompt.into(), seed: Some(7), ..JobParams::default() };
        if let Err(e) = jobs.submit(params, None).await {
            tracing::warn!("queuing an example: {e}");
        }
    }
    if let Some(name) = crate::studio::list_examples(examples_dir).first() {
        match std::fs::read(examples_dir.join(name)) {
            Ok(bytes) => {
                let params = JobParams { prompt: "camera pans right while it snows".into(), seed: Some(7), ..JobParams::default() };
                let upload = crate::jobs::Upload { bytes, name: name.clone() };
                if let Err(e) = jobs.submit(params, Some(upload)).await {
                    tracing::warn!("queuing an example: {e}");
                }
            }
            Err(e) => tracing::warn!("reading example image {name}: {e}"),
        }
    }
}

/// Serves only plain `ID/FILE` or `ID/frames/FILE` names of videos in the gallery (no `..`, no
/// `.partial` folders being written, nothing of a deleted video even while its files are being
/// removed), as downloads when asked with `?download`.
async fn guard_media(State(jobs): State<Jobs>, req: Request, next: Next) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    let plain = |file: &str| {
        !file.is_empty()
            && !file.starts_with('.')
            && !file.contains(".partial")
            && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (id, file) = match parts.as_slice() {
        [id, file] if app::types::is_valid_id(id) && plain(file) => (id.to_string(), file.to_string()),
        [id, "frames", file] if app::types::is_valid_id(id) && plain(file) => (id.to_string(), format!("frame-{file}")),
        _ => return security::refuse(StatusCode::NOT_FOUND, "no such file"),
    };
    match jobs.store().video_exists(id.clone()).await {
        Ok(true) => {}
        Ok(false) => return security::refuse(StatusCode::NOT_FOUND, "no such file"),
        Err(e) => return crate::api::Failure::from(e).into_response(),
    }
    let download = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "download" || p.starts_with("download=")));
    let mut res = next.run(req).await;
    if res.status().is_success() || res.status() == StatusCode::PARTIAL_CONTENT {
        let h = res.headers_mut();
        // Results never change once written.
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=31536000, immutable"));
        let disposition = format!("{}; filename=\"vidplay-{id}-{file}\"", if download { "attachment" } else { "inline" });
        if let Ok(value) = header::HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    res
}

/// The body limit answers 413 with an empty body; say what happened, as JSON.
async fn json_too_large(res: Response) -> Response {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        let error = format!("the request is larger than {} MB", crate::input::MAX_BYTES / (1024 * 1024));
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(app::types::ApiError { error })).into_response();
    }
    res
}

pub fn router(jobs: Jobs, studio: SharedStudio, options: LeptosOptions, access: Arc<Access>) -> Router {
    let routes = generate_route_list(app::App);
    let assets = crate::assets::routes(Path::new(&*options.site_root));
    let stylesheet = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    let media = Router::new()
        .fallback_service(ServeDir::new(jobs.media_dir()))
        .layer(middleware::from_fn_with_state(jobs.clone(), guard_media));
    let api = api::routes()
        .layer(DefaultBodyLimit::max(crate::input::MAX_BYTES as usize + 256 * 1024))
        .with_state(jobs);
    let context = {
        let studio = studio.clone();
        move || provide_context(studio.clone())
    };
    let pages = Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(context, app::shell))
        .with_state(options);
    Router::new()
        .merge(api)
        .nest("/media", media)
        .nest("/pkg", assets)
        .merge(security::signin_routes(stylesheet).with_state(access.clone()))
        .merge(pages)
        // Server functions read their bodies themselves; bound them here.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(crate::input::MAX_BYTES as usize + 1024 * 1024))
        .layer(middleware::map_response(json_too_large))
        .layer(middleware::from_fn_with_state(access, security::guard))
        .layer(middleware::map_response(security::security_headers))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
}
