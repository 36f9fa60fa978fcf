//! Instruction-based image editing, as diffusers' `StableDiffusionInstructPix2PixPipeline` does
//! it (InstructPix2Pix, MagicBrush): a Stable Diffusion whose UNet takes 8 channels, the noisy
//! latents next to the input image's latents (the VAE encoder's mode, not scaled), guided by a
//! batch of three: (instruction, image), (negative, image), (negative, no image).

use super::pipeline::{GeneratedImage, StableDiffusion};
use crate::diffusers::common::image_processing::Planar;
use crate::diffusers::common::latent_preview::latent_to_rgb;
use crate::diffusers::common::scheduler::{Kind, Scheduler, StepNoise};
use crate::diffusers::common::weights::LoadError;
use crate::generate::{GenerateError, PreviewClock, Progress};
use crate::rng::Rng;
use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;
use std::path::Path;
use std::time::Instant;

/// One edit of one image.
#[derive(Debug, Clone)]
pub struct EditRequest {
    /// The instruction ("make it a fireman").
    pub prompt: String,
    pub negative: String,
    pub steps: usize,
    /// Text guidance (diffusers' `guidance_scale`, 7.5).
    pub guidance: f32,
    /// Image guidance (`image_guidance_scale`, 1.5): how closely the result keeps the input.
    pub image_guidance: f32,
    pub seed: u64,
    /// Initial latents [1, 4, H/8, W/8], unscaled (diffusers' `latents`); drawn from `seed`
    /// when absent.
    pub noise: Option<Vec<f32>>,
    /// An ancestral scheduler's noise, one [1, 4, H/8, W/8] per step in order; drawn from
    /// `seed` when absent.
    pub step_noise: Option<Vec<Vec<f32>>>,
    /// The sampler; the folder's own scheduler class when absent.
    pub scheduler: Option<Kind>,
}

impl EditRequest {
    /// diffusers' defaults for an instruction.
    pub fn new(prompt: &str) -> Self {
        Self {
            prompt: prompt.into(),
            negative: String::new(),
            steps: 100,
            guidance: 7.5,
            image_guidance: 1.5,
            seed: 0,
            noise: None,
            step_noise: None,
            scheduler: None,
        }
    }

    /// Both guidances apply (three UNet passes per step) only when g > 1 and g_image >= 1, as
    /// in diffusers; otherwise one pass follows the instruction and the image unguided.
    pub fn guided(&self) -> bool {
        self.guidance > 1.0 && self.image_guidance >= 1.0
    }
}

/// An instruction editor: Stable Diffusion's parts with an 8-channel UNet.
#[derive(Clone)]
pub struct InstructPix2Pix {
    pub sd: StableDiffusion,
}

impl InstructPix2Pix {
    /// diffusers' pipeline class this runs (`model_index.json`'s `_class_name`).
    pub const PIPELINE_CLASS: &str = "StableDiffusionInstructPix2PixPipeline";

    /// Loads a diffusers `StableDiffusionInstructPix2PixPipeline` folder. `dtype` is F32 or F16.
    pub fn load(root: &Path, device: &Device, dtype: DType) -> Result<Self, LoadError> {
        let sd = StableDiffusion::load_as(root, device, dtype, Self::PIPELINE_CLASS, &[])?;
        let latent = sd.vae.config.latent_channels;
        if sd.unet.config.in_channels != 2 * latent {
            return Err(LoadError::config(
                &root.join("unet/config.json"),
                "in_channels",
                sd.unet.config.in_channels,
                &format!("an editor's UNet takes the noisy latents and the image latents: {} channels", 2 * latent),
            ));
        }
        Ok(Self { sd })
    }

    /// Image pixels per latent pixel.
    pub fn scale_factor(&self) -> usize {
        self.sd.scale_factor()
    }

    /// The side the model was trained at (512 for InstructPix2Pix).
    pub fn native_side(&self) -> usize {
        self.sd.unet.config.sample_size.unwrap_or(64) * self.scale_factor()
    }

    /// The output size for an input of `width` x `height`: its aspect, with the longer side at
    /// the model's native size, both sides multiples of the latent scale.
    pub fn size_for(&self, width: usize, height: usize) -> (usize, usize) {
        let f = self.scale_factor();
        let side = self.native_side() as f64;
        let scale = side / width.max(height).max(1) as f64;
        let round = |v: usize| ((((v as f64 * scale) / f as f64).round() as usize).max(1)) * f;
        (round(width), round(height))
    }

    pub fn validate(&self, width: usize, height: usize, req: &EditRequest) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::InvalidRequest(m));
        let f = self.scale_factor();
        if req.prompt.trim().is_empty() {
            return bad("the instruction is empty: say what to change (\"make it snow\")".into());
        }
        if width == 0 || height == 0 || !width.is_multiple_of(f) || !height.is_multiple_of(f) {
            return bad(format!("width and height must be positive multiples of {f}, got {width}x{height}"));
        }
        if width * height > 2048 * 2048 {
            return bad(format!("{width}x{height} is too large (at most 2048x2048 pixels)"));
        }
        if req.steps == 0 || req.steps > 1000 {
            return bad(format!("steps must be 1..=1000, got {}", req.steps));
        }
        for (name, g) in [("guidance", req.guidance), ("image guidance", req.image_guidance)] {
            if !g.is_finite() || !(0.0..=50.0).contains(&g) {
                return bad(format!("{name} must be 0..=50, got {g}"));
            }
        }
        let (h, w) = (height / f, width / f);
        let want = self.sd.vae.config.latent_channels * h * w;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if let Some(noise) = &req.noise
            && (noise.len() != want || !finite(noise))
        {
            return bad(format!("noise must hold {want} finite values ([1, 4, {h}, {w}])"));
        }
        if let Some(steps) = &req.step_noise
            && (steps.len() < req.steps || steps.iter().any(|s| s.len() != want || !finite(s)))
        {
            return bad(format!(
                "step noise must hold {} steps of {want} finite values ([{}, 1, 4, {h}, {w}])",
                req.steps, req.steps
            ));
        }
        Ok(())
    }

    /// Edits `image` (already at the output size: sides multiples of 8) as `req` says, calling
    /// `on_progress` after every step and stopping when `cancelled`.
    pub fn generate(
        &self,
        image: &RgbImage,
        req: &EditRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedImage, GenerateError> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        self.validate(width, height, req)?;
        let sd = &self.sd;
        let started = Instant::now();
        let config = match req.scheduler {
            Some(kind) => sd.scheduler.with_kind(kind),
            None => sd.scheduler.clone(),
        };
        let scheduler = Scheduler::new(&config, req.steps).map_err(GenerateError::InvalidRequest)?;
        let f = self.scale_factor();
        let (h, w) = (height / f, width / f);
        let channels = sd.vae.config.latent_channels;
        let mut rng = Rng::new(req.seed);
        let noise = match &req.noise {
            Some(n) => n.clone(),
            None => rng.normals(channels * h * w),
        };
        let mut step_noise = match &req.step_noise {
            Some(steps) => StepNoise::Recorded(steps.clone()),
            None => StepNoise::seeded(req.seed),
        };
        let guided = req.guided();

        // The image latents: the encoder's mode (its mean), unscaled.
        let pixels = Planar::from_rgb8(image, |v| v * 2.0 - 1.0);
        let x = Tensor::<4>::from_data(TensorData::new(pixels.data, [1, 3, height, width]), &sd.device);
        let image_latents = sd.vae.encode(x.cast(sd.dtype)).0;
        let text = sd.encode_prompt(&req.prompt);
        let (context, image_latents) = if guided {
            let negative = sd.encode_prompt(&req.negative);
            (
                Tensor::cat(vec![text, negative.clone(), negative], 0),
                Tensor::cat(vec![image_latents.clone(), image_latents.clone(), image_latents.zeros_like()], 0),
            )
        } else {
            (text, image_latents)
        };

        let latents = Tensor::<4>::from_data(TensorData::new(noise, [1, channels, h, w]), &sd.device);
        let mut latents = latents * scheduler.init_noise_sigma;
        let total = scheduler.len();
        let mut clock = PreviewClock::default();
        for i in 0..total {
            if cancelled() {
                return Err(GenerateError::Cancelled);
            }
            let t = scheduler.timesteps[i];
            let input = if guided {
                Tensor::cat(vec![latents.clone(), latents.clone(), latents.clone()], 0)
            } else {
                latents.clone()
            };
            // The scheduler scales the noisy latents only; the image latents join after.
            let input = scheduler.scale_model_input(input, i).cast(sd.dtype);
            let input = Tensor::cat(vec![input, image_latents.clone()], 1);
            let batch = input.dims()[0];
            let out = sd.unet.forward(input, &vec![t; batch], &context).cast(DType::F32);
            let out = if guided {
                let mut thirds = out.chunk(3, 0);
                let uncond = thirds.pop().expect("three parts");
                let with_image = thirds.pop().expect("three parts");
                let with_text = thirds.pop().expect("three parts");
                uncond.clone()
                    + (with_text - with_image.clone()) * req.guidance
                    + (with_image - uncond) * req.image_guidance
            } else {
                out
            };
            latents = scheduler.step(out, i, latents, &mut step_noise);
            let preview = clock.due(i + 1, total).then(|| latent_to_rgb(latents.clone().squeeze_dim(0))).flatten();
            on_progress(Progress::new(i + 1, total).with_preview(preview));
        }
        sd.decode(latents, started.elapsed().as_secs_f64())
    }
}

/// `image` resized to `width` x `height` (Lanczos, as diffusers' image processor resizes); the
/// same image when it already has that size.
pub fn fit(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if image.width() as usize == width && image.height() as usize == height {
        return image.clone();
    }
    image::imageops::resize(image, width as u32, height as u32, image::imageops::FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn guidance_applies_as_in_diffusers() {
        let mut r = super::EditRequest::new("add snow");
        assert!(r.guided());
        r.image_guidance = 0.9;
        assert!(!r.guided());
        r.image_guidance = 1.0;
        r.guidance = 1.0;
        assert!(!r.guided());
    }
}
