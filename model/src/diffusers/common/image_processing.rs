//! Image preparation as diffusers' video pipelines do it, on the host in f32: 8-bit RGB to
//! planar floats, the antialiased resize SVD applies before CLIP (`_resize_with_antialiasing`:
//! a Gaussian blur with reflect padding, then PyTorch's bicubic interpolation with aligned
//! corners), and CLIP's per-channel normalisation.

use image::RgbImage;

/// A planar float image, `[3, height, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Planar {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Planar {
    /// Values `v / 255` (diffusers' `pil_to_numpy`), mapped through `f`.
    pub fn from_rgb8(img: &RgbImage, f: impl Fn(f32) -> f32) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0.0; 3 * w * h];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                data[c * w * h + y as usize * w + x as usize] = f(p.0[c] as f32 / 255.0);
            }
        }
        Self { width: w, height: h, data }
    }

    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// `_resize_with_antialiasing(image, (height, width))` of diffusers' SVD pipeline.
    pub fn resize_with_antialiasing(&self, height: usize, width: usize) -> Planar {
        let factors = (self.height as f32 / height as f32, self.width as f32 / width as f32);
        let sigmas = (((factors.0 - 1.0) / 2.0).max(0.001), ((factors.1 - 1.0) / 2.0).max(0.001));
        let odd = |k: usize| if k.is_multiple_of(2) { k + 1 } else { k };
        let ky = odd((2.0 * 2.0 * sigmas.0).max(3.0) as usize);
        let kx = odd((2.0 * 2.0 * sigmas.1).max(3.0) as usize);
        let blurred = self.filter(&gaussian(kx, sigmas.1), true).filter(&gaussian(ky, sigmas.0), false);
        blurred.bicubic_align_corners(height, width)
    }

    /// A 1D filter along x (`horizontal`) or y, with reflect padding, as kornia's `filter2d`.
    fn filter(&self, kernel: &[f32], horizontal: bool) -> Planar {
        let k = kernel.len();
        let front = (k - 1) / 2;
        let (w, h) = (self.width, self.height);
        let reflect = |i: isize, n: usize| -> usize {
            let n = n as isize;
            let mut i = i;
            if n == 1 {
                return 0;
            }
            while i < 0 || i >= n {
                if i < 0 {
                    i = -i;
                }
                if i >= n {
                    i = 2 * (n - 1) - i;
                }
            }
            i as usize
        };
        let mut out = vec![0.0; self.data.len()];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let mut acc = 0.0f32;
                    for (j, kv) in kernel.iter().enumerate() {
                        let off = j as isize - front as isize;
                        let v = if horizontal {
                            self.at(c, y, reflect(x as isize + off, w))
                        } else {
                            self.at(c, reflect(y as isize + off, h), x)
                        };
                        acc += v * kv;
                    }
                    out[(c * h + y) * w + x] = acc;
                }
            }
        }
        Planar { width: w, height: h, data: out }
    }

    /// `F.interpolate(mode="bicubic", align_corners=True)`: cubic convolution with A = -0.75,
    /// source indices clamped at the borders.
    fn bicubic_align_corners(&self, height: usize, width: usize) -> Planar {
        let scale = |inp: usize, out: usize| if out > 1 { (inp as f32 - 1.0) / (out as f32 - 1.0) } else { 0.0 };
        let (sy, sx) = (scale(self.height, height), scale(self.width, width));
        let taps = |src: f32, n: usize| -> ([usize; 4], [f32; 4]) {
            let i = src.floor();
            let t = src - i;
            let i = i as isize;
            let idx = [-1isize, 0, 1, 2].map(|o| (i + o).clamp(0, n as isize - 1) as usize);
            (idx, cubic_weights(t))
        };
        let mut data = vec![0.0; 3 * height * width];
        for y in 0..height {
            let (iy, wy) = taps(sy * y as f32, self.height);
            for x in 0..width {
                let (ix, wx) = taps(sx * x as f32, self.width);
                for c in 0..3 {
                    let mut acc = 0.0f32;
                    for (a, &yy) in iy.iter().enumerate() {
                        let mut row = 0.0f32;
                        for (b, &xx) in ix.iter().enumerate() {
                            row += self.at(c, yy, xx) * wx[b];
                        }
                        acc += row * wy[a];
                    }
                    data[(c * height + y) * width + x] = acc;
                }
            }
        }
        Planar { width, height, data }
    }

    /// `(v - mean[c]) / std[c]` per channel (CLIP's image normalisation).
    pub fn normalize(&mut self, mean: [f32; 3], std: [f32; 3]) {
        let plane = self.width * self.height;
        for (i, v) in self.data.iter_mut().enumerate() {
            let c = i / plane;
            *v = (*v - mean[c]) / std[c];
        }
    }
}

/// A normalised Gaussian window of `size` taps (kornia's `gaussian`).
fn gaussian(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size / 2) as f32;
    let shift = if size.is_multiple_of(2) { 0.5 } else { 0.0 };
    let g: Vec<f32> = (0..size)
        .map(|i| {
            let x = i as f32 - half + shift;
            (-(x * x) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = g.iter().sum();
    g.into_iter().map(|v| v / sum).collect()
}

/// PyTorch's cubic convolution weights for fractional offset `t` (A = -0.75).
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_windows_are_normalised_and_symmetric() {
        let g = gaussian(7, 1.3);
        assert!((g.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((g[0] - g[6]).abs() < 1e-7 && g[3] > g[2]);
    }

    #[test]
    fn bicubic_keeps_a_constant_image_and_the_corners() {
        let mut img = Planar { width: 5, height: 4, data: vec![0.25; 60] };
        img.data[0] = 1.0; // top-left corner of channel 0
        let out = img.bicubic_align_corners(9, 11);
        assert_eq!((out.width, out.height), (11, 9));
        assert!((out.at(0, 0, 0) - 1.0).abs() < 1e-6, "aligned corners keep the corner value");
        assert!(out.data[99..].iter().all(|v| (v - 0.25).abs() < 1e-6), "other channels stay constant");
    }
}
