//! What a run may set beyond a job's parameters: the command line's options for parity with
//! diffusers (its noise, its sampler) and for benchmarks (precision, memory, a warm-up run).
//! Jobs from the queue run with [`Overrides::NONE`]: each model's own choices.

use crate::precision::PrecisionChoice;
use model::device::DeviceChoice;
use model::diffusers::DType;
use model::diffusers::common::lora::LoraUse;
use model::diffusers::common::scheduler::Kind;
use model::diffusers::common::weights::Weights;
use model::generate::GenerateError;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Overrides {
    pub precision: PrecisionChoice,
    /// Initial latents (diffusers' `latents`): a safetensors file with the f32 tensors the
    /// family names (`noise`, and its own extras).
    pub noise: Option<PathBuf>,
    /// A sampler other than the model's scheduler config (families that offer one).
    pub scheduler: Option<Kind>,
    /// Load each component only while it runs, and run the guidance halves one at a time.
    pub low_memory: bool,
    /// One one-step run at the same size first, so the timings leave out kernel compilation and
    /// autotuning (its seconds are `timings.warmup_s`).
    pub warmup: bool,
    /// Where a separate text encoder runs (Wan's UMT5).
    pub text_encoder: TextEncoderPlacement,
    /// Frames the VAE decodes at once (default: as many as the free memory allows).
    pub decode_chunk: Option<usize>,
    /// The built-in model: the files' size (text to video: the side the frames are upscaled
    /// to; an animated picture: its longest side).
    pub size: Option<u32>,
    /// An editor's output size (default: the input's aspect at the model's native size).
    pub edit_size: Option<(u32, u32)>,
    /// Stable Video Diffusion: noise added to the image before encoding it (default 0.02).
    pub noise_aug: Option<f32>,
    /// Stable Video Diffusion: guidance on the first frame (default: 1, or the guidance when
    /// that is lower); it ramps to the guidance on the last.
    pub min_guidance: Option<f32>,
    /// LoRAs merged into the model's weights at load, each at its scale (families that take
    /// them: Stable Diffusion).
    pub loras: Vec<LoraUse>,
    /// Block swap (Wan): the transformer blocks kept on the device, the others streamed from
    /// host memory for each pass.
    pub gpu_blocks: Option<GpuBlocks>,
}

/// How many transformer blocks stay on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuBlocks {
    Count(usize),
    /// As many as the device's free memory holds (where it is known; else all).
    Auto,
}

impl std::str::FromStr for GpuBlocks {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(GpuBlocks::Auto),
            n => n.parse().map(GpuBlocks::Count).map_err(|_| format!("a number of blocks or auto, not {n:?}")),
        }
    }
}

/// Where a text encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextEncoderPlacement {
    /// The GPU when it has 24 GiB or more, else the CPU.
    Auto,
    Cpu,
    /// On the device the model runs on.
    Same,
}

impl Overrides {
    /// Nothing overridden.
    pub const NONE: Overrides = Overrides {
        precision: PrecisionChoice::Auto,
        noise: None,
        scheduler: None,
        low_memory: false,
        warmup: false,
        text_encoder: TextEncoderPlacement::Auto,
        decode_chunk: None,
        size: None,
        edit_size: None,
        noise_aug: None,
        min_guidance: None,
        loras: Vec::new(),
        gpu_blocks: None,
    };

    /// The tensors `(key, shape, required)` of the noise file, in order, each as f32 of exactly
    /// its shape (the file opened once); all `None` without a noise file, and one `None` where
    /// the key is absent and not required.
    pub fn noise_tensors(&self, wanted: &[(&str, &[usize], bool)]) -> Result<Vec<Option<Vec<f32>>>, GenerateError> {
        let Some(path) = &self.noise else { return Ok(vec![None; wanted.len()]) };
        let bad = |message: String| GenerateError::InvalidRequest(format!("{}: {message}", path.display()));
        let device = model::device::open(DeviceChoice::Cpu).map_err(|e| bad(e.to_string()))?.device;
        let file = Weights::open(std::slice::from_ref(path), &device, DType::F32).map_err(|e| bad(e.to_string()))?;
        let read = |&(key, shape, required): &(&str, &[usize], bool)| {
            if !file.contains(key) {
                if required {
                    return Err(bad(format!("needs a tensor named `{key}` of shape {shape:?}")));
                }
                return Ok(None);
            }
            let (values, found) = file.read_f32(key).map_err(|e| bad(format!("reading `{key}`: {e}")))?;
            if found != shape {
                return Err(bad(format!("`{key}` has shape {found:?}, this request needs {shape:?}")));
            }
            Ok(Some(values))
        };
        wanted.iter().map(read).collect()
    }

    /// The one tensor `noise` of the noise file (see [`Overrides::noise_tensors`]).
    pub fn noise_tensor(&self, shape: &[usize]) -> Result<Option<Vec<f32>>, GenerateError> {
        Ok(self.noise_tensors(&[("noise", shape, true)])?.pop().flatten())
    }

    /// Notes in a result's metadata what it was made with beyond its parameters.
    pub fn record(&self, meta: &mut app::results::ResultMeta) {
        if let Some(noise) = &self.noise {
            meta.details.insert("noise_file".into(), noise.display().to_string().into());
        }
        if !self.loras.is_empty() {
            let loras = self
                .loras
                .iter()
                // The scale as it was written (an f32 widened to JSON's f64 reads 0.800000011920929).
                .map(|l| {
                    let scale = (f64::from(l.scale) * 1e6).round() / 1e6;
                    serde_json::json!({"file": l.lora.name(), "sha256": l.lora.sha256, "scale": scale})
                })
                .collect();
            meta.details.insert("loras".into(), serde_json::Value::Array(loras));
        }
    }

    /// A name for what the LoRAs make of a model, for caching it loaded: empty without any.
    pub fn loras_key(&self) -> String {
        self.loras.iter().map(|l| format!("+{}@{}", l.lora.sha256, l.scale)).collect()
    }

    /// Runs the warm-up pass when asked and returns its seconds (0 without one).
    pub fn warm_up<T>(&self, run: impl FnOnce() -> Result<T, GenerateError>) -> Result<f64, GenerateError> {
        if !self.warmup {
            return Ok(0.0);
        }
        let started = std::time::Instant::now();
        run()?;
        Ok(started.elapsed().as_secs_f64())
    }
}
