//! Sharpness per frame: the variance of the Laplacian of the luma (0-255 scale), the usual
//! blur measure; and how much of it a clip loses from start to end.

use image::RgbImage;

pub fn laplacian_variance(frame: &RgbImage) -> f32 {
    let l = super::plane::luma(frame);
    let (w, h) = (l.w, l.h);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v =
                255.0 * (l.at(x - 1, y) + l.at(x + 1, y) + l.at(x, y - 1) + l.at(x, y + 1) - 4.0 * l.at(x, y)) as f64;
            sum += v;
            sum2 += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean).max(0.0) as f32
}

/// 1 - (mean of the last quarter / mean of the first quarter), at least 0.
pub fn drop(per_frame: &[f32]) -> f32 {
    let q = (per_frame.len() / 4).max(1);
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len().max(1) as f32;
    let (first, last) =
        (mean(&per_frame[..q.min(per_frame.len())]), mean(&per_frame[per_frame.len().saturating_sub(q)..]));
    if first <= 0.0 { 0.0 } else { (1.0 - last / first).max(0.0) }
}
