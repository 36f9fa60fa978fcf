//! Image to video: how faithfully a clip's first frame keeps the input picture (PSNR, SSIM).

use super::plane::{Plane, luma};
use app::scores::Fidelity;
use image::RgbImage;

/// The first frame against the input, the input scaled to the frame's size when they differ.
pub fn fidelity(first: &RgbImage, input: &RgbImage) -> Fidelity {
    let input = if input.dimensions() == first.dimensions() {
        input.clone()
    } else {
        image::imageops::resize(input, first.width(), first.height(), image::imageops::FilterType::Lanczos3)
    };
    Fidelity { psnr: psnr(first, &input), ssim: ssim(&luma(first), &luma(&input)) }
}

/// Peak signal-to-noise ratio over RGB, dB (99 for identical pictures).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f32 {
    let mut se = 0.0f64;
    for (p, q) in a.as_raw().iter().zip(b.as_raw()) {
        se += (*p as f64 - *q as f64).powi(2);
    }
    let mse = se / a.as_raw().len().max(1) as f64;
    if mse == 0.0 { 99.0 } else { (10.0 * (255.0f64 * 255.0 / mse).log10()).min(99.0) as f32 }
}

/// Structural similarity of two planes of the same size (values in [0, 1]): Gaussian windows
/// of σ 1.5 (11 taps), the usual constants, averaged over the picture.
pub fn ssim(a: &Plane, b: &Plane) -> f32 {
    let (c1, c2) = (0.01f32 * 0.01, 0.03f32 * 0.03);
    let mul =
        |p: &Plane, q: &Plane| Plane { w: p.w, h: p.h, data: p.data.iter().zip(&q.data).map(|(x, y)| x * y).collect() };
    let (ma, mb) = (gaussian(a), gaussian(b));
    let (saa, sbb, sab) = (gaussian(&mul(a, a)), gaussian(&mul(b, b)), gaussian(&mul(a, b)));
    let mut total = 0.0f64;
    for i in 0..a.data.len() {
        let (mx, my) = (ma.data[i], mb.data[i]);
        let vx = saa.data[i] - mx * mx;
        let vy = sbb.data[i] - my * my;
        let cov = sab.data[i] - mx * my;
        total += (((2.0 * mx * my + c1) * (2.0 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))) as f64;
    }
    (total / a.data.len().max(1) as f64) as f32
}

/// Separable Gaussian blur, σ 1.5, 11 taps, borders renormalised.
fn gaussian(p: &Plane) -> Plane {
    let taps: Vec<f32> = (-5i32..=5).map(|k| (-(k * k) as f32 / (2.0 * 1.5 * 1.5)).exp()).collect();
    let pass = |src: &Plane, horizontal: bool| {
        let mut out = Plane::new(src.w, src.h);
        for y in 0..src.h {
            for x in 0..src.w {
                let (mut s, mut n) = (0.0, 0.0);
                for (k, t) in taps.iter().enumerate() {
                    let o = k as i32 - 5;
                    let (xx, yy) = if horizontal { (x as i32 + o, y as i32) } else { (x as i32, y as i32 + o) };
                    if xx >= 0 && yy >= 0 && (xx as usize) < src.w && (yy as usize) < src.h {
                        s += t * src.at(xx as usize, yy as usize);
                        n += t;
                    }
                }
                out.data[y * src.w + x] = s / n;
            }
        }
        out
    };
    pass(&pass(p, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::tests::texture;

    #[test]
    fn identical_pictures_are_perfect_and_noise_costs() {
        let a = texture(64, 48, 1);
        let f = fidelity(&a, &a);
        assert_eq!(f.psnr, 99.0);
        assert!((f.ssim - 1.0).abs() < 1e-4, "{}", f.ssim);
        let b = texture(64, 48, 2);
        let g = fidelity(&a, &b);
        assert!(g.psnr < 20.0 && g.ssim < 0.5, "{g:?}");
        // The input at another size is compared at the frame's size.
        let big = image::imageops::resize(&a, 128, 96, image::imageops::FilterType::Triangle);
        assert!(fidelity(&a, &big).psnr > 25.0);
    }
}
