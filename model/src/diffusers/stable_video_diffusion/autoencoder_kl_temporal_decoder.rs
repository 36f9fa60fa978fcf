//! diffusers' `AutoencoderKLTemporalDecoder` (SVD's VAE), driven by `vae/config.json`: the image
//! VAE's encoder, and a decoder whose residual blocks also mix across frames and whose output
//! passes a temporal convolution (`time_conv_out`).
//!
//! The decoder's temporal group norms take statistics over all frames decoded together, so the
//! frames of one call form a chunk as in diffusers' `decode_chunk_size`.

use crate::diffusers::common::blocks::{Attention, Upsample2D};
use crate::diffusers::common::layers::{Conv2d, GroupNorm};
use crate::diffusers::common::weights::{LoadError, Vb, Weights};
use crate::diffusers::stable_diffusion::autoencoder_kl::{Encoder, d1, d3, d4, sf, split_moments, yes};
use crate::diffusers::stable_video_diffusion::spatio_temporal::{SpatioTemporalResBlock, TemporalConv};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct TemporalDecoderVaeConfig {
    #[serde(default = "d3")]
    pub in_channels: usize,
    #[serde(default = "d3")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    #[serde(default = "d1")]
    pub layers_per_block: usize,
    #[serde(default = "d4")]
    pub latent_channels: usize,
    #[serde(default = "sf")]
    pub scaling_factor: f64,
    /// diffusers runs an f16 VAE in f32 when this is set (SVD sets it).
    #[serde(default = "yes")]
    pub force_upcast: bool,
}

impl TemporalDecoderVaeConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let c: Self = crate::diffusers::common::config::read_json(path)?;
        if c.block_out_channels.is_empty() || c.down_block_types.len() != c.block_out_channels.len() {
            return Err(LoadError::config(
                path,
                "down_block_types",
                c.down_block_types.len(),
                "block lists must have one entry per block_out_channels",
            ));
        }
        if let Some(t) = c.down_block_types.iter().find(|t| *t != "DownEncoderBlock2D") {
            return Err(LoadError::config(path, "down_block_types", t, "supported: DownEncoderBlock2D"));
        }
        if let Some(ch) = c.block_out_channels.iter().find(|ch| **ch % 32 != 0) {
            return Err(LoadError::config(
                path,
                "block_out_channels",
                ch,
                "every level needs a multiple of 32 channels (32 norm groups)",
            ));
        }
        Ok(c)
    }

    /// How much smaller latents are than images.
    pub fn scale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// The decoder's blocks: residual blocks blended with their temporal halves (the blend
/// switched, epsilons 1e-6 spatial and 1e-5 temporal), no time embedding.
fn temporal_resnet(vb: &Vb, inp: usize, out: usize) -> Result<SpatioTemporalResBlock, LoadError> {
    SpatioTemporalResBlock::load(vb, inp, out, None, 1e-6, 1e-5, true)
}

/// `MidBlockTemporalDecoder`.
#[derive(Debug, Clone)]
struct MidBlock {
    resnets: Vec<SpatioTemporalResBlock>,
    /// One attention, applied between the first and second residual blocks; with a single
    /// residual block diffusers holds it but never runs it.
    attention: Attention,
}

impl MidBlock {
    fn forward(&self, x: Tensor<4>, frames: usize) -> Tensor<4> {
        let mut x = self.resnets[0].forward(x, None, frames);
        if let Some(second) = self.resnets.get(1) {
            x = self.attention.forward_spatial(x);
            x = second.forward(x, None, frames);
        }
        x
    }
}

/// `UpBlockTemporalDecoder`.
#[derive(Debug, Clone)]
struct UpBlock {
    resnets: Vec<SpatioTemporalResBlock>,
    upsampler: Option<Upsample2D>,
}

impl UpBlock {
    fn forward(&self, mut x: Tensor<4>, frames: usize) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x, None, frames);
        }
        match &self.upsampler {
            Some(u) => u.forward(x, None),
            None => x,
        }
    }
}

/// `TemporalDecoder`.
#[derive(Debug, Clone)]
pub struct TemporalDecoder {
    conv_in: Conv2d,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    time_conv_out: TemporalConv,
}

impl TemporalDecoder {
    fn load(vb: &Vb, c: &TemporalDecoderVaeConfig) -> Result<Self, LoadError> {
        let ch = &c.block_out_channels;
        let n = ch.len();
        let last = ch[n - 1];
        let m = vb.pp("mid_block");
        let mid_block = MidBlock {
            resnets: (0..c.layers_per_block)
                .map(|j| temporal_resnet(&m.pp("resnets").pp(j), last, last))
                .collect::<Result<_, _>>()?,
            attention: Attention::load_spatial(&m.pp("attentions").pp(0), last, last, 32, 1e-6)?,
        };
        let mut up_blocks = Vec::new();
        let mut prev = last;
        for i in 0..n {
            let b = vb.pp("up_blocks").pp(i);
            let out = ch[n - 1 - i];
            up_blocks.push(UpBlock {
                resnets: (0..c.layers_per_block + 1)
                    .map(|j| temporal_resnet(&b.pp("resnets").pp(j), if j == 0 { prev } else { out }, out))
                    .collect::<Result<_, _>>()?,
                upsampler: if i + 1 < n { Some(Upsample2D::load(&b.pp("upsamplers").pp(0), out, out)?) } else { None },
            });
            prev = out;
        }
        Ok(Self {
            conv_in: Conv2d::load(&vb.pp("conv_in"), c.latent_channels, last, 3, 1, 1)?,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(&vb.pp("conv_norm_out"), 32, ch[0], 1e-6)?,
            conv_out: Conv2d::load(&vb.pp("conv_out"), ch[0], c.out_channels, 3, 1, 1)?,
            time_conv_out: TemporalConv::load(&vb.pp("time_conv_out"), c.out_channels, c.out_channels, 3)?,
        })
    }

    /// Latents [T, C, h, w] of one clip (one chunk) -> frames [T, 3, H, W].
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let frames = z.dims()[0];
        let mut h = self.conv_in.forward(z);
        h = self.mid_block.forward(h, frames);
        for b in &self.up_blocks {
            h = b.forward(h, frames);
        }
        let h = self.conv_out.forward(silu(self.conv_norm_out.forward(h)));
        let [t, c, hh, ww] = h.dims();
        let h5 = h.reshape([1, t, c, hh, ww]).swap_dims(1, 2);
        self.time_conv_out.forward(h5).swap_dims(1, 2).reshape([t, c, hh, ww])
    }

    pub fn mid_block(&self, x: Tensor<4>) -> Tensor<4> {
        let frames = x.dims()[0];
        self.mid_block.forward(x, frames)
    }

    pub fn up_block(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let frames = x.dims()[0];
        self.up_blocks[i].forward(x, frames)
    }

    pub fn up_resnet(&self, block: usize, layer: usize) -> &SpatioTemporalResBlock {
        &self.up_blocks[block].resnets[layer]
    }
}

#[derive(Debug, Clone)]
pub struct AutoencoderKLTemporalDecoder {
    pub encoder: Encoder,
    quant_conv: Conv2d,
    pub decoder: TemporalDecoder,
    pub config: TemporalDecoderVaeConfig,
}

impl AutoencoderKLTemporalDecoder {
    pub fn load(weights: &Weights, c: &TemporalDecoderVaeConfig) -> Result<Self, LoadError> {
        let vb = weights.root();
        let l = c.latent_channels;
        Ok(Self {
            encoder: Encoder::load(
                &vb.pp("encoder"),
                c.in_channels,
                &c.block_out_channels,
                c.layers_per_block,
                32,
                l,
                true,
            )?,
            quant_conv: Conv2d::load(&vb.pp("quant_conv"), 2 * l, 2 * l, 1, 1, 0)?,
            decoder: TemporalDecoder::load(&vb.pp("decoder"), c)?,
            config: c.clone(),
        })
    }

    /// Images in [-1, 1] -> (mean, log variance) of the latent distribution.
    pub fn encode(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        split_moments(self.quant_conv.forward(self.encoder.forward(x)))
    }

    /// Unscaled latents of consecutive frames [T, C, h, w], decoded together -> [T, 3, H, W].
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(z)
    }
}
