//! The parts every diffusers family shares.

pub mod blocks;
pub mod config;
pub mod flow_match_euler;
pub mod flow_scheduler;
pub mod flow_sigmas;
pub mod folder;
pub mod image_processing;
pub mod latent_preview;
pub mod layers;
pub mod load_error;
pub mod lora;
pub mod pil_resize;
pub mod scheduler;
pub mod unipc;
pub mod video;
pub mod weights;
