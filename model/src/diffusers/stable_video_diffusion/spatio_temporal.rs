//! The video blocks of Stable Video Diffusion, with diffusers' names: `TemporalResnetBlock`,
//! `SpatioTemporalResBlock`, `AlphaBlender`, `TemporalBasicTransformerBlock` and
//! `TransformerSpatioTemporalModel`. Frames travel folded into the batch, `[batch * frames, ...]`,
//! as in diffusers; temporal layers unfold them.
//!
//! diffusers' `image_only_indicator` is all zeros in every SVD pipeline call (the UNet and the
//! temporal decoder both build it so), which makes each blender a fixed mix; that is the case
//! ported here.

use crate::diffusers::common::blocks::{
    Attention, BasicTransformerBlock, FeedForward, ResnetBlock2D, TimestepEmbedding, timestep_features,
};
use crate::diffusers::common::layers::{GroupNorm, LayerNorm, Linear};
use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// `torch.nn.Conv3d` with a (k, 1, 1) kernel: a convolution over frames at each pixel.
#[derive(Debug, Clone)]
pub struct TemporalConv {
    /// [out, in, k, 1]: the 3D kernel with its unit width folded away.
    weight: Tensor<4>,
    bias: Tensor<1>,
    kernel: usize,
}

impl TemporalConv {
    pub fn load(vb: &Vb, inp: usize, out: usize, kernel: usize) -> Result<Self, LoadError> {
        let w: Tensor<5> = vb.get("weight", [out, inp, kernel, 1, 1])?;
        let [o, i, k, _, _] = w.dims();
        Ok(Self { weight: w.reshape([o, i, k, 1]), bias: vb.get("bias", [out])?, kernel })
    }

    /// [B, C, T, H, W] -> [B, out, T, H, W], zero-padded in time.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, c, t, h, w] = x.dims();
        let pad = self.kernel / 2;
        let options = ConvOptions::new([1, 1], [pad, 0], [1, 1], 1);
        let y = conv2d(x.reshape([b, c, t, h * w]), self.weight.clone(), Some(self.bias.clone()), options);
        let out = y.dims()[1];
        y.reshape([b, out, t, h, w])
    }
}

/// `TemporalResnetBlock`: a residual block of temporal convolutions on [B, C, T, H, W]; its group
/// norms take their statistics over all frames together.
#[derive(Debug, Clone)]
pub struct TemporalResnetBlock {
    norm1: GroupNorm,
    conv1: TemporalConv,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: TemporalConv,
    conv_shortcut: Option<TemporalConv>,
}

impl TemporalResnetBlock {
    pub fn load(vb: &Vb, inp: usize, out: usize, temb: Option<usize>, eps: f64) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: GroupNorm::load(&vb.pp("norm1"), 32, inp, eps)?,
            conv1: TemporalConv::load(&vb.pp("conv1"), inp, out, 3)?,
            time_emb_proj: match temb {
                Some(t) => Some(Linear::load(&vb.pp("time_emb_proj"), t, out, true)?),
                None => None,
            },
            norm2: GroupNorm::load(&vb.pp("norm2"), 32, out, eps)?,
            conv2: TemporalConv::load(&vb.pp("conv2"), out, out, 3)?,
            conv_shortcut: if inp != out {
                Some(TemporalConv::load(&vb.pp("conv_shortcut"), inp, out, 1)?)
            } else {
                None
            },
        })
    }

    /// `x`: [B, C, T, H, W]; `temb`: [B, T, D].
    pub fn forward(&self, x: Tensor<5>, temb: Option<&Tensor<3>>) -> Tensor<5> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => {
                let [b, c, frames, _, _] = h.dims();
                let t = proj.forward(silu(t.clone())).swap_dims(1, 2).reshape([b, c, frames, 1, 1]);
                h + t
            }
            _ => h,
        };
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }
}

/// `AlphaBlender` with an all-zero `image_only_indicator`: `alpha * spatial + (1 - alpha) *
/// temporal`, alpha the sigmoid of the learned `mix_factor` ("learned", "learned_with_images"),
/// or its complement for the temporal decoder (`switch_spatial_to_temporal_mix`).
#[derive(Debug, Clone, Copy)]
pub struct AlphaBlender {
    pub alpha: f32,
}

impl AlphaBlender {
    pub fn load(vb: &Vb, switch_spatial_to_temporal_mix: bool) -> Result<Self, LoadError> {
        let key = vb.key("mix_factor");
        let mix = vb.weights.host_f32(&key, &[1])?.first().copied().unwrap_or(0.0);
        let alpha = 1.0 / (1.0 + (-mix).exp());
        Ok(Self { alpha: if switch_spatial_to_temporal_mix { 1.0 - alpha } else { alpha } })
    }

    pub fn forward<const D: usize>(&self, spatial: Tensor<D>, temporal: Tensor<D>) -> Tensor<D> {
        spatial * self.alpha + temporal * (1.0 - self.alpha)
    }
}

/// `SpatioTemporalResBlock`: a 2D residual block per frame, then a temporal one, blended.
#[derive(Debug, Clone)]
pub struct SpatioTemporalResBlock {
    spatial_res_block: ResnetBlock2D,
    temporal_res_block: TemporalResnetBlock,
    time_mixer: AlphaBlender,
}

impl SpatioTemporalResBlock {
    /// `eps` for the spatial block, `temporal_eps` for the temporal one; the temporal decoder
    /// switches the blend (`switch`).
    pub fn load(
        vb: &Vb,
        inp: usize,
        out: usize,
        temb: Option<usize>,
        eps: f64,
        temporal_eps: f64,
        switch: bool,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            spatial_res_block: ResnetBlock2D::load(&vb.pp("spatial_res_block"), inp, out, temb, 32, eps, 1.0)?,
            temporal_res_block: TemporalResnetBlock::load(&vb.pp("temporal_res_block"), out, out, temb, temporal_eps)?,
            time_mixer: AlphaBlender::load(&vb.pp("time_mixer"), switch)?,
        })
    }

    /// `x`: [B*T, C, H, W]; `temb`: [B*T, D].
    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>, frames: usize) -> Tensor<4> {
        let s = self.spatial_res_block.forward(x, temb);
        let [n, c, h, w] = s.dims();
        let b = n / frames;
        let s5 = s.reshape([b, frames, c, h, w]).swap_dims(1, 2);
        let temb3 = temb.map(|t| {
            let d = t.dims()[1];
            t.clone().reshape([b, frames, d])
        });
        let t5 = self.temporal_res_block.forward(s5.clone(), temb3.as_ref());
        self.time_mixer.forward(s5, t5).swap_dims(1, 2).reshape([n, c, h, w])
    }

    pub fn temporal_res_block(&self) -> &TemporalResnetBlock {
        &self.temporal_res_block
    }
}

/// `TemporalBasicTransformerBlock`: attention across frames at each position.
#[derive(Debug, Clone)]
pub struct TemporalBasicTransformerBlock {
    norm_in: LayerNorm,
    ff_in: FeedForward,
    norm1: LayerNorm,
    attn1: Attention,
    cross: Option<(LayerNorm, Attention)>,
    norm3: LayerNorm,
    ff: FeedForward,
    is_res: bool,
}

impl TemporalBasicTransformerBlock {
    pub fn load(
        vb: &Vb,
        dim: usize,
        inner: usize,
        heads: usize,
        dim_head: usize,
        cross_dim: Option<usize>,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            norm_in: LayerNorm::load(&vb.pp("norm_in"), dim, 1e-5)?,
            ff_in: FeedForward::load(&vb.pp("ff_in"), dim, inner, 4, true)?,
            norm1: LayerNorm::load(&vb.pp("norm1"), inner, 1e-5)?,
            attn1: Attention::load(&vb.pp("attn1"), inner, None, heads, dim_head, false)?,
            cross: match cross_dim {
                Some(x) => Some((
                    LayerNorm::load(&vb.pp("norm2"), inner, 1e-5)?,
                    Attention::load(&vb.pp("attn2"), inner, Some(x), heads, dim_head, false)?,
                )),
                None => None,
            },
            norm3: LayerNorm::load(&vb.pp("norm3"), inner, 1e-5)?,
            ff: FeedForward::load(&vb.pp("ff"), inner, inner, 4, true)?,
            is_res: dim == inner,
        })
    }

    /// `x`: [B*T, S, C]; `context`: [B, L, D], the first frame's conditioning (the same for
    /// every position, so it is attended to once per clip rather than once per pixel).
    pub fn forward(&self, x: Tensor<3>, frames: usize, context: Option<&Tensor<3>>) -> Tensor<3> {
        let [n, s, c] = x.dims();
        let b = n / frames;
        let x = x.reshape([b, frames, s, c]).swap_dims(1, 2).reshape([b * s, frames, c]);
        let h = self.ff_in.forward(self.norm_in.forward(x.clone()));
        let h = if self.is_res { h + x } else { h };
        let h = self.attn1.forward(self.norm1.forward(h.clone()), None) + h;
        let h = match (&self.cross, context) {
            (Some((norm, attn)), Some(ctx)) => {
                let inner = h.dims()[2];
                let q = norm.forward(h.clone()).reshape([b, s * frames, inner]);
                attn.forward(q, Some(ctx)).reshape([b * s, frames, inner]) + h
            }
            _ => h,
        };
        let out = self.ff.forward(self.norm3.forward(h.clone()));
        let h = if self.is_res { out + h } else { out };
        let inner = h.dims()[2];
        h.reshape([b, s, frames, inner]).swap_dims(1, 2).reshape([n, s, inner])
    }
}

/// `TransformerSpatioTemporalModel`: spatial transformer blocks per frame, each followed by a
/// temporal one (with a learned frame-position embedding), blended.
#[derive(Debug, Clone)]
pub struct TransformerSpatioTemporalModel {
    norm: GroupNorm,
    proj_in: Linear,
    transformer_blocks: Vec<BasicTransformerBlock>,
    temporal_transformer_blocks: Vec<TemporalBasicTransformerBlock>,
    time_pos_embed: TimestepEmbedding,
    time_mixer: AlphaBlender,
    proj_out: Linear,
    channels: usize,
}

impl TransformerSpatioTemporalModel {
    pub fn load(
        vb: &Vb,
        channels: usize,
        heads: usize,
        dim_head: usize,
        layers: usize,
        cross_dim: usize,
    ) -> Result<Self, LoadError> {
        let inner = heads * dim_head;
        Ok(Self {
            norm: GroupNorm::load(&vb.pp("norm"), 32, channels, 1e-6)?,
            proj_in: Linear::load(&vb.pp("proj_in"), channels, inner, true)?,
            transformer_blocks: (0..layers)
                .map(|i| {
                    BasicTransformerBlock::load(&vb.pp("transformer_blocks").pp(i), inner, heads, dim_head, cross_dim)
                })
                .collect::<Result<_, _>>()?,
            temporal_transformer_blocks: (0..layers)
                .map(|i| {
                    TemporalBasicTransformerBlock::load(
                        &vb.pp("temporal_transformer_blocks").pp(i),
                        inner,
                        inner,
                        heads,
                        dim_head,
                        Some(cross_dim),
                    )
                })
                .collect::<Result<_, _>>()?,
            time_pos_embed: TimestepEmbedding::load_with_out(
                &vb.pp("time_pos_embed"),
                channels,
                channels * 4,
                channels,
            )?,
            time_mixer: AlphaBlender::load(&vb.pp("time_mixer"), false)?,
            proj_out: Linear::load(&vb.pp("proj_out"), inner, channels, true)?,
            channels,
        })
    }

    /// `x`: [B*T, C, H, W]; `context`: [B, L, D] (one conditioning per clip).
    pub fn forward(&self, x: Tensor<4>, context: &Tensor<3>, frames: usize) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let b = n / frames;
        let normed = self.norm.forward(x.clone());
        let mut seq = self.proj_in.forward(normed.reshape([n, c, h * w]).swap_dims(1, 2));
        let positions: Vec<f32> = (0..b).flat_map(|_| (0..frames).map(|f| f as f32)).collect();
        let features = timestep_features(&positions, self.channels, true, 0.0, &x.device()).cast(x.dtype());
        let emb = self.time_pos_embed.forward(features).unsqueeze_dim::<3>(1);
        // The spatial blocks see each frame with the clip's conditioning.
        let [_, l, d] = context.dims();
        let per_frame = context.clone().unsqueeze_dim::<4>(1).expand([b, frames, l, d]).reshape([n, l, d]);
        for (block, temporal) in self.transformer_blocks.iter().zip(&self.temporal_transformer_blocks) {
            seq = block.forward(seq, &per_frame);
            let mix = temporal.forward(seq.clone() + emb.clone(), frames, Some(context));
            seq = self.time_mixer.forward(seq, mix);
        }
        let out = self.proj_out.forward(seq);
        out.swap_dims(1, 2).reshape([n, c, h, w]) + x
    }

    pub fn temporal_block(&self, i: usize) -> &TemporalBasicTransformerBlock {
        &self.temporal_transformer_blocks[i]
    }
}
