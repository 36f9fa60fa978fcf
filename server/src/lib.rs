#![recursion_limit = "512"]
//! vidplay's server side, by concern:
//!
//! - [`engines`]: one engine per model family, the registry of installed models, the
//!   loaded-model cache.
//! - [`queue`]: submit, claim, cancel, progress fan-out, the generation thread, recovery.
//! - [`storage`]: the [`storage::Store`] of jobs and videos (SQLite, PostgreSQL), one trait
//!   per concern, with its conformance suite (feature `testkit`).
//! - [`media`]: the [`media::MediaStore`] of files (local disk and S3 via `object_store`),
//!   encoders, the result writer, upload decoding.
//! - [`web`]: router, security, JSON API, media serving, the pages' studio.
//! - [`scores`]: automatic quality and faithfulness scores of clips (optical flow, camera
//!   motion, smoothness, flicker, sharpness, consistency, fidelity, faithfulness).
//! - [`compare`]: side-by-side votes, checked against the gallery, and the leaderboard.
//! - [`visual`]: the installed CLIP model: what clips show, visual search, CLIP scores.
//! - [`cli`]: one module per command.
//! - [`ids`], [`memory`], [`precision`], [`faults`]: small shared pieces.
//! - `services` (feature `testkit`): throwaway PostgreSQL and SeaweedFS for the tests and
//!   `vidplay load-bench`.

pub mod cli;
pub mod compare;
pub mod engines;
pub mod faults;
pub mod ids;
pub mod limits;
pub mod media;
pub mod memory;
pub mod precision;
pub mod queue;
pub mod scores;
#[cfg(feature = "testkit")]
pub mod services;
pub mod storage;
pub mod visual;
pub mod web;
