//! A queue shared with other processes (a PostgreSQL store, workers on other machines): what
//! this process hears from the others (jobs changed, steps and previews, cancels) is relayed
//! to its own listeners and worker; its heartbeat renews the lease of the job its worker
//! runs, reports the worker, and gives the jobs of workers that stopped answering to others.

use super::Jobs;
use super::events::JobEvent;
use crate::ids::now_ms;
use crate::storage::{Lease, Notice, NoticeKind, Recovered, Store};
use app::types::{StepUpdate, WorkerStatus};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// Sends announcements one at a time, in order (a failed one is logged and dropped: the
/// database is away, and the job's state in it is what counts). Ends with the queue.
pub(super) async fn announcements(
    store: Arc<dyn Store>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(Notice, Option<String>)>,
) {
    while let Some((notice, preview)) = queue.recv().await {
        if let Err(e) = store.announce(notice, preview).await {
            tracing::debug!("announcing to other processes: {e}");
        }
    }
}

impl Jobs {
    /// Tells the other processes sharing the store (in the order announced; never waits).
    pub(super) fn announce(&self, kind: NoticeKind, preview: Option<String>) {
        if self.inner.store.shared() {
            let notice = Notice { from: self.inner.node.clone(), kind };
            let _ = self.inner.announcer.send((notice, preview));
        }
    }

    /// Relays what other processes announce, until the server shuts down.
    pub(super) async fn relay(self, mut notices: BoxStream<'static, Notice>) {
        let closing = self.closing();
        tokio::pin!(closing);
        loop {
            let notice = tokio::select! {
                n = notices.next() => match n { Some(n) => n, None => return },
                _ = &mut closing => return,
            };
            if notice.from == self.inner.node {
                continue;
            }
            match notice.kind {
                NoticeKind::Changed { id } => {
                    self.relay_changed(&id).await;
                    // A queued job: an idle worker here may take it now.
                    self.wake();
                }
                NoticeKind::Step { id, step, total, preview } => {
                    let preview =
                        if preview { self.inner.store.preview(id.clone()).await.ok().flatten() } else { None };
                    let _ = self.inner.events.send(JobEvent::Step(StepUpdate { id, step, total, preview }));
                }
                NoticeKind::Cancel { id } => self.stop_if_running(&id),
                NoticeKind::Reconnected => {
                    // Anything may have happened meanwhile: recent jobs are read again.
                    if let Ok(jobs) = self.inner.store.jobs(100).await {
                        for job in jobs {
                            let _ = self.inner.events.send(JobEvent::Changed(Box::new(job)));
                        }
                    }
                    self.wake();
                }
            }
        }
    }

    async fn relay_changed(&self, id: &str) {
        match self.inner.store.job(id.to_string()).await {
            Ok(Some(job)) => {
                let _ = self.inner.events.send(JobEvent::Changed(Box::new(job)));
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(id, "reading an announced job: {e}"),
        }
    }

    /// Raises the cancel flag of job `id` if this process's worker runs it.
    fn stop_if_running(&self, id: &str) {
        let running_here = self.inner.current.lock().expect("current lock").as_deref() == Some(id);
        if running_here {
            tracing::info!(id, "cancel asked for from another process");
            self.cancel_flag(id).store(true, Ordering::Relaxed);
        }
    }

    /// Renews the running job's lease, reports the worker, and recovers the jobs of workers
    /// that stopped answering, every sixth of a lease, until the server shuts down.
    pub(super) async fn heartbeat(self) {
        let period = self.inner.setup.as_ref().map_or(EXPIRY_CHECK, |s| (s.lease / 6).max(Duration::from_millis(100)));
        let closing = self.closing();
        tokio::pin!(closing);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut closing => return,
            }
            if let Some(setup) = self.inner.setup.clone() {
                self.renew(setup.lease).await;
                let status = WorkerStatus {
                    id: self.inner.node.clone(),
                    name: setup.name,
                    devices: setup.devices,
                    models: self.inner.registry.ids(),
                    loaded: self.inner.loaded.lock().expect("loaded lock").clone(),
                    current_job: self.inner.current.lock().expect("current lock").clone(),
                    started_ms: self.inner.started_ms,
                    seen_ms: now_ms(),
                    warm_up: self.inner.warm_up.lock().expect("warm-up lock").clone(),
                };
                if let Err(e) = self.inner.store.worker_seen(status).await {
                    tracing::warn!("reporting this worker: {e}");
                }
            }
            match self.inner.store.requeue_expired(now_ms(), super::MAX_ATTEMPTS).await {
                Ok(r) => {
                    log_recovered(&r);
                    for id in r.requeued.iter().chain(&r.done).chain(&r.failed).chain(&r.cancelled) {
                        self.relay_changed(id).await;
                        self.announce(NoticeKind::Changed { id: id.clone() }, None);
                    }
                    if !r.requeued.is_empty() {
                        self.wake();
                    }
                }
                Err(e) => tracing::warn!("looking for jobs of workers that stopped answering: {e}"),
            }
        }
    }

    /// Extends the lease of the job the worker runs; a cancel asked for, or a lease lost
    /// (another worker took the job over), stops it at its next step.
    async fn renew(&self, lease: Duration) {
        let current = self.inner.current.lock().expect("current lock").clone();
        let Some(id) = current else { return };
        match self.inner.store.renew_lease(id.clone(), self.worker_id(), now_ms() + lease.as_millis() as i64).await {
            Ok(Lease::Held { cancel_requested: false }) => {}
            Ok(Lease::Held { cancel_requested: true }) => self.stop_if_running(&id),
            Ok(Lease::Lost) => {
                tracing::warn!(%id, "this worker no longer holds the job (its lease ended); stopping it");
                self.inner.lost.lock().expect("lost lock").replace(id.clone());
                self.stop_if_running(&id);
            }
            // The database is away: work goes on; the lease is renewed when it is back (or the
            // job is given to another worker, and this one's result is refused).
            Err(e) => tracing::warn!(%id, "renewing the job's lease: {e}"),
        }
    }
}
