//! Exact training targets for the motion model, drawn from the toy world: for a scene, its
//! first frame (the image to animate) and, for every frame, where each pixel came from in the
//! first frame (a backward motion field), which pixels were hidden in the first frame, the true
//! colours there, and the weather layer over everything.
//!
//! The world knows its camera (pan offset, zoom) and its subject's pose (centre, radius,
//! rotation) at every moment, so the motion of every point is computed, not estimated.

use crate::builtin::vocab::Weather;
use crate::builtin::world::{
    Pose, RAIN_STREAK, RAIN_STREAKS, SNOW_FLAKES, SNOW_RADIUS, Scene, inside, rain_anchor, snow_flake, streak_hit,
};

/// Weather-layer pixels per world screen unit: the layer is drawn on a canvas where the toy
/// world's 1 x 1 screen is this many pixels wide.
pub const WEATHER_UNIT: usize = 64;

/// Everything the motion model is trained to produce for one scene, at `size` x `size`.
pub struct MotionTruth {
    /// The first frame without weather, planar `[3, size, size]` in [0, 1] (supersampled).
    pub image: Vec<f32>,
    /// Backward motion per frame, `[frames, 2, size, size]`: frame f at screen point p shows
    /// what the first frame shows at p + flow (screen units, x right, y down).
    pub flow: Vec<f32>,
    /// 1 where frame f shows what the first frame hid (behind the subject), `[frames, size, size]`.
    pub hidden: Vec<f32>,
    /// The true colours of every frame without weather, planar `[frames, 3, size, size]`.
    pub frames: Vec<f32>,
    /// 1 where frame f shows the subject, `[frames, size, size]`.
    pub subject: Vec<f32>,
}

/// The subject's pose per frame; `moving` false keeps it where the first frame has it (a
/// prompt that names no action leaves the subject still; the camera still moves).
fn poses(scene: &Scene, frames: usize, moving: bool) -> Vec<Pose> {
    (0..frames).map(|f| scene.pose_at(if moving { tau(f, frames) } else { 0.0 })).collect()
}

pub fn tau(f: usize, frames: usize) -> f32 {
    if frames > 1 { f as f32 / (frames - 1) as f32 } else { 0.0 }
}

/// Object-local coordinates (units of the radius, y up, unrotated) of world point (x, y).
fn to_local(pose: &Pose, x: f32, y: f32) -> (f32, f32) {
    let dx = (x - pose.x) / pose.r;
    let dy = -(y - pose.y) / pose.r;
    let (s, c) = (-pose.angle).sin_cos();
    (dx * c - dy * s, dx * s + dy * c)
}

fn from_local(pose: &Pose, lx: f32, ly: f32) -> (f32, f32) {
    let (s, c) = pose.angle.sin_cos();
    let dx = lx * c - ly * s;
    let dy = lx * s + ly * c;
    (pose.x + dx * pose.r, pose.y - dy * pose.r)
}

impl MotionTruth {
    /// The targets of `scene` at `size` x `size` for `frames` frames; `moving` as in [`poses`].
    pub fn of(scene: &Scene, frames: usize, size: usize, moving: bool) -> MotionTruth {
        let dry = Scene { weather: None, ..scene.clone() };
        let poses = poses(&dry, frames, moving);
        let plane = size * size;
        let image = render_frame(&dry, 0.0, &poses[0], size, 3);
        let mut flow = vec![0.0f32; frames * 2 * plane];
        let mut hidden = vec![0.0f32; frames * plane];
        let mut subject = vec![0.0f32; frames * plane];
        let mut colours = vec![0.0f32; frames * 3 * plane];
        let cam0 = dry.camera_at(0.0);
        for f in 0..frames {
            let t = tau(f, frames);
            let (ox, zoom) = dry.camera_at(t);
            let pose = &poses[f];
            for py in 0..size {
                for px in 0..size {
                    let u = (px as f32 + 0.5) / size as f32;
                    let v = (py as f32 + 0.5) / size as f32;
                    let x = 0.5 + (u - 0.5) / zoom + ox;
                    let y = 0.5 + (v - 0.5) / zoom;
                    let on_subject = dry.subject.is_some_and(|s| {
                        let (lx, ly) = to_local(pose, x, y);
                        inside(s, lx, ly)
                    });
                    // The world point this pixel shows, where it was at the start.
                    let (x0, y0) = if on_subject {
                        let (lx, ly) = to_local(pose, x, y);
                        from_local(&poses[0], lx, ly)
                    } else {
                        (x, y)
                    };
                    let u0 = 0.5 + (x0 - cam0.0 - 0.5) * cam0.1;
                    let v0 = 0.5 + (y0 - 0.5) * cam0.1;
                    let i = py * size + px;
                    flow[(f * 2) * plane + i] = u0 - u;
                    flow[(f * 2 + 1) * plane + i] = v0 - v;
                    // Backdrop that the subject covered in the first frame.
                    let was_covered = !on_subject
                        && dry.subject.is_some_and(|s| {
                            let (lx, ly) = to_local(&poses[0], x0, y0);
                            inside(s, lx, ly)
                        });
                    hidden[f * plane + i] = was_covered as u8 as f32;
                    subject[f * plane + i] = on_subject as u8 as f32;
                    let (c, _) = dry.sample_color(u, v, t, (ox, zoom), pose);
                    for k in 0..3 {
                        colours[(f * 3 + k) * plane + i] = c[k].clamp(0.0, 1.0);
                    }
                }
            }
        }
        MotionTruth { image, flow, hidden, frames: colours, subject }
    }
}

/// One frame of `scene` (no weather) at clip time `t` with the subject at `pose`, supersampled
/// `ss` x `ss`, planar `[3, size, size]`.
pub(crate) fn render_frame(scene: &Scene, t: f32, pose: &Pose, size: usize, ss: usize) -> Vec<f32> {
    render_frame_wh(scene, t, pose, size, size, ss)
}

/// Like [`render_frame`] at `width` x `height` (the world's screen stretched to it).
pub(crate) fn render_frame_wh(scene: &Scene, t: f32, pose: &Pose, width: usize, height: usize, ss: usize) -> Vec<f32> {
    let plane = width * height;
    let mut out = vec![0.0f32; 3 * plane];
    let cam = scene.camera_at(t);
    for py in 0..height {
        for px in 0..width {
            let mut acc = [0.0f32; 3];
            for sy in 0..ss {
                for sx in 0..ss {
                    let u = (px as f32 + (sx as f32 + 0.5) / ss as f32) / width as f32;
                    let v = (py as f32 + (sy as f32 + 0.5) / ss as f32) / height as f32;
                    let (c, _) = scene.sample_color(u, v, t, cam, pose);
                    for k in 0..3 {
                        acc[k] += c[k];
                    }
                }
            }
            for k in 0..3 {
                out[k * plane + py * width + px] = (acc[k] / (ss * ss) as f32).clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// How many particles of `weather` a canvas of `width` x `height` weather pixels holds (the
/// toy world's density), and its extent in world screen units.
pub fn particle_count(weather: Weather, width: usize, height: usize) -> (u64, (f32, f32)) {
    let (ex, ey) = (width as f32 / WEATHER_UNIT as f32, height as f32 / WEATHER_UNIT as f32);
    let per_unit = match weather {
        Weather::Rain => RAIN_STREAKS,
        Weather::Snow => SNOW_FLAKES,
    };
    ((per_unit as f32 * ex * ey).round() as u64, (ex, ey))
}

/// The weather layer's input at clip time `t`: `[2, height, width]`, a unit impulse (split
/// bilinearly between the four nearest pixels) where each rain streak starts (channel 0) or
/// each snowflake is (channel 1). Particles come from `seed` and move as the toy world's do.
pub fn particle_map(weather: Option<Weather>, seed: u64, t: f32, width: usize, height: usize) -> Vec<f32> {
    let plane = width * height;
    let mut out = vec![0.0f32; 2 * plane];
    let Some(weather) = weather else { return out };
    let (n, extent) = particle_count(weather, width, height);
    let unit = WEATHER_UNIT as f32;
    for k in 0..n {
        let ((x, y), channel) = match weather {
            Weather::Rain => (rain_anchor(seed, k, t, extent), 0),
            Weather::Snow => (snow_flake(seed, k, t, extent), 1),
        };
        let (fx, fy) = (x * unit - 0.5, y * unit - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - x0, fy - y0);
        for (dx, dy, w) in
            [(0, 0, (1.0 - ax) * (1.0 - ay)), (1, 0, ax * (1.0 - ay)), (0, 1, (1.0 - ax) * ay), (1, 1, ax * ay)]
        {
            let (xi, yi) = (x0 as i64 + dx, y0 as i64 + dy);
            if (0..width as i64).contains(&xi) && (0..height as i64).contains(&yi) {
                out[channel * plane + yi as usize * width + xi as usize] += w;
            }
        }
    }
    out
}

/// The toy world's weather at clip time `t` on a `size` x `size` canvas (one world screen
/// unit = `size` pixels must equal [`WEATHER_UNIT`] for it to match [`particle_map`]): `[4,
/// size, size]`, opacity then colour, supersampled 2 x 2.
pub fn weather_layer(weather: Option<Weather>, seed: u64, t: f32, size: usize) -> Vec<f32> {
    let plane = size * size;
    let mut out = vec![0.0f32; 4 * plane];
    let Some(weather) = weather else { return out };
    let (colour, opacity) = match weather {
        Weather::Rain => ([0.78, 0.84, 0.98], 0.75),
        Weather::Snow => ([1.0, 1.0, 1.0], 0.95),
    };
    for py in 0..size {
        for px in 0..size {
            let mut hits = 0;
            for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let u = (px as f32 + sx) / size as f32;
                let v = (py as f32 + sy) / size as f32;
                let hit = match weather {
                    Weather::Rain => (0..RAIN_STREAKS).any(|k| {
                        let (rx, ry) = rain_anchor(seed, k, t, (1.0, 1.0));
                        streak_hit(u, v, rx, ry, RAIN_STREAK.0, RAIN_STREAK.1, RAIN_STREAK.2)
                    }),
                    Weather::Snow => (0..SNOW_FLAKES).any(|k| {
                        let (sx, sy) = snow_flake(seed, k, t, (1.0, 1.0));
                        (u - sx).powi(2) + (v - sy).powi(2) < SNOW_RADIUS * SNOW_RADIUS
                    }),
                };
                hits += hit as usize;
            }
            let i = py * size + px;
            out[i] = opacity * hits as f32 / 4.0;
            for k in 0..3 {
                out[(1 + k) * plane + i] = colour[k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::prompt::Prompt;
    use crate::builtin::vocab::{Action, Camera};
    use crate::rng::Rng;

    fn scene(camera: Camera, action: Action) -> Scene {
        let wish = Prompt { camera: Some(camera), action: Some(action), ..Prompt::default() };
        let mut s = Scene::sample(&mut Rng::new(3), &wish, 0.0);
        s.weather = None;
        s
    }

    /// Warping the first frame by the true motion gives the true frame wherever nothing was
    /// hidden and the source lies inside the first frame.
    #[test]
    fn warping_by_the_truth_reproduces_the_frames() {
        for (camera, action) in [
            (Camera::PanLeft, Action::MovingRight),
            (Camera::ZoomIn, Action::Spinning),
            (Camera::Static, Action::Growing),
        ] {
            let s = scene(camera, action);
            let (frames, size) = (4, 64);
            let t = MotionTruth::of(&s, frames, size, true);
            let plane = size * size;
            let first = render_frame(&s, 0.0, &s.pose_at(0.0), size, 1);
            let f = frames - 1;
            let (mut err, mut n) = (0.0, 0);
            for py in 2..size - 2 {
                for px in 2..size - 2 {
                    let i = py * size + px;
                    if t.hidden[f * plane + i] > 0.0 {
                        continue;
                    }
                    let sx = (px as f32 + 0.5 + t.flow[(f * 2) * plane + i] * size as f32).round();
                    let sy = (py as f32 + 0.5 + t.flow[(f * 2 + 1) * plane + i] * size as f32).round();
                    if sx < 1.0 || sy < 1.0 || sx >= size as f32 - 1.0 || sy >= size as f32 - 1.0 {
                        continue;
                    }
                    let j = sy as usize * size + sx as usize;
                    let j = j.min(plane - 1);
                    err +=
                        (0..3).map(|k| (first[k * plane + j] - t.frames[(f * 3 + k) * plane + i]).abs()).sum::<f32>();
                    n += 1;
                }
            }
            assert!(n > plane / 3, "{camera:?}: too few pixels compared ({n})");
            let mean = err / n as f32 / 3.0;
            assert!(mean < 0.06, "{camera:?} {action:?}: mean error {mean}");
        }
    }

    #[test]
    fn a_pan_left_moves_everything_right() {
        let s = scene(Camera::PanLeft, Action::Spinning);
        let t = MotionTruth::of(&s, 3, 16, false);
        let plane = 256;
        // Content moves right: frame 2 at p shows the first frame at p - something.
        let mean_dx: f32 = t.flow[2 * 2 * plane..(2 * 2 + 1) * plane].iter().sum::<f32>() / plane as f32;
        assert!(mean_dx < -0.2, "{mean_dx}");
        assert!(t.flow[..2 * plane].iter().all(|v| v.abs() < 1e-5), "the first frame does not move");
    }

    #[test]
    fn particles_match_the_world_weather() {
        let map = particle_map(Some(Weather::Snow), 9, 0.3, WEATHER_UNIT, WEATHER_UNIT);
        let total: f32 = map.iter().sum();
        // Flakes near the edge lose part of their impulse.
        assert!(total > SNOW_FLAKES as f32 * 0.7 && total <= SNOW_FLAKES as f32 + 1e-3, "{total}");
        let layer = weather_layer(Some(Weather::Snow), 9, 0.3, WEATHER_UNIT);
        // Every flake's impulse sits on visible snow.
        let plane = WEATHER_UNIT * WEATHER_UNIT;
        for i in 0..plane {
            if map[plane + i] > 0.5 {
                assert!(layer[i] > 0.0, "pixel {i}");
            }
        }
        assert_eq!(particle_count(Weather::Rain, 128, 64).0, 2 * RAIN_STREAKS);
    }
}
