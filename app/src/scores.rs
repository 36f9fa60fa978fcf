//! A clip's automatic quality and faithfulness scores (the axes of Emu Video's human study),
//! as `vidplay score` prints them, the API returns them (`scores` of a video) and the pages
//! show them. Computed on the server (`server::scores`).

use serde::{Deserialize, Serialize};

/// The version of the measures written now; older scores are measured again.
pub const SCORES_VERSION: u32 = 1;

/// A clip whose peak motion (`motion_p95`, percent of the frame width per frame) is below
/// this counts as still.
pub const STILL_MOTION: f32 = 0.3;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scores {
    pub version: u32,
    /// Frames measured.
    pub frames: u32,
    /// Amount of motion: the mean optical-flow magnitude, in percent of the frame width per
    /// frame (0: nothing moves; 1: things move a hundredth of the width each frame).
    pub motion: f32,
    /// The part of the motion a global camera model (pan, zoom, rotation) explains, same unit.
    pub camera_motion: f32,
    /// The part it does not explain: things moving in the scene, same unit.
    pub object_motion: f32,
    /// The 95th percentile of the flow's magnitude, same unit: how fast the fastest things
    /// move (a small subject moving fast has a low mean but a high peak).
    pub motion_p95: f32,
    /// The 95th percentile of the scene (non-camera) motion, same unit.
    pub object_motion_p95: f32,
    /// The fitted camera motion, per frame.
    pub camera: CameraMotion,
    /// How well each middle frame is predicted from its two neighbours by the optical flow
    /// between them: 1 - mean absolute error (1: perfectly smooth; a still clip scores 1).
    pub smoothness: f32,
    /// Brightness and colour jumps between consecutive frames that motion does not explain,
    /// in percent of full brightness per frame (0: none).
    pub flicker: f32,
    /// Sharpness: the variance of the Laplacian of each frame's luma (0-255 scale), averaged.
    pub sharpness: f32,
    /// How much sharper the start is than the end: 1 - (last quarter / first quarter), 0 when
    /// the clip does not lose sharpness.
    pub sharpness_drop: f32,
    pub sharpness_per_frame: Vec<f32>,
    /// Each frame against the first after motion compensation: 1 - mean absolute error
    /// (1: the scene stays the same; a still clip scores 1).
    pub consistency: f32,
    /// No motion at all: `motion_p95` below [`STILL_MOTION`].
    pub still: bool,
    /// The camera moves (`camera_motion` at least 0.25) and nothing in the scene does
    /// (`object_motion_p95` below 0.3, or a quarter of the camera motion when that is more).
    pub camera_only: bool,
    /// Image to video: the first frame against the input image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
    /// What the clip shows against what the prompt asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<Faithfulness>,
    /// Seconds the measuring took.
    pub seconds: f32,
}

/// A global motion model fitted to the optical flow, per frame, in the clip's pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraMotion {
    /// Horizontal movement of the picture's content, pixels per frame (positive: the content
    /// moves right, as when the camera pans left).
    pub pan_x: f32,
    /// Vertical movement of the content, pixels per frame (positive: down).
    pub pan_y: f32,
    /// Scale change per frame, percent (positive: zooming in).
    pub zoom: f32,
    /// Rotation of the content per frame, degrees (positive: clockwise on screen).
    pub rotation: f32,
}

/// Image to video: how faithfully the clip starts from the picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// dB; 99 for identical images.
    pub psnr: f32,
    /// Structural similarity of the luma, 0-1.
    pub ssim: f32,
}

/// Faithfulness to the prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faithfulness {
    /// How it was judged: "concepts" (the built-in model's own analysis of the prompt's
    /// colours, directions, camera and weather against the frames), or "clip" (an installed
    /// CLIP model's similarity of the frames and the prompt).
    pub method: String,
    /// 0-1: the share of concepts the clip shows, or the CLIP cosine similarity (at least 0).
    pub score: f32,
    pub concepts: Vec<ConceptCheck>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConceptCheck {
    /// What the prompt asks, e.g. "red", "moving left", "camera pans right".
    pub concept: String,
    pub shown: bool,
    /// What was measured, in words.
    pub measured: String,
}

impl Scores {
    /// The one flag the gallery filters this clip by.
    pub fn flag(&self) -> ScoreFlag {
        if self.still {
            ScoreFlag::Still
        } else if self.camera_only {
            ScoreFlag::CameraOnly
        } else {
            ScoreFlag::ObjectMotion
        }
    }

    /// Short warnings about a fresh clip, with what to try instead.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.still {
            out.push("This clip is still: nothing moves. Try more motion, another prompt or another seed.");
        } else if self.camera_only {
            out.push("Only the camera moves; nothing in the scene does. Try more motion or another seed.");
        }
        out
    }
}

/// How the gallery orders results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GallerySort {
    #[default]
    Newest,
    MostMotion,
    LeastMotion,
    Sharpest,
    Smoothest,
    MostConsistent,
}

impl GallerySort {
    pub const ALL: [GallerySort; 6] = [
        GallerySort::Newest,
        GallerySort::MostMotion,
        GallerySort::LeastMotion,
        GallerySort::Sharpest,
        GallerySort::Smoothest,
        GallerySort::MostConsistent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GallerySort::Newest => "newest",
            GallerySort::MostMotion => "most_motion",
            GallerySort::LeastMotion => "least_motion",
            GallerySort::Sharpest => "sharpest",
            GallerySort::Smoothest => "smoothest",
            GallerySort::MostConsistent => "most_consistent",
        }
    }

    pub fn parse(s: &str) -> Option<GallerySort> {
        GallerySort::ALL.into_iter().find(|g| g.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            GallerySort::Newest => "Newest",
            GallerySort::MostMotion => "Most motion",
            GallerySort::LeastMotion => "Least motion",
            GallerySort::Sharpest => "Sharpest",
            GallerySort::Smoothest => "Smoothest",
            GallerySort::MostConsistent => "Most consistent",
        }
    }
}

/// A flag the gallery can filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreFlag {
    Still,
    CameraOnly,
    /// Neither still nor camera only: something in the scene moves.
    ObjectMotion,
}

impl ScoreFlag {
    pub const ALL: [ScoreFlag; 3] = [ScoreFlag::Still, ScoreFlag::CameraOnly, ScoreFlag::ObjectMotion];

    pub fn as_str(self) -> &'static str {
        match self {
            ScoreFlag::Still => "still",
            ScoreFlag::CameraOnly => "camera_only",
            ScoreFlag::ObjectMotion => "object_motion",
        }
    }

    pub fn parse(s: &str) -> Option<ScoreFlag> {
        ScoreFlag::ALL.into_iter().find(|g| g.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            ScoreFlag::Still => "Still",
            ScoreFlag::CameraOnly => "Camera only",
            ScoreFlag::ObjectMotion => "Things move",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_flags_round_trip_their_names() {
        for s in GallerySort::ALL {
            assert_eq!(GallerySort::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for f in ScoreFlag::ALL {
            assert_eq!(ScoreFlag::parse(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
        assert_eq!(GallerySort::parse("loudest"), None);
    }

    #[test]
    fn scores_read_with_missing_fields() {
        let s: Scores = serde_json::from_str(r#"{"motion": 1.5, "still": false}"#).unwrap();
        assert_eq!(s.motion, 1.5);
        assert!(s.fidelity.is_none());
        let still = Scores { still: true, ..Scores::default() };
        assert_eq!(still.warnings().len(), 1);
        assert!(Scores::default().warnings().is_empty());
    }
}
