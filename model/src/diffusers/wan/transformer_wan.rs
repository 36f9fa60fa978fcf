//! diffusers' `WanTransformer3DModel` (Wan 2.1 and 2.2, text and image to video), driven by its
//! config.json.
//!
//! The latent video [B, C, F, H, W] is cut into patches (the `patch_embedding` Conv3d, whose
//! kernel equals its stride, is a linear map of each patch), every patch is a token with a 3D
//! rotary position (frame, row, column), and each block runs self-attention over all tokens
//! (RMS-normed q and k, rotary), cross-attention on the text, and a feed-forward, modulated by
//! the timestep through a learned shift/scale/gate table. The output norm and `proj_out` give
//! each token's patch back (unpatchify). Wan 2.1's image-to-video models also embed a CLIP
//! image encoder's tokens (`condition_embedder.image_embedder`, with position embeddings over
//! two pictures' tokens in the first-last-frame model) and attend to them in the
//! cross-attention beside the text (`add_k_proj`, `add_v_proj`, `norm_added_k`), the two
//! attentions' outputs summed.
//!
//! Precision follows diffusers' `_keep_in_fp32_modules`: the rotary table, the time embedder,
//! the modulation tables and the norms are f32; everything else runs in the weights' dtype.
//! Self-attention at 480p x 81 frames has about 33k tokens: `multi_head_attention` splits the
//! queries so no full score matrix is ever made.

use crate::diffusers::common::blocks::{TimestepEmbedding, multi_head_attention, timestep_features};
use crate::diffusers::common::config::read_json;
use crate::diffusers::common::layers::{Activation, LayerNorm, Linear, RmsNorm};
use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::silu;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct WanTransformerConfig {
    #[serde(default = "default_patch")]
    pub patch_size: [usize; 3],
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    #[serde(default)]
    pub out_channels: Option<usize>,
    pub text_dim: usize,
    #[serde(default = "default_freq_dim")]
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    #[serde(default = "default_true")]
    pub cross_attn_norm: bool,
    #[serde(default = "default_qk_norm")]
    pub qk_norm: Option<String>,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_rope_len")]
    pub rope_max_seq_len: usize,
    /// Width of the image encoder's tokens (Wan 2.1 image to video).
    #[serde(default)]
    pub image_dim: Option<usize>,
    /// Input width of the image keys and values (the embedded image tokens: `inner_dim`).
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    /// Image tokens of two pictures with position embeddings (the first-last-frame model).
    #[serde(default)]
    pub pos_embed_seq_len: Option<usize>,
}

fn default_patch() -> [usize; 3] {
    [1, 2, 2]
}
fn default_channels() -> usize {
    16
}
fn default_freq_dim() -> usize {
    256
}
fn default_true() -> bool {
    true
}
fn default_qk_norm() -> Option<String> {
    Some("rms_norm_across_heads".into())
}
fn default_eps() -> f64 {
    1e-6
}
fn default_rope_len() -> usize {
    1024
}

impl WanTransformerConfig {
    /// Reads and checks `transformer/config.json`; settings this port does not run are refused
    /// by name.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let c: Self = read_json(path)?;
        match (c.image_dim, c.added_kv_proj_dim) {
            (None, None) if c.pos_embed_seq_len.is_some() => {
                return Err(LoadError::config(
                    path,
                    "pos_embed_seq_len",
                    format!("{:?}", c.pos_embed_seq_len),
                    "image positions need image_dim",
                ));
            }
            (None, None) => {}
            (Some(_), Some(kv)) if kv == c.inner_dim() => {}
            (Some(_), kv) => {
                return Err(LoadError::config(
                    path,
                    "added_kv_proj_dim",
                    format!("{kv:?}"),
                    &format!("the image keys read the embedded image tokens: {} wide", c.inner_dim()),
                ));
            }
            (None, Some(kv)) => {
                return Err(LoadError::config(path, "added_kv_proj_dim", kv, "image keys need image_dim"));
            }
        }
        if let Some(n) = c.pos_embed_seq_len
            && (n == 0 || !n.is_multiple_of(2))
        {
            return Err(LoadError::config(path, "pos_embed_seq_len", n, "two pictures' tokens: an even count"));
        }
        if c.qk_norm.as_deref() != Some("rms_norm_across_heads") {
            return Err(LoadError::config(
                path,
                "qk_norm",
                format!("{:?}", c.qk_norm),
                "only rms_norm_across_heads is implemented",
            ));
        }
        let head = c.attention_head_dim;
        if head < 6 || !head.is_multiple_of(2) {
            return Err(LoadError::config(
                path,
                "attention_head_dim",
                head,
                "the rotary split needs an even head size of at least 6",
            ));
        }
        if c.patch_size.contains(&0) || c.num_attention_heads == 0 || c.num_layers == 0 {
            return Err(LoadError::config(path, "patch_size", format!("{:?}", c.patch_size), "sizes must be positive"));
        }
        Ok(c)
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Rotary widths of the frame, row and column parts of a head.
    fn rope_dims(&self) -> [usize; 3] {
        let hw = 2 * (self.attention_head_dim / 6);
        [self.attention_head_dim - 2 * hw, hw, hw]
    }
}

/// `FP32LayerNorm` without affine parameters, over the last dimension, in f32 (the caller
/// goes on in f32 for the modulation).
fn plain_layer_norm(x: Tensor<3>, eps: f64) -> Tensor<3> {
    let x = x.cast(DType::F32);
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean) / (var + eps).sqrt()
}

/// The rotary table of one token grid: cos and sin [tokens, head_dim / 2] in f32 (diffusers'
/// `WanRotaryPosEmbed`, whose tables are computed in f64 and stored in f32; the interleaved
/// pairs share one angle, so half the table holds it all).
#[derive(Debug, Clone)]
pub struct Rotary {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
}

impl Rotary {
    /// For a grid of `frames` x `rows` x `cols` tokens, in that (row-major) order.
    pub fn new(config: &WanTransformerConfig, [frames, rows, cols]: [usize; 3], device: &Device) -> Self {
        let dims = config.rope_dims();
        // Angles per part: position * theta^(-2i/dim), in f64 as diffusers computes them.
        let freqs: Vec<Vec<f64>> = dims
            .iter()
            .map(|&d| (0..d / 2).map(|i| 1.0 / 10000f64.powf((2 * i) as f64 / d as f64)).collect())
            .collect();
        let half = config.attention_head_dim / 2;
        let tokens = frames * rows * cols;
        let (mut cos, mut sin) = (Vec::with_capacity(tokens * half), Vec::with_capacity(tokens * half));
        for f in 0..frames {
            for r in 0..rows {
                for c in 0..cols {
                    for (pos, part) in [f, r, c].into_iter().zip(&freqs) {
                        for &w in part {
                            let angle = pos as f64 * w;
                            cos.push(angle.cos() as f32);
                            sin.push(angle.sin() as f32);
                        }
                    }
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [tokens, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [tokens, half]), device),
        }
    }

    /// Rotates each interleaved pair (x[2i], x[2i+1]) of every head of [B, N, heads * dim].
    fn apply(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let [b, n, inner] = x.dims();
        let half = inner / heads / 2;
        let dtype = x.dtype();
        let x = x.cast(DType::F32).reshape([b, n, heads, half, 2]);
        let x1 = x.clone().slice_dim(4, 0..1);
        let x2 = x.slice_dim(4, 1..2);
        let cos = self.cos.clone().reshape([1, n, 1, half, 1]);
        let sin = self.sin.clone().reshape([1, n, 1, half, 1]);
        let even = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let odd = x1 * sin + x2 * cos;
        Tensor::cat(vec![even, odd], 4).reshape([b, n, inner]).cast(dtype)
    }
}

/// `WanAttention`: q, k, v projections, RMS norms across heads, optional rotary
/// (self-attention), attention, `to_out.0`; in an image model's cross-attention, also the
/// image tokens' keys and values, attended to apart and added.
#[derive(Debug, Clone)]
struct WanAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: RmsNorm,
    norm_k: RmsNorm,
    /// `add_k_proj`, `add_v_proj`, `norm_added_k`.
    image: Option<(Linear, Linear, RmsNorm)>,
    heads: usize,
}

impl WanAttention {
    fn load(vb: &Vb, dim: usize, heads: usize, eps: f64, image_kv: Option<usize>) -> Result<Self, LoadError> {
        let image = match image_kv {
            Some(kv) => Some((
                Linear::load(&vb.pp("add_k_proj"), kv, dim, true)?,
                Linear::load(&vb.pp("add_v_proj"), kv, dim, true)?,
                RmsNorm::load(&vb.pp("norm_added_k"), dim, eps)?,
            )),
            None => None,
        };
        Ok(Self {
            to_q: Linear::load(&vb.pp("to_q"), dim, dim, true)?,
            to_k: Linear::load(&vb.pp("to_k"), dim, dim, true)?,
            to_v: Linear::load(&vb.pp("to_v"), dim, dim, true)?,
            to_out: Linear::load(&vb.pp("to_out").pp(0), dim, dim, true)?,
            norm_q: RmsNorm::load(&vb.pp("norm_q"), dim, eps)?,
            norm_k: RmsNorm::load(&vb.pp("norm_k"), dim, eps)?,
            image,
            heads,
        })
    }

    fn to_device(&self, device: &Device) -> Self {
        Self {
            to_q: self.to_q.to_device(device),
            to_k: self.to_k.to_device(device),
            to_v: self.to_v.to_device(device),
            to_out: self.to_out.to_device(device),
            norm_q: self.norm_q.to_device(device),
            norm_k: self.norm_k.to_device(device),
            image: self.image.as_ref().map(|(k, v, n)| (k.to_device(device), v.to_device(device), n.to_device(device))),
            heads: self.heads,
        }
    }

    /// `image`: the embedded image tokens, for an attention that has image keys.
    fn forward(
        &self,
        x: Tensor<3>,
        context: Option<&Tensor<3>>,
        rotary: Option<&Rotary>,
        image: Option<&Tensor<3>>,
    ) -> Tensor<3> {
        let context = context.unwrap_or(&x);
        let mut q = self.norm_q.forward(self.to_q.forward(x.clone()));
        let mut k = self.norm_k.forward(self.to_k.forward(context.clone()));
        let v = self.to_v.forward(context.clone());
        if let Some(r) = rotary {
            q = r.apply(q, self.heads);
            k = r.apply(k, self.heads);
        }
        let from_image = match (&self.image, image) {
            (Some((add_k, add_v, norm)), Some(tokens)) => {
                let k = norm.forward(add_k.forward(tokens.clone()));
                let v = add_v.forward(tokens.clone());
                Some(multi_head_attention(q.clone(), k, v, self.heads, false))
            }
            _ => None,
        };
        let out = multi_head_attention(q, k, v, self.heads, false);
        let out = match from_image {
            Some(i) => out + i,
            None => out,
        };
        self.to_out.forward(out)
    }
}

/// `WanTransformerBlock`.
#[derive(Debug, Clone)]
pub struct WanTransformerBlock {
    attn1: WanAttention,
    attn2: WanAttention,
    norm2: Option<LayerNorm>,
    ffn_in: Linear,
    ffn_out: Linear,
    /// [6, dim] in f32: shift, scale, gate of the self-attention, then of the feed-forward.
    scale_shift_table: Tensor<2>,
    eps: f64,
}

impl WanTransformerBlock {
    fn load(vb: &Vb, c: &WanTransformerConfig) -> Result<Self, LoadError> {
        let dim = c.inner_dim();
        let heads = c.num_attention_heads;
        let ffn = vb.pp("ffn").pp("net");
        Ok(Self {
            attn1: WanAttention::load(&vb.pp("attn1"), dim, heads, c.eps, None)?,
            attn2: WanAttention::load(&vb.pp("attn2"), dim, heads, c.eps, c.added_kv_proj_dim)?,
            norm2: if c.cross_attn_norm { Some(LayerNorm::load(&vb.pp("norm2"), dim, c.eps)?) } else { None },
            ffn_in: Linear::load(&ffn.pp(0).pp("proj"), dim, c.ffn_dim, true)?,
            ffn_out: Linear::load(&ffn.pp(2), c.ffn_dim, dim, true)?,
            scale_shift_table: vb.get_f32("scale_shift_table", [1, 6, dim])?.squeeze_dim(0),
            eps: c.eps,
        })
    }

    /// A copy on `device` (block swap).
    pub fn to_device(&self, device: &Device) -> Self {
        Self {
            attn1: self.attn1.to_device(device),
            attn2: self.attn2.to_device(device),
            norm2: self.norm2.as_ref().map(|n| n.to_device(device)),
            ffn_in: self.ffn_in.to_device(device),
            ffn_out: self.ffn_out.to_device(device),
            scale_shift_table: self.scale_shift_table.clone().to_device(device),
            eps: self.eps,
        }
    }

    /// `x` [B, N, dim]; `text` [B, L, dim] (already through the text embedder); `modulation`
    /// [B, 6, dim] in f32 (the time projection); `image` [B, T, dim], the embedded image tokens
    /// of an image model.
    pub fn forward(
        &self,
        x: Tensor<3>,
        text: &Tensor<3>,
        modulation: &Tensor<3>,
        rotary: &Rotary,
        image: Option<&Tensor<3>>,
    ) -> Tensor<3> {
        let dtype = x.dtype();
        let [b, _, dim] = modulation.dims();
        let m = self.scale_shift_table.clone().unsqueeze::<3>() + modulation.clone();
        let part = |i: usize| m.clone().slice([0..b, i..i + 1, 0..dim]);
        let (shift, scale, gate) = (part(0), part(1), part(2));
        let (c_shift, c_scale, c_gate) = (part(3), part(4), part(5));

        let h = (plain_layer_norm(x.clone(), self.eps) * (scale + 1.0) + shift).cast(dtype);
        let attn = self.attn1.forward(h, None, Some(rotary), None);
        let x = (x.cast(DType::F32) + attn.cast(DType::F32) * gate).cast(dtype);

        let h = match &self.norm2 {
            Some(norm) => norm.forward(x.clone()),
            None => x.clone(),
        };
        let x = x + self.attn2.forward(h, Some(text), None, image);

        let h = (plain_layer_norm(x.clone(), self.eps) * (c_scale + 1.0) + c_shift).cast(dtype);
        let ff = self.ffn_out.forward(Activation::GeluTanh.forward(self.ffn_in.forward(h)));
        (x.cast(DType::F32) + ff.cast(DType::F32) * c_gate).cast(dtype)
    }
}

/// `condition_embedder.image_embedder` (`WanImageEmbedding`): an image encoder's tokens
/// through a norm, a GELU feed-forward to the model's width and a norm (the norms in f32, with
/// torch's default eps), after position embeddings over two pictures' tokens where it has them.
#[derive(Debug, Clone)]
pub struct WanImageEmbedding {
    norm1: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    norm2: LayerNorm,
    /// [2 x tokens per picture, image_dim], in f32.
    pos_embed: Option<Tensor<2>>,
    dtype: DType,
}

/// `FP32LayerNorm`'s eps (torch's `LayerNorm` default).
const FP32_LAYER_NORM_EPS: f64 = 1e-5;

impl WanImageEmbedding {
    fn load(vb: &Vb, image_dim: usize, dim: usize, positions: Option<usize>) -> Result<Self, LoadError> {
        let ff = vb.pp("ff").pp("net");
        Ok(Self {
            norm1: LayerNorm::load(&vb.pp("norm1"), image_dim, FP32_LAYER_NORM_EPS)?,
            ff_in: Linear::load(&ff.pp(0).pp("proj"), image_dim, image_dim, true)?,
            ff_out: Linear::load(&ff.pp(2), image_dim, dim, true)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), dim, FP32_LAYER_NORM_EPS)?,
            pos_embed: match positions {
                Some(n) => Some(vb.get_f32("pos_embed", [1, n, image_dim])?.squeeze_dim(0)),
                None => None,
            },
            dtype: vb.weights.dtype,
        })
    }

    /// Tokens [pictures, T, image_dim] -> [1 (two pictures in one with positions), T', dim].
    pub fn forward(&self, tokens: Tensor<3>) -> Tensor<3> {
        let dtype = self.dtype;
        let x = match &self.pos_embed {
            Some(pos) => {
                let [_, _, d] = tokens.dims();
                let [n, _] = pos.dims();
                tokens.cast(DType::F32).reshape([1, n, d]) + pos.clone().unsqueeze_dim::<3>(0)
            }
            None => tokens.cast(DType::F32),
        };
        let h = self.norm1.forward(x).cast(dtype);
        let h = self.ff_out.forward(Activation::Gelu.forward(self.ff_in.forward(h)));
        self.norm2.forward(h.cast(DType::F32)).cast(dtype)
    }

    /// Tokens per call it takes: two pictures' with positions, else one's (`None`: any).
    pub fn tokens(&self) -> Option<usize> {
        self.pos_embed.as_ref().map(|p| p.dims()[0])
    }
}

/// The timestep's embeddings: `temb` [B, dim] and the blocks' modulation [B, 6, dim], in f32.
pub struct TimeEmbeddings {
    pub temb: Tensor<2>,
    pub modulation: Tensor<3>,
}

#[derive(Debug, Clone)]
pub struct WanTransformer3DModel {
    pub config: WanTransformerConfig,
    /// `patch_embedding` as a matrix [C * pt * ph * pw, dim] over flattened patches.
    patch_weight: Tensor<2>,
    patch_bias: Tensor<1>,
    time_embedder: TimestepEmbedding,
    time_proj: Linear,
    text_linear_1: Linear,
    text_linear_2: Linear,
    pub image_embedder: Option<WanImageEmbedding>,
    pub blocks: Vec<WanTransformerBlock>,
    /// Blocks from this index on are kept in host memory and copied to the model's device for
    /// each pass (block swap); `blocks.len()` when all are on the device.
    gpu_blocks: usize,
    proj_out: Linear,
    /// [2, dim] in f32: shift and scale of the output norm.
    scale_shift_table: Tensor<2>,
    dtype: DType,
}

impl WanTransformer3DModel {
    pub fn load(vb: &Vb, config: &WanTransformerConfig) -> Result<Self, LoadError> {
        let c = config;
        let dim = c.inner_dim();
        let [pt, ph, pw] = c.patch_size;
        let pe = vb.pp("patch_embedding");
        let ce = vb.pp("condition_embedder");
        let text = ce.pp("text_embedder");
        // The time embedder stays in f32 (diffusers keeps it there): a scope over f32 weights
        // would need a second Weights, so its layers are built from f32 tensors here.
        let time_embedder = {
            let te = ce.pp("time_embedder");
            TimestepEmbedding::from_linears(
                Linear::from_tensors(
                    te.pp("linear_1").get_f32("weight", [dim, c.freq_dim])?,
                    Some(te.pp("linear_1").get_f32("bias", [dim])?),
                ),
                Linear::from_tensors(
                    te.pp("linear_2").get_f32("weight", [dim, dim])?,
                    Some(te.pp("linear_2").get_f32("bias", [dim])?),
                ),
            )
        };
        Ok(Self {
            config: c.clone(),
            // Flattened by its own dims (a shapes-only check gives a one-element placeholder).
            patch_weight: pe.get::<5>("weight", [dim, c.in_channels, pt, ph, pw])?.flatten::<2>(1, 4).transpose(),
            patch_bias: pe.get("bias", [dim])?,
            time_embedder,
            time_proj: Linear::load(&ce.pp("time_proj"), dim, 6 * dim, true)?,
            text_linear_1: Linear::load(&text.pp("linear_1"), c.text_dim, dim, true)?,
            text_linear_2: Linear::load(&text.pp("linear_2"), dim, dim, true)?,
            image_embedder: match c.image_dim {
                Some(image_dim) => {
                    Some(WanImageEmbedding::load(&ce.pp("image_embedder"), image_dim, dim, c.pos_embed_seq_len)?)
                }
                None => None,
            },
            blocks: (0..c.num_layers)
                .map(|i| WanTransformerBlock::load(&vb.pp("blocks").pp(i), c))
                .collect::<Result<_, _>>()?,
            gpu_blocks: c.num_layers,
            proj_out: Linear::load(&vb.pp("proj_out"), dim, c.out_channels() * pt * ph * pw, true)?,
            scale_shift_table: vb.get_f32("scale_shift_table", [1, 2, dim])?.squeeze_dim(0),
            dtype: vb.weights.dtype,
        })
    }

    /// Block swap: keeps the first `gpu_blocks` blocks on the model's device and moves the rest
    /// to `host` (the CPU), from where each pass copies them over one at a time, the next while
    /// the current one computes where the backend queues work. Frees their device memory.
    pub fn swap_blocks(&mut self, gpu_blocks: usize, host: &Device) {
        self.gpu_blocks = gpu_blocks.min(self.blocks.len());
        for block in &mut self.blocks[self.gpu_blocks..] {
            *block = block.to_device(host);
        }
    }

    /// Blocks kept on the model's device.
    pub fn gpu_blocks(&self) -> usize {
        self.gpu_blocks
    }

    /// The token grid (frames, rows, columns) of a latent of `[frames, height, width]`, or why
    /// it does not fit the model.
    pub fn grid(&self, [frames, height, width]: [usize; 3]) -> Result<[usize; 3], String> {
        let [pt, ph, pw] = self.config.patch_size;
        if frames % pt != 0 || height % ph != 0 || width % pw != 0 {
            return Err(format!("latent {frames}x{height}x{width} is not a whole number of {pt}x{ph}x{pw} patches"));
        }
        let grid = [frames / pt, height / ph, width / pw];
        let max = self.config.rope_max_seq_len;
        if grid.iter().any(|&g| g > max) {
            return Err(format!("{grid:?} patches exceed the rotary table's {max} positions"));
        }
        Ok(grid)
    }

    /// `condition_embedder.text_embedder`: text-encoder states [B, L, text_dim] -> [B, L, dim].
    /// Constant over the steps, so the pipeline runs it once per prompt.
    pub fn embed_text(&self, text: Tensor<3>) -> Tensor<3> {
        let h = self.text_linear_1.forward(text.cast(self.dtype));
        self.text_linear_2.forward(Activation::GeluTanh.forward(h))
    }

    /// The timestep embeddings (one timestep per batch item).
    pub fn embed_time(&self, timesteps: &[f32], device: &Device) -> TimeEmbeddings {
        let dim = self.config.inner_dim();
        let features = timestep_features(timesteps, self.config.freq_dim, true, 0.0, device);
        let temb = self.time_embedder.forward(features);
        // diffusers casts temb to the model dtype before the projection.
        let temb = temb.cast(self.dtype);
        let modulation = self.time_proj.forward(silu(temb.clone())).cast(DType::F32).reshape([timesteps.len(), 6, dim]);
        TimeEmbeddings { temb: temb.cast(DType::F32), modulation }
    }

    /// `patch_embedding` then flatten: [B, C, F, H, W] -> [B, tokens, dim].
    pub fn patchify(&self, x: Tensor<5>) -> Tensor<3> {
        let [b, c, f, h, w] = x.dims();
        let [pt, ph, pw] = self.config.patch_size;
        let (gf, gh, gw) = (f / pt, h / ph, w / pw);
        let patches = x
            .cast(self.dtype)
            .reshape([b, c, gf, pt, gh, ph, gw, pw])
            .permute([0, 2, 4, 6, 1, 3, 5, 7])
            .reshape([b, gf * gh * gw, c * pt * ph * pw]);
        patches.matmul(self.patch_weight.clone().unsqueeze::<3>()) + self.patch_bias.clone().unsqueeze::<3>()
    }

    /// The output norm, `proj_out` and unpatchify: [B, tokens, dim] -> [B, C_out, F, H, W].
    pub fn unpatchify(&self, x: Tensor<3>, temb: &Tensor<2>, grid: [usize; 3]) -> Tensor<5> {
        let [b, _, dim] = x.dims();
        let dtype = x.dtype();
        let m = self.scale_shift_table.clone().unsqueeze::<3>() + temb.clone().unsqueeze_dim::<3>(1);
        let shift = m.clone().slice([0..b, 0..1, 0..dim]);
        let scale = m.slice([0..b, 1..2, 0..dim]);
        let x = (plain_layer_norm(x, self.config.eps) * (scale + 1.0) + shift).cast(dtype);
        let x = self.proj_out.forward(x);
        let [gf, gh, gw] = grid;
        let [pt, ph, pw] = self.config.patch_size;
        let c = self.config.out_channels();
        x.reshape([b, gf, gh, gw, pt, ph, pw, c]).permute([0, 7, 1, 4, 2, 5, 3, 6]).reshape([
            b,
            c,
            gf * pt,
            gh * ph,
            gw * pw,
        ])
    }

    /// The whole model on latents [B, C, F, H, W] at `timesteps` (one per item), with `text`
    /// already through [`Self::embed_text`], an image model's `image` tokens through
    /// [`WanImageEmbedding::forward`], and the grid's [`Rotary`] table. Panics when the latent
    /// does not fit (check with [`Self::grid`] first).
    pub fn forward(
        &self,
        x: Tensor<5>,
        timesteps: &[f32],
        text: &Tensor<3>,
        rotary: &Rotary,
        image: Option<&Tensor<3>>,
    ) -> Tensor<5> {
        let [_, _, f, h, w] = x.dims();
        let grid = self.grid([f, h, w]).unwrap_or_else(|e| panic!("{e}"));
        let device = x.device();
        let time = self.embed_time(timesteps, &device);
        let mut tokens = self.patchify(x);
        let swapped =
            |i: usize| (i >= self.gpu_blocks && i < self.blocks.len()).then(|| self.blocks[i].to_device(&device));
        let mut next = swapped(self.gpu_blocks);
        for (i, block) in self.blocks.iter().enumerate() {
            if i < self.gpu_blocks {
                tokens = block.forward(tokens, text, &time.modulation, rotary, image);
            } else {
                let here = next.take().expect("the swapped block is copied ahead");
                // The next block's copy is issued before this one computes.
                next = swapped(i + 1);
                tokens = here.forward(tokens, text, &time.modulation, rotary, image);
            }
        }
        self.unpatchify(tokens, &time.temb, grid).cast(DType::F32)
    }
}
