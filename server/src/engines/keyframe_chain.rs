//! Text to video the Emu Video way, as an engine composed of two: a text-to-image model makes a
//! keyframe from the prompt, then an image-to-video model animates it; one job, both phases in
//! its progress. It answers to the video model's id and animates given images as that model does.
//! Both are engines chosen by task: the chain knows no family.

use super::{Engine, EngineJob, Rendered, RunContext};
use app::models::{ModelInfo, ParamSpec};
use app::types::{JobParams, Mode};
use model::generate::{GenerateError, Progress};
use std::sync::Arc;

pub struct KeyframeChain {
    info: ModelInfo,
    /// An engine that animates images.
    video: Arc<dyn Engine>,
    /// The engines that make images from text, the default first.
    keyframers: Vec<Arc<dyn Engine>>,
}

impl KeyframeChain {
    /// `keyframers` must not be empty.
    pub fn new(video: Arc<dyn Engine>, keyframers: Vec<Arc<dyn Engine>>) -> Self {
        let t2v = [Mode::TextToVideo];
        let mut info = video.info().clone();
        info.tasks = vec![Mode::TextToVideo, Mode::ImageToVideo];
        info.description.push_str(" From text it first makes a keyframe with a text-to-image model.");
        // As many keyframe steps as the keyframe model that takes the most.
        let max_steps =
            keyframers.iter().filter_map(|k| k.info().param("steps")).map(|s| s.max as u32).max().unwrap_or(1);
        let names: Vec<String> = keyframers.iter().map(|k| k.info().id.clone()).collect();
        info.params.extend([
            ParamSpec::text(
                "negative",
                "Negative prompt",
                app::limits::MAX_PROMPT_CHARS,
                "what the keyframe should not show",
            )
            .for_tasks(&t2v),
            ParamSpec::choice(
                "keyframe_model",
                "Keyframe model",
                names,
                "the text-to-image model that makes the keyframe",
            )
            .for_tasks(&t2v),
            ParamSpec::integer(
                "keyframe_steps",
                "Keyframe steps",
                1,
                max_steps,
                1,
                25,
                "sampling steps of the keyframe",
            )
            .for_tasks(&t2v),
            ParamSpec::number(
                "keyframe_guidance",
                "Keyframe guidance",
                0.0,
                30.0,
                0.5,
                7.5,
                "how strongly the keyframe follows the prompt",
            )
            .for_tasks(&t2v),
        ]);
        info.memory_mib += keyframers.iter().map(|k| k.info().memory_mib).max().unwrap_or(0);
        Self { info, video, keyframers }
    }

    fn keyframer(&self, name: &str) -> Option<&Arc<dyn Engine>> {
        self.keyframers.iter().find(|k| k.info().id == name)
    }
}

impl super::Engine for KeyframeChain {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        let task = super::task_of(&self.info, has_image)?;
        if task == Mode::TextToVideo {
            if params.prompt.trim().is_empty() {
                return Err("give an image to animate, or a prompt to make a keyframe from".into());
            }
            if params.keyframe_model.is_empty() {
                params.keyframe_model = self.keyframers[0].info().id.clone();
            }
        }
        self.info.check(params, task)?;
        Ok(task)
    }

    fn total_steps(&self, params: &JobParams, mode: Mode) -> u32 {
        if mode == Mode::TextToVideo { params.keyframe_steps + params.steps } else { params.steps }
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        if job.mode != Mode::TextToVideo {
            return self.video.run(job, ctx);
        }
        let p = job.params;
        let Some(keyframer) = self.keyframer(&p.keyframe_model) else {
            return Err(GenerateError::InvalidRequest(format!(
                "the keyframe model {} is not installed",
                p.keyframe_model
            )));
        };
        // Phase 1: the keyframe; the job's total counts both phases from the start.
        let total = (p.keyframe_steps + p.steps) as usize;
        let keyframe = {
            let outer = &mut *ctx.progress;
            let mut phase = |pr: Progress| outer(Progress { total, ..pr });
            let mut inner = RunContext {
                device: ctx.device,
                models: &mut *ctx.models,
                progress: &mut phase,
                cancelled: ctx.cancelled,
            };
            let params = JobParams {
                model: keyframer.info().id.clone(),
                steps: p.keyframe_steps,
                guidance: p.keyframe_guidance,
                ..p.clone()
            };
            keyframer.run(
                EngineJob { params: &params, mode: Mode::TextToImage, input: None, overrides: job.overrides },
                &mut inner,
            )?
        };
        // Phase 2: the video from it.
        let image = keyframe.frames[0].clone();
        let offset = p.keyframe_steps as usize;
        let mut video = {
            let outer = &mut *ctx.progress;
            let mut phase = |pr: Progress| outer(Progress { step: offset + pr.step, total: offset + pr.total, ..pr });
            let mut inner = RunContext {
                device: ctx.device,
                models: &mut *ctx.models,
                progress: &mut phase,
                cancelled: ctx.cancelled,
            };
            self.video.run(
                EngineJob { params: p, mode: Mode::ImageToVideo, input: Some(&image), overrides: job.overrides },
                &mut inner,
            )?
        };
        video.meta.mode = Mode::TextToVideo;
        video.meta.input_image = None;
        video.meta.params.keyframe_model = keyframer.info().id.clone();
        video.meta.timings.total_s += keyframe.meta.timings.total_s;
        video.meta.keyframe = Some(Box::new(keyframe.meta));
        video.keyframe = Some(image);
        Ok(video)
    }
}
