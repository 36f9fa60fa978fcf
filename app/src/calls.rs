//! Server functions: everything the pages ask the server for, besides submitting a job (a
//! multipart POST to `/api/jobs`, which also works without JavaScript) and live progress
//! (server-sent events from `/api/jobs/events`).
//!
//! Bad input is not an error here: unknown ids come back as `None` or `false`, so the page can
//! say so; `ServerFnError` is kept for the server failing.

use crate::models::ModelInfo;
use crate::types::{Job, PromptReading, Video, VideoPage, VideoQuery, WorkerHealth};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn studio() -> Result<crate::backend::SharedStudio, ServerFnError> {
    use_context::<crate::backend::SharedStudio>().ok_or_else(|| ServerFnError::new("the server has no studio"))
}

#[cfg(feature = "ssr")]
fn fail(e: String) -> ServerFnError {
    ServerFnError::new(e)
}

/// Input the server refuses: answered with 400 and the message.
#[cfg(feature = "ssr")]
fn refuse(e: String) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::BAD_REQUEST);
    }
    ServerFnError::new(e)
}

/// Someone else's work: answered with 403 and the message.
#[cfg(feature = "ssr")]
fn forbid(e: String) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    ServerFnError::new(e)
}

#[server]
pub async fn list_models() -> Result<Vec<ModelInfo>, ServerFnError> {
    Ok(studio()?.models())
}

#[server]
pub async fn list_loras() -> Result<Vec<String>, ServerFnError> {
    Ok(studio()?.loras())
}

#[server]
pub async fn read_prompt(prompt: String) -> Result<PromptReading, ServerFnError> {
    crate::limits::check_text("the prompt", &prompt, crate::limits::MAX_PROMPT_CHARS).map_err(refuse)?;
    Ok(studio()?.read_prompt(&prompt))
}

#[server]
pub async fn surprise_prompt(seed: u64) -> Result<String, ServerFnError> {
    Ok(studio()?.surprise(seed))
}

#[server]
pub async fn example_images() -> Result<Vec<String>, ServerFnError> {
    Ok(studio()?.examples())
}

#[server(input = leptos::server_fn::codec::Json)]
pub async fn find_videos(query: VideoQuery) -> Result<VideoPage, ServerFnError> {
    crate::limits::check_text("the search", &query.q, crate::limits::MAX_SEARCH_CHARS).map_err(refuse)?;
    if let Some(model) = &query.model {
        crate::limits::check_text("the model name", model, crate::limits::MAX_NAME_CHARS).map_err(refuse)?;
    }
    if query.before.as_deref().is_some_and(|b| !crate::types::is_valid_id(b))
        || query.group.as_deref().is_some_and(|g| !crate::types::is_valid_id(g))
    {
        return Ok(VideoPage { videos: Vec::new(), next: None, visual: Vec::new() });
    }
    studio()?.videos(query).await.map_err(fail)
}

#[server]
pub async fn video_by_id(id: String) -> Result<Option<Video>, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(None);
    }
    studio()?.video(id).await.map_err(fail)
}

/// The versions of an edited image, the original's first edit first and `id` last.
#[server]
pub async fn video_chain(id: String) -> Result<Vec<Video>, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(Vec::new());
    }
    studio()?.chain(id).await.map_err(fail)
}

#[server]
pub async fn set_favorite(id: String, favorite: bool) -> Result<bool, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(false);
    }
    studio()?.set_favorite(id, favorite).await.map_err(fail)
}

/// Deletes a video, then (for a form posted without JavaScript) goes to the gallery.
#[server]
pub async fn delete_video(id: String) -> Result<bool, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(false);
    }
    let deleted = studio()?.delete_video(id).await.map_err(fail)?.map_err(forbid)?;
    leptos_axum::redirect("/gallery");
    Ok(deleted)
}

#[server]
pub async fn recent_jobs() -> Result<Vec<Job>, ServerFnError> {
    studio()?.jobs(100).await.map_err(fail)
}

/// The prompts the Create page offers again (only what it shows).
#[server]
pub async fn recent_prompts() -> Result<Vec<String>, ServerFnError> {
    studio()?.recent_prompts(6).await.map_err(fail)
}

#[server]
pub async fn queue_health() -> Result<WorkerHealth, ServerFnError> {
    studio()?.health().await.map_err(fail)
}

#[server]
pub async fn job_by_id(id: String) -> Result<Option<Job>, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(None);
    }
    studio()?.job(id).await.map_err(fail)
}

#[server]
pub async fn cancel_job(id: String) -> Result<Option<Job>, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(None);
    }
    studio()?.cancel(id).await.map_err(fail)?.map_err(forbid)
}

#[server]
pub async fn retry_decode(id: String) -> Result<Option<Job>, ServerFnError> {
    if !crate::types::is_valid_id(&id) {
        return Ok(None);
    }
    studio()?.retry_decode(id).await.map_err(fail)?.map_err(forbid)
}

/// The results a comparison shows, in the order asked (unknown ids and still images are left
/// out), or the clips of a variants group (the first four), and the comparison the server
/// issues for them: votes name it, and it records whether the page was `blind`.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn compare_videos(
    ids: Vec<String>,
    group: String,
    blind: bool,
) -> Result<crate::votes::Compared, ServerFnError> {
    let studio = studio()?;
    let mut videos = Vec::new();
    if crate::types::is_valid_id(&group) {
        let query =
            VideoQuery { group: Some(group), limit: crate::votes::MAX_CANDIDATES as u32, ..VideoQuery::default() };
        videos = studio.videos(query).await.map_err(fail)?.videos;
        videos.reverse();
    } else {
        for id in ids.into_iter().filter(|id| crate::types::is_valid_id(id)).take(crate::votes::MAX_CANDIDATES) {
            if let Some(v) = studio.video(id).await.map_err(fail)? {
                videos.push(v);
            }
        }
    }
    videos.retain(|v| !v.is_image());
    let mut comparison = None;
    if videos.len() >= crate::votes::MIN_CANDIDATES {
        let candidates = videos.iter().map(|v| v.id.clone()).collect();
        comparison = Some(studio.open_comparison(candidates, blind).await.map_err(fail)?.map_err(refuse)?);
    }
    Ok(crate::votes::Compared { comparison, videos })
}

/// Records a vote on a comparison (for the asker: a voter's new vote on the same comparison
/// and axis replaces the earlier one); a vote the gallery refuses (an unknown result, say) is
/// a 400 with the reason.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn cast_vote(request: crate::votes::VoteRequest) -> Result<crate::votes::Vote, ServerFnError> {
    request.check().map_err(refuse)?;
    studio()?.vote(request).await.map_err(fail)?.map_err(refuse)
}

#[server]
pub async fn leaderboard(by: String) -> Result<crate::votes::Leaderboard, ServerFnError> {
    let by = crate::votes::GroupBy::parse(&by).unwrap_or_default();
    studio()?.leaderboard(by).await.map_err(fail)
}
