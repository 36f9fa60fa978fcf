//! The compute precision a diffusers model runs at.

use model::device::OpenedDevice;
use model::diffusers::DType;
use serde::Serialize;

/// Compute precision: f16 on GPUs, f32 on CPUs, unless chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    Auto,
    F32,
    F16,
}

impl PrecisionChoice {
    pub fn resolve(self, device: &OpenedDevice) -> DType {
        match self {
            PrecisionChoice::F32 => DType::F32,
            PrecisionChoice::F16 => DType::F16,
            PrecisionChoice::Auto if device.gpu => DType::F16,
            PrecisionChoice::Auto => DType::F32,
        }
    }
}
