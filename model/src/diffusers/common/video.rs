//! What the video pipelines share: whether components stay loaded ([`MemoryMode`]) and the clip
//! they make ([`GeneratedVideo`]).

use image::RgbImage;

/// Whether components stay loaded between clips, or are loaded per phase and freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// Everything stays resident: fastest for repeated clips.
    Resident,
    /// Components are loaded for their phase only and freed after it (SVD also runs its two
    /// guidance halves one after the other).
    Low,
}

impl MemoryMode {
    /// As results' metadata names it.
    pub fn name(self) -> &'static str {
        match self {
            MemoryMode::Resident => "resident",
            MemoryMode::Low => "low",
        }
    }
}

/// Generated frames: RGB in [0, 1], each row-major [height, width, 3].
#[derive(Debug, Clone)]
pub struct GeneratedVideo {
    pub width: usize,
    pub height: usize,
    pub frames: Vec<Vec<f32>>,
    pub encode_seconds: f64,
    pub sampling_seconds: f64,
    pub decode_seconds: f64,
}

impl GeneratedVideo {
    /// 8-bit frames, rounded as diffusers' `numpy_to_pil` rounds.
    pub fn to_rgb8(&self) -> Vec<RgbImage> {
        self.frames
            .iter()
            .map(|f| {
                let bytes = f.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
                RgbImage::from_raw(self.width as u32, self.height as u32, bytes).expect("buffer matches size")
            })
            .collect()
    }
}
