//! Engines: one per model family, each saying what it is ([`ModelInfo`]), checking requests
//! and running jobs, with progress, previews and cancel. The queue runs whatever engine a job
//! names and never knows the family; an engine never knows where its result is stored.
//!
//! Adding a family: its model code in a folder of the model crate, one file here implementing
//! [`Engine`] and declaring its [`family::Family`] (the pipeline classes it runs), and one line
//! in [`registry::FAMILIES`]. What several families share lives here ([`family`],
//! [`metadata`]), so no family's engine imports another's.

pub mod builtin;
pub mod builtin_edit;
pub mod cache;
pub mod family;
pub mod instruct_pix2pix;
pub mod keyframe_chain;
pub mod loras;
pub mod metadata;
pub mod overrides;
pub mod registry;
pub mod segments;
pub mod stable_diffusion;
pub mod stable_video_diffusion;
pub mod wan;
pub mod wan_image_to_video;

use app::models::ModelInfo;
use app::results::ResultMeta;
use app::types::{JobParams, Mode};
use cache::ModelCache;
use image::RgbImage;
use model::device::OpenedDevice;
use model::generate::{GenerateError, Progress};
use model::latents::Latents;

pub use overrides::Overrides;
pub use registry::Registry;

/// A job as an engine sees it: checked parameters (seed resolved), the task and the input image.
pub struct EngineJob<'a> {
    pub params: &'a JobParams,
    pub mode: Mode,
    /// The image to animate (image-to-video), or to edit.
    pub input: Option<&'a RgbImage>,
    /// The clip's last frame (the models that take one: their description says so).
    pub last_image: Option<&'a RgbImage>,
    /// What the command line sets beyond the parameters; [`Overrides::NONE`] for the queue.
    pub overrides: &'a Overrides,
}

/// What an engine runs with: the device, the loaded-model cache, and the hooks.
pub struct RunContext<'a> {
    pub device: &'a OpenedDevice,
    pub models: &'a mut ModelCache,
    /// Called after every step (the step counts over the whole job, all phases).
    pub progress: &'a mut dyn FnMut(Progress),
    /// Checked between steps.
    pub cancelled: &'a dyn Fn() -> bool,
    /// Takes the sampled latents of an engine that can decode again ([`Engine::decode`]), just
    /// before it decodes them: the queue keeps them with the job, so a failed decode costs no
    /// sampling. An error stops the job there. `None` where nobody keeps them (the command line,
    /// the parts of a chain).
    pub keep: Option<KeepHook<'a>>,
}

/// What takes sampled latents before the decode ([`RunContext::keep`]).
pub type KeepHook<'a> = &'a mut dyn FnMut(&Latents) -> Result<(), GenerateError>;

impl RunContext<'_> {
    /// Hands sampled latents to [`RunContext::keep`], before the decode.
    pub fn sampled(&mut self, latents: &Latents) -> Result<(), GenerateError> {
        match self.keep.as_mut() {
            Some(keep) => keep(latents),
            None => Ok(()),
        }
    }
}

/// A finished result, in memory: what the media writer turns into files.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The frames as the files show them; one for a still image.
    pub frames: Vec<RgbImage>,
    pub fps: u32,
    /// A still image (text to image), not a clip.
    pub still: bool,
    /// The image animated, as the model saw it.
    pub input: Option<RgbImage>,
    /// The keyframe a text-to-video clip was made from.
    pub keyframe: Option<RgbImage>,
    /// What a continuation of this clip starts from when it is not simply the last frame (the
    /// motion model's last frame without its weather).
    pub continue_from: Option<RgbImage>,
    pub meta: ResultMeta,
}

/// One model family.
pub trait Engine: Send + Sync {
    /// What the model is, does, and takes.
    fn info(&self) -> &ModelInfo;

    /// Checks a request (the shared outer bounds are already checked) and picks the task:
    /// image-to-video when an image is given, else the first text task. May fill in what the
    /// request leaves to the model (e.g. which model makes a keyframe).
    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        let info = self.info();
        let task = task_of(info, has_image)?;
        info.check(params, task)?;
        if info.reads_prompt || task != Mode::ImageToVideo {
            require_prompt(params)?;
        }
        Ok(task)
    }

    /// The largest side an uploaded image keeps for this model: none for a model that takes no
    /// image, whatever sizes it makes.
    fn max_input_side(&self) -> u32 {
        let info = self.info();
        if !info.tasks.iter().any(|t| matches!(t, Mode::ImageToVideo | Mode::Edit)) {
            return 0;
        }
        info.param("width").map_or(info.native_width, |w| w.max as u32).max(info.native_height)
    }

    /// The steps a job's progress counts, over all its phases.
    fn total_steps(&self, params: &JobParams, _mode: Mode) -> u32 {
        params.steps
    }

    /// Runs a checked job on the generation thread.
    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError>;

    /// Decodes the latents a run of the same job kept, after its decode failed ([`Engine::run`]
    /// of an engine that can hands them to [`RunContext::keep`] before decoding): the decoder
    /// alone, in smaller pieces the higher `retry` is (1 for the first retry). The job has no
    /// input image: only tasks that start from nothing keep latents.
    fn decode(
        &self,
        _job: EngineJob<'_>,
        _latents: &Latents,
        _retry: u32,
        _ctx: &mut RunContext<'_>,
    ) -> Result<Rendered, GenerateError> {
        Err(GenerateError::InvalidRequest(format!("{} keeps no latents to decode again", self.info().id)))
    }
}

/// The task a request asks of a model: image-to-video with an image, else its first text task.
pub fn task_of(info: &ModelInfo, has_image: bool) -> Result<Mode, String> {
    if has_image {
        if info.tasks.contains(&Mode::ImageToVideo) {
            return Ok(Mode::ImageToVideo);
        }
        return Err(format!("{} makes {} from text; it does not take an input image", info.id, noun(info)));
    }
    info.tasks.iter().copied().find(|t| *t != Mode::ImageToVideo).ok_or_else(|| {
        format!(
            "{} animates images: give an image, or install a text-to-image model too (it makes the keyframe)",
            info.id
        )
    })
}

fn noun(info: &ModelInfo) -> &'static str {
    if info.tasks == [Mode::TextToImage] { "images" } else { "videos" }
}

fn require_prompt(params: &JobParams) -> Result<(), String> {
    if params.prompt.trim().is_empty() {
        return Err("the prompt is empty: describe what to show, or give an image to animate".into());
    }
    Ok(())
}

/// What every editor asks of a request before its own checks: the task "edit" and an image.
pub fn check_edit_request(id: &str, params: &JobParams, has_image: bool) -> Result<(), String> {
    if params.task != app::params::EDIT_TASK {
        return Err(format!("{id} edits images: send the task \"edit\" with an image and an instruction"));
    }
    if !has_image {
        return Err("choose an image to edit: upload one, or edit a stored image".into());
    }
    Ok(())
}

/// A load failure as a job sees it.
pub fn load_error(model: &str, e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Load(format!("{model}: {e}"))
}
