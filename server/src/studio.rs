//! The server's side of the pages' [`Studio`]: the job queue, the store and the built-in
//! model's vocabulary, given to the server functions as context.

use crate::jobs::Jobs;
use app::backend::{BoxFuture, Studio, StudioResult};
use app::types::{ChipGroup, Job, Mode, ModelInfo, PromptReading, Video, VideoPage, VideoQuery, WorkerHealth};
use model::builtin::prompt::{Prompt, parse};
use model::rng::Rng;
use model::builtin::world::Scene;
use std::path::PathBuf;

pub struct ServerStudio {
    pub jobs: Jobs,
    /// Example images for image-to-video (`public/examples`).
    pub examples_dir: PathBuf,
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

pub fn model_info(jobs: &Jobs) -> ModelInfo {
    let config = jobs.config();
    ModelInfo {
        id: jobs.model_id().to_string(),
        description: format!(
            "The built-in toy-world model: {} frames of {}×{} pixels, trained on simple shapes, settings, weather and camera moves.",
            config.frames, config.size, config.size
        ),
        chips: model::builtin::vocab::categories()
            .into_iter()
            .map(|c| ChipGroup { name: c.name, phrases: c.phrases })
            .collect(),
        frames: config.frames as u32,
        size: config.size as u32,
        max_steps: model::builtin::pipeline::MAX_STEPS as u32,
        modes: vec![Mode::TextToVideo, Mode::ImageToVideo],
    }
}

pub fn reading(prompt: &Prompt) -> PromptReading {
    let understood = prompt.understood();
    PromptReading {
        understood: understood.split(", ").filter(|s| !s.is_empty()).map(String::from).collect(),
        ignored: prompt.ignored.clone(),
    }
}

impl Studio for ServerStudio {
    fn model_info(&self) -> ModelInfo {
        model_info(&self.jobs)
    }

    fn models(&self) -> Vec<ModelInfo> {
        let mut all = vec![model_info(&self.jobs)];
        let keyframes = self.jobs.image_models().iter().any(|m| !m.video);
        all.extend(self.jobs.image_models().iter().map(|m| {
            if m.video {
                ModelInfo {
                    id: m.name.clone(),
                    description: format!(
                        "Stable Video Diffusion (diffusers folder {}): animates an image{}.",
                        m.path.display(),
                        if keyframes { "; from text it first makes a keyframe with a text-to-image model" } else { "" }
                    ),
                    chips: Vec::new(),
                    frames: crate::image_to_video::MAX_VIDEO_FRAMES,
                    size: crate::image_to_video::MAX_VIDEO_SIDE,
                    max_steps: crate::image_to_video::MAX_VIDEO_STEPS,
                    modes: if keyframes { vec![Mode::TextToVideo, Mode::ImageToVideo] } else { vec![Mode::ImageToVideo] },
                }
            } else {
                ModelInfo {
                    id: m.name.clone(),
                    description: format!(
                        "A Stable Diffusion text-to-image model (diffusers folder {}): makes keyframes to animate.",
                        m.path.display()
                    ),
                    chips: Vec::new(),
                    frames: 1,
                    size: 512,
                    max_steps: crate::jobs::MAX_IMAGE_STEPS,
                    modes: vec![Mode::TextToImage],
                }
            }
        }));
        all
    }

    fn read_prompt(&self, prompt: &str) -> PromptReading {
        reading(&parse(prompt))
    }

    fn surprise(&self, seed: u64) -> String {
        let mut rng = Rng::new(model::rng::mix(seed ^ crate::jobs::now_ms() as u64));
        let scene = Scene::sample(&mut rng, &Prompt::default(), 0.0);
        scene.caption(&mut rng)
    }

    fn examples(&self) -> Vec<String> {
        list_examples(&self.examples_dir)
    }

    fn videos(&self, query: VideoQuery) -> BoxFuture<'_, StudioResult<VideoPage>> {
        Box::pin(async move { self.jobs.store().videos(query).await.map_err(|e| e.to_string()) })
    }

    fn video(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Video>>> {
        Box::pin(async move { self.jobs.store().video(id).await.map_err(|e| e.to_string()) })
    }

    fn set_favorite(&self, id: String, favorite: bool) -> BoxFuture<'_, StudioResult<bool>> {
        Box::pin(async move { self.jobs.store().set_favorite(id, favorite).await.map_err(|e| e.to_string()) })
    }

    fn delete_video(&self, id: String) -> BoxFuture<'_, StudioResult<bool>> {
        Box::pin(async move { self.jobs.delete_video(&id).await.map_err(|e| e.to_string()) })
    }

    fn jobs(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<Job>>> {
        Box::pin(async move { self.jobs.store().jobs(limit).await.map_err(|e| e.to_string()) })
    }

    fn job(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>> {
        Box::pin(async move { self.jobs.store().job(id).await.map_err(|e| e.to_string()) })
    }

    fn cancel(&self, id: String) -> BoxFuture<'_, StudioResult<Option<Job>>> {
        Box::pin(async move { self.jobs.cancel(&id).await.map_err(|e| e.to_string()) })
    }

    fn recent_prompts(&self, limit: u32) -> BoxFuture<'_, StudioResult<Vec<String>>> {
        Box::pin(async move { self.jobs.store().recent_prompts(limit).await.map_err(|e| e.to_string()) })
    }

    fn health(&self) -> BoxFuture<'_, StudioResult<WorkerHealth>> {
        Box::pin(async move { self.jobs.health().await.map_err(|e| e.to_string()) })
    }
}
