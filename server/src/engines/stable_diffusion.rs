//! Stable Diffusion-family text-to-image models (diffusers folders) as an engine: they make
//! images, and the keyframes of text-to-video chains.

use super::family::Family;
use super::{EngineJob, Overrides, Rendered, RunContext};
use app::models::{ModelInfo, ParamSpec};
use app::results::{Resolution, ResultMeta, Timings};
use app::types::{JobParams, Mode};
use model::diffusers::stable_diffusion::{GeneratedImage, ImageRequest, StableDiffusion};
use model::generate::GenerateError;
use model::latents::Latents;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Largest side of a generated image (the pipeline takes at most 2048x2048 pixels; above
/// 1024x1024 the VAE decodes in tiles, so the decode's memory stays that of one tile).
pub const MAX_SIDE: u32 = 2048;
/// Most sampling steps.
pub const MAX_STEPS: u32 = 150;

/// The family: the pipelines it runs, and its engine for a folder.
pub const FAMILY: Family = Family {
    name: "stable-diffusion",
    pipelines: &[StableDiffusion::PIPELINE_CLASS],
    tasks: &[Mode::TextToImage],
    build: |name, path| Arc::new(StableDiffusionEngine::new(name, path)),
};

pub struct StableDiffusionEngine {
    info: ModelInfo,
    path: PathBuf,
}

impl StableDiffusionEngine {
    pub fn new(name: &str, path: &Path) -> Self {
        let info = ModelInfo {
            id: name.into(),
            family: FAMILY.name.into(),
            description: format!(
                "A Stable Diffusion text-to-image model (diffusers folder {}): makes keyframes to animate.",
                path.display()
            ),
            tasks: FAMILY.tasks.to_vec(),
            params: vec![
                ParamSpec::text(
                    "negative",
                    "Negative prompt",
                    app::limits::MAX_PROMPT_CHARS,
                    "what the image should not show",
                ),
                ParamSpec::integer("width", "Width", 64, MAX_SIDE, 8, 512, "width in pixels"),
                ParamSpec::integer("height", "Height", 64, MAX_SIDE, 8, 512, "height in pixels"),
                ParamSpec::integer("steps", "Steps", 1, MAX_STEPS, 1, 25, "sampling steps: more is slower and cleaner"),
                ParamSpec::number(
                    "guidance",
                    "Guidance",
                    0.0,
                    30.0,
                    0.5,
                    7.5,
                    "how strongly the image follows the prompt (1 or less: off)",
                ),
            ],
            native_width: 512,
            native_height: 512,
            native_frames: 1,
            memory_mib: super::family::weights_mib(path),
            chips: Vec::new(),
            reads_prompt: false,
            input_note: String::new(),
            takes_loras: true,
        };
        Self { info, path: path.to_path_buf() }
    }

    /// Makes the image of `params` (its prompt, negative prompt, size, steps, guidance and
    /// seed), reporting steps through `ctx`; the sampled latents go to [`RunContext::keep`]
    /// before the decode.
    fn make(&self, params: &JobParams, o: &Overrides, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let sd = self.load(o, ctx)?;
        let load_s = started.elapsed().as_secs_f64();
        let req = self.request(params, o, &sd)?;
        let warmup_s =
            o.warm_up(|| sd.generate(&ImageRequest { steps: 1, ..req.clone() }, &mut |_| {}, ctx.cancelled))?;
        let latents = {
            let _s = tracing::info_span!("sampling", steps = req.steps).entered();
            sd.sample(&req, ctx.progress, ctx.cancelled)?
        };
        ctx.sampled(&latents)?;
        let image = sd.decode_kept(&latents, 0)?;
        let mut rendered = self.rendered(params, o, &sd, &req, &image, ctx);
        rendered.meta.timings.load_s = load_s;
        rendered.meta.timings.warmup_s = warmup_s;
        rendered.meta.timings.total_s = started.elapsed().as_secs_f64();
        Ok(rendered)
    }

    /// The model, with the LoRAs `o` names merged in (cached per combination).
    fn load(&self, o: &Overrides, ctx: &mut RunContext<'_>) -> Result<std::rc::Rc<StableDiffusion>, GenerateError> {
        let dtype = o.precision.resolve(ctx.device);
        let device = ctx.device.device.clone();
        let key = format!("{}{}", self.info.id, o.loras_key());
        ctx.models.get_or_load(&key, self.info.memory_mib, || {
            StableDiffusion::load_with_loras(&self.path, &device, dtype, &o.loras)
                .map_err(|e| super::load_error(&self.info.id, e))
        })
    }

    fn request(&self, params: &JobParams, o: &Overrides, sd: &StableDiffusion) -> Result<ImageRequest, GenerateError> {
        let (width, height) = (params.width as usize, params.height as usize);
        let f = sd.scale_factor();
        Ok(ImageRequest {
            prompt: params.prompt.clone(),
            negative: params.negative.clone(),
            steps: params.steps as usize,
            guidance: params.guidance,
            width,
            height,
            seed: params.seed.unwrap_or(0),
            noise: o.noise_tensor(&[1, sd.vae.config.latent_channels, height / f, width / f])?,
            scheduler: o.scheduler,
        })
    }

    fn rendered(
        &self,
        params: &JobParams,
        o: &Overrides,
        sd: &StableDiffusion,
        req: &ImageRequest,
        image: &GeneratedImage,
        ctx: &RunContext<'_>,
    ) -> Rendered {
        let mut meta = image_meta(&self.info.id, sd, req, image, &ctx.device.description);
        meta.params = JobParams { model: self.info.id.clone(), ..params.clone() };
        o.record(&mut meta);
        Rendered {
            frames: vec![image.to_rgb8()],
            fps: 1,
            still: true,
            input: None,
            keyframe: None,
            continue_from: None,
            meta,
        }
    }
}

/// The metadata of one generated image.
pub fn image_meta(
    model: &str,
    sd: &StableDiffusion,
    req: &ImageRequest,
    image: &model::diffusers::stable_diffusion::GeneratedImage,
    device: &str,
) -> ResultMeta {
    let size = [req.width as u32, req.height as u32];
    let mut details = serde_json::Map::new();
    details.insert("model_path".into(), sd.root.display().to_string().into());
    details.insert("scheduler".into(), format!("{:?}", req.scheduler.unwrap_or(sd.scheduler.kind())).into());
    ResultMeta {
        mode: Mode::TextToImage,
        model: model.into(),
        family: FAMILY.name.into(),
        prompt: req.prompt.clone(),
        params: JobParams {
            prompt: req.prompt.clone(),
            model: model.into(),
            negative: req.negative.clone(),
            steps: req.steps as u32,
            guidance: req.guidance,
            width: size[0],
            height: size[1],
            seed: Some(req.seed),
            ..JobParams::default()
        },
        seed: req.seed,
        frames: 1,
        fps: 1,
        resolution: Resolution { native: size, display: size, upscale_filter: "none".into() },
        device: device.into(),
        precision: format!("{:?}", sd.dtype),
        timings: Timings { sampling_s: image.sampling_seconds, decode_s: image.decode_seconds, ..Timings::default() },
        details,
        ..super::metadata::made_now()
    }
}

impl super::Engine for StableDiffusionEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        self.make(job.params, job.overrides, ctx)
    }

    /// The VAE alone, in tiles that halve with every retry ([`StableDiffusion::decode_kept`]).
    fn decode(
        &self,
        job: EngineJob<'_>,
        latents: &Latents,
        retry: u32,
        ctx: &mut RunContext<'_>,
    ) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        // The VAE alone, which LoRAs leave as it is: the model without them (the LoRAs are
        // still recorded with the result).
        let sd = self.load(&Overrides { loras: Vec::new(), ..job.overrides.clone() }, ctx)?;
        let req = self.request(job.params, job.overrides, &sd)?;
        let image = sd.decode_kept(latents, retry)?;
        let mut rendered = self.rendered(job.params, job.overrides, &sd, &req, &image, ctx);
        rendered.meta.timings.total_s = started.elapsed().as_secs_f64();
        Ok(rendered)
    }
}
