//! Image-to-video with the motion model: one pass of the motion network on the image seen at
//! 32 x 32, then every frame is the upload itself, warped by the upsampled motion field, at its
//! own resolution. Areas the first frame hid are filled with the network's fill colour; areas
//! that enter the frame (a pan, a zoom out) continue the picture mirrored at its edge. Rain and
//! snow come from the learned weather layer, drawn on a canvas scaled to the picture. The seed
//! places the weather's particles and varies the pace of the motion a little
//! ([`effective_motion`]); the same request and seed give the same frames.

use super::net::{MotionConfig, MotionModel, PER_FRAME};
use super::truth::{WEATHER_UNIT, particle_map, tau};
use crate::builtin::prompt::{Prompt, multi_hot, parse};
use crate::builtin::vocab::NUM_TOKENS;
use crate::builtin::weights::ModelError;
use crate::generate::{GenerateError, Progress};
use burn::prelude::*;
use burn::store::{HalfPrecisionAdapter, ModuleSnapshot, SafetensorsStore};
use image::RgbImage;
use image::imageops::FilterType;
use std::time::Instant;

/// Identifier of the shipped motion model, recorded in results' metadata.
pub const MOTION_MODEL_ID: &str = "vidplay-motion-1";

const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../../weights/motion.safetensors");
const SHIPPED_CONFIG: &str = include_str!("../../../weights/motion.json");

/// Longest side of an animated picture, in pixels.
pub const MAX_SIDE: u32 = 1024;
/// Shortest side accepted.
pub const MIN_SIDE: u32 = 16;

/// What to animate and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AnimateRequest {
    pub prompt: String,
    /// Frames out (2 to the model's clip length), spread over the whole motion.
    pub frames: usize,
    /// Motion strength: 1 is normal speed.
    pub motion: f32,
    pub seed: u64,
    /// Longest side of the output; `None`: the picture's own (at most [`MAX_SIDE`]).
    pub long_side: Option<u32>,
}

/// An animated picture.
#[derive(Debug, Clone)]
pub struct Animation {
    /// Frames at the output size; the first is the picture itself (cropped to even sides).
    pub frames: Vec<RgbImage>,
    /// The last frame without weather: what a continuation starts from, so that it moves the
    /// scene and not this clip's raindrops.
    pub dry_last: RgbImage,
    pub understood: Prompt,
    pub seconds: f64,
}

/// The motion model loaded on a device.
pub struct Animator {
    model: MotionModel,
    config: MotionConfig,
    device: Device,
}

impl Animator {
    pub fn shipped_weights_bytes() -> usize {
        SHIPPED_WEIGHTS.len()
    }

    /// The weights shipped inside the binary.
    pub fn shipped(device: &Device) -> Result<Self, ModelError> {
        let config: MotionConfig =
            serde_json::from_str(SHIPPED_CONFIG).map_err(|e| ModelError::Config(e.to_string()))?;
        Self::from_store(
            SafetensorsStore::from_bytes(Some(SHIPPED_WEIGHTS.to_vec())),
            config,
            "<built-in motion>",
            device,
        )
    }

    /// Weights exported by `train_motion`: `NAME.safetensors` with `NAME.json` beside it.
    pub fn load(weights: &std::path::Path, device: &Device) -> Result<Self, ModelError> {
        let config_path = weights.with_extension("json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::Weights { path: config_path.display().to_string(), message: e.to_string() })?;
        let config: MotionConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config(e.to_string()))?;
        Self::from_store(SafetensorsStore::from_file(weights), config, &weights.display().to_string(), device)
    }

    fn from_store(
        store: SafetensorsStore,
        config: MotionConfig,
        origin: &str,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut model = config.init(device);
        let mut store = store.with_from_adapter(HalfPrecisionAdapter::new()).allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights { path: origin.into(), message: e.to_string() })?;
        if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
            return Err(ModelError::Weights {
                path: origin.into(),
                message: format!(
                    "weights do not match the motion model: missing {:?}, unused {:?}",
                    result.missing, result.unused
                ),
            });
        }
        Ok(Self { model, config, device: device.clone() })
    }

    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Checks a request without running it.
    pub fn validate(&self, req: &AnimateRequest) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::InvalidRequest(m));
        let n = self.config.frames;
        if !(2..=n).contains(&req.frames) {
            return bad(format!("frames must be between 2 and {n} for this model, not {}", req.frames));
        }
        if !(0.0..=2.0).contains(&req.motion) {
            return bad(format!("motion must be between 0 and 2, not {}", req.motion));
        }
        if let Some(s) = req.long_side
            && !(MIN_SIDE..=MAX_SIDE).contains(&s)
        {
            return bad(format!("size must be between {MIN_SIDE} and {MAX_SIDE} pixels, not {s}"));
        }
        Ok(())
    }

    /// Animates `image`. `on_progress` is called after each frame; `cancelled` is checked
    /// between frames.
    pub fn animate(
        &self,
        req: &AnimateRequest,
        image: &RgbImage,
        on_progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Animation, GenerateError> {
        self.validate(req)?;
        let started = Instant::now();
        let (iw, ih) = image.dimensions();
        if iw.min(ih) < MIN_SIDE {
            return Err(GenerateError::InvalidRequest(format!(
                "the picture is {iw}x{ih}; it needs at least {MIN_SIDE} pixels on each side"
            )));
        }
        let long = req.long_side.unwrap_or(iw.max(ih)).min(MAX_SIDE);
        let scale = long as f32 / iw.max(ih) as f32;
        let (w, h) = (((iw as f32 * scale).round() as u32).max(2), ((ih as f32 * scale).round() as u32).max(2));
        let resized =
            if (w, h) == (iw, ih) { image.clone() } else { image::imageops::resize(image, w, h, FilterType::Lanczos3) };
        // Video encoders want even sizes: an odd last column or row is cropped, not resampled.
        let picture = if w % 2 == 1 || h % 2 == 1 {
            image::imageops::crop_imm(&resized, 0, 0, w & !1, h & !1).to_image()
        } else {
            resized
        };
        let (w, h) = picture.dimensions();
        let understood = parse(&req.prompt);
        let motion = effective_motion(req);
        let fields = if motion > 0.0 {
            self.fields(&picture, &understood, motion)?
        } else {
            // Motion strength 0: nothing moves (weather may still fall).
            let plane = self.config.size * self.config.size;
            let mut still = vec![0.0f32; self.config.frames * PER_FRAME * plane];
            for f in 0..self.config.frames {
                still[(f * PER_FRAME + 2) * plane..(f * PER_FRAME + 3) * plane].fill(-30.0);
            }
            still
        };
        let (f_native, s) = (self.config.frames, self.config.size);
        let weather = understood.weather.map(|_| self.weather(&understood, req.seed, w, h)).transpose()?;
        let indices = crate::builtin::frames::frame_indices(f_native, req.frames);
        let mut frames = Vec::with_capacity(indices.len());
        let mut dry_last = picture.clone();
        for (i, &f) in indices.iter().enumerate() {
            if cancelled() {
                return Err(GenerateError::Cancelled);
            }
            // The first frame is the picture itself: weather starts falling from the second.
            let mut frame = if f == 0 {
                picture.clone()
            } else {
                warp(&picture, &fields[f * PER_FRAME * s * s..(f + 1) * PER_FRAME * s * s], s)
            };
            if i + 1 == indices.len() {
                dry_last = frame.clone();
            }
            if let Some(layers) = &weather
                && f > 0
            {
                layers.draw(&mut frame, f);
            }
            frames.push(frame);
            on_progress(Progress::new(i + 1, indices.len()));
        }
        Ok(Animation { frames, dry_last, understood, seconds: started.elapsed().as_secs_f64() })
    }

    /// The motion network's output for `picture`: `[frames * PER_FRAME, s, s]` flattened.
    fn fields(&self, picture: &RgbImage, understood: &Prompt, motion: f32) -> Result<Vec<f32>, GenerateError> {
        let s = self.config.size;
        let small = image::imageops::resize(picture, s as u32, s as u32, FilterType::Triangle);
        let planar = crate::builtin::frames::to_planar(&small);
        let d = &self.device;
        let image = Tensor::<4>::from_data(TensorData::new(planar, [1, 3, s, s]), d);
        let tokens = Tensor::<2>::from_data(TensorData::new(multi_hot(understood), [1, NUM_TOKENS]), d);
        let motion = Tensor::<2>::from_data(TensorData::new(vec![motion], [1, 1]), d);
        let out = self.model.net.forward(image, tokens, motion);
        read(out)
    }

    /// The weather layer for every frame, on a canvas whose short side is a quarter of the
    /// picture's (64 to 256 pixels), so streaks and flakes keep a size that suits the picture.
    fn weather(&self, understood: &Prompt, seed: u64, w: u32, h: u32) -> Result<WeatherFrames, GenerateError> {
        let short = w.min(h) as f32;
        let canvas_short = (short / 4.0).clamp(WEATHER_UNIT as f32, 4.0 * WEATHER_UNIT as f32);
        let (cw, ch) = (
            ((w as f32 / short * canvas_short).round() as usize).max(1),
            ((h as f32 / short * canvas_short).round() as usize).max(1),
        );
        let n = self.config.frames;
        let mut input = Vec::with_capacity(n * 2 * cw * ch);
        for f in 0..n {
            input.extend(particle_map(understood.weather, seed, tau(f, n), cw, ch));
        }
        let particles = Tensor::<4>::from_data(TensorData::new(input, [n, 2, ch, cw]), &self.device);
        let layers = read(self.model.weather.forward(particles))?;
        Ok(WeatherFrames { layers, cw, ch })
    }
}

/// A tensor's values on the host.
fn read(t: Tensor<4>) -> Result<Vec<f32>, GenerateError> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| GenerateError::Backend(format!("reading the motion model's output: {e:?}")))
}

/// The motion strength the network is given: the request's, with a pace that the seed varies
/// by up to 15% either way, so that a new seed (a re-roll) moves differently, and the same
/// seed the same.
pub fn effective_motion(req: &AnimateRequest) -> f32 {
    let pace = 1.0 + 0.3 * (crate::rng::hash2(req.seed, 17, 29) - 0.5);
    (req.motion * pace).clamp(0.0, 2.0)
}

/// Weather opacity and colour per frame, `[frames, 4, ch, cw]`.
struct WeatherFrames {
    layers: Vec<f32>,
    cw: usize,
    ch: usize,
}

impl WeatherFrames {
    fn draw(&self, frame: &mut RgbImage, f: usize) {
        let (w, h) = frame.dimensions();
        let plane = self.cw * self.ch;
        let layer = &self.layers[f * 4 * plane..(f + 1) * 4 * plane];
        for y in 0..h {
            let gy = (y as f32 + 0.5) / h as f32 * self.ch as f32 - 0.5;
            for x in 0..w {
                let gx = (x as f32 + 0.5) / w as f32 * self.cw as f32 - 0.5;
                let a = bilinear(layer, self.cw, self.ch, gx, gy);
                if a < 0.01 {
                    continue;
                }
                let p = frame.get_pixel_mut(x, y);
                for c in 0..3 {
                    let col = bilinear(&layer[(1 + c) * plane..], self.cw, self.ch, gx, gy) * 255.0;
                    p.0[c] = (p.0[c] as f32 * (1.0 - a) + col * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

/// Bilinear sample of a `[h, w]` grid (the first `w * h` values of `grid`) at grid point (x, y),
/// clamped at the edges.
pub fn bilinear(grid: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (ax, ay) = (x - x0 as f32, y - y0 as f32);
    let top = grid[y0 * w + x0] * (1.0 - ax) + grid[y0 * w + x1] * ax;
    let bottom = grid[y1 * w + x0] * (1.0 - ax) + grid[y1 * w + x1] * ax;
    top * (1.0 - ay) + bottom * ay
}

/// Mirrors a coordinate into [0, n - 1].
fn reflect(v: f32, n: u32) -> f32 {
    let max = (n - 1) as f32;
    if max <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * max;
    let m = v.rem_euclid(period);
    if m > max { period - m } else { m }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One frame: `picture` warped by a frame's fields (`[PER_FRAME, s, s]`), hidden areas filled.
pub fn warp(picture: &RgbImage, field: &[f32], s: usize) -> RgbImage {
    let (w, h) = picture.dimensions();
    let plane = s * s;
    let sample = |x: f32, y: f32| -> [f32; 3] {
        let x = reflect(x, w);
        let y = reflect(y, h);
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (ax, ay) = (x - x0 as f32, y - y0 as f32);
        let p = |x: u32, y: u32| picture.get_pixel(x, y).0;
        let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
        std::array::from_fn(|k| {
            (a[k] as f32 * (1.0 - ax) + b[k] as f32 * ax) * (1.0 - ay)
                + (c[k] as f32 * (1.0 - ax) + d[k] as f32 * ax) * ay
        })
    };
    RgbImage::from_fn(w, h, |x, y| {
        let u = (x as f32 + 0.5) / w as f32;
        let v = (y as f32 + 0.5) / h as f32;
        let (gx, gy) = (u * s as f32 - 0.5, v * s as f32 - 0.5);
        let fx = bilinear(field, s, s, gx, gy);
        let fy = bilinear(&field[plane..], s, s, gx, gy);
        let hidden = sigmoid(bilinear(&field[2 * plane..], s, s, gx, gy));
        let warped = sample((u + fx) * w as f32 - 0.5, (v + fy) * h as f32 - 0.5);
        image::Rgb(std::array::from_fn(|k| {
            let fill = sigmoid(bilinear(&field[(3 + k) * plane..], s, s, gx, gy)) * 255.0;
            (warped[k] * (1.0 - hidden) + fill * hidden).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_field_shifts_the_picture() {
        let s = 4;
        let pic = RgbImage::from_fn(40, 20, |x, y| image::Rgb([(x * 6) as u8, (y * 10) as u8, 0]));
        let mut field = vec![0.0f32; PER_FRAME * s * s];
        // Sample 5 pixels to the left: the content moves right.
        field[..s * s].iter_mut().for_each(|v| *v = -5.0 / 40.0);
        field[2 * s * s..3 * s * s].iter_mut().for_each(|v| *v = -20.0); // nothing hidden
        let out = warp(&pic, &field, s);
        assert_eq!(out.dimensions(), (40, 20));
        for x in 5..40 {
            assert_eq!(out.get_pixel(x, 7), pic.get_pixel(x - 5, 7), "x {x}");
        }
        // Entering content continues the picture mirrored at its edge.
        assert_eq!(out.get_pixel(2, 7), pic.get_pixel(3, 7));
    }

    #[test]
    fn reflect_mirrors_into_range() {
        assert_eq!(reflect(-3.0, 10), 3.0);
        assert_eq!(reflect(12.0, 10), 6.0);
        assert_eq!(reflect(4.5, 10), 4.5);
    }
}
