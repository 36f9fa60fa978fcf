#![recursion_limit = "512"]
//! vidplay's server side: the playground (pages, JSON API, job queue, storage), media
//! encoding, input handling, evaluation and benchmarks used by the `vidplay` binary.

pub mod api;
pub mod assets;
pub mod bench;
pub mod faults;
pub mod image_to_video;
pub mod input;
pub mod jobs;
pub mod media;
pub mod output;
pub mod recovery;
pub mod security;
pub mod serve;
pub mod storage;
pub mod studio;
pub mod text_to_image;
pub mod zip;
