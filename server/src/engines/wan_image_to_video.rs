//! Wan image-to-video models (diffusers `WanImageToVideoPipeline` folders: Wan 2.2 I2V A14B with
//! two experts, Wan 2.1 I2V 14B and FLF2V with a CLIP image encoder) as an engine: the picture
//! is the clip's first frame, a second picture its last (optional for Wan 2.2, required by the
//! first-last-frame model, not taken by Wan 2.1's others), and the prompt says what happens
//! between. Its defaults are those Wan 2.2 I2V A14B is published with (832x480, 81 frames at 16
//! fps, 40 steps, guidance 3.5), for every folder of the pipeline; the low-noise expert's
//! guidance is offered only where the folder has two.

use super::family::Family;
use super::wan::{
    MAX_STEPS, MAX_WIDTH, chips, clip_params, folder_json, generate, guidance_2_of, guidance_2_param, load,
    memory_param, request_of, two_experts, video_meta,
};
use super::{EngineJob, Rendered, RunContext};
use app::models::{LAST_IMAGE, ModelInfo, ParamSpec};
use app::types::{JobParams, Mode};
use image::RgbImage;
use model::diffusers::wan::pipeline::{Wan, WanRequest};
use model::generate::GenerateError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The family: the pipeline it runs, and its engine for a folder.
pub const FAMILY: Family = Family {
    name: "wan-image-to-video",
    pipelines: &[Wan::IMAGE_PIPELINE_CLASS],
    tasks: &[Mode::ImageToVideo],
    build: |name, path| Arc::new(WanImageToVideoEngine::new(name, path)),
};

/// Sizes are whole latent patches: 8 pixels per latent, 2 latents per patch.
const SIZE_UNIT: u32 = 16;

pub struct WanImageToVideoEngine {
    info: ModelInfo,
    path: PathBuf,
    /// The first-last-frame model: every clip needs a last frame.
    needs_last_image: bool,
}

/// What a folder's configs say about its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastFrame {
    Optional,
    Required,
    /// Wan 2.1 image to video without the first-last-frame position embeddings.
    None,
}

impl WanImageToVideoEngine {
    pub fn new(name: &str, path: &Path) -> Self {
        // Two experts when model_index.json has a boundary; the transformer's image settings
        // decide the last frame (all read again, and checked, at load).
        let two_experts = two_experts(path);
        let transformer = folder_json(path, "transformer/config.json").unwrap_or_default();
        let set = |key: &str| transformer.get(key).is_some_and(|v| !v.is_null());
        let last_frame = match (set("image_dim"), set("pos_embed_seq_len")) {
            (false, _) => LastFrame::Optional,
            (true, true) => LastFrame::Required,
            (true, false) => LastFrame::None,
        };
        let mut params = Vec::new();
        let last_help = match last_frame {
            LastFrame::Optional => Some("optional: a picture the clip ends on (first-and-last-frame animation)"),
            LastFrame::Required => Some("the picture the clip ends on (this first-last-frame model needs one)"),
            LastFrame::None => None,
        };
        if let Some(help) = last_help {
            // The last frame ends a clip animated from a picture: not one from a keyframe.
            params.push(ParamSpec::image(LAST_IMAGE, "Last frame", help).for_tasks(&[Mode::ImageToVideo]));
        }
        params.extend(clip_params());
        params.extend([
            ParamSpec::integer(
                "width",
                "Width",
                SIZE_UNIT,
                MAX_WIDTH,
                SIZE_UNIT,
                832,
                "about this many pixels wide: the clip keeps the picture's shape at width x height pixels",
            ),
            ParamSpec::integer(
                "height",
                "Height",
                SIZE_UNIT,
                // Portrait pictures make portrait clips: either side may be the long one.
                MAX_WIDTH,
                SIZE_UNIT,
                480,
                "about this many pixels high: the clip keeps the picture's shape at width x height pixels",
            ),
            ParamSpec::integer(
                "steps",
                "Steps",
                1,
                MAX_STEPS,
                1,
                40,
                "sampling steps: more is slower and cleaner (4 with a Lightning / lightx2v LoRA)",
            ),
            ParamSpec::number(
                "guidance",
                "Guidance",
                0.0,
                20.0,
                0.5,
                3.5,
                "how strongly the clip follows the prompt (1 or less: off, as with a distillation LoRA)",
            ),
        ]);
        if two_experts {
            params.push(guidance_2_param());
        }
        params.push(memory_param());
        let info = ModelInfo {
            id: name.into(),
            family: FAMILY.name.into(),
            description: format!(
                "Wan image-to-video (diffusers folder {}): animates a picture as the prompt describes{}.{}",
                path.display(),
                match last_frame {
                    LastFrame::Optional => ", optionally ending on a second picture",
                    LastFrame::Required => ", ending on a second picture",
                    LastFrame::None => "",
                },
                if two_experts {
                    " Two experts (Wan 2.2 A14B): one for the noisy first steps, one for the details."
                } else {
                    ""
                }
            ),
            tasks: FAMILY.tasks.to_vec(),
            params,
            native_width: 832,
            native_height: 480,
            native_frames: 81,
            memory_mib: super::family::weights_mib(path),
            chips: chips(),
            reads_prompt: false,
            input_note: "The clip starts on this picture, at its shape.".into(),
            takes_loras: true,
        };
        Self { info, path: path.to_path_buf(), needs_last_image: last_frame == LastFrame::Required }
    }
}

/// The clip's size for a picture: its shape at about `width` x `height` pixels, each side a
/// multiple of 16 within the model's bounds (as diffusers' Wan image-to-video example sizes it,
/// so a portrait photo makes a portrait clip instead of being stretched).
pub fn fitted_size(width: u32, height: u32, picture: &RgbImage) -> (u32, u32) {
    let area = (width * height) as f64;
    let aspect = picture.height().max(1) as f64 / picture.width().max(1) as f64;
    let round = |v: f64, max: u32| ((v / SIZE_UNIT as f64).round() as u32 * SIZE_UNIT).clamp(SIZE_UNIT, max);
    (round((area / aspect).sqrt(), MAX_WIDTH), round((area * aspect).sqrt(), MAX_WIDTH))
}

impl super::Engine for WanImageToVideoEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// As diffusers' pipeline does, a frame count is rounded down to the form 4k + 1 and the
    /// size down to multiples of 16; then the model's bounds apply.
    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        let task = super::task_of(&self.info, has_image)?;
        params.frames = params.frames / 4 * 4 + 1;
        params.width = (params.width / SIZE_UNIT * SIZE_UNIT).max(SIZE_UNIT);
        params.height = (params.height / SIZE_UNIT * SIZE_UNIT).max(SIZE_UNIT);
        self.info.check(params, task)?;
        if self.needs_last_image && task == Mode::ImageToVideo && !params.last_image {
            return Err(format!("{} ends every clip on a given picture: add a last frame", self.info.id));
        }
        if params.last_image && params.frames < 5 {
            return Err(format!("a clip with a last frame has at least 5 frames, not {}", params.frames));
        }
        Ok(task)
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let Some(picture) = job.input else {
            return Err(GenerateError::InvalidRequest(format!("{} animates a picture: give one", self.info.id)));
        };
        let o = job.overrides;
        let wan = load(&self.info, &self.path, job.params, o, ctx)?;
        let load_s = started.elapsed().as_secs_f64();
        let (width, height) = fitted_size(job.params.width, job.params.height, picture);
        let mut req = WanRequest {
            width: width as usize,
            height: height as usize,
            image: Some(picture.clone()),
            last_image: job.last_image.cloned(),
            guidance_2: guidance_2_of(&wan, job.params),
            ..request_of(job.params)
        };
        let (video, warmup_s) = generate(&wan, &mut req, o, ctx)?;
        let fps = job.params.fps.max(1);
        let mut meta = video_meta(&self.info.id, &wan, &req, &video, fps, &ctx.device.description, load_s);
        meta.timings.warmup_s = warmup_s;
        meta.family = FAMILY.name.into();
        meta.input_image = Some("upload".into());
        o.record(&mut meta);
        meta.params = JobParams {
            model: self.info.id.clone(),
            seed: Some(req.seed),
            width,
            height,
            // What ran: no second guidance for one transformer.
            guidance_2: req.guidance_2.unwrap_or_default(),
            last_image: req.last_image.is_some(),
            ..job.params.clone()
        };
        meta.timings.total_s = started.elapsed().as_secs_f64();
        // The picture as the model saw it: at the clip's size.
        let input = model::diffusers::common::pil_resize::resize_lanczos(picture, width, height);
        Ok(Rendered {
            frames: video.to_rgb8(),
            fps,
            still: false,
            input: Some(input),
            keyframe: None,
            continue_from: None,
            meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fitted_size;
    use image::RgbImage;

    #[test]
    fn the_clip_keeps_the_pictures_shape_at_the_requested_area() {
        let landscape = RgbImage::new(1600, 900);
        assert_eq!(fitted_size(832, 480, &landscape), (848, 480));
        let portrait = RgbImage::new(900, 1600);
        assert_eq!(fitted_size(832, 480, &portrait), (480, 848));
        let same = RgbImage::new(832, 480);
        assert_eq!(fitted_size(832, 480, &same), (832, 480));
        // Bounded by the model's sides.
        let strip = RgbImage::new(5000, 100);
        assert_eq!(fitted_size(832, 480, &strip).0, super::MAX_WIDTH);
    }
}
