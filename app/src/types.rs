//! What the pages, the server functions and the JSON API exchange.

use crate::media_files::MediaFile;
use crate::results::ResultMeta;
use serde::{Deserialize, Serialize};

/// Text-to-video, or image-to-video (an input image is animated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    TextToVideo,
    ImageToVideo,
    /// A keyframe from a text-to-image model (the first half of text -> image -> video).
    TextToImage,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::TextToVideo => "text-to-video",
            Mode::ImageToVideo => "image-to-video",
            Mode::TextToImage => "text-to-image",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "text-to-video" => Some(Mode::TextToVideo),
            "image-to-video" => Some(Mode::ImageToVideo),
            "text-to-image" => Some(Mode::TextToImage),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::TextToVideo => "Text to video",
            Mode::ImageToVideo => "Image to video",
            Mode::TextToImage => "Text to image (keyframe)",
        }
    }
}

/// The parameters of a generation, as a user sets them. Everything but the prompt has a
/// default, so `{"prompt": "a red ball"}` is a complete request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobParams {
    pub prompt: String,
    pub model: String,
    pub frames: u32,
    pub fps: u32,
    pub steps: u32,
    pub guidance: f32,
    pub image_guidance: f32,
    pub motion: f32,
    /// `None`: a random seed is drawn (and recorded) when the job is created.
    pub seed: Option<u64>,
    /// Text-to-image models: what the image should not show, and its size in pixels.
    pub negative: String,
    pub width: u32,
    pub height: u32,
    /// Text-to-video with Stable Video Diffusion: the text-to-image model that makes the
    /// keyframe first (empty: the first installed), and its steps and guidance.
    pub keyframe_model: String,
    pub keyframe_steps: u32,
    pub keyframe_guidance: f32,
}

pub const BUILTIN_MODEL: &str = "vidplay-toy-1";

impl Default for JobParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            model: BUILTIN_MODEL.into(),
            frames: 16,
            fps: 8,
            steps: 24,
            guidance: 3.0,
            image_guidance: 1.5,
            motion: 1.0,
            seed: None,
            negative: String::new(),
            width: 512,
            height: 512,
            keyframe_model: String::new(),
            keyframe_steps: 25,
            keyframe_guidance: 7.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// A job as the queue page and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub state: JobState,
    pub mode: Mode,
    /// The parameters with the seed resolved.
    pub params: JobParams,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Sampling step reached, of `total`.
    pub step: u32,
    pub total: u32,
    /// Why it failed (or a note, e.g. that it was re-queued after a restart).
    pub message: Option<String>,
    /// The finished video (same id as the job) when `state` is done.
    pub video_id: Option<String>,
}

/// A finished clip in the gallery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    pub id: String,
    pub mode: Mode,
    pub params: JobParams,
    pub created_ms: i64,
    pub favorite: bool,
    /// The result's metadata (timings, resolution, ...), of any version.
    #[serde(deserialize_with = "crate::results::read_any_version")]
    pub metadata: ResultMeta,
}

impl Video {
    pub fn url(&self, file: MediaFile) -> String {
        crate::media_files::url(&self.id, file)
    }
    pub fn video_url(&self) -> String {
        self.url(MediaFile::Video)
    }
    pub fn gif_url(&self) -> String {
        self.url(MediaFile::Gif)
    }
    pub fn poster_url(&self) -> String {
        self.url(MediaFile::Poster)
    }
    pub fn frames_url(&self) -> String {
        self.url(MediaFile::Frames)
    }
    /// A text-to-image result is one still image.
    pub fn is_image(&self) -> bool {
        self.mode == Mode::TextToImage
    }
    pub fn image_url(&self) -> String {
        self.url(MediaFile::Image)
    }
    /// The keyframe a text-to-video clip animates (text -> keyframe -> video).
    pub fn keyframe_url(&self) -> Option<String> {
        self.metadata.keyframe.as_ref().map(|_| self.url(MediaFile::Keyframe))
    }
    pub fn source_url(&self) -> Option<String> {
        (self.mode == Mode::ImageToVideo).then(|| self.url(MediaFile::Input))
    }
}

/// Gallery query: full text over prompts plus filters, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoQuery {
    pub q: String,
    pub mode: Option<Mode>,
    pub model: Option<String>,
    pub favorites: bool,
    /// Show videos older than this one (the previous page's last id).
    pub before: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoPage {
    pub videos: Vec<Video>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The settings a file made by vidplay carries (`POST /api/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSettings {
    pub mode: Mode,
    pub params: JobParams,
}

/// How a model reads a prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptReading {
    /// Canonical phrases understood, e.g. ["red", "ball", "moving left"].
    pub understood: Vec<String>,
    /// Words the model ignores.
    pub ignored: Vec<String>,
}

/// An error body of the JSON API: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Ids are generated by the server: lowercase hex. Anything else is rejected before it reaches
/// a path or a query.
pub fn is_valid_id(id: &str) -> bool {
    (8..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A running job's progress, as the event stream sends it between state changes (the whole
/// job is sent only when its state changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepUpdate {
    pub id: String,
    pub step: u32,
    pub total: u32,
    /// A small picture of the result so far, as a `data:image/png;base64,...` URL (a few per
    /// second at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// Whether the generation worker is alive and what it is doing (`GET /api/health`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// The generation thread is running.
    pub worker_alive: bool,
    /// The job it is running now.
    pub current_job: Option<String>,
    pub queue_length: u64,
    /// The last failure of a job or of the worker itself (a panic, a model that did not load).
    pub last_error: Option<String>,
    /// Nothing will run: the worker is gone, or the model could not be loaded.
    pub stalled: bool,
}
