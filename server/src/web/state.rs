//! What the web layer serves from, held by the web layer itself rather than reached through the
//! queue: the queue (to submit, cancel and follow jobs), the stores it reads, the models it
//! describes, the CLIP model of visual search and the example pictures. Handlers take it as their
//! axum state; the pages' studio holds it too.

use crate::engines::Registry;
use crate::media::MediaStore;
use crate::queue::Jobs;
use crate::storage::Store;
use crate::visual::Visual;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct WebState {
    pub jobs: Jobs,
    pub store: Arc<dyn Store>,
    pub media: Arc<dyn MediaStore>,
    pub registry: Arc<Registry>,
    /// The installed CLIP model, when there is one.
    pub visual: Option<Arc<Visual>>,
    /// The example pictures offered on the Create page (`SITE_ROOT/examples`).
    pub examples_dir: PathBuf,
    /// Open event streams per client ([`crate::limits::STREAMS_PER_CLIENT`] each).
    pub streams: crate::limits::PerClient,
    /// Who casts a vote.
    pub voters: Arc<super::voters::Voters>,
}
