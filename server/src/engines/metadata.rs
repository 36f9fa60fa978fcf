//! What every family's result metadata shares: when and by which vidplay it was made, and the
//! phases of a clip made by a diffusers video pipeline.

use app::results::{ResultMeta, Timings};
use model::diffusers::common::video::GeneratedVideo;

/// Metadata stamped with this moment and this build, the rest at its defaults: the base each
/// family's metadata fills in.
pub fn made_now() -> ResultMeta {
    ResultMeta {
        created_unix: crate::ids::now_unix(),
        vidplay_version: env!("CARGO_PKG_VERSION").into(),
        ..ResultMeta::default()
    }
}

/// The timings of a generated clip, its model's load included.
pub fn clip_timings(video: &GeneratedVideo, load_s: f64) -> Timings {
    Timings {
        load_s,
        conditioning_s: video.encode_seconds,
        sampling_s: video.sampling_seconds,
        decode_s: video.decode_seconds,
        total_s: load_s + video.encode_seconds + video.sampling_seconds + video.decode_seconds,
        ..Timings::default()
    }
}
