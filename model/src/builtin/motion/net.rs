//! The motion model's networks.
//!
//! [`MotionNet`] looks at the image to animate (at `size` x `size`) and the prompt, and writes
//! every frame's motion at once (frames are output channels): per frame a backward motion field
//! (2 channels, screen units), a hidden-area logit (1) and a fill colour for hidden areas (3).
//! It is a small 2D UNet with FiLM conditioning from the prompt's canonical tokens and the
//! motion strength, and two coordinate channels, since zooms and the subject's place depend on
//! where in the frame a pixel is.
//!
//! [`WeatherLayer`] draws rain and snow: from a map of particle impulses (where each streak
//! starts, where each flake is) it paints opacity and colour with three convolutions whose
//! weights are learned from the toy world's weather; being convolutional it runs on a canvas
//! of any size.

use crate::builtin::net::upsample2;
use crate::builtin::vocab::NUM_TOKENS;
use burn::module::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};
use serde::{Deserialize, Serialize};

/// Channels the motion network writes per frame: motion x, motion y, hidden logit, fill RGB.
pub const PER_FRAME: usize = 6;

/// Shape of the motion model; stored next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionConfig {
    pub frames: usize,
    /// Square size the image is seen at, and the motion fields are written at (a multiple of 4).
    pub size: usize,
    /// Channels at full, 1/2 and 1/4 resolution.
    pub channels: [usize; 3],
    pub cond_dim: usize,
    /// Hidden channels of the weather layer.
    pub weather_channels: usize,
}

impl MotionConfig {
    pub fn default_small() -> Self {
        Self { frames: 16, size: 32, channels: [32, 64, 96], cond_dim: 128, weather_channels: 16 }
    }

    pub fn init(&self, device: &Device) -> MotionModel {
        let [c0, c1, c2] = self.channels;
        let d = self.cond_dim;
        let conv = |i: usize, o: usize, k: usize, stride: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .init(device)
        };
        let block = |i: usize, o: usize| FilmBlock::new(i, o, d, device);
        let w = self.weather_channels;
        MotionModel {
            net: MotionNet {
                conv_in: conv(5, c0, 3, 1),
                cond_1: LinearConfig::new(NUM_TOKENS + 1, d).init(device),
                cond_2: LinearConfig::new(d, d).init(device),
                block0: block(c0, c0),
                down0: conv(c0, c1, 3, 2),
                block1: block(c1, c1),
                down1: conv(c1, c2, 3, 2),
                mid_a: block(c2, c2),
                mid_b: block(c2, c2),
                up1: block(c2 + c1, c1),
                up0: block(c1 + c0, c0),
                norm_out: GroupNormConfig::new(8, c0).init(device),
                conv_out: Conv2dConfig::new([c0, self.frames * PER_FRAME], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_initializer(Initializer::Zeros)
                    .init(device),
            },
            weather: WeatherLayer { conv_1: conv(2, w, 9, 1), conv_2: conv(w, w, 9, 1), conv_3: conv(w, 4, 3, 1) },
        }
    }
}

/// Both networks of the motion model.
#[derive(Module, Debug)]
pub struct MotionModel {
    pub net: MotionNet,
    pub weather: WeatherLayer,
}

#[derive(Module, Debug)]
pub struct MotionNet {
    conv_in: Conv2d,
    cond_1: Linear,
    cond_2: Linear,
    block0: FilmBlock,
    down0: Conv2d,
    block1: FilmBlock,
    down1: Conv2d,
    mid_a: FilmBlock,
    mid_b: FilmBlock,
    up1: FilmBlock,
    up0: FilmBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl MotionNet {
    /// `image`: `[b, 3, s, s]` in [-1, 1]; `tokens`: `[b, NUM_TOKENS]`; `motion`: `[b, 1]`.
    /// Returns `[b, frames * PER_FRAME, s, s]` (frame-major).
    pub fn forward(&self, image: Tensor<4>, tokens: Tensor<2>, motion: Tensor<2>) -> Tensor<4> {
        let [b, _, h, w] = image.dims();
        let device = image.device();
        let cond = self.cond_2.forward(silu(self.cond_1.forward(Tensor::cat(vec![tokens, motion], 1))));
        let x = self.conv_in.forward(Tensor::cat(vec![image, coordinates(b, h, w, &device)], 1));
        let s0 = self.block0.forward(x, &cond);
        let s1 = self.block1.forward(self.down0.forward(s0.clone()), &cond);
        let m = self.mid_a.forward(self.down1.forward(s1.clone()), &cond);
        let m = self.mid_b.forward(m, &cond);
        let u1 = self.up1.forward(Tensor::cat(vec![upsample2(m), s1], 1), &cond);
        let u0 = self.up0.forward(Tensor::cat(vec![upsample2(u1), s0], 1), &cond);
        self.conv_out.forward(silu(self.norm_out.forward(u0)))
    }
}

#[derive(Module, Debug)]
pub struct WeatherLayer {
    conv_1: Conv2d,
    conv_2: Conv2d,
    conv_3: Conv2d,
}

impl WeatherLayer {
    /// `particles`: `[n, 2, h, w]` impulse maps; returns `[n, 4, h, w]`: opacity, then RGB, in [0, 1].
    pub fn forward(&self, particles: Tensor<4>) -> Tensor<4> {
        let h = silu(self.conv_1.forward(particles));
        let h = silu(self.conv_2.forward(h));
        sigmoid(self.conv_3.forward(h))
    }
}

/// Residual block with FiLM (scale and shift after the second norm) from the conditioning.
#[derive(Module, Debug)]
pub struct FilmBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    film: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl FilmBlock {
    pub(crate) fn new(cin: usize, cout: usize, cond_dim: usize, device: &Device) -> Self {
        let conv3 = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
        };
        Self {
            norm1: GroupNormConfig::new(8, cin).init(device),
            conv1: conv3(cin, cout),
            film: LinearConfig::new(cond_dim, 2 * cout).init(device),
            norm2: GroupNormConfig::new(8, cout).init(device),
            conv2: conv3(cout, cout),
            skip: (cin != cout).then(|| Conv2dConfig::new([cin, cout], [1, 1]).init(device)),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>, cond: &Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let [n, c, _, _] = h.dims();
        let film = self.film.forward(cond.clone()).reshape([n, 2 * c, 1, 1]);
        let scale = film.clone().slice([0..n, 0..c]);
        let shift = film.slice([0..n, c..2 * c]);
        let h = self.norm2.forward(h) * (scale + 1.0) + shift;
        let h = self.conv2.forward(silu(h));
        let skip = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }
}

/// Pixel coordinates in [-1, 1] (x right, y down), `[n, 2, h, w]`.
pub(crate) fn coordinates(n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    let mut data = Vec::with_capacity(2 * h * w);
    for _ in 0..h {
        for x in 0..w {
            data.push((x as f32 + 0.5) / w as f32 * 2.0 - 1.0);
        }
    }
    for y in 0..h {
        for _ in 0..w {
            data.push((y as f32 + 0.5) / h as f32 * 2.0 - 1.0);
        }
    }
    Tensor::<4>::from_data(TensorData::new(data, [1, 2, h, w]), device).expand([n, 2, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shapes() {
        let device = Device::flex();
        let cfg = MotionConfig { frames: 3, size: 8, channels: [8, 8, 8], cond_dim: 8, weather_channels: 4 };
        let m = cfg.init(&device);
        let out = m.net.forward(
            Tensor::zeros([2, 3, 8, 8], &device),
            Tensor::zeros([2, NUM_TOKENS], &device),
            Tensor::ones([2, 1], &device),
        );
        assert_eq!(out.dims(), [2, 3 * PER_FRAME, 8, 8]);
        let w = m.weather.forward(Tensor::zeros([1, 2, 10, 14], &device));
        assert_eq!(w.dims(), [1, 4, 10, 14]);
    }
}
