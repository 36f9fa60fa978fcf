//! [`FlowScheduler`]: whichever flow-matching scheduler a model folder's `scheduler_config.json`
//! names (Wan 2.1 ships UniPC; diffusers' Wan tests use Euler).

use crate::diffusers::common::config::read_json;
use crate::diffusers::common::flow_match_euler::{FlowMatchEuler, FlowMatchEulerConfig};
use crate::diffusers::common::unipc::{UniPC, UniPCConfig};
use crate::diffusers::common::weights::LoadError;
use burn::prelude::*;
use std::path::Path;

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
            Some("UniPCMultistepScheduler") => Ok(FlowScheduler::UniPC(Box::new(
                UniPC::new(&UniPCConfig::from_json(path, raw)?, steps).map_err(steps_error)?,
            ))),
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
