//! One channel of a picture as floats, at the resolution the measures work at: conversion from
//! RGB, area downsampling, bilinear sampling, and box sums.

use image::RgbImage;

/// A single-channel image, row-major, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Plane {
    pub fn new(w: usize, h: usize) -> Plane {
        Plane { w, h, data: vec![0.0; w * h] }
    }

    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    /// Bilinear sample at (x, y), or `None` outside the picture.
    #[inline]
    pub fn sample(&self, x: f32, y: f32) -> Option<f32> {
        if !(x >= 0.0 && y >= 0.0 && x <= (self.w - 1) as f32 && y <= (self.h - 1) as f32) {
            return None;
        }
        Some(self.sample_clamped(x, y))
    }

    /// Bilinear sample with coordinates clamped to the picture.
    #[inline]
    pub fn sample_clamped(&self, x: f32, y: f32) -> f32 {
        bilinear(&self.data, self.w, self.h, x, y)
    }

    /// Catmull-Rom (bicubic) sample at (x, y), or `None` outside the picture: sharper than
    /// bilinear between pixels, so resampling a fine texture loses little.
    pub fn sample_cubic(&self, x: f32, y: f32) -> Option<f32> {
        if !(x >= 0.0 && y >= 0.0 && x <= (self.w - 1) as f32 && y <= (self.h - 1) as f32) {
            return None;
        }
        let (x0, y0) = (x.floor() as isize, y.floor() as isize);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let weights = |t: f32| {
            let (t2, t3) = (t * t, t * t * t);
            [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2]
        };
        let (wx, wy) = (weights(fx), weights(fy));
        let mut out = 0.0;
        for (j, wyj) in wy.iter().enumerate() {
            let yy = (y0 + j as isize - 1).clamp(0, self.h as isize - 1) as usize;
            let mut row = 0.0;
            for (i, wxi) in wx.iter().enumerate() {
                let xx = (x0 + i as isize - 1).clamp(0, self.w as isize - 1) as usize;
                row += wxi * self.at(xx, yy);
            }
            out += wyj * row;
        }
        Some(out)
    }

    /// Smoothed by the 3x3 binomial filter ([1 2 1] / 4 each way; borders repeat).
    pub fn soften(&self) -> Plane {
        let pass = |src: &Plane, dx: usize, dy: usize| {
            let mut out = Plane::new(src.w, src.h);
            for y in 0..src.h {
                for x in 0..src.w {
                    let (xl, yl) = (x.saturating_sub(dx), y.saturating_sub(dy));
                    let (xr, yr) = ((x + dx).min(src.w - 1), (y + dy).min(src.h - 1));
                    out.data[y * src.w + x] = 0.25 * src.at(xl, yl) + 0.5 * src.at(x, y) + 0.25 * src.at(xr, yr);
                }
            }
            out
        };
        pass(&pass(self, 1, 0), 0, 1)
    }

    /// Half the size, each pixel the mean of a 2x2 block (odd last rows and columns folded in).
    pub fn half(&self) -> Plane {
        let (w, h) = ((self.w / 2).max(1), (self.h / 2).max(1));
        let mut out = Plane::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (x0, y0) = ((2 * x).min(self.w - 1), (2 * y).min(self.h - 1));
                let (x1, y1) = ((2 * x + 1).min(self.w - 1), (2 * y + 1).min(self.h - 1));
                out.data[y * w + x] = 0.25 * (self.at(x0, y0) + self.at(x1, y0) + self.at(x0, y1) + self.at(x1, y1));
            }
        }
        out
    }

    /// Sums over the (2r+1)x(2r+1) box around every pixel (cut at the borders).
    pub fn box_sum(&self, r: usize) -> Plane {
        let (w, h) = (self.w, self.h);
        // Integral image with a zero row and column in front.
        let mut integral = vec![0.0f64; (w + 1) * (h + 1)];
        for y in 0..h {
            let mut row = 0.0f64;
            for x in 0..w {
                row += self.data[y * w + x] as f64;
                integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
            }
        }
        let mut out = Plane::new(w, h);
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let s = integral[y1 * (w + 1) + x1] - integral[y0 * (w + 1) + x1] - integral[y1 * (w + 1) + x0]
                    + integral[y0 * (w + 1) + x0];
                out.data[y * w + x] = s as f32;
            }
        }
        out
    }
}

/// Bilinear sample of a row-major `w` x `h` field at (x, y), clamped to the field (the
/// motion model's sampler).
pub use model::builtin::motion::animate::bilinear;

/// Rec. 601 luma of an RGB picture, in [0, 1].
pub fn luma(img: &RgbImage) -> Plane {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data =
        img.pixels().map(|p| (0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32) / 255.0).collect();
    Plane { w, h, data }
}

/// The three colour channels of a picture, in [0, 1].
pub fn channels(img: &RgbImage) -> [Plane; 3] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    std::array::from_fn(|c| Plane { w, h, data: img.pixels().map(|p| p.0[c] as f32 / 255.0).collect() })
}

/// `img` scaled (area average) so its longer side is at most `max_side`; the scale used
/// (analysis pixels per clip pixel, at most 1) comes with it.
pub fn fit(img: &RgbImage, max_side: u32) -> (RgbImage, f32) {
    let (w, h) = img.dimensions();
    if w.max(h) <= max_side {
        return (img.clone(), 1.0);
    }
    let scale = max_side as f32 / w.max(h) as f32;
    let (nw, nh) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    // Triangle filtering over the scaled support is an area average for downscaling.
    let out = image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle);
    (out, nw as f32 / w as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sums_and_samples_are_exact_on_small_planes() {
        let p = Plane { w: 3, h: 2, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] };
        let s = p.box_sum(1);
        assert_eq!(s.at(0, 0), 1.0 + 2.0 + 4.0 + 5.0);
        assert_eq!(s.at(1, 0), 21.0);
        assert_eq!(p.sample(0.5, 0.5), Some(3.0));
        assert_eq!(p.sample(2.5, 0.0), None);
        assert_eq!(p.half().data, vec![3.0]);
        assert_eq!(p.sample_cubic(1.0, 1.0), Some(5.0));
        let ramp = Plane { w: 4, h: 1, data: vec![0.0, 1.0, 2.0, 3.0] };
        assert!((ramp.sample_cubic(1.5, 0.0).unwrap() - 1.5).abs() < 1e-6);
        assert_eq!(p.sample_cubic(-0.1, 0.0), None);
    }
}
