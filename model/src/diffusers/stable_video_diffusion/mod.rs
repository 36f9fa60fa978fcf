//! Stable Video Diffusion (SVD, SVD-XT): image to video.

pub mod autoencoder_kl_temporal_decoder;
pub mod pipeline;
pub mod spatio_temporal;
pub mod unet_spatio_temporal;

pub use pipeline::*;
