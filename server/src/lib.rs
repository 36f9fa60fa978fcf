//! vidplay's server side: media encoding, input handling, evaluation and benchmarks used by the
//! `vidplay` binary.

pub mod analysis;
pub mod bench;
pub mod eval;
pub mod input;
pub mod media;
pub mod output;
pub mod serve;
