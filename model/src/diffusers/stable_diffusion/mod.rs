//! Stable Diffusion (1.x, 2.x, Turbo): text to image; and its instruction editors
//! (InstructPix2Pix, MagicBrush).

pub mod autoencoder_kl;
pub mod instruct_pix2pix;
pub mod pipeline;
pub mod unet_2d_condition;
pub mod vae_tiling;

pub use instruct_pix2pix::{EditRequest, InstructPix2Pix};
pub use pipeline::*;
