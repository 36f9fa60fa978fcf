//! The toy world: procedural, deterministic scenes that the built-in model is trained on.
//!
//! A scene is a backdrop (a setting, or for image-to-video a procedural texture), at most one
//! coloured subject doing one action, optional weather, and a camera move. Rendering is
//! anti-aliased by supersampling; frames come out planar `[frames, 3, size, size]` in [0, 1].

use crate::builtin::prompt::Prompt;
use crate::builtin::vocab::*;
use crate::rng::{Rng, hash2};
use serde::{Deserialize, Serialize};
use std::f32::consts::{PI, TAU};

/// What fills the frame behind the subject.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Backdrop {
    Setting(Setting),
    /// A procedural texture standing in for an uploaded photo (image-to-video training).
    Texture {
        kind: u8,
        seed: u64,
    },
}

/// One fully specified clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// `None`: no subject, only backdrop, weather and camera.
    pub subject: Option<Subject>,
    pub color: Color,
    pub action: Action,
    pub backdrop: Backdrop,
    pub weather: Option<Weather>,
    pub camera: Camera,
    /// Speed multiplier of every motion (subject and camera), around 1.
    pub motion: f32,
    /// Subject start position in world units (the first frame spans [0, 1]^2, y down).
    pub x0: f32,
    pub y0: f32,
    /// Subject radius in world units.
    pub size: f32,
    pub angle0: f32,
    pub spin_dir: f32,
    pub bounce_phase: f32,
    pub tint: [f32; 3],
    pub seed: u64,
    /// Where rain and snow fall, when not from `seed` (the editor adds weather in one known
    /// pattern, which it can learn; `seed`'s pattern cannot be seen in a dry picture).
    #[serde(default)]
    pub weather_seed: Option<u64>,
}

/// Number of (subject, color, action, setting) combinations out of 10 kept out of training,
/// so evaluation can use prompts the model never saw.
pub fn is_held_out(subject: Subject, color: Color, action: Action, setting: Setting) -> bool {
    let key = ((subject.index() * 7 + color.index()) * 8 + action.index()) * 6 + setting.index();
    crate::rng::mix(key as u64 ^ 0x5eed).is_multiple_of(10)
}

impl Scene {
    /// Samples a scene, honouring whatever `wish` specifies. `texture_prob` is the chance of a
    /// texture backdrop when `wish` names no setting.
    pub fn sample(rng: &mut Rng, wish: &Prompt, texture_prob: f32) -> Scene {
        Self::sample_with_motion(rng, wish, texture_prob, None)
    }

    /// Like [`Scene::sample`], with the motion strength fixed when `motion` is given (a
    /// request's), instead of drawn.
    pub fn sample_with_motion(rng: &mut Rng, wish: &Prompt, texture_prob: f32, motion: Option<f32>) -> Scene {
        let mut subject = wish.subject.unwrap_or(*rng.pick(Subject::ALL));
        let mut color = wish.color.unwrap_or(*rng.pick(Color::ALL));
        let mut action = wish.action.unwrap_or(*rng.pick(Action::ALL));
        let mut setting = wish.setting.unwrap_or(*rng.pick(Setting::ALL));
        // Training never sees held-out combinations unless they are asked for explicitly.
        let fully_asked =
            wish.subject.is_some() && wish.color.is_some() && wish.action.is_some() && wish.setting.is_some();
        while !fully_asked && is_held_out(subject, color, action, setting) {
            subject = wish.subject.unwrap_or(*rng.pick(Subject::ALL));
            color = wish.color.unwrap_or(*rng.pick(Color::ALL));
            action = wish.action.unwrap_or(*rng.pick(Action::ALL));
            setting = wish.setting.unwrap_or(*rng.pick(Setting::ALL));
        }
        let backdrop = if wish.setting.is_none() && rng.chance(texture_prob) {
            Backdrop::Texture { kind: rng.below(TEXTURE_KINDS) as u8, seed: rng.next_u64() }
        } else {
            Backdrop::Setting(setting)
        };
        let textured = matches!(backdrop, Backdrop::Texture { .. });
        let subject = if textured && wish.subject.is_none() && rng.chance(0.6) { None } else { Some(subject) };
        let weather = match wish.weather {
            Some(w) => Some(w),
            None => match rng.below(4) {
                0 => Some(Weather::Rain),
                1 => Some(Weather::Snow),
                _ => None,
            },
        };
        let camera =
            wish.camera.unwrap_or_else(|| if rng.chance(0.45) { Camera::Static } else { *rng.pick(&Camera::ALL[1..]) });
        let drawn = rng.range(0.5, 1.5);
        let motion = motion.unwrap_or(drawn);
        let size = rng.range(0.11, 0.16);
        let travel = 0.5 * motion;
        let (x0, y0) = match action {
            Action::MovingLeft => (0.5 + travel / 2.0 + rng.range(-0.08, 0.08), rng.range(0.35, 0.68)),
            Action::MovingRight => (0.5 - travel / 2.0 + rng.range(-0.08, 0.08), rng.range(0.35, 0.68)),
            Action::MovingUp => (rng.range(0.3, 0.7), 0.5 + travel / 2.0 + rng.range(-0.05, 0.05)),
            Action::MovingDown => (rng.range(0.3, 0.7), 0.5 - travel / 2.0 + rng.range(-0.05, 0.05)),
            Action::Bouncing => (rng.range(0.3, 0.7), 0.76),
            _ => (rng.range(0.35, 0.65), rng.range(0.4, 0.62)),
        };
        Scene {
            subject,
            color,
            action,
            backdrop,
            weather,
            camera,
            motion,
            x0,
            y0,
            size,
            angle0: rng.range(0.0, TAU),
            spin_dir: if rng.chance(0.5) { 1.0 } else { -1.0 },
            bounce_phase: rng.range(0.0, 0.3),
            tint: [rng.range(-0.05, 0.05), rng.range(-0.05, 0.05), rng.range(-0.05, 0.05)],
            seed: rng.next_u64(),
            weather_seed: None,
        }
    }

    /// Everything about this scene that a prompt can say.
    pub fn prompt(&self) -> Prompt {
        Prompt {
            subject: self.subject,
            color: self.subject.map(|_| self.color),
            action: self.subject.map(|_| self.action),
            setting: match self.backdrop {
                Backdrop::Setting(s) => Some(s),
                Backdrop::Texture { .. } => None,
            },
            weather: self.weather,
            camera: Some(self.camera),
            ignored: Vec::new(),
        }
    }

    /// A natural-language caption of the scene.
    pub fn caption(&self, rng: &mut Rng) -> String {
        let mut s = String::new();
        if let Some(subject) = self.subject {
            let action = match self.action {
                Action::MovingLeft => *rng.pick(&["moving left", "moving to the left", "going left"]),
                Action::MovingRight => *rng.pick(&["moving right", "moving to the right", "going right"]),
                Action::MovingUp => *rng.pick(&["moving up", "rising", "floating up"]),
                Action::MovingDown => *rng.pick(&["moving down", "falling", "sinking"]),
                a => a.phrase(),
            };
            let color = self.color.phrase();
            let article = if color.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            s.push_str(&format!("{article} {color} {} {action}", subject.phrase()));
        }
        if let Backdrop::Setting(setting) = self.backdrop {
            let place = match setting {
                Setting::NightSky => *rng.pick(&["in the night sky", "against a starry night sky"]),
                Setting::GrassField => *rng.pick(&["on a grass field", "in a grassy field", "over a meadow"]),
                Setting::Ocean => *rng.pick(&["over the ocean", "above the sea"]),
                Setting::Desert => *rng.pick(&["in the desert", "over desert dunes"]),
                Setting::Snowfield => *rng.pick(&["on a snowfield", "on a snowy field"]),
                Setting::Plain => *rng.pick(&["on a plain background", "on a blank background"]),
            };
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(place);
        }
        if let Some(w) = self.weather {
            let phrase = match w {
                Weather::Rain => *rng.pick(&["while it rains", "in the rain", "while it is raining"]),
                Weather::Snow => *rng.pick(&["while it snows", "while it is snowing", "with snowfall"]),
            };
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(phrase);
        }
        let camera = match self.camera {
            Camera::Static => *rng.pick(&["", "static camera"]),
            Camera::PanLeft => *rng.pick(&["camera pans left", "the camera pans left", "panning left"]),
            Camera::PanRight => *rng.pick(&["camera pans right", "the camera pans right", "panning right"]),
            Camera::ZoomIn => *rng.pick(&["camera zooms in", "zooming in"]),
            Camera::ZoomOut => *rng.pick(&["camera zooms out", "zooming out"]),
        };
        if !camera.is_empty() {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(camera);
        }
        s
    }

    /// Where the subject is in each frame, as the network's layout input: a soft disc of the
    /// subject's on-screen centre and radius (camera pans and zooms included), `[frames, size,
    /// size]` in [0, 1]; all zeros without a subject. It says where and how big, not what: the
    /// shape, its colour, its spin and everything around it are left to the network.
    pub fn layout(&self, frames: usize, size: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; frames * size * size];
        if self.subject.is_none() {
            return out;
        }
        for f in 0..frames {
            let tau = if frames > 1 { f as f32 / (frames - 1) as f32 } else { 0.0 };
            let (ox, zoom) = self.camera_at(tau);
            let pose = self.pose_at(tau);
            // World to screen: the inverse of `sample_color`'s mapping, in pixels.
            let cx = (0.5 + (pose.x - ox - 0.5) * zoom) * size as f32;
            let cy = (0.5 + (pose.y - 0.5) * zoom) * size as f32;
            let r = pose.r * zoom * size as f32;
            for py in 0..size {
                for px in 0..size {
                    let d = ((px as f32 + 0.5 - cx).powi(2) + (py as f32 + 0.5 - cy).powi(2)).sqrt();
                    out[(f * size + py) * size + px] = (r - d + 0.5).clamp(0.0, 1.0);
                }
            }
        }
        out
    }

    /// Renders `frames` frames of `size` x `size`, planar `[frames, 3, size, size]` in [0, 1].
    pub fn render(&self, frames: usize, size: usize) -> Vec<f32> {
        self.render_with_coverage(frames, size).0
    }

    /// Renders like [`Scene::render`] and also returns, per frame and pixel (`[frames, size,
    /// size]`), the fraction of the pixel the subject covers: training weights the subject's
    /// pixels by it, since a small object is a small part of the plain pixel loss.
    pub fn render_with_coverage(&self, frames: usize, size: usize) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0.0f32; frames * 3 * size * size];
        let plane = size * size;
        let mut coverage = vec![0.0f32; frames * plane];
        const SS: usize = 3;
        for f in 0..frames {
            let tau = if frames > 1 { f as f32 / (frames - 1) as f32 } else { 0.0 };
            let cam = self.camera_at(tau);
            let pose = self.pose_at(tau);
            let base = f * 3 * plane;
            for py in 0..size {
                for px in 0..size {
                    let mut acc = [0.0f32; 3];
                    let mut hits = 0;
                    for sy in 0..SS {
                        for sx in 0..SS {
                            let u = (px as f32 + (sx as f32 + 0.5) / SS as f32) / size as f32;
                            let v = (py as f32 + (sy as f32 + 0.5) / SS as f32) / size as f32;
                            let (c, hit) = self.sample_color(u, v, tau, cam, &pose);
                            hits += hit as usize;
                            for k in 0..3 {
                                acc[k] += c[k];
                            }
                        }
                    }
                    for k in 0..3 {
                        out[base + k * plane + py * size + px] = (acc[k] / (SS * SS) as f32).clamp(0.0, 1.0);
                    }
                    coverage[f * plane + py * size + px] = hits as f32 / (SS * SS) as f32;
                }
            }
        }
        (out, coverage)
    }

    /// Camera at clip time `tau`: (horizontal offset, zoom).
    pub(crate) fn camera_at(&self, tau: f32) -> (f32, f32) {
        let m = self.motion;
        match self.camera {
            Camera::Static => (0.0, 1.0),
            // The camera turns left: the world slides right across the frame.
            Camera::PanLeft => (-0.45 * m * tau, 1.0),
            Camera::PanRight => (0.45 * m * tau, 1.0),
            Camera::ZoomIn => (0.0, 1.0 + 0.7 * m * tau),
            Camera::ZoomOut => (0.0, 1.0 + 0.7 * m * (1.0 - tau)),
        }
    }

    pub(crate) fn pose_at(&self, tau: f32) -> Pose {
        let m = self.motion;
        let travel = 0.5 * m;
        let mut p = Pose { x: self.x0, y: self.y0, r: self.size, angle: self.angle0 };
        match self.action {
            Action::MovingLeft => p.x -= travel * tau,
            Action::MovingRight => p.x += travel * tau,
            Action::MovingUp => p.y -= travel * tau,
            Action::MovingDown => p.y += travel * tau,
            Action::Bouncing => {
                let h = 0.42 * m.min(1.25);
                p.y = self.y0 - h * (PI * 2.0 * tau + self.bounce_phase).sin().abs();
            }
            Action::Spinning => p.angle += self.spin_dir * PI * 1.2 * m * tau,
            Action::Growing => p.r = self.size * (0.6 + 0.9 * m * tau),
            Action::Shrinking => p.r = self.size * (0.6 + 0.9 * m * (1.0 - tau)),
        }
        p
    }

    /// The colour at frame point (u, v), and whether the subject is there.
    pub(crate) fn sample_color(
        &self,
        u: f32,
        v: f32,
        tau: f32,
        (ox, zoom): (f32, f32),
        pose: &Pose,
    ) -> ([f32; 3], bool) {
        let x = 0.5 + (u - 0.5) / zoom + ox;
        let y = 0.5 + (v - 0.5) / zoom;
        let mut hit = false;
        let mut c = match self.backdrop {
            Backdrop::Setting(s) => setting_color(s, x, y, self.seed),
            Backdrop::Texture { kind, seed } => texture_color(kind, seed, x, y),
        };
        if let Some(subject) = self.subject {
            // Object-local coordinates, in units of the radius, y up.
            let dx = (x - pose.x) / pose.r;
            let dy = -(y - pose.y) / pose.r;
            if dx * dx + dy * dy < 2.0 {
                let (s, co) = (-pose.angle).sin_cos();
                let lx = dx * co - dy * s;
                let ly = dx * s + dy * co;
                if inside(subject, lx, ly) {
                    hit = true;
                    let fill = self.color.rgb();
                    let fill = [
                        (fill[0] + self.tint[0]).clamp(0.0, 1.0),
                        (fill[1] + self.tint[1]).clamp(0.0, 1.0),
                        (fill[2] + self.tint[2]).clamp(0.0, 1.0),
                    ];
                    let rim = !inside(subject, lx / 0.8, ly / 0.8);
                    let band = subject == Subject::Ball && lx.abs() < 0.22;
                    c = if rim {
                        fill.map(|v| v * 0.55)
                    } else if band {
                        fill.map(|v| v * 0.55 + 0.45)
                    } else {
                        fill
                    };
                }
            }
        }
        match self.weather {
            Some(Weather::Rain) => {
                for k in 0..RAIN_STREAKS {
                    let (rx, ry) = rain_anchor(self.weather_seed.unwrap_or(self.seed), k, tau, (1.0, 1.0));
                    // A streak from (rx, ry) going down-left.
                    if streak_hit(u, v, rx, ry, RAIN_STREAK.0, RAIN_STREAK.1, RAIN_STREAK.2) {
                        c = mix(c, [0.78, 0.84, 0.98], 0.75);
                    }
                }
            }
            Some(Weather::Snow) => {
                for k in 0..SNOW_FLAKES {
                    let (sx, sy) = snow_flake(self.weather_seed.unwrap_or(self.seed), k, tau, (1.0, 1.0));
                    let (ddx, ddy) = (u - sx, v - sy);
                    if ddx * ddx + ddy * ddy < SNOW_RADIUS * SNOW_RADIUS {
                        c = mix(c, [1.0, 1.0, 1.0], 0.95);
                    }
                }
            }
            None => {}
        }
        (c, hit)
    }
}

/// The subject's placement at one moment, in world units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pose {
    pub x: f32,
    pub y: f32,
    pub r: f32,
    pub angle: f32,
}

/// Whether the point (x, y) (units of the radius, y up) is inside the subject's shape.
pub(crate) fn inside(subject: Subject, x: f32, y: f32) -> bool {
    match subject {
        Subject::Ball => x * x + y * y <= 1.0,
        Subject::Square => x.abs().max(y.abs()) <= 0.85,
        Subject::Triangle => {
            // Equilateral, pointing up (in the unrotated pose), circumradius 1.15.
            let apothem = 1.15 * 0.5;
            [PI * 1.5, PI / 6.0, PI * 5.0 / 6.0].iter().all(|a| x * a.cos() + y * a.sin() <= apothem)
        }
        Subject::Star => {
            let r = (x * x + y * y).sqrt();
            let a = y.atan2(x) - PI / 2.0;
            let sector = TAU / 5.0;
            let t = (a.rem_euclid(sector) / sector - 0.5).abs() * 2.0; // 1 at a point, 0 between
            r <= 0.5 + 0.7 * t * t
        }
    }
}

/// Rain streaks per frame (over the unit square of the screen).
pub(crate) const RAIN_STREAKS: u64 = 36;
/// A rain streak: its direction and length (dx, dy) from the anchor, and its width.
pub(crate) const RAIN_STREAK: (f32, f32, f32) = (-0.025, 0.11, 0.022);
/// Snowflakes per frame, and their radius.
pub(crate) const SNOW_FLAKES: u64 = 22;
pub(crate) const SNOW_RADIUS: f32 = 0.028;

/// Where rain streak `k` starts at clip time `tau`, on a screen `extent` = (width, height)
/// units large (the toy world's screen is 1 x 1): streaks fall about 1.6 units per clip and
/// wrap around.
pub(crate) fn rain_anchor(seed: u64, k: u64, tau: f32, (ex, ey): (f32, f32)) -> (f32, f32) {
    let rx = hash2(seed, k as i64, 1) * ex;
    let ry = (hash2(seed, k as i64, 2) + 1.6 * tau / ey).fract() * (ey + 0.2) - 0.1;
    (rx, ry)
}

/// The centre of snowflake `k` at clip time `tau` (screen as for [`rain_anchor`]): flakes
/// drift down about 0.45 units per clip, swaying sideways.
pub(crate) fn snow_flake(seed: u64, k: u64, tau: f32, (ex, ey): (f32, f32)) -> (f32, f32) {
    let sx = hash2(seed, k as i64, 3) * ex + 0.03 * (TAU * (tau + hash2(seed, k as i64, 5))).sin();
    let sy = (hash2(seed, k as i64, 4) + 0.45 * tau / ey).fract() * (ey + 0.1) - 0.05;
    (sx, sy)
}

pub(crate) fn streak_hit(u: f32, v: f32, x: f32, y: f32, dx: f32, dy: f32, width: f32) -> bool {
    let (px, py) = (u - x, v - y);
    let len2 = dx * dx + dy * dy;
    let t = ((px * dx + py * dy) / len2).clamp(0.0, 1.0);
    let (qx, qy) = (px - t * dx, py - t * dy);
    qx * qx + qy * qy < width * width * 0.25
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Smooth value noise in [0, 1].
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (tx, ty) = (x - xf, y - yf);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (xf as i64, yf as i64);
    let a = hash2(seed, ix, iy);
    let b = hash2(seed, ix + 1, iy);
    let c = hash2(seed, ix, iy + 1);
    let d = hash2(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

fn setting_color(setting: Setting, x: f32, y: f32, seed: u64) -> [f32; 3] {
    match setting {
        Setting::Plain => [0.55, 0.55, 0.58],
        Setting::NightSky => {
            let base = mix([0.02, 0.03, 0.12], [0.10, 0.10, 0.30], y.clamp(0.0, 1.0));
            // Stars on a jittered grid.
            let cell = 0.14;
            let (cx, cy) = ((x / cell).floor(), (y / cell).floor());
            let h = hash2(seed ^ 0x57a2, cx as i64, cy as i64);
            if h < 0.55 {
                let sx = (cx + 0.2 + 0.6 * hash2(seed ^ 0x11, cx as i64, cy as i64)) * cell;
                let sy = (cy + 0.2 + 0.6 * hash2(seed ^ 0x22, cx as i64, cy as i64)) * cell;
                let d2 = (x - sx) * (x - sx) + (y - sy) * (y - sy);
                if d2 < 0.02 * 0.02 {
                    return [0.95, 0.95, 0.85];
                }
            }
            base
        }
        Setting::GrassField => {
            let horizon = 0.42 + 0.03 * (x * 5.0).sin();
            if y < horizon {
                mix([0.45, 0.65, 0.95], [0.70, 0.85, 1.0], y / horizon)
            } else {
                let stripe = value_noise(seed, x * 9.0, y * 3.0);
                let tuft = ((x * 40.0).sin() * 0.5 + 0.5) * 0.08;
                let g = 0.45 + 0.25 * stripe - tuft;
                [0.12 + 0.1 * stripe, g, 0.10]
            }
        }
        Setting::Ocean => {
            if y < 0.38 {
                mix([0.55, 0.75, 0.98], [0.85, 0.92, 1.0], y / 0.38)
            } else {
                let wave = ((x * 14.0 + 6.0 * value_noise(seed, x * 3.0, y * 6.0)).sin() * 0.5 + 0.5)
                    * ((y - 0.38) * 3.0).min(1.0);
                let crest = if wave > 0.85 { 0.35 } else { 0.0 };
                [0.05 + crest, 0.30 + 0.1 * wave + crest, 0.62 + 0.1 * wave + crest * 0.5]
            }
        }
        Setting::Desert => {
            let dune = 0.45 + 0.07 * (x * 6.0).sin() + 0.04 * (x * 13.0 + 1.0).sin();
            if y < dune {
                mix([0.55, 0.72, 0.92], [0.92, 0.88, 0.78], y / dune)
            } else {
                let shade = ((x * 9.0 + y * 14.0).sin() * 0.5 + 0.5) * 0.15;
                [0.86 - shade, 0.70 - shade, 0.42 - shade * 0.8]
            }
        }
        Setting::Snowfield => {
            if y < 0.40 {
                mix([0.62, 0.68, 0.78], [0.80, 0.83, 0.88], y / 0.40)
            } else {
                let shadow = value_noise(seed, x * 8.0, y * 4.0);
                let s = 0.93 - 0.12 * shadow;
                [s - 0.03, s, 0.99]
            }
        }
    }
}

/// Number of procedural texture families used for image-to-video training.
pub const TEXTURE_KINDS: usize = 5;

fn palette(seed: u64, k: i64) -> [f32; 3] {
    [hash2(seed, k, 11), hash2(seed, k, 12), hash2(seed, k, 13)]
}

fn texture_color(kind: u8, seed: u64, x: f32, y: f32) -> [f32; 3] {
    let a = palette(seed, 0);
    let b = palette(seed, 1);
    let scale = 2.0 + 8.0 * hash2(seed, 5, 5);
    match kind {
        // Cloudy noise between two colours.
        0 => {
            let n = 0.65 * value_noise(seed, x * scale, y * scale)
                + 0.35 * value_noise(seed ^ 1, x * scale * 2.7, y * scale * 2.7);
            mix(a, b, n)
        }
        // Stripes at an angle.
        1 => {
            let ang = hash2(seed, 7, 7) * PI;
            let t = (x * ang.cos() + y * ang.sin()) * scale * 1.5;
            mix(a, b, (t * TAU).sin() * 0.5 + 0.5)
        }
        // Checkerboard.
        2 => {
            let cx = (x * scale).floor() as i64;
            let cy = (y * scale).floor() as i64;
            if (cx + cy).rem_euclid(2) == 0 { a } else { b }
        }
        // Coloured blobs over a base colour.
        3 => {
            let cell = 1.0 / scale;
            let (cx, cy) = ((x / cell).floor(), (y / cell).floor());
            let mut c = a;
            for oy in -1..=1 {
                for ox in -1..=1 {
                    let (gx, gy) = (cx as i64 + ox, cy as i64 + oy);
                    let bx = (gx as f32 + hash2(seed, gx, gy * 3 + 1)) * cell;
                    let by = (gy as f32 + hash2(seed, gx * 5 + 2, gy)) * cell;
                    let r = cell * (0.25 + 0.4 * hash2(seed, gx + 9, gy - 9));
                    if (x - bx).powi(2) + (y - by).powi(2) < r * r {
                        c = palette(seed, 2 + (gx * 31 + gy).rem_euclid(5));
                    }
                }
            }
            c
        }
        // A landscape photo stand-in: sky gradient, noisy hills, darker foreground.
        _ => {
            let horizon = 0.35 + 0.2 * value_noise(seed, x * 3.0, 0.5);
            if y < horizon {
                mix(a.map(|v| 0.4 + 0.6 * v), [0.9, 0.9, 0.95], y / horizon)
            } else {
                let n = value_noise(seed ^ 3, x * scale * 2.0, y * scale * 2.0);
                mix(b, b.map(|v| v * 0.4), (y - horizon) * 1.5).map(|v| v * (0.75 + 0.35 * n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::prompt::parse;

    #[test]
    fn same_seed_same_clip() {
        let a = Scene::sample(&mut Rng::new(3), &Prompt::default(), 0.3);
        let b = Scene::sample(&mut Rng::new(3), &Prompt::default(), 0.3);
        assert_eq!(a, b);
        assert_eq!(a.render(4, 16), b.render(4, 16));
        let c = Scene::sample(&mut Rng::new(4), &Prompt::default(), 0.3);
        assert_ne!(a.render(4, 16), c.render(4, 16));
    }

    #[test]
    fn captions_parse_back_to_the_scene() {
        let mut rng = Rng::new(11);
        for i in 0..500 {
            let scene = Scene::sample(&mut rng, &Prompt::default(), 0.3);
            let caption = scene.caption(&mut rng);
            let parsed = parse(&caption);
            let mut expected = scene.prompt();
            if scene.camera == Camera::Static && parsed.camera.is_none() {
                expected.camera = None;
            }
            assert_eq!(parsed, expected, "sample {i}: {caption:?}");
        }
    }

    #[test]
    fn wishes_are_honoured_and_held_out_combos_avoided() {
        let wish = parse("a purple star moving right on the ocean while it rains, zoom out");
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let s = Scene::sample(&mut rng, &wish, 0.5);
            assert_eq!(s.subject, Some(Subject::Star));
            assert_eq!(s.color, Color::Purple);
            assert_eq!(s.action, Action::MovingRight);
            assert_eq!(s.backdrop, Backdrop::Setting(Setting::Ocean));
            assert_eq!(s.weather, Some(Weather::Rain));
            assert_eq!(s.camera, Camera::ZoomOut);
        }
        let mut rng = Rng::new(6);
        for _ in 0..500 {
            let s = Scene::sample(&mut rng, &Prompt::default(), 0.0);
            let Backdrop::Setting(setting) = s.backdrop else { panic!() };
            assert!(!is_held_out(s.subject.unwrap(), s.color, s.action, setting));
        }
    }

    fn centroid(frame: &[f32], size: usize, color: [f32; 3]) -> Option<(f32, f32)> {
        let plane = size * size;
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for i in 0..plane {
            let d: f32 = (0..3).map(|k| (frame[k * plane + i] - color[k]).abs()).sum();
            if d < 0.25 {
                sx += (i % size) as f32;
                sy += (i / size) as f32;
                n += 1.0;
            }
        }
        (n > 0.0).then(|| (sx / n, sy / n))
    }

    #[test]
    fn subject_moves_the_way_the_action_says() {
        let size = 32;
        let frames = 8;
        for (action, dx, dy) in [
            (Action::MovingLeft, -1.0, 0.0),
            (Action::MovingRight, 1.0, 0.0),
            (Action::MovingUp, 0.0, -1.0),
            (Action::MovingDown, 0.0, 1.0),
        ] {
            let wish = Prompt {
                subject: Some(Subject::Square),
                color: Some(Color::Red),
                action: Some(action),
                setting: Some(Setting::Plain),
                camera: Some(Camera::Static),
                ..Default::default()
            };
            let mut scene = Scene::sample(&mut Rng::new(9), &wish, 0.0);
            scene.weather = None;
            let clip = scene.render(frames, size);
            let per = 3 * size * size;
            let a = centroid(&clip[..per], size, Color::Red.rgb()).unwrap();
            let b = centroid(&clip[(frames - 1) * per..], size, Color::Red.rgb()).unwrap();
            let (mx, my) = (b.0 - a.0, b.1 - a.1);
            assert!(mx * dx + my * dy > 8.0, "{action:?}: moved ({mx}, {my})");
        }
    }

    /// The layout's disc sits on the rendered subject, with the camera moving too.
    #[test]
    fn layout_follows_the_rendered_subject() {
        let (size, frames) = (32, 6);
        let mut rng = Rng::new(4);
        for _ in 0..12 {
            let mut scene = Scene::sample(&mut rng, &Prompt::default(), 0.0);
            if scene.subject.is_none() {
                continue;
            }
            scene.weather = None;
            let (_, coverage) = scene.render_with_coverage(frames, size);
            let layout = scene.layout(frames, size);
            for f in 0..frames {
                let mass = |m: &[f32]| {
                    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
                    for (i, v) in m[f * size * size..(f + 1) * size * size].iter().enumerate() {
                        sx += v * (i % size) as f32;
                        sy += v * (i / size) as f32;
                        n += v;
                    }
                    (n > 0.5).then(|| (sx / n, sy / n))
                };
                // Subjects partly out of frame shift the centroids apart; compare whole ones.
                let (Some(a), Some(b)) = (mass(&coverage), mass(&layout)) else { continue };
                let inside = |(x, y): (f32, f32)| (6.0..26.0).contains(&x) && (6.0..26.0).contains(&y);
                if inside(b) {
                    assert!(
                        (a.0 - b.0).abs() < 1.5 && (a.1 - b.1).abs() < 1.5,
                        "{:?} frame {f}: {a:?} vs {b:?}",
                        scene.action
                    );
                }
            }
        }
        assert!(Scene::sample(&mut rng, &Prompt::default(), 1.0).layout(2, 8).len() == 2 * 64);
    }
}
