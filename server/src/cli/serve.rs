//! `vidplay serve`: the playground, until Ctrl-C or SIGTERM (the running job goes back to the
//! queue and runs on the next start).

use super::common::{ModelArgs, StoreArgs};
use crate::web::{ServeOptions, security};
use model::builtin::pipeline::BuiltinModel;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = "VIDPLAY_ADDR", default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// Database and media live here (unless --database-url and --media say otherwise).
    #[arg(long, env = "VIDPLAY_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[command(flatten)]
    stores: StoreArgs,
    /// The browser bundle, styles and public files (`cargo xtask site` writes them).
    #[arg(long, env = "VIDPLAY_SITE_ROOT", default_value = "target/site")]
    site_root: PathBuf,
    /// Do not queue example videos on first start.
    #[arg(long)]
    no_examples: bool,
    /// Installed diffusers models (one folder each) offered next to the built-in model,
    /// besides those in the Hugging Face cache.
    #[arg(long, env = "VIDPLAY_MODELS_DIR", default_value = "models")]
    models_dir: PathBuf,
    /// Memory for loaded models, in MiB (default: half the machine's); when a model does not
    /// fit, the least recently used ones are freed first.
    #[arg(long, env = "VIDPLAY_MODEL_MEMORY_MIB")]
    model_memory_mib: Option<u64>,
    /// With an installed CLIP model, gallery searches also find clips by what they show when
    /// their frames are at least this similar to the search text (cosine similarity).
    #[arg(long, default_value_t = crate::visual::MIN_SIMILARITY)]
    visual_min_similarity: f32,
    /// A host name this server may be reached by besides localhost and the bound address
    /// (e.g. the machine's name on the lab network); repeatable, or comma-separated in
    /// the environment. Requests for other names are refused (DNS rebinding).
    #[arg(long = "public-host", env = "VIDPLAY_PUBLIC_HOST", value_delimiter = ',')]
    public_hosts: Vec<String>,
    /// Require this token: `Authorization: Bearer TOKEN` for the API, a sign-in for pages.
    /// Needed to listen beyond loopback.
    #[arg(long, env = "VIDPLAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Named tokens for a shared instance, one `NAME SECRET` a line: each is accepted like
    /// --token, and queued jobs are taken round-robin between the names, each with its own
    /// queue limit.
    #[arg(long, env = "VIDPLAY_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without a token (only behind something that authenticates).
    #[arg(long)]
    no_auth: bool,
    /// Requests come through a reverse proxy of your own (Caddy, nginx): take the client's
    /// address from its X-Forwarded-For (for limits per client) and make the sign-in cookie
    /// Secure when its X-Forwarded-Proto says https. Never without such a proxy: clients could
    /// then say anything.
    #[arg(long, env = "VIDPLAY_TRUST_PROXY")]
    trust_proxy: bool,
    /// Serve pages and the API only; jobs run on `vidplay worker`s sharing --database-url.
    #[arg(long)]
    no_worker: bool,
    /// Prepare every installed model's GPU kernels (compile and tune them) while no job waits,
    /// from the start: auto (on a GPU), always, never.
    #[arg(long, env = "VIDPLAY_WARM_UP", value_enum, default_value = "auto")]
    warm_up: crate::queue::warm_up::WarmUpPolicy,
    /// This server's worker as the queue page shows it (default: the machine's name).
    #[arg(long, env = "VIDPLAY_WORKER_NAME")]
    worker_name: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let addr = a.addr;
    if a.no_worker {
        // Without a shared database no worker could ever take this node's jobs.
        a.stores.shared_database("--no-worker")?;
    }
    let named = match &a.tokens_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the tokens file {}: {e}", path.display()))?;
            security::read_tokens(&text).map_err(|e| anyhow::anyhow!("the tokens file {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    if let Some(token) = a.token.as_deref().filter(|t| !t.is_empty())
        && token.len() < security::MIN_SECRET_CHARS
    {
        anyhow::bail!(
            "--token must be at least {} characters, like the secrets of a tokens file (e.g. `openssl rand -hex 16`)",
            security::MIN_SECRET_CHARS
        );
    }
    let any_token = a.token.clone().filter(|t| !t.is_empty()).or_else(|| named.first().map(|t| t.secret.clone()));
    security::check_exposure(addr, any_token.as_deref(), a.no_auth).map_err(|e| anyhow::anyhow!(e))?;
    let opts = ServeOptions {
        addr,
        data_dir: a.data_dir,
        database_url: a.stores.database_url().map(str::to_string),
        media: a.stores.media,
        media_endpoint: a.stores.media_endpoint,
        worker: (!a.no_worker).then(|| {
            let mut setup = crate::queue::WorkerSetup::new(
                super::common::machine_name(a.worker_name),
                vec![a.model.device.to_string()],
            );
            setup.warm_up = a.warm_up;
            setup
        }),
        site_root: a.site_root,
        seed_examples: !a.no_examples,
        models_dir: Some(a.models_dir),
        access: security::Access::new(addr, &a.public_hosts, a.token)
            .with_named(named)
            .with_trust_proxy(a.trust_proxy)
            .with_guard_in_front(a.no_auth),
        model_memory_mib: a.model_memory_mib.unwrap_or_else(ServeOptions::default_model_memory_mib),
        faults: crate::faults::Faults::from_env()?,
        visual_min_similarity: a.visual_min_similarity,
    };
    if !crate::web::assets::site_is_built(&opts.site_root) {
        eprintln!(
            "warning: no browser bundle in {}; pages work without JavaScript. Build it with `cargo xtask site --release` (scripts/play does).",
            opts.site_root.display()
        );
    }
    let model = a.model;
    let config = BuiltinModel::config_of(model.weights.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        let (router, jobs) = crate::web::build(&opts, config, move || model.load_on_device()).await?;
        println!("vidplay playground on http://{bound} (data in {})", opts.data_dir.display());
        let stopping = jobs.clone();
        let runtime = tokio::runtime::Handle::current();
        // The peer's address, for limits per client.
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                super::common::shutdown_signal().await;
                eprintln!("shutting down: the running job (if any) goes back to the queue");
                // Event streams end now, so open pages do not hold the shutdown.
                stopping.begin_shutdown();
                // A step that outlasts this is cut off; its job still goes back to the queue.
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(20));
                    eprintln!("shutdown took too long; exiting");
                    if let Err(e) = runtime.block_on(stopping.requeue_current()) {
                        eprintln!("putting the running job back in the queue: {e}");
                    }
                    std::process::exit(1);
                });
            })
            .await?;
        // A running job goes back to the queue and runs on the next start.
        jobs.shutdown().await;
        anyhow::Ok(())
    })
}
