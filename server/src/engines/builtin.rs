//! The built-in toy-world model as an engine: text to video and image to video, on the CPU.

use super::{EngineJob, Rendered, RunContext};
use app::models::{ChipGroup, ModelInfo, ParamSpec};
use app::results::{Resolution, ResultMeta, Timings};
use app::types::{JobParams, Mode};
use model::builtin::net::NetConfig;
use model::builtin::pipeline::{
    BUILTIN_MODEL_ID, BuiltinModel, GeneratedClip, GenerationRequest, MAX_DISPLAY_SIZE, MAX_STEPS,
};
use model::generate::GenerateError;
use model::latents::Latents;
use std::time::Instant;

pub struct BuiltinEngine {
    info: ModelInfo,
    config: NetConfig,
}

impl BuiltinEngine {
    /// The engine of a built-in network of shape `config` (the weights are loaded by the worker
    /// with the device, and kept in the model cache under [`BUILTIN_MODEL_ID`]).
    pub fn new(config: NetConfig) -> Self {
        Self { info: info(&config), config }
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }
}

fn info(config: &NetConfig) -> ModelInfo {
    let frames = config.frames as u32;
    let t2v = [Mode::TextToVideo];
    ModelInfo {
        id: BUILTIN_MODEL_ID.into(),
        family: "builtin".into(),
        description: format!(
            "The built-in models: text to {frames} frames of {s}×{s} pixels of a toy world (simple shapes, settings, weather, camera moves); an uploaded picture is animated at its own resolution by moving its pixels.",
            s = config.size
        ),
        tasks: vec![Mode::TextToVideo, Mode::ImageToVideo],
        params: vec![
            ParamSpec::integer("frames", "Frames", 2, frames, 1, frames.min(16), "frames in the clip"),
            ParamSpec::integer("fps", "Frames per second", 1, 60, 1, 8, "playback speed of the files"),
            ParamSpec::integer(
                "steps",
                "Steps",
                1,
                MAX_STEPS as u32,
                1,
                24,
                "sampling steps: more is slower and cleaner",
            )
            .for_tasks(&t2v),
            ParamSpec::number("guidance", "Guidance", 0.0, 20.0, 0.5, 3.0, "how strongly the clip follows the prompt")
                .for_tasks(&t2v),
            ParamSpec::number("motion", "Motion strength", 0.0, 2.0, 0.1, 1.0, "1 is normal speed, 0.5 slow, 1.5 fast"),
        ],
        native_width: config.size as u32,
        native_height: config.size as u32,
        native_frames: frames,
        memory_mib: (BuiltinModel::shipped_weights_bytes() as u64).div_ceil(1 << 20),
        chips: model::builtin::vocab::categories()
            .into_iter()
            .map(|c| ChipGroup { name: c.name, phrases: c.phrases })
            .collect(),
        reads_prompt: true,
        input_note: "The picture itself moves, at its own resolution (up to 1024 pixels on the longest side): \
             say how (\"camera pans left\", \"zoom in\", \"snow\", \"the red ball moving right\")."
            .into(),
        takes_loras: false,
    }
}

/// The model request a job's parameters make (frames upscaled to 256 pixels for the files).
pub fn request_of(params: &JobParams) -> GenerationRequest {
    GenerationRequest {
        prompt: params.prompt.clone(),
        frames: Some(params.frames as usize),
        fps: params.fps,
        steps: params.steps as usize,
        guidance: params.guidance,
        image_guidance: params.image_guidance,
        seed: params.seed.unwrap_or(0),
        motion: params.motion,
        ..GenerationRequest::default()
    }
}

/// The metadata of a built-in clip.
pub fn result_meta(
    params: &JobParams,
    clip: &model::builtin::pipeline::GeneratedClip,
    req: &GenerationRequest,
    device: &str,
) -> ResultMeta {
    let frames = clip.frames.len() as u32;
    let mut details = serde_json::Map::new();
    details.insert("understood".into(), serde_json::to_value(&clip.understood).unwrap_or_default());
    if clip.native_input.is_some() {
        details.insert("motion_model".into(), model::builtin::motion::animate::MOTION_MODEL_ID.into());
    }
    ResultMeta {
        mode: if clip.native_input.is_some() { Mode::ImageToVideo } else { Mode::TextToVideo },
        model: BUILTIN_MODEL_ID.into(),
        family: "builtin".into(),
        prompt: params.prompt.clone(),
        params: JobParams { frames, seed: Some(req.seed), model: BUILTIN_MODEL_ID.into(), ..params.clone() },
        seed: req.seed,
        frames,
        fps: clip.fps,
        duration_s: frames as f64 / clip.fps.max(1) as f64,
        resolution: Resolution {
            native: [clip.native_size; 2],
            display: clip.frames.first().map_or([req.display_size; 2], |f| [f.width(), f.height()]),
            upscale_filter: if clip.native_input.is_some() { "motion-warp".into() } else { "catmull-rom".into() },
        },
        device: device.into(),
        precision: "F32".into(),
        timings: Timings { sampling_s: clip.sampling_seconds, ..Timings::default() },
        details,
        ..super::metadata::made_now()
    }
}

impl super::Engine for BuiltinEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        let task = super::task_of(&self.info, has_image)?;
        self.info.check(params, task)?;
        model::builtin::pipeline::validate(&self.config, &request_of(params), has_image).map_err(|e| e.to_string())?;
        Ok(task)
    }

    fn max_input_side(&self) -> u32 {
        MAX_DISPLAY_SIZE
    }

    /// Text-to-video counts sampling steps; image-to-video counts frames (one motion pass,
    /// then each frame is warped).
    fn total_steps(&self, params: &JobParams, mode: Mode) -> u32 {
        match mode {
            Mode::ImageToVideo => params.frames,
            _ => params.steps,
        }
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let model = self.model(ctx)?;
        let req = self.request(&job);
        let clip = {
            let _s = tracing::info_span!("sampling", steps = req.steps).entered();
            match job.input {
                Some(_) => model.generate(&req, job.input, ctx.progress, ctx.cancelled)?,
                None => {
                    let latents = model.sample(&req, ctx.progress, ctx.cancelled)?;
                    ctx.sampled(&latents)?;
                    model.decode(&req, &latents)?
                }
            }
        };
        Ok(self.rendered(&job, clip, &req, started, ctx))
    }

    fn decode(
        &self,
        job: EngineJob<'_>,
        latents: &Latents,
        _retry: u32,
        ctx: &mut RunContext<'_>,
    ) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let model = self.model(ctx)?;
        let req = self.request(&job);
        let clip = model.decode(&req, latents)?;
        Ok(self.rendered(&job, clip, &req, started, ctx))
    }
}

impl BuiltinEngine {
    fn model(&self, ctx: &mut RunContext<'_>) -> Result<std::rc::Rc<BuiltinModel>, GenerateError> {
        ctx.models.get_or_load::<BuiltinModel, _>(BUILTIN_MODEL_ID, self.info.memory_mib, || {
            Err(GenerateError::Load("the built-in model is not loaded".into()))
        })
    }

    /// The model request of a job, with the command line's size.
    fn request(&self, job: &EngineJob<'_>) -> GenerationRequest {
        let mut req = request_of(job.params);
        match (job.overrides.size, job.input) {
            (Some(side), Some(_)) => req.image_long_side = Some(side),
            (Some(side), None) => req.display_size = side,
            (None, _) => {}
        }
        req
    }

    fn rendered(
        &self,
        job: &EngineJob<'_>,
        clip: GeneratedClip,
        req: &GenerationRequest,
        started: Instant,
        ctx: &RunContext<'_>,
    ) -> Rendered {
        let mut meta = result_meta(job.params, &clip, req, &ctx.device.description);
        meta.input_image = job.input.map(|_| "upload".into());
        meta.timings.total_s = started.elapsed().as_secs_f64();
        Rendered {
            frames: clip.frames,
            fps: clip.fps,
            still: false,
            input: clip.native_input,
            keyframe: None,
            continue_from: clip.continue_from,
            meta,
        }
    }
}
