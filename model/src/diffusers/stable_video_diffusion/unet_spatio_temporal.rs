//! diffusers' `UNetSpatioTemporalConditionModel` (Stable Video Diffusion), driven by
//! `unet/config.json`.

use crate::diffusers::common::blocks::{Downsample2D, TimestepEmbedding, Upsample2D, timestep_features};
use crate::diffusers::common::config::IntOrList;
use crate::diffusers::common::layers::{Conv2d, GroupNorm};
use crate::diffusers::common::weights::{LoadError, Weights};
use crate::diffusers::stable_video_diffusion::spatio_temporal::{
    SpatioTemporalResBlock, TransformerSpatioTemporalModel,
};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::Deserialize;
use std::path::Path;

fn d8() -> usize {
    8
}
fn d4() -> usize {
    4
}
fn d2() -> IntOrList {
    IntOrList::One(2)
}
fn d1() -> IntOrList {
    IntOrList::One(1)
}
fn d1024() -> IntOrList {
    IntOrList::One(1024)
}
fn d256() -> usize {
    256
}
fn d768() -> usize {
    768
}
fn d25() -> usize {
    25
}
fn heads() -> IntOrList {
    IntOrList::List(vec![5, 10, 20, 20])
}

#[derive(Debug, Clone, Deserialize)]
pub struct UNetSpatioTemporalConfig {
    #[serde(default = "d8")]
    pub in_channels: usize,
    #[serde(default = "d4")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "d2")]
    pub layers_per_block: IntOrList,
    #[serde(default = "d1024")]
    pub cross_attention_dim: IntOrList,
    #[serde(default = "d1")]
    pub transformer_layers_per_block: IntOrList,
    #[serde(default = "heads")]
    pub num_attention_heads: IntOrList,
    #[serde(default = "d256")]
    pub addition_time_embed_dim: usize,
    #[serde(default = "d768")]
    pub projection_class_embeddings_input_dim: usize,
    /// The clip length the model was trained on (the pipeline's default frame count).
    #[serde(default = "d25")]
    pub num_frames: usize,
    #[serde(default)]
    pub sample_size: Option<usize>,
}

impl UNetSpatioTemporalConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let c: Self = crate::diffusers::common::config::read_json(path)?;
        let n = c.block_out_channels.len();
        crate::diffusers::common::config::check_block_lists(
            path,
            n,
            [
                (
                    "down_block_types",
                    &c.down_block_types,
                    &["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
                ),
                ("up_block_types", &c.up_block_types, &["CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"]),
            ],
        )?;
        for (key, v) in [
            ("layers_per_block", &c.layers_per_block),
            ("cross_attention_dim", &c.cross_attention_dim),
            ("num_attention_heads", &c.num_attention_heads),
            ("transformer_layers_per_block", &c.transformer_layers_per_block),
        ] {
            v.per_block(n).map_err(|why| LoadError::config(path, key, v, &why))?;
        }
        let heads = c.num_attention_heads.per_block(n).expect("checked");
        for (i, (&ch, &h)) in c.block_out_channels.iter().zip(&heads).enumerate() {
            if h == 0 || ch % h != 0 {
                return Err(LoadError::config(
                    path,
                    "num_attention_heads",
                    &c.num_attention_heads,
                    &format!("block {i}: {ch} channels do not split into {h} heads"),
                ));
            }
            if ch % 32 != 0 {
                return Err(LoadError::config(
                    path,
                    "block_out_channels",
                    format!("{:?}", c.block_out_channels),
                    "every level needs a multiple of 32 channels (32 norm groups)",
                ));
            }
        }
        if c.projection_class_embeddings_input_dim != 3 * c.addition_time_embed_dim {
            return Err(LoadError::config(
                path,
                "projection_class_embeddings_input_dim",
                c.projection_class_embeddings_input_dim,
                &format!(
                    "must be 3 x addition_time_embed_dim ({}): fps, motion bucket and noise augmentation",
                    c.addition_time_embed_dim
                ),
            ));
        }
        Ok(c)
    }

    /// How much smaller the deepest level is than the latents.
    pub fn down_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

#[derive(Debug, Clone)]
struct Level {
    resnets: Vec<SpatioTemporalResBlock>,
    attentions: Vec<TransformerSpatioTemporalModel>,
    down: Option<Downsample2D>,
    up: Option<Upsample2D>,
}

impl Level {
    fn empty() -> Self {
        Self { resnets: vec![], attentions: vec![], down: None, up: None }
    }
}

#[derive(Debug, Clone)]
pub struct UNetSpatioTemporalConditionModel {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    add_embedding: TimestepEmbedding,
    down_blocks: Vec<Level>,
    mid_block: Level,
    up_blocks: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    pub config: UNetSpatioTemporalConfig,
}

impl UNetSpatioTemporalConditionModel {
    pub fn load(weights: &Weights, c: &UNetSpatioTemporalConfig) -> Result<Self, LoadError> {
        let vb = weights.root();
        let n = c.block_out_channels.len();
        let ch = &c.block_out_channels;
        let temb = ch[0] * 4;
        let heads = c.num_attention_heads.per_block(n).expect("checked");
        let layers = c.layers_per_block.per_block(n).expect("checked");
        let cross = c.cross_attention_dim.per_block(n).expect("checked");
        let tlayers = c.transformer_layers_per_block.per_block(n).expect("checked");
        let resnet = |vb: &crate::diffusers::common::weights::Vb, inp: usize, out: usize, eps: f64| {
            SpatioTemporalResBlock::load(vb, inp, out, Some(temb), eps, eps, false)
        };
        let attn = |vb: &crate::diffusers::common::weights::Vb, channels: usize, level: usize| {
            TransformerSpatioTemporalModel::load(
                vb,
                channels,
                heads[level],
                channels / heads[level],
                tlayers[level],
                cross[level],
            )
        };

        let mut down_blocks = Vec::new();
        let mut prev = ch[0];
        for i in 0..n {
            let b = vb.pp("down_blocks").pp(i);
            let out = ch[i];
            let cross_attn = c.down_block_types[i].starts_with("CrossAttn");
            // diffusers' epsilons: 1e-6 in cross-attention down blocks, 1e-5 in plain ones.
            let eps = if cross_attn { 1e-6 } else { 1e-5 };
            let mut level = Level::empty();
            for j in 0..layers[i] {
                level.resnets.push(resnet(&b.pp("resnets").pp(j), if j == 0 { prev } else { out }, out, eps)?);
                if cross_attn {
                    level.attentions.push(attn(&b.pp("attentions").pp(j), out, i)?);
                }
            }
            if i + 1 < n {
                level.down = Some(Downsample2D::load(&b.pp("downsamplers").pp(0), out, out, 1)?);
            }
            down_blocks.push(level);
            prev = out;
        }

        let m = vb.pp("mid_block");
        let last = ch[n - 1];
        let mid_block = Level {
            resnets: (0..2).map(|j| resnet(&m.pp("resnets").pp(j), last, last, 1e-5)).collect::<Result<_, _>>()?,
            attentions: vec![attn(&m.pp("attentions").pp(0), last, n - 1)?],
            down: None,
            up: None,
        };

        let mut up_blocks = Vec::new();
        let mut prev_out = last;
        for i in 0..n {
            let b = vb.pp("up_blocks").pp(i);
            let rev = n - 1 - i;
            let out = ch[rev];
            let input = ch[rev.saturating_sub(1)];
            let cross_attn = c.up_block_types[i].starts_with("CrossAttn");
            let count = layers[rev] + 1;
            let mut level = Level::empty();
            for j in 0..count {
                let skip = if j == count - 1 { input } else { out };
                let inp = if j == 0 { prev_out } else { out };
                level.resnets.push(resnet(&b.pp("resnets").pp(j), inp + skip, out, 1e-6)?);
                if cross_attn {
                    level.attentions.push(attn(&b.pp("attentions").pp(j), out, rev)?);
                }
            }
            if i + 1 < n {
                level.up = Some(Upsample2D::load(&b.pp("upsamplers").pp(0), out, out)?);
            }
            up_blocks.push(level);
            prev_out = out;
        }

        Ok(Self {
            conv_in: Conv2d::load(&vb.pp("conv_in"), c.in_channels, ch[0], 3, 1, 1)?,
            time_embedding: TimestepEmbedding::load(&vb.pp("time_embedding"), ch[0], temb)?,
            add_embedding: TimestepEmbedding::load(
                &vb.pp("add_embedding"),
                c.projection_class_embeddings_input_dim,
                temb,
            )?,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(&vb.pp("conv_norm_out"), 32, ch[0], 1e-5)?,
            conv_out: Conv2d::load(&vb.pp("conv_out"), ch[0], c.out_channels, 3, 1, 1)?,
            config: c.clone(),
        })
    }

    /// The conditioning embedding per clip: time embedding of `timestep` plus the added-time
    /// embedding of `added_time_ids` (three per clip: fps - 1, motion bucket, noise augmentation).
    pub fn embedding(
        &self,
        timestep: f32,
        added_time_ids: &[[f32; 3]],
        device: &Device,
        dtype: burn::tensor::DType,
    ) -> Tensor<2> {
        let b = added_time_ids.len();
        let c = &self.config;
        let t = timestep_features(&vec![timestep; b], c.block_out_channels[0], true, 0.0, device);
        let emb = self.time_embedding.forward(t.cast(dtype));
        let ids: Vec<f32> = added_time_ids.iter().flatten().copied().collect();
        let add = timestep_features(&ids, c.addition_time_embed_dim, true, 0.0, device)
            .reshape([b, 3 * c.addition_time_embed_dim]);
        emb + self.add_embedding.forward(add.cast(dtype))
    }

    /// Predicts v for `sample` [B, T, C, H, W] at `timestep` given the image embedding [B, L, D]
    /// and the added time ids (one triple per clip).
    pub fn forward(
        &self,
        sample: Tensor<5>,
        timestep: f32,
        context: &Tensor<3>,
        added_time_ids: &[[f32; 3]],
    ) -> Tensor<5> {
        let [b, frames, c, h, w] = sample.dims();
        let emb = self.embedding(timestep, added_time_ids, &sample.device(), sample.dtype());
        let d = emb.dims()[1];
        let emb = emb.unsqueeze_dim::<3>(1).expand([b, frames, d]).reshape([b * frames, d]);
        let x = sample.reshape([b * frames, c, h, w]);
        let out = self.forward_frames(x, &emb, context, frames);
        let [_, oc, oh, ow] = out.dims();
        out.reshape([b, frames, oc, oh, ow])
    }

    fn forward_frames(&self, x: Tensor<4>, emb: &Tensor<2>, context: &Tensor<3>, frames: usize) -> Tensor<4> {
        let mut x = self.conv_in.forward(x);
        let mut skips = vec![x.clone()];
        for level in &self.down_blocks {
            for (j, resnet) in level.resnets.iter().enumerate() {
                x = resnet.forward(x, Some(emb), frames);
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(x, context, frames);
                }
                skips.push(x.clone());
            }
            if let Some(down) = &level.down {
                x = down.forward(x);
                skips.push(x.clone());
            }
        }
        x = self.mid_block(x, emb, context, frames);
        for level in &self.up_blocks {
            for (j, resnet) in level.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up resnet");
                x = resnet.forward(Tensor::cat(vec![x, skip], 1), Some(emb), frames);
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(x, context, frames);
                }
            }
            if let Some(up) = &level.up {
                let size = skips.last().map(|s| [s.dims()[2], s.dims()[3]]);
                x = up.forward(x, size);
            }
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }

    /// The mid block on its own: [B*T, C, H, W] with the per-frame embedding [B*T, D].
    pub fn mid_block(&self, x: Tensor<4>, emb: &Tensor<2>, context: &Tensor<3>, frames: usize) -> Tensor<4> {
        let m = &self.mid_block;
        let x = m.resnets[0].forward(x, Some(emb), frames);
        let x = m.attentions[0].forward(x, context, frames);
        m.resnets[1].forward(x, Some(emb), frames)
    }

    /// Single blocks, for parity tests against diffusers' per-block outputs.
    pub fn down_resnet(&self, block: usize, layer: usize) -> &SpatioTemporalResBlock {
        &self.down_blocks[block].resnets[layer]
    }
    pub fn down_attention(&self, block: usize, layer: usize) -> &TransformerSpatioTemporalModel {
        &self.down_blocks[block].attentions[layer]
    }
    pub fn downsampler(&self, block: usize) -> Option<&Downsample2D> {
        self.down_blocks[block].down.as_ref()
    }
    pub fn up_resnet(&self, block: usize, layer: usize) -> &SpatioTemporalResBlock {
        &self.up_blocks[block].resnets[layer]
    }
    pub fn up_attention(&self, block: usize, layer: usize) -> &TransformerSpatioTemporalModel {
        &self.up_blocks[block].attentions[layer]
    }
    pub fn upsampler(&self, block: usize) -> Option<&Upsample2D> {
        self.up_blocks[block].up.as_ref()
    }
    pub fn time_embedding(&self) -> &TimestepEmbedding {
        &self.time_embedding
    }
    pub fn add_embedding(&self) -> &TimestepEmbedding {
        &self.add_embedding
    }
}
