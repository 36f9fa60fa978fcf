//! `vidplay serve`: the playground. Axum serves the Leptos pages (server-rendered, then
//! hydrated by the wasm bundle in the site directory), their server functions, the JSON API,
//! the job event stream and the media files.

use crate::api;
use crate::jobs::Jobs;
use crate::storage::{SqliteStore, Store};
use crate::studio::ServerStudio;
use app::backend::SharedStudio;
use app::types::JobParams;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use model::device::OpenedDevice;
use model::pipeline::BuiltinModel;
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
    config: model::net::NetConfig,
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
        model::pipeline::BUILTIN_MODEL_ID,
        image_models(opts.models_dir.as_deref()),
        load,
    )
    .await?;
    if opts.seed_examples {
        seed_examples(&jobs, &examples_dir).await;
    }
    let studio: SharedStudio = Arc::new(ServerStudio { jobs: jobs.clone(), examples_dir });
    Ok((router(jobs.clone(), studio, leptos_options(opts)), jobs))
}

/// Installed text-to-image and image-to-video models, by name.
pub fn image_models(models_dir: Option<&Path>) -> Vec<crate::jobs::ImageModel> {
    use model::diffusers::folder::PipelineKind;
    let mut out: Vec<crate::jobs::ImageModel> = Vec::new();
    for m in model::diffusers::folder::installed(models_dir) {
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
        .output_name("vidplay")
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

/// Refuses media paths that are not plain `ID/FILE` or `ID/frames/FILE` names of finished
/// results (no `..`, no `.partial` folders being written).
async fn guard_media(req: Request, next: Next) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    let plain = |file: &str| {
        !file.is_empty()
            && !file.starts_with('.')
            && !file.contains(".partial")
            && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let parts: Vec<&str> = path.split('/').collect();
    let ok = match parts.as_slice() {
        [id, file] => app::types::is_valid_id(id) && plain(file),
        [id, "frames", file] => app::types::is_valid_id(id) && plain(file),
        _ => false,
    };
    if !ok {
        return (StatusCode::NOT_FOUND, axum::Json(app::types::ApiError { error: "no such file".into() })).into_response();
    }
    let mut res = next.run(req).await;
    // Results never change once written.
    if res.status().is_success() {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=31536000, immutable"));
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

pub fn router(jobs: Jobs, studio: SharedStudio, options: LeptosOptions) -> Router {
    let routes = generate_route_list(app::App);
    let media = Router::new()
        .fallback_service(ServeDir::new(jobs.media_dir()))
        .layer(middleware::from_fn(guard_media));
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
        .merge(pages)
        // Server functions read their bodies themselves; bound them here.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(crate::input::MAX_BYTES as usize + 1024 * 1024))
        .layer(middleware::map_response(json_too_large))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
}

/// Whether the browser bundle has been built into `site_root`.
pub fn site_is_built(site_root: &Path) -> bool {
    site_root.join("pkg").join("vidplay.js").is_file() && site_root.join("pkg").join("vidplay_bg.wasm").is_file()
}
