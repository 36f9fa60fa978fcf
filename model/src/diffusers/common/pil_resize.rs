//! PIL's `Image.resize` with Lanczos on 8-bit RGB, value for value: diffusers' image processors
//! resize PIL pictures with it, so a port that resamples otherwise (the `image` crate's filters
//! differ by a level here and there) starts from other pixels.
//!
//! As Pillow's `Resample.c` does it: per output pixel a window of `3 * max(1, in / out)` input
//! pixels around its centre, Lanczos weights normalised to sum 1 and turned into fixed point
//! (22 fraction bits), a horizontal pass then a vertical one, each rounded and clipped to 8
//! bits.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const SUPPORT: f64 = 3.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-SUPPORT..SUPPORT).contains(&x) { sinc(x) * sinc(x / SUPPORT) } else { 0.0 }
}

/// Per output index: the first input index and the fixed-point weights from there.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = SUPPORT * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero.
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (min..max).map(|x| lanczos((x as f64 - center + 0.5) / filter_scale)).collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * (1u64 << PRECISION_BITS) as f64;
                    (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i64
                })
                .collect();
            (min, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `image.resize((width, height), Image.LANCZOS)`.
pub fn resize_lanczos(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (w, h) = (width as usize, height as usize);
    let src = image.as_raw();
    let round = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (when the width changes), rows of `in_h`.
    let horizontal: Vec<u8> = if w != in_w {
        let coeffs = coefficients(in_w, w);
        let mut out = vec![0u8; w * in_h * 3];
        for y in 0..in_h {
            for (x, (min, k)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let sum =
                        k.iter().enumerate().map(|(i, k)| src[(y * in_w + min + i) * 3 + c] as i64 * k).sum::<i64>();
                    out[(y * w + x) * 3 + c] = clip8(round + sum);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    let vertical = if h != in_h {
        let coeffs = coefficients(in_h, h);
        let mut out = vec![0u8; w * h * 3];
        for (y, (min, k)) in coeffs.iter().enumerate() {
            for x in 0..w {
                for c in 0..3 {
                    let sum = k
                        .iter()
                        .enumerate()
                        .map(|(i, k)| horizontal[((min + i) * w + x) * 3 + c] as i64 * k)
                        .sum::<i64>();
                    out[(y * w + x) * 3 + c] = clip8(round + sum);
                }
            }
        }
        out
    } else {
        horizontal
    };
    RgbImage::from_raw(width, height, vertical).expect("the buffer holds width x height pixels")
}

#[cfg(test)]
mod tests {
    use super::resize_lanczos;
    use image::RgbImage;

    /// Position-weighted sums of Pillow's output (`Image.resize(size, Image.LANCZOS)`) for a
    /// 7x5 picture, down, up and one way only: any pixel off by a level changes them.
    #[test]
    fn matches_pillow() {
        let picture = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb(std::array::from_fn(|c| ((x * 37 + y * 11 + c as u32 * 5 + (x * y * 13) % 7 * 20) % 256) as u8))
        });
        for ((w, h), want) in [((4, 3), 88163u64), ((10, 8), 3729395), ((7, 2), 116584), ((3, 5), 138288)] {
            let got = resize_lanczos(&picture, w, h);
            let sum: u64 = got.as_raw().iter().enumerate().map(|(i, &v)| v as u64 * (i as u64 + 1)).sum();
            assert_eq!(sum, want, "{w}x{h}");
        }
    }
}
