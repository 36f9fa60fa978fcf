//! The Stable Video Diffusion image-to-video pipeline (diffusers'
//! `StableVideoDiffusionPipeline`): CLIP image embedding of the input, noise-augmented VAE
//! latent of it concatenated to every frame's latents, added time ids (fps - 1, motion bucket,
//! noise augmentation), EDM Euler sampling with guidance ramped over the frames, and the
//! temporal VAE decoder run over chunks of frames.
//!
//! Memory: [`MemoryMode::Low`] loads each component only for its phase and frees it (the image
//! encoder, the VAE to encode, the UNet, the VAE again to decode), and runs the guided and
//! unguided UNet passes one after the other instead of as one batch of two. Attention is
//! chunked whenever its score matrix would be large (see `blocks::multi_head_attention`), and
//! the VAE decodes `decode_chunk` frames at a time, chosen from the free memory by
//! [`StableVideoDiffusion::decode_chunk_for`] unless the request names it.

use crate::diffusers::clip::vision::{ClipVisionConfig, ClipVisionModelWithProjection};
use crate::diffusers::common::folder::ModelFolder;
use crate::diffusers::common::image_processing::Planar;
use crate::diffusers::common::latent_preview::latent_to_rgb;
use crate::diffusers::common::scheduler::{Scheduler, SchedulerConfig, StepNoise, torch_linspace_f32};
pub use crate::diffusers::common::video::{GeneratedVideo, MemoryMode};
use crate::diffusers::common::weights::LoadError;
use crate::diffusers::stable_video_diffusion::autoencoder_kl_temporal_decoder::{
    AutoencoderKLTemporalDecoder, TemporalDecoderVaeConfig,
};
use crate::diffusers::stable_video_diffusion::unet_spatio_temporal::{
    UNetSpatioTemporalConditionModel, UNetSpatioTemporalConfig,
};
use crate::generate::{GenerateError, PreviewClock, Progress};
use crate::rng::Rng;
use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One image-to-video request; defaults are diffusers'.
#[derive(Debug, Clone)]
pub struct VideoRequest {
    pub width: usize,
    pub height: usize,
    /// Frames to generate; the model's `num_frames` (14 for svd, 25 for svd-xt) when absent.
    pub frames: Option<usize>,
    pub steps: usize,
    /// Frame rate the model is told (it is given fps - 1, as diffusers does).
    pub fps: u32,
    pub motion_bucket: u32,
    pub noise_aug: f32,
    pub min_guidance: f32,
    pub max_guidance: f32,
    /// Frames decoded together; all of them when absent (diffusers' default). Callers that know
    /// the device's free memory fill it with [`StableVideoDiffusion::decode_chunk_for`].
    pub decode_chunk: Option<usize>,
    pub seed: u64,
    /// Initial latents [1, frames, 4, H/8, W/8], unscaled, as diffusers' `latents` argument.
    pub noise: Option<Vec<f32>>,
    /// The image's augmentation noise [1, 3, H, W] (diffusers draws it from the generator).
    pub image_noise: Option<Vec<f32>>,
}

impl VideoRequest {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            frames: None,
            steps: 25,
            fps: 7,
            motion_bucket: 127,
            noise_aug: 0.02,
            min_guidance: 1.0,
            max_guidance: 3.0,
            decode_chunk: None,
            seed: 0,
            noise: None,
            image_noise: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct FeatureExtractorConfig {
    #[serde(default = "clip_mean")]
    image_mean: [f32; 3],
    #[serde(default = "clip_std")]
    image_std: [f32; 3],
}

fn clip_mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn clip_std() -> [f32; 3] {
    [0.268_629_54, 0.261_302_6, 0.275_777_1]
}

/// Of the memory free before a run, the share the VAE decode plans to use; the rest is for the
/// allocator's padding and fragmentation, the attention's score chunks and what the estimate
/// below misses.
const DECODE_SHARE_OF_FREE: f64 = 0.8;

/// In low-memory mode the decode keeps to this much, however much is free, so that svd-xt's run
/// stays within 10 GB: its UNet (3 GB in f16) is freed before the decode and the VAE (0.4 GB in
/// f32) loaded; at 1024x576 this is 2 frames at a time, the chunk of diffusers' low-memory recipe.
pub const LOW_MEMORY_DECODE_BYTES: u64 = 6 << 30;

/// The decode's live memory per frame, in full-size activations of the decoder's first
/// `block_out_channels` entry (128 channels for SVD). Measured on Burn's CPU backend with
/// svd-xt's VAE (random weights, f32): the peak resident size grew 132 to 136 MiB per frame at
/// 256x144 (1, 2 and 4 frames) and 535 MiB per frame at 512x288 (1 and 2), 7.3 to 7.6 such
/// activations; rounded up for GPU pools, which keep freed pages. Not yet measured on a GPU.
const DECODE_ACTIVATIONS_PER_FRAME: u64 = 10;

/// The memory one frame's decode needs at `width` x `height` with the VAE in `dtype`, by the
/// estimate [`DECODE_ACTIVATIONS_PER_FRAME`].
pub fn decode_bytes_per_frame(vae: &TemporalDecoderVaeConfig, dtype: DType, width: usize, height: usize) -> u64 {
    let channels = vae.block_out_channels.first().copied().unwrap_or(0);
    DECODE_ACTIVATIONS_PER_FRAME * (width * height * channels * dtype.size()) as u64
}

/// The frames of a `frames`-frame clip to decode at once when each needs `per_frame` bytes: as
/// many as fit [`DECODE_SHARE_OF_FREE`] of `free`, no more than [`LOW_MEMORY_DECODE_BYTES`] in
/// low-memory mode. Where the free memory is unknown (wgpu), all frames at once (diffusers'
/// default), or the low-memory budget in that mode. At least 1, at most `frames`.
pub fn decode_chunk_within(frames: usize, per_frame: u64, memory: MemoryMode, free: Option<u64>) -> usize {
    let share = free.map(|f| (f as f64 * DECODE_SHARE_OF_FREE) as u64);
    let budget = match (share, memory) {
        (Some(share), MemoryMode::Low) => share.min(LOW_MEMORY_DECODE_BYTES),
        (Some(share), MemoryMode::Resident) => share,
        (None, MemoryMode::Low) => LOW_MEMORY_DECODE_BYTES,
        (None, MemoryMode::Resident) => return frames.max(1),
    };
    usize::try_from(budget / per_frame.max(1)).unwrap_or(usize::MAX).clamp(1, frames.max(1))
}

/// The loaded components.
#[derive(Clone)]
struct Components {
    image_encoder: ClipVisionModelWithProjection,
    vae: AutoencoderKLTemporalDecoder,
    unet: UNetSpatioTemporalConditionModel,
}

#[derive(Clone)]
pub struct StableVideoDiffusion {
    folder: ModelFolder,
    image_encoder_config: (PathBuf, ClipVisionConfig),
    pub unet_config: UNetSpatioTemporalConfig,
    pub vae_config: TemporalDecoderVaeConfig,
    pub scheduler: SchedulerConfig,
    mean: [f32; 3],
    std: [f32; 3],
    pub device: Device,
    pub dtype: DType,
    pub memory: MemoryMode,
    resident: Option<Components>,
    /// Parameters of all components (counted when they are first loaded).
    pub parameters: usize,
}

impl StableVideoDiffusion {
    /// diffusers' pipeline class this runs (`model_index.json`'s `_class_name`).
    pub const PIPELINE_CLASS: &str = "StableVideoDiffusionPipeline";

    /// Opens a diffusers `StableVideoDiffusionPipeline` folder: reads and checks every config
    /// and, in [`MemoryMode::Resident`], loads every component (each checked tensor by tensor).
    pub fn load(root: &Path, device: &Device, dtype: DType, memory: MemoryMode) -> Result<Self, LoadError> {
        let folder = ModelFolder::open(root)?;
        folder.expect_class(Self::PIPELINE_CLASS)?;
        let enc_path = folder.config("image_encoder", "config.json")?;
        let enc_cfg = ClipVisionConfig::read(&enc_path)?;
        let unet_path = folder.config("unet", "config.json")?;
        let unet_config = UNetSpatioTemporalConfig::read(&unet_path)?;
        let n = unet_config.block_out_channels.len();
        if unet_config.cross_attention_dim.per_block(n).unwrap_or_default().iter().any(|&d| d != enc_cfg.projection_dim)
        {
            return Err(LoadError::config(
                &unet_path,
                "cross_attention_dim",
                &unet_config.cross_attention_dim,
                &format!("the image encoder gives {} features", enc_cfg.projection_dim),
            ));
        }
        let vae_config = TemporalDecoderVaeConfig::read(&folder.config("vae", "config.json")?)?;
        if unet_config.in_channels != 2 * vae_config.latent_channels
            || unet_config.out_channels != vae_config.latent_channels
        {
            return Err(LoadError::config(
                &unet_path,
                "in_channels",
                unet_config.in_channels,
                &format!(
                    "the VAE has {} latent channels: the UNet takes twice that (noisy + image latents)",
                    vae_config.latent_channels
                ),
            ));
        }
        let scheduler = SchedulerConfig::read(&folder.config("scheduler", "scheduler_config.json")?)?;
        let fe: FeatureExtractorConfig = match folder.config("feature_extractor", "preprocessor_config.json") {
            Ok(p) => crate::diffusers::common::config::read_json(&p)?,
            Err(_) => FeatureExtractorConfig { image_mean: clip_mean(), image_std: clip_std() },
        };
        let mut svd = Self {
            folder,
            image_encoder_config: (enc_path, enc_cfg),
            unet_config,
            vae_config,
            scheduler,
            mean: fe.image_mean,
            std: fe.image_std,
            device: device.clone(),
            dtype,
            memory,
            resident: None,
            parameters: 0,
        };
        if memory == MemoryMode::Resident {
            let (image_encoder, a) = svd.load_image_encoder()?;
            let (vae, b) = svd.load_vae()?;
            let (unet, c) = svd.load_unet()?;
            svd.parameters = a + b + c;
            svd.resident = Some(Components { image_encoder, vae, unet });
        } else {
            // Checked once up front, so a broken folder fails before any work.
            let (_, a) = svd.load_image_encoder()?;
            let (_, b) = svd.load_vae()?;
            let (_, c) = svd.load_unet()?;
            svd.parameters = a + b + c;
        }
        Ok(svd)
    }

    pub fn root(&self) -> &Path {
        &self.folder.root
    }

    fn load_image_encoder(&self) -> Result<(ClipVisionModelWithProjection, usize), LoadError> {
        let (path, cfg) = &self.image_encoder_config;
        self.folder.load_component("image_encoder", "model", &self.device, self.dtype, |w| {
            ClipVisionModelWithProjection::load(w, cfg, path)
        })
    }

    /// The VAE runs in f32 when its config forces an upcast (SVD's does), as diffusers encodes.
    fn vae_dtype(&self) -> DType {
        if self.vae_config.force_upcast { DType::F32 } else { self.dtype }
    }

    fn load_vae(&self) -> Result<(AutoencoderKLTemporalDecoder, usize), LoadError> {
        self.folder.load_component("vae", "diffusion_pytorch_model", &self.device, self.vae_dtype(), |w| {
            AutoencoderKLTemporalDecoder::load(w, &self.vae_config)
        })
    }

    fn load_unet(&self) -> Result<(UNetSpatioTemporalConditionModel, usize), LoadError> {
        self.folder.load_component("unet", "diffusion_pytorch_model", &self.device, self.dtype, |w| {
            UNetSpatioTemporalConditionModel::load(w, &self.unet_config)
        })
    }

    /// Image pixels per latent pixel.
    pub fn scale_factor(&self) -> usize {
        self.vae_config.scale_factor()
    }

    /// The clip length the model was trained on.
    pub fn default_frames(&self) -> usize {
        self.unet_config.num_frames
    }

    /// The frames to decode at once for `req`: its own `decode_chunk` when it names one (0 stays
    /// 0, for [`Self::validate`] to refuse), else [`decode_chunk_within`] the free memory `free`
    /// (the device's, before the run, from `free_memory::free_bytes`).
    pub fn decode_chunk_for(&self, req: &VideoRequest, free: Option<u64>) -> usize {
        let frames = req.frames.unwrap_or(self.default_frames()).max(1);
        match req.decode_chunk {
            Some(chunk) => chunk.min(frames),
            None => {
                let per_frame = decode_bytes_per_frame(&self.vae_config, self.vae_dtype(), req.width, req.height);
                decode_chunk_within(frames, per_frame, self.memory, free)
            }
        }
    }

    pub fn validate(&self, req: &VideoRequest) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::InvalidRequest(m));
        let unit = self.scale_factor();
        if req.width == 0 || req.height == 0 || !req.width.is_multiple_of(unit) || !req.height.is_multiple_of(unit) {
            return bad(format!(
                "width and height must be positive multiples of {unit}, got {}x{}",
                req.width, req.height
            ));
        }
        if req.width * req.height > 2048 * 2048 {
            return bad(format!("{}x{} is too large (at most 2048x2048 pixels)", req.width, req.height));
        }
        let frames = req.frames.unwrap_or(self.default_frames());
        if frames == 0 || frames > 128 {
            return bad(format!("frames must be 1..=128, got {frames}"));
        }
        if req.steps == 0 || req.steps > 500 {
            return bad(format!("steps must be 1..=500, got {}", req.steps));
        }
        if req.fps == 0 || req.fps > 120 {
            return bad(format!("fps must be 1..=120, got {}", req.fps));
        }
        if req.motion_bucket > 1023 {
            return bad(format!("motion bucket must be 0..=1023, got {}", req.motion_bucket));
        }
        if !req.noise_aug.is_finite() || !(0.0..=10.0).contains(&req.noise_aug) {
            return bad(format!("noise augmentation must be 0..=10, got {}", req.noise_aug));
        }
        for (name, g) in [("min guidance", req.min_guidance), ("max guidance", req.max_guidance)] {
            if !g.is_finite() || !(0.0..=50.0).contains(&g) {
                return bad(format!("{name} must be 0..=50, got {g}"));
            }
        }
        if req.decode_chunk == Some(0) {
            return bad("decode chunk must be at least 1 frame".into());
        }
        let (h, w) = (req.height / self.scale_factor(), req.width / self.scale_factor());
        let l = self.vae_config.latent_channels;
        if let Some(noise) = &req.noise {
            let want = frames * l * h * w;
            if noise.len() != want || noise.iter().any(|v| !v.is_finite()) {
                return bad(format!("noise must hold {want} finite values ([1, {frames}, {l}, {h}, {w}])"));
            }
        }
        if let Some(noise) = &req.image_noise {
            let want = 3 * req.height * req.width;
            if noise.len() != want || noise.iter().any(|v| !v.is_finite()) {
                return bad(format!(
                    "image noise must hold {want} finite values ([1, 3, {}, {}])",
                    req.height, req.width
                ));
            }
        }
        Ok(())
    }

    /// The normalised 224x224 CLIP input for an image, as the pipeline builds it.
    pub fn clip_pixels(&self, image: &RgbImage) -> Planar {
        let size = self.image_encoder_config.1.image_size;
        let signed = Planar::from_rgb8(image, |v| v * 2.0 - 1.0);
        let mut resized = signed.resize_with_antialiasing(size, size);
        for v in resized.data.iter_mut() {
            *v = (*v + 1.0) / 2.0;
        }
        resized.normalize(self.mean, self.std);
        resized
    }

    /// Animates `image`, calling `on_progress` after every step and stopping when `cancelled`.
    pub fn generate(
        &self,
        image: &RgbImage,
        req: &VideoRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedVideo, GenerateError> {
        self.validate(req)?;
        let load_err = |e: LoadError| GenerateError::InvalidRequest(format!("loading the model: {e}"));
        let started = Instant::now();
        let device = &self.device;
        let frames = req.frames.unwrap_or(self.default_frames());
        let f = self.scale_factor();
        let (h, w) = (req.height / f, req.width / f);
        let l = self.vae_config.latent_channels;
        let guided = req.max_guidance > 1.0;
        let scheduler = Scheduler::new(&self.scheduler, req.steps).map_err(GenerateError::InvalidRequest)?;

        // diffusers draws the image's augmentation noise first, then the latents.
        let mut rng = Rng::new(req.seed);
        let mut step_noise = StepNoise::seeded(req.seed);
        let image_noise = match &req.image_noise {
            Some(n) => n.clone(),
            None => rng.normals(3 * req.height * req.width),
        };
        let noise = match &req.noise {
            Some(n) => n.clone(),
            None => rng.normals(frames * l * h * w),
        };

        // Phase 1: the CLIP image embedding [1, 1, D].
        let embedding = {
            let owned;
            let encoder = match &self.resident {
                Some(c) => &c.image_encoder,
                None => {
                    owned = self.load_image_encoder().map_err(load_err)?.0;
                    &owned
                }
            };
            let size = encoder.config.image_size;
            let px = self.clip_pixels(image);
            let pixels = Tensor::<4>::from_data(TensorData::new(px.data, [1, 3, size, size]), device);
            let e = encoder.forward(pixels);
            let d = e.dims()[1];
            e.reshape([1, 1, d]).cast(self.dtype)
        };

        // Phase 2: the noise-augmented image latent [1, 4, h, w] (not scaled, as diffusers).
        let resized;
        let input = if (image.width() as usize, image.height() as usize) == (req.width, req.height) {
            image
        } else {
            resized = image::imageops::resize(
                image,
                req.width as u32,
                req.height as u32,
                image::imageops::FilterType::Lanczos3,
            );
            &resized
        };
        // In low-memory mode the VAE is loaded to encode, freed while the UNet runs, and
        // loaded again to decode.
        let mut owned_vae = match &self.resident {
            Some(_) => None,
            None => Some(self.load_vae().map_err(load_err)?.0),
        };
        let image_latent = {
            let vae = self.resident.as_ref().map(|c| &c.vae).or(owned_vae.as_ref()).expect("a VAE is loaded");
            let px = Planar::from_rgb8(input, |v| v * 2.0 - 1.0);
            let aug: Vec<f32> = px.data.iter().zip(&image_noise).map(|(p, n)| p + req.noise_aug * n).collect();
            let x = Tensor::<4>::from_data(TensorData::new(aug, [1, 3, req.height, req.width]), device);
            vae.encode(x.cast(self.vae_dtype())).0.cast(self.dtype)
        };
        owned_vae = None;
        let encode_seconds = started.elapsed().as_secs_f64();

        // Phase 3: sampling.
        let sampling_started = Instant::now();
        let image_latents = image_latent.unsqueeze_dim::<5>(1).expand([1, frames, l, h, w]);
        let ids = [(req.fps - 1) as f32, req.motion_bucket as f32, req.noise_aug];
        let guidance = torch_linspace_f32(req.min_guidance, req.max_guidance, frames);
        let guidance =
            Tensor::<1>::from_data(TensorData::new(guidance, [frames]), device).reshape([1, frames, 1, 1, 1]);
        let latents = Tensor::<5>::from_data(TensorData::new(noise, [1, frames, l, h, w]), device);
        let mut latents = latents * scheduler.init_noise_sigma;
        {
            let owned;
            let unet = match &self.resident {
                Some(c) => &c.unet,
                None => {
                    owned = self.load_unet().map_err(load_err)?.0;
                    &owned
                }
            };
            let zeros_latent = Tensor::<5>::zeros([1, frames, l, h, w], device).cast(self.dtype);
            let zeros_embedding = Tensor::<3>::zeros(embedding.dims(), device).cast(self.dtype);
            let split = self.memory == MemoryMode::Low;
            let total = scheduler.len();
            let mut clock = PreviewClock::default();
            for i in 0..total {
                if cancelled() {
                    return Err(GenerateError::Cancelled);
                }
                let t = scheduler.timesteps[i];
                let scaled = scale_5d(&scheduler, latents.clone(), i).cast(self.dtype);
                let run = |lat: Tensor<5>, img: Tensor<5>, emb: &Tensor<3>, batch: usize| {
                    let input = Tensor::cat(vec![lat, img], 2);
                    unet.forward(input, t, emb, &vec![ids; batch]).cast(DType::F32)
                };
                let out = if !guided {
                    run(scaled, image_latents.clone(), &embedding, 1)
                } else if split {
                    let uncond = run(scaled.clone(), zeros_latent.clone(), &zeros_embedding, 1);
                    let cond = run(scaled, image_latents.clone(), &embedding, 1);
                    uncond.clone() + (cond - uncond) * guidance.clone()
                } else {
                    let lat = Tensor::cat(vec![scaled.clone(), scaled], 0);
                    let img = Tensor::cat(vec![zeros_latent.clone(), image_latents.clone()], 0);
                    let emb = Tensor::cat(vec![zeros_embedding.clone(), embedding.clone()], 0);
                    let mut halves = run(lat, img, &emb, 2).chunk(2, 0);
                    let cond = halves.pop().expect("two halves");
                    let uncond = halves.pop().expect("two halves");
                    uncond.clone() + (cond - uncond) * guidance.clone()
                };
                latents = step_5d(&scheduler, out, i, latents, &mut step_noise);
                // The middle frame of the clip so far.
                let preview = clock.due(i + 1, total).then(|| {
                    let mid = frames / 2;
                    latent_to_rgb(latents.clone().slice([0..1, mid..mid + 1]).reshape([l, h, w]))
                });
                on_progress(Progress::new(i + 1, total).with_preview(preview.flatten()));
            }
        }
        let sampling_seconds = sampling_started.elapsed().as_secs_f64();

        // Phase 4: decoding, `decode_chunk` frames at a time.
        let decode_started = Instant::now();
        if self.resident.is_none() {
            owned_vae = Some(self.load_vae().map_err(load_err)?.0);
        }
        let vae = self.resident.as_ref().map(|c| &c.vae).or(owned_vae.as_ref()).expect("a VAE is loaded");
        let z = latents.reshape([frames, l, h, w]) / self.vae_config.scaling_factor as f32;
        let chunk = req.decode_chunk.unwrap_or(frames).min(frames);
        let vae_dtype = self.vae_dtype();
        let mut out = Vec::with_capacity(frames);
        let mut start = 0;
        while start < frames {
            if cancelled() {
                return Err(GenerateError::Cancelled);
            }
            let end = (start + chunk).min(frames);
            let decoded = vae.decode(z.clone().slice(start..end).cast(vae_dtype)).cast(DType::F32);
            let decoded = (decoded / 2.0 + 0.5).clamp(0.0, 1.0).permute([0, 2, 3, 1]);
            let data = decoded
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| GenerateError::InvalidRequest(format!("reading frames back: {e:?}")))?;
            let per = req.height * req.width * 3;
            out.extend(data.chunks(per).map(|c| c.to_vec()));
            start = end;
        }
        Ok(GeneratedVideo {
            width: req.width,
            height: req.height,
            frames: out,
            encode_seconds,
            sampling_seconds,
            decode_seconds: decode_started.elapsed().as_secs_f64(),
        })
    }

    /// The loaded components, for parity tests (loads them when not resident).
    pub fn parts(
        &self,
    ) -> Result<
        (ClipVisionModelWithProjection, AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel),
        LoadError,
    > {
        match &self.resident {
            Some(c) => Ok((c.image_encoder.clone(), c.vae.clone(), c.unet.clone())),
            None => Ok((self.load_image_encoder()?.0, self.load_vae()?.0, self.load_unet()?.0)),
        }
    }
}

/// The scheduler's elementwise input scaling on [B, T, C, H, W].
fn scale_5d(s: &Scheduler, x: Tensor<5>, i: usize) -> Tensor<5> {
    let dims = x.dims();
    s.scale_model_input(x.reshape([dims[0] * dims[1], dims[2], dims[3], dims[4]]), i).reshape(dims)
}

/// The scheduler's elementwise step on [B, T, C, H, W].
fn step_5d(s: &Scheduler, out: Tensor<5>, i: usize, sample: Tensor<5>, noise: &mut StepNoise) -> Tensor<5> {
    let dims = sample.dims();
    let flat = |t: Tensor<5>| t.reshape([dims[0] * dims[1], dims[2], dims[3], dims[4]]);
    s.step(flat(out), i, flat(sample), noise).reshape(dims)
}
