//! transformers' `CLIPVisionModelWithProjection` (SVD's `image_encoder`) and `CLIPVisionModel`
//! (Wan 2.1 image-to-video's, without the projection), driven by its config.json: patch
//! embedding, class token, positions, pre-norm, encoder layers without a causal mask, the class
//! token's post-norm, and the projection to `image_embeds`; or the hidden states of the
//! penultimate layer, which Wan reads.

use crate::diffusers::clip::text::{ClipEncoderLayer, LayerShape};
use crate::diffusers::common::layers::{Activation, LayerNorm, Linear};
use crate::diffusers::common::weights::{LoadError, Weights};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub projection_dim: usize,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn three() -> usize {
    3
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl ClipVisionConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let c: Self = crate::diffusers::common::config::read_json(path)?;
        if c.patch_size == 0 || !c.image_size.is_multiple_of(c.patch_size) {
            return Err(LoadError::config(path, "patch_size", c.patch_size, "must divide image_size"));
        }
        Ok(c)
    }

    fn patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }
}

#[derive(Debug, Clone)]
pub struct ClipVisionModelWithProjection {
    class_embedding: Tensor<1>,
    /// [hidden, channels, patch, patch], no bias.
    patch_embedding: Tensor<4>,
    position_embedding: Tensor<2>,
    pre_layrnorm: LayerNorm,
    pub layers: Vec<ClipEncoderLayer>,
    post_layernorm: LayerNorm,
    /// `None` for a `CLIPVisionModel`.
    visual_projection: Option<Linear>,
    pub config: ClipVisionConfig,
}

impl ClipVisionModelWithProjection {
    pub fn load(weights: &Weights, config: &ClipVisionConfig, config_path: &Path) -> Result<Self, LoadError> {
        Self::load_with(weights, config, config_path, true)
    }

    /// A `CLIPVisionModel`: the same tower without `visual_projection`.
    pub fn load_without_projection(
        weights: &Weights,
        config: &ClipVisionConfig,
        config_path: &Path,
    ) -> Result<Self, LoadError> {
        Self::load_with(weights, config, config_path, false)
    }

    fn load_with(
        weights: &Weights,
        config: &ClipVisionConfig,
        config_path: &Path,
        projection: bool,
    ) -> Result<Self, LoadError> {
        let act = Activation::parse(&config.hidden_act).ok_or_else(|| {
            LoadError::config(config_path, "hidden_act", &config.hidden_act, "not a supported activation")
        })?;
        let root = weights.root();
        // transformers 4 saves the tower under `vision_model.`; transformers 5 saves a
        // `CLIPVisionModel` without it.
        let vm = match root.pp("vision_model").pp("embeddings").contains("class_embedding") || projection {
            true => root.pp("vision_model"),
            false => weights.root(),
        };
        let emb = vm.pp("embeddings");
        let d = config.hidden_size;
        let positions = config.patches() + 1;
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
        let shape = LayerShape {
            hidden_size: d,
            intermediate_size: config.intermediate_size,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps,
        };
        Ok(Self {
            class_embedding: emb.get("class_embedding", [d])?,
            patch_embedding: emb
                .pp("patch_embedding")
                .get("weight", [d, config.num_channels, config.patch_size, config.patch_size])?,
            position_embedding: emb.pp("position_embedding").get("weight", [positions, d])?,
            pre_layrnorm: LayerNorm::load(&vm.pp("pre_layrnorm"), d, config.layer_norm_eps)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| ClipEncoderLayer::load(&vm.pp("encoder").pp("layers").pp(i), shape, act))
                .collect::<Result<_, _>>()?,
            post_layernorm: LayerNorm::load(&vm.pp("post_layernorm"), d, config.layer_norm_eps)?,
            visual_projection: match projection {
                true => Some(Linear::load(&root.pp("visual_projection"), d, config.projection_dim, false)?),
                false => None,
            },
            config: config.clone(),
        })
    }

    /// `image_embeds` [B, projection_dim] for normalised pixels [B, C, image_size, image_size]
    /// (the pooled, post-normed class token for a model without the projection).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        let [b, _, _, _] = pixels.dims();
        let d = self.config.hidden_size;
        let x = self.layers.iter().fold(self.embed(pixels), |x, layer| layer.forward(x, false));
        let pooled = self.post_layernorm.forward(x.slice([0..b, 0..1]).reshape([b, d]));
        match &self.visual_projection {
            Some(projection) => projection.forward(pooled),
            None => pooled,
        }
    }

    /// `hidden_states[-2]`: the tokens [B, patches + 1, hidden] after all layers but the last.
    pub fn penultimate_states(&self, pixels: Tensor<4>) -> Tensor<3> {
        let n = self.layers.len().saturating_sub(1);
        self.layers[..n].iter().fold(self.embed(pixels), |x, layer| layer.forward(x, false))
    }

    /// Patches, class token and positions, pre-normed: [B, patches + 1, hidden].
    fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [b, _, _, _] = pixels.dims();
        let p = self.config.patch_size;
        let d = self.config.hidden_size;
        let n = self.config.patches();
        let dtype = self.patch_embedding.dtype();
        let patches =
            conv2d(pixels.cast(dtype), self.patch_embedding.clone(), None, ConvOptions::new([p, p], [0, 0], [1, 1], 1));
        let patches = patches.reshape([b, d, n]).swap_dims(1, 2);
        let class = self.class_embedding.clone().reshape([1, 1, d]).expand([b, 1, d]);
        let x = Tensor::cat(vec![class, patches], 1) + self.position_embedding.clone().unsqueeze_dim::<3>(0);
        self.pre_layrnorm.forward(x)
    }
}
