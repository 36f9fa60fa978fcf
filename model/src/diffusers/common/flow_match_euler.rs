//! Flow-matching schedulers: diffusers' `FlowMatchEulerDiscreteScheduler`, the sigma helpers it
//! shares with UniPC ([`super::unipc`]), and [`FlowScheduler`], whichever of the two a model
//! folder's `scheduler_config.json` names (Wan 2.1 ships UniPC; diffusers' Wan tests use Euler).
//!
//! In flow matching a sample at sigma `s` is `(1 - s) x0 + s noise`, the model predicts the
//! velocity `noise - x0`, and the transformer is given `1000 s` as its timestep.
//!
//! The tables are computed float for float as diffusers computes them: numpy's f64 `linspace`
//! and shift, stored in f32; the shifted training table of `__init__` in f32. Steps are f32
//! tensor arithmetic with f32 scalars, as PyTorch does with float32 tensors.

use crate::diffusers::common::config::{check_unsupported, read_json};
use crate::diffusers::common::unipc::{UniPC, UniPCConfig};
use crate::diffusers::common::weights::LoadError;
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;

/// Options of `FlowMatchEulerDiscreteScheduler` this port implements, with diffusers' defaults.
/// [`FlowMatchEulerConfig::from_json`] refuses every other option set to a non-default value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct FlowMatchEulerConfig {
    pub num_train_timesteps: usize,
    /// The timestep shift `s' = shift s / (1 + (shift - 1) s)` (diffusers' static shifting).
    pub shift: f64,
    /// Where the shifted schedule is stretched to end (`None` or 0: not stretched).
    pub shift_terminal: Option<f64>,
}

impl Default for FlowMatchEulerConfig {
    fn default() -> Self {
        Self { num_train_timesteps: 1000, shift: 1.0, shift_terminal: None }
    }
}

/// Keys of `FlowMatchEulerDiscreteScheduler` whose other values this port does not implement.
const EULER_UNSUPPORTED: &[(&str, &str)] = &[
    // Needs a resolution-dependent `mu` per call, which the Wan pipelines do not pass.
    ("use_dynamic_shifting", "false"),
    ("time_shift_type", "\"exponential\""),
    ("invert_sigmas", "false"),
    ("stochastic_sampling", "false"),
    ("use_karras_sigmas", "false"),
    ("use_exponential_sigmas", "false"),
    ("use_beta_sigmas", "false"),
];

impl FlowMatchEulerConfig {
    /// Reads `scheduler_config.json`.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        Self::from_json(path, &read_json(path)?)
    }

    /// The config from parsed JSON; `path` names it in errors. The dynamic-shifting options
    /// (`base_shift`, `max_shift`, `*_image_seq_len`) are read by diffusers only when
    /// `use_dynamic_shifting` is on, which is refused, so they are not read here either.
    pub fn from_json(path: &Path, raw: &serde_json::Value) -> Result<Self, LoadError> {
        check_unsupported(path, raw, EULER_UNSUPPORTED)?;
        let c: Self = parse_config(path, raw)?;
        check_train_timesteps(path, c.num_train_timesteps)?;
        check_shift(path, "shift", c.shift)?;
        check_shift_terminal(path, c.shift_terminal)?;
        Ok(c)
    }
}

/// `FlowMatchEulerDiscreteScheduler` set up for a number of inference steps.
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
}

impl FlowMatchEuler {
    /// The schedule of `steps` steps. As in diffusers the shift is applied twice over: the
    /// schedule runs linearly from the largest to the smallest sigma of the *shifted* training
    /// table (the latter `shift / (N + shift - 1)`, in f32), and is then shifted again.
    pub fn new(config: &FlowMatchEulerConfig, steps: usize) -> Result<Self, String> {
        check_steps(steps)?;
        let n = config.num_train_timesteps;
        // `__init__`: the training table, shifted in f32; only its ends are used.
        let shift32 = config.shift as f32;
        let table_sigma = |t: usize| {
            let s = t as f32 / n as f32;
            shift32 * s / (1.0 + (config.shift - 1.0) as f32 * s)
        };
        let (sigma_max, sigma_min) = (table_sigma(n) as f64, table_sigma(1) as f64);
        // `set_timesteps`: in f64 (numpy), stored in f32.
        let n64 = n as f64;
        let mut sigmas: Vec<f64> = np_linspace(sigma_max * n64, sigma_min * n64, steps)
            .into_iter()
            .map(|t| shift_sigma(t / n64, config.shift))
            .collect();
        stretch_to_terminal(&mut sigmas, config.shift_terminal)?;
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
        let timesteps = sigmas.iter().map(|s| s * n as f32).collect();
        sigmas.push(0.0);
        Ok(Self { timesteps, sigmas })
    }

    /// The transformer's timestep input per step (`1000 sigma`, fractional).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// One sigma per step, then the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// One Euler step of the flow ODE from `sample` at step `i`, with the model's velocity.
    pub fn step(&self, model_output: Tensor<5>, i: usize, sample: Tensor<5>) -> Tensor<5> {
        let dt = self.sigmas[i + 1] - self.sigmas[i];
        sample + model_output * dt
    }
}

/// A flow-matching scheduler for the Wan pipelines, chosen by `scheduler_config.json`'s
/// `_class_name`.
#[derive(Debug, Clone)]
pub enum FlowScheduler {
    /// Boxed: it holds tensors of its multistep state.
    UniPC(Box<UniPC>),
    Euler(FlowMatchEuler),
}

impl FlowScheduler {
    /// Reads `scheduler_config.json` (its path) and sets the scheduler up for `steps` steps.
    pub fn from_folder_config(path: &Path, steps: usize) -> Result<Self, LoadError> {
        Self::from_json(path, &read_json(path)?, steps)
    }

    /// The scheduler from a parsed config; `path` names it in errors.
    pub fn from_json(path: &Path, raw: &serde_json::Value, steps: usize) -> Result<Self, LoadError> {
        let steps_error = |message: String| LoadError::File { path: path.into(), message };
        match raw.get("_class_name").and_then(|c| c.as_str()) {
            Some("UniPCMultistepScheduler") => {
                Ok(FlowScheduler::UniPC(Box::new(UniPC::new(&UniPCConfig::from_json(path, raw)?, steps).map_err(steps_error)?)))
            }
            Some("FlowMatchEulerDiscreteScheduler") => Ok(FlowScheduler::Euler(
                FlowMatchEuler::new(&FlowMatchEulerConfig::from_json(path, raw)?, steps).map_err(steps_error)?,
            )),
            _ => Err(LoadError::config(
                path,
                "_class_name",
                raw.get("_class_name").unwrap_or(&serde_json::Value::Null),
                "supported: UniPCMultistepScheduler, FlowMatchEulerDiscreteScheduler",
            )),
        }
    }

    /// The number of inference steps (calls to [`FlowScheduler::step`]).
    pub fn num_steps(&self) -> usize {
        self.timesteps().len()
    }

    /// The transformer's timestep input per step.
    pub fn timesteps(&self) -> &[f32] {
        match self {
            FlowScheduler::UniPC(s) => s.timesteps(),
            FlowScheduler::Euler(s) => s.timesteps(),
        }
    }

    /// One sigma per step, then the final one.
    pub fn sigmas(&self) -> &[f32] {
        match self {
            FlowScheduler::UniPC(s) => s.sigmas(),
            FlowScheduler::Euler(s) => s.sigmas(),
        }
    }

    /// Step `i` from `sample` with the model's output at step `i`. Steps go 0, 1, 2, ... in
    /// order (UniPC keeps earlier outputs); step 0 starts a new trajectory.
    pub fn step(&mut self, model_output: Tensor<5>, i: usize, sample: Tensor<5>) -> Tensor<5> {
        match self {
            FlowScheduler::UniPC(s) => s.step(model_output, i, sample),
            FlowScheduler::Euler(s) => s.step(model_output, i, sample),
        }
    }
}

/// Parses a scheduler config; nulls stand for the defaults. Errors name the file.
pub(crate) fn parse_config<T: DeserializeOwned>(path: &Path, raw: &serde_json::Value) -> Result<T, LoadError> {
    let mut raw = raw.clone();
    if let Some(map) = raw.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(raw)
        .map_err(|e| LoadError::File { path: path.into(), message: format!("bad scheduler config: {e}") })
}

pub(crate) fn check_steps(steps: usize) -> Result<(), String> {
    if steps == 0 {
        return Err("0 inference steps: at least 1 is needed".into());
    }
    Ok(())
}

pub(crate) fn check_train_timesteps(path: &Path, n: usize) -> Result<(), LoadError> {
    if n == 0 {
        return Err(LoadError::config(path, "num_train_timesteps", n, "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn check_shift(path: &Path, key: &str, shift: f64) -> Result<(), LoadError> {
    if !(shift.is_finite() && shift > 0.0) {
        return Err(LoadError::config(path, key, shift, "must be a positive number"));
    }
    Ok(())
}

pub(crate) fn check_shift_terminal(path: &Path, terminal: Option<f64>) -> Result<(), LoadError> {
    match terminal {
        Some(t) if !(0.0..1.0).contains(&t) => {
            Err(LoadError::config(path, "shift_terminal", t, "must be in [0, 1) (0 or null: no stretching)"))
        }
        _ => Ok(()),
    }
}

/// The static timestep shift `shift s / (1 + (shift - 1) s)`, in f64 as numpy evaluates it.
pub(crate) fn shift_sigma(s: f64, shift: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// diffusers' `stretch_shift_to_terminal`: rescales `1 - s` so the last sigma becomes
/// `terminal` (nothing for `None` or 0, which diffusers reads as off). A schedule ending at
/// sigma 1 (one step) cannot be stretched: diffusers' sigmas would be NaN.
pub(crate) fn stretch_to_terminal(sigmas: &mut [f64], terminal: Option<f64>) -> Result<(), String> {
    let (Some(terminal), Some(&last)) = (terminal.filter(|&t| t != 0.0), sigmas.last()) else { return Ok(()) };
    if last == 1.0 {
        return Err(format!("shift_terminal {terminal} cannot stretch a schedule that ends at sigma 1 (use more steps)"));
    }
    let scale = (1.0 - last) / (1.0 - terminal);
    for s in sigmas {
        *s = 1.0 - (1.0 - *s) / scale;
    }
    Ok(())
}

/// `np.linspace(start, stop, num)` in f64: `i * step + start`, the last value exactly `stop`.
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    out[num - 1] = stop;
    out
}
