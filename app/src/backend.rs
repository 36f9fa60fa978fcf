//! What the server functions need from the server (`ssr` only). The server crate implements
//! [`Studio`] over its job queue and store and provides it as context; the pages never see
//! the database or the model directly.

use crate::models::ModelInfo;
use crate::types::{Job, PromptReading, Video, VideoPage, VideoQuery, WorkerHealth};
use crate::votes::{Comparison, GroupBy, Leaderboard, Vote, VoteRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure the page shows as a message.
pub type StudioResult<T> = Result<T, String>;

/// A change asked for: done (`Ok`), or refused (`Err`, why: someone else's work, results the
/// gallery does not have).
pub type Change<T> = Result<T, String>;

pub trait Studio: Send + Sync + 'static {
    /// Every model the server can run, the default (built-in) one first.
    fn models(&self) -> Vec<ModelInfo>;
    /// The LoRA files jobs may name, for the models that take LoRAs.
    fn loras(&self) -> Vec<String>;
    fn read_prompt(&self, prompt: &str) -> PromptReading;
    /// A natural random prompt from the model's vocabulary.
    fn surprise(&self, seed: u64) -> String;
    /// Names of the example images offered for image-to-video.
    fn examples(&self) -> Vec<String>;
    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StudioResult<VideoPage>>;
    fn video(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Video>>>;
    /// The versions an edited image was made from, the first first and `id` last.
    fn chain(&self, id: String) -> BoxFuture<'_, StudioResult<Vec<Video>>>;
    /// Marks or unmarks one of the asker's favourites.
    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StudioResult<bool>>;
    /// Deletes a video the asker may change ([`crate::people::Viewer::may_change`]).
    fn delete_video(&self, id: String) -> BoxFuture<'_, StudioResult<Change<bool>>>;
    fn jobs(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<Job>>>;
    fn job(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>>;
    /// Cancels a job the asker may change.
    fn cancel(&self, id: String) -> BoxFuture<'_, StudioResult<Change<Option<Job>>>>;
    /// Queues a decode-failed job the asker may change to decode its kept latents again; a job
    /// whose decode did not fail comes back as it is.
    fn retry_decode(&self, id: String) -> BoxFuture<'_, StudioResult<Change<Option<Job>>>>;
    /// The most recent distinct prompts, newest first.
    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<String>>>;
    fn health(&self) -> BoxFuture<'_, StudioResult<WorkerHealth>>;
    /// Issues a comparison of `candidates`: `Ok(Err(why))` when the gallery refuses them.
    fn open_comparison(&self, candidates: Vec<String>, blind: bool) -> BoxFuture<'_, StudioResult<Change<Comparison>>>;
    /// Records the asker's vote: `Ok(Err(why))` when the gallery refuses it (an unknown result).
    fn vote(&self, request: VoteRequest) -> BoxFuture<'_, StudioResult<Change<Vote>>>;
    fn leaderboard(&self, by: GroupBy) -> BoxFuture<'_, StudioResult<Leaderboard>>;
}

/// The studio as server functions find it in context.
pub type SharedStudio = Arc<dyn Studio>;
