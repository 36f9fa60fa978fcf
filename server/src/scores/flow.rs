//! Dense optical flow: coarse-to-fine (pyramidal) Lucas-Kanade, solved at every pixel over a
//! window, with warping and a few refinements per level and a median filter between levels.
//!
//! Convention: `flow(prev, next)` gives, at each pixel p of `next`, the displacement d of the
//! content that is at p, so that `next(p) ≈ prev(p - d)`: the content moved by d.

use super::plane::{Plane, bilinear};

/// Coarsest pyramid level's shorter side, at least.
const MIN_LEVEL_SIDE: usize = 24;
/// Window radius of the per-pixel least squares (a 7x7 window).
const WINDOW: usize = 3;
/// Refinements per pyramid level.
const ITERATIONS: usize = 3;
/// Largest update of one refinement, pixels (keeps a bad solve from throwing a pixel away).
const MAX_STEP: f32 = 2.0;
/// A window whose smaller eigenvalue is below this share of the larger is an edge, not
/// texture: its update is skipped.
const ANISOTROPY: f32 = 0.02;
/// Added to the windowed structure tensor's diagonal: in flat areas the update goes to zero
/// and the coarser level's estimate stays.
const REGULARISATION: f32 = 1e-4;

/// A picture at several scales, finest first.
pub struct Pyramid {
    pub levels: Vec<Plane>,
}

impl Pyramid {
    pub fn new(finest: Plane) -> Pyramid {
        let mut levels = vec![finest];
        loop {
            let last = levels.last().expect("one level");
            if last.w.min(last.h) / 2 < MIN_LEVEL_SIDE {
                break;
            }
            let next = last.half();
            levels.push(next);
        }
        Pyramid { levels }
    }

    pub fn finest(&self) -> &Plane {
        &self.levels[0]
    }
}

/// A flow field, with how well determined each vector is.
#[derive(Debug, Clone)]
pub struct Flow {
    pub w: usize,
    pub h: usize,
    pub u: Vec<f32>,
    pub v: Vec<f32>,
    /// The smaller eigenvalue of the windowed structure tensor, per window pixel: large on
    /// texture and corners, near zero on flat areas and along straight edges.
    pub confidence: Vec<f32>,
}

impl Flow {
    fn zero(w: usize, h: usize) -> Flow {
        Flow { w, h, u: vec![0.0; w * h], v: vec![0.0; w * h], confidence: vec![0.0; w * h] }
    }

    /// This flow at twice the resolution (vectors doubled), cut to `w` x `h`.
    fn upsampled(&self, w: usize, h: usize) -> Flow {
        let mut out = Flow::zero(w, h);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = self.at((x as f32 + 0.5) / 2.0 - 0.5, (y as f32 + 0.5) / 2.0 - 0.5);
                (out.u[y * w + x], out.v[y * w + x]) = (2.0 * u, 2.0 * v);
            }
        }
        out
    }

    /// The flow's vector at (x, y), bilinear, clamped to the field.
    pub fn at(&self, x: f32, y: f32) -> (f32, f32) {
        (bilinear(&self.u, self.w, self.h, x, y), bilinear(&self.v, self.w, self.h, x, y))
    }
}

/// The flow from `prev` to `next` (pyramids of the same picture size).
pub fn estimate(prev: &Pyramid, next: &Pyramid) -> Flow {
    let levels = prev.levels.len().min(next.levels.len());
    let mut flow: Option<Flow> = None;
    for level in (0..levels).rev() {
        let (a, b) = (&prev.levels[level], &next.levels[level]);
        let mut f = match flow.take() {
            Some(coarse) => coarse.upsampled(b.w, b.h),
            None => Flow::zero(b.w, b.h),
        };
        for _ in 0..ITERATIONS {
            refine(a, b, &mut f);
        }
        median3(&mut f.u, f.w, f.h);
        median3(&mut f.v, f.w, f.h);
        flow = Some(f);
    }
    flow.expect("at least one level")
}

/// One Lucas-Kanade update of `f` at every pixel.
fn refine(prev: &Plane, next: &Plane, f: &mut Flow) {
    let (w, h) = (next.w, next.h);
    // `prev` warped onto `next` by the current flow.
    let mut warped = Plane::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            warped.data[i] = prev.sample_clamped(x as f32 - f.u[i], y as f32 - f.v[i]);
        }
    }
    let mut products: [Plane; 5] = std::array::from_fn(|_| Plane::new(w, h));
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let avg = |xx: usize, yy: usize| 0.5 * (warped.at(xx, yy) + next.at(xx, yy));
            let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
            let gx = (avg(xr, y) - avg(xl, y)) / (xr - xl).max(1) as f32;
            let gy = (avg(x, yd) - avg(x, yu)) / (yd - yu).max(1) as f32;
            let gt = next.data[i] - warped.data[i];
            products[0].data[i] = gx * gx;
            products[1].data[i] = gx * gy;
            products[2].data[i] = gy * gy;
            products[3].data[i] = gx * gt;
            products[4].data[i] = gy * gt;
        }
    }
    let [sxx, sxy, syy, sxt, syt] = products.map(|p| p.box_sum(WINDOW));
    let area = ((2 * WINDOW + 1) * (2 * WINDOW + 1)) as f32;
    for i in 0..w * h {
        let (a, b, c) = (sxx.data[i] / area, sxy.data[i] / area, syy.data[i] / area);
        // The smaller eigenvalue of [[a, b], [b, c]].
        let half_trace = 0.5 * (a + c);
        let root = (0.25 * (a - c) * (a - c) + b * b).sqrt();
        f.confidence[i] = (half_trace - root).max(0.0);
        // Along a straight edge only the motion across it is known (the aperture problem):
        // the estimate from the coarser level stands.
        if f.confidence[i] < ANISOTROPY * (half_trace + root) {
            continue;
        }
        let (a, c) = (a + REGULARISATION, c + REGULARISATION);
        let det = a * c - b * b;
        if det <= 0.0 {
            continue;
        }
        let (bx, by) = (sxt.data[i] / area, syt.data[i] / area);
        // G δ = -b: the update that makes the warped picture meet `next`.
        let du = -(c * bx - b * by) / det;
        let dv = -(a * by - b * bx) / det;
        f.u[i] += du.clamp(-MAX_STEP, MAX_STEP);
        f.v[i] += dv.clamp(-MAX_STEP, MAX_STEP);
    }
}

/// 3x3 median filter in place (borders use the pixels present).
fn median3(field: &mut [f32], w: usize, h: usize) {
    let src = field.to_vec();
    let mut window = [0.0f32; 9];
    for y in 0..h {
        for x in 0..w {
            let mut n = 0;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    window[n] = src[yy * w + xx];
                    n += 1;
                }
            }
            let (_, median, _) = window[..n].select_nth_unstable_by(n / 2, f32::total_cmp);
            field[y * w + x] = *median;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::tests::texture;

    fn plane_of(img: &image::RgbImage) -> Plane {
        crate::scores::plane::luma(img)
    }

    #[test]
    fn recovers_a_subpixel_and_a_large_shift() {
        let base = texture(200, 160, 3);
        for (dx, dy) in [(0.6f32, -0.3f32), (7.0, 4.0), (-11.0, 0.0)] {
            let moved = crate::scores::tests::shifted_texture(200, 160, 3, dx, dy);
            let f = estimate(&Pyramid::new(plane_of(&base)), &Pyramid::new(plane_of(&moved)));
            let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
            for y in 20..f.h - 20 {
                for x in 20..f.w - 20 {
                    su += f.u[y * f.w + x];
                    sv += f.v[y * f.w + x];
                    n += 1.0;
                }
            }
            let (u, v) = (su / n, sv / n);
            let tolerance = 0.05 + 0.02 * dx.hypot(dy);
            assert!((u - dx).abs() < tolerance && (v - dy).abs() < tolerance, "({dx}, {dy}) measured ({u}, {v})");
        }
    }
}
