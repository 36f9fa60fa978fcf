//! What the pages, the server functions and the JSON API exchange.

use crate::media_files::MediaFile;
use crate::results::ResultMeta;
use crate::scores::{GallerySort, ScoreFlag, Scores};
use serde::{Deserialize, Serialize};

pub use crate::params::{JobParams, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
    /// Sampled, but the decode into pixels failed (out of memory, a crash): the sampled latents
    /// are kept with the job, and its owner may decode them again in smaller pieces.
    DecodeFailed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::DecodeFailed => "decode-failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            "decode-failed" => JobState::DecodeFailed,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled | JobState::DecodeFailed)
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
    /// The name of the API token it was submitted with (empty without named tokens): queued
    /// jobs are taken round-robin between owners.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// The media key of the image it starts from (image to video, edits), resolved when it was
    /// queued: its own upload (`uploads/ID.png`), or a stored result's file, read where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Set once its decode failed and its sampled latents were kept: how many times the decode
    /// was asked again since (each retry decodes in smaller pieces). A queued or running job
    /// with a count above zero runs the decoder alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_retries: Option<u32>,
}

impl Job {
    /// Whether running it means decoding kept latents again, not sampling.
    pub fn decodes_again(&self) -> bool {
        self.decode_retries.is_some_and(|n| n > 0)
    }
}

/// A finished clip in the gallery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    pub id: String,
    pub mode: Mode,
    pub params: JobParams,
    pub created_ms: i64,
    /// One of the favourites of whoever asked (each person has their own; everyone shares one
    /// set on a server without named tokens).
    pub favorite: bool,
    /// Who made it: the named token its job was submitted with (empty without one). Only they
    /// or the administrator may delete it ([`crate::people::Viewer::may_change`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// The result's metadata (timings, resolution, ...), of any version.
    #[serde(deserialize_with = "crate::results::read_any_version")]
    pub metadata: ResultMeta,
    /// Automatic quality and faithfulness scores of a clip (none for still images, and until
    /// they are measured).
    #[serde(default)]
    pub scores: Option<Scores>,
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
    /// A text-to-image or edit result is one still image.
    pub fn is_image(&self) -> bool {
        matches!(self.mode, Mode::TextToImage | Mode::Edit)
    }
    pub fn image_url(&self) -> String {
        self.url(MediaFile::Image)
    }
    /// The keyframe a text-to-video clip animates (text -> keyframe -> video).
    pub fn keyframe_url(&self) -> Option<String> {
        self.metadata.keyframe.as_ref().map(|_| self.url(MediaFile::Keyframe))
    }
    pub fn source_url(&self) -> Option<String> {
        matches!(self.mode, Mode::ImageToVideo | Mode::Edit).then(|| self.url(MediaFile::Input))
    }
}

/// Gallery query: full text over prompts plus filters, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoQuery {
    pub q: String,
    pub mode: Option<Mode>,
    pub model: Option<String>,
    /// Only the favourites of [`VideoQuery::favorites_of`].
    pub favorites: bool,
    /// Whose favourites: set by the server from the request's token, never read from it.
    #[serde(skip)]
    pub favorites_of: String,
    /// Clips with this flag only.
    pub flag: Option<ScoreFlag>,
    /// The results of one variants request only.
    pub group: Option<String>,
    /// The order (newest first by default); ordering by a score leaves unscored results out.
    pub sort: GallerySort,
    /// Show videos after this one in the order (the previous page's last id).
    pub before: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoPage {
    pub videos: Vec<Video>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
    /// Videos in `videos` found by what they show (visual search with an installed CLIP
    /// model), not by their prompt's words, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visual: Vec<VisualMatch>,
}

/// A video found by what it shows: the cosine similarity of its frames' CLIP embedding with the
/// search text's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisualMatch {
    pub id: String,
    pub similarity: f32,
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
    /// Workers sharing this queue (a database shared with GPU machines), recently seen first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerStatus>,
    /// This process's worker preparing its GPU kernels, when it does (see [`WarmUp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<WarmUp>,
}

/// A worker on a GPU compiles and tunes the kernels of every installed model before their
/// first jobs: it runs each model's first task once, briefly (one sampling step at the model's
/// default settings), whenever no job is waiting. A job that comes meanwhile waits only for the
/// model being prepared then.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmUp {
    /// Models prepared so far (failures count: they are logged and skipped).
    pub done: u32,
    /// Models to prepare.
    pub total: u32,
    /// The model being prepared now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}

impl WarmUp {
    /// Still preparing.
    pub fn preparing(&self) -> bool {
        self.done < self.total
    }
}

/// A worker taking jobs from a shared queue, as it last reported itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Unique per worker process.
    pub id: String,
    /// Its name (`--name`, else the host's name and device).
    pub name: String,
    /// The devices it generates on (`cuda:0`, `cpu`, ...).
    pub devices: Vec<String>,
    /// The models it can run.
    pub models: Vec<String>,
    /// The models loaded now (jobs for these are taken first).
    pub loaded: Vec<String>,
    /// The job it is running.
    pub current_job: Option<String>,
    pub started_ms: i64,
    /// Its last heartbeat.
    pub seen_ms: i64,
    /// How far it has come preparing GPU kernels, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<WarmUp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's, the database's and the pages' names of a state are one.
    #[test]
    fn job_states_have_one_name() {
        use JobState::*;
        for state in [Queued, Running, Done, Failed, Cancelled, DecodeFailed] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
    }
}
