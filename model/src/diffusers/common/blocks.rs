//! Blocks shared by diffusers' image and video models: residual blocks, attention, transformer
//! blocks, resampling and timestep embeddings. Field names are diffusers' own.

use crate::diffusers::common::layers::{Activation, Conv2d, GroupNorm, LayerNorm, Linear};
use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::{attention, interpolate};
use burn::tensor::ops::{AttentionModuleOptions, InterpolateMode, InterpolateOptions};

/// `ResnetBlock2D` (time embedding added after the first convolution, "default" norm).
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub fn load(
        vb: &Vb,
        inp: usize,
        out: usize,
        temb: Option<usize>,
        groups: usize,
        eps: f64,
        output_scale_factor: f64,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: GroupNorm::load(&vb.pp("norm1"), groups, inp, eps)?,
            conv1: Conv2d::load(&vb.pp("conv1"), inp, out, 3, 1, 1)?,
            time_emb_proj: match temb {
                Some(t) => Some(Linear::load(&vb.pp("time_emb_proj"), t, out, true)?),
                None => None,
            },
            norm2: GroupNorm::load(&vb.pp("norm2"), groups, out, eps)?,
            conv2: Conv2d::load(&vb.pp("conv2"), out, out, 3, 1, 1)?,
            conv_shortcut: if inp != out {
                Some(Conv2d::load(&vb.pp("conv_shortcut"), inp, out, 1, 1, 0)?)
            } else {
                None
            },
            output_scale_factor,
        })
    }

    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => {
                let [b, c] = [h.dims()[0], h.dims()[1]];
                h + proj.forward(silu(t.clone())).reshape([b, c, 1, 1])
            }
            _ => h,
        };
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        let y = skip + h;
        if self.output_scale_factor == 1.0 { y } else { y / self.output_scale_factor }
    }
}

/// Largest attention score matrix computed at once, in elements (512 MiB in f32). Larger
/// attention is split over the batch, then over query rows, which is exact: every query row's
/// softmax is independent of the others. A flash kernel never materialises the scores, but on
/// Burn's GPU backends the unfused fallback is one of the candidates autotune measures (and
/// what runs when a flash kernel declines a shape, without a word), so the split bounds memory
/// on every backend.
pub const MAX_ATTENTION_SCORES: usize = 1 << 27;

/// Multi-head scaled dot-product attention on [B, N, heads * dim] tensors.
pub fn multi_head_attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [b, n, _] = q.dims();
    let m = k.dims()[1];
    let per_item = heads * n * m;
    if b > 1 && b * per_item > MAX_ATTENTION_SCORES {
        let step = (MAX_ATTENTION_SCORES / per_item).max(1);
        let parts = (0..b)
            .step_by(step)
            .map(|s| {
                let e = (s + step).min(b);
                multi_head_attention(q.clone().slice(s..e), k.clone().slice(s..e), v.clone().slice(s..e), heads, causal)
            })
            .collect();
        return Tensor::cat(parts, 0);
    }
    if !causal && per_item > MAX_ATTENTION_SCORES && n > 1 {
        // Whole tiles of query rows, so every chunk still fits the flash kernels' tiling.
        let rows = match (MAX_ATTENTION_SCORES / (heads * m)).max(1) {
            r if r >= 256 => r / 256 * 256,
            r => r,
        };
        let parts = (0..n)
            .step_by(rows)
            .map(|s| {
                let e = (s + rows).min(n);
                attend(q.clone().slice([0..b, s..e]), k.clone(), v.clone(), heads, false)
            })
            .collect();
        return Tensor::cat(parts, 1);
    }
    attend(q, k, v, heads, causal)
}

fn attend(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [b, n, inner] = q.dims();
    let m = k.dims()[1];
    let d = inner / heads;
    let split = |t: Tensor<3>, len: usize| t.reshape([b, len, heads, d]).swap_dims(1, 2);
    let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
    let out = attention(split(q, n), split(k, m), split(v, m), None, None, options);
    out.swap_dims(1, 2).reshape([b, n, inner])
}

/// diffusers' `Attention` processor: self- or cross-attention, optionally with a group norm and a
/// residual on [B, C, H, W] input (the VAE's mid-block attention).
#[derive(Debug, Clone)]
pub struct Attention {
    group_norm: Option<GroupNorm>,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    /// `query_dim` -> `heads * dim_head`; keys and values from `cross_dim` (or the query itself).
    pub fn load(
        vb: &Vb,
        query_dim: usize,
        cross_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
        bias: bool,
    ) -> Result<Self, LoadError> {
        let inner = heads * dim_head;
        let kv = cross_dim.unwrap_or(query_dim);
        Ok(Self {
            group_norm: None,
            to_q: Linear::load(&vb.pp("to_q"), query_dim, inner, bias)?,
            to_k: Linear::load(&vb.pp("to_k"), kv, inner, bias)?,
            to_v: Linear::load(&vb.pp("to_v"), kv, inner, bias)?,
            to_out: Linear::load(&vb.pp("to_out").pp(0), inner, query_dim, true)?,
            heads,
        })
    }

    /// The spatial self-attention of VAE mid-blocks: group norm, biased projections, residual.
    pub fn load_spatial(vb: &Vb, channels: usize, dim_head: usize, groups: usize, eps: f64) -> Result<Self, LoadError> {
        let mut a = Self::load(vb, channels, None, channels / dim_head, dim_head, true)?;
        a.group_norm = Some(GroupNorm::load(&vb.pp("group_norm"), groups, channels, eps)?);
        Ok(a)
    }

    /// [B, N, C] -> [B, N, C]; `context` defaults to the input (self-attention).
    pub fn forward(&self, x: Tensor<3>, context: Option<&Tensor<3>>) -> Tensor<3> {
        let ctx = context.cloned().unwrap_or_else(|| x.clone());
        let q = self.to_q.forward(x);
        let k = self.to_k.forward(ctx.clone());
        let v = self.to_v.forward(ctx);
        self.to_out.forward(multi_head_attention(q, k, v, self.heads, false))
    }

    /// [B, C, H, W] with group norm and residual.
    pub fn forward_spatial(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let normed = match &self.group_norm {
            Some(n) => n.forward(x.clone()),
            None => x.clone(),
        };
        let seq = normed.reshape([b, c, h * w]).swap_dims(1, 2);
        let out = self.forward(seq, None).swap_dims(1, 2).reshape([b, c, h, w]);
        out + x
    }
}

/// `FeedForward` with a GEGLU input projection (`net.0.proj`) and an output linear (`net.2`), or
/// a plain GELU one.
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
    geglu: bool,
}

impl FeedForward {
    pub fn load(vb: &Vb, dim: usize, dim_out: usize, mult: usize, geglu: bool) -> Result<Self, LoadError> {
        let inner = dim * mult;
        let net = vb.pp("net");
        Ok(Self {
            proj_in: Linear::load(&net.pp(0).pp("proj"), dim, if geglu { inner * 2 } else { inner }, true)?,
            proj_out: Linear::load(&net.pp(2), inner, dim_out, true)?,
            geglu,
        })
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.proj_in.forward(x);
        let h = if self.geglu {
            let mut parts = h.chunk(2, 2);
            let gate = parts.pop().expect("two halves");
            let hidden = parts.pop().expect("two halves");
            hidden * Activation::Gelu.forward(gate)
        } else {
            Activation::Gelu.forward(h)
        };
        self.proj_out.forward(h)
    }
}

/// `BasicTransformerBlock` with layer norms: self-attention, cross-attention, feed-forward.
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl BasicTransformerBlock {
    pub fn load(vb: &Vb, dim: usize, heads: usize, dim_head: usize, cross_dim: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: LayerNorm::load(&vb.pp("norm1"), dim, 1e-5)?,
            attn1: Attention::load(&vb.pp("attn1"), dim, None, heads, dim_head, false)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), dim, 1e-5)?,
            attn2: Attention::load(&vb.pp("attn2"), dim, Some(cross_dim), heads, dim_head, false)?,
            norm3: LayerNorm::load(&vb.pp("norm3"), dim, 1e-5)?,
            ff: FeedForward::load(&vb.pp("ff"), dim, dim, 4, true)?,
        })
    }

    pub fn forward(&self, x: Tensor<3>, context: &Tensor<3>) -> Tensor<3> {
        let x = self.attn1.forward(self.norm1.forward(x.clone()), None) + x;
        let x = self.attn2.forward(self.norm2.forward(x.clone()), Some(context)) + x;
        self.ff.forward(self.norm3.forward(x.clone())) + x
    }
}

/// Either a 1x1 convolution (SD 1.x) or a linear layer (SD 2.x) around the transformer blocks.
#[derive(Debug, Clone)]
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// `Transformer2DModel` for continuous [B, C, H, W] input.
#[derive(Debug, Clone)]
pub struct Transformer2DModel {
    norm: GroupNorm,
    proj_in: Projection,
    transformer_blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
}

impl Transformer2DModel {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        vb: &Vb,
        channels: usize,
        heads: usize,
        dim_head: usize,
        layers: usize,
        cross_dim: usize,
        groups: usize,
        linear_projection: bool,
    ) -> Result<Self, LoadError> {
        let inner = heads * dim_head;
        let proj = |name: &str, i: usize, o: usize| -> Result<Projection, LoadError> {
            Ok(if linear_projection {
                Projection::Linear(Linear::load(&vb.pp(name), i, o, true)?)
            } else {
                Projection::Conv(Conv2d::load(&vb.pp(name), i, o, 1, 1, 0)?)
            })
        };
        Ok(Self {
            norm: GroupNorm::load(&vb.pp("norm"), groups, channels, 1e-6)?,
            proj_in: proj("proj_in", channels, inner)?,
            transformer_blocks: (0..layers)
                .map(|i| {
                    BasicTransformerBlock::load(&vb.pp("transformer_blocks").pp(i), inner, heads, dim_head, cross_dim)
                })
                .collect::<Result<_, _>>()?,
            proj_out: proj("proj_out", inner, channels)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>, context: &Tensor<3>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let normed = self.norm.forward(x.clone());
        let to_seq = |t: Tensor<4>| {
            let ch = t.dims()[1];
            t.reshape([b, ch, h * w]).swap_dims(1, 2)
        };
        let mut seq = match &self.proj_in {
            Projection::Conv(conv) => to_seq(conv.forward(normed)),
            Projection::Linear(lin) => lin.forward(to_seq(normed)),
        };
        for block in &self.transformer_blocks {
            seq = block.forward(seq, context);
        }
        let from_seq = |t: Tensor<3>| {
            let ch = t.dims()[2];
            t.swap_dims(1, 2).reshape([b, ch, h, w])
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(from_seq(seq)),
            Projection::Linear(lin) => from_seq(lin.forward(seq)),
        };
        debug_assert_eq!(out.dims()[1], c);
        out + x
    }
}

/// `Downsample2D` with a strided convolution. `padding` 0 means diffusers' asymmetric (0, 1)
/// padding on the bottom and right, as the VAE encoder uses.
#[derive(Debug, Clone)]
pub struct Downsample2D {
    conv: Conv2d,
    padding: usize,
}

impl Downsample2D {
    pub fn load(vb: &Vb, channels: usize, out: usize, padding: usize) -> Result<Self, LoadError> {
        Ok(Self { conv: Conv2d::load(&vb.pp("conv"), channels, out, 3, 2, padding)?, padding })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.padding == 0 { self.conv.forward_padded(x, [(0, 1), (0, 1)]) } else { self.conv.forward(x) }
    }
}

/// `Upsample2D`: nearest-neighbour resize (to twice the size, or to the given size), then a 3x3 conv.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub fn load(vb: &Vb, channels: usize, out: usize) -> Result<Self, LoadError> {
        Ok(Self { conv: Conv2d::load(&vb.pp("conv"), channels, out, 3, 1, 1)? })
    }

    pub fn forward(&self, x: Tensor<4>, size: Option<[usize; 2]>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let size = size.unwrap_or([h * 2, w * 2]);
        let options =
            InterpolateOptions { output_size: Some(size), ..InterpolateOptions::new(InterpolateMode::Nearest) };
        self.conv.forward(interpolate(x, options))
    }
}

/// Sinusoidal timestep features (`Timesteps` / `get_timestep_embedding`), computed in f32 as
/// PyTorch does: `exp(-ln(10000) * i / (half - shift))`, sin then cos (or cos then sin when flipped).
pub fn timestep_features(
    timesteps: &[f32],
    dim: usize,
    flip_sin_to_cos: bool,
    shift: f32,
    device: &Device,
) -> Tensor<2> {
    let half = dim / 2;
    let ln = -(10000f64.ln() as f32);
    let freqs: Vec<f32> = (0..half).map(|i| ((ln * i as f32) / (half as f32 - shift)).exp()).collect();
    let mut out = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
        let sin = args.iter().map(|a| a.sin());
        let cos = args.iter().map(|a| a.cos());
        if flip_sin_to_cos {
            out.extend(cos.chain(sin));
        } else {
            out.extend(sin.chain(cos));
        }
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    Tensor::from_data(TensorData::new(out, [timesteps.len(), dim]), device)
}

/// `TimestepEmbedding`: linear, SiLU, linear.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn load(vb: &Vb, inp: usize, dim: usize) -> Result<Self, LoadError> {
        Self::load_with_out(vb, inp, dim, dim)
    }

    /// With an output width other than the hidden one (`out_dim`).
    pub fn load_with_out(vb: &Vb, inp: usize, dim: usize, out: usize) -> Result<Self, LoadError> {
        Ok(Self {
            linear_1: Linear::load(&vb.pp("linear_1"), inp, dim, true)?,
            linear_2: Linear::load(&vb.pp("linear_2"), dim, out, true)?,
        })
    }

    /// From its two layers already loaded (e.g. kept in f32 in a half-precision model).
    pub fn from_linears(linear_1: Linear, linear_2: Linear) -> Self {
        Self { linear_1, linear_2 }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}
