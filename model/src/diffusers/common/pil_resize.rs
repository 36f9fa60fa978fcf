//! PIL's `Image.resize` with Lanczos or bicubic on 8-bit RGB, value for value: diffusers' image
//! processors (Lanczos) and transformers' CLIP image processor without torchvision (bicubic)
//! resize PIL pictures with it, so a port that resamples otherwise (the `image` crate's filters
//! differ by a level here and there) starts from other pixels.
//!
//! As Pillow's `Resample.c` does it: per output pixel a window of `support * max(1, in / out)`
//! input pixels around its centre, the filter's weights normalised to sum 1 and turned into
//! fixed point (22 fraction bits), a horizontal pass then a vertical one, each rounded and
//! clipped to 8 bits.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A resampling filter, as Pillow defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.LANCZOS` (support 3).
    Lanczos,
    /// `Image.BICUBIC` (support 2, a = -0.5).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Lanczos => 3.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Lanczos => lanczos(x),
            Filter::Bicubic => bicubic(x),
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
}

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: the first input index and the fixed-point weights from there.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero.
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> =
                (min..max).map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale)).collect();
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
    resize(image, width, height, Filter::Lanczos)
}

/// `image.resize((width, height), filter)`.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (w, h) = (width as usize, height as usize);
    let src = image.as_raw();
    let round = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (when the width changes), rows of `in_h`.
    let horizontal: Vec<u8> = if w != in_w {
        let coeffs = coefficients(in_w, w, filter);
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
        let coeffs = coefficients(in_h, h, filter);
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
    use super::{Filter, resize};
    use image::RgbImage;

    /// Position-weighted sums of Pillow's output (`Image.resize(size, filter)`) for a
    /// 7x5 picture, down, up and one way only: any pixel off by a level changes them.
    #[test]
    fn matches_pillow() {
        let picture = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb(std::array::from_fn(|c| ((x * 37 + y * 11 + c as u32 * 5 + (x * y * 13) % 7 * 20) % 256) as u8))
        });
        let lanczos = [((4, 3), 88163u64), ((10, 8), 3729395), ((7, 2), 116584), ((3, 5), 138288)];
        let bicubic = [((4, 3), 88303u64), ((10, 8), 3736541), ((7, 2), 116940), ((3, 5), 138294)];
        for (filter, sums) in [(Filter::Lanczos, lanczos), (Filter::Bicubic, bicubic)] {
            for ((w, h), want) in sums {
                let got = resize(&picture, w, h, filter);
                let sum: u64 = got.as_raw().iter().enumerate().map(|(i, &v)| v as u64 * (i as u64 + 1)).sum();
                assert_eq!(sum, want, "{filter:?} {w}x{h}");
            }
        }
    }
}
