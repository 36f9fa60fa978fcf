//! Wan 2.1 text to video, as diffusers' `WanPipeline`: the UMT5 text encoder
//! ([`crate::diffusers::umt5`]), `WanTransformer3DModel`, `AutoencoderKLWan` and a flow-matching
//! scheduler (UniPC or Euler).

pub mod autoencoder_kl_wan;
pub mod image_condition;
pub mod lora_names;
pub mod pipeline;
pub mod transformer_wan;
