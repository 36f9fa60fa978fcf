//! The camera's part of a flow field: a similarity motion (pan, zoom, rotation about the
//! centre) fitted to the flow by iteratively reweighted least squares, so that things moving
//! in the scene do not pull the fit.

use super::flow::Flow;

/// `u = s·x - r·y + tx`, `v = r·x + s·y + ty` in coordinates centred on the picture: `s` is the
/// relative scale change (zoom), `r` the rotation in radians, (tx, ty) the pan, in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Similarity {
    pub s: f32,
    pub r: f32,
    pub tx: f32,
    pub ty: f32,
    pub cx: f32,
    pub cy: f32,
}

impl Similarity {
    /// The motion this model gives the pixel at (x, y).
    #[inline]
    pub fn at(&self, x: f32, y: f32) -> (f32, f32) {
        let (xc, yc) = (x - self.cx, y - self.cy);
        (self.s * xc - self.r * yc + self.tx, self.r * xc + self.s * yc + self.ty)
    }
}

/// A pixel's flow is well determined above this confidence (the structure tensor's smaller
/// eigenvalue per window pixel; gradients in brightness units per pixel): texture, not a flat
/// area or 8-bit noise.
pub const CONFIDENT: f32 = 1.5e-5;
/// The picture is cut into this many cells a side to judge how widely a fit is supported.
const CELLS: usize = 4;

/// Reweighting rounds after the first fit.
const ROUNDS: usize = 4;
/// Smallest residual scale, pixels: below this, differences are estimation noise.
const MIN_SCALE: f32 = 0.15;

/// The camera motion fitted to `flow`, or no motion when the fit is not supported across the
/// picture: on a featureless backdrop the only confident flow is a moving subject's, and a
/// camera that follows it cannot be told from a subject that moves, so it counts as the
/// subject's motion. Supported means: in at least half of a 4x4 grid of cells, a fifth of the
/// pixels are confident and agree with the fit.
pub fn camera_of(flow: &Flow, margin: usize) -> Similarity {
    let model = fit(flow, &flow.confidence, margin);
    if support(flow, &model, margin) >= 0.5 {
        model
    } else {
        Similarity { cx: model.cx, cy: model.cy, ..Similarity::default() }
    }
}

/// The share of grid cells in which at least a fifth of the pixels are confident and within
/// half a pixel (or a tenth of the motion) of the model.
pub fn support(flow: &Flow, model: &Similarity, margin: usize) -> f32 {
    let (w, h) = (flow.w.saturating_sub(2 * margin), flow.h.saturating_sub(2 * margin));
    if w < CELLS || h < CELLS {
        return 0.0;
    }
    let mut agree = [[0usize; CELLS]; CELLS];
    let mut total = [[0usize; CELLS]; CELLS];
    for y in margin..margin + h {
        for x in margin..margin + w {
            let (cx, cy) = (((x - margin) * CELLS / w).min(CELLS - 1), ((y - margin) * CELLS / h).min(CELLS - 1));
            total[cy][cx] += 1;
            let i = y * flow.w + x;
            let (gu, gv) = model.at(x as f32, y as f32);
            let tolerance = 0.5f32.max(0.1 * gu.hypot(gv));
            if flow.confidence[i] > CONFIDENT && residual(flow, model, i) < tolerance {
                agree[cy][cx] += 1;
            }
        }
    }
    let cells = (0..CELLS * CELLS).filter(|k| {
        let (cy, cx) = (k / CELLS, k % CELLS);
        total[cy][cx] > 0 && agree[cy][cx] * 5 >= total[cy][cx]
    });
    cells.count() as f32 / (CELLS * CELLS) as f32
}

/// Fits the camera motion to `flow` over the pixels inside `margin` of the border, each
/// weighted by `weights` (how well its flow is determined).
pub fn fit(flow: &Flow, weights: &[f32], margin: usize) -> Similarity {
    let (cx, cy) = ((flow.w as f32 - 1.0) / 2.0, (flow.h as f32 - 1.0) / 2.0);
    // Every other pixel each way: neighbouring flow vectors carry nearly the same evidence.
    let inner: Vec<usize> = (margin..flow.h.saturating_sub(margin))
        .step_by(2)
        .flat_map(|y| (margin..flow.w.saturating_sub(margin)).step_by(2).map(move |x| (x, y)))
        .map(|(x, y)| y * flow.w + x)
        .collect();
    let mut model = Similarity { cx, cy, ..Similarity::default() };
    let mut robust = vec![1.0f32; inner.len()];
    for round in 0..=ROUNDS {
        if round > 0 {
            let residuals: Vec<f32> = inner.iter().map(|&i| residual(flow, &model, i)).collect();
            let mut sorted = residuals.clone();
            sorted.sort_by(f32::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
            let scale = (1.4826 * median).max(MIN_SCALE);
            for (r, res) in robust.iter_mut().zip(&residuals) {
                // Cauchy weights: far-off vectors (moving things) count little.
                let q = res / (2.385 * scale);
                *r = 1.0 / (1.0 + q * q);
            }
        }
        // Normal equations of the 4 parameters (s, r, tx, ty).
        let mut a = [[0.0f64; 4]; 4];
        let mut b = [0.0f64; 4];
        for (k, &i) in inner.iter().enumerate() {
            let wgt = (weights[i] * robust[k]) as f64;
            if wgt <= 0.0 {
                continue;
            }
            let (x, y) = ((i % flow.w) as f32 - cx, (i / flow.w) as f32 - cy);
            let rows = [([x, -y, 1.0, 0.0], flow.u[i]), ([y, x, 0.0, 1.0], flow.v[i])];
            for (row, target) in rows {
                for p in 0..4 {
                    b[p] += wgt * row[p] as f64 * target as f64;
                    for q in 0..4 {
                        a[p][q] += wgt * row[p] as f64 * row[q] as f64;
                    }
                }
            }
        }
        match solve4(a, b) {
            Some([s, r, tx, ty]) => {
                model = Similarity { s: s as f32, r: r as f32, tx: tx as f32, ty: ty as f32, cx, cy }
            }
            None => return Similarity { cx, cy, ..Similarity::default() },
        }
    }
    model
}

fn residual(flow: &Flow, model: &Similarity, i: usize) -> f32 {
    let (gu, gv) = model.at((i % flow.w) as f32, (i / flow.w) as f32);
    ((flow.u[i] - gu).powi(2) + (flow.v[i] - gv).powi(2)).sqrt()
}

/// Solves a 4x4 system by Gaussian elimination with partial pivoting; `None` when singular.
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    let scale = a.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return None;
    }
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..4 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0f64; 4];
    for row in (0..4).rev() {
        let s: f64 = (row + 1..4).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_zoom_and_pan_despite_a_moving_patch() {
        let (w, h) = (64, 48);
        let truth = Similarity { s: 0.02, r: -0.01, tx: 1.5, ty: -0.5, cx: 31.5, cy: 23.5 };
        let mut flow = Flow { w, h, u: vec![0.0; w * h], v: vec![0.0; w * h], confidence: vec![1.0; w * h] };
        for y in 0..h {
            for x in 0..w {
                let (u, v) = truth.at(x as f32, y as f32);
                // A patch moving its own way.
                let moving = (10..20).contains(&x) && (10..20).contains(&y);
                flow.u[y * w + x] = if moving { u + 6.0 } else { u };
                flow.v[y * w + x] = v;
            }
        }
        let got = camera_of(&flow, 2);
        assert!((got.s - truth.s).abs() < 1e-3 && (got.r - truth.r).abs() < 1e-3, "{got:?}");
        assert!((got.tx - truth.tx).abs() < 0.02 && (got.ty - truth.ty).abs() < 0.02, "{got:?}");
        assert_eq!(support(&flow, &got, 2), 1.0);

        // Only a patch is textured (a subject on a featureless backdrop): no camera motion.
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let patch = (10..20).contains(&x) && (10..20).contains(&y);
                flow.confidence[i] = if patch { 1.0 } else { 0.0 };
                (flow.u[i], flow.v[i]) = if patch { (3.0, 0.0) } else { (0.0, 0.0) };
            }
        }
        assert!((fit(&flow, &flow.confidence.clone(), 2).tx - 3.0).abs() < 1e-3, "the plain fit follows the patch");
        assert_eq!(camera_of(&flow, 2), Similarity { cx: 31.5, cy: 23.5, ..Similarity::default() });
    }
}
