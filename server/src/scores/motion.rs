//! Everything measured from the optical flow between frames: the amount of motion and its split
//! into camera and scene motion, smoothness, flicker and consistency.

use super::camera::{self, Similarity};
use super::flow::{self, Flow, Pyramid};
use super::plane::{Plane, channels, luma};
use app::scores::CameraMotion;
use image::RgbImage;

/// What the flow shows about a clip. Motion is in percent of the frame width per frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MotionMeasures {
    pub motion: f32,
    pub motion_p95: f32,
    pub camera_motion: f32,
    pub object_motion: f32,
    pub object_motion_p95: f32,
    pub camera: CameraMotion,
    pub smoothness: f32,
    pub flicker: f32,
    pub consistency: f32,
}

/// Measures a clip given at analysis resolution; `scale` is analysis pixels per clip pixel
/// (for the camera's pan in the clip's own pixels). At least two frames of one size.
pub fn measure(frames: &[RgbImage], scale: f32) -> MotionMeasures {
    let lumas: Vec<Plane> = frames.iter().map(luma).collect();
    let colours: Vec<[Plane; 3]> = frames.iter().map(channels).collect();
    let (w, h) = (lumas[0].w, lumas[0].h);
    let margin = (w.min(h) / 16).max(2);
    // Flow is estimated on softened luma (detail near the pixel size aliases and misleads it)
    // with each frame's mean taken out, so a frame that is brighter as a whole (flicker) does
    // not read as motion; flicker is measured on the colours.
    let pyramids: Vec<Pyramid> = lumas.iter().map(|l| Pyramid::new(zero_mean(&l.soften()))).collect();
    let percent = 100.0 / w as f32;

    let flows: Vec<Flow> = pyramids.windows(2).map(|p| flow::estimate(&p[0], &p[1])).collect();
    let mut motion = Weighted::default();
    let mut object = Weighted::default();
    let (mut camera_sum, mut flicker_sum) = (0.0f64, 0.0f64);
    let mut camera = CameraMotion::default();
    for (t, f) in flows.iter().enumerate() {
        let cam = camera::camera_of(f, margin);
        let mut camera_px = 0.0f64;
        let mut n = 0usize;
        // Every other pixel each way (neighbouring flow vectors are nearly the same).
        for y in (margin..h - margin).step_by(2) {
            for x in (margin..w - margin).step_by(2) {
                let i = y * w + x;
                let (gu, gv) = cam.at(x as f32, y as f32);
                let c = f.confidence[i];
                motion.push(f.u[i].hypot(f.v[i]), c);
                object.push((f.u[i] - gu).hypot(f.v[i] - gv), c);
                camera_px += gu.hypot(gv) as f64;
                n += 1;
            }
        }
        camera_sum += camera_px / n.max(1) as f64;
        flicker_sum += colour_jump(&colours[t], &colours[t + 1], f, margin) as f64;
        accumulate(&mut camera, &cam);
    }
    let pairs = flows.len() as f32;
    let camera = CameraMotion {
        pan_x: camera.pan_x / pairs / scale,
        pan_y: camera.pan_y / pairs / scale,
        zoom: 100.0 * camera.zoom / pairs,
        rotation: (camera.rotation / pairs).to_degrees(),
    };

    MotionMeasures {
        motion: percent * motion.mean(),
        motion_p95: percent * motion.quantile(0.95),
        camera_motion: percent * (camera_sum / pairs as f64) as f32,
        object_motion: percent * object.mean(),
        object_motion_p95: percent * object.quantile(0.95),
        camera,
        smoothness: smoothness(&flows, &lumas, margin),
        flicker: 100.0 * (flicker_sum / pairs as f64) as f32,
        consistency: consistency(&colours, &flows, margin),
    }
}

/// Sums the model's parameters into `acc` (pan in tx/ty, zoom in s, rotation in r).
fn accumulate(acc: &mut CameraMotion, m: &Similarity) {
    acc.pan_x += m.tx;
    acc.pan_y += m.ty;
    acc.zoom += m.s;
    acc.rotation += m.r;
}

/// Values with weights: their weighted mean and quantiles.
#[derive(Default)]
struct Weighted {
    items: Vec<(f32, f32)>,
}

impl Weighted {
    fn push(&mut self, value: f32, weight: f32) {
        if weight > 0.0 && value.is_finite() {
            self.items.push((value, weight));
        }
    }

    fn mean(&self) -> f32 {
        let total: f64 = self.items.iter().map(|i| i.1 as f64).sum();
        if total <= 0.0 {
            return 0.0;
        }
        (self.items.iter().map(|(v, w)| *v as f64 * *w as f64).sum::<f64>() / total) as f32
    }

    fn quantile(&self, q: f64) -> f32 {
        let mut sorted = self.items.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = sorted.iter().map(|i| i.1 as f64).sum();
        let mut seen = 0.0;
        for (v, w) in &sorted {
            seen += *w as f64;
            if seen >= q * total {
                return *v;
            }
        }
        0.0
    }
}

/// Mean over channels of |mean change of the channel| between two frames after motion
/// compensation, in [0, 1].
fn colour_jump(prev: &[Plane; 3], next: &[Plane; 3], f: &Flow, margin: usize) -> f32 {
    let (w, h) = (f.w, f.h);
    let mut sums = [0.0f64; 3];
    let mut n = 0usize;
    for y in margin..h - margin {
        for x in margin..w - margin {
            let i = y * w + x;
            let (sx, sy) = (x as f32 - f.u[i], y as f32 - f.v[i]);
            let samples: Option<Vec<f32>> = prev.iter().map(|p| p.sample(sx, sy)).collect();
            let Some(samples) = samples else { continue };
            for c in 0..3 {
                sums[c] += (next[c].data[i] - samples[c]) as f64;
            }
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    (sums.iter().map(|s| (s / n as f64).abs()).sum::<f64>() / 3.0) as f32
}

/// `p` less its mean.
fn zero_mean(p: &Plane) -> Plane {
    let mean = p.data.iter().map(|v| *v as f64).sum::<f64>() / p.data.len().max(1) as f64;
    Plane { w: p.w, h: p.h, data: p.data.iter().map(|v| v - mean as f32).collect() }
}

/// 1 - the mean absolute luma error of predicting each middle frame from its neighbours moved
/// halfway along the motion between them (the two flows through it, chained; bicubic, on
/// softened frames, so resampling a texture near the pixel size costs little and a jerk still
/// shows); 1 for clips under three frames.
fn smoothness(flows: &[Flow], lumas: &[Plane], margin: usize) -> f32 {
    if lumas.len() < 3 {
        return 1.0;
    }
    let soft: Vec<Plane> = lumas.iter().map(Plane::soften).collect();
    let mut total = 0.0f64;
    let mut counted = 0usize;
    for t in 1..lumas.len() - 1 {
        let (prev, mid, next) = (&soft[t - 1], &soft[t], &soft[t + 1]);
        let (into, out) = (&flows[t - 1], &flows[t]);
        let (mut err, mut n) = (0.0f64, 0usize);
        for y in margin..mid.h.saturating_sub(margin) {
            for x in margin..mid.w.saturating_sub(margin) {
                // The motion from t-1 to t+1 of what is at (x, y) at t+1, then halfway.
                let (x1, y1) = (x as f32, y as f32);
                let (u1, v1) = out.at(x1, y1);
                let (u0, v0) = into.at(x1 - u1, y1 - v1);
                let (u, v) = (0.5 * (u0 + u1), 0.5 * (v0 + v1));
                let (Some(a), Some(b)) = (prev.sample_cubic(x1 - u, y1 - v), next.sample_cubic(x1 + u, y1 + v)) else {
                    continue;
                };
                err += (0.5 * (a + b) - mid.at(x, y)).abs() as f64;
                n += 1;
            }
        }
        if n > 0 {
            total += err / n as f64;
            counted += 1;
        }
    }
    if counted == 0 { 1.0 } else { 1.0 - (total / counted as f64) as f32 }
}

/// 1 - the mean absolute colour error of each frame against the first, the first moved onto it
/// along the chained flows; pixels whose content came from outside the first frame are left out.
fn consistency(colours: &[[Plane; 3]], flows: &[Flow], margin: usize) -> f32 {
    let (w, h) = (colours[0][0].w, colours[0][0].h);
    // Where in the first frame each pixel of the current frame came from (NaN: not in it).
    let mut map_x = Plane { w, h, data: (0..w * h).map(|i| (i % w) as f32).collect() };
    let mut map_y = Plane { w, h, data: (0..w * h).map(|i| (i / w) as f32).collect() };
    let mut total = 0.0f64;
    let mut counted = 0usize;
    for (k, f) in flows.iter().enumerate() {
        let mut nx = Plane::new(w, h);
        let mut ny = Plane::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (sx, sy) = (x as f32 - f.u[i], y as f32 - f.v[i]);
                let (px, py) = match (map_x.sample(sx, sy), map_y.sample(sx, sy)) {
                    (Some(a), Some(b)) if a.is_finite() && b.is_finite() => (a, b),
                    _ => (f32::NAN, f32::NAN),
                };
                nx.data[i] = px;
                ny.data[i] = py;
            }
        }
        map_x = nx;
        map_y = ny;
        let frame = &colours[k + 1];
        let (mut err, mut n) = (0.0f64, 0usize);
        for y in margin..h - margin {
            for x in margin..w - margin {
                let i = y * w + x;
                let (px, py) = (map_x.data[i], map_y.data[i]);
                if !px.is_finite() {
                    continue;
                }
                let mut e = 0.0;
                for c in 0..3 {
                    let Some(first) = colours[0][c].sample(px, py) else { continue };
                    e += (frame[c].data[i] - first).abs();
                }
                err += (e / 3.0) as f64;
                n += 1;
            }
        }
        if n > 0 {
            total += err / n as f64;
            counted += 1;
        }
    }
    if counted == 0 { 1.0 } else { 1.0 - (total / counted as f64) as f32 }
}
