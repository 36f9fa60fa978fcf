//! Real open models in the diffusers folder layout, ported to Burn with diffusers' module and
//! field names so their safetensors load as they are.
//!
//! - [`common`]: what every family shares: strict weight loading, config reading, the model
//!   folder (local, Hugging Face cache, download), layers, blocks, schedulers, image processing.
//! - [`clip`]: CLIP's text and vision encoders and its BPE tokenizer.
//! - [`stable_diffusion`]: text to image (UNet2DConditionModel, AutoencoderKL, the pipeline).
//! - [`stable_video_diffusion`]: image to video (UNetSpatioTemporalConditionModel,
//!   AutoencoderKLTemporalDecoder, the pipeline).
//! - [`umt5`]: transformers' `UMT5EncoderModel` and the `tokenizer.json` tokenizer it is paired with.
//! - [`wan`]: Wan 2.1 text to video (WanTransformer3DModel, AutoencoderKLWan, the pipeline).
//!
//! A new family is one more folder here, mirroring diffusers' `pipelines/` and `models/` names.

pub mod clip;
pub mod common;
pub mod parity;
pub mod stable_diffusion;
pub mod stable_video_diffusion;
pub mod umt5;
pub mod wan;

/// The compute precision of a loaded model.
pub use burn::tensor::DType;
