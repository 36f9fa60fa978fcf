//! The server's side of the pages' [`Studio`]: the job queue, the store and the built-in
//! model's vocabulary, given to the server functions as context.

use super::state::WebState;
use app::backend::{BoxFuture, Change, Studio, StudioResult};
use app::models::ModelInfo;
use app::people::Viewer;
use app::types::{Job, PromptReading, Video, VideoPage, VideoQuery, WorkerHealth};
use app::votes::{Comparison, GroupBy, Leaderboard, Vote, VoteRequest};
use model::builtin::prompt::{Prompt, parse};
use model::builtin::world::Scene;
use model::rng::Rng;

pub struct ServerStudio {
    pub web: WebState,
}

/// What the security guard put in the extensions of the page's request, read in the server
/// function's context (the default when there is none).
fn from_request<T: Clone + Default + Send + Sync + 'static>() -> T {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<T>().cloned())
        .unwrap_or_default()
}

/// A comparison or vote as the pages see it: refused (results the gallery does not have) or
/// failed.
fn refusable<T>(result: Result<T, crate::compare::VoteError>) -> StudioResult<Change<T>> {
    match result {
        Ok(done) => Ok(Ok(done)),
        Err(crate::compare::VoteError::Invalid(why)) => Ok(Err(why)),
        Err(crate::compare::VoteError::Store(e)) => Err(e.to_string()),
    }
}

/// A cancel or delete as the pages see it: refused (someone else's) or failed.
fn change<T>(result: Result<T, crate::queue::ChangeError>) -> StudioResult<Change<T>> {
    match result {
        Ok(done) => Ok(Ok(done)),
        Err(crate::queue::ChangeError::Forbidden(why) | crate::queue::ChangeError::Conflict(why)) => Ok(Err(why)),
        Err(crate::queue::ChangeError::Store(e)) => Err(e.to_string()),
    }
}

/// Image files in `dir`, sorted by name.
pub fn list_examples(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    let lower = n.to_lowercase();
                    [".png", ".jpg", ".jpeg", ".webp"].iter().any(|ext| lower.ends_with(ext))
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn reading(prompt: &Prompt) -> PromptReading {
    let understood = prompt.understood();
    PromptReading {
        understood: understood.split(", ").filter(|s| !s.is_empty()).map(String::from).collect(),
        ignored: prompt.ignored.clone(),
    }
}

impl ServerStudio {
    /// Who votes with the page's request ([`super::voters::Voters::voter`]); a new voter's
    /// cookie goes out with the response.
    fn voter(&self) -> String {
        let parts = leptos::prelude::use_context::<axum::http::request::Parts>()
            .unwrap_or_else(|| axum::http::Request::new(()).into_parts().0);
        let (voter, cookie) = self.web.voters.voter_of(&parts);
        if let Some(cookie) = cookie
            && let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
        {
            response.insert_header(axum::http::header::SET_COOKIE, cookie);
        }
        voter
    }
}

impl Studio for ServerStudio {
    fn models(&self) -> Vec<ModelInfo> {
        self.web.registry.infos()
    }

    fn loras(&self) -> Vec<String> {
        self.web.registry.loras.list()
    }

    fn read_prompt(&self, prompt: &str) -> PromptReading {
        reading(&parse(prompt))
    }

    fn surprise(&self, seed: u64) -> String {
        let mut rng = Rng::new(model::rng::mix(seed ^ crate::ids::now_ms() as u64));
        let scene = Scene::sample(&mut rng, &Prompt::default(), 0.0);
        scene.caption(&mut rng)
    }

    fn examples(&self) -> Vec<String> {
        list_examples(&self.web.examples_dir)
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StudioResult<VideoPage>> {
        // Who asks (the page's request, as the guard marked it), for the limit on new texts.
        let client = from_request::<crate::web::security::Client>().0;
        let query = VideoQuery { favorites_of: from_request::<Viewer>().name, ..query };
        Box::pin(async move {
            crate::visual::search(self.web.store.as_ref(), self.web.visual.as_ref(), query, &client)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn video(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Video>>> {
        let person = from_request::<Viewer>().name;
        Box::pin(async move {
            let store = self.web.store.as_ref();
            let mut video = store.video(id).await.map_err(|e| e.to_string())?;
            if let Some(video) = &mut video {
                crate::storage::mark_favorites(store, &person, std::slice::from_mut(video))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(video)
        })
    }

    fn chain(&self, id: String) -> BoxFuture<'_, StudioResult<Vec<Video>>> {
        let person = from_request::<Viewer>().name;
        Box::pin(async move {
            let mut chain = self.web.jobs.chain(&id).await.map_err(|e| e.to_string())?;
            crate::storage::mark_favorites(self.web.store.as_ref(), &person, &mut chain)
                .await
                .map_err(|e| e.to_string())?;
            Ok(chain)
        })
    }

    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StudioResult<bool>> {
        let person = from_request::<Viewer>().name;
        Box::pin(async move { self.web.store.set_favorite(person, id, favorite).await.map_err(|e| e.to_string()) })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StudioResult<Change<bool>>> {
        let viewer = from_request::<Viewer>();
        Box::pin(async move { change(self.web.jobs.delete_video(&id, &viewer).await) })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<Job>>> {
        Box::pin(async move { self.web.store.jobs(limit).await.map_err(|e| e.to_string()) })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>> {
        Box::pin(async move { self.web.store.job(id).await.map_err(|e| e.to_string()) })
    }

    fn cancel(&self, id: String) -> BoxFuture<'_, StudioResult<Change<Option<Job>>>> {
        let viewer = from_request::<Viewer>();
        Box::pin(async move { change(self.web.jobs.cancel(&id, &viewer).await) })
    }

    fn retry_decode(&self, id: String) -> BoxFuture<'_, StudioResult<Change<Option<Job>>>> {
        let viewer = from_request::<Viewer>();
        Box::pin(async move {
            match self.web.jobs.retry_decode(&id, &viewer).await {
                // Its decode did not fail (any more: asked twice, or retried elsewhere): the
                // page shows the job as it is now, as a cancel of a finished job does.
                Err(crate::queue::ChangeError::Conflict(_)) => {
                    self.web.store.job(id).await.map(Ok).map_err(|e| e.to_string())
                }
                other => change(other),
            }
        })
    }

    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<String>>> {
        Box::pin(async move { self.web.store.recent_prompts(limit).await.map_err(|e| e.to_string()) })
    }

    fn health(&self) -> BoxFuture<'_, StudioResult<WorkerHealth>> {
        Box::pin(async move { self.web.jobs.health().await.map_err(|e| e.to_string()) })
    }

    fn open_comparison(&self, candidates: Vec<String>, blind: bool) -> BoxFuture<'_, StudioResult<Change<Comparison>>> {
        // The voter's cookie comes with the page, before any vote: votes sent at once (both
        // questions, two tabs) are one voter's.
        self.voter();
        Box::pin(async move { refusable(crate::compare::open(self.web.store.as_ref(), candidates, blind).await) })
    }

    fn vote(&self, request: VoteRequest) -> BoxFuture<'_, StudioResult<Change<Vote>>> {
        let voter = self.voter();
        Box::pin(async move { refusable(crate::compare::cast(self.web.store.as_ref(), request, &voter).await) })
    }

    fn leaderboard(&self, by: GroupBy) -> BoxFuture<'_, StudioResult<Leaderboard>> {
        Box::pin(async move { crate::compare::standings(self.web.store.as_ref(), by).await.map_err(|e| e.to_string()) })
    }
}
