//! diffusers' `UNet2DConditionModel` (SD 1.x, SD 2.x, SD-Turbo), driven by `unet/config.json`.

use crate::diffusers::common::blocks::{
    Downsample2D, ResnetBlock2D, TimestepEmbedding, Transformer2DModel, Upsample2D, timestep_features,
};
use crate::diffusers::common::config::{IntOrList, check_unsupported};
use crate::diffusers::common::layers::{Conv2d, GroupNorm};
use crate::diffusers::common::weights::{LoadError, Vb, Weights};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::Deserialize;
use std::path::Path;

fn d4() -> usize {
    4
}
fn d2() -> IntOrList {
    IntOrList::One(2)
}
fn d1() -> IntOrList {
    IntOrList::One(1)
}
fn d8() -> IntOrList {
    IntOrList::One(8)
}
fn d1280() -> IntOrList {
    IntOrList::One(1280)
}
fn d32() -> usize {
    32
}
fn eps5() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
pub struct UNet2DConditionConfig {
    #[serde(default = "d4")]
    pub in_channels: usize,
    #[serde(default = "d4")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default)]
    pub mid_block_type: Option<String>,
    #[serde(default = "d2")]
    pub layers_per_block: IntOrList,
    #[serde(default = "d1280")]
    pub cross_attention_dim: IntOrList,
    #[serde(default = "d8")]
    pub attention_head_dim: IntOrList,
    #[serde(default)]
    pub num_attention_heads: Option<IntOrList>,
    #[serde(default = "d1")]
    pub transformer_layers_per_block: IntOrList,
    #[serde(default = "d32")]
    pub norm_num_groups: usize,
    #[serde(default = "eps5")]
    pub norm_eps: f64,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f32,
    #[serde(default = "one_usize")]
    pub downsample_padding: usize,
    #[serde(default = "one")]
    pub mid_block_scale_factor: f64,
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default)]
    pub sample_size: Option<usize>,
}

fn one_usize() -> usize {
    1
}

/// Config keys this port does not implement, with the value it assumes.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("addition_embed_type", "null"),
    ("class_embed_type", "null"),
    ("num_class_embeds", "null"),
    ("time_cond_proj_dim", "null"),
    ("encoder_hid_dim", "null"),
    ("encoder_hid_dim_type", "null"),
    ("time_embedding_dim", "null"),
    ("cross_attention_norm", "null"),
    ("timestep_post_act", "null"),
    ("reverse_transformer_layers_per_block", "null"),
    ("resnet_time_scale_shift", "\"default\""),
    ("time_embedding_type", "\"positional\""),
    ("act_fn", "\"silu\""),
    ("attention_type", "\"default\""),
    ("conv_in_kernel", "3"),
    ("conv_out_kernel", "3"),
    ("only_cross_attention", "false"),
    ("dual_cross_attention", "false"),
    ("center_input_sample", "false"),
    ("resnet_skip_time_act", "false"),
    ("resnet_out_scale_factor", "1.0"),
    ("mid_block_only_cross_attention", "null"),
    ("class_embeddings_concat", "false"),
    ("addition_time_embed_dim", "null"),
    ("projection_class_embeddings_input_dim", "null"),
];

impl UNet2DConditionConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let raw: serde_json::Value = crate::diffusers::common::config::read_json(path)?;
        check_unsupported(path, &raw, UNSUPPORTED)?;
        let c: Self = serde_json::from_value(raw)
            .map_err(|e| LoadError::File { path: path.into(), message: format!("bad UNet config: {e}") })?;
        let n = c.block_out_channels.len();
        crate::diffusers::common::config::check_block_lists(
            path,
            n,
            [
                ("down_block_types", &c.down_block_types, &["CrossAttnDownBlock2D", "DownBlock2D"]),
                ("up_block_types", &c.up_block_types, &["CrossAttnUpBlock2D", "UpBlock2D"]),
            ],
        )?;
        if let Some(m) = &c.mid_block_type
            && m != "UNetMidBlock2DCrossAttn"
        {
            return Err(LoadError::config(path, "mid_block_type", m, "supported: UNetMidBlock2DCrossAttn"));
        }
        for (key, v) in [
            ("layers_per_block", &c.layers_per_block),
            ("cross_attention_dim", &c.cross_attention_dim),
            ("attention_head_dim", &c.attention_head_dim),
            ("transformer_layers_per_block", &c.transformer_layers_per_block),
        ] {
            v.per_block(n).map_err(|why| LoadError::config(path, key, v, &why))?;
        }
        let heads = c.heads();
        for (i, (&ch, &h)) in c.block_out_channels.iter().zip(&heads).enumerate() {
            if h == 0 || ch % h != 0 {
                return Err(LoadError::config(
                    path,
                    "attention_head_dim",
                    &c.attention_head_dim,
                    &format!("block {i}: {ch} channels do not split into {h} heads"),
                ));
            }
            if ch % c.norm_num_groups != 0 {
                return Err(LoadError::config(
                    path,
                    "norm_num_groups",
                    c.norm_num_groups,
                    &format!("block {i} has {ch} channels"),
                ));
            }
        }
        Ok(c)
    }

    /// Attention heads per block. diffusers' legacy naming: without `num_attention_heads`,
    /// `attention_head_dim` holds the head count.
    pub fn heads(&self) -> Vec<usize> {
        let n = self.block_out_channels.len();
        self.num_attention_heads.as_ref().unwrap_or(&self.attention_head_dim).per_block(n).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Level {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2DModel>,
    resample_down: Option<Downsample2D>,
    resample_up: Option<Upsample2D>,
}

#[derive(Debug, Clone)]
pub struct UNet2DConditionModel {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    down_blocks: Vec<Level>,
    mid_block: Level,
    up_blocks: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    pub config: UNet2DConditionConfig,
}

impl UNet2DConditionModel {
    pub fn load(weights: &Weights, c: &UNet2DConditionConfig) -> Result<Self, LoadError> {
        let vb = weights.root();
        let n = c.block_out_channels.len();
        let ch = &c.block_out_channels;
        let temb = ch[0] * 4;
        let groups = c.norm_num_groups;
        let eps = c.norm_eps;
        let heads = c.heads();
        let layers = c.layers_per_block.per_block(n).expect("checked");
        let cross = c.cross_attention_dim.per_block(n).expect("checked");
        let tlayers = c.transformer_layers_per_block.per_block(n).expect("checked");
        let attn = |vb: &Vb, channels: usize, h: usize, t: usize, x: usize| {
            Transformer2DModel::load(vb, channels, h, channels / h, t, x, groups, c.use_linear_projection)
        };

        let mut down_blocks = Vec::new();
        let mut prev = ch[0];
        for i in 0..n {
            let b = vb.pp("down_blocks").pp(i);
            let out = ch[i];
            let cross_attn = c.down_block_types[i].starts_with("CrossAttn");
            let mut level = Level { resnets: vec![], attentions: vec![], resample_down: None, resample_up: None };
            for j in 0..layers[i] {
                let inp = if j == 0 { prev } else { out };
                level.resnets.push(ResnetBlock2D::load(
                    &b.pp("resnets").pp(j),
                    inp,
                    out,
                    Some(temb),
                    groups,
                    eps,
                    1.0,
                )?);
                if cross_attn {
                    level.attentions.push(attn(&b.pp("attentions").pp(j), out, heads[i], tlayers[i], cross[i])?);
                }
            }
            if i + 1 < n {
                level.resample_down =
                    Some(Downsample2D::load(&b.pp("downsamplers").pp(0), out, out, c.downsample_padding)?);
            }
            down_blocks.push(level);
            prev = out;
        }

        let m = vb.pp("mid_block");
        let last = ch[n - 1];
        let mid_block = Level {
            resnets: (0..2)
                .map(|j| {
                    ResnetBlock2D::load(
                        &m.pp("resnets").pp(j),
                        last,
                        last,
                        Some(temb),
                        groups,
                        eps,
                        c.mid_block_scale_factor,
                    )
                })
                .collect::<Result<_, _>>()?,
            attentions: vec![attn(&m.pp("attentions").pp(0), last, heads[n - 1], tlayers[n - 1], cross[n - 1])?],
            resample_down: None,
            resample_up: None,
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
            let mut level = Level { resnets: vec![], attentions: vec![], resample_down: None, resample_up: None };
            for j in 0..count {
                let skip = if j == count - 1 { input } else { out };
                let inp = if j == 0 { prev_out } else { out };
                level.resnets.push(ResnetBlock2D::load(
                    &b.pp("resnets").pp(j),
                    inp + skip,
                    out,
                    Some(temb),
                    groups,
                    eps,
                    1.0,
                )?);
                if cross_attn {
                    level.attentions.push(attn(&b.pp("attentions").pp(j), out, heads[rev], tlayers[rev], cross[rev])?);
                }
            }
            if i + 1 < n {
                level.resample_up = Some(Upsample2D::load(&b.pp("upsamplers").pp(0), out, out)?);
            }
            up_blocks.push(level);
            prev_out = out;
        }

        Ok(Self {
            conv_in: Conv2d::load(&vb.pp("conv_in"), c.in_channels, ch[0], 3, 1, 1)?,
            time_embedding: TimestepEmbedding::load(&vb.pp("time_embedding"), ch[0], temb)?,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(&vb.pp("conv_norm_out"), groups, ch[0], eps)?,
            conv_out: Conv2d::load(&vb.pp("conv_out"), ch[0], c.out_channels, 3, 1, 1)?,
            config: c.clone(),
        })
    }

    /// The time embedding for one timestep per batch item.
    pub fn time_embed(&self, timesteps: &[f32], device: &Device, dtype: burn::tensor::DType) -> Tensor<2> {
        let c = &self.config;
        let features = timestep_features(timesteps, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift, device);
        self.time_embedding.forward(features.cast(dtype))
    }

    /// Predicts noise (or v) for `sample` [B, C, H, W] at `timesteps` (one per batch item) given
    /// text states [B, T, D].
    pub fn forward(&self, sample: Tensor<4>, timesteps: &[f32], context: &Tensor<3>) -> Tensor<4> {
        let temb = self.time_embed(timesteps, &sample.device(), sample.dtype());
        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for level in &self.down_blocks {
            for (j, resnet) in level.resnets.iter().enumerate() {
                x = resnet.forward(x, Some(&temb));
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(x, context);
                }
                skips.push(x.clone());
            }
            if let Some(down) = &level.resample_down {
                x = down.forward(x);
                skips.push(x.clone());
            }
        }
        x = self.mid_block.resnets[0].forward(x, Some(&temb));
        x = self.mid_block.attentions[0].forward(x, context);
        x = self.mid_block.resnets[1].forward(x, Some(&temb));
        for level in &self.up_blocks {
            for (j, resnet) in level.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up resnet");
                x = resnet.forward(Tensor::cat(vec![x, skip], 1), Some(&temb));
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(x, context);
                }
            }
            if let Some(up) = &level.resample_up {
                let size = skips.last().map(|s| [s.dims()[2], s.dims()[3]]);
                x = up.forward(x, size);
            }
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }

    /// Single blocks, for parity tests against diffusers' per-block outputs.
    pub fn down_resnet(&self, block: usize, layer: usize) -> &ResnetBlock2D {
        &self.down_blocks[block].resnets[layer]
    }
    pub fn down_attention(&self, block: usize, layer: usize) -> &Transformer2DModel {
        &self.down_blocks[block].attentions[layer]
    }
    pub fn downsampler(&self, block: usize) -> Option<&Downsample2D> {
        self.down_blocks[block].resample_down.as_ref()
    }
    pub fn up_resnet(&self, block: usize, layer: usize) -> &ResnetBlock2D {
        &self.up_blocks[block].resnets[layer]
    }
    pub fn up_attention(&self, block: usize, layer: usize) -> &Transformer2DModel {
        &self.up_blocks[block].attentions[layer]
    }
    pub fn upsampler(&self, block: usize) -> Option<&Upsample2D> {
        self.up_blocks[block].resample_up.as_ref()
    }
    pub fn time_embedding(&self) -> &TimestepEmbedding {
        &self.time_embedding
    }
    pub fn conv_in(&self) -> &Conv2d {
        &self.conv_in
    }
    /// The mid block on its own.
    pub fn mid_block(&self, x: Tensor<4>, temb: &Tensor<2>, context: &Tensor<3>) -> Tensor<4> {
        let x = self.mid_block.resnets[0].forward(x, Some(temb));
        let x = self.mid_block.attentions[0].forward(x, context);
        self.mid_block.resnets[1].forward(x, Some(temb))
    }
}
