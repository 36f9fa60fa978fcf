//! What the worker says of itself: read by the health check here and sent in its heartbeat to
//! the other processes sharing the queue.

use crate::ids::now_ms;
use app::types::WarmUp;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) struct WorkerReport {
    /// The last failure the worker saw (a job's, the queue's, the model's).
    last_error: Mutex<Option<String>>,
    /// The built-in model, or the device, could not be loaded: every job fails.
    model_failed: AtomicBool,
    /// How far it has come preparing GPU kernels; `None` when it does not.
    warm_up: Mutex<Option<WarmUp>>,
    /// The models loaded now.
    loaded: Mutex<Vec<String>>,
    pub(super) started_ms: i64,
}

impl WorkerReport {
    pub(super) fn new() -> Self {
        Self {
            last_error: Mutex::default(),
            model_failed: AtomicBool::new(false),
            warm_up: Mutex::default(),
            loaded: Mutex::default(),
            started_ms: now_ms(),
        }
    }

    pub(super) fn set_last_error(&self, message: String) {
        *self.last_error.lock().expect("error lock") = Some(message);
    }

    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("error lock").clone()
    }

    pub(super) fn set_model_failed(&self) {
        self.model_failed.store(true, Ordering::Relaxed);
    }

    pub(super) fn model_failed(&self) -> bool {
        self.model_failed.load(Ordering::Relaxed)
    }

    pub(super) fn warm_up(&self) -> Option<WarmUp> {
        self.warm_up.lock().expect("warm-up lock").clone()
    }

    /// Starts counting the models being prepared.
    pub(super) fn begin_warm_up(&self, total: u32) {
        *self.warm_up.lock().expect("warm-up lock") = Some(WarmUp { done: 0, total, current: None });
    }

    /// Changes the warm-up figure, if the worker prepares kernels.
    pub(super) fn change_warm_up(&self, change: impl FnOnce(&mut WarmUp)) {
        if let Some(w) = self.warm_up.lock().expect("warm-up lock").as_mut() {
            change(w);
        }
    }

    pub(super) fn loaded(&self) -> Vec<String> {
        self.loaded.lock().expect("loaded lock").clone()
    }

    pub(super) fn set_loaded(&self, models: Vec<String>) {
        *self.loaded.lock().expect("loaded lock") = models;
    }
}
