//! diffusers' `WanPipeline` (text to video) and `WanImageToVideoPipeline` (a picture, and
//! optionally a last picture, to video) for Wan 2.1 and Wan 2.2's two-expert A14B models.
//!
//! The prompt and the negative prompt are cleaned (`prompt_clean`), tokenized to at most
//! `max_sequence_length` tokens, encoded by UMT5, cut to their true length and zero-padded back
//! to `max_sequence_length` rows (the transformer's cross-attention sees the zero rows, as in
//! diffusers). Sampling runs the flow-matching scheduler from the folder (UniPC or Euler) with
//! classifier-free guidance as two passes per step (conditional, then unconditional). The latents
//! are unnormalised with the VAE's per-channel mean and std and decoded one latent frame at a
//! time, each frame read back to the host as it comes.
//!
//! Wan 2.2 A14B folders hold two transformers and `model_index.json`'s `boundary_ratio`:
//! `transformer` (the high-noise expert, with `guidance`) runs the steps whose timestep is at
//! least `boundary_ratio * num_train_timesteps`, `transformer_2` (low noise, `guidance_2`) the
//! rest. Image to video adds the picture's VAE latents and a frame mask to the transformer's
//! input channels ([`super::image_condition`]).
//!
//! Memory: the text encoder runs once per request, on its own device (the CPU by default on
//! GPUs with little memory, see [`WanOptions`]), and is freed before sampling unless the model
//! is resident; in [`MemoryMode::Low`] the transformers and the VAE are also loaded only for
//! their phase, one expert at a time (the second loaded at the boundary, after the first is
//! freed).

use crate::device::{self, DeviceChoice, OpenedDevice};
use crate::diffusers::clip::image_processor::ClipImageProcessor;
use crate::diffusers::clip::vision::{ClipVisionConfig, ClipVisionModelWithProjection};
use crate::diffusers::common::flow_scheduler::FlowScheduler;
use crate::diffusers::common::folder::{ModelFolder, Precision};
use crate::diffusers::common::lora::LoraUse;
use crate::diffusers::common::video::{GeneratedVideo, MemoryMode};
use crate::diffusers::common::weights::{LoadError, Weights};
use crate::diffusers::umt5::encoder::{UMT5Config, UMT5EncoderModel};
use crate::diffusers::umt5::tokenizer::{T5Tokenizer, prompt_clean};
use crate::diffusers::wan::autoencoder_kl_wan::{AutoencoderKLWan, WanVaeConfig};
use crate::diffusers::wan::image_condition;
use crate::diffusers::wan::transformer_wan::{Rotary, WanTransformer3DModel, WanTransformerConfig};
use crate::generate::{GenerateError, Progress};
use crate::rng::Rng;
use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One request; defaults are diffusers' `WanPipeline.__call__`'s.
#[derive(Debug, Clone)]
pub struct WanRequest {
    pub prompt: String,
    /// Empty for none (diffusers' default).
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    /// Of the form 4k + 1.
    pub frames: usize,
    pub steps: usize,
    /// Classifier-free guidance; at most 1 runs the conditional pass only.
    pub guidance: f32,
    /// The low-noise expert's guidance (two-expert models); `guidance` when absent.
    pub guidance_2: Option<f32>,
    /// The first frame (image-to-video folders only, where it is required).
    pub image: Option<RgbImage>,
    /// The last frame (image-to-video only).
    pub last_image: Option<RgbImage>,
    pub seed: u64,
    /// Initial latents [1, z_dim, (frames - 1) / 4 + 1, H / 8, W / 8], as diffusers' `latents`.
    pub noise: Option<Vec<f32>>,
    /// Text tokens per prompt (diffusers' `max_sequence_length`).
    pub max_sequence_length: usize,
}

impl WanRequest {
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            width: 832,
            height: 480,
            frames: 81,
            steps: 50,
            guidance: 5.0,
            guidance_2: None,
            image: None,
            last_image: None,
            seed: 0,
            noise: None,
            max_sequence_length: 512,
        }
    }
}

/// Where the text encoder runs. UMT5-xxl has 5.7 billion parameters: on a GPU with little
/// memory it runs on the CPU, once per request, and only its output crosses over.
#[derive(Debug, Clone)]
pub struct WanOptions {
    pub text_device: Device,
    pub text_dtype: DType,
    pub memory: MemoryMode,
    /// LoRAs merged into the transformer at load (diffusers or ComfyUI naming).
    pub loras: Vec<LoraUse>,
    /// LoRAs merged into `transformer_2`, the low-noise expert of a two-expert folder.
    pub loras_2: Vec<LoraUse>,
    /// Block swap: the transformer blocks each expert keeps on the device; the others stay in
    /// host memory and are copied over for each pass. `None`: all on the device.
    pub gpu_blocks: Option<usize>,
}

/// GPUs with less memory than this run the text encoder on the CPU: UMT5-xxl's weights take
/// 11 GiB in bf16, next to the transformer's and the activations.
pub const TEXT_ENCODER_GPU_MIN_BYTES: u64 = 24 << 30;

impl WanOptions {
    /// Everything on one device and precision.
    pub fn on(device: &Device, dtype: DType, memory: MemoryMode) -> Self {
        Self {
            text_device: device.clone(),
            text_dtype: dtype,
            memory,
            loras: Vec::new(),
            loras_2: Vec::new(),
            gpu_blocks: None,
        }
    }

    /// Sorts LoRAs between the experts as Wan 2.2's ship: a file named for the high-noise
    /// model (`high_noise_model.safetensors`, `..._HIGH_fp16.safetensors`) updates
    /// `transformer`, one for the low-noise model `transformer_2`, any other both (diffusers'
    /// `load_lora_weights`, once more with `load_into_transformer_2`). A folder with one
    /// transformer takes them all.
    pub fn with_loras(mut self, loras: Vec<LoraUse>) -> Self {
        for l in loras {
            let (high, low) = (expert_named(&l.lora.name(), "high"), expert_named(&l.lora.name(), "low"));
            if high || !low {
                self.loras.push(l.clone());
            }
            if low || !high {
                self.loras_2.push(l);
            }
        }
        self
    }

    /// The text encoder on the GPU in bf16 when the driver says it has room
    /// ([`TEXT_ENCODER_GPU_MIN_BYTES`]), else on the CPU in f32 (T5 models overflow in f16).
    pub fn auto(opened: &OpenedDevice, memory: MemoryMode) -> Self {
        let roomy = opened.gpu && device::memory_bytes(opened.choice).is_some_and(|b| b >= TEXT_ENCODER_GPU_MIN_BYTES);
        if roomy {
            Self::on(&opened.device, DType::BF16, memory)
        } else {
            let cpu = device::open(DeviceChoice::Cpu).map(|d| d.device).unwrap_or_else(|_| opened.device.clone());
            Self::on(&cpu, DType::F32, memory)
        }
    }
}

#[derive(Clone)]
struct Components {
    text_encoder: UMT5EncoderModel,
    image_encoder: Option<ClipVisionModelWithProjection>,
    transformer: WanTransformer3DModel,
    transformer_2: Option<WanTransformer3DModel>,
    vae: AutoencoderKLWan,
}

/// What a folder's pipeline makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanTask {
    TextToVideo,
    ImageToVideo,
}

/// Which transformer a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expert {
    High,
    Low,
}

#[derive(Clone)]
pub struct Wan {
    folder: ModelFolder,
    tokenizer: T5Tokenizer,
    text_config: UMT5Config,
    pub transformer_config: WanTransformerConfig,
    pub task: WanTask,
    /// The timestep (`boundary_ratio * num_train_timesteps`) below which `transformer_2` runs.
    pub boundary: Option<f32>,
    pub vae_config: WanVaeConfig,
    /// Wan 2.1 image to video: the CLIP image encoder's config (and its path) and its image
    /// processor.
    image_encoder: Option<(ClipVisionConfig, PathBuf, ClipImageProcessor)>,
    scheduler_path: PathBuf,
    pub device: Device,
    pub dtype: DType,
    pub options: WanOptions,
    resident: Option<Components>,
    /// Tensors loaded, all components.
    pub parameters: usize,
}

impl Wan {
    /// diffusers' pipeline classes this runs (`model_index.json`'s `_class_name`).
    pub const PIPELINE_CLASS: &str = "WanPipeline";
    pub const IMAGE_PIPELINE_CLASS: &str = "WanImageToVideoPipeline";

    /// Opens a diffusers `WanPipeline` or `WanImageToVideoPipeline` folder: reads and checks
    /// every config, the tokenizer and the image processor, and loads every component once
    /// (each checked tensor by tensor), keeping them when resident.
    pub fn load(root: &Path, device: &Device, dtype: DType, options: WanOptions) -> Result<Self, LoadError> {
        let mut options = options;
        let folder = ModelFolder::open(root)?;
        let task = if folder.class_name == Self::IMAGE_PIPELINE_CLASS {
            WanTask::ImageToVideo
        } else {
            folder.expect_class(Self::PIPELINE_CLASS)?;
            WanTask::TextToVideo
        };
        let loras = options.loras.iter().chain(&options.loras_2);
        if let Some(other) = loras.flat_map(|l| l.lora.components()).find(|c| *c != "transformer") {
            return Err(LoadError::config(root, "lora", other, "a Wan LoRA updates the transformer"));
        }
        let index_path = root.join("model_index.json");
        let index = &folder.index;
        if index.get("expand_timesteps").and_then(|v| v.as_bool()) == Some(true) {
            return Err(LoadError::config(
                &index_path,
                "expand_timesteps",
                true,
                "per-frame timesteps (Wan 2.2 TI2V-5B) are not supported yet",
            ));
        }
        let boundary_ratio = index.get("boundary_ratio").and_then(|v| v.as_f64());
        if let Some(r) = boundary_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(LoadError::config(&index_path, "boundary_ratio", r, "a fraction of the timesteps, 0..=1"));
        }
        if boundary_ratio.is_some() && !folder.components.iter().any(|c| c == "transformer_2") {
            return Err(LoadError::config(
                &index_path,
                "transformer_2",
                "null",
                "a boundary_ratio switches to transformer_2, which the folder lacks",
            ));
        }
        let tokenizer = T5Tokenizer::from_file(&folder.config("tokenizer", "tokenizer.json")?)?;
        let text_path = folder.config("text_encoder", "config.json")?;
        let text_config = UMT5Config::read(&text_path)?;
        let transformer_path = folder.config("transformer", "config.json")?;
        let transformer_config = WanTransformerConfig::read(&transformer_path)?;
        let vae_config = WanVaeConfig::read(&folder.config("vae", "config.json")?)?;
        if transformer_config.text_dim != text_config.d_model {
            return Err(LoadError::config(
                &transformer_path,
                "text_dim",
                transformer_config.text_dim,
                &format!("the text encoder gives {} features", text_config.d_model),
            ));
        }
        let z = vae_config.z_dim;
        let in_channels = match task {
            WanTask::TextToVideo => z,
            // Noise, mask and condition latents.
            WanTask::ImageToVideo => 2 * z + vae_config.scale_factor_temporal(),
        };
        let experts: &[&str] =
            if boundary_ratio.is_some() { &["transformer", "transformer_2"] } else { &["transformer"] };
        for expert in experts {
            let path = folder.config(expert, "config.json")?;
            let c = WanTransformerConfig::read(&path)?;
            if c.in_channels != in_channels || c.out_channels() != z {
                return Err(LoadError::config(
                    &path,
                    "in_channels",
                    c.in_channels,
                    &format!("this pipeline gives {in_channels} input channels and the VAE has {z} latent channels"),
                ));
            }
            if (c.text_dim, c.inner_dim(), c.attention_head_dim, c.patch_size)
                != (
                    transformer_config.text_dim,
                    transformer_config.inner_dim(),
                    transformer_config.attention_head_dim,
                    transformer_config.patch_size,
                )
            {
                return Err(LoadError::config(
                    &path,
                    "attention_head_dim",
                    c.attention_head_dim,
                    "the two experts must share their widths and patch size",
                ));
            }
        }
        let image_encoder = match transformer_config.image_dim {
            None => None,
            Some(image_dim) => {
                let path = folder.config("image_encoder", "config.json")?;
                let config = ClipVisionConfig::read(&path)?;
                if config.hidden_size != image_dim {
                    return Err(LoadError::config(
                        &transformer_path,
                        "image_dim",
                        image_dim,
                        &format!("the image encoder gives {} features", config.hidden_size),
                    ));
                }
                let tokens = (config.image_size / config.patch_size).pow(2) + 1;
                if let Some(n) = transformer_config.pos_embed_seq_len
                    && n != 2 * tokens
                {
                    return Err(LoadError::config(
                        &transformer_path,
                        "pos_embed_seq_len",
                        n,
                        &format!("two pictures' image tokens are {}", 2 * tokens),
                    ));
                }
                let processor =
                    ClipImageProcessor::read(&folder.config("image_processor", "preprocessor_config.json")?)?;
                Some((config, path, processor))
            }
        };
        let scheduler_path = folder.config("scheduler", "scheduler_config.json")?;
        FlowScheduler::from_folder_config(&scheduler_path, 1)?;
        let scheduler_raw: serde_json::Value = crate::diffusers::common::config::read_json(&scheduler_path)?;
        let train_steps = scheduler_raw.get("num_train_timesteps").and_then(|v| v.as_f64()).unwrap_or(1000.0);
        let boundary = boundary_ratio.map(|r| (r * train_steps) as f32);
        if boundary.is_none() {
            // One transformer: a LoRA sorted to the second expert by its name is for it too.
            for l in std::mem::take(&mut options.loras_2) {
                if !options.loras.iter().any(|m| Arc::ptr_eq(&m.lora, &l.lora)) {
                    options.loras.push(l);
                }
            }
        }
        let mut wan = Self {
            folder,
            tokenizer,
            text_config,
            transformer_config,
            task,
            boundary,
            vae_config,
            image_encoder,
            scheduler_path,
            device: device.clone(),
            dtype,
            options,
            resident: None,
            parameters: 0,
        };
        let (text_encoder, a) = wan.load_text_encoder()?;
        let (transformer, b) = wan.load_transformer(Expert::High)?;
        let (transformer_2, b2) = match wan.boundary {
            Some(_) => {
                let (t, n) = wan.load_transformer(Expert::Low)?;
                (Some(t), n)
            }
            None => (None, 0),
        };
        let (vae, c) = wan.load_vae()?;
        let (image_encoder, d) = match wan.image_encoder {
            Some(_) => {
                let (e, n) = wan.load_image_encoder()?;
                (Some(e), n)
            }
            None => (None, 0),
        };
        wan.parameters = a + b + b2 + c + d;
        if wan.options.memory == MemoryMode::Resident {
            wan.resident = Some(Components { text_encoder, image_encoder, transformer, transformer_2, vae });
        }
        Ok(wan)
    }

    pub fn root(&self) -> &Path {
        &self.folder.root
    }

    fn load_text_encoder(&self) -> Result<(UMT5EncoderModel, usize), LoadError> {
        let o = &self.options;
        self.folder.load_component("text_encoder", "model", &o.text_device, o.text_dtype, |w| {
            UMT5EncoderModel::load(&w.root(), &self.text_config)
        })
    }

    fn load_transformer(&self, expert: Expert) -> Result<(WanTransformer3DModel, usize), LoadError> {
        let (name, loras) = match expert {
            Expert::High => ("transformer", &self.options.loras),
            Expert::Low => ("transformer_2", &self.options.loras_2),
        };
        let config = match expert {
            Expert::High => self.transformer_config.clone(),
            Expert::Low => WanTransformerConfig::read(&self.folder.config(name, "config.json")?)?,
        };
        let (device, dtype) = (&self.device, self.dtype);
        let rename = |original: &str| super::lora_names::diffusers_module(original);
        let precision = if dtype == DType::F32 { Precision::F32 } else { Precision::F16 };
        let files = self.folder.weights(name, "diffusion_pytorch_model", precision)?;
        // A LoRA's entries name `transformer`: each expert takes them as its own.
        let weights = Weights::open(&files, device, dtype)?.with_loras("transformer", loras, &rename)?;
        let mut model = WanTransformer3DModel::load(&weights.root(), &config)?;
        weights.finish()?;
        if let Some(keep) = self.options.gpu_blocks.filter(|&n| n < config.num_layers) {
            let host = crate::device::open(DeviceChoice::Cpu).map_err(|e| {
                LoadError::config(&self.folder.root, "gpu_blocks", keep, &format!("no host device: {e}"))
            })?;
            model.swap_blocks(keep, &host.device);
        }
        Ok((model, weights.len()))
    }

    /// The CLIP image encoder, in f32 (diffusers' Wan 2.1 examples load it so).
    fn load_image_encoder(&self) -> Result<(ClipVisionModelWithProjection, usize), LoadError> {
        let Some((config, path, _)) = &self.image_encoder else {
            return Err(LoadError::config(&self.folder.root, "image_encoder", "null", "this model has none"));
        };
        self.folder.load_component("image_encoder", "model", &self.device, DType::F32, |w| {
            ClipVisionModelWithProjection::load_without_projection(w, config, path)
        })
    }

    /// The VAE runs in f32 (diffusers' Wan pipelines keep it there).
    fn load_vae(&self) -> Result<(AutoencoderKLWan, usize), LoadError> {
        self.folder.load_component("vae", "diffusion_pytorch_model", &self.device, DType::F32, |w| {
            AutoencoderKLWan::load(&w.root(), &self.vae_config)
        })
    }

    /// Frames per latent frame, and pixels per latent pixel.
    pub fn scale_factors(&self) -> (usize, usize) {
        (self.vae_config.scale_factor_temporal(), 8)
    }

    /// The latent shape [channels, frames, height, width] of a request.
    pub fn latent_shape(&self, req: &WanRequest) -> [usize; 4] {
        let (t, s) = self.scale_factors();
        [self.vae_config.z_dim, (req.frames - 1) / t + 1, req.height / s, req.width / s]
    }

    pub fn validate(&self, req: &WanRequest) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::InvalidRequest(m));
        let (t, s) = self.scale_factors();
        let unit = s * self.transformer_config.patch_size[1].max(self.transformer_config.patch_size[2]);
        if req.width == 0 || req.height == 0 || !req.width.is_multiple_of(unit) || !req.height.is_multiple_of(unit) {
            return bad(format!(
                "width and height must be positive multiples of {unit}, got {}x{}",
                req.width, req.height
            ));
        }
        if req.width * req.height > 1920 * 1088 {
            return bad(format!("{}x{} is too large (at most 1920x1088 pixels)", req.width, req.height));
        }
        if req.frames == 0 || !(req.frames - 1).is_multiple_of(t) || req.frames > 257 {
            return bad(format!("frames must be of the form {t}k + 1, at most 257, got {}", req.frames));
        }
        if req.steps == 0 || req.steps > 500 {
            return bad(format!("steps must be 1..=500, got {}", req.steps));
        }
        if !req.guidance.is_finite() || !(0.0..=50.0).contains(&req.guidance) {
            return bad(format!("guidance must be 0..=50, got {}", req.guidance));
        }
        if let Some(g) = req.guidance_2 {
            if self.boundary.is_none() {
                return bad("guidance 2 is for two-expert (Wan 2.2 A14B) models; this one has one transformer".into());
            }
            if !g.is_finite() || !(0.0..=50.0).contains(&g) {
                return bad(format!("guidance 2 must be 0..=50, got {g}"));
            }
        }
        match self.task {
            WanTask::TextToVideo if req.image.is_some() || req.last_image.is_some() => {
                return bad("this is a text-to-video model: it takes no picture".into());
            }
            WanTask::ImageToVideo if req.image.is_none() => {
                return bad("this image-to-video model needs a picture to start from".into());
            }
            _ => {}
        }
        if self.image_encoder.is_some() {
            match (self.transformer_config.pos_embed_seq_len, &req.last_image) {
                (Some(_), None) => return bad("this first-last-frame model needs a last frame".into()),
                (None, Some(_)) => {
                    return bad("this model takes no last frame (Wan 2.1's first-last-frame model does)".into());
                }
                _ => {}
            }
        }
        if req.last_image.is_some() && req.frames < 2 {
            return bad("a clip with a last frame needs at least 2 frames".into());
        }
        if req.max_sequence_length == 0 || req.max_sequence_length > 4096 {
            return bad(format!("max sequence length must be 1..=4096, got {}", req.max_sequence_length));
        }
        let [c, f, h, w] = self.latent_shape(req);
        let transformer = &self.transformer_config;
        let [pt, ph, pw] = transformer.patch_size;
        if f % pt != 0 || h % ph != 0 || w % pw != 0 {
            return bad(format!("the latent {f}x{h}x{w} is not a whole number of {pt}x{ph}x{pw} patches"));
        }
        if [f / pt, h / ph, w / pw].iter().any(|&g| g > transformer.rope_max_seq_len) {
            return bad(format!(
                "{}x{} x {} frames is beyond the model's position table",
                req.width, req.height, req.frames
            ));
        }
        if let Some(noise) = &req.noise {
            let want = c * f * h * w;
            if noise.len() != want || noise.iter().any(|v| !v.is_finite()) {
                return bad(format!("noise must hold {want} finite values ([1, {c}, {f}, {h}, {w}])"));
            }
        }
        Ok(())
    }

    /// One prompt's UMT5 states, cut to the true length and zero-padded to
    /// `max_sequence_length` rows: [1, max_sequence_length, d_model] on the main device, in f32.
    fn encode_prompt(
        &self,
        encoder: &UMT5EncoderModel,
        text: &str,
        max_len: usize,
    ) -> Result<Tensor<3>, GenerateError> {
        let ids = self
            .tokenizer
            .encode(&prompt_clean(text), max_len)
            .map_err(|e| GenerateError::InvalidRequest(e.to_string()))?;
        let states = encoder.forward(&ids).cast(DType::F32);
        let [_, len, d] = states.dims();
        let values = states
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| GenerateError::InvalidRequest(format!("reading the text encoding back: {e:?}")))?;
        let mut padded = values;
        padded.resize(max_len * d, 0.0);
        debug_assert!(len <= max_len);
        Ok(Tensor::from_data(TensorData::new(padded, [1, max_len, d]), &self.device))
    }

    /// The conditioning an image-to-video request adds to the transformer's input (mask and
    /// picture latents, [`image_condition::build`]); none for text to video.
    pub fn image_condition(&self, req: &WanRequest) -> Result<Option<Tensor<5>>, GenerateError> {
        let Some(image) = &req.image else { return Ok(None) };
        let owned;
        let vae = match &self.resident {
            Some(c) => &c.vae,
            None => {
                owned =
                    self.load_vae().map_err(|e| GenerateError::InvalidRequest(format!("loading the model: {e}")))?.0;
                &owned
            }
        };
        let first = image_condition::preprocess(image, req.width, req.height);
        let last = req.last_image.as_ref().map(|l| image_condition::preprocess(l, req.width, req.height));
        Ok(Some(image_condition::build(vae, &self.vae_config, &first, last.as_ref(), req.frames, &self.device)))
    }

    /// A Wan 2.1 image model's image tokens: the CLIP image encoder's penultimate states of the
    /// picture (and the last picture) [pictures, tokens, image_dim] on the main device; none for
    /// other models.
    pub fn image_tokens(&self, req: &WanRequest) -> Result<Option<Tensor<3>>, GenerateError> {
        let (Some((_, _, processor)), Some(image)) = (&self.image_encoder, &req.image) else { return Ok(None) };
        let owned;
        let encoder = match self.resident.as_ref().and_then(|c| c.image_encoder.as_ref()) {
            Some(e) => e,
            None => {
                owned = self
                    .load_image_encoder()
                    .map_err(|e| GenerateError::InvalidRequest(format!("loading the model: {e}")))?
                    .0;
                &owned
            }
        };
        let pixels: Vec<Tensor<4>> = std::iter::once(image)
            .chain(req.last_image.as_ref())
            .map(|picture| {
                let p = processor.preprocess(picture);
                Tensor::<3>::from_data(TensorData::new(p.data, [3, p.height, p.width]), &self.device).unsqueeze::<4>()
            })
            .collect();
        Ok(Some(encoder.penultimate_states(Tensor::cat(pixels, 0)).cast(DType::F32)))
    }

    /// Makes a video from text (and a picture, for an image-to-video folder), calling `on_progress` after every step and stopping when
    /// `cancelled`.
    pub fn generate(
        &self,
        req: &WanRequest,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<GeneratedVideo, GenerateError> {
        self.validate(req)?;
        let load_err = |e: LoadError| GenerateError::InvalidRequest(format!("loading the model: {e}"));
        let started = Instant::now();
        let device = &self.device;
        // diffusers' `do_classifier_free_guidance` looks at `guidance_scale` only: with it at
        // most 1 neither expert runs the unconditional pass.
        let guided = guided_at(req.guidance);
        let mut scheduler = FlowScheduler::from_folder_config(&self.scheduler_path, req.steps).map_err(load_err)?;

        // Phase 1: the text, once per request.
        let (text, negative) = {
            let owned;
            let encoder = match &self.resident {
                Some(c) => &c.text_encoder,
                None => {
                    owned = self.load_text_encoder().map_err(load_err)?.0;
                    &owned
                }
            };
            let text = self.encode_prompt(encoder, &req.prompt, req.max_sequence_length)?;
            let negative = if guided {
                Some(self.encode_prompt(encoder, &req.negative_prompt, req.max_sequence_length)?)
            } else {
                None
            };
            (text, negative)
        };

        // The picture's condition (image to video), with the VAE, which low-memory mode then
        // frees until decoding.
        let shape = self.latent_shape(req);
        let [c, f, h, w] = shape;
        let condition = self.image_condition(req)?;
        let image_tokens = self.image_tokens(req)?;
        let encode_seconds = started.elapsed().as_secs_f64();
        if cancelled() {
            return Err(GenerateError::Cancelled);
        }

        // Phase 2: sampling, each step by the expert its timestep falls to.
        let sampling_started = Instant::now();
        let noise = match &req.noise {
            Some(n) => n.clone(),
            None => Rng::new(req.seed).normals(c * f * h * w),
        };
        let mut latents = Tensor::<5>::from_data(TensorData::new(noise, [1, c, f, h, w]), device);
        {
            // The expert in use, with the text through its own text embedder.
            struct Current {
                expert: Expert,
                owned: Option<WanTransformer3DModel>,
                text: Tensor<3>,
                negative: Option<Tensor<3>>,
                image: Option<Tensor<3>>,
            }
            let mut current: Option<Current> = None;
            let resident = |expert: Expert| {
                self.resident.as_ref().map(|c| match expert {
                    Expert::High => &c.transformer,
                    Expert::Low => c.transformer_2.as_ref().expect("a boundary loads transformer_2"),
                })
            };
            let grid = {
                let [pt, ph, pw] = self.transformer_config.patch_size;
                [f / pt, h / ph, w / pw]
            };
            let rotary = Rotary::new(&self.transformer_config, grid, device);
            let total = scheduler.num_steps();
            for i in 0..total {
                if cancelled() {
                    return Err(GenerateError::Cancelled);
                }
                let t = [scheduler.timesteps()[i]];
                let expert = match self.boundary {
                    Some(b) if t[0] < b => Expert::Low,
                    _ => Expert::High,
                };
                if current.as_ref().is_none_or(|c| c.expert != expert) {
                    // Free the other expert before loading this one.
                    drop(current.take());
                    let owned = match resident(expert) {
                        Some(_) => None,
                        None => Some(self.load_transformer(expert).map_err(load_err)?.0),
                    };
                    let model = owned.as_ref().or(resident(expert)).expect("an expert is loaded");
                    let text = model.embed_text(text.clone());
                    let negative = negative.clone().map(|n| model.embed_text(n));
                    let image = match (&model.image_embedder, &image_tokens) {
                        (Some(embedder), Some(tokens)) => Some(embedder.forward(tokens.clone())),
                        _ => None,
                    };
                    current = Some(Current { expert, owned, text, negative, image });
                }
                let now = current.as_ref().expect("an expert is chosen");
                let transformer = now.owned.as_ref().or(resident(expert)).expect("an expert is loaded");
                let guidance = match expert {
                    Expert::High => req.guidance,
                    Expert::Low => req.guidance_2.unwrap_or(req.guidance),
                };
                let input = match &condition {
                    Some(condition) => Tensor::cat(vec![latents.clone(), condition.clone()], 1),
                    None => latents.clone(),
                }
                .cast(self.dtype);
                let cond = transformer.forward(input.clone(), &t, &now.text, &rotary, now.image.as_ref());
                // With guidance on (the first expert's above 1), a scale of exactly 1 is the
                // conditional prediction: its unconditional pass is skipped.
                let prediction = match &now.negative {
                    Some(negative) if guidance != 1.0 => {
                        let uncond = transformer.forward(input, &t, negative, &rotary, now.image.as_ref());
                        uncond.clone() + (cond - uncond) * guidance
                    }
                    _ => cond,
                };
                latents = scheduler.step(prediction, i, latents);
                on_progress(Progress::new(i + 1, total));
            }
        }
        let sampling_seconds = sampling_started.elapsed().as_secs_f64();

        // Phase 3: decoding, one latent frame at a time, each read back as it comes.
        let decode_started = Instant::now();
        let owned;
        let vae = match &self.resident {
            Some(c) => &c.vae,
            None => {
                owned = self.load_vae().map_err(load_err)?.0;
                &owned
            }
        };
        let stats =
            |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [c]), device).reshape([1, c, 1, 1, 1]);
        let inv_std: Vec<f32> = self.vae_config.latents_std.iter().map(|s| 1.0 / s).collect();
        let z = latents / stats(&inv_std) + stats(&self.vae_config.latents_mean);
        let (width, height) = (req.width, req.height);
        let mut frames = Vec::with_capacity(req.frames);
        let mut failure = None;
        vae.decode_each(z, |chunk: Tensor<5>| {
            if failure.is_some() {
                return;
            }
            // [1, 3, n, H, W] in [-1, 1] -> n frames of [H, W, 3] in [0, 1].
            let n = chunk.dims()[2];
            let rgb = (chunk / 2.0 + 0.5).clamp(0.0, 1.0).permute([0, 2, 3, 4, 1]);
            match rgb.into_data().convert::<f32>().try_to_vec::<f32>() {
                Ok(data) => frames.extend(data.chunks(height * width * 3).take(n).map(|c| c.to_vec())),
                Err(e) => failure = Some(format!("reading frames back: {e:?}")),
            }
        });
        if let Some(message) = failure {
            return Err(GenerateError::InvalidRequest(message));
        }
        Ok(GeneratedVideo {
            width,
            height,
            frames,
            encode_seconds,
            sampling_seconds,
            decode_seconds: decode_started.elapsed().as_secs_f64(),
        })
    }
}

/// Whether a guidance scale runs the unconditional pass (diffusers: `guidance_scale > 1`).
fn guided_at(guidance: f32) -> bool {
    guidance > 1.0
}

/// Whether a LoRA file's name says it is for the `which` ("high" or "low") noise expert: the
/// word on its own (`_HIGH_`) or run into "noise" (`high_noise`, `highnoise`).
fn expert_named(file: &str, which: &str) -> bool {
    let lower = file.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    words.contains(&which) || words.contains(&format!("{which}noise").as_str())
}

#[cfg(test)]
mod tests {
    use super::expert_named;

    #[test]
    fn lora_files_are_sorted_to_the_expert_their_name_says() {
        for (file, high, low) in [
            ("high_noise_model.safetensors", true, false),
            ("low_noise_model.safetensors", false, true),
            ("Wan2.2-Lightning_I2V-A14B-4steps-lora_HIGH_fp16.safetensors", true, false),
            ("Wan2.2-Lightning_I2V-A14B-4steps-lora_LOW_fp16.safetensors", false, true),
            ("wan22_highnoise_style.safetensors", true, false),
            ("lightx2v_I2V_14B_480p_cfg_step_distill_rank64.safetensors", false, false),
            ("highlights.safetensors", false, false),
        ] {
            assert_eq!((expert_named(file, "high"), expert_named(file, "low")), (high, low), "{file}");
        }
    }
}
