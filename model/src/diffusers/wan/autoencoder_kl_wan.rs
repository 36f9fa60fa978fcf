//! diffusers' `AutoencoderKLWan` (Wan 2.1's causal 3D VAE), driven by `vae/config.json`.
//!
//! Every temporal operation is causal: a [`WanCausalConv3d`] pads time only at the front, so an
//! output frame sees its own input frame and earlier ones. That lets diffusers run the VAE in
//! chunks of time, and its outputs depend on that chunking, so this port reproduces it exactly:
//!
//! - [`AutoencoderKLWan::encode`] runs the encoder on the first frame alone, then on chunks of
//!   four frames; each chunk becomes one latent frame (the two time-downsampling resamples halve
//!   4 frames to 1, and keep a single frame as it is).
//! - [`AutoencoderKLWan::decode_each`] runs the decoder on one latent frame at a time; the two
//!   time-upsampling resamples turn every latent frame after the first into 4 frames, and leave
//!   the first one a single frame.
//!
//! Between chunks a [`FeatCache`] carries each causal convolution's last [`CACHE_T`] input
//! frames (diffusers' `feat_cache`), in the order the convolutions run (diffusers' `feat_idx`):
//! the next chunk's convolution reads them in place of its zero padding. Modules own nothing
//! mutable; the cache is passed by `&mut` through every `forward`, starts empty at each encode
//! and decode, and [`FeatCache::next_chunk`] rewinds it to the first convolution before each
//! chunk. The cache's subtle cases follow diffusers line by line:
//!
//! - a chunk shorter than two frames caches the previous cache's last frame before its own;
//! - an upsampling resample's first chunk skips the time convolution and marks its slot
//!   ("Rep"); the next chunk's time convolution then pads with zeros rather than reading a cache;
//! - a downsampling resample's first chunk stores its output and skips the time convolution;
//!   later chunks prepend the previous chunk's last frame and convolve with stride 2.
//!
//! Convolutions and attention run in the weights' dtype (`Weights::dtype`, F32 or F16); the RMS
//! norms are computed in f32. Memory stays bounded by one chunk plus the caches (two frames
//! per convolution), so a 480x832 video of 81 frames decodes one latent frame at a time.
//!
//! Wan 2.2's residual variant (`is_residual`), patchified inputs (`patch_size` > 1) and
//! attention inside the encoder's down blocks (`attn_scales`) are refused at load.

use crate::diffusers::common::blocks::multi_head_attention;
use crate::diffusers::common::config::read_json;
use crate::diffusers::common::layers::Conv2d;
use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::silu;
use burn::tensor::module::{conv3d, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, PadMode};
use serde::Deserialize;
use std::path::Path;

/// Frames of its input each causal convolution keeps for the next chunk (diffusers' `CACHE_T`).
pub const CACHE_T: usize = 2;

/// `vae/config.json`, with diffusers' `AutoencoderKLWan.__init__` defaults (Wan 2.1's VAE).
#[derive(Debug, Clone, Deserialize)]
pub struct WanVaeConfig {
    #[serde(default = "default_base_dim")]
    pub base_dim: usize,
    /// The decoder's base width when it differs from the encoder's (`null`: `base_dim`).
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    #[serde(default = "default_z_dim")]
    pub z_dim: usize,
    #[serde(default = "default_dim_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "default_num_res_blocks")]
    pub num_res_blocks: usize,
    /// Encoder levels with attention after their residual blocks; only `[]` is implemented
    /// (diffusers' own encoder cannot run them either).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Per level but the last: whether the encoder halves time there (diffusers' spelling).
    /// The decoder doubles time at the mirrored levels.
    #[serde(default = "default_temperal_downsample")]
    pub temperal_downsample: Vec<bool>,
    /// Training only: inference never drops anything.
    #[serde(default)]
    pub dropout: f64,
    /// Per latent channel statistics: the pipeline gives the decoder `z * std + mean`.
    #[serde(default = "default_latents_mean")]
    pub latents_mean: Vec<f32>,
    #[serde(default = "default_latents_std")]
    pub latents_std: Vec<f32>,
    /// Wan 2.2's residual down/up blocks; only `false` is implemented.
    #[serde(default)]
    pub is_residual: bool,
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    #[serde(default = "default_channels")]
    pub out_channels: usize,
    /// Wan 2.2's pixel patchify; only `null` (or 1, the identity) is implemented.
    #[serde(default)]
    pub patch_size: Option<usize>,
}

fn default_base_dim() -> usize {
    96
}
fn default_z_dim() -> usize {
    16
}
fn default_dim_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_num_res_blocks() -> usize {
    2
}
fn default_temperal_downsample() -> Vec<bool> {
    vec![false, true, true]
}
fn default_channels() -> usize {
    3
}
fn default_latents_mean() -> Vec<f32> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922,
        -0.9497, 0.2503, -0.2921,
    ]
}
fn default_latents_std() -> Vec<f32> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253,
        2.8251, 1.9160,
    ]
}

impl WanVaeConfig {
    /// Reads and checks `vae/config.json`. Stated `scale_factor_temporal` / `scale_factor_spatial`
    /// must agree with the architecture.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let raw: serde_json::Value = read_json(path)?;
        let config: Self = serde_json::from_value(raw.clone())
            .map_err(|e| LoadError::File { path: path.into(), message: format!("invalid config: {e}") })?;
        config.check(path)?;
        for (key, implied) in [
            ("scale_factor_temporal", config.scale_factor_temporal()),
            ("scale_factor_spatial", config.scale_factor_spatial()),
        ] {
            match raw.get(key) {
                None => {}
                Some(v) if v.is_null() || v.as_u64() == Some(implied as u64) => {}
                Some(v) => return Err(LoadError::config(path, key, v, &format!("the architecture implies {implied}"))),
            }
        }
        Ok(config)
    }

    /// Refuses settings this port does not implement and inconsistent sizes (`path` names the
    /// config in errors).
    pub fn check(&self, path: &Path) -> Result<(), LoadError> {
        let err = |key: &str, value: &dyn std::fmt::Display, why: &str| Err(LoadError::config(path, key, value, why));
        if self.is_residual {
            return err("is_residual", &true, "Wan 2.2's residual blocks are not implemented");
        }
        if !self.attn_scales.is_empty() {
            return err("attn_scales", &format!("{:?}", self.attn_scales), "only [] is implemented");
        }
        if let Some(p) = self.patch_size.filter(|&p| p != 1) {
            return err("patch_size", &p, "patchified inputs are not implemented");
        }
        if self.dim_mult.is_empty() || self.dim_mult.contains(&0) {
            return err(
                "dim_mult",
                &format!("{:?}", self.dim_mult),
                "needs at least one level, all multipliers positive",
            );
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return err(
                "temperal_downsample",
                &format!("{:?}", self.temperal_downsample),
                &format!("needs one entry per level but the last ({})", self.dim_mult.len() - 1),
            );
        }
        for (key, width) in [("base_dim", Some(self.base_dim)), ("decoder_base_dim", self.decoder_base_dim)] {
            if let Some(w) = width.filter(|&w| w < 2) {
                return err(key, &w, "must be at least 2 (the decoder's upsamplers halve the width)");
            }
        }
        for (key, value) in [
            ("z_dim", self.z_dim),
            ("num_res_blocks", self.num_res_blocks),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
        ] {
            if value == 0 {
                return err(key, &value, "must be positive");
            }
        }
        for (key, list) in [("latents_mean", &self.latents_mean), ("latents_std", &self.latents_std)] {
            if list.len() != self.z_dim {
                return err(
                    key,
                    &format!("{} values", list.len()),
                    &format!("needs one value per latent channel (z_dim = {})", self.z_dim),
                );
            }
        }
        Ok(())
    }

    /// Frames per latent frame after the first: 2 to the number of time-halving levels (4).
    pub fn scale_factor_temporal(&self) -> usize {
        1 << self.temperal_downsample.iter().filter(|t| **t).count()
    }

    /// Pixels per latent pixel along each side: 2 per level but the last (8).
    pub fn scale_factor_spatial(&self) -> usize {
        1 << self.dim_mult.len().saturating_sub(1)
    }
}

/// One causal convolution's memory in a [`FeatCache`].
// A few dozen slots per cache: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Slot {
    /// Not visited yet (diffusers' `None`).
    Empty,
    /// An upsampling resample's first chunk went by without its time convolution (diffusers'
    /// `"Rep"`).
    Rep,
    /// The last frames of the previous chunk's input.
    Frames(Tensor<5>),
}

/// The causal convolutions' memory between chunks: one slot per cached convolution, in the
/// order they run within a chunk (diffusers' `feat_cache` list and `feat_idx` counter).
///
/// A fresh cache is empty, as diffusers' `clear_cache` leaves it; call [`FeatCache::next_chunk`]
/// before running each chunk through a module (including the first).
#[derive(Debug, Default)]
pub struct FeatCache {
    slots: Vec<Slot>,
    next: usize,
}

impl FeatCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rewinds to the first convolution's slot, keeping what every slot holds.
    pub fn next_chunk(&mut self) {
        self.next = 0;
    }

    /// The next convolution's slot (grown on first use).
    fn slot(&mut self) -> &mut Slot {
        if self.next == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.next += 1;
        &mut self.slots[self.next - 1]
    }
}

/// The last `n` frames (fewer when the chunk is shorter) of [B, C, T, H, W].
fn last_frames(x: &Tensor<5>, n: usize) -> Tensor<5> {
    let t = x.dims()[2];
    let n = n.min(t);
    x.clone().narrow(2, t - n, n)
}

/// The last `n` frames of `x` (all when shorter) for a cache, in a buffer of their own when
/// they are not all of `x`: a slice is a view, and caching it would keep the whole chunk alive
/// until the next one (diffusers `.clone()`s them for the same reason).
fn frames_for_cache(x: &Tensor<5>, n: usize) -> Tensor<5> {
    if x.dims()[2] <= n {
        return x.clone();
    }
    let part = last_frames(x, n);
    let dims = part.dims();
    Tensor::empty(dims, (&part.device(), part.dtype())).slice_assign(dims.map(|d| 0..d), part)
}

/// What a cached convolution keeps of its input `x` for the next chunk: the last [`CACHE_T`]
/// frames, topped up with the last frame of `previous` when the chunk is a single frame.
fn frames_to_keep(x: &Tensor<5>, previous: Option<&Tensor<5>>) -> Tensor<5> {
    let keep = frames_for_cache(x, CACHE_T);
    match previous {
        Some(p) if keep.dims()[2] < CACHE_T => Tensor::cat(vec![last_frames(p, 1), keep], 2),
        _ => keep,
    }
}

/// `WanCausalConv3d`: a 3D convolution padded symmetrically in space and with `2 * pad` frames
/// in front in time, which the previous chunk's cached frames replace.
#[derive(Debug, Clone)]
pub struct WanCausalConv3d {
    weight: Tensor<5>,
    bias: Tensor<1>,
    stride: [usize; 3],
    /// Zero frames in front (`2 * padding[0]`).
    time_pad: usize,
    /// Symmetric (height, width) padding.
    space_pad: [usize; 2],
}

impl WanCausalConv3d {
    fn load(
        vb: &Vb,
        inp: usize,
        out: usize,
        kernel: [usize; 3],
        stride_t: usize,
        padding: [usize; 3],
    ) -> Result<Self, LoadError> {
        let [kt, kh, kw] = kernel;
        Ok(Self {
            weight: vb.get("weight", [out, inp, kt, kh, kw])?,
            bias: vb.get("bias", [out])?,
            stride: [stride_t, 1, 1],
            time_pad: 2 * padding[0],
            space_pad: [padding[1], padding[2]],
        })
    }

    /// The `k`x`k`x`k` convolution of residual blocks and stems (`k` 3 pads by 1, `k` 1 by 0).
    fn load_cube(vb: &Vb, inp: usize, out: usize, k: usize) -> Result<Self, LoadError> {
        Self::load(vb, inp, out, [k; 3], 1, [k / 2; 3])
    }

    /// [B, C, T, H, W] -> [B, out, T', H', W'], with `cache` (the previous chunk's last frames)
    /// standing in for the front time padding. Convolutions without time padding ignore it.
    pub fn forward(&self, x: Tensor<5>, cache: Option<Tensor<5>>) -> Tensor<5> {
        let (x, front) = match cache {
            Some(c) if self.time_pad > 0 => {
                // More cached frames than padding would be cropped, as diffusers' negative pad does.
                let c = last_frames(&c, self.time_pad);
                let front = self.time_pad - c.dims()[2];
                (Tensor::cat(vec![c, x], 2), front)
            }
            _ => (x, self.time_pad),
        };
        let x = if front > 0 { x.pad([(front, 0), (0, 0), (0, 0)], PadMode::Constant(0.0)) } else { x };
        let [ph, pw] = self.space_pad;
        let options = ConvOptions::new(self.stride, [0, ph, pw], [1, 1, 1], 1);
        conv3d(x, self.weight.clone(), Some(self.bias.clone()), options)
    }

    /// [`Self::forward`] on the next slot of `cache`, which then keeps this chunk's last frames.
    pub fn forward_cached(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let slot = cache.slot();
        let previous = match std::mem::replace(slot, Slot::Empty) {
            Slot::Frames(p) => Some(p),
            Slot::Empty | Slot::Rep => None,
        };
        *slot = Slot::Frames(frames_to_keep(&x, previous.as_ref()));
        self.forward(x, previous)
    }
}

/// `WanRMS_norm` without bias (as every norm of this VAE): each position's channel vector
/// L2-normalised, times `sqrt(dim) * gamma`. Computed in f32.
#[derive(Debug, Clone)]
pub struct WanRmsNorm {
    /// `sqrt(dim) * gamma`, f32, [dim].
    scale: Tensor<1>,
}

impl WanRmsNorm {
    /// `images`: gamma is [dim, 1, 1] (2D feature maps), otherwise [dim, 1, 1, 1].
    fn load(vb: &Vb, dim: usize, images: bool) -> Result<Self, LoadError> {
        // Flattened rather than reshaped: a names-and-shapes-only placeholder has one element.
        let gamma: Tensor<1> = if images {
            vb.get("gamma", [dim, 1, 1])?.flatten(0, 2)
        } else {
            vb.get("gamma", [dim, 1, 1, 1])?.flatten(0, 3)
        };
        Ok(Self { scale: gamma.cast(DType::F32) * (dim as f64).sqrt() })
    }

    /// Normalises [B, C, ...] over C.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        let mut shape = [1; D];
        shape[1] = self.scale.dims()[0];
        (x / norm * self.scale.clone().reshape(shape)).cast(dtype)
    }
}

/// `WanResidualBlock`: two (RMS norm, SiLU, causal 3x3x3 conv) layers and a shortcut (a 1x1x1
/// conv when the width changes, never cached).
#[derive(Debug, Clone)]
pub struct WanResidualBlock {
    norm1: WanRmsNorm,
    conv1: WanCausalConv3d,
    norm2: WanRmsNorm,
    conv2: WanCausalConv3d,
    conv_shortcut: Option<WanCausalConv3d>,
}

impl WanResidualBlock {
    fn load(vb: &Vb, inp: usize, out: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: WanRmsNorm::load(&vb.pp("norm1"), inp, false)?,
            conv1: WanCausalConv3d::load_cube(&vb.pp("conv1"), inp, out, 3)?,
            norm2: WanRmsNorm::load(&vb.pp("norm2"), out, false)?,
            conv2: WanCausalConv3d::load_cube(&vb.pp("conv2"), out, out, 3)?,
            conv_shortcut: if inp != out {
                Some(WanCausalConv3d::load_cube(&vb.pp("conv_shortcut"), inp, out, 1)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x.clone(), None),
            None => x.clone(),
        };
        let h = self.conv1.forward_cached(silu(self.norm1.forward(x)), cache);
        let h = self.conv2.forward_cached(silu(self.norm2.forward(h)), cache);
        h + skip
    }
}

/// `WanAttentionBlock`: single-head self-attention over each frame's pixels (frames never see
/// each other), with an RMS norm, a 1x1 `to_qkv` conv, a 1x1 `proj` conv and a residual.
#[derive(Debug, Clone)]
pub struct WanAttentionBlock {
    norm: WanRmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
}

impl WanAttentionBlock {
    fn load(vb: &Vb, dim: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm: WanRmsNorm::load(&vb.pp("norm"), dim, true)?,
            to_qkv: Conv2d::load(&vb.pp("to_qkv"), dim, dim * 3, 1, 1, 0)?,
            proj: Conv2d::load(&vb.pp("proj"), dim, dim, 1, 1, 0)?,
        })
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, c, t, h, w] = x.dims();
        let frames = to_frames(x.clone());
        let qkv = self.to_qkv.forward(self.norm.forward(frames)).reshape([b * t, 3 * c, h * w]).swap_dims(1, 2);
        let mut parts = qkv.chunk(3, 2);
        let v = parts.pop().expect("three parts");
        let k = parts.pop().expect("three parts");
        let q = parts.pop().expect("three parts");
        let out = multi_head_attention(q, k, v, 1, false).swap_dims(1, 2).reshape([b * t, c, h, w]);
        from_frames(self.proj.forward(out), b) + x
    }
}

/// [B, C, T, H, W] -> [B * T, C, H, W].
fn to_frames(x: Tensor<5>) -> Tensor<4> {
    let [b, c, t, h, w] = x.dims();
    x.swap_dims(1, 2).reshape([b * t, c, h, w])
}

/// [B * T, C, H, W] -> [B, C, T, H, W].
fn from_frames(x: Tensor<4>, b: usize) -> Tensor<5> {
    let [bt, c, h, w] = x.dims();
    x.reshape([b, bt / b, c, h, w]).swap_dims(1, 2)
}

/// `WanMidBlock` with one layer: residual block, attention, residual block.
#[derive(Debug, Clone)]
pub struct WanMidBlock {
    resnets: [WanResidualBlock; 2],
    attention: WanAttentionBlock,
}

impl WanMidBlock {
    fn load(vb: &Vb, dim: usize) -> Result<Self, LoadError> {
        let resnet = |i: usize| WanResidualBlock::load(&vb.pp("resnets").pp(i), dim, dim);
        Ok(Self {
            resnets: [resnet(0)?, resnet(1)?],
            attention: WanAttentionBlock::load(&vb.pp("attentions").pp(0), dim)?,
        })
    }

    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let x = self.resnets[0].forward(x, cache);
        let x = self.attention.forward(x);
        self.resnets[1].forward(x, cache)
    }
}

/// `WanResample`'s modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleMode {
    /// Nearest 2x in space, then a 3x3 conv to half the width.
    Upsample2d,
    /// A causal time conv to twice the width, whose two halves become two frames each, then
    /// as `Upsample2d`.
    Upsample3d,
    /// A 3x3 conv with stride 2 after zero padding the bottom and right by one.
    Downsample2d,
    /// As `Downsample2d`, then a causal time conv with stride 2.
    Downsample3d,
}

/// `WanResample`: spatial up- or downsampling of each frame (`resample.1`), with a time
/// convolution (`time_conv`) in the 3D modes.
#[derive(Debug, Clone)]
pub struct WanResample {
    mode: ResampleMode,
    resample: Conv2d,
    time_conv: Option<WanCausalConv3d>,
}

impl WanResample {
    /// The upsampling modes halve the width (`WanUpBlock` keeps diffusers' default).
    fn load(vb: &Vb, dim: usize, mode: ResampleMode) -> Result<Self, LoadError> {
        let conv = vb.pp("resample").pp(1);
        let time = vb.pp("time_conv");
        Ok(match mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => Self {
                mode,
                resample: Conv2d::load(&conv, dim, dim / 2, 3, 1, 1)?,
                time_conv: if mode == ResampleMode::Upsample3d {
                    Some(WanCausalConv3d::load(&time, dim, dim * 2, [3, 1, 1], 1, [1, 0, 0])?)
                } else {
                    None
                },
            },
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => Self {
                mode,
                resample: Conv2d::load(&conv, dim, dim, 3, 2, 0)?,
                time_conv: if mode == ResampleMode::Downsample3d {
                    Some(WanCausalConv3d::load(&time, dim, dim, [3, 1, 1], 2, [0, 0, 0])?)
                } else {
                    None
                },
            },
        })
    }

    pub fn mode(&self) -> ResampleMode {
        self.mode
    }

    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let x = match (&self.time_conv, self.mode) {
            (Some(time_conv), ResampleMode::Upsample3d) => Self::double_time(time_conv, x, cache),
            _ => x,
        };
        let b = x.dims()[0];
        let frames = to_frames(x);
        let frames = match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                let [_, _, h, w] = frames.dims();
                let options = InterpolateOptions {
                    output_size: Some([h * 2, w * 2]),
                    ..InterpolateOptions::new(InterpolateMode::Nearest)
                };
                self.resample.forward(interpolate(frames, options))
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => {
                self.resample.forward_padded(frames, [(0, 1), (0, 1)])
            }
        };
        let x = from_frames(frames, b);
        match (&self.time_conv, self.mode) {
            (Some(time_conv), ResampleMode::Downsample3d) => Self::halve_time(time_conv, x, cache),
            _ => x,
        }
    }

    /// Upsample3d's time step: from the second chunk on, each frame becomes two (the halves of
    /// the time conv's output, interleaved); the first chunk passes unchanged and marks its slot.
    fn double_time(time_conv: &WanCausalConv3d, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let slot = cache.slot();
        let (previous, keep) = match std::mem::replace(slot, Slot::Empty) {
            Slot::Empty => {
                *slot = Slot::Rep;
                return x;
            }
            Slot::Rep => {
                let keep = frames_for_cache(&x, CACHE_T);
                let keep = if keep.dims()[2] < CACHE_T { Tensor::cat(vec![keep.zeros_like(), keep], 2) } else { keep };
                (None, keep)
            }
            Slot::Frames(p) => {
                let keep = frames_to_keep(&x, Some(&p));
                (Some(p), keep)
            }
        };
        *slot = Slot::Frames(keep);
        let [b, c, t, h, w] = x.dims();
        let y = time_conv.forward(x, previous);
        // Channel half k of time step i becomes frame 2i + k.
        y.reshape([b, 2, c, t, h, w]).permute([0, 2, 3, 1, 4, 5]).reshape([b, c, t * 2, h, w])
    }

    /// Downsample3d's time step: the first chunk is stored whole and passes unchanged; later
    /// chunks get the previous chunk's last frame in front and a stride-2 time conv.
    fn halve_time(time_conv: &WanCausalConv3d, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let slot = cache.slot();
        match std::mem::replace(slot, Slot::Frames(frames_for_cache(&x, 1))) {
            Slot::Frames(p) => time_conv.forward(Tensor::cat(vec![last_frames(&p, 1), x], 2), None),
            Slot::Empty | Slot::Rep => {
                *slot = Slot::Frames(x.clone());
                x
            }
        }
    }
}

/// One entry of the encoder's flat `down_blocks` list.
// Built once per model, a few dozen at most: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum WanDownLayer {
    Residual(WanResidualBlock),
    Resample(WanResample),
}

impl WanDownLayer {
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        match self {
            WanDownLayer::Residual(r) => r.forward(x, cache),
            WanDownLayer::Resample(r) => r.forward(x, cache),
        }
    }
}

/// `WanEncoder3d`: video [B, 3, T, H, W] -> [B, 2 * z_dim, T', H / 8, W / 8] (the moments before
/// `quant_conv`).
#[derive(Debug, Clone)]
pub struct WanEncoder3d {
    pub conv_in: WanCausalConv3d,
    /// Per level: `num_res_blocks` residual blocks, then (but at the last level) a resample.
    pub down_blocks: Vec<WanDownLayer>,
    pub mid_block: WanMidBlock,
    norm_out: WanRmsNorm,
    pub conv_out: WanCausalConv3d,
}

impl WanEncoder3d {
    fn load(vb: &Vb, c: &WanVaeConfig) -> Result<Self, LoadError> {
        let dims: Vec<usize> = std::iter::once(1).chain(c.dim_mult.iter().copied()).map(|m| c.base_dim * m).collect();
        let levels = c.dim_mult.len();
        let mut down_blocks = Vec::new();
        for i in 0..levels {
            let mut inp = dims[i];
            let out = dims[i + 1];
            for _ in 0..c.num_res_blocks {
                down_blocks.push(WanDownLayer::Residual(WanResidualBlock::load(
                    &vb.pp("down_blocks").pp(down_blocks.len()),
                    inp,
                    out,
                )?));
                inp = out;
            }
            if i + 1 < levels {
                let mode =
                    if c.temperal_downsample[i] { ResampleMode::Downsample3d } else { ResampleMode::Downsample2d };
                down_blocks.push(WanDownLayer::Resample(WanResample::load(
                    &vb.pp("down_blocks").pp(down_blocks.len()),
                    out,
                    mode,
                )?));
            }
        }
        let last = dims[levels];
        Ok(Self {
            conv_in: WanCausalConv3d::load_cube(&vb.pp("conv_in"), c.in_channels, dims[0], 3)?,
            down_blocks,
            mid_block: WanMidBlock::load(&vb.pp("mid_block"), last)?,
            norm_out: WanRmsNorm::load(&vb.pp("norm_out"), last, false)?,
            conv_out: WanCausalConv3d::load_cube(&vb.pp("conv_out"), last, c.z_dim * 2, 3)?,
        })
    }

    /// One chunk (call [`FeatCache::next_chunk`] first).
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let mut x = self.conv_in.forward_cached(x, cache);
        for layer in &self.down_blocks {
            x = layer.forward(x, cache);
        }
        let x = self.mid_block.forward(x, cache);
        self.conv_out.forward_cached(silu(self.norm_out.forward(x)), cache)
    }
}

/// `WanUpBlock`: residual blocks, then (but at the last level) a resample.
#[derive(Debug, Clone)]
pub struct WanUpBlock {
    pub resnets: Vec<WanResidualBlock>,
    /// diffusers' `upsamplers.0`.
    pub upsampler: Option<WanResample>,
}

impl WanUpBlock {
    pub fn forward(&self, mut x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        for r in &self.resnets {
            x = r.forward(x, cache);
        }
        match &self.upsampler {
            Some(u) => u.forward(x, cache),
            None => x,
        }
    }
}

/// `WanDecoder3d`: latents [B, z_dim, T, h, w] -> video [B, 3, T', 8h, 8w].
#[derive(Debug, Clone)]
pub struct WanDecoder3d {
    pub conv_in: WanCausalConv3d,
    pub mid_block: WanMidBlock,
    pub up_blocks: Vec<WanUpBlock>,
    norm_out: WanRmsNorm,
    pub conv_out: WanCausalConv3d,
}

impl WanDecoder3d {
    fn load(vb: &Vb, c: &WanVaeConfig) -> Result<Self, LoadError> {
        let base = c.decoder_base_dim.unwrap_or(c.base_dim);
        let levels = c.dim_mult.len();
        let dims: Vec<usize> =
            std::iter::once(c.dim_mult[levels - 1]).chain(c.dim_mult.iter().rev().copied()).map(|m| base * m).collect();
        let mut up_blocks = Vec::new();
        for i in 0..levels {
            let b = vb.pp("up_blocks").pp(i);
            // Every earlier level's upsampler halved the width.
            let mut inp = if i > 0 { dims[i] / 2 } else { dims[i] };
            let out = dims[i + 1];
            let mut resnets = Vec::new();
            for j in 0..=c.num_res_blocks {
                resnets.push(WanResidualBlock::load(&b.pp("resnets").pp(j), inp, out)?);
                inp = out;
            }
            let upsampler = if i + 1 < levels {
                // The decoder mirrors the encoder: level i undoes encoder level (levels - 2 - i).
                let mode = if c.temperal_downsample[levels - 2 - i] {
                    ResampleMode::Upsample3d
                } else {
                    ResampleMode::Upsample2d
                };
                Some(WanResample::load(&b.pp("upsamplers").pp(0), out, mode)?)
            } else {
                None
            };
            up_blocks.push(WanUpBlock { resnets, upsampler });
        }
        let last = dims[levels];
        Ok(Self {
            conv_in: WanCausalConv3d::load_cube(&vb.pp("conv_in"), c.z_dim, dims[0], 3)?,
            mid_block: WanMidBlock::load(&vb.pp("mid_block"), dims[0])?,
            up_blocks,
            norm_out: WanRmsNorm::load(&vb.pp("norm_out"), last, false)?,
            conv_out: WanCausalConv3d::load_cube(&vb.pp("conv_out"), last, c.out_channels, 3)?,
        })
    }

    /// One chunk (call [`FeatCache::next_chunk`] first).
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatCache) -> Tensor<5> {
        let mut x = self.conv_in.forward_cached(x, cache);
        x = self.mid_block.forward(x, cache);
        for b in &self.up_blocks {
            x = b.forward(x, cache);
        }
        self.conv_out.forward_cached(silu(self.norm_out.forward(x)), cache)
    }
}

/// diffusers' `AutoencoderKLWan` (Wan 2.1): encoder, `quant_conv`, `post_quant_conv`, decoder.
#[derive(Debug, Clone)]
pub struct AutoencoderKLWan {
    pub encoder: WanEncoder3d,
    pub quant_conv: WanCausalConv3d,
    pub post_quant_conv: WanCausalConv3d,
    pub decoder: WanDecoder3d,
    pub config: WanVaeConfig,
    /// The compute dtype (the weights' one); inputs are cast to it.
    pub dtype: DType,
}

impl AutoencoderKLWan {
    /// Builds the model under `vb` (the VAE's root scope) from a checked config.
    pub fn load(vb: &Vb, config: &WanVaeConfig) -> Result<Self, LoadError> {
        config.check(Path::new("AutoencoderKLWan config"))?;
        let z = config.z_dim;
        Ok(Self {
            encoder: WanEncoder3d::load(&vb.pp("encoder"), config)?,
            quant_conv: WanCausalConv3d::load_cube(&vb.pp("quant_conv"), 2 * z, 2 * z, 1)?,
            post_quant_conv: WanCausalConv3d::load_cube(&vb.pp("post_quant_conv"), z, z, 1)?,
            decoder: WanDecoder3d::load(&vb.pp("decoder"), config)?,
            config: config.clone(),
            dtype: vb.weights.dtype,
        })
    }

    /// Video [B, 3, F, H, W] in [-1, 1] (F = 4k + 1, H and W multiples of 8) -> the latent
    /// distribution's (mean, log variance), each [B, z_dim, k + 1, H / 8, W / 8]; the log variance
    /// is clamped to [-30, 20] as diffusers' `DiagonalGaussianDistribution` does. As in diffusers,
    /// frames after the last whole chunk of four are ignored.
    pub fn encode(&self, video: Tensor<5>) -> (Tensor<5>, Tensor<5>) {
        let video = video.cast(self.dtype);
        let frames = video.dims()[2];
        assert!(frames > 0, "AutoencoderKLWan::encode: a video needs at least one frame");
        let mut cache = FeatCache::new();
        let chunks = (0..1 + frames.saturating_sub(1) / 4).map(|i| if i == 0 { (0, 1) } else { (1 + 4 * (i - 1), 4) });
        let out = chunks
            .map(|(start, len)| {
                cache.next_chunk();
                self.encoder.forward(video.clone().narrow(2, start, len), &mut cache)
            })
            .collect();
        let moments = self.quant_conv.forward(Tensor::cat(out, 2), None);
        let mut parts = moments.chunk(2, 1);
        let logvar = parts.pop().expect("two halves").clamp(-30.0, 20.0);
        let mean = parts.pop().expect("two halves");
        (mean, logvar)
    }

    /// Latents in the VAE's own scale [B, z_dim, T, h, w] -> video [B, 3, 4 (T - 1) + 1, 8h, 8w],
    /// clamped to [-1, 1].
    pub fn decode(&self, z: Tensor<5>) -> Tensor<5> {
        let mut frames = Vec::new();
        self.decode_each(z, |f| frames.push(f));
        Tensor::cat(frames, 2)
    }

    /// [`Self::decode`] one latent frame at a time: `on_frames` gets each latent frame's decoded
    /// frames [B, 3, n, 8h, 8w] (n = 1 for the first latent frame, 4 after it) as they come,
    /// clamped to [-1, 1], so the whole video never has to be on the device at once.
    pub fn decode_each(&self, z: Tensor<5>, mut on_frames: impl FnMut(Tensor<5>)) {
        let x = self.post_quant_conv.forward(z.cast(self.dtype), None);
        let mut cache = FeatCache::new();
        for i in 0..x.dims()[2] {
            cache.next_chunk();
            on_frames(self.decoder.forward(x.clone().narrow(2, i, 1), &mut cache).clamp(-1.0, 1.0));
        }
    }
}
