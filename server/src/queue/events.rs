//! What listeners of the queue hear, and the bound on open event streams.

use app::types::{Job, StepUpdate};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most event streams open at once; more are refused with 503.
pub const MAX_EVENT_STREAMS: usize = 64;

/// A job whose state changed (the whole job), or a running job's progress (the numbers, and
/// now and then a preview).
#[derive(Debug, Clone)]
pub enum JobEvent {
    Changed(Box<Job>),
    Step(StepUpdate),
}

impl JobEvent {
    pub fn job_id(&self) -> &str {
        match self {
            JobEvent::Changed(job) => &job.id,
            JobEvent::Step(step) => &step.id,
        }
    }
}

/// Counts open event streams.
#[derive(Default)]
pub struct StreamCounter(Arc<AtomicUsize>);

impl StreamCounter {
    /// A slot for one more stream, unless [`MAX_EVENT_STREAMS`] are open.
    pub fn slot(&self) -> Option<StreamSlot> {
        let taken = self.0.fetch_add(1, Ordering::Relaxed);
        let slot = StreamSlot(self.0.clone());
        (taken < MAX_EVENT_STREAMS).then_some(slot)
    }
}

/// One open event stream; the slot is given back when it is dropped.
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A preview image as a data URL for the event stream.
pub fn preview_url(image: &image::RgbImage) -> Option<String> {
    use base64::Engine;
    let small = model::generate::shrink_for_preview(image);
    let png = crate::media::encode::encode_png(&small, None).ok()?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}
