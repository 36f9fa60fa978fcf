//! The playground on the web: Axum serves the Leptos pages (server-rendered, then hydrated by
//! the wasm bundle in the site directory), their server functions, the JSON API, the job event
//! stream and the media files, behind the security layers.

pub mod api;
pub mod assets;
pub mod media;
pub mod rules;
pub mod security;
pub mod state;
pub mod studio;
pub mod voters;
pub mod votes;

use crate::engines::Registry;
use crate::engines::builtin::BuiltinEngine;
use crate::faults::Faults;
use crate::media::object::ObjectMedia;
use crate::queue::{Jobs, QueueConfig};
use app::backend::SharedStudio;
use app::types::JobParams;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use model::builtin::pipeline::BuiltinModel;
use model::device::OpenedDevice;
use security::Access;
use state::WebState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use studio::ServerStudio;

pub struct ServeOptions {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// A PostgreSQL database shared with workers; `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Where media live; `None`: the data directory.
    pub media: Option<crate::media::s3::MediaLocation>,
    /// The S3 endpoint for media in a bucket (else `AWS_ENDPOINT_URL`, else AWS).
    pub media_endpoint: Option<String>,
    /// This server's own generation worker; `None`: a web node alone (`--no-worker`), with
    /// workers on other machines.
    pub worker: Option<crate::queue::WorkerSetup>,
    /// Where `cargo xtask site` wrote the browser bundle, styles and public files.
    pub site_root: PathBuf,
    /// Queue example jobs when the gallery is empty and nothing was ever queued.
    pub seed_examples: bool,
    /// Installed diffusers models, one folder each (the Hugging Face cache is looked at too).
    pub models_dir: Option<PathBuf>,
    /// Host names answered and the token required (see [`security`]).
    pub access: Access,
    /// Loaded models are kept within this much memory (MiB); the least recently used go first.
    pub model_memory_mib: u64,
    /// Test-only fault injection; none in normal use.
    pub faults: Faults,
    /// Visual search (with an installed CLIP model) finds clips at least this similar to the
    /// search text (cosine; see [`crate::visual::MIN_SIMILARITY`]).
    pub visual_min_similarity: f32,
}

impl ServeOptions {
    /// The memory budget for loaded models when none is given: half the machine's memory.
    pub fn default_model_memory_mib() -> u64 {
        crate::memory::total_mib().map_or(8 * 1024, |m| m / 2)
    }
}

/// Prompts made on first start, so a new gallery is never an empty dead end.
pub const EXAMPLE_PROMPTS: [&str; 3] = [
    "a red ball bouncing on a grass field",
    "a yellow star moving right in the night sky while it snows",
    "a blue square spinning over the ocean, camera pans left",
];

/// Opens the stores, finds the installed models, starts the job queue (the built-in model
/// loads on the generation thread, with the device) and builds the router.
pub async fn build(
    opts: &ServeOptions,
    config: model::builtin::net::NetConfig,
    load: impl FnOnce() -> anyhow::Result<(BuiltinModel, OpenedDevice)> + Send + 'static,
) -> anyhow::Result<(Router, Jobs)> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", opts.data_dir.display()))?;
    let store = crate::storage::open(opts.database_url.as_deref(), &opts.data_dir).await?;
    let media = Arc::new(match &opts.media {
        Some(location) => crate::media::s3::open_location(location, opts.media_endpoint.as_deref())?,
        None => ObjectMedia::local(&opts.data_dir)?,
    });
    let registry = Arc::new(Registry::discover(BuiltinEngine::new(config), opts.models_dir.as_deref()));
    let visual =
        crate::visual::Visual::start(opts.models_dir.as_deref(), store.as_ref(), opts.visual_min_similarity).await;
    let examples_dir = opts.site_root.join("examples");
    let queue = QueueConfig {
        store: store.clone(),
        media: media.clone(),
        registry: registry.clone(),
        model_memory_mib: opts.model_memory_mib,
        faults: opts.faults.clone(),
        visual: visual.clone(),
        worker: opts.worker.clone(),
    };
    let jobs = Jobs::start(queue, load).await?;
    let streams = crate::limits::PerClient::new(crate::limits::STREAMS_PER_CLIENT);
    let voters = Arc::new(voters::Voters::open(store.as_ref()).await?);
    let web = WebState { jobs: jobs.clone(), store, media, registry, visual, examples_dir, streams, voters };
    if opts.seed_examples {
        seed_examples(&web).await;
    }
    let studio: SharedStudio = Arc::new(ServerStudio { web: web.clone() });
    Ok((router(web, studio, leptos_options(opts), Arc::new(opts.access.clone())), jobs))
}

pub fn leptos_options(opts: &ServeOptions) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(assets::BUNDLE_FILES)
        .site_root(opts.site_root.display().to_string())
        .site_pkg_dir(format!("pkg/{}", assets::bundle_name(&opts.site_root)))
        .site_addr(opts.addr)
        .build()
}

async fn seed_examples(web: &WebState) {
    let (jobs, examples_dir) = (&web.jobs, &web.examples_dir);
    let fresh = matches!(web.store.jobs(1).await, Ok(list) if list.is_empty())
        && matches!(web.store.count_videos().await, Ok(0));
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
    if let Some(name) = studio::list_examples(examples_dir).first() {
        match std::fs::read(examples_dir.join(name)) {
            Ok(bytes) => {
                let params = JobParams {
                    prompt: "camera pans right while it snows".into(),
                    seed: Some(7),
                    ..JobParams::default()
                };
                let upload = crate::queue::Upload { bytes, name: name.clone() };
                if let Err(e) = jobs.submit(params, Some(upload)).await {
                    tracing::warn!("queuing an example: {e}");
                }
            }
            Err(e) => tracing::warn!("reading example image {name}: {e}"),
        }
    }
}

/// The body limit answers 413 with an empty body; say what happened, as JSON.
async fn json_too_large(res: Response) -> Response {
    let is_json =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        let error = format!("the request is larger than {} MB", crate::media::input::MAX_BYTES / (1024 * 1024));
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(app::types::ApiError { error })).into_response();
    }
    res
}

pub fn router(web: WebState, studio: SharedStudio, options: LeptosOptions, access: Arc<Access>) -> Router {
    let routes = generate_route_list(app::App);
    let assets = assets::routes(Path::new(&*options.site_root));
    let stylesheet = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    // Media behind a token, or a login in front, are not for shared caches.
    let media = media::routes(access.private()).with_state(web.clone());
    let api = api::routes()
        .merge(votes::routes())
        .layer(DefaultBodyLimit::max(crate::media::input::MAX_BYTES as usize + 256 * 1024))
        .with_state(web);
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
        .merge(media)
        .nest("/pkg", assets)
        .merge(security::signin_routes(stylesheet).with_state(access.clone()))
        .merge(pages)
        // Server functions read their bodies themselves; bound them here.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(crate::media::input::MAX_BYTES as usize + 1024 * 1024))
        .layer(middleware::map_response(json_too_large))
        .layer(middleware::from_fn_with_state(access, security::guard))
        .layer(middleware::map_response(security::security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
        ))
}
