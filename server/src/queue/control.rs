//! What the parts of the queue share about the running job: its cancel flag, which job the
//! worker runs now, whether the worker is to stop, and the bell that wakes it when a job comes.
//! A cancel (from a request, or relayed from another process) and the worker meet here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

pub(super) struct Control {
    /// Cancel flags of jobs that are running, or were asked to stop while being claimed.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The job the worker runs now.
    current: Mutex<Option<String>>,
    /// The job whose lease this worker lost (another worker took it over): its result is not
    /// saved.
    lost: Mutex<Option<String>>,
    /// The server shuts down: the worker puts its job back in the queue and stops.
    stopping: AtomicBool,
    wake: Mutex<mpsc::Sender<()>>,
}

impl Control {
    /// The control, and the bell's other end (the worker's).
    pub(super) fn new() -> (Self, mpsc::Receiver<()>) {
        let (wake, bell) = mpsc::channel();
        let control = Self {
            cancels: Mutex::default(),
            current: Mutex::default(),
            lost: Mutex::default(),
            stopping: AtomicBool::new(false),
            wake: Mutex::new(wake),
        };
        (control, bell)
    }

    /// The cancel flag of a job, made if it has none yet (shared by a cancel and the worker,
    /// whichever comes first, so a cancel that lands while the job is claimed is not lost).
    pub(super) fn cancel_flag(&self, id: &str) -> Arc<AtomicBool> {
        self.cancels.lock().expect("cancels lock").entry(id.to_string()).or_default().clone()
    }

    pub(super) fn forget_cancel_flag(&self, id: &str) {
        self.cancels.lock().expect("cancels lock").remove(id);
    }

    /// Wakes an idle worker: a job may be waiting.
    pub(super) fn wake(&self) {
        let _ = self.wake.lock().expect("wake lock").send(());
    }

    /// Tells the worker to stop (between steps; a cancel flag stays a user's cancel).
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake();
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether a running job is to stop at its next step: cancelled, or the server stops.
    pub(super) fn cancelled(&self, flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed) || self.stopping()
    }

    pub(super) fn current(&self) -> Option<String> {
        self.current.lock().expect("current lock").clone()
    }

    /// The worker begins job `id` (its lease is its own again), or has finished (`None`).
    pub(super) fn set_current(&self, id: Option<String>) {
        if id.is_some() {
            *self.lost.lock().expect("lost lock") = None;
        }
        *self.current.lock().expect("current lock") = id;
    }

    /// Raises the cancel flag of job `id` if the worker runs it.
    pub(super) fn stop_if_running(&self, id: &str) {
        if self.current().as_deref() == Some(id) {
            tracing::info!(id, "cancel asked for from another process");
            self.cancel_flag(id).store(true, Ordering::Relaxed);
        }
    }

    /// The worker's lease on job `id` ended (another worker took it over): it stops, and its
    /// result is not saved.
    pub(super) fn lose(&self, id: &str) {
        self.lost.lock().expect("lost lock").replace(id.to_string());
        self.stop_if_running(id);
    }

    /// Whether the lease on job `id` was lost.
    pub(super) fn lost(&self, id: &str) -> bool {
        self.lost.lock().expect("lost lock").as_deref() == Some(id)
    }
}
