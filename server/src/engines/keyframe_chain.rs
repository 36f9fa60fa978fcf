//! Text to video the Emu Video way, as an engine composed of two: a text-to-image model makes a
//! keyframe from the prompt, then an image-to-video model animates it; one job, both phases in
//! its progress. It answers to the video model's id and animates given images as that model does.
//! Both are engines chosen by task: the chain knows no family.

use super::{Engine, EngineJob, Overrides, Rendered, RunContext};
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
        let chained = [
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
        ];
        // A setting the video model has itself (Wan's negative prompt) is one control for both.
        let own: Vec<String> = info.params.iter().map(|p| p.name.clone()).collect();
        info.params.extend(chained.into_iter().filter(|p| !own.contains(&p.name)));
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
        // The video step as the video model checks it (it rounds frames, asks for what it
        // needs): the keyframe is its picture.
        self.video.validate(params, true)?;
        if task == Mode::TextToVideo
            && let Some(keyframer) = self.keyframer(&params.keyframe_model)
        {
            // The keyframe job as its own model checks it (its bounds, not the widest of all
            // keyframe models').
            keyframer
                .validate(&mut keyframe_params(params, keyframer.info()), false)
                .map_err(|e| format!("the keyframe: {e}"))?;
        }
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
                keep: None,
            };
            let params = keyframe_params(p, keyframer.info());
            // The command line's options are the video model's (its noise file, its decode
            // chunk); the keyframe model only shares the precision and the memory mode.
            let o = Overrides {
                precision: job.overrides.precision,
                low_memory: job.overrides.low_memory,
                ..Overrides::NONE
            };
            keyframer.run(
                EngineJob { params: &params, mode: Mode::TextToImage, input: None, last_image: None, overrides: &o },
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
                keep: None,
            };
            self.video.run(
                EngineJob {
                    params: p,
                    mode: Mode::ImageToVideo,
                    input: Some(&image),
                    last_image: job.last_image,
                    overrides: job.overrides,
                },
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

/// The keyframe job of a text-to-video job: its steps and guidance, at [`keyframe_size`].
fn keyframe_params(p: &JobParams, keyframer: &ModelInfo) -> JobParams {
    let (width, height) = keyframe_size(p.width, p.height, keyframer);
    JobParams {
        model: keyframer.id.clone(),
        steps: p.keyframe_steps,
        guidance: p.keyframe_guidance,
        width,
        height,
        ..p.clone()
    }
}

/// The keyframe's size: the clip's, or, when the clip has more pixels than the keyframe model's
/// native size, the clip's aspect at about that many pixels (in multiples of 8). A text-to-image model
/// far above the size it was trained at repeats its subject; the video model resizes the
/// keyframe to the clip's size.
fn keyframe_size(width: u32, height: u32, keyframer: &ModelInfo) -> (u32, u32) {
    let native = keyframer.native_width as f64 * keyframer.native_height as f64;
    let area = width as f64 * height as f64;
    if area <= native || area == 0.0 {
        return (width, height);
    }
    let scale = (native / area).sqrt();
    let side = |v: u32| ((v as f64 * scale / 8.0).round() as u32 * 8).max(64);
    (side(width), side(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_keep_the_clips_aspect_within_the_keyframe_models_size() {
        let model = |side: u32| ModelInfo {
            native_width: side,
            native_height: side,
            ..crate::engines::builtin_edit::BuiltinEditEngine::new().info().clone()
        };
        // SVD's 1024x576 from a 512-pixel model: 16:9 at about 512x512 pixels.
        assert_eq!(keyframe_size(1024, 576, &model(512)), (680, 384));
        // No bigger than the clip, and unchanged within the model's size.
        assert_eq!(keyframe_size(1024, 576, &model(768)), (1024, 576));
        assert_eq!(keyframe_size(64, 64, &model(512)), (64, 64));
    }
}
