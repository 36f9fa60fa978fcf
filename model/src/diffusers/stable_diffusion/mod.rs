//! Stable Diffusion (1.x, 2.x, Turbo): text to image.

pub mod autoencoder_kl;
pub mod pipeline;
pub mod unet_2d_condition;

pub use pipeline::*;
