//! How the motion model does on pictures it never saw, measured at display resolution:
//! held-out photo-like textures (the toy world's texture families with seeds training never
//! drew, rendered at 256 pixels and more) and example pictures given by the caller.
//!
//! - Camera direction: the scene's global motion, estimated from the frames (a shift search for
//!   pans, a scale search between the first and last frame for zooms), against what was asked.
//! - Continuity: each frame against the previous frame moved by the true camera motion (the
//!   toy world's camera at the request's motion strength), and the second frame against the
//!   input moved the same way, as PSNR over the pixels both frames show.
//! - Still clips: motion asked, and under 0.2% of the pixels change ([`changed_fraction`]).
//! - Weather: the same picture, prompt and seed with and without rain or snow: the share of
//!   pixels the weather made bright and pale ([`weather_fraction`]).
//! - Subject: a toy subject on a held-out texture, asked to move; its colour blob's travel.

use super::truth::{render_frame_wh, tau};
use crate::builtin::analysis;
use crate::builtin::analysis::Tally;
use crate::builtin::pipeline::{BuiltinModel, GenerationRequest};
use crate::builtin::prompt::Prompt;
use crate::builtin::vocab::{Camera, Color};
use crate::builtin::world::{Backdrop, Scene, TEXTURE_KINDS};
use crate::rng::Rng;
use image::RgbImage;
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct MotionReport {
    /// Pans and zooms that went the asked way.
    pub camera: Tally,
    /// Mean PSNR of each frame against the previous frame moved by the true motion, per clip
    /// (over the pixels both show; weather is drawn from the second frame on).
    pub continuity_db: Vec<f32>,
    /// PSNR of the second frame against the input moved by the true motion, per clip.
    pub second_frame_db: Vec<f32>,
    /// The picture's subject moved the asked way.
    pub subject: Tally,
    pub weather: Tally,
    pub still_clips: usize,
    pub clips: usize,
    pub details: Vec<String>,
}

pub fn mean(values: &[f32]) -> f32 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f32>() / values.len() as f32 }
}

impl MotionReport {
    pub fn meets_targets(&self) -> bool {
        self.camera.rate() >= 0.9
            && mean(&self.continuity_db) >= 25.0
            && mean(&self.second_frame_db) >= 25.0
            && self.still_clips == 0
            && self.weather.rate() >= 0.85
    }

    pub fn table(&self) -> String {
        let row = |name: &str, t: &Tally, target: &str| {
            format!("| {name:<34} | {:>3}/{:<3} {:>5.1}% | {target:<8} |\n", t.passed, t.total, 100.0 * t.rate())
        };
        let db = |name: &str, v: &[f32]| format!("| {name:<34} | {:>15.1} | >= 25 dB |\n", mean(v));
        let mut s = String::new();
        s.push_str("| image-to-video (held-out pictures) | result          | target   |\n");
        s.push_str("|------------------------------------|-----------------|----------|\n");
        s.push_str(&row("camera direction (pans, zooms)", &self.camera, ">= 90%"));
        s.push_str(&db("continuity, frame to frame (dB)", &self.continuity_db));
        s.push_str(&db("second frame against input (dB)", &self.second_frame_db));
        s.push_str(&row("subject moves the asked way", &self.subject, ""));
        s.push_str(&row("weather visible", &self.weather, ">= 85%"));
        s.push_str(&format!(
            "| {:<34} | {:>15} | 0        |\n",
            "still clips where motion was asked",
            format!("{} of {}", self.still_clips, self.clips)
        ));
        s
    }
}

/// A held-out photo-like texture (no subject) at `w` x `h`, with the camera it will be asked for.
fn texture(k: usize, camera: Camera, w: usize, h: usize) -> (Scene, RgbImage) {
    let mut rng = Rng::new(0x0DD_F00D + k as u64);
    let mut scene = Scene::sample(&mut rng, &Prompt { camera: Some(camera), ..Prompt::default() }, 1.0);
    scene.backdrop = Backdrop::Texture { kind: (k % TEXTURE_KINDS) as u8, seed: rng.next_u64() ^ 0xE7A1_0000 };
    scene.subject = None;
    scene.weather = None;
    scene.motion = 1.0;
    let image = to_image(&render_frame_wh(&scene, 0.0, &scene.pose_at(0.0), w, h, 2), w, h);
    (scene, image)
}

fn to_image(planar: &[f32], w: usize, h: usize) -> RgbImage {
    let plane = w * h;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb(std::array::from_fn(|c| (planar[c * plane + i] * 255.0).round().clamp(0.0, 255.0) as u8))
    })
}

/// `prev` moved by the toy world's camera from clip time `t0` to `t1` at motion strength
/// `motion`, and which pixels it covers.
fn moved_by_camera(camera: Camera, motion: f32, prev: &RgbImage, t0: f32, t1: f32) -> (RgbImage, Vec<bool>) {
    let scene = Scene { camera, motion, ..Scene::sample(&mut Rng::new(1), &Prompt::default(), 0.0) };
    let (ox0, z0) = scene.camera_at(t0);
    let (ox1, z1) = scene.camera_at(t1);
    let (w, h) = prev.dimensions();
    let mut valid = vec![false; (w * h) as usize];
    let out = RgbImage::from_fn(w, h, |x, y| {
        let u = (x as f32 + 0.5) / w as f32;
        let v = (y as f32 + 0.5) / h as f32;
        let (wx, wy) = (0.5 + (u - 0.5) / z1 + ox1, 0.5 + (v - 0.5) / z1);
        let (u0, v0) = (0.5 + (wx - ox0 - 0.5) * z0, 0.5 + (wy - 0.5) * z0);
        let (sx, sy) = (u0 * w as f32 - 0.5, v0 * h as f32 - 0.5);
        if sx < 0.0 || sy < 0.0 || sx > (w - 1) as f32 || sy > (h - 1) as f32 {
            return image::Rgb([0, 0, 0]);
        }
        valid[(y * w + x) as usize] = true;
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (ax, ay) = (sx - x0 as f32, sy - y0 as f32);
        let p = |x: u32, y: u32| prev.get_pixel(x, y).0;
        let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
        image::Rgb(std::array::from_fn(|k| {
            ((a[k] as f32 * (1.0 - ax) + b[k] as f32 * ax) * (1.0 - ay)
                + (c[k] as f32 * (1.0 - ax) + d[k] as f32 * ax) * ay)
                .round() as u8
        }))
    });
    (out, valid)
}

/// PSNR over the pixels marked valid.
fn masked_psnr(a: &RgbImage, b: &RgbImage, valid: &[bool]) -> f32 {
    let (mut se, mut n) = (0.0f64, 0usize);
    for ((p, q), ok) in a.pixels().zip(b.pixels()).zip(valid) {
        if *ok {
            for c in 0..3 {
                se += (p.0[c] as f64 - q.0[c] as f64).powi(2);
                n += 1;
            }
        }
    }
    if n == 0 {
        return 0.0;
    }
    let mse = se / n as f64;
    if mse == 0.0 { 99.0 } else { (10.0 * (255.0f64 * 255.0 / mse).log10()) as f32 }
}

/// Horizontal content motion over the clip in pixels (positive: content moves right), from the
/// best integer shift of each pair of consecutive frames within +-`max` pixels.
pub fn pan_pixels(frames: &[RgbImage], max: i32) -> f32 {
    use analysis::luma;
    let mut total = 0.0;
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (w, h) = a.dimensions();
        let mut best = (0, f32::MAX);
        for dx in -max..=max {
            let (mut err, mut n) = (0.0, 0);
            for y in (0..h).step_by(2) {
                for x in (max as u32..w - max as u32).step_by(2) {
                    err += (luma(a.get_pixel((x as i32 - dx) as u32, y)) - luma(b.get_pixel(x, y))).abs();
                    n += 1;
                }
            }
            let err = err / n.max(1) as f32;
            if err < best.1 {
                best = (dx, err);
            }
        }
        total += best.0 as f32;
    }
    total
}

/// The scale (about the centre) that best maps the first frame onto the last: above 1 the
/// content grew (zoom in), below 1 it shrank.
pub fn zoom_factor(first: &RgbImage, last: &RgbImage) -> f32 {
    let (w, h) = first.dimensions();
    let luma = |img: &RgbImage, x: f32, y: f32| {
        analysis::luma(img.get_pixel(x.clamp(0.0, (w - 1) as f32) as u32, y.clamp(0.0, (h - 1) as f32) as u32))
    };
    let mut best = (1.0, f32::MAX);
    for i in -30..=30 {
        let s = 2f32.powf(i as f32 / 30.0);
        let mut err = 0.0;
        // The central half of the last frame, sampled on a 48 x 48 grid.
        for gy in 0..48 {
            for gx in 0..48 {
                let u = 0.25 + 0.5 * (gx as f32 + 0.5) / 48.0;
                let v = 0.25 + 0.5 * (gy as f32 + 0.5) / 48.0;
                let (su, sv) = (0.5 + (u - 0.5) / s, 0.5 + (v - 0.5) / s);
                err += (luma(last, u * w as f32, v * h as f32) - luma(first, su * w as f32, sv * h as f32)).abs();
            }
        }
        if err < best.1 {
            best = (s, err);
        }
    }
    best.0
}

/// Fraction of pixels (over every consecutive pair of frames) that changed by more than 8 of
/// 255 in some channel. The mean difference misses motion on smooth pictures (a sky panning
/// moves only its clouds' edges); a still clip changes no pixel at all.
pub fn changed_fraction(frames: &[RgbImage]) -> f32 {
    let (mut changed, mut total) = (0usize, 0usize);
    for pair in frames.windows(2) {
        for (a, b) in pair[0].pixels().zip(pair[1].pixels()) {
            changed += (0..3).any(|c| a.0[c].abs_diff(b.0[c]) > 8) as usize;
            total += 1;
        }
    }
    changed as f32 / total.max(1) as f32
}

/// A clip that asked for motion is still when under 0.2% of its pixels change.
pub const STILL_BELOW: f32 = 0.002;

/// Fraction of pixels, over the clip, that weather made bright and pale: brighter by more
/// than 0.12 than the same frame made without weather (same picture, prompt and seed), with
/// every channel above 0.55 (rain streaks and snowflakes are light blue-grey and white).
pub fn weather_fraction(dry: &[RgbImage], wet: &[RgbImage]) -> f32 {
    use analysis::luma;
    let (mut hits, mut total) = (0usize, 0usize);
    for (a, b) in dry.iter().zip(wet) {
        for (p, q) in a.pixels().zip(b.pixels()) {
            let pale = q.0.iter().all(|&c| c as f32 / 255.0 > 0.55);
            hits += (pale && luma(q) - luma(p) > 0.12) as usize;
            total += 1;
        }
    }
    hits as f32 / total.max(1) as f32
}

fn camera_phrase(camera: Camera, k: usize) -> &'static str {
    match camera {
        Camera::PanLeft => ["camera pans left", "panning left"][k % 2],
        Camera::PanRight => ["camera pans right", "panning right"][k % 2],
        Camera::ZoomIn => ["camera zooms in", "zooming in"][k % 2],
        Camera::ZoomOut => ["camera zooms out", "zooming out"][k % 2],
        Camera::Static => "static camera",
    }
}

/// Runs the image-to-video evaluation: `per_category` clips per category on held-out
/// textures, plus every picture in `examples` (name, picture) with each camera move.
pub fn run(
    model: &BuiltinModel,
    per_category: usize,
    seed: u64,
    examples: &[(String, RgbImage)],
    mut on_clip: impl FnMut(&str),
) -> anyhow::Result<MotionReport> {
    let mut report = MotionReport::default();
    let moves = [Camera::PanLeft, Camera::PanRight, Camera::ZoomIn, Camera::ZoomOut];
    let mut cases: Vec<(String, Camera, RgbImage)> = Vec::new();
    for k in 0..per_category * 2 {
        let camera = moves[k % 4];
        let (w, h) = [(256, 256), (384, 256), (256, 320), (512, 288)][k % 4];
        cases.push((format!("texture {k} {w}x{h}"), camera, texture(k, camera, w, h).1));
    }
    for (i, (name, picture)) in examples.iter().enumerate() {
        for (j, &camera) in moves.iter().enumerate() {
            if (i + j) % 2 == 0 || examples.len() < 2 {
                cases.push((name.clone(), camera, picture.clone()));
            }
        }
    }
    for (k, (name, camera, picture)) in cases.into_iter().enumerate() {
        let prompt = camera_phrase(camera, k).to_string();
        let req = GenerationRequest {
            prompt: prompt.clone(),
            seed: seed + k as u64,
            frames: Some(16),
            ..GenerationRequest::default()
        };
        let frames = model.generate(&req, Some(&picture), &mut |_| {}, &|| false)?.frames;
        // The true motion: the camera at the strength the model was asked for (the request's,
        // at the pace its seed sets).
        let strength = super::animate::effective_motion(&model.animate_request(&req));
        report.clips += 1;
        let m = changed_fraction(&frames);
        if m < STILL_BELOW {
            report.still_clips += 1;
        }
        let n = frames.len();
        let mut psnrs = Vec::new();
        for f in 1..n {
            let (moved, valid) = moved_by_camera(camera, strength, &frames[f - 1], tau(f - 1, n), tau(f, n));
            psnrs.push(masked_psnr(&moved, &frames[f], &valid));
        }
        let (moved, valid) = moved_by_camera(camera, strength, &frames[0], 0.0, tau(1, n));
        let second = masked_psnr(&moved, &frames[1], &valid);
        let continuity = mean(&psnrs);
        report.continuity_db.push(continuity);
        report.second_frame_db.push(second);
        let (ok, measured) = match camera {
            Camera::PanLeft | Camera::PanRight => {
                let max = (frames[0].width() / 16).max(4) as i32;
                let pan = pan_pixels(&frames, max);
                let expected = 0.45 * strength * frames[0].width() as f32;
                let ok = if camera == Camera::PanLeft { pan > 0.25 * expected } else { pan < -0.25 * expected };
                (
                    ok,
                    format!(
                        "pan {pan:+.0} px (true {:+.0})",
                        if camera == Camera::PanLeft { expected } else { -expected }
                    ),
                )
            }
            _ => {
                let z = zoom_factor(&frames[0], &frames[n - 1]);
                let ok = if camera == Camera::ZoomIn { z > 1.15 } else { z < 0.87 };
                let true_zoom = 1.0 + 0.7 * strength;
                (
                    ok,
                    format!(
                        "zoom x{z:.2} (true x{:.2})",
                        if camera == Camera::ZoomIn { true_zoom } else { 1.0 / true_zoom }
                    ),
                )
            }
        };
        report.camera.add(ok);
        let detail = format!(
            "i2v {name} + {prompt:?}: {measured} {}, continuity {continuity:.1} dB, second frame {second:.1} dB, {:.1}% of pixels change",
            if ok { "ok" } else { "WRONG" },
            100.0 * m
        );
        on_clip(&detail);
        report.details.push(detail);
    }

    // Weather on held-out textures: with and without, same picture and seed.
    for k in 0..per_category {
        let (_, picture) = texture(100 + k, Camera::Static, 256, 256);
        let wet = ["while it snows", "in the rain", "snowing", "rainy"][k % 4];
        let s = seed + 500 + k as u64;
        let animate = |prompt: &str| -> anyhow::Result<Vec<RgbImage>> {
            let req =
                GenerationRequest { prompt: prompt.into(), seed: s, frames: Some(16), ..GenerationRequest::default() };
            Ok(model.generate(&req, Some(&picture), &mut |_| {}, &|| false)?.frames)
        };
        let dry = animate("static camera")?;
        let rained = animate(&format!("static camera, {wet}"))?;
        report.clips += 1;
        if changed_fraction(&rained) < STILL_BELOW {
            report.still_clips += 1;
        }
        let b = weather_fraction(&dry, &rained);
        let ok = b > 0.003;
        report.weather.add(ok);
        let detail = format!(
            "i2v texture + {wet:?}: {:.2}% of pixels show weather {}",
            100.0 * b,
            if ok { "ok" } else { "WRONG" }
        );
        on_clip(&detail);
        report.details.push(detail);
    }

    // A subject in a picture, moved the way the prompt says.
    let actions =
        [("moving right", 1.0, 0.0), ("moving left", -1.0, 0.0), ("moving up", 0.0, -1.0), ("moving down", 0.0, 1.0)];
    for k in 0..per_category {
        let (words, ex, ey) = actions[k % 4];
        let color = [Color::Red, Color::Yellow, Color::Blue, Color::Purple][k % 4];
        let action = crate::builtin::prompt::parse(words).action;
        let mut rng = Rng::new(0x5B_1EC7 + k as u64);
        let wish = Prompt { action, color: Some(color), camera: Some(Camera::Static), ..Prompt::default() };
        let mut scene = Scene::sample(&mut rng, &wish, 1.0);
        scene.weather = None;
        let subject = scene.subject.unwrap_or(crate::builtin::vocab::Subject::Ball);
        scene.subject = Some(subject);
        let size = 256;
        let picture = to_image(&render_frame_wh(&scene, 0.0, &scene.pose_at(0.0), size, size, 2), size, size);
        let prompt = format!("the {} {} {words}", color.phrase(), subject.phrase());
        let req = GenerationRequest {
            prompt: prompt.clone(),
            seed: seed + 700 + k as u64,
            frames: Some(16),
            ..GenerationRequest::default()
        };
        let frames = model.generate(&req, Some(&picture), &mut |_| {}, &|| false)?.frames;
        report.clips += 1;
        if changed_fraction(&frames) < STILL_BELOW {
            report.still_clips += 1;
        }
        let d = analysis::displacement(&frames, color);
        let ok = d.is_some_and(|(dx, dy)| dx * ex + dy * ey > 0.1 * size as f32);
        report.subject.add(ok);
        let detail = format!("i2v subject + {prompt:?}: displacement {d:?} {}", if ok { "ok" } else { "WRONG" });
        on_clip(&detail);
        report.details.push(detail);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measures read the true motion off true clips: a rendered pan goes the right way,
    /// and a rendered zoom scales the right way.
    #[test]
    fn measures_recover_the_true_camera() {
        for camera in [Camera::PanLeft, Camera::PanRight, Camera::ZoomIn, Camera::ZoomOut] {
            let (scene, _) = texture(3, camera, 128, 128);
            let frames: Vec<RgbImage> = (0..6)
                .map(|f| to_image(&render_frame_wh(&scene, tau(f, 6), &scene.pose_at(0.0), 128, 128, 1), 128, 128))
                .collect();
            match camera {
                Camera::PanLeft => assert!(pan_pixels(&frames, 16) > 30.0, "{}", pan_pixels(&frames, 16)),
                Camera::PanRight => assert!(pan_pixels(&frames, 16) < -30.0),
                Camera::ZoomIn => assert!(zoom_factor(&frames[0], &frames[5]) > 1.4),
                _ => assert!(zoom_factor(&frames[0], &frames[5]) < 0.7),
            }
            assert!(changed_fraction(&frames) > STILL_BELOW, "{camera:?} moves");
            assert_eq!(changed_fraction(&[frames[0].clone(), frames[0].clone()]), 0.0);
            assert_eq!(weather_fraction(&frames, &frames), 0.0);
            let snowed: Vec<RgbImage> = frames
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    for (x, y) in [(10, 10), (40, 70), (90, 30)] {
                        for dy in 0..4 {
                            for dx in 0..4 {
                                f.put_pixel(x + dx, y + dy, image::Rgb([250, 250, 250]));
                            }
                        }
                    }
                    f
                })
                .collect();
            assert!(weather_fraction(&frames, &snowed) > 0.001);
            // The true motion maps each frame onto the next.
            let (moved, valid) = moved_by_camera(camera, 1.0, &frames[0], 0.0, tau(1, 6));
            assert!(masked_psnr(&moved, &frames[1], &valid) > 22.0, "{camera:?}");
        }
    }
}
