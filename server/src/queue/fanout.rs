//! Who hears of a job: listeners in this process get every change and step through a broadcast
//! channel; with a shared store (PostgreSQL, workers on other machines) the other processes get
//! them as notices, sent in order by one task, and what they announce is relayed here.

use super::control::Control;
use super::events::{JobEvent, StreamCounter, StreamSlot};
use crate::storage::{Notice, NoticeKind, Store};
use app::types::{Job, StepUpdate};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{broadcast, watch};

/// An announcement waiting to be sent, with its preview (a data URL) if it has one.
type Announcement = (Notice, Option<String>);

pub(super) struct FanOut {
    store: Arc<dyn Store>,
    /// This process, among those sharing the store (its notices carry it).
    node: String,
    events: broadcast::Sender<JobEvent>,
    /// Turns true when the server begins to shut down (event streams end).
    closing: watch::Sender<bool>,
    streams: StreamCounter,
    announcer: UnboundedSender<Announcement>,
}

impl FanOut {
    /// The fan-out of process `node`, and the queue of its announcements (for [`announcements`]).
    pub(super) fn new(store: Arc<dyn Store>, node: String) -> (Self, UnboundedReceiver<Announcement>) {
        let (announcer, announcements) = unbounded_channel();
        let fanout = Self {
            store,
            node,
            events: broadcast::channel(256).0,
            closing: watch::channel(false).0,
            streams: StreamCounter::default(),
            announcer,
        };
        (fanout, announcements)
    }

    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// Every job update (created, each step, finished).
    pub(super) fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// A slot for one more event stream, unless too many are open.
    pub(super) fn stream_slot(&self) -> Option<StreamSlot> {
        self.streams.slot()
    }

    /// Event streams end: the server shuts down.
    pub(super) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the server begins to shut down.
    pub(super) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Tells listeners here, and the other processes sharing the store, that `job` changed.
    pub(super) fn changed(&self, job: &Job) {
        self.send(JobEvent::Changed(Box::new(job.clone())));
        self.announce(NoticeKind::Changed { id: job.id.clone() }, None);
    }

    /// Tells listeners here only.
    pub(super) fn send(&self, event: JobEvent) {
        let _ = self.events.send(event);
    }

    /// Tells the other processes sharing the store (in the order announced; never waits).
    pub(super) fn announce(&self, kind: NoticeKind, preview: Option<String>) {
        if self.store.shared() {
            let notice = Notice { from: self.node.clone(), kind };
            let _ = self.announcer.send((notice, preview));
        }
    }

    /// Reads job `id` again and tells listeners here (it changed in another process).
    pub(super) async fn resend(&self, id: &str) {
        match self.store.job(id.to_string()).await {
            Ok(Some(job)) => self.send(JobEvent::Changed(Box::new(job))),
            Ok(None) => {}
            Err(e) => tracing::debug!(id, "reading an announced job: {e}"),
        }
    }
}

/// Sends announcements one at a time, in order (a failed one is logged and dropped: the
/// database is away, and the job's state in it is what counts). Ends with the queue.
pub(super) async fn announcements(store: Arc<dyn Store>, mut queue: UnboundedReceiver<Announcement>) {
    while let Some((notice, preview)) = queue.recv().await {
        if let Err(e) = store.announce(notice, preview).await {
            tracing::debug!("announcing to other processes: {e}");
        }
    }
}

/// Relays what other processes announce to listeners here, cancels to the worker here, and
/// wakes it for new jobs, until the server shuts down.
pub(super) async fn relay(fanout: Arc<FanOut>, control: Arc<Control>, mut notices: BoxStream<'static, Notice>) {
    let closing = fanout.closing();
    tokio::pin!(closing);
    loop {
        let notice = tokio::select! {
            n = notices.next() => match n { Some(n) => n, None => return },
            _ = &mut closing => return,
        };
        if notice.from == fanout.node {
            continue;
        }
        match notice.kind {
            NoticeKind::Changed { id } => {
                fanout.resend(&id).await;
                // A queued job: an idle worker here may take it now.
                control.wake();
            }
            NoticeKind::Step { id, step, total, preview } => {
                let preview = if preview { fanout.store.preview(id.clone()).await.ok().flatten() } else { None };
                fanout.send(JobEvent::Step(StepUpdate { id, step, total, preview }));
            }
            NoticeKind::Cancel { id } => control.stop_if_running(&id),
            NoticeKind::Reconnected => {
                // Anything may have happened meanwhile: recent jobs are read again.
                if let Ok(jobs) = fanout.store.jobs(100).await {
                    for job in jobs {
                        fanout.send(JobEvent::Changed(Box::new(job)));
                    }
                }
                control.wake();
            }
        }
    }
}
