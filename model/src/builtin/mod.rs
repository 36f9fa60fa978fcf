//! The built-in model: a small video model of a toy world, trained by us and shipped in the
//! repository, that runs offline on a CPU.
//!
//! - [`world`]: the toy world (scenes, rendering, motion) the model is trained on.
//! - [`vocab`], [`prompt`]: the words it knows, and how a prompt is understood.
//! - [`net`], [`weights`]: the network and its strictly loaded weights.
//! - [`pipeline`]: generation (the sampler) for text-to-video and image-to-video.
//! - [`training`]: the trainer.
//! - [`motion`]: the image-to-video model, which animates a picture by moving its own pixels.
//! - [`edit`]: the instruction editor, which changes one thing of a picture and keeps the rest.
//! - [`analysis`], [`evaluation`]: measuring clips, and how faithful the model is to prompts.

pub mod analysis;
pub mod checkpoint;
pub mod edit;
pub mod evaluation;
pub mod frames;
pub mod motion;
pub mod net;
pub mod pipeline;
pub mod prompt;
pub mod training;
pub mod vocab;
pub mod weights;
pub mod world;
