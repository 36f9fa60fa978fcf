//! diffusers' `AutoencoderKL` (encode to a diagonal Gaussian, decode), driven by `vae/config.json`.

use crate::diffusers::common::blocks::{Attention, Downsample2D, ResnetBlock2D, Upsample2D};
use crate::diffusers::common::config::check_unsupported;
use crate::diffusers::common::layers::{Conv2d, GroupNorm};
use crate::diffusers::common::weights::{LoadError, Vb, Weights};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::Deserialize;
use std::path::Path;

// Config defaults (diffusers'), shared with the temporal-decoder VAE.
pub(crate) fn d3() -> usize {
    3
}
pub(crate) fn d1() -> usize {
    1
}
pub(crate) fn d4() -> usize {
    4
}
fn d32() -> usize {
    32
}
pub(crate) fn sf() -> f64 {
    0.18215
}
pub(crate) fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct AutoencoderKLConfig {
    #[serde(default = "d3")]
    pub in_channels: usize,
    #[serde(default = "d3")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "d1")]
    pub layers_per_block: usize,
    #[serde(default = "d4")]
    pub latent_channels: usize,
    #[serde(default = "d32")]
    pub norm_num_groups: usize,
    #[serde(default = "sf")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    /// The image size the VAE was trained at; diffusers' tiled decoding uses it as the tile.
    #[serde(default = "d32", deserialize_with = "one_size")]
    pub sample_size: usize,
}

/// `sample_size` is a number, or a list whose first entry is taken (diffusers takes it for the
/// latent tile; its tiled decode itself needs a number).
fn one_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        One(usize),
        Many(Vec<usize>),
    }
    match Size::deserialize(d)? {
        Size::One(n) => Ok(n),
        Size::Many(v) => v.first().copied().ok_or_else(|| serde::de::Error::custom("sample_size is an empty list")),
    }
}

const UNSUPPORTED: &[(&str, &str)] = &[("act_fn", "\"silu\""), ("latents_mean", "null"), ("latents_std", "null")];

impl AutoencoderKLConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let raw: serde_json::Value = crate::diffusers::common::config::read_json(path)?;
        check_unsupported(path, &raw, UNSUPPORTED)?;
        let c: Self = serde_json::from_value(raw)
            .map_err(|e| LoadError::File { path: path.into(), message: format!("bad VAE config: {e}") })?;
        crate::diffusers::common::config::check_block_lists(
            path,
            c.block_out_channels.len(),
            [
                ("down_block_types", &c.down_block_types, &["DownEncoderBlock2D"]),
                ("up_block_types", &c.up_block_types, &["UpDecoderBlock2D"]),
            ],
        )?;
        Ok(c)
    }

    /// How much smaller latents are than images.
    pub fn scale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

#[derive(Debug, Clone)]
struct MidBlock {
    resnets: Vec<ResnetBlock2D>,
    attention: Option<Attention>,
}

impl MidBlock {
    fn load(vb: &Vb, channels: usize, groups: usize, with_attention: bool) -> Result<Self, LoadError> {
        Ok(Self {
            resnets: (0..2)
                .map(|j| ResnetBlock2D::load(&vb.pp("resnets").pp(j), channels, channels, None, groups, 1e-6, 1.0))
                .collect::<Result<_, _>>()?,
            attention: if with_attention {
                Some(Attention::load_spatial(&vb.pp("attentions").pp(0), channels, channels, groups, 1e-6)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.resnets[0].forward(x, None);
        let x = match &self.attention {
            Some(a) => a.forward_spatial(x),
            None => x,
        };
        self.resnets[1].forward(x, None)
    }
}

#[derive(Debug, Clone)]
pub struct CoderBlock {
    resnets: Vec<ResnetBlock2D>,
    down: Option<Downsample2D>,
    up: Option<Upsample2D>,
}

impl CoderBlock {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x, None);
        }
        if let Some(d) = &self.down {
            x = d.forward(x);
        }
        if let Some(u) = &self.up {
            x = u.forward(x, None);
        }
        x
    }
}

#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv2d,
    pub down_blocks: Vec<CoderBlock>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    /// diffusers' `Encoder` with `double_z`: `2 * latent` output channels (mean and log variance).
    pub fn load(
        vb: &Vb,
        in_channels: usize,
        ch: &[usize],
        layers: usize,
        groups: usize,
        latent: usize,
        mid_attention: bool,
    ) -> Result<Self, LoadError> {
        let n = ch.len();
        let mut down_blocks = Vec::new();
        let mut prev = ch[0];
        for (i, &out) in ch.iter().enumerate() {
            let b = vb.pp("down_blocks").pp(i);
            down_blocks.push(CoderBlock {
                resnets: (0..layers)
                    .map(|j| {
                        ResnetBlock2D::load(
                            &b.pp("resnets").pp(j),
                            if j == 0 { prev } else { out },
                            out,
                            None,
                            groups,
                            1e-6,
                            1.0,
                        )
                    })
                    .collect::<Result<_, _>>()?,
                down: if i + 1 < n {
                    Some(Downsample2D::load(&b.pp("downsamplers").pp(0), out, out, 0)?)
                } else {
                    None
                },
                up: None,
            });
            prev = out;
        }
        Ok(Self {
            conv_in: Conv2d::load(&vb.pp("conv_in"), in_channels, ch[0], 3, 1, 1)?,
            down_blocks,
            mid_block: MidBlock::load(&vb.pp("mid_block"), ch[n - 1], groups, mid_attention)?,
            conv_norm_out: GroupNorm::load(&vb.pp("conv_norm_out"), groups, ch[n - 1], 1e-6)?,
            conv_out: Conv2d::load(&vb.pp("conv_out"), ch[n - 1], 2 * latent, 3, 1, 1)?,
        })
    }

    /// Images in [-1, 1] -> the moments (mean and log variance stacked on channels).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = self.conv_in.forward(x);
        for b in &self.down_blocks {
            h = b.forward(h);
        }
        h = self.mid_block.forward(h);
        self.conv_out.forward(silu(self.conv_norm_out.forward(h)))
    }

    pub fn mid_block(&self, x: Tensor<4>) -> Tensor<4> {
        self.mid_block.forward(x)
    }
}

/// Splits encoder moments (after `quant_conv`) into the mean and the clamped log variance.
pub fn split_moments(h: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let mut parts = h.chunk(2, 1);
    let logvar = parts.pop().expect("two halves").clamp(-30.0, 20.0);
    let mean = parts.pop().expect("two halves");
    (mean, logvar)
}

#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv2d,
    pub up_blocks: Vec<CoderBlock>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

#[derive(Debug, Clone)]
pub struct AutoencoderKL {
    pub encoder: Encoder,
    pub decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    pub config: AutoencoderKLConfig,
}

impl AutoencoderKL {
    pub fn load(weights: &Weights, c: &AutoencoderKLConfig) -> Result<Self, LoadError> {
        let vb = weights.root();
        let ch = &c.block_out_channels;
        let n = ch.len();
        let g = c.norm_num_groups;
        let l = c.latent_channels;
        let encoder =
            Encoder::load(&vb.pp("encoder"), c.in_channels, ch, c.layers_per_block, g, l, c.mid_block_add_attention)?;

        let d = vb.pp("decoder");
        let mut up_blocks = Vec::new();
        let mut prev = ch[n - 1];
        for i in 0..n {
            let b = d.pp("up_blocks").pp(i);
            let out = ch[n - 1 - i];
            up_blocks.push(CoderBlock {
                resnets: (0..c.layers_per_block + 1)
                    .map(|j| {
                        ResnetBlock2D::load(
                            &b.pp("resnets").pp(j),
                            if j == 0 { prev } else { out },
                            out,
                            None,
                            g,
                            1e-6,
                            1.0,
                        )
                    })
                    .collect::<Result<_, _>>()?,
                down: None,
                up: if i + 1 < n { Some(Upsample2D::load(&b.pp("upsamplers").pp(0), out, out)?) } else { None },
            });
            prev = out;
        }
        let decoder = Decoder {
            conv_in: Conv2d::load(&d.pp("conv_in"), l, ch[n - 1], 3, 1, 1)?,
            up_blocks,
            mid_block: MidBlock::load(&d.pp("mid_block"), ch[n - 1], g, c.mid_block_add_attention)?,
            conv_norm_out: GroupNorm::load(&d.pp("conv_norm_out"), g, ch[0], 1e-6)?,
            conv_out: Conv2d::load(&d.pp("conv_out"), ch[0], c.out_channels, 3, 1, 1)?,
        };
        Ok(Self {
            encoder,
            decoder,
            quant_conv: if c.use_quant_conv {
                Some(Conv2d::load(&vb.pp("quant_conv"), 2 * l, 2 * l, 1, 1, 0)?)
            } else {
                None
            },
            post_quant_conv: if c.use_post_quant_conv {
                Some(Conv2d::load(&vb.pp("post_quant_conv"), l, l, 1, 1, 0)?)
            } else {
                None
            },
            config: c.clone(),
        })
    }

    /// Images in [-1, 1] -> (mean, log variance) of the latent distribution.
    pub fn encode(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut h = self.encoder.forward(x);
        if let Some(q) = &self.quant_conv {
            h = q.forward(h);
        }
        split_moments(h)
    }

    /// Latents (unscaled, as the encoder gives them) -> images in about [-1, 1].
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let d = &self.decoder;
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(z),
            None => z,
        };
        let mut h = d.conv_in.forward(z);
        h = d.mid_block.forward(h);
        for b in &d.up_blocks {
            h = b.forward(h);
        }
        d.conv_out.forward(silu(d.conv_norm_out.forward(h)))
    }

    /// The encoder's mid-block attention, for parity tests.
    pub fn encoder_mid_attention(&self) -> Option<&Attention> {
        self.encoder.mid_block.attention.as_ref()
    }

    pub fn decoder_mid_block(&self, x: Tensor<4>) -> Tensor<4> {
        self.decoder.mid_block.forward(x)
    }
}
