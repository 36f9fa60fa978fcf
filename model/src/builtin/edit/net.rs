//! The built-in editor's network: it looks at the picture (at its working size, 32 on the short
//! side) and the edit, and writes where to change the picture (a mask logit) and what to put
//! there (RGB). The picture outside the mask is kept as it is, at its own resolution.
//!
//! A 2D UNet (three downsamplings, so a move can carry the subject across the frame) with FiLM
//! conditioning from the edit vector, and coordinate channels.

use super::instruction::EDIT_DIM;
use crate::builtin::motion::net::{FilmBlock, coordinates};
use crate::builtin::net::upsample2;
use burn::module::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

/// Shape of the editor; stored next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditConfig {
    /// The size it is trained at (square; a multiple of 8).
    pub size: usize,
    /// Channels at full, 1/2, 1/4 and 1/8 resolution.
    pub channels: [usize; 4],
    pub cond_dim: usize,
}

impl EditConfig {
    pub fn default_small() -> Self {
        Self { size: 32, channels: [32, 48, 64, 96], cond_dim: 64 }
    }

    pub fn init(&self, device: &Device) -> EditNet {
        let [c0, c1, c2, c3] = self.channels;
        let d = self.cond_dim;
        let conv = |i: usize, o: usize, stride: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let block = |i: usize, o: usize| FilmBlock::new(i, o, d, device);
        EditNet {
            conv_in: conv(5, c0, 1),
            cond_1: LinearConfig::new(EDIT_DIM, d).init(device),
            cond_2: LinearConfig::new(d, d).init(device),
            block0: block(c0, c0),
            down0: conv(c0, c1, 2),
            block1: block(c1, c1),
            down1: conv(c1, c2, 2),
            block2: block(c2, c2),
            down2: conv(c2, c3, 2),
            mid_a: block(c3, c3),
            mid_b: block(c3, c3),
            up2: block(c3 + c2, c2),
            up1: block(c2 + c1, c1),
            up0: block(c1 + c0, c0),
            norm_out: GroupNormConfig::new(8, c0).init(device),
            conv_out: Conv2dConfig::new([c0, 4], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct EditNet {
    conv_in: Conv2d,
    cond_1: Linear,
    cond_2: Linear,
    block0: FilmBlock,
    down0: Conv2d,
    block1: FilmBlock,
    down1: Conv2d,
    block2: FilmBlock,
    down2: Conv2d,
    mid_a: FilmBlock,
    mid_b: FilmBlock,
    up2: FilmBlock,
    up1: FilmBlock,
    up0: FilmBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl EditNet {
    /// `image`: `[b, 3, h, w]` in [-1, 1] (sides multiples of 8); `edit`: `[b, EDIT_DIM]`.
    /// Returns `[b, 4, h, w]`: the mask logit, then RGB logits.
    pub fn forward(&self, image: Tensor<4>, edit: Tensor<2>) -> Tensor<4> {
        let [b, _, h, w] = image.dims();
        let device = image.device();
        let cond = self.cond_2.forward(silu(self.cond_1.forward(edit)));
        let x = self.conv_in.forward(Tensor::cat(vec![image, coordinates(b, h, w, &device)], 1));
        let s0 = self.block0.forward(x, &cond);
        let s1 = self.block1.forward(self.down0.forward(s0.clone()), &cond);
        let s2 = self.block2.forward(self.down1.forward(s1.clone()), &cond);
        let m = self.mid_a.forward(self.down2.forward(s2.clone()), &cond);
        let m = self.mid_b.forward(m, &cond);
        let u2 = self.up2.forward(Tensor::cat(vec![upsample2(m), s2], 1), &cond);
        let u1 = self.up1.forward(Tensor::cat(vec![upsample2(u2), s1], 1), &cond);
        let u0 = self.up0.forward(Tensor::cat(vec![upsample2(u1), s0], 1), &cond);
        self.conv_out.forward(silu(self.norm_out.forward(u0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shapes() {
        let device = Device::flex();
        let cfg = EditConfig { size: 16, channels: [8, 8, 8, 8], cond_dim: 8 };
        let net = cfg.init(&device);
        let out = net.forward(Tensor::zeros([2, 3, 16, 24], &device), Tensor::zeros([2, EDIT_DIM], &device));
        assert_eq!(out.dims(), [2, 4, 16, 24]);
    }
}
