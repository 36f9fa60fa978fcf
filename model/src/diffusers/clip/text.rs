//! transformers' `CLIPTextModel`, driven by its config.json, and the encoder layer it shares
//! with the vision tower (`clip_vision`).

use crate::diffusers::common::blocks::multi_head_attention;
use crate::diffusers::common::layers::{Activation, Embedding, LayerNorm, Linear};
use crate::diffusers::common::weights::{LoadError, Vb, Weights};
use burn::prelude::*;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl ClipTextConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        crate::diffusers::common::config::read_json(path)
    }

    pub fn layer_shape(&self) -> LayerShape {
        LayerShape {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            heads: self.num_attention_heads,
            eps: self.layer_norm_eps,
        }
    }
}

#[derive(Debug, Clone)]
struct ClipAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

#[derive(Debug, Clone)]
pub struct ClipEncoderLayer {
    self_attn: ClipAttention,
    layer_norm1: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_norm2: LayerNorm,
    act: Activation,
}

/// The sizes of a CLIP encoder layer (text and vision towers share the layer).
#[derive(Debug, Clone, Copy)]
pub struct LayerShape {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub heads: usize,
    pub eps: f64,
}

impl ClipEncoderLayer {
    pub fn load(vb: &Vb, c: LayerShape, act: Activation) -> Result<Self, LoadError> {
        let d = c.hidden_size;
        let a = vb.pp("self_attn");
        Ok(Self {
            self_attn: ClipAttention {
                q_proj: Linear::load(&a.pp("q_proj"), d, d, true)?,
                k_proj: Linear::load(&a.pp("k_proj"), d, d, true)?,
                v_proj: Linear::load(&a.pp("v_proj"), d, d, true)?,
                out_proj: Linear::load(&a.pp("out_proj"), d, d, true)?,
                heads: c.heads,
            },
            layer_norm1: LayerNorm::load(&vb.pp("layer_norm1"), d, c.eps)?,
            fc1: Linear::load(&vb.pp("mlp").pp("fc1"), d, c.intermediate_size, true)?,
            fc2: Linear::load(&vb.pp("mlp").pp("fc2"), c.intermediate_size, d, true)?,
            layer_norm2: LayerNorm::load(&vb.pp("layer_norm2"), d, c.eps)?,
            act,
        })
    }

    /// One pre-norm layer; the text tower's self-attention is causal, the vision tower's is not.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let h = self.layer_norm1.forward(x.clone());
        let a = &self.self_attn;
        let attn = multi_head_attention(
            a.q_proj.forward(h.clone()),
            a.k_proj.forward(h.clone()),
            a.v_proj.forward(h),
            a.heads,
            causal,
        );
        let x = a.out_proj.forward(attn) + x;
        let h = self.fc2.forward(self.act.forward(self.fc1.forward(self.layer_norm2.forward(x.clone()))));
        h + x
    }
}

/// The token embedding table, kept in host memory: rows are gathered there and only the
/// [B, T, D] result goes to the device. The table (49408 x 1024 f32 = 193 MiB for SD 2.x) is
/// larger than the 128 MiB storage buffers some drivers allow (Mesa's lavapipe).
#[derive(Debug, Clone)]
struct TokenEmbedding {
    table: std::sync::Arc<Vec<f32>>,
    count: usize,
    dim: usize,
}

impl TokenEmbedding {
    fn forward(&self, ids: Tensor<2, Int>, dtype: burn::tensor::DType) -> Tensor<3> {
        let [b, t] = ids.dims();
        let device = ids.device();
        let ids: Vec<i64> = ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        let mut out = Vec::with_capacity(b * t * self.dim);
        for id in ids {
            // Ids come from the tokenizer, which only gives ids of its vocabulary.
            let row = (id.max(0) as usize).min(self.count - 1);
            out.extend_from_slice(&self.table[row * self.dim..(row + 1) * self.dim]);
        }
        Tensor::<3>::from_data(TensorData::new(out, [b, t, self.dim]), &device).cast(dtype)
    }
}

/// The text tower: token and position embeddings, causal encoder layers, final layer norm.
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    token_embedding: TokenEmbedding,
    position_embedding: Embedding,
    pub layers: Vec<ClipEncoderLayer>,
    final_layer_norm: LayerNorm,
    pub config: ClipTextConfig,
}

impl ClipTextModel {
    /// Loads from a transformers file, with or without the `text_model.` prefix that older
    /// transformers versions wrote.
    pub fn load(weights: &Weights, config: &ClipTextConfig, config_path: &Path) -> Result<Self, LoadError> {
        let act = Activation::parse(&config.hidden_act).ok_or_else(|| {
            LoadError::config(config_path, "hidden_act", &config.hidden_act, "not a supported activation")
        })?;
        let root = weights.root();
        let vb =
            if root.contains("text_model.embeddings.token_embedding.weight") { root.pp("text_model") } else { root };
        let emb = vb.pp("embeddings");
        // A buffer older files carry; it must be the plain 0..n positions this port assumes.
        if emb.contains("position_ids") {
            let ids = weights.read_i64(&emb.key("position_ids"))?;
            if ids.iter().enumerate().any(|(i, &v)| v != i as i64) {
                return Err(LoadError::config(
                    config_path,
                    "position_ids",
                    "non-sequential",
                    "only 0..n positions are supported",
                ));
            }
        }
        let d = config.hidden_size;
        Ok(Self {
            token_embedding: TokenEmbedding {
                table: std::sync::Arc::new(
                    weights.host_f32(&emb.pp("token_embedding").key("weight"), &[config.vocab_size, d])?,
                ),
                count: config.vocab_size,
                dim: d,
            },
            position_embedding: Embedding::load(&emb.pp("position_embedding"), config.max_position_embeddings, d)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| ClipEncoderLayer::load(&vb.pp("encoder").pp("layers").pp(i), config.layer_shape(), act))
                .collect::<Result<_, _>>()?,
            final_layer_norm: LayerNorm::load(&vb.pp("final_layer_norm"), d, config.layer_norm_eps)?,
            config: config.clone(),
        })
    }

    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]).expand([b, t]);
        let pos = self.position_embedding.forward(positions);
        self.token_embedding.forward(ids, pos.dtype()) + pos
    }

    /// `last_hidden_state` for [B, T] token ids.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let mut x = self.embed(ids);
        for layer in &self.layers {
            x = layer.forward(x, true);
        }
        self.final_layer_norm.forward(x)
    }
}
