//! transformers' `UMT5EncoderModel` (google/umt5-xxl is Wan 2.1's text encoder), driven by its
//! config.json and loaded under transformers' tensor names.
//!
//! A T5 v1.1 encoder stack with UMT5's one difference: every layer has its own relative
//! position bias table. Each layer is pre-norm: RMS norm (T5's, without mean subtraction or
//! bias), self-attention whose scores are *not* scaled by 1/sqrt(d) and get the layer's bucketed
//! relative position bias added, a residual; RMS norm, gated feed-forward
//! (`wo(act(wi_0 x) * wi_1 x)`), a residual. A final RMS norm ends the stack.
//!
//! Precision follows transformers: the model computes in the weights' dtype, norms and softmax
//! in f32. In F16, `wo` and the residual stream stay in f32: transformers keeps `wo` in f32
//! (`_keep_in_fp32_modules`), so from the first feed-forward on the sums it adds to are f32 too;
//! here the stream is f32 from the embeddings on, which makes transformers' clamping of
//! infinities in f16 needless. That is what keeps T5 from overflowing in half precision. BF16
//! runs in BF16 throughout, as in transformers.

use crate::diffusers::common::config::{check_unsupported, read_json};
use crate::diffusers::common::layers::{Activation, Linear, RmsNorm};
use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::softmax;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The settings of a UMT5 encoder, resolved and checked from its config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct UMT5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// The size of one attention head.
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    /// The activation of the feed-forward's gate (`act(wi_0 x) * wi_1 x`).
    pub dense_act_fn: Activation,
}

/// config.json as transformers' `UMT5Config` reads it (its defaults where a key is absent).
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: usize,
    d_model: usize,
    d_kv: usize,
    d_ff: usize,
    num_heads: usize,
    num_layers: usize,
    #[serde(default = "default_buckets")]
    relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_feed_forward")]
    feed_forward_proj: String,
    dense_act_fn: Option<String>,
    is_gated_act: Option<bool>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_feed_forward() -> String {
    "gated-gelu".into()
}

impl UMT5Config {
    /// Reads `text_encoder/config.json`, refusing what this port does not implement: a decoder
    /// stack, the ungated feed-forward (T5 v1.0's `relu`), activations other than those of
    /// [`Activation`], and bucket settings that leave no exact or logarithmic buckets.
    ///
    /// The gate's activation is resolved as transformers 5 does: `dense_act_fn` and
    /// `is_gated_act` when the file has them, else from `feed_forward_proj` (`gated-ACT`, where
    /// `gated-gelu` means the tanh approximation `gelu_new`).
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let value: serde_json::Value = read_json(path)?;
        check_unsupported(path, &value, &[("is_decoder", "false")])?;
        let raw: RawConfig = serde_json::from_value(value)
            .map_err(|e| LoadError::File { path: path.into(), message: format!("invalid UMT5 config: {e}") })?;

        let parts: Vec<&str> = raw.feed_forward_proj.split('-').collect();
        let (gated, act) = match parts[..] {
            ["gated", act] => (true, act),
            [act] => (false, act),
            _ => {
                return Err(LoadError::config(
                    path,
                    "feed_forward_proj",
                    &raw.feed_forward_proj,
                    "expected `gated-ACT` or `ACT`",
                ));
            }
        };
        if !raw.is_gated_act.unwrap_or(gated) {
            let (key, value) = match raw.is_gated_act {
                Some(v) => ("is_gated_act", v.to_string()),
                None => ("feed_forward_proj", raw.feed_forward_proj.clone()),
            };
            return Err(LoadError::config(
                path,
                key,
                value,
                "this port implements the gated feed-forward (wi_0, wi_1, wo) only",
            ));
        }
        let act_name = match &raw.dense_act_fn {
            Some(name) => name.as_str(),
            None if raw.feed_forward_proj == "gated-gelu" => "gelu_new",
            None => act,
        };
        let dense_act_fn = Activation::parse(act_name).ok_or_else(|| {
            LoadError::config(
                path,
                "dense_act_fn",
                act_name,
                "supported: silu, gelu, gelu_new, gelu_pytorch_tanh, quick_gelu",
            )
        })?;

        for (key, v) in [
            ("vocab_size", raw.vocab_size),
            ("d_model", raw.d_model),
            ("d_kv", raw.d_kv),
            ("d_ff", raw.d_ff),
            ("num_heads", raw.num_heads),
            ("num_layers", raw.num_layers),
        ] {
            if v == 0 {
                return Err(LoadError::config(path, key, v, "must be positive"));
            }
        }
        // Half the buckets per direction, half of those exact offsets.
        let max_exact = raw.relative_attention_num_buckets / 4;
        if max_exact == 0 {
            return Err(LoadError::config(
                path,
                "relative_attention_num_buckets",
                raw.relative_attention_num_buckets,
                "must be at least 4",
            ));
        }
        if raw.relative_attention_max_distance <= max_exact {
            return Err(LoadError::config(
                path,
                "relative_attention_max_distance",
                raw.relative_attention_max_distance,
                &format!("must exceed the {max_exact} exact offsets (relative_attention_num_buckets / 4)"),
            ));
        }
        Ok(Self {
            vocab_size: raw.vocab_size,
            d_model: raw.d_model,
            d_kv: raw.d_kv,
            d_ff: raw.d_ff,
            num_heads: raw.num_heads,
            num_layers: raw.num_layers,
            relative_attention_num_buckets: raw.relative_attention_num_buckets,
            relative_attention_max_distance: raw.relative_attention_max_distance,
            layer_norm_epsilon: raw.layer_norm_epsilon,
            dense_act_fn,
        })
    }
}

/// The bucket of a key `relative` positions after its query (negative: before) in a
/// bidirectional encoder, as transformers' `_relative_position_bucket`: each direction gets half
/// of `num_buckets`; offsets below a quarter of `num_buckets` have a bucket each, longer ones
/// share logarithmically wider buckets up to `max_distance`, and all beyond share the last. The
/// logarithm is taken in f32, as PyTorch does, so offsets on bucket edges land where they do
/// there.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let max_exact = half / 2;
    let base = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs() as usize;
    if distance < max_exact {
        return base + distance;
    }
    let log_ratio = (distance as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32);
    let large = max_exact + (log_ratio * (half - max_exact) as f32) as usize;
    base + large.min(half - 1)
}

/// `layer.0.SelfAttention`: unscaled multi-head attention with the layer's own relative
/// position bias.
#[derive(Debug, Clone)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// [num_buckets, heads].
    relative_attention_bias: Tensor<2>,
    heads: usize,
}

impl SelfAttention {
    fn load(vb: &Vb, c: &UMT5Config) -> Result<Self, LoadError> {
        let inner = c.num_heads * c.d_kv;
        Ok(Self {
            q: Linear::load(&vb.pp("q"), c.d_model, inner, false)?,
            k: Linear::load(&vb.pp("k"), c.d_model, inner, false)?,
            v: Linear::load(&vb.pp("v"), c.d_model, inner, false)?,
            o: Linear::load(&vb.pp("o"), inner, c.d_model, false)?,
            relative_attention_bias: vb
                .get("relative_attention_bias.weight", [c.relative_attention_num_buckets, c.num_heads])?,
            heads: c.num_heads,
        })
    }

    /// [1, T, D] (normalised, in the compute dtype) -> [1, T, D]. `buckets` [T, T] are the
    /// query-key offsets' buckets; `mask_bias` [1, 1, 1, T] (f32) is 0 for keys to attend to and
    /// very negative for padding.
    fn forward(&self, x: Tensor<3>, buckets: Tensor<2, Int>, mask_bias: Option<Tensor<4>>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let dtype = x.dtype();
        let split = |y: Tensor<3>| {
            let inner = y.dims()[2];
            y.reshape([b, t, self.heads, inner / self.heads]).swap_dims(1, 2)
        };
        let q = split(self.q.forward(x.clone()));
        let k = split(self.k.forward(x.clone()));
        let v = split(self.v.forward(x));
        // [T, T, heads] -> [1, heads, T, T].
        let position_bias = burn::tensor::module::embedding(self.relative_attention_bias.clone(), buckets)
            .permute([2, 0, 1])
            .unsqueeze::<4>()
            .cast(DType::F32);
        let bias = match mask_bias {
            Some(mask) => position_bias + mask,
            None => position_bias,
        };
        let scores = q.matmul(k.swap_dims(2, 3)).cast(DType::F32) + bias;
        let weights = softmax(scores, 3).cast(dtype);
        let out = weights.matmul(v).swap_dims(1, 2);
        let inner = out.dims()[2] * out.dims()[3];
        self.o.forward(out.reshape([b, t, inner]))
    }
}

/// `layer.1.DenseReluDense`: `wo(act(wi_0 x) * wi_1 x)`, `wo` in the residual stream's dtype.
#[derive(Debug, Clone)]
struct GatedFeedForward {
    wi_0: Linear,
    wi_1: Linear,
    wo: Linear,
    wo_dtype: DType,
    act: Activation,
}

impl GatedFeedForward {
    fn load(vb: &Vb, c: &UMT5Config, wo_dtype: DType) -> Result<Self, LoadError> {
        let wo = vb.pp("wo");
        let wo_weight = if wo_dtype == DType::F32 {
            wo.get_f32("weight", [c.d_model, c.d_ff])?
        } else {
            wo.get("weight", [c.d_model, c.d_ff])?
        };
        Ok(Self {
            wi_0: Linear::load(&vb.pp("wi_0"), c.d_model, c.d_ff, false)?,
            wi_1: Linear::load(&vb.pp("wi_1"), c.d_model, c.d_ff, false)?,
            wo: Linear::from_tensors(wo_weight, None),
            wo_dtype,
            act: c.dense_act_fn,
        })
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.act.forward(self.wi_0.forward(x.clone()));
        let hidden = gate * self.wi_1.forward(x);
        self.wo.forward(hidden.cast(self.wo_dtype))
    }
}

/// `encoder.block.{i}`: pre-norm self-attention and feed-forward, each with a residual.
#[derive(Debug, Clone)]
struct UMT5Block {
    attention_norm: RmsNorm,
    attention: SelfAttention,
    feed_forward_norm: RmsNorm,
    feed_forward: GatedFeedForward,
}

impl UMT5Block {
    fn load(vb: &Vb, c: &UMT5Config, stream: DType) -> Result<Self, LoadError> {
        let attn = vb.pp("layer").pp(0);
        let ff = vb.pp("layer").pp(1);
        Ok(Self {
            attention_norm: RmsNorm::load(&attn.pp("layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            attention: SelfAttention::load(&attn.pp("SelfAttention"), c)?,
            feed_forward_norm: RmsNorm::load(&ff.pp("layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            feed_forward: GatedFeedForward::load(&ff.pp("DenseReluDense"), c, stream)?,
        })
    }

    /// `x` is the residual stream (in its dtype); sublayers run in `dtype`.
    fn forward(&self, x: Tensor<3>, dtype: DType, buckets: Tensor<2, Int>, mask_bias: Option<Tensor<4>>) -> Tensor<3> {
        let stream = x.dtype();
        let h = self.attention_norm.forward_to(x.clone(), dtype);
        let x = x + self.attention.forward(h, buckets, mask_bias).cast(stream);
        let h = self.feed_forward_norm.forward_to(x.clone(), dtype);
        x + self.feed_forward.forward(h).cast(stream)
    }
}

/// The token embedding table (`shared`), kept in host memory: umt5-xxl's is 256384 x 4096
/// (4 GiB in f32), more than one device buffer holds on some drivers. Rows are gathered on the
/// host and only the [1, T, D] result goes to the device.
#[derive(Debug, Clone)]
struct HostEmbedding {
    table: Arc<Vec<f32>>,
    count: usize,
    dim: usize,
}

impl HostEmbedding {
    fn forward(&self, ids: &[u32], device: &Device) -> Tensor<3> {
        let mut rows = Vec::with_capacity(ids.len() * self.dim);
        for &id in ids {
            let id = id as usize;
            assert!(id < self.count, "token id {id} is outside the {}-token embedding table", self.count);
            rows.extend_from_slice(&self.table[id * self.dim..(id + 1) * self.dim]);
        }
        Tensor::from_data(TensorData::new(rows, [1, ids.len(), self.dim]), device)
    }
}

/// transformers' `UMT5EncoderModel`: token embeddings, `num_layers` blocks, a final RMS norm.
#[derive(Debug, Clone)]
pub struct UMT5EncoderModel {
    embed_tokens: HostEmbedding,
    blocks: Vec<UMT5Block>,
    final_layer_norm: RmsNorm,
    /// The dtype the sublayers compute in (the weights').
    dtype: DType,
    /// The residual stream's dtype: f32 for F16 weights, else the weights' dtype.
    stream: DType,
    device: Device,
    pub config: UMT5Config,
}

impl UMT5EncoderModel {
    /// Loads from a transformers checkpoint rooted at `vb` (`shared.weight`, `encoder.*`),
    /// computing in `vb.weights.dtype`. The embedding table may be stored as `shared.weight`,
    /// `encoder.embed_tokens.weight` or both (tied; `shared` is used, as transformers ties
    /// `embed_tokens` to it, and the copy is read once so strict loading accepts it).
    pub fn load(vb: &Vb, config: &UMT5Config) -> Result<Self, LoadError> {
        let c = config;
        let dtype = vb.weights.dtype;
        let stream = if dtype == DType::F16 { DType::F32 } else { dtype };
        let shared = vb.pp("shared").key("weight");
        let tied = vb.pp("encoder").pp("embed_tokens").key("weight");
        let table_shape = [c.vocab_size, c.d_model];
        let key = match (vb.weights.contains(&shared), vb.weights.contains(&tied)) {
            (true, true) => {
                // Read (checking its shape) and dropped before the table that is kept, so at
                // most one copy is in memory.
                vb.weights.host_f32(&tied, &table_shape)?;
                shared
            }
            (false, true) => tied,
            _ => shared,
        };
        let encoder = vb.pp("encoder");
        Ok(Self {
            embed_tokens: HostEmbedding {
                table: Arc::new(vb.weights.host_f32(&key, &table_shape)?),
                count: c.vocab_size,
                dim: c.d_model,
            },
            blocks: (0..c.num_layers)
                .map(|i| UMT5Block::load(&encoder.pp("block").pp(i), c, stream))
                .collect::<Result<_, _>>()?,
            final_layer_norm: RmsNorm::load(&encoder.pp("final_layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            dtype,
            stream,
            device: vb.device().clone(),
            config: c.clone(),
        })
    }

    /// `last_hidden_state` [1, T, d_model] (in the weights' dtype) of one prompt's tokens, all
    /// attended to. Running only a padded prompt's true tokens gives the same rows as running it
    /// padded with its attention mask ([`Self::forward_masked`]): masked keys contribute nothing
    /// and the position bias depends on offsets only. That is what Wan's pipeline keeps.
    ///
    /// # Panics
    /// When `ids` is empty or holds an id outside the vocabulary.
    pub fn forward(&self, ids: &[u32]) -> Tensor<3> {
        self.run(ids, None, None)
    }

    /// `last_hidden_state` [1, T, d_model] with transformers' attention mask: keys whose `mask`
    /// entry is false are not attended to (padding rows are still computed, as transformers
    /// does).
    ///
    /// # Panics
    /// When `ids` is empty, holds an id outside the vocabulary, or `mask` has another length.
    pub fn forward_masked(&self, ids: &[u32], mask: &[bool]) -> Tensor<3> {
        assert_eq!(mask.len(), ids.len(), "one attention mask entry per token");
        self.run(ids, Some(mask), None)
    }

    /// transformers' `output_hidden_states`: the hidden state entering each block (the first is
    /// the token embeddings, in the residual stream's dtype), then `last_hidden_state`:
    /// `num_layers + 1` tensors of [1, T, d_model].
    ///
    /// # Panics
    /// As [`Self::forward`].
    pub fn forward_hidden_states(&self, ids: &[u32]) -> Vec<Tensor<3>> {
        let mut hidden = Vec::with_capacity(self.blocks.len() + 1);
        let out = self.run(ids, None, Some(&mut hidden));
        hidden.push(out);
        hidden
    }

    fn run(&self, ids: &[u32], mask: Option<&[bool]>, mut hidden: Option<&mut Vec<Tensor<3>>>) -> Tensor<3> {
        assert!(!ids.is_empty(), "UMT5 needs at least one token");
        let t = ids.len();
        let buckets = self.buckets(t);
        let mask_bias = mask.map(|mask| {
            let values: Vec<f32> = mask.iter().map(|&keep| if keep { 0.0 } else { f32::MIN }).collect();
            Tensor::<4>::from_data(TensorData::new(values, [1, 1, 1, t]), &self.device)
        });
        let mut x = self.embed_tokens.forward(ids, &self.device).cast(self.dtype).cast(self.stream);
        for block in &self.blocks {
            if let Some(hidden) = hidden.as_mut() {
                hidden.push(x.clone());
            }
            x = block.forward(x, self.dtype, buckets.clone(), mask_bias.clone());
        }
        self.final_layer_norm.forward_to(x, self.dtype)
    }

    /// The [T, T] relative position buckets (query rows, key columns).
    fn buckets(&self, t: usize) -> Tensor<2, Int> {
        let (n, max) = (self.config.relative_attention_num_buckets, self.config.relative_attention_max_distance);
        // Indexed by key - query + (t - 1).
        let by_offset: Vec<i64> =
            (0..2 * t - 1).map(|o| relative_position_bucket(o as i64 - (t as i64 - 1), n, max) as i64).collect();
        let values: Vec<i64> = (0..t).flat_map(|q| (0..t).map(move |k| k + t - 1 - q)).map(|o| by_offset[o]).collect();
        Tensor::from_data(TensorData::new(values, [t, t]), &self.device)
    }
}
