//! Wan text-to-video models (diffusers `WanPipeline` folders) as an engine: the prompt goes to
//! the model directly, no keyframe needed. Its controls and defaults are the model's own
//! (diffusers' `WanPipeline` defaults: 832x480, 81 frames at 16 fps, 50 steps, guidance 5).

use super::family::Family;
use super::overrides::{GpuBlocks, TextEncoderPlacement};
use super::{EngineJob, Overrides, Rendered, RunContext};
use app::models::{ChipGroup, ModelInfo, ParamSpec};
use app::results::{Resolution, ResultMeta};
use app::types::{JobParams, Mode};
use model::device::{DeviceChoice, OpenedDevice};
use model::diffusers::DType;
use model::diffusers::common::video::{GeneratedVideo, MemoryMode};
use model::diffusers::wan::pipeline::{Wan, WanOptions, WanRequest};
use model::generate::GenerateError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub const MAX_WIDTH: u32 = 1280;
pub const MAX_HEIGHT: u32 = 720;
pub const MAX_FRAMES: u32 = 129;
pub const MAX_STEPS: u32 = 100;
/// The frame rate Wan 2.1's clips are made for.
pub const FPS: u32 = 16;

/// The family: the pipelines it runs, and its engine for a folder.
pub const FAMILY: Family = Family {
    name: "wan",
    pipelines: &[Wan::PIPELINE_CLASS],
    tasks: &[Mode::TextToVideo],
    build: |name, path| Arc::new(WanEngine::new(name, path)),
};

pub struct WanEngine {
    info: ModelInfo,
    path: PathBuf,
}

/// Whether the folder's `model_index.json` has a `boundary_ratio`: two experts (Wan 2.2 A14B).
/// Read again, and checked, when the model loads.
pub(super) fn two_experts(path: &Path) -> bool {
    folder_json(path, "model_index.json").is_some_and(|v| v.get("boundary_ratio").is_some_and(|b| b.is_number()))
}

/// A JSON file of the model folder (`file` below it), if it reads; what the engines look at
/// before the model loads (which checks every config and says what is wrong).
pub(super) fn folder_json(path: &Path, file: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path.join(file)).ok()?).ok()
}

/// The controls every Wan engine has alike: the negative prompt, the frames and the files' frame
/// rate.
pub(super) fn clip_params() -> [ParamSpec; 3] {
    [
        ParamSpec::text("negative", "Negative prompt", app::limits::MAX_PROMPT_CHARS, "what the clip should not show"),
        ParamSpec::integer(
            "frames",
            "Frames",
            1,
            MAX_FRAMES,
            4,
            81,
            "frames in the clip (4k + 1: 81 is 5 s at 16 fps)",
        ),
        ParamSpec::integer("fps", "Frames per second", 1, 60, 1, FPS, "the files' frame rate (the model makes 16)"),
    ]
}

/// How the model holds its weights while it runs, as the Create page offers it (the command
/// line's `--low-memory` and `--gpu-blocks` say the same and more).
pub(super) fn memory_param() -> ParamSpec {
    ParamSpec::choice(
        "memory",
        "Memory",
        vec![RESIDENT.into(), ONE_AT_A_TIME.into(), BLOCK_SWAP.into()],
        "resident: everything stays on the GPU (fastest); one component at a time: the text encoder, each expert and the VAE loaded for their phase; block swap: as many transformer blocks on the GPU as its free memory holds, the others streamed from host memory",
    )
}

const RESIDENT: &str = "resident";
const ONE_AT_A_TIME: &str = "one component at a time";
const BLOCK_SWAP: &str = "block swap";

/// The second expert's guidance, for a two-expert model's controls.
pub(super) fn guidance_2_param() -> ParamSpec {
    ParamSpec::number(
        "guidance_2",
        "Guidance, low noise",
        0.0,
        20.0,
        0.5,
        0.0,
        "the guidance of the second expert, which makes the last steps (0: the same as Guidance)",
    )
}

/// The second expert's guidance a job asks of `wan`: none (the first's) for a model with one
/// transformer, or when the job leaves it at 0.
pub(super) fn guidance_2_of(wan: &Wan, params: &JobParams) -> Option<f32> {
    (wan.boundary.is_some() && params.guidance_2 > 0.0).then_some(params.guidance_2)
}

impl WanEngine {
    pub fn new(name: &str, path: &Path) -> Self {
        let mut info = ModelInfo {
            id: name.into(),
            family: FAMILY.name.into(),
            description: format!(
                "Wan text-to-video (diffusers folder {}): makes a clip from the prompt, with motion as the text describes it.",
                path.display()
            ),
            tasks: FAMILY.tasks.to_vec(),
            params: [
                clip_params().to_vec(),
                vec![
                    ParamSpec::integer("width", "Width", 16, MAX_WIDTH, 16, 832, "width in pixels, in multiples of 16"),
                    ParamSpec::integer(
                        "height",
                        "Height",
                        16,
                        MAX_HEIGHT,
                        16,
                        480,
                        "height in pixels, in multiples of 16",
                    ),
                    ParamSpec::integer(
                        "steps",
                        "Steps",
                        1,
                        MAX_STEPS,
                        1,
                        50,
                        "sampling steps: more is slower and cleaner",
                    ),
                    ParamSpec::number(
                        "guidance",
                        "Guidance",
                        0.0,
                        20.0,
                        0.5,
                        5.0,
                        "how strongly the clip follows the prompt (1 or less: off)",
                    ),
                ],
            ]
            .concat(),
            native_width: 832,
            native_height: 480,
            native_frames: 81,
            memory_mib: super::family::weights_mib(path),
            chips: chips(),
            // The text goes to UMT5 as written: no word-by-word reading to show.
            reads_prompt: false,
            input_note: String::new(),
            takes_loras: true,
        };
        if two_experts(path) {
            info.params.push(guidance_2_param());
        }
        info.params.push(memory_param());
        Self { info, path: path.to_path_buf() }
    }

    fn make(&self, params: &JobParams, o: &Overrides, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let wan = load(&self.info, &self.path, params, o, ctx)?;
        let load_s = started.elapsed().as_secs_f64();
        let mut req = request_of(params);
        req.guidance_2 = guidance_2_of(&wan, params);
        let (video, warmup_s) = generate(&wan, &mut req, o, ctx)?;
        let fps = params.fps.max(1);
        let mut meta = video_meta(&self.info.id, &wan, &req, &video, fps, &ctx.device.description, load_s);
        meta.timings.warmup_s = warmup_s;
        o.record(&mut meta);
        meta.params = JobParams {
            model: self.info.id.clone(),
            seed: Some(req.seed),
            guidance_2: req.guidance_2.unwrap_or_default(),
            ..params.clone()
        };
        meta.timings.total_s = started.elapsed().as_secs_f64();
        Ok(Rendered {
            frames: video.to_rgb8(),
            fps,
            still: false,
            input: None,
            keyframe: None,
            continue_from: None,
            meta,
        })
    }
}

/// The Wan model in `path` (either pipeline), from the cache or loaded with the overrides'
/// precision, memory mode, text-encoder placement and LoRAs (a combination of LoRAs is cached
/// as a model of its own).
pub(super) fn load(
    info: &ModelInfo,
    path: &Path,
    params: &JobParams,
    o: &Overrides,
    ctx: &mut RunContext<'_>,
) -> Result<std::rc::Rc<Wan>, GenerateError> {
    let dtype = o.precision.resolve(ctx.device);
    let low = o.low_memory || params.memory == ONE_AT_A_TIME;
    let memory = if low { MemoryMode::Low } else { MemoryMode::Resident };
    let opened = ctx.device.clone();
    let options = match o.text_encoder {
        TextEncoderPlacement::Auto => WanOptions::auto(&opened, memory),
        // UMT5 in f16 overflows; bf16 keeps its range.
        TextEncoderPlacement::Same => {
            WanOptions::on(&opened.device, if dtype == DType::F16 { DType::BF16 } else { dtype }, memory)
        }
        TextEncoderPlacement::Cpu => WanOptions::on(
            &model::device::open(DeviceChoice::Cpu)
                .map_err(|e| GenerateError::Backend(format!("the CPU device: {e}")))?
                .device,
            DType::F32,
            memory,
        ),
    };
    let mut options = options.with_loras(o.loras.clone());
    let swap = o.gpu_blocks.or((params.memory == BLOCK_SWAP).then_some(GpuBlocks::Auto));
    options.gpu_blocks = gpu_blocks(path, swap, &opened, memory);
    let swap = options.gpu_blocks.map_or(String::new(), |n| format!("@{n}blocks"));
    let key = format!("{}{}{swap}@{}", info.id, o.loras_key(), memory.name());
    ctx.models.get_or_load(&key, info.memory_mib, || {
        Wan::load(path, &opened.device, dtype, options).map_err(|e| super::load_error(&info.id, e))
    })
}

/// The blocks each expert keeps on the device for `o.gpu_blocks`. `auto` gives the blocks 60%
/// of the free memory (the rest is for activations, the VAE and the text) shared by the
/// experts held at once, a block's size taken from the transformer's files; all where the free
/// memory is unknown (wgpu) or the blocks fit.
fn gpu_blocks(path: &Path, swap: Option<GpuBlocks>, opened: &OpenedDevice, memory: MemoryMode) -> Option<usize> {
    match swap? {
        GpuBlocks::Count(n) => Some(n),
        GpuBlocks::Auto => {
            let free = model::free_memory::free_bytes(opened.choice, &opened.device)?;
            let config = folder_json(path, "transformer/config.json")?;
            let layers = config.get("num_layers")?.as_u64()?.max(1);
            let block_bytes = (super::family::weights_mib(&path.join("transformer")) << 20) / layers;
            let experts = if two_experts(path) && memory == MemoryMode::Resident { 2 } else { 1 };
            let fit = (free / 10 * 6 / experts / block_bytes.max(1)).min(layers);
            (fit < layers).then_some(fit as usize)
        }
    }
}

/// Runs `req` on `wan` as the overrides ask: its noise from their file, after a one-step run
/// when they warm up (whose seconds come back with the clip).
pub(super) fn generate(
    wan: &Wan,
    req: &mut WanRequest,
    o: &Overrides,
    ctx: &mut RunContext<'_>,
) -> Result<(GeneratedVideo, f64), GenerateError> {
    if o.noise.is_some() {
        let [c, f, h, w] = wan.latent_shape(req);
        req.noise = o.noise_tensor(&[1, c, f, h, w])?;
    }
    let warmup_s = o.warm_up(|| wan.generate(&WanRequest { steps: 1, ..req.clone() }, &mut |_| {}, ctx.cancelled))?;
    let video = wan.generate(req, ctx.progress, ctx.cancelled)?;
    Ok((video, warmup_s))
}

/// Parts of a prompt to click: Wan follows free text, so these are the camera, motion, light
/// and style phrases its prompts commonly carry.
pub(super) fn chips() -> Vec<ChipGroup> {
    let group = |name: &str, phrases: &[&str]| ChipGroup {
        name: name.into(),
        phrases: phrases.iter().map(|p| p.to_string()).collect(),
    };
    vec![
        group(
            "camera",
            &[
                "camera pans left",
                "camera pans right",
                "slow zoom in",
                "aerial drone shot",
                "tracking shot",
                "close-up",
            ],
        ),
        group("motion", &["slow motion", "timelapse", "walks toward the camera", "spins around"]),
        group("light", &["golden hour", "neon lights at night", "soft morning light"]),
        group("style", &["cinematic", "photorealistic", "anime style", "watercolor painting"]),
    ]
}

/// The Wan request a job makes.
pub fn request_of(p: &JobParams) -> WanRequest {
    let mut req = WanRequest::new(p.prompt.clone());
    req.negative_prompt = p.negative.clone();
    req.width = p.width as usize;
    req.height = p.height as usize;
    req.frames = p.frames as usize;
    req.steps = p.steps as usize;
    req.guidance = p.guidance;
    req.seed = p.seed.unwrap_or(0);
    req
}

/// The metadata of one generated clip, played at `fps`.
pub fn video_meta(
    model: &str,
    wan: &Wan,
    req: &WanRequest,
    video: &GeneratedVideo,
    fps: u32,
    device: &str,
    load_s: f64,
) -> ResultMeta {
    let frames = video.frames.len() as u32;
    let size = [req.width as u32, req.height as u32];
    let mut details = serde_json::Map::new();
    details.insert("model_path".into(), wan.root().display().to_string().into());
    details.insert("negative_prompt".into(), req.negative_prompt.clone().into());
    details.insert("max_sequence_length".into(), req.max_sequence_length.into());
    details.insert("text_encoder_device".into(), format!("{:?}", wan.options.text_device).into());
    details.insert("text_encoder_precision".into(), format!("{:?}", wan.options.text_dtype).into());
    details.insert("memory_mode".into(), wan.options.memory.name().into());
    if let Some(n) = wan.options.gpu_blocks {
        details.insert("gpu_blocks".into(), n.into());
    }
    if let Some(boundary) = wan.boundary {
        details.insert("boundary_timestep".into(), boundary.into());
        details.insert("guidance_2".into(), req.guidance_2.unwrap_or(req.guidance).into());
    }
    ResultMeta {
        mode: if req.image.is_some() { Mode::ImageToVideo } else { Mode::TextToVideo },
        model: model.into(),
        family: FAMILY.name.into(),
        prompt: req.prompt.clone(),
        params: JobParams {
            prompt: req.prompt.clone(),
            negative: req.negative_prompt.clone(),
            model: model.into(),
            frames,
            fps,
            steps: req.steps as u32,
            guidance: req.guidance,
            guidance_2: req.guidance_2.unwrap_or_default(),
            last_image: req.last_image.is_some(),
            width: size[0],
            height: size[1],
            seed: Some(req.seed),
            ..JobParams::default()
        },
        seed: req.seed,
        frames,
        fps,
        duration_s: frames as f64 / fps.max(1) as f64,
        resolution: Resolution { native: size, display: size, upscale_filter: "none".into() },
        device: device.into(),
        precision: format!("{:?}", wan.dtype),
        timings: super::metadata::clip_timings(video, load_s),
        peak_host_memory_mib: crate::memory::peak_rss_mib(),
        details,
        ..super::metadata::made_now()
    }
}

impl super::Engine for WanEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// As diffusers' `WanPipeline` does, a frame count is rounded down to the form 4k + 1 and
    /// the size down to multiples of 16 (a request with the shared defaults, 16 frames at
    /// 512x512, becomes 17 frames); then the model's bounds apply.
    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        let info = self.info();
        let task = super::task_of(info, has_image)?;
        params.frames = params.frames / 4 * 4 + 1;
        params.width = (params.width / 16 * 16).max(16);
        params.height = (params.height / 16 * 16).max(16);
        info.check(params, task)?;
        super::require_prompt(params)?;
        Ok(task)
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        if job.input.is_some() {
            return Err(GenerateError::InvalidRequest(format!(
                "{} makes clips from text; it does not take an input image",
                self.info.id
            )));
        }
        self.make(job.params, job.overrides, ctx)
    }
}
