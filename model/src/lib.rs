//! vidplay's models: the built-in toy-world video model, written in Burn.
//!
//! Kept out of the web app's wasm build; the server and the CLI call [`pipeline`].

pub mod device;
pub mod diffusers;
pub mod net;
pub mod pipeline;
pub mod prompt;
pub mod rng;
pub mod training;
pub mod vocab;
pub mod world;
