//! A queue shared with other processes (a PostgreSQL store, workers on other machines): the
//! heartbeat renews the lease of the job this process's worker runs, reports the worker, and
//! gives the jobs of workers that stopped answering to others.

use super::control::Control;
use super::fanout::FanOut;
use super::report::WorkerReport;
use super::{MAX_ATTEMPTS, WorkerSetup};
use crate::ids::now_ms;
use crate::storage::{Lease, NoticeKind, Recovered, Store};
use app::types::WorkerStatus;
use std::sync::Arc;
use std::time::Duration;

/// Workers heard from within this long are shown (and count as alive).
pub const SEEN_WITHIN_MS: i64 = 60_000;

/// How often a web node without a worker looks for jobs whose worker stopped answering.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);

pub(super) fn log_recovered(r: &Recovered) {
    if !r.requeued.is_empty() {
        tracing::warn!(ids = ?r.requeued, "jobs whose worker stopped answering are queued again");
    }
    if !r.done.is_empty() {
        tracing::warn!(ids = ?r.done, "jobs whose worker stopped answering after saving the video are done");
    }
    if !r.failed.is_empty() {
        tracing::error!(ids = ?r.failed, "jobs whose workers stopped answering too often are failed");
    }
    if !r.cancelled.is_empty() {
        tracing::warn!(ids = ?r.cancelled, "jobs cancelled while their worker stopped answering are cancelled");
    }
}

pub(super) struct Heartbeat {
    pub(super) store: Arc<dyn Store>,
    pub(super) fanout: Arc<FanOut>,
    pub(super) control: Arc<Control>,
    pub(super) report: Arc<WorkerReport>,
    /// This process's worker; `None`: a web node alone, which only recovers jobs.
    pub(super) setup: Option<WorkerSetup>,
    /// The models the worker runs.
    pub(super) models: Vec<String>,
}

impl Heartbeat {
    /// Renews the running job's lease, reports the worker, and recovers the jobs of workers
    /// that stopped answering, every sixth of a lease, until the server shuts down.
    pub(super) async fn run(self) {
        let period = self.setup.as_ref().map_or(EXPIRY_CHECK, |s| (s.lease / 6).max(Duration::from_millis(100)));
        let closing = self.fanout.closing();
        tokio::pin!(closing);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut closing => return,
            }
            if let Some(setup) = &self.setup {
                self.renew(setup.lease).await;
                let status = WorkerStatus {
                    id: self.fanout.node().to_string(),
                    name: setup.name.clone(),
                    devices: setup.devices.clone(),
                    models: self.models.clone(),
                    loaded: self.report.loaded(),
                    current_job: self.control.current(),
                    started_ms: self.report.started_ms,
                    seen_ms: now_ms(),
                    warm_up: self.report.warm_up(),
                };
                if let Err(e) = self.store.worker_seen(status).await {
                    tracing::warn!("reporting this worker: {e}");
                }
            }
            match self.store.requeue_expired(now_ms(), MAX_ATTEMPTS).await {
                Ok(r) => {
                    log_recovered(&r);
                    for id in r.requeued.iter().chain(&r.done).chain(&r.failed).chain(&r.cancelled) {
                        self.fanout.resend(id).await;
                        self.fanout.announce(NoticeKind::Changed { id: id.clone() }, None);
                    }
                    if !r.requeued.is_empty() {
                        self.control.wake();
                    }
                }
                Err(e) => tracing::warn!("looking for jobs of workers that stopped answering: {e}"),
            }
        }
    }

    /// Extends the lease of the job the worker runs; a cancel asked for, or a lease lost
    /// (another worker took the job over), stops it at its next step.
    async fn renew(&self, lease: Duration) {
        let Some(id) = self.control.current() else { return };
        let until = now_ms() + lease.as_millis() as i64;
        match self.store.renew_lease(id.clone(), self.fanout.node().to_string(), until).await {
            Ok(Lease::Held { cancel_requested: false }) => {}
            Ok(Lease::Held { cancel_requested: true }) => self.control.stop_if_running(&id),
            Ok(Lease::Lost) => {
                tracing::warn!(%id, "this worker no longer holds the job (its lease ended); stopping it");
                self.control.lose(&id);
            }
            // The database is away: work goes on; the lease is renewed when it is back (or the
            // job is given to another worker, and this one's result is refused).
            Err(e) => tracing::warn!(%id, "renewing the job's lease: {e}"),
        }
    }
}
