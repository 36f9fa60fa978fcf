//! `vidplay worker`: a GPU machine's share of a scaled-out vidplay. It takes jobs from the
//! PostgreSQL queue that the web node and other workers share (only for models it has, those
//! it has loaded first), holds each by a lease its heartbeat renews, reports progress and
//! previews to the web nodes, stops within a step when a job is cancelled anywhere, and
//! writes results to the shared media store. Until Ctrl-C or SIGTERM (its job goes back to
//! the queue).

use super::common::{ModelArgs, StoreArgs};
use crate::engines::Registry;
use crate::engines::builtin::BuiltinEngine;
use crate::queue::{Jobs, QueueConfig, WorkerSetup};
use model::builtin::pipeline::BuiltinModel;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// Installed diffusers models this worker can run (the Hugging Face cache is looked at
    /// too); the built-in model always.
    #[arg(long, env = "VIDPLAY_MODELS_DIR", default_value = "models")]
    models_dir: PathBuf,
    /// Shown on the queue page (default: the machine's name and the device).
    #[arg(long, env = "VIDPLAY_WORKER_NAME")]
    name: Option<String>,
    /// A job stays this worker's this long after each heartbeat (every sixth of it); if the
    /// worker stops answering for longer, another worker takes the job over.
    #[arg(long, default_value_t = 30)]
    lease_seconds: u64,
    /// Memory for loaded models, in MiB (default: half the machine's).
    #[arg(long, env = "VIDPLAY_MODEL_MEMORY_MIB")]
    model_memory_mib: Option<u64>,
    /// Prepare every installed model's GPU kernels (compile and tune them) while no job waits,
    /// from the start: auto (on a GPU), always, never.
    #[arg(long, env = "VIDPLAY_WARM_UP", value_enum, default_value = "auto")]
    warm_up: crate::queue::warm_up::WarmUpPolicy,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: WorkerArgs) -> anyhow::Result<()> {
    let url = a.stores.shared_database("vidplay worker")?.to_string();
    let location = a.stores.media.clone().ok_or_else(|| {
        anyhow::anyhow!("vidplay worker needs --media: the web node's media location (s3://BUCKET/PREFIX, or a folder every machine mounts)")
    })?;
    anyhow::ensure!((1..=3600).contains(&a.lease_seconds), "--lease-seconds must be between 1 and 3600");
    let device = a.model.device.to_string();
    let name = match a.name.filter(|n| !n.trim().is_empty()) {
        Some(name) => name,
        None => format!("{} ({device})", super::common::machine_name(None)),
    };
    let mut setup = WorkerSetup::new(name, vec![device]);
    setup.lease = std::time::Duration::from_secs(a.lease_seconds);
    setup.warm_up = a.warm_up;
    let model = a.model;
    let config = BuiltinModel::config_of(model.weights.as_deref())?;
    let memory = a.model_memory_mib.unwrap_or_else(crate::web::ServeOptions::default_model_memory_mib);
    let (models_dir, endpoint) = (a.models_dir, a.stores.media_endpoint);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let store = crate::storage::open(Some(&url), std::path::Path::new(".")).await?;
        let media = Arc::new(crate::media::s3::open_location(&location, endpoint.as_deref())?);
        let registry = Arc::new(Registry::discover(BuiltinEngine::new(config), Some(&models_dir)));
        let visual =
            crate::visual::Visual::start(Some(&models_dir), store.as_ref(), crate::visual::MIN_SIMILARITY).await;
        let name = setup.name.clone();
        let queue = QueueConfig {
            store,
            media,
            registry: registry.clone(),
            model_memory_mib: memory,
            faults: crate::faults::Faults::from_env()?,
            visual,
            worker: Some(setup),
        };
        let jobs = Jobs::start(queue, move || model.load_on_device()).await?;
        println!(
            "vidplay worker {name:?} taking jobs for {:?} from {} (media in {location})",
            registry.ids(),
            crate::storage::postgres::redacted(&url)
        );
        super::common::shutdown_signal().await;
        eprintln!("shutting down: the running job (if any) goes back to the queue");
        jobs.shutdown().await;
        anyhow::Ok(())
    })
}
