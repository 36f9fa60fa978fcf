//! Wan text and image to video, as diffusers' `WanPipeline` and `WanImageToVideoPipeline` (Wan
//! 2.1, and Wan 2.2's two-expert A14B models): the UMT5 text encoder
//! ([`crate::diffusers::umt5`]), `WanTransformer3DModel`, `AutoencoderKLWan`, a flow-matching
//! scheduler (UniPC or Euler), the picture's condition, and for Wan 2.1's image models a CLIP
//! image encoder ([`crate::diffusers::clip`]).

pub mod autoencoder_kl_wan;
pub mod image_condition;
pub mod lora_names;
pub mod pipeline;
pub mod transformer_wan;
