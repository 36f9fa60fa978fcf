//! The built-in model's network: a small factorised space-time UNet.
//!
//! Per frame it is a 2D UNet (space-to-depth input, two downsamplings); after every residual
//! block a temporal convolution mixes each pixel's features across frames. Conditioning — the
//! prompt's canonical tokens, motion strength, flow time and frame index — modulates every block
//! (FiLM). The optional first frame is concatenated on channels with a mask channel, so
//! classifier-free guidance can drop text and image independently. Two coordinate channels
//! (x and y in [-1, 1]) enter through their own input convolution: a convolution alone hardly
//! knows where in the frame it is, and placing and moving a subject needs exactly that.
//! A layout map enters the same way: per frame, a soft disc where the subject is and how big it
//! is, drawn by a planner from the prompt ([`crate::builtin::world::Scene::layout`]). FiLM conditions
//! every position of a frame alike, so without it the network has to turn "moving left" into
//! positions through products of token and frame embeddings deep inside; trained to step 5,200
//! it had not (its predicted mean clip was the same for "moving left" and "moving right").
//!
//! For a noisy clip `x_s = (1 - s) noise + s data` (pixels in [-1, 1]) the network predicts the
//! clean clip; the sampler turns that into the rectified-flow velocity
//! `(prediction - x_s) / (1 - s)`, which removes the noise exactly by construction.

use crate::builtin::vocab::NUM_TOKENS;
use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

/// Shape of the network; stored next to the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Frames per clip (the frame embedding has one row per frame).
    pub frames: usize,
    /// Square frame size in pixels (a multiple of 8).
    pub size: usize,
    /// Channels at 1/2, 1/4 and 1/8 resolution.
    pub channels: [usize; 3],
    /// Width of the conditioning vector.
    pub cond_dim: usize,
}

impl NetConfig {
    pub fn default_small() -> Self {
        Self { frames: 16, size: 32, channels: [64, 96, 128], cond_dim: 192 }
    }

    pub fn init(&self, device: &Device) -> Net {
        let [c0, c1, c2] = self.channels;
        let d = self.cond_dim;
        let conv = |i: usize, o: usize, stride: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let block = |i: usize, o: usize| SpaceTimeBlock::new(i, o, d, device);
        Net {
            conv_in: conv(7 * 4, c0, 1),
            // Zero at first, so weights trained before this layer existed load unchanged.
            coord_in: Conv2dConfig::new([2 * 4, c0], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
            // Randomly initialised: zero where no subject is planned, so it starts as a local
            // nudge exactly where the subject should be drawn.
            layout_in: Conv2dConfig::new([4, c0], [3, 3])
                .with_bias(false)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            cond_in: LinearConfig::new(NUM_TOKENS + 2, d).init(device),
            time_1: LinearConfig::new(64, d).init(device),
            time_2: LinearConfig::new(d, d).init(device),
            frame_embedding: Initializer::Normal { mean: 0.0, std: 0.3 }.init([self.frames, d], device),
            block0: block(c0, c0),
            down0: conv(c0, c1, 2),
            block1a: block(c1, c1),
            block1b: block(c1, c1),
            down1: conv(c1, c2, 2),
            mid_a: block(c2, c2),
            mid_b: block(c2, c2),
            up1: block(c2 + c1, c1),
            up0: block(c1 + c0, c0),
            norm_out: GroupNormConfig::new(8, c0).init(device),
            conv_out: Conv2dConfig::new([c0, 3 * 4], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }
}

/// Everything the network is conditioned on, batched.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Multi-hot canonical tokens, `[batch, NUM_TOKENS]`.
    pub tokens: Tensor<2>,
    /// Motion strength, `[batch, 1]` (1 is normal speed).
    pub motion: Tensor<2>,
    /// First frame in [-1, 1], `[batch, 3, size, size]` (zeros when absent).
    pub image: Tensor<4>,
    /// 1 where the first frame is given, `[batch, 1]`.
    pub image_mask: Tensor<2>,
    /// Planned subject layout per frame in [0, 1], `[batch, frames, size, size]` (zeros: none).
    pub layout: Tensor<4>,
}

impl Conditioning {
    /// Builds a batch of `batch` conditionings from flat host vectors (images planar
    /// `[batch, 3, size, size]`).
    pub fn from_host(
        tokens: Vec<f32>,
        motion: Vec<f32>,
        images: Vec<f32>,
        image_mask: Vec<f32>,
        layout: Vec<f32>,
        size: usize,
        device: &Device,
    ) -> Self {
        let b = motion.len();
        let frames = layout.len() / (b * size * size).max(1);
        Self {
            layout: Tensor::from_data(TensorData::new(layout, [b, frames, size, size]), device),
            tokens: Tensor::from_data(TensorData::new(tokens, [b, NUM_TOKENS]), device),
            motion: Tensor::from_data(TensorData::new(motion, [b, 1]), device),
            image: Tensor::from_data(TensorData::new(images, [b, 3, size, size]), device),
            image_mask: Tensor::from_data(TensorData::new(image_mask, [b, 1]), device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Net {
    conv_in: Conv2d,
    coord_in: Conv2d,
    layout_in: Conv2d,
    cond_in: Linear,
    time_1: Linear,
    time_2: Linear,
    frame_embedding: Param<Tensor<2>>,
    block0: SpaceTimeBlock,
    down0: Conv2d,
    block1a: SpaceTimeBlock,
    block1b: SpaceTimeBlock,
    down1: Conv2d,
    mid_a: SpaceTimeBlock,
    mid_b: SpaceTimeBlock,
    up1: SpaceTimeBlock,
    up0: SpaceTimeBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Net {
    /// `x`: noisy clip `[batch, frames, 3, size, size]`; `s`: flow time per sample `[batch]`.
    /// Returns the predicted clean clip, same shape as `x`.
    pub fn forward(&self, x: Tensor<5>, s: Tensor<1>, cond: &Conditioning) -> Tensor<5> {
        let [b, t, _, h, w] = x.dims();
        let x_device = x.device();
        let mask4 = cond.image_mask.clone().reshape([b, 1, 1, 1]);
        let image = (cond.image.clone() * mask4.clone()).unsqueeze_dim::<5>(1).expand([b, t, 3, h, w]);
        let mask = mask4.unsqueeze_dim::<5>(1).expand([b, t, 1, h, w]);
        let input = Tensor::cat(vec![x, image, mask], 2).reshape([b * t, 7, h, w]);
        let input = space_to_depth(input);

        // Conditioning per frame: [b * t, d].
        let d = self.time_2.weight.dims()[1];
        let text = self
            .cond_in
            .forward(Tensor::cat(vec![cond.tokens.clone(), cond.motion.clone(), cond.image_mask.clone()], 1));
        let time = self.time_2.forward(silu(self.time_1.forward(timestep_embedding(s, 64))));
        let per_clip = (text + time).unsqueeze_dim::<3>(1).expand([b, t, d]);
        let frame = self.frame_embedding.val().slice(0..t).unsqueeze_dim::<3>(0).expand([b, t, d]);
        let c = silu((per_clip + frame).reshape([b * t, d]));

        let h0 = self.conv_in.forward(input)
            + self.coord_in.forward(coordinates(b * t, h, w, &x_device))
            + self.layout_in.forward(space_to_depth(cond.layout.clone().reshape([b * t, 1, h, w])));
        let h0 = self.block0.forward(h0, &c, t);
        let h1 = self.down0.forward(h0.clone());
        let h1 = self.block1a.forward(h1, &c, t);
        let h1 = self.block1b.forward(h1, &c, t);
        let h2 = self.down1.forward(h1.clone());
        let h2 = self.mid_a.forward(h2, &c, t);
        let h2 = self.mid_b.forward(h2, &c, t);
        let u1 = self.up1.forward(Tensor::cat(vec![upsample2(h2), h1], 1), &c, t);
        let u0 = self.up0.forward(Tensor::cat(vec![upsample2(u1), h0], 1), &c, t);
        let out = self.conv_out.forward(silu(self.norm_out.forward(u0)));
        depth_to_space(out).reshape([b, t, 3, h, w])
    }
}

/// Residual 2D block with FiLM conditioning, followed by a residual temporal convolution.
#[derive(Module, Debug)]
pub struct SpaceTimeBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    film: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
    norm_t: GroupNorm,
    conv_t: Conv1d,
}

impl SpaceTimeBlock {
    fn new(cin: usize, cout: usize, cond_dim: usize, device: &Device) -> Self {
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
            norm_t: GroupNormConfig::new(8, cout).init(device),
            conv_t: Conv1dConfig::new(cout, cout, 3)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    /// `x`: `[b * t, c, h, w]`, `cond`: `[b * t, d]`.
    fn forward(&self, x: Tensor<4>, cond: &Tensor<2>, frames: usize) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let [n, c, hh, ww] = h.dims();
        let film = self.film.forward(cond.clone()).reshape([n, 2 * c, 1, 1]);
        let scale = film.clone().slice([0..n, 0..c]);
        let shift = film.slice([0..n, c..2 * c]);
        let h = self.norm2.forward(h) * (scale + 1.0) + shift;
        let h = self.conv2.forward(silu(h));
        let skip = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        let x = skip + h;

        // Temporal mixing: [b*t, c, h, w] -> [b*h*w, c, t].
        let b = n / frames;
        let seq = x.clone().reshape([b, frames, c, hh, ww]).permute([0, 3, 4, 2, 1]).reshape([b * hh * ww, c, frames]);
        let mixed = self.conv_t.forward(silu(self.norm_t.forward(seq)));
        let mixed = mixed.reshape([b, hh, ww, c, frames]).permute([0, 4, 3, 1, 2]).reshape([n, c, hh, ww]);
        x + mixed
    }
}

/// Sinusoidal embedding of flow time in [0, 1], `[batch] -> [batch, dim]`.
fn timestep_embedding(s: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let device = s.device();
    let freqs: Vec<f32> = (0..half).map(|i| (-(10_000f32).ln() * i as f32 / half as f32).exp() * 1000.0).collect();
    let freqs = Tensor::<1>::from_data(TensorData::new(freqs, [half]), &device).unsqueeze_dim::<2>(0);
    let args = s.unsqueeze_dim::<2>(1) * freqs;
    Tensor::cat(vec![args.clone().sin(), args.cos()], 1)
}

/// Pixel coordinates in [-1, 1] (x right, y down), `[n, 8, h/2, w/2]` after space-to-depth.
fn coordinates(n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
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
    let one = Tensor::<4>::from_data(TensorData::new(data, [1, 2, h, w]), device);
    space_to_depth(one).expand([n, 8, h / 2, w / 2])
}

/// `[n, c, h, w] -> [n, 4c, h/2, w/2]`.
fn space_to_depth(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h / 2, 2, w / 2, 2]).permute([0, 1, 3, 5, 2, 4]).reshape([n, c * 4, h / 2, w / 2])
}

/// `[n, 4c, h, w] -> [n, c, 2h, 2w]`, the inverse of [`space_to_depth`].
fn depth_to_space(x: Tensor<4>) -> Tensor<4> {
    let [n, c4, h, w] = x.dims();
    let c = c4 / 4;
    x.reshape([n, c, 2, 2, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([n, c, h * 2, w * 2])
}

/// Nearest-neighbour 2x upsampling.
pub(crate) fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, h * 2, w * 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_to_depth_round_trips() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let y = depth_to_space(space_to_depth(x.clone()));
        y.into_data().assert_eq(&x.into_data(), true);
    }

    #[test]
    fn output_shape_matches_input() {
        let device = Device::flex();
        let cfg = NetConfig { frames: 4, size: 16, channels: [16, 16, 16], cond_dim: 16 };
        let net = cfg.init(&device);
        let b = 2;
        let x = Tensor::<5>::zeros([b, 4, 3, 16, 16], &device);
        let cond = Conditioning {
            tokens: Tensor::zeros([b, NUM_TOKENS], &device),
            motion: Tensor::ones([b, 1], &device),
            image: Tensor::zeros([b, 3, 16, 16], &device),
            image_mask: Tensor::zeros([b, 1], &device),
            layout: Tensor::zeros([b, 4, 16, 16], &device),
        };
        let v = net.forward(x, Tensor::zeros([b], &device), &cond);
        assert_eq!(v.dims(), [b, 4, 3, 16, 16]);
    }
}
