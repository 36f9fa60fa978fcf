//! Transparent measurements of a generated clip, done with plain image analysis on the
//! model-resolution frames: which palette colour dominates, where the subject is, how much and
//! which way things move, whether weather specks are present, PSNR against an input image.

use crate::builtin::vocab::Color;
use image::RgbImage;
use serde::Serialize;

/// How many of some clips passed a measure.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
}

impl Tally {
    pub fn add(&mut self, ok: bool) {
        self.total += 1;
        self.passed += ok as usize;
    }
    pub fn rate(&self) -> f32 {
        if self.total == 0 { 0.0 } else { self.passed as f32 / self.total as f32 }
    }
}

fn rgb(p: &image::Rgb<u8>) -> [f32; 3] {
    [p.0[0] as f32 / 255.0, p.0[1] as f32 / 255.0, p.0[2] as f32 / 255.0]
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Pixels within this RGB distance of a palette colour count as that colour.
const COLOR_RADIUS: f32 = 0.28;

/// The palette colour with the most matching pixels over the clip, with its pixel count.
pub fn dominant_color(frames: &[RgbImage]) -> Option<(Color, usize)> {
    let mut counts = vec![0usize; Color::ALL.len()];
    for f in frames {
        for p in f.pixels() {
            let c = rgb(p);
            let (best, d) = Color::ALL
                .iter()
                .enumerate()
                .map(|(i, col)| (i, dist(c, col.rgb())))
                .fold((0, f32::MAX), |a, b| if b.1 < a.1 { b } else { a });
            if d < COLOR_RADIUS {
                counts[best] += 1;
            }
        }
    }
    let (i, n) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    (*n > 0).then_some((Color::ALL[i], *n))
}

/// Centroid and area (pixels) of the pixels of `color` in one frame.
pub fn blob(frame: &RgbImage, color: Color) -> Option<((f32, f32), usize)> {
    let target = color.rgb();
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
    for (x, y, p) in frame.enumerate_pixels() {
        if dist(rgb(p), target) < COLOR_RADIUS {
            sx += x as f32;
            sy += y as f32;
            n += 1;
        }
    }
    (n > 0).then(|| ((sx / n as f32, sy / n as f32), n))
}

/// Net movement of the subject's centroid from the first quarter of the clip to the last,
/// in pixels (x right, y down), or `None` when the subject is not found in both.
pub fn displacement(frames: &[RgbImage], color: Color) -> Option<(f32, f32)> {
    let q = (frames.len() / 4).max(1);
    let mean = |fs: &[RgbImage]| {
        let found: Vec<(f32, f32)> = fs.iter().filter_map(|f| blob(f, color)).map(|b| b.0).collect();
        (!found.is_empty()).then(|| {
            let n = found.len() as f32;
            (found.iter().map(|p| p.0).sum::<f32>() / n, found.iter().map(|p| p.1).sum::<f32>() / n)
        })
    };
    let a = mean(&frames[..q])?;
    let b = mean(&frames[frames.len() - q..])?;
    Some((b.0 - a.0, b.1 - a.1))
}

/// Ratio of the subject's area at the end of the clip to its area at the start.
pub fn growth(frames: &[RgbImage], color: Color) -> Option<f32> {
    let q = (frames.len() / 4).max(1);
    let area = |fs: &[RgbImage]| fs.iter().map(|f| blob(f, color).map_or(0, |b| b.1)).sum::<usize>() as f32;
    let (a, b) = (area(&frames[..q]), area(&frames[frames.len() - q..]));
    (a > 0.0).then(|| b / a)
}

/// Vertical spread of the subject's centroid over the clip (pixels, max - min).
pub fn vertical_range(frames: &[RgbImage], color: Color) -> f32 {
    let ys: Vec<f32> = frames.iter().filter_map(|f| blob(f, color)).map(|b| b.0.1).collect();
    if ys.is_empty() {
        return 0.0;
    }
    ys.iter().cloned().fold(f32::MIN, f32::max) - ys.iter().cloned().fold(f32::MAX, f32::min)
}

/// Luma in [0, 1] (Rec. 601 weights).
pub fn luma(p: &image::Rgb<u8>) -> f32 {
    (0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32) / 255.0
}

/// Fraction of pixels that are small bright specks: brighter than the mean of their eight
/// neighbours by more than 0.12 (rain streaks and snowflakes at this scale).
pub fn speck_density(frames: &[RgbImage]) -> f32 {
    let mut specks = 0usize;
    let mut total = 0usize;
    for f in frames {
        let (w, h) = f.dimensions();
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let c = luma(f.get_pixel(x, y));
                let mut s = 0.0;
                for (dx, dy) in [(-1i32, -1i32), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
                    s += luma(f.get_pixel((x as i32 + dx) as u32, (y as i32 + dy) as u32));
                }
                if c - s / 8.0 > 0.12 {
                    specks += 1;
                }
                total += 1;
            }
        }
    }
    specks as f32 / total.max(1) as f32
}

/// Mean absolute difference between consecutive frames, in [0, 1].
pub fn motion_amount(frames: &[RgbImage]) -> f32 {
    if frames.len() < 2 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for w in frames.windows(2) {
        for (a, b) in w[0].pixels().zip(w[1].pixels()) {
            for c in 0..3 {
                sum += (a.0[c] as f64 - b.0[c] as f64).abs() / 255.0;
                n += 1;
            }
        }
    }
    (sum / n as f64) as f32
}

/// Global horizontal motion of the scene, pixels per frame summed over the clip (positive: the
/// content moves right, as it does when the camera pans left). Each consecutive pair is matched
/// by the integer shift in [-3, 3] with the smallest mean absolute difference.
pub fn horizontal_pan(frames: &[RgbImage]) -> f32 {
    let mut total = 0.0;
    for w in frames.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (width, height) = a.dimensions();
        let mut best = (0i32, f32::MAX);
        for dx in -3i32..=3 {
            let mut err = 0.0;
            let mut n = 0;
            for y in 0..height {
                for x in 4..width - 4 {
                    let pa = a.get_pixel((x as i32 - dx) as u32, y);
                    let pb = b.get_pixel(x, y);
                    err += (0..3).map(|c| (pa.0[c] as f32 - pb.0[c] as f32).abs()).sum::<f32>();
                    n += 1;
                }
            }
            let err = err / n as f32;
            if err < best.1 {
                best = (dx, err);
            }
        }
        total += best.0 as f32;
    }
    total
}

/// Peak signal-to-noise ratio between two images of the same size, in dB.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f32 {
    let mut se = 0.0f64;
    let mut n = 0usize;
    for (p, q) in a.pixels().zip(b.pixels()) {
        for c in 0..3 {
            se += (p.0[c] as f64 - q.0[c] as f64).powi(2);
            n += 1;
        }
    }
    let mse = se / n.max(1) as f64;
    if mse == 0.0 {
        return 99.0;
    }
    (10.0 * (255.0f64 * 255.0 / mse).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::prompt::parse;
    use crate::builtin::world::Scene;
    use crate::rng::Rng;

    /// Renders the toy world's own clip for a prompt, as 8-bit frames.
    fn world_clip(prompt: &str, seed: u64) -> Vec<RgbImage> {
        render(&Scene::sample(&mut Rng::new(seed), &parse(prompt), 0.0))
    }

    fn render(scene: &Scene) -> Vec<RgbImage> {
        let (t, s) = (16, 32);
        let data: Vec<f32> = scene.render(t, s).iter().map(|v| v * 2.0 - 1.0).collect();
        (0..t)
            .map(|f| crate::builtin::pipeline::from_planar(&data[f * 3 * s * s..(f + 1) * 3 * s * s], s as u32))
            .collect()
    }

    #[test]
    fn measures_agree_with_ground_truth_clips() {
        let clip = world_clip("a red ball moving left on a plain background, static camera", 1);
        assert_eq!(dominant_color(&clip).unwrap().0, Color::Red);
        let (dx, _) = displacement(&clip, Color::Red).unwrap();
        assert!(dx < -4.0, "{dx}");

        let clip = world_clip("a purple square growing in the desert, static camera", 2);
        assert!(growth(&clip, Color::Purple).unwrap() > 1.3);

        let still = world_clip("a yellow star spinning on a grass field, static camera", 3);
        let panned = world_clip("a yellow star spinning on a grass field, camera pans left", 3);
        assert!(horizontal_pan(&panned) > 3.0, "{}", horizontal_pan(&panned));
        assert!(horizontal_pan(&still).abs() < 2.0);
        let right = world_clip("a yellow star spinning on a grass field, camera pans right", 3);
        assert!(horizontal_pan(&right) < -3.0);

        let mut scene = Scene::sample(
            &mut Rng::new(4),
            &parse("a blue triangle bouncing on a plain background, static camera"),
            0.0,
        );
        scene.weather = None;
        let dry = render(&scene);
        scene.weather = Some(crate::builtin::vocab::Weather::Snow);
        let snowy = render(&scene);
        scene.weather = Some(crate::builtin::vocab::Weather::Rain);
        let rainy = render(&scene);
        let d = speck_density(&dry);
        assert!(speck_density(&snowy) > d * 1.5 + 0.005, "{} vs {d}", speck_density(&snowy));
        assert!(speck_density(&rainy) > d * 1.5 + 0.005, "{} vs {d}", speck_density(&rainy));
        assert!(motion_amount(&dry) > 0.005);
        assert_eq!(psnr(&dry[0], &dry[0]), 99.0);
        assert!(psnr(&dry[0], &dry[8]) < 40.0);
    }
}
