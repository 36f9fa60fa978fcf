//! What every generator shares, whatever the model family: progress reports (with an optional
//! preview image), the cancel hook, and one error type.

use image::RgbImage;
use std::time::{Duration, Instant};

/// One finished sampling step. `preview`, when present, is a small picture of what the result
/// looks like so far (the model's current estimate), for a live view.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub preview: Option<RgbImage>,
}

impl Progress {
    pub fn new(step: usize, total: usize) -> Self {
        Self { step, total, preview: None }
    }

    pub fn with_preview(mut self, preview: Option<RgbImage>) -> Self {
        self.preview = preview;
        self
    }
}

/// Called after every step.
pub type ProgressHook<'a> = &'a mut dyn FnMut(Progress);
/// Checked between steps: `true` stops the generation with [`GenerateError::Cancelled`].
pub type CancelHook<'a> = &'a dyn Fn() -> bool;

/// What a caught panic said (its message, when it has one).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Why a generation did not produce a result.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum GenerateError {
    /// The request cannot be run by this model; the message says why, for the person who sent it.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("cancelled")]
    Cancelled,
    /// The model's files cannot be loaded.
    #[error("the model cannot be loaded: {0}")]
    Load(String),
    /// Running or storing the result failed; the message says what.
    #[error("{0}")]
    Backend(String),
}

/// Most previews per second: making one reads the current estimate back from the device, so
/// they are rationed by time, not by step.
pub const PREVIEWS_PER_SECOND: f32 = 3.0;

/// Tells a sampling loop when the next preview is due (at most [`PREVIEWS_PER_SECOND`]; the
/// last step never makes one, the result follows at once).
#[derive(Debug)]
pub struct PreviewClock {
    last: Option<Instant>,
    every: Duration,
}

impl Default for PreviewClock {
    fn default() -> Self {
        Self { last: None, every: Duration::from_secs_f32(1.0 / PREVIEWS_PER_SECOND) }
    }
}

impl PreviewClock {
    /// Whether to make a preview after `step` of `total`; if so, the clock restarts.
    pub fn due(&mut self, step: usize, total: usize) -> bool {
        if step >= total || self.last.is_some_and(|t| t.elapsed() < self.every) {
            return false;
        }
        self.last = Some(Instant::now());
        true
    }
}

/// Longest side of a preview image.
pub const PREVIEW_SIDE: u32 = 128;

/// Scales an image down so its longer side is at most [`PREVIEW_SIDE`] (never up).
pub fn shrink_for_preview(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let longest = w.max(h);
    if longest <= PREVIEW_SIDE {
        return img.clone();
    }
    let scale = PREVIEW_SIDE as f32 / longest as f32;
    let (nw, nh) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_rationed_and_never_on_the_last_step() {
        let mut clock = PreviewClock::default();
        assert!(clock.due(1, 10));
        assert!(!clock.due(2, 10), "a second preview within the interval");
        let mut clock = PreviewClock::default();
        assert!(!clock.due(10, 10));
    }

    #[test]
    fn previews_are_small_and_keep_the_aspect() {
        let img = RgbImage::new(512, 256);
        assert_eq!(shrink_for_preview(&img).dimensions(), (128, 64));
        let small = RgbImage::new(32, 32);
        assert_eq!(shrink_for_preview(&small).dimensions(), (32, 32));
    }
}
