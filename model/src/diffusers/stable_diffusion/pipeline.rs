//! The Stable Diffusion text-to-image pipeline (diffusers' `StableDiffusionPipeline`).

use super::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
use crate::diffusers::clip::text::{ClipTextConfig, ClipTextModel};
use crate::diffusers::clip::tokenizer::ClipTokenizer;
use crate::diffusers::common::folder::ModelFolder;
use crate::diffusers::common::latent_preview::latent_to_rgb;
use crate::diffusers::common::lora::LoraUse;
use crate::diffusers::common::scheduler::{Kind, Scheduler, SchedulerConfig, StepNoise};
use crate::diffusers::common::weights::LoadError;
use crate::diffusers::stable_diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
use crate::diffusers::stable_diffusion::vae_tiling::Tiling;
use crate::generate::{GenerateError, PreviewClock, Progress};
use crate::latents::Latents;
use crate::rng::Rng;
use burn::prelude::*;
use burn::tensor::DType;
use std::path::Path;
use std::time::Instant;

/// The note of kept latents that says how long sampling took, in seconds.
const SAMPLING_SECONDS: &str = "sampling_s";

/// One text-to-image request.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative: String,
    pub steps: usize,
    /// Classifier-free guidance scale; <= 1 turns guidance off (one UNet pass per step).
    pub guidance: f32,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// Initial latents [1, 4, H/8, W/8], unscaled, as diffusers' `latents` argument; drawn from
    /// `seed` when absent.
    pub noise: Option<Vec<f32>>,
    /// The sampler; the folder's own scheduler class when absent.
    pub scheduler: Option<Kind>,
}

/// A generated image: RGB values in [0, 1], row-major [height, width, 3].
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
    pub sampling_seconds: f64,
    pub decode_seconds: f64,
}

impl GeneratedImage {
    /// 8-bit RGB, rounded as diffusers' `numpy_to_pil` rounds.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let bytes = self.pixels.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        image::RgbImage::from_raw(self.width as u32, self.height as u32, bytes).expect("buffer matches size")
    }
}

#[derive(Clone)]
pub struct StableDiffusion {
    pub tokenizer: ClipTokenizer,
    pub text_encoder: ClipTextModel,
    pub unet: UNet2DConditionModel,
    pub vae: AutoencoderKL,
    pub scheduler: SchedulerConfig,
    pub device: Device,
    pub dtype: DType,
    /// The folder it was loaded from.
    pub root: std::path::PathBuf,
    /// Parameters loaded, all components.
    pub parameters: usize,
}

impl StableDiffusion {
    /// diffusers' pipeline class this runs (`model_index.json`'s `_class_name`).
    pub const PIPELINE_CLASS: &str = "StableDiffusionPipeline";

    /// Loads a diffusers `StableDiffusionPipeline` folder. `dtype` is F32 or F16.
    pub fn load(root: &Path, device: &Device, dtype: DType) -> Result<Self, LoadError> {
        Self::load_as(root, device, dtype, Self::PIPELINE_CLASS, &[])
    }

    /// [`Self::load`] with LoRAs merged into the UNet and the text encoder (diffusers'
    /// `load_lora_weights` then `fuse_lora(lora_scale)`, each LoRA at its own scale).
    pub fn load_with_loras(root: &Path, device: &Device, dtype: DType, loras: &[LoraUse]) -> Result<Self, LoadError> {
        Self::load_as(root, device, dtype, Self::PIPELINE_CLASS, loras)
    }

    /// Loads the Stable Diffusion components of a folder whose `model_index.json` names the
    /// pipeline `class` (text to image, or an instruction editor built on the same parts).
    pub(crate) fn load_as(
        root: &Path,
        device: &Device,
        dtype: DType,
        class: &str,
        loras: &[LoraUse],
    ) -> Result<Self, LoadError> {
        if let Some(other) =
            loras.iter().flat_map(|l| l.lora.components()).find(|c| !["unet", "text_encoder"].contains(c))
        {
            return Err(LoadError::config(
                root,
                "lora",
                other,
                "a Stable Diffusion LoRA updates the unet and the text_encoder",
            ));
        }
        let folder = ModelFolder::open(root)?;
        folder.expect_class(class)?;
        let tokenizer = ClipTokenizer::load(&root.join("tokenizer"))?;
        let te_cfg_path = folder.config("text_encoder", "config.json")?;
        let te_cfg = ClipTextConfig::read(&te_cfg_path)?;
        let (text_encoder, n_te) =
            folder.load_component_with("text_encoder", "model", device, dtype, loras, &|_| None, |w| {
                ClipTextModel::load(w, &te_cfg, &te_cfg_path)
            })?;
        let unet_cfg = UNet2DConditionConfig::read(&folder.config("unet", "config.json")?)?;
        let blocks = unet_cfg.block_out_channels.len();
        let dims = unet_cfg.cross_attention_dim.per_block(blocks).unwrap_or_default();
        if dims.iter().any(|&d| d != te_cfg.hidden_size) {
            return Err(LoadError::config(
                &root.join("unet/config.json"),
                "cross_attention_dim",
                &unet_cfg.cross_attention_dim,
                &format!("the text encoder gives {} features", te_cfg.hidden_size),
            ));
        }
        let (unet, n_unet) =
            folder.load_component_with("unet", "diffusion_pytorch_model", device, dtype, loras, &|_| None, |w| {
                UNet2DConditionModel::load(w, &unet_cfg)
            })?;
        let vae_cfg = AutoencoderKLConfig::read(&folder.config("vae", "config.json")?)?;
        let (vae, n_vae) = folder
            .load_component("vae", "diffusion_pytorch_model", device, dtype, |w| AutoencoderKL::load(w, &vae_cfg))?;
        let scheduler = SchedulerConfig::read(&folder.config("scheduler", "scheduler_config.json")?)?;
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler,
            device: device.clone(),
            dtype,
            root: root.to_path_buf(),
            parameters: n_te + n_unet + n_vae,
        })
    }

    /// Image pixels per latent pixel.
    pub fn scale_factor(&self) -> usize {
        self.vae.config.scale_factor()
    }

    /// Text states [1, T, D] for a prompt.
    pub fn encode_prompt(&self, text: &str) -> Tensor<3> {
        let ids: Vec<i64> = self.tokenizer.encode_padded(text).into_iter().map(i64::from).collect();
        let n = ids.len();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device);
        self.text_encoder.forward(ids)
    }

    pub fn validate(&self, req: &ImageRequest) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::InvalidRequest(m));
        let f = self.scale_factor();
        if req.width == 0 || req.height == 0 || !req.width.is_multiple_of(f) || !req.height.is_multiple_of(f) {
            return bad(format!(
                "width and height must be positive multiples of {f}, got {}x{}",
                req.width, req.height
            ));
        }
        if req.width * req.height > 2048 * 2048 {
            return bad(format!("{}x{} is too large (at most 2048x2048 pixels)", req.width, req.height));
        }
        if req.steps == 0 || req.steps > 1000 {
            return bad(format!("steps must be 1..=1000, got {}", req.steps));
        }
        if !req.guidance.is_finite() || !(0.0..=50.0).contains(&req.guidance) {
            return bad(format!("guidance must be 0..=50, got {}", req.guidance));
        }
        if let Some(noise) = &req.noise {
            let want = 4 * (req.height / f) * (req.width / f);
            if noise.len() != want || noise.iter().any(|v| !v.is_finite()) {
                return bad(format!(
                    "noise must hold {want} finite values ([1, 4, {}, {}])",
                    req.height / f,
                    req.width / f
                ));
            }
        }
        Ok(())
    }

    /// Generates an image, calling `on_progress` after every step and stopping when `cancelled`.
    pub fn generate(
        &self,
        req: &ImageRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedImage, GenerateError> {
        let latents = self.sample(req, on_progress, cancelled)?;
        self.decode_kept(&latents, 0)
    }

    /// [`Self::generate`] up to the decode: the final latents [1, 4, h, w], with how long
    /// sampling took (note `sampling_s`).
    pub fn sample(
        &self,
        req: &ImageRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Latents, GenerateError> {
        self.validate(req)?;
        let started = Instant::now();
        let config = match req.scheduler {
            Some(kind) => self.scheduler.with_kind(kind),
            None => self.scheduler.clone(),
        };
        let scheduler = Scheduler::new(&config, req.steps).map_err(GenerateError::InvalidRequest)?;
        let f = self.scale_factor();
        let (h, w) = (req.height / f, req.width / f);
        let channels = self.unet.config.in_channels;
        let noise = match &req.noise {
            Some(n) => n.clone(),
            None => Rng::new(req.seed).normals(channels * h * w),
        };
        if noise.len() != channels * h * w {
            return Err(GenerateError::InvalidRequest(format!("noise must be [1, {channels}, {h}, {w}]")));
        }
        let mut step_noise = StepNoise::seeded(req.seed);
        let guided = req.guidance > 1.0;
        let cond = self.encode_prompt(&req.prompt);
        let context = if guided { Tensor::cat(vec![self.encode_prompt(&req.negative), cond], 0) } else { cond };
        let latents = Tensor::<4>::from_data(TensorData::new(noise, [1, channels, h, w]), &self.device);
        let mut latents = latents * scheduler.init_noise_sigma;
        let total = scheduler.len();
        let mut clock = PreviewClock::default();
        for i in 0..total {
            if cancelled() {
                return Err(GenerateError::Cancelled);
            }
            let t = scheduler.timesteps[i];
            let input = if guided { Tensor::cat(vec![latents.clone(), latents.clone()], 0) } else { latents.clone() };
            let input = scheduler.scale_model_input(input, i).cast(self.dtype);
            let batch = input.dims()[0];
            let out = self.unet.forward(input, &vec![t; batch], &context).cast(DType::F32);
            let out = if guided {
                let mut halves = out.chunk(2, 0);
                let text = halves.pop().expect("two halves");
                let uncond = halves.pop().expect("two halves");
                uncond.clone() + (text - uncond) * req.guidance
            } else {
                out
            };
            latents = scheduler.step(out, i, latents, &mut step_noise);
            let preview = clock.due(i + 1, total).then(|| latent_to_rgb(latents.clone().squeeze_dim(0))).flatten();
            on_progress(Progress::new(i + 1, total).with_preview(preview));
        }
        let shape = latents.dims().to_vec();
        let values = latents
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| GenerateError::Backend(format!("reading the latents back: {e:?}")))?;
        let latents = Latents::new(shape, values).map_err(GenerateError::Backend)?;
        Ok(latents.with_note(SAMPLING_SECONDS, started.elapsed().as_secs_f64()))
    }

    /// Decodes latents of [`Self::sample`]. `retry` 0 decodes as [`Self::generate`] does; a
    /// retry after a failed decode (out of memory) decodes in diffusers' tiles, each retry's
    /// tiles half the side of the last one's ([`Tiling::for_retry`]), so memory follows the tile.
    pub fn decode_kept(&self, latents: &Latents, retry: u32) -> Result<GeneratedImage, GenerateError> {
        let [n, c, h, w] = latents.shape[..] else {
            return Err(GenerateError::InvalidRequest(format!(
                "latents of shape {:?} are not an image's",
                latents.shape
            )));
        };
        if n != 1 || c != self.vae.config.latent_channels {
            return Err(GenerateError::InvalidRequest(format!(
                "latents of shape {:?} are not this model's ({} channels)",
                latents.shape, self.vae.config.latent_channels
            )));
        }
        let tensor = Tensor::<4>::from_data(TensorData::new(latents.values.clone(), [n, c, h, w]), &self.device);
        let tiling = match retry {
            0 => Tiling::for_latent(&self.vae.config, h, w),
            _ => Some(Tiling::for_retry(&self.vae.config, h, w, retry)),
        };
        self.decode_with(tensor, latents.number(SAMPLING_SECONDS).unwrap_or(0.0), tiling)
    }

    /// Decodes final latents [1, 4, h, w] to an image, as diffusers' postprocess does; images
    /// above 1024x1024 pixels in tiles, as diffusers decodes after `enable_vae_tiling()` (the
    /// threshold is ours: diffusers, once asked, tiles any latent bigger than one tile).
    pub(crate) fn decode(&self, latents: Tensor<4>, sampling_seconds: f64) -> Result<GeneratedImage, GenerateError> {
        let [_, _, h, w] = latents.dims();
        let tiling = Tiling::for_latent(&self.vae.config, h, w);
        self.decode_with(latents, sampling_seconds, tiling)
    }

    /// Decodes final latents whole, or in `tiling`'s tiles.
    fn decode_with(
        &self,
        latents: Tensor<4>,
        sampling_seconds: f64,
        tiling: Option<Tiling>,
    ) -> Result<GeneratedImage, GenerateError> {
        let decode_started = Instant::now();
        let [_, _, h, w] = latents.dims();
        let f = self.scale_factor();
        let z = (latents / self.vae.config.scaling_factor as f32).cast(self.dtype);
        let image = match tiling {
            Some(t) => self.vae.decode_tiled(z, t),
            None => self.vae.decode(z),
        };
        let image = image.cast(DType::F32);
        let image = (image / 2.0 + 0.5).clamp(0.0, 1.0);
        let pixels = image
            .permute([0, 2, 3, 1])
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| GenerateError::InvalidRequest(format!("reading the image back: {e:?}")))?;
        Ok(GeneratedImage {
            width: w * f,
            height: h * f,
            pixels,
            sampling_seconds,
            decode_seconds: decode_started.elapsed().as_secs_f64(),
        })
    }
}
