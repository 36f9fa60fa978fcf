//! Automatic scores of a clip, on the axes of Emu Video's human study: amount of motion from
//! dense optical flow, split into camera and scene motion; smoothness; flicker; sharpness;
//! consistency; fidelity to an input image; faithfulness to the prompt. See
//! [`app::scores::Scores`] for what each value means.
//!
//! - [`plane`]: float pictures; [`flow`]: pyramidal Lucas-Kanade optical flow;
//!   [`camera`]: the global motion model fitted to a flow.
//! - [`motion`]: the flow-based measures; [`sharpness`]; [`fidelity`]; [`faithfulness`].
//! - [`backfill`]: scoring results stored before scores existed.

pub mod backfill;
pub mod camera;
pub mod faithfulness;
pub mod fidelity;
pub mod flow;
pub mod motion;
pub mod plane;
pub mod sharpness;

use app::scores::{SCORES_VERSION, STILL_MOTION, Scores};
use image::RgbImage;

/// The longer side flow is measured at: larger clips are scaled down first.
pub const ANALYSIS_SIDE: u32 = 128;
/// The camera moves when its motion is at least this much (percent of the width per frame).
pub const CAMERA_MOTION: f32 = 0.25;
/// Below this peak scene motion (same unit) nothing in the scene moves.
pub const OBJECT_MOTION: f32 = 0.3;

/// What a clip is measured against besides itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct Against<'a> {
    /// The image an image-to-video clip animates.
    pub input: Option<&'a RgbImage>,
    /// The prompt, checked with the built-in model's concepts.
    pub prompt: Option<&'a str>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    #[error("a clip needs at least 2 frames to be scored, this one has {0}")]
    TooFewFrames(usize),
    #[error("frame {index} is {got:?} pixels but frame 0 is {want:?}")]
    SizeMismatch { index: usize, got: (u32, u32), want: (u32, u32) },
    #[error("frames of {0}x{1} pixels are too small to score (at least 16x16)")]
    TooSmall(u32, u32),
}

/// Scores a clip.
pub fn score(frames: &[RgbImage], against: Against<'_>) -> Result<Scores, ScoreError> {
    let started = std::time::Instant::now();
    if frames.len() < 2 {
        return Err(ScoreError::TooFewFrames(frames.len()));
    }
    let want = frames[0].dimensions();
    if want.0 < 16 || want.1 < 16 {
        return Err(ScoreError::TooSmall(want.0, want.1));
    }
    if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.dimensions() != want) {
        return Err(ScoreError::SizeMismatch { index, got: f.dimensions(), want });
    }
    let mut small = Vec::with_capacity(frames.len());
    let mut scale = 1.0;
    for f in frames {
        let (s, k) = plane::fit(f, ANALYSIS_SIDE);
        small.push(s);
        scale = k;
    }
    let m = motion::measure(&small, scale);
    let sharpness_per_frame: Vec<f32> = frames.iter().map(sharpness::laplacian_variance).collect();
    let still = m.motion_p95 < STILL_MOTION;
    let camera_only =
        !still && m.camera_motion >= CAMERA_MOTION && m.object_motion_p95 < OBJECT_MOTION.max(0.25 * m.camera_motion);
    let mut scores = Scores {
        version: SCORES_VERSION,
        frames: frames.len() as u32,
        motion: m.motion,
        camera_motion: m.camera_motion,
        object_motion: m.object_motion,
        motion_p95: m.motion_p95,
        object_motion_p95: m.object_motion_p95,
        camera: m.camera,
        smoothness: m.smoothness,
        flicker: m.flicker,
        sharpness: sharpness_per_frame.iter().sum::<f32>() / frames.len() as f32,
        sharpness_drop: sharpness::drop(&sharpness_per_frame),
        sharpness_per_frame,
        consistency: m.consistency,
        still,
        camera_only,
        fidelity: against.input.map(|input| fidelity::fidelity(&frames[0], input)),
        faithfulness: against.prompt.and_then(|p| faithfulness::concepts(frames, p, &m)),
        seconds: 0.0,
    };
    scores.seconds = started.elapsed().as_secs_f32();
    Ok(scores)
}

/// The scores of a result's frames, as the gallery keeps them: against its input image, and its
/// prompt when the model that made it reads its prompt word by word (`reads_prompt` in its
/// description: the concepts measured are the words such a model knows). `None`, and logged,
/// when the frames cannot be measured (a single frame, say).
pub fn of_result(
    frames: &[RgbImage],
    input: Option<&RgbImage>,
    params: &app::types::JobParams,
    reads_prompt: bool,
) -> Option<Scores> {
    let prompt = (reads_prompt && !params.prompt.trim().is_empty()).then_some(params.prompt.as_str());
    match score(frames, Against { input, prompt }) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("the clip was not measured: {e}");
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::Rgb;

    /// A smooth, richly textured pattern (sums of sinusoids), defined everywhere, so moved
    /// copies are exact.
    pub fn pattern(x: f32, y: f32, seed: u64) -> [f32; 3] {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32) / (1u64 << 31) as f32
        };
        let mut out = [0.5f32; 3];
        for _ in 0..7 {
            let angle = next() * std::f32::consts::TAU;
            let wavelength = 9.0 + 30.0 * next();
            let phase = next() * std::f32::consts::TAU;
            let k = std::f32::consts::TAU / wavelength;
            let s = (k * (x * angle.cos() + y * angle.sin()) + phase).sin();
            let weights = [next(), next(), next()];
            for c in 0..3 {
                out[c] += 0.12 * weights[c] * s;
            }
        }
        out
    }

    pub fn render(w: u32, h: u32, f: impl Fn(f32, f32) -> [f32; 3]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let c = f(x as f32, y as f32);
            Rgb(c.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        })
    }

    pub fn texture(w: u32, h: u32, seed: u64) -> RgbImage {
        render(w, h, |x, y| pattern(x, y, seed))
    }

    /// The texture with its content moved by (dx, dy).
    pub fn shifted_texture(w: u32, h: u32, seed: u64, dx: f32, dy: f32) -> RgbImage {
        render(w, h, |x, y| pattern(x - dx, y - dy, seed))
    }

    fn clip(n: usize, f: impl Fn(usize) -> RgbImage) -> Vec<RgbImage> {
        (0..n).map(f).collect()
    }

    fn close(got: f32, want: f32, rel: f32) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn a_still_image_is_still() {
        let frames = clip(12, |_| texture(160, 120, 1));
        let s = score(&frames, Against::default()).unwrap();
        assert!(s.still && !s.camera_only, "{s:?}");
        assert!(s.motion < 0.05, "{}", s.motion);
        assert!(s.smoothness > 0.99 && s.consistency > 0.99 && s.flicker < 0.1, "{s:?}");
        assert_eq!(s.frames, 12);
    }

    #[test]
    fn a_pure_pan_is_camera_only_with_its_direction_and_size() {
        // Larger than the analysis size: the pan comes back in the clip's own pixels.
        for (dx, dy) in [(6.0f32, 0.0f32), (0.0, -4.0), (-3.0, 2.0)] {
            let frames = clip(10, |t| shifted_texture(384, 288, 2, dx * t as f32, dy * t as f32));
            let s = score(&frames, Against::default()).unwrap();
            assert!(s.camera_only && !s.still, "pan ({dx}, {dy}): {s:?}");
            let c = s.camera;
            let size = dx.hypot(dy);
            assert!(
                (c.pan_x - dx).abs() <= 0.1 * size && (c.pan_y - dy).abs() <= 0.1 * size,
                "pan ({dx}, {dy}): {c:?}"
            );
            assert!(c.zoom.abs() < 0.2 && c.rotation.abs() < 0.2, "{c:?}");
            assert!(close(s.camera_motion, 100.0 * size / 384.0, 0.1), "{} for {size}", s.camera_motion);
            assert!(s.object_motion < 0.2 * s.camera_motion, "{s:?}");
            assert!(s.smoothness > 0.95 && s.consistency > 0.95, "{s:?}");
        }
    }

    #[test]
    fn a_jerky_pan_is_less_smooth_than_a_steady_one() {
        let steady = clip(10, |t| shifted_texture(192, 144, 8, 2.0 * t as f32, 0.0));
        // The same average speed, but every other frame lags behind.
        let jerky =
            clip(10, |t| shifted_texture(192, 144, 8, 2.0 * t as f32 - if t % 2 == 1 { 1.5 } else { 0.0 }, 0.0));
        let (a, b) = (score(&steady, Against::default()).unwrap(), score(&jerky, Against::default()).unwrap());
        assert!(a.smoothness > 0.98, "{a:?}");
        assert!(b.smoothness < a.smoothness - 0.01, "{} vs {}", b.smoothness, a.smoothness);
    }

    #[test]
    fn an_object_moving_on_a_still_background_is_object_motion() {
        let frames = clip(10, |t| {
            let (cx, cy) = (50.0 + 4.0 * t as f32, 60.0);
            render(160, 120, |x, y| if (x - cx).hypot(y - cy) < 14.0 { [0.9, 0.15, 0.1] } else { pattern(x, y, 3) })
        });
        let s = score(&frames, Against::default()).unwrap();
        assert!(!s.still && !s.camera_only, "{s:?}");
        assert!(s.object_motion > s.camera_motion && s.object_motion_p95 > OBJECT_MOTION, "{s:?}");
        assert!(s.camera.pan_x.abs() < 0.3 && s.camera.zoom.abs() < 0.1, "{:?}", s.camera);
    }

    #[test]
    fn injected_flicker_raises_flicker() {
        let steady = clip(10, |_| texture(128, 96, 4));
        let flickering = clip(10, |t| {
            let lift = if t % 2 == 1 { 0.08 } else { 0.0 };
            render(128, 96, |x, y| pattern(x, y, 4).map(|v| v + lift))
        });
        let (a, b) = (score(&steady, Against::default()).unwrap(), score(&flickering, Against::default()).unwrap());
        assert!(a.flicker < 0.2, "{}", a.flicker);
        assert!(b.flicker > 5.0, "{}", b.flicker);
        assert!(b.smoothness < a.smoothness, "{} vs {}", b.smoothness, a.smoothness);
    }

    #[test]
    fn progressive_blur_drops_sharpness() {
        let base = texture(128, 96, 5);
        let frames = clip(8, |t| if t == 0 { base.clone() } else { image::imageops::blur(&base, 0.5 * t as f32) });
        let s = score(&frames, Against::default()).unwrap();
        assert!(s.sharpness_drop > 0.5, "{s:?}");
        assert!(s.sharpness_per_frame.windows(2).all(|w| w[1] <= w[0]), "{:?}", s.sharpness_per_frame);
        let steady = score(&clip(8, |_| base.clone()), Against::default()).unwrap();
        assert_eq!(steady.sharpness_drop, 0.0);
    }

    #[test]
    fn a_zoom_is_zoom_not_translation() {
        // The content grows 2% a frame about the centre.
        let (w, h) = (192u32, 144u32);
        let (cx, cy) = ((w - 1) as f32 / 2.0, (h - 1) as f32 / 2.0);
        let frames = clip(8, |t| {
            let s = 1.02f32.powi(t as i32);
            render(w, h, |x, y| pattern(cx + (x - cx) / s, cy + (y - cy) / s, 6))
        });
        let sc = score(&frames, Against::default()).unwrap();
        let c = sc.camera;
        assert!(close(c.zoom, 2.0, 0.1), "{c:?}");
        assert!(c.pan_x.abs() < 0.2 && c.pan_y.abs() < 0.2 && c.rotation.abs() < 0.1, "{c:?}");
        assert!(sc.camera_only, "{sc:?}");
    }

    #[test]
    fn fidelity_and_bad_clips() {
        let frames = clip(4, |_| texture(64, 48, 7));
        let s = score(&frames, Against { input: Some(&frames[0]), prompt: None }).unwrap();
        assert_eq!(s.fidelity.unwrap().psnr, 99.0);
        assert_eq!(score(&frames[..1], Against::default()).unwrap_err(), ScoreError::TooFewFrames(1));
        let mixed = vec![texture(64, 48, 1), texture(48, 64, 1)];
        assert!(matches!(score(&mixed, Against::default()), Err(ScoreError::SizeMismatch { index: 1, .. })));
        assert!(matches!(
            score(&[texture(8, 8, 1), texture(8, 8, 1)], Against::default()),
            Err(ScoreError::TooSmall(8, 8))
        ));
    }
}
