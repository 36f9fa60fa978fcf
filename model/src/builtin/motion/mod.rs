//! The built-in image-to-video model: it moves the picture's own pixels.
//!
//! Generating every pixel of a photo's future is the wrong job for a small model on a CPU;
//! moving the photo's pixels is the right one (latent flow diffusion, Ni et al., CVPR 2023,
//! generates motion fields and occlusion maps and warps the input with them). From the image
//! (seen at 32 x 32) and the prompt, [`net::MotionNet`] writes each frame's backward motion
//! field, a map of areas the first frame hid, and a fill colour for them; [`animate`] upsamples
//! the fields and warps the upload at its own resolution. Rain and snow are drawn by a learned
//! layer ([`net::WeatherLayer`]) from seeded particles.
//!
//! - [`truth`]: exact training targets from the toy world (it knows every point's motion).
//! - [`net`]: the networks. [`training`]: the trainer. [`animate`]: generation.

pub mod animate;
pub mod evaluation;
pub mod net;
pub mod training;
pub mod truth;
