//! The server's side of the pages' [`Studio`]: the job queue, the store and the built-in
//! model's vocabulary, given to the server functions as context.

use super::state::WebState;
use app::backend::{BoxFuture, Studio, StudioResult};
use app::models::ModelInfo;
use app::types::{Job, PromptReading, Video, VideoPage, VideoQuery, WorkerHealth};
use app::votes::{GroupBy, Leaderboard, Vote, VoteRequest};
use model::builtin::prompt::{Prompt, parse};
use model::builtin::world::Scene;
use model::rng::Rng;

pub struct ServerStudio {
    pub web: WebState,
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

impl Studio for ServerStudio {
    fn models(&self) -> Vec<ModelInfo> {
        self.web.registry.infos()
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
        let client = leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::web::security::Client>().cloned())
            .unwrap_or_default()
            .0;
        Box::pin(async move {
            crate::visual::search(self.web.store.as_ref(), self.web.visual.as_ref(), query, &client)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn video(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Video>>> {
        Box::pin(async move { self.web.store.video(id).await.map_err(|e| e.to_string()) })
    }

    fn chain(&self, id: String) -> BoxFuture<'_, StudioResult<Vec<Video>>> {
        Box::pin(async move { self.web.jobs.chain(&id).await.map_err(|e| e.to_string()) })
    }

    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StudioResult<bool>> {
        Box::pin(async move { self.web.store.set_favorite(id, favorite).await.map_err(|e| e.to_string()) })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StudioResult<bool>> {
        Box::pin(async move { self.web.jobs.delete_video(&id).await.map_err(|e| e.to_string()) })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<Job>>> {
        Box::pin(async move { self.web.store.jobs(limit).await.map_err(|e| e.to_string()) })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>> {
        Box::pin(async move { self.web.store.job(id).await.map_err(|e| e.to_string()) })
    }

    fn cancel(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>> {
        Box::pin(async move { self.web.jobs.cancel(&id).await.map_err(|e| e.to_string()) })
    }

    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<String>>> {
        Box::pin(async move { self.web.store.recent_prompts(limit).await.map_err(|e| e.to_string()) })
    }

    fn health(&self) -> BoxFuture<'_, StudioResult<WorkerHealth>> {
        Box::pin(async move { self.web.jobs.health().await.map_err(|e| e.to_string()) })
    }

    fn vote(&self, request: VoteRequest) -> BoxFuture<'_, StudioResult<Result<Vote, String>>> {
        Box::pin(async move {
            match crate::compare::cast(self.web.store.as_ref(), request).await {
                Ok(vote) => Ok(Ok(vote)),
                Err(crate::compare::VoteError::Invalid(why)) => Ok(Err(why)),
                Err(crate::compare::VoteError::Store(e)) => Err(e.to_string()),
            }
        })
    }

    fn leaderboard(&self, by: GroupBy) -> BoxFuture<'_, StudioResult<Leaderboard>> {
        Box::pin(async move { crate::compare::standings(self.web.store.as_ref(), by).await.map_err(|e| e.to_string()) })
    }
}
