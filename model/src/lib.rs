//! vidplay's models, written in Burn: the built-in toy-world video model and ports of real open
//! models in the diffusers layout. Kept out of the web app's wasm build.
//!
//! - [`generate`]: what every generator shares (progress with previews, cancel, errors).
//! - [`latents`]: what a sampler made before the decode, kept so a failed decode can be retried.
//! - [`builtin`]: the model we train and ship.
//! - [`diffusers`]: one folder per diffusers family, plus their common parts.
//! - [`device`], [`gpu_memory`], [`free_memory`], [`rng`]: picking a compute device; the memory
//!   a run held; the memory still free; deterministic noise.

pub mod builtin;
pub mod device;
pub mod diffusers;
pub mod free_memory;
pub mod generate;
pub mod gpu_memory;
pub mod latents;
pub mod rng;
