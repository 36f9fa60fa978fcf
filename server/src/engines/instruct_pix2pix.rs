//! Instruction editors (InstructPix2Pix, MagicBrush: diffusers folders) as an engine: they
//! change an image as an instruction says ("add snow"), keeping the rest.

use super::family::Family;
use super::{EngineJob, Rendered, RunContext};
use crate::media::input::image_sha256;
use app::models::{ModelInfo, ParamSpec};
use app::results::{Resolution, ResultMeta, Timings};
use app::types::{JobParams, Mode};
use model::diffusers::stable_diffusion::instruct_pix2pix::fit;
use model::diffusers::stable_diffusion::{EditRequest, GeneratedImage, InstructPix2Pix};
use model::generate::GenerateError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The family: the pipelines it runs, and its engine for a folder.
pub const FAMILY: Family = Family {
    name: "instruct-pix2pix",
    pipelines: &[InstructPix2Pix::PIPELINE_CLASS],
    tasks: &[Mode::Edit],
    build: |name, path| Arc::new(InstructPix2PixEngine::new(name, path)),
};

/// The metadata of one edit: every parameter, and what the source was (`source_sha256`: the
/// hash of the source image's pixels as the editor read them).
pub fn edit_meta(
    model: &str,
    editor: &InstructPix2Pix,
    req: &EditRequest,
    image: &GeneratedImage,
    source_sha256: &str,
    device: &str,
) -> ResultMeta {
    let size = [image.width as u32, image.height as u32];
    let mut details = serde_json::Map::new();
    details.insert("model_path".into(), editor.sd.root.display().to_string().into());
    details.insert("scheduler".into(), format!("{:?}", req.scheduler.unwrap_or(editor.sd.scheduler.kind())).into());
    details.insert("source_sha256".into(), source_sha256.into());
    ResultMeta {
        mode: Mode::Edit,
        model: model.into(),
        family: FAMILY.name.into(),
        prompt: req.prompt.clone(),
        params: JobParams {
            prompt: req.prompt.clone(),
            model: model.into(),
            negative: req.negative.clone(),
            steps: req.steps as u32,
            guidance: req.guidance,
            image_guidance: req.image_guidance,
            width: size[0],
            height: size[1],
            seed: Some(req.seed),
            task: app::params::EDIT_TASK.into(),
            ..JobParams::default()
        },
        seed: req.seed,
        frames: 1,
        fps: 1,
        resolution: Resolution { native: size, display: size, upscale_filter: "none".into() },
        input_image: Some(source_sha256.into()),
        device: device.into(),
        precision: format!("{:?}", editor.sd.dtype),
        timings: Timings { sampling_s: image.sampling_seconds, decode_s: image.decode_seconds, ..Timings::default() },
        details,
        ..super::metadata::made_now()
    }
}

/// Most sampling steps of an edit.
pub const MAX_STEPS: u32 = 150;

/// An installed instruction editor.
pub struct InstructPix2PixEngine {
    info: ModelInfo,
    path: PathBuf,
}

impl InstructPix2PixEngine {
    pub fn new(name: &str, path: &Path) -> Self {
        let info = ModelInfo {
            id: name.into(),
            family: FAMILY.name.into(),
            description: format!(
                "An instruction editor (InstructPix2Pix family, diffusers folder {}): changes an image as you say (\"add snow\").",
                path.display()
            ),
            tasks: FAMILY.tasks.to_vec(),
            params: vec![
                ParamSpec::text(
                    "negative",
                    "Negative prompt",
                    app::limits::MAX_PROMPT_CHARS,
                    "what the edit should not show",
                ),
                ParamSpec::integer("steps", "Steps", 1, MAX_STEPS, 1, 20, "sampling steps: more is slower and cleaner"),
                ParamSpec::number(
                    "guidance",
                    "Guidance",
                    1.0,
                    20.0,
                    0.5,
                    7.5,
                    "how strongly the edit follows the instruction",
                ),
                ParamSpec::number(
                    "image_guidance",
                    "Image guidance",
                    1.0,
                    5.0,
                    0.1,
                    1.5,
                    "how closely the edit keeps the image",
                ),
            ],
            native_width: 512,
            native_height: 512,
            native_frames: 1,
            memory_mib: super::family::weights_mib(path),
            chips: Vec::new(),
            reads_prompt: false,
            input_note: "The image keeps its aspect, its longer side at the model's size (512).".into(),
            takes_loras: false,
        };
        Self { info, path: path.to_path_buf() }
    }
}

impl super::Engine for InstructPix2PixEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        super::check_edit_request(&self.info.id, params, has_image)?;
        self.info.check(params, Mode::Edit)?;
        if params.prompt.trim().is_empty() {
            return Err("the instruction is empty: say what to change (\"add snow\")".into());
        }
        Ok(Mode::Edit)
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let source = job.input.ok_or_else(|| GenerateError::InvalidRequest("an edit needs an image".into()))?;
        let o = job.overrides;
        let dtype = o.precision.resolve(ctx.device);
        let device = ctx.device.device.clone();
        let editor = ctx.models.get_or_load(&self.info.id, self.info.memory_mib, || {
            InstructPix2Pix::load(&self.path, &device, dtype).map_err(|e| super::load_error(&self.info.id, e))
        })?;
        let load_s = started.elapsed().as_secs_f64();
        let p = job.params;
        let (width, height) = match o.edit_size {
            Some((w, h)) => (w as usize, h as usize),
            None => editor.size_for(source.width() as usize, source.height() as usize),
        };
        let (f, c) = (editor.sd.scale_factor(), editor.sd.vae.config.latent_channels);
        let latent = [1, c, height / f, width / f];
        let steps = [&[p.steps as usize][..], &latent[..]].concat();
        let [noise, step_noise] =
            <[_; 2]>::try_from(o.noise_tensors(&[("noise", &latent, true), ("step_noise", &steps, false)])?)
                .expect("two tensors asked for");
        let req = EditRequest {
            prompt: p.prompt.clone(),
            negative: p.negative.clone(),
            steps: p.steps as usize,
            guidance: p.guidance,
            image_guidance: p.image_guidance,
            seed: p.seed.unwrap_or(0),
            noise,
            // One draw per step, in order.
            step_noise: step_noise.map(|all| all.chunks(latent.iter().product()).map(<[f32]>::to_vec).collect()),
            scheduler: o.scheduler,
        };
        let input = fit(source, width, height);
        let image = {
            let _s = tracing::info_span!("editing", steps = req.steps).entered();
            editor.generate(&input, &req, ctx.progress, ctx.cancelled)?
        };
        let mut meta = edit_meta(&self.info.id, &editor, &req, &image, &image_sha256(source), &ctx.device.description);
        // The job's settings, with the size the edit came out at.
        meta.params = JobParams {
            model: self.info.id.clone(),
            width: meta.params.width,
            height: meta.params.height,
            ..p.clone()
        };
        o.record(&mut meta);
        meta.timings.load_s = load_s;
        meta.timings.total_s = started.elapsed().as_secs_f64();
        Ok(Rendered {
            frames: vec![image.to_rgb8()],
            fps: 1,
            still: true,
            input: Some(input),
            keyframe: None,
            continue_from: None,
            meta,
        })
    }
}
