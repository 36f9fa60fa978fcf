//! Generation with the built-in model: one API for the CLI and the server.
//!
//! A request (prompt, optional first frame, frames, fps, steps, guidance, seed, motion) goes
//! through an Euler rectified-flow sampler with classifier-free guidance on text and image. The
//! progress hook is called after every step and the cancel hook is checked between steps. The
//! same request and seed give identical frames on the same machine: the initial noise comes
//! from [`crate::rng`], not from the backend.

pub use crate::builtin::frames::{crop_resize, frame_indices, from_planar, to_planar};
use crate::builtin::motion::animate::{AnimateRequest, Animator};
use crate::builtin::net::{Conditioning, Net, NetConfig};
use crate::builtin::prompt::{Prompt, multi_hot, parse};
use crate::builtin::vocab::NUM_TOKENS;
use crate::builtin::weights::{ModelError, load_net};
use crate::builtin::world::Scene;
use crate::generate::{GenerateError, PreviewClock, Progress};
use crate::latents::Latents;
use crate::rng::Rng;
use burn::prelude::*;
use burn::store::SafetensorsStore;
use image::RgbImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Identifier of the shipped built-in model, recorded in every result's metadata.
pub const BUILTIN_MODEL_ID: &str = "vidplay-toy-1";

const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../weights/toy.safetensors");
const SHIPPED_CONFIG: &str = include_str!("../../weights/toy.json");
/// The note of kept latents that says how long sampling took, in seconds.
const SAMPLING_SECONDS: &str = "sampling_s";

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 1000;
/// Largest display size (frames are upscaled to this many pixels square).
pub const MAX_DISPLAY_SIZE: u32 = 1024;
pub const MAX_STEPS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationRequest {
    pub prompt: String,
    /// Number of output frames (at most the model's native clip length).
    pub frames: Option<usize>,
    pub fps: u32,
    pub steps: usize,
    /// Text guidance scale; 1 disables classifier-free guidance on text.
    pub guidance: f32,
    /// Image guidance scale for image-to-video; 1 disables it.
    pub image_guidance: f32,
    pub seed: u64,
    /// Motion strength: 1 is normal speed, 0.5 slow, 1.5 fast.
    pub motion: f32,
    /// Text-to-video frames are upscaled to this size (square) with a Catmull-Rom filter.
    pub display_size: u32,
    /// Image-to-video: the longest side of the output; `None` keeps the picture's own.
    pub image_long_side: Option<u32>,
}

impl Default for GenerationRequest {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            frames: None,
            fps: 8,
            steps: 24,
            guidance: 3.0,
            image_guidance: 1.5,
            seed: 0,
            motion: 1.0,
            display_size: 256,
            image_long_side: None,
        }
    }
}

/// What came out of one generation.
#[derive(Debug, Clone)]
pub struct GeneratedClip {
    /// Frames at display size.
    pub frames: Vec<RgbImage>,
    /// Frames at the model's own resolution.
    pub native_frames: Vec<RgbImage>,
    pub native_size: u32,
    pub fps: u32,
    /// What the prompt was understood as.
    pub understood: Prompt,
    /// The first frame actually used (cropped and resized to the native size), if any.
    pub native_input: Option<RgbImage>,
    /// Image-to-video: the last frame without weather, what a continuation starts from.
    pub continue_from: Option<RgbImage>,
    pub sampling_seconds: f64,
}

/// The built-in model, loaded on a device: the toy-world clip network (text-to-video) and the
/// motion model (image-to-video, [`crate::builtin::motion`]).
pub struct BuiltinModel {
    net: Net,
    config: NetConfig,
    animator: Animator,
    device: Device,
}

impl BuiltinModel {
    /// Size of the weights shipped inside the binary, in bytes.
    pub fn shipped_weights_bytes() -> usize {
        SHIPPED_WEIGHTS.len() + Animator::shipped_weights_bytes()
    }

    /// The weights shipped inside the binary.
    pub fn shipped(device: &Device) -> Result<Self, ModelError> {
        Self::from_store(
            SafetensorsStore::from_bytes(Some(SHIPPED_WEIGHTS.to_vec())),
            Self::config_of(None)?,
            "<built-in>",
            device,
        )
    }

    /// Weights exported by the trainer: `NAME.safetensors` with `NAME.json` beside it.
    pub fn load(weights: &Path, device: &Device) -> Result<Self, ModelError> {
        let config = Self::config_of(Some(weights))?;
        if !weights.is_file() {
            return Err(ModelError::Weights { path: weights.display().to_string(), message: "no such file".into() });
        }
        Self::from_store(SafetensorsStore::from_file(weights), config, &weights.display().to_string(), device)
    }

    /// The network shape of exported weights (`None`: the shipped ones), without loading them.
    pub fn config_of(weights: Option<&Path>) -> Result<NetConfig, ModelError> {
        let text = match weights {
            None => SHIPPED_CONFIG.to_string(),
            Some(weights) => {
                let config_path = weights.with_extension("json");
                std::fs::read_to_string(&config_path).map_err(|e| ModelError::Weights {
                    path: config_path.display().to_string(),
                    message: e.to_string(),
                })?
            }
        };
        serde_json::from_str(&text).map_err(|e| ModelError::Config(e.to_string()))
    }

    fn from_store(
        store: SafetensorsStore,
        config: NetConfig,
        origin: &str,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            net: load_net(store, &config, origin, device)?,
            config,
            animator: Animator::shipped(device)?,
            device: device.clone(),
        })
    }

    /// The image-to-video motion model.
    pub fn animator(&self) -> &Animator {
        &self.animator
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    pub fn id(&self) -> &'static str {
        BUILTIN_MODEL_ID
    }

    /// Checks a request without running it.
    pub fn validate(&self, req: &GenerationRequest, has_image: bool) -> Result<(), GenerateError> {
        validate(&self.config, req, has_image)
    }

    /// Generates a clip. `image`, when given, is the first frame to animate; it is centre-cropped
    /// to a square and resized to the model's resolution.
    pub fn generate(
        &self,
        req: &GenerationRequest,
        image: Option<&RgbImage>,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedClip, GenerateError> {
        if let Some(image) = image {
            self.validate(req, true)?;
            return self.animate(req, image, on_progress, cancelled);
        }
        let latents = self.sample(req, on_progress, cancelled)?;
        self.decode(req, &latents)
    }

    /// Text-to-video up to the decode: the sampled clip at the model's resolution, [1, frames,
    /// 3, size, size] in about [-1, 1], with how long sampling took (note `sampling_s`).
    pub fn sample(
        &self,
        req: &GenerationRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Latents, GenerateError> {
        self.validate(req, false)?;
        let image: Option<&RgbImage> = None;
        let started = Instant::now();
        let (t, s) = (self.config.frames, self.config.size);
        let understood = parse(&req.prompt);
        let native_input = image.map(|img| crop_resize(img, s as u32));
        let device = &self.device;

        // Which conditioned passes each step runs, and how they combine.
        let text = multi_hot(&understood);
        let none = vec![0.0; NUM_TOKENS];
        let has_text = !understood.is_empty();
        let mut variants: Vec<(Vec<f32>, bool)> = Vec::new(); // (tokens, with image)
        match (&native_input, has_text) {
            (None, _) => {
                variants.push((text.clone(), false));
                if req.guidance != 1.0 {
                    variants.push((none.clone(), false));
                }
            }
            (Some(_), true) => {
                variants.push((text.clone(), true));
                variants.push((none.clone(), true));
                variants.push((none.clone(), false));
            }
            (Some(_), false) => {
                variants.push((none.clone(), true));
                if req.image_guidance != 1.0 {
                    variants.push((none.clone(), false));
                }
            }
        }
        let k = variants.len();
        let image_planar: Vec<f32> = match &native_input {
            Some(img) => to_planar(img),
            None => vec![0.0; 3 * s * s],
        };
        let mut tokens = Vec::new();
        let mut images = Vec::new();
        let mut mask = Vec::new();
        for (tok, with_image) in &variants {
            tokens.extend_from_slice(tok);
            if *with_image {
                images.extend_from_slice(&image_planar);
            } else {
                images.extend(std::iter::repeat_n(0.0, 3 * s * s));
            }
            mask.push(if *with_image { 1.0 } else { 0.0 });
        }
        // Text-to-video plans where the subject goes (from the prompt, the motion strength and
        // the seed) and gives that layout to the text-conditioned pass only, so guidance pushes
        // towards it. An animated image has no planned subject.
        let plan =
            (native_input.is_none() && (understood.subject.is_some() || understood.action.is_some())).then(|| {
                let mut rng = Rng::new(crate::rng::mix(req.seed ^ 0x1a70));
                Scene::sample_with_motion(&mut rng, &understood, 0.0, Some(req.motion)).layout(t, s)
            });
        let mut layouts = Vec::with_capacity(k * t * s * s);
        for (j, _) in variants.iter().enumerate() {
            match (&plan, j) {
                (Some(p), 0) => layouts.extend_from_slice(p),
                _ => layouts.extend(std::iter::repeat_n(0.0, t * s * s)),
            }
        }
        let cond = Conditioning::from_host(tokens, vec![req.motion; k], images, mask, layouts, s, device);

        let first_frame = native_input
            .as_ref()
            .map(|_| Tensor::<5>::from_data(TensorData::new(image_planar.clone(), [1, 1, 3, s, s]), device));
        let shape = [1, t, 3, s, s];
        let noise = Rng::new(req.seed).normals(t * 3 * s * s);
        let mut x = Tensor::<5>::from_data(TensorData::new(noise, shape), device);
        let steps = req.steps;
        let mut clock = PreviewClock::default();
        for i in 0..steps {
            if cancelled() {
                return Err(GenerateError::Cancelled);
            }
            let time = i as f32 / steps as f32;
            let xs = x.clone().expand([k, t, 3, s, s]);
            let times = Tensor::<1>::from_data(TensorData::new(vec![time; k], [k]), device);
            let d = self.net.forward(xs, times, &cond);
            let part = |j: usize| d.clone().slice(j..j + 1);
            // Guidance on the predicted clean clip (the velocity is affine in it).
            let d = match (&native_input, has_text, k) {
                (_, _, 1) => part(0),
                (None, _, _) => part(1) + (part(0) - part(1)) * req.guidance,
                (Some(_), true, _) => {
                    part(2) + (part(1) - part(2)) * req.image_guidance + (part(0) - part(1)) * req.guidance
                }
                (Some(_), false, _) => part(1) + (part(0) - part(1)) * req.image_guidance,
            };
            // Image-to-video pins the first frame to the input (replacement sampling): the
            // trajectory of frame 0 ends exactly on the image, and every other frame is
            // predicted from a clip whose first frame is it.
            let d = match &first_frame {
                Some(f) => d.slice_assign([0..1, 0..1], f.clone()),
                None => d,
            };
            // Euler step of the flow: x += (d - x) / (1 - s) * ds; the last step lands on d.
            // The preview is the middle frame of the current estimate of the clean clip.
            let preview = clock.due(i + 1, steps).then(|| {
                let mid = t / 2;
                let frame =
                    d.clone().slice([0..1, mid..mid + 1]).into_data().convert::<f32>().try_into_vec::<f32>().ok();
                frame.map(|f| from_planar(&f, s as u32))
            });
            let next = (i + 1) as f32 / steps as f32;
            x = x.clone() + (d - x) * ((next - time) / (1.0 - time));
            on_progress(Progress::new(i + 1, steps).with_preview(preview.flatten()));
        }
        let data: Vec<f32> = x
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| GenerateError::InvalidRequest(format!("reading frames: {e:?}")))?;
        let latents = Latents::new(shape.to_vec(), data).map_err(GenerateError::Backend)?;
        Ok(latents.with_note(SAMPLING_SECONDS, started.elapsed().as_secs_f64()))
    }

    /// The clip of sampled latents ([`Self::sample`]): the frames asked for, upscaled to the
    /// display size. This model samples pixels, so its decode only picks and upscales frames and
    /// has no smaller pieces to retry in: a retried decode runs the same way.
    pub fn decode(&self, req: &GenerationRequest, latents: &Latents) -> Result<GeneratedClip, GenerateError> {
        let (t, s) = (self.config.frames, self.config.size);
        if latents.shape != [1, t, 3, s, s] {
            return Err(GenerateError::InvalidRequest(format!(
                "latents of shape {:?} are not this model's (it samples [1, {t}, 3, {s}, {s}])",
                latents.shape
            )));
        }
        let data = &latents.values;
        let sampling_seconds = latents.number(SAMPLING_SECONDS).unwrap_or(0.0);
        let understood = parse(&req.prompt);
        let native_input = None;
        let wanted = req.frames.unwrap_or(t);
        let native_frames: Vec<RgbImage> = frame_indices(t, wanted)
            .into_iter()
            .map(|f| from_planar(&data[f * 3 * s * s..(f + 1) * 3 * s * s], s as u32))
            .collect();
        let d = req.display_size;
        let frames = native_frames.iter().map(|f| image::imageops::resize(f, d, d, FilterType::CatmullRom)).collect();
        Ok(GeneratedClip {
            frames,
            native_frames,
            native_size: s as u32,
            fps: req.fps,
            understood,
            native_input,
            continue_from: None,
            sampling_seconds,
        })
    }
}

impl BuiltinModel {
    /// The motion model's request for a generation request.
    pub fn animate_request(&self, req: &GenerationRequest) -> AnimateRequest {
        AnimateRequest {
            prompt: req.prompt.clone(),
            frames: req.frames.unwrap_or(self.animator.config().frames),
            motion: req.motion,
            seed: req.seed,
            long_side: req.image_long_side,
        }
    }

    /// Image-to-video: the picture's own pixels, moved by the motion model, at its resolution.
    fn animate(
        &self,
        req: &GenerationRequest,
        image: &RgbImage,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedClip, GenerateError> {
        let animation = self.animator.animate(&self.animate_request(req), image, on_progress, cancelled)?;
        let s = self.animator.config().size as u32;
        let first = animation.frames[0].clone();
        Ok(GeneratedClip {
            native_frames: animation
                .frames
                .iter()
                .map(|f| image::imageops::resize(f, s, s, FilterType::Triangle))
                .collect(),
            frames: animation.frames,
            native_size: s,
            fps: req.fps,
            understood: animation.understood,
            native_input: Some(first),
            continue_from: Some(animation.dry_last),
            sampling_seconds: animation.seconds,
        })
    }
}

/// Checks a request against a model of shape `config` without running it.
pub fn validate(config: &NetConfig, req: &GenerationRequest, has_image: bool) -> Result<(), GenerateError> {
    let bad = |m: String| Err(GenerateError::InvalidRequest(m));
    if req.prompt.chars().count() > MAX_PROMPT_CHARS {
        return bad(format!("the prompt is longer than {MAX_PROMPT_CHARS} characters"));
    }
    if !has_image && req.prompt.trim().is_empty() {
        return bad("the prompt is empty: describe a scene, or give an image to animate".into());
    }
    let understood = parse(&req.prompt);
    if !has_image && understood.is_empty() {
        return bad(format!(
            "the prompt names nothing the built-in model knows (it ignores: {}); try e.g. \
             \"a red ball bouncing on a grass field\"",
            understood.ignored.join(", ")
        ));
    }
    let native = config.frames;
    if let Some(f) = req.frames
        && !(2..=native).contains(&f)
    {
        return bad(format!("frames must be between 2 and {native} for this model, not {f}"));
    }
    if !(1..=60).contains(&req.fps) {
        return bad(format!("fps must be between 1 and 60, not {}", req.fps));
    }
    if !(1..=MAX_STEPS).contains(&req.steps) {
        return bad(format!("steps must be between 1 and {MAX_STEPS}, not {}", req.steps));
    }
    for (name, g) in [("guidance", req.guidance), ("image guidance", req.image_guidance)] {
        if !(0.0..=20.0).contains(&g) {
            return bad(format!("{name} must be between 0 and 20, not {g}"));
        }
    }
    if !(0.0..=2.0).contains(&req.motion) {
        return bad(format!("motion must be between 0 and 2, not {}", req.motion));
    }
    if let Some(side) = req.image_long_side
        && !(crate::builtin::motion::animate::MIN_SIDE..=MAX_DISPLAY_SIZE).contains(&side)
    {
        return bad(format!(
            "size must be between {} and {MAX_DISPLAY_SIZE} pixels, not {side}",
            crate::builtin::motion::animate::MIN_SIDE
        ));
    }
    let native_size = config.size as u32;
    if !(native_size..=MAX_DISPLAY_SIZE).contains(&req.display_size) {
        return bad(format!(
            "display size must be between {native_size} and {MAX_DISPLAY_SIZE}, not {}",
            req.display_size
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_indices_span_the_clip() {
        assert_eq!(frame_indices(16, 16), (0..16).collect::<Vec<_>>());
        assert_eq!(frame_indices(16, 2), vec![0, 15]);
        assert_eq!(frame_indices(16, 4), vec![0, 5, 10, 15]);
    }

    #[test]
    fn planar_round_trip() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
        assert_eq!(from_planar(&to_planar(&img), 8), img);
    }

    #[test]
    fn crop_is_centred_and_square() {
        let img = RgbImage::from_fn(30, 10, |x, _| image::Rgb([if (10..20).contains(&x) { 255 } else { 0 }, 0, 0]));
        let out = crop_resize(&img, 10);
        assert_eq!(out.dimensions(), (10, 10));
        assert!(out.pixels().all(|p| p.0[0] == 255));
    }
}
