//! diffusers' `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler` (fresh noise every
//! step) and `DDIMScheduler` (eta 0), from `scheduler_config.json`.
//!
//! The tables are computed the way diffusers computes them, float for float: betas with
//! PyTorch's f32 `linspace`, the cumulative product accumulated in f64 and stored in f32, sigmas
//! in f32, interpolation and Karras spacing in f64, then stored in f32. That keeps sigmas and
//! timesteps within 1e-6 of diffusers' own.

use crate::diffusers::common::weights::LoadError;
use crate::rng::Rng;
use burn::prelude::*;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    VPrediction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Linspace,
    Leading,
    Trailing,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    #[serde(default = "d1000")]
    pub num_train_timesteps: usize,
    #[serde(default = "d_start")]
    pub beta_start: f64,
    #[serde(default = "d_end")]
    pub beta_end: f64,
    #[serde(default = "d_linear")]
    pub beta_schedule: String,
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    #[serde(default = "d_eps")]
    pub prediction_type: String,
    #[serde(default)]
    pub timestep_spacing: Option<String>,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub clip_sample: Option<bool>,
    #[serde(default = "d_one")]
    pub clip_sample_range: f64,
    #[serde(default)]
    pub set_alpha_to_one: Option<bool>,
    /// Karras sigma bounds (SVD sets them); otherwise the schedule's own ends.
    #[serde(default)]
    pub sigma_min: Option<f64>,
    #[serde(default)]
    pub sigma_max: Option<f64>,
    /// "discrete" (default) or "continuous": with v-prediction the model is given
    /// `0.25 ln(sigma)` instead of a train timestep (SVD's EDM setting).
    #[serde(default)]
    pub timestep_type: Option<String>,
}

fn d1000() -> usize {
    1000
}
fn d_start() -> f64 {
    0.0001
}
fn d_end() -> f64 {
    0.02
}
fn d_linear() -> String {
    "linear".into()
}
fn d_eps() -> String {
    "epsilon".into()
}
fn d_one() -> f64 {
    1.0
}

/// Keys whose other values this port does not implement.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("rescale_betas_zero_snr", "false"),
    ("thresholding", "false"),
    ("use_exponential_sigmas", "false"),
    ("use_beta_sigmas", "false"),
    ("interpolation_type", "\"linear\""),
    ("final_sigmas_type", "\"zero\""),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Euler,
    /// Euler with ancestral sampling: each step goes below the next sigma and adds fresh noise
    /// back (what InstructPix2Pix checkpoints ship).
    EulerAncestral,
    Ddim,
}

impl Kind {
    /// The name users give it (`--scheduler`).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "euler" => Ok(Kind::Euler),
            "euler-ancestral" | "euler_a" => Ok(Kind::EulerAncestral),
            "ddim" => Ok(Kind::Ddim),
            other => Err(format!("unknown scheduler {other:?}: use euler, euler-ancestral or ddim")),
        }
    }

    /// diffusers' class name.
    pub fn class_name(self) -> &'static str {
        match self {
            Kind::Euler => "EulerDiscreteScheduler",
            Kind::EulerAncestral => "EulerAncestralDiscreteScheduler",
            Kind::Ddim => "DDIMScheduler",
        }
    }
}

impl SchedulerConfig {
    /// Reads the config. Another scheduler class falls back to Euler with the same betas.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let raw: serde_json::Value = crate::diffusers::common::config::read_json(path)?;
        let c: Self = serde_json::from_value(raw.clone())
            .map_err(|e| LoadError::File { path: path.into(), message: format!("bad scheduler config: {e}") })?;
        if c.kind() == Kind::Euler && c.class_name != Kind::Euler.class_name() {
            tracing::info!(class = %c.class_name, "scheduler class not ported: using EulerDiscreteScheduler with the same betas");
        } else {
            // Only a ported class is held to its options; a fallback keeps just the betas.
            crate::diffusers::common::config::check_unsupported(path, &raw, UNSUPPORTED)?;
        }
        c.prediction().map_err(|why| LoadError::config(path, "prediction_type", &c.prediction_type, &why))?;
        c.spacing()
            .map_err(|why| LoadError::config(path, "timestep_spacing", format!("{:?}", c.timestep_spacing), &why))?;
        if !matches!(c.timestep_type.as_deref(), None | Some("discrete") | Some("continuous")) {
            return Err(LoadError::config(
                path,
                "timestep_type",
                format!("{:?}", c.timestep_type),
                "supported: discrete, continuous",
            ));
        }
        if !matches!(c.beta_schedule.as_str(), "linear" | "scaled_linear") && c.trained_betas.is_none() {
            return Err(LoadError::config(path, "beta_schedule", &c.beta_schedule, "supported: linear, scaled_linear"));
        }
        Ok(c)
    }

    pub fn kind(&self) -> Kind {
        match self.class_name.as_str() {
            "DDIMScheduler" => Kind::Ddim,
            "EulerAncestralDiscreteScheduler" => Kind::EulerAncestral,
            _ => Kind::Euler,
        }
    }

    /// The same betas with the other class (for choosing a sampler).
    pub fn with_kind(&self, kind: Kind) -> Self {
        let mut c = self.clone();
        c.class_name = kind.class_name().into();
        if kind == Kind::EulerAncestral {
            // The ancestral class has no Karras option.
            c.use_karras_sigmas = false;
        }
        c
    }

    pub fn prediction(&self) -> Result<Prediction, String> {
        match self.prediction_type.as_str() {
            "epsilon" => Ok(Prediction::Epsilon),
            "v_prediction" => Ok(Prediction::VPrediction),
            _ => Err("supported: epsilon, v_prediction".into()),
        }
    }

    pub fn spacing(&self) -> Result<Spacing, String> {
        let default = match self.kind() {
            Kind::Euler | Kind::EulerAncestral => "linspace",
            Kind::Ddim => "leading",
        };
        match self.timestep_spacing.as_deref().unwrap_or(default) {
            "linspace" => Ok(Spacing::Linspace),
            "leading" => Ok(Spacing::Leading),
            "trailing" => Ok(Spacing::Trailing),
            _ => Err("supported: linspace, leading, trailing".into()),
        }
    }

    /// alphas_cumprod as diffusers holds it (f32).
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let n = self.num_train_timesteps;
        let betas: Vec<f32> = match (&self.trained_betas, self.beta_schedule.as_str()) {
            (Some(b), _) => b.iter().map(|&x| x as f32).collect(),
            (None, "scaled_linear") => {
                torch_linspace_f32(self.beta_start.sqrt() as f32, self.beta_end.sqrt() as f32, n)
                    .iter()
                    .map(|b| b * b)
                    .collect()
            }
            _ => torch_linspace_f32(self.beta_start as f32, self.beta_end as f32, n),
        };
        let mut acc = 1f64;
        betas
            .iter()
            .map(|b| {
                acc *= (1.0f32 - b) as f64;
                acc as f32
            })
            .collect()
    }
}

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU: f32 step, first half
/// counted from the start, second half from the end.
pub(crate) fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps).map(|i| if i < half { start + step * i as f32 } else { end - step * (steps - i - 1) as f32 }).collect()
}

/// `np.interp` over integer grid points 0..len.
fn interp(x: f64, ys: &[f32]) -> f64 {
    if x <= 0.0 {
        return ys[0] as f64;
    }
    let last = ys.len() - 1;
    if x >= last as f64 {
        return ys[last] as f64;
    }
    let i = x.floor() as usize;
    let (a, b) = (ys[i] as f64, ys[i + 1] as f64);
    let slope = (b - a) / 1.0;
    slope * (x - i as f64) + a
}

/// A scheduler set up for a number of inference steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub kind: Kind,
    pub prediction: Prediction,
    /// The model's timestep input per step.
    pub timesteps: Vec<f32>,
    /// Euler: one sigma per step plus the final 0.
    pub sigmas: Vec<f32>,
    pub init_noise_sigma: f32,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    step_ratio: usize,
    clip_sample: Option<f32>,
}

impl Scheduler {
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self, String> {
        let n = config.num_train_timesteps;
        if steps == 0 || steps > n {
            return Err(format!("steps must be 1..={n}"));
        }
        let prediction = config.prediction()?;
        let spacing = config.spacing()?;
        let ac = config.alphas_cumprod();
        match config.kind() {
            kind @ (Kind::Euler | Kind::EulerAncestral) => {
                let timesteps: Vec<f32> = match spacing {
                    Spacing::Linspace => {
                        (0..steps).rev().map(|i| (i as f64 * linspace_step(n, steps)) as f32).collect()
                    }
                    Spacing::Leading => {
                        let ratio = n / steps;
                        (0..steps).rev().map(|i| (i * ratio) as f32 + config.steps_offset as f32).collect()
                    }
                    Spacing::Trailing => trailing(n, steps).into_iter().map(|t| t as f32).collect(),
                };
                let full: Vec<f32> = ac.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
                let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp(t as f64, &full)).collect();
                let mut timesteps = timesteps;
                if config.use_karras_sigmas && kind == Kind::Euler {
                    let min = config.sigma_min.unwrap_or(sigmas[steps - 1]);
                    let max = config.sigma_max.unwrap_or(sigmas[0]);
                    let rho = 7.0;
                    let (min_r, max_r) = (min.powf(1.0 / rho), max.powf(1.0 / rho));
                    sigmas = (0..steps)
                        .map(|i| {
                            let ramp = if steps == 1 { 0.0 } else { i as f64 / (steps - 1) as f64 };
                            (max_r + ramp * (min_r - max_r)).powf(rho)
                        })
                        .collect();
                    let log_sigmas: Vec<f32> = full.iter().map(|s| s.ln()).collect();
                    timesteps = sigmas.iter().map(|&s| sigma_to_t(s, &log_sigmas) as f32).collect();
                }
                let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
                if config.timestep_type.as_deref() == Some("continuous") && prediction == Prediction::VPrediction {
                    timesteps = sigmas.iter().map(|s| 0.25 * s.ln()).collect();
                }
                sigmas.push(0.0);
                let max = sigmas.iter().cloned().fold(0f32, f32::max);
                let init_noise_sigma = match spacing {
                    Spacing::Linspace | Spacing::Trailing => max,
                    Spacing::Leading => (max * max + 1.0).sqrt(),
                };
                Ok(Self {
                    kind,
                    prediction,
                    timesteps,
                    sigmas,
                    init_noise_sigma,
                    alphas_cumprod: ac,
                    final_alpha_cumprod: 1.0,
                    step_ratio: 0,
                    clip_sample: None,
                })
            }
            Kind::Ddim => {
                let timesteps: Vec<i64> = match spacing {
                    Spacing::Leading => {
                        let ratio = n / steps;
                        (0..steps).rev().map(|i| (i * ratio + config.steps_offset) as i64).collect()
                    }
                    Spacing::Trailing => trailing(n, steps),
                    Spacing::Linspace => (0..steps)
                        .rev()
                        .map(|i| (i as f64 * linspace_step(n, steps)).round_ties_even() as i64)
                        .collect(),
                };
                if let Some(bad) = timesteps.iter().find(|&&t| t < 0 || t as usize >= n) {
                    return Err(format!("timestep {bad} is outside 0..{n} (steps_offset too large?)"));
                }
                let set_alpha_to_one = config.set_alpha_to_one.unwrap_or(true);
                Ok(Self {
                    kind: Kind::Ddim,
                    prediction,
                    timesteps: timesteps.iter().map(|&t| t as f32).collect(),
                    sigmas: vec![],
                    init_noise_sigma: 1.0,
                    final_alpha_cumprod: if set_alpha_to_one { 1.0 } else { ac[0] },
                    alphas_cumprod: ac,
                    step_ratio: n / steps,
                    clip_sample: if config.clip_sample.unwrap_or(true) {
                        Some(config.clip_sample_range as f32)
                    } else {
                        None
                    },
                })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// Whether steps draw fresh noise (then `step` takes it from its `StepNoise`).
    pub fn draws_step_noise(&self) -> bool {
        self.kind == Kind::EulerAncestral
    }

    /// The model input at step `i` (Euler divides by sqrt(sigma^2 + 1)).
    pub fn scale_model_input(&self, x: Tensor<4>, i: usize) -> Tensor<4> {
        match self.kind {
            Kind::Euler | Kind::EulerAncestral => {
                let s = self.sigmas[i];
                x / (s * s + 1.0).sqrt()
            }
            Kind::Ddim => x,
        }
    }

    /// One denoising step from `sample` with the model's output at step `i`; an ancestral step
    /// takes its fresh noise from `noise`.
    pub fn step(&self, output: Tensor<4>, i: usize, sample: Tensor<4>, noise: &mut StepNoise) -> Tensor<4> {
        match self.kind {
            Kind::Euler | Kind::EulerAncestral => {
                let sigma = self.sigmas[i];
                let pred = match self.prediction {
                    Prediction::Epsilon => sample.clone() - output * sigma,
                    Prediction::VPrediction => {
                        let s2 = sigma * sigma + 1.0;
                        output * (-sigma / s2.sqrt()) + sample.clone() / s2
                    }
                };
                let derivative = (sample.clone() - pred) / sigma;
                let next = self.sigmas[i + 1];
                if self.kind == Kind::Euler {
                    return sample + derivative * (next - sigma);
                }
                // As diffusers: sigma_up from the variance the step adds back, sigma_down below it.
                let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
                let down = (next * next - up * up).max(0.0).sqrt();
                let fresh = noise.draw(i, sample.dims(), &sample.device());
                sample + derivative * (down - sigma) + fresh * up
            }
            Kind::Ddim => {
                let t = self.timesteps[i] as i64;
                let prev = t - self.step_ratio as i64;
                let a = self.alphas_cumprod[t as usize];
                let a_prev = if prev >= 0 { self.alphas_cumprod[prev as usize] } else { self.final_alpha_cumprod };
                let b = 1.0 - a;
                let (x0, eps) = match self.prediction {
                    Prediction::Epsilon => ((sample - output.clone() * b.sqrt()) / a.sqrt(), output),
                    Prediction::VPrediction => {
                        (sample.clone() * a.sqrt() - output.clone() * b.sqrt(), output * a.sqrt() + sample * b.sqrt())
                    }
                };
                let x0 = match self.clip_sample {
                    Some(r) => x0.clamp(-r, r),
                    None => x0,
                };
                x0 * a_prev.sqrt() + eps * (1.0 - a_prev).sqrt()
            }
        }
    }
}

/// Where an ancestral scheduler's per-step noise comes from: drawn from a seed, or recorded (one
/// tensor per step, in order, as diffusers drew them; `--noise FILE`'s `step_noise`).
#[derive(Debug, Clone)]
pub enum StepNoise {
    Seeded(Rng),
    Recorded(Vec<Vec<f32>>),
}

impl StepNoise {
    /// Noise drawn from `seed` (a stream apart from the initial latents').
    pub fn seeded(seed: u64) -> Self {
        StepNoise::Seeded(Rng::new(seed ^ 0x5157_E9A0_15E5_0001))
    }

    /// The noise of step `i`, shaped like the sample.
    fn draw(&mut self, i: usize, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let n = shape.iter().product();
        let values = match self {
            StepNoise::Seeded(rng) => rng.normals(n),
            StepNoise::Recorded(steps) => match steps.get(i) {
                Some(v) if v.len() == n => v.clone(),
                // Validated by the pipelines before sampling; a short recording adds no noise.
                _ => vec![0.0; n],
            },
        };
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

/// `np.linspace(0, n - 1, steps)`'s step.
fn linspace_step(n: usize, steps: usize) -> f64 {
    if steps < 2 { 0.0 } else { (n - 1) as f64 / (steps - 1) as f64 }
}

/// diffusers' "trailing" spacing: `round(arange(n, 0, -n / steps)) - 1`.
fn trailing(n: usize, steps: usize) -> Vec<i64> {
    let ratio = n as f64 / steps as f64;
    let count = (n as f64 / ratio).ceil() as usize;
    (0..count).map(|i| (n as f64 - i as f64 * ratio).round_ties_even() as i64 - 1).collect()
}

/// `EulerDiscreteScheduler._sigma_to_t`: the fractional timestep of a sigma, interpolating log
/// sigmas (held in f32, as there).
fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let last = log_sigmas.len() - 2;
    // Index of the last log sigma <= log_sigma (cumsum-argmax in numpy), clipped.
    let count = log_sigmas.iter().filter(|&&l| log_sigma - l as f64 >= 0.0).count();
    let low_idx = if count == 0 { 0 } else { (count - 1).min(last) };
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = ((low as f64 - log_sigma) / (low - high) as f64).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}
