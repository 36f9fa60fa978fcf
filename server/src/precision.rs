//! The compute precision a diffusers model runs at.

use model::device::{Backend, OpenedDevice};
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
        let dtype = match self {
            PrecisionChoice::F32 => DType::F32,
            PrecisionChoice::F16 => DType::F16,
            PrecisionChoice::Auto if device.gpu => DType::F16,
            PrecisionChoice::Auto => DType::F32,
        };
        if let Some(note) = kernel_note(device.backend, device.gpu, dtype) {
            tracing::info!("{note}");
        }
        dtype
    }
}

/// What Burn picks without saying so, for this backend and precision: where the tensor-core
/// (cooperative matrix) kernels for attention and convolution cannot run.
pub fn kernel_note(backend: Backend, gpu: bool, dtype: DType) -> Option<String> {
    match backend {
        Backend::Flex => None,
        Backend::Wgpu if gpu => Some(
            "wgpu: tensor cores only on Vulkan with cooperative matrices (SPIR-V, as --device vulkan); on \
             other graphics APIs convolutions run as direct or im2col kernels and attention as the unit flash \
             kernel or Burn's unfused fallback (bounded by chunking)"
                .into(),
        ),
        Backend::Wgpu => None,
        Backend::Cuda | Backend::Vulkan if dtype != DType::F16 => Some(format!(
            "{} in {dtype:?}: Burn's tensor-core flash attention needs f16, so attention runs the unit flash \
             kernel or the unfused fallback (bounded by chunking); --precision f16 (the default on GPUs) uses it",
            backend.name()
        )),
        Backend::Vulkan => Some(
            "vulkan: tensor cores only where the driver has VK_KHR_cooperative_matrix; without it convolutions \
             and attention run on the plain kernels"
                .into(),
        ),
        Backend::Cuda => None,
    }
}
