//! diffusers' `FlowMatchEulerDiscreteScheduler` (with the sigma helpers it shares with UniPC in
//! [`super::flow_sigmas`]).
//!
//! In flow matching a sample at sigma `s` is `(1 - s) x0 + s noise`, the model predicts the
//! velocity `noise - x0`, and the transformer is given `1000 s` as its timestep.
//!
//! The tables are computed float for float as diffusers computes them: numpy's f64 `linspace`
//! and shift, stored in f32; the shifted training table of `__init__` in f32. Steps are f32
//! tensor arithmetic with f32 scalars, as PyTorch does with float32 tensors.

use crate::diffusers::common::config::{check_unsupported, read_json};
use crate::diffusers::common::flow_sigmas::{
    check_shift, check_shift_terminal, check_steps, check_train_timesteps, np_linspace, parse_config, shift_sigma,
    stretch_to_terminal,
};
use crate::diffusers::common::weights::LoadError;
use burn::prelude::*;
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
