//! transformers' `CLIPModel`: the text tower with `text_projection` and the vision tower with
//! `visual_projection` in one folder (config.json with `text_config`, `vision_config` and
//! `projection_dim`; model.safetensors; vocab.json and merges.txt), e.g.
//! openai/clip-vit-large-patch14. What visual search and CLIP scores use: text and images in
//! one embedding space.

use crate::diffusers::clip::text::{ClipTextConfig, ClipTextModel};
use crate::diffusers::clip::tokenizer::ClipTokenizer;
use crate::diffusers::clip::vision::{ClipVisionConfig, ClipVisionModelWithProjection};
use crate::diffusers::common::image_processing::Planar;
use crate::diffusers::common::layers::Linear;
use crate::diffusers::common::weights::{LoadError, Weights};
use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// CLIP's pixel normalisation (CLIPImageProcessor's defaults).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Whether `dir` holds a CLIPModel (its config.json says `model_type: clip`).
pub fn is_clip_folder(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .is_some_and(|c| c["model_type"] == "clip")
}

/// The parsed config.json of a CLIPModel folder.
#[derive(Debug, Clone)]
pub struct ClipModelConfig {
    pub text: ClipTextConfig,
    pub vision: ClipVisionConfig,
    pub projection_dim: usize,
    /// The end-of-text token id: the text's embedding is read there (2, as old configs say,
    /// means "the largest id", as transformers reads those).
    pub eos_token_id: i64,
}

impl ClipModelConfig {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let mut c: serde_json::Value = crate::diffusers::common::config::read_json(path)?;
        if c["model_type"] != "clip" {
            return Err(LoadError::config(
                path,
                "model_type",
                &c["model_type"],
                "not a CLIPModel (model_type must be \"clip\")",
            ));
        }
        let projection_dim = c["projection_dim"].as_u64().unwrap_or(512) as usize;
        // The towers' own configs carry a projection_dim of their own; the model's is used.
        c["vision_config"]["projection_dim"] = projection_dim.into();
        let part = |name: &str| -> Result<serde_json::Value, LoadError> {
            c.get(name).filter(|v| v.is_object()).cloned().ok_or_else(|| {
                LoadError::config(path, name, "missing", "a CLIPModel config has text_config and vision_config")
            })
        };
        let text: ClipTextConfig = serde_json::from_value(part("text_config")?)
            .map_err(|e| LoadError::config(path, "text_config", "", &e.to_string()))?;
        let vision: ClipVisionConfig = serde_json::from_value(part("vision_config")?)
            .map_err(|e| LoadError::config(path, "vision_config", "", &e.to_string()))?;
        if vision.patch_size == 0 || !vision.image_size.is_multiple_of(vision.patch_size) {
            return Err(LoadError::config(
                path,
                "vision_config.patch_size",
                vision.patch_size,
                "must divide image_size",
            ));
        }
        let eos_token_id = c["text_config"]["eos_token_id"].as_i64().unwrap_or(2);
        Ok(Self { text, vision, projection_dim, eos_token_id })
    }
}

#[derive(Debug, Clone)]
pub struct ClipModel {
    pub text_model: ClipTextModel,
    text_projection: Linear,
    pub vision: ClipVisionModelWithProjection,
    /// `logit_scale` (its exp multiplies cosine similarities into logits).
    pub logit_scale: f32,
    pub config: ClipModelConfig,
    tokenizer: Option<ClipTokenizer>,
}

impl ClipModel {
    /// Builds the model from `weights` (every tensor must be used; see [`Weights::finish`]).
    pub fn load(weights: &Weights, config: &ClipModelConfig, config_path: &Path) -> Result<Self, LoadError> {
        let text_model = ClipTextModel::load(weights, &config.text, config_path)?;
        let root = weights.root();
        let text_projection =
            Linear::load(&root.pp("text_projection"), config.text.hidden_size, config.projection_dim, false)?;
        let vision = ClipVisionModelWithProjection::load(weights, &config.vision, config_path)?;
        let logit_scale = weights.host_f32("logit_scale", &[])?.first().copied().unwrap_or(0.0);
        weights.finish()?;
        Ok(Self { text_model, text_projection, vision, logit_scale, config: config.clone(), tokenizer: None })
    }

    /// Loads a CLIPModel folder: config.json, its safetensors and its tokenizer files, in f32.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self, LoadError> {
        let config_path = dir.join("config.json");
        let config = ClipModelConfig::read(&config_path)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| LoadError::File { path: dir.to_path_buf(), message: e.to_string() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            // model.safetensors, or its shards (model-00001-of-00002.safetensors).
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("model") && n.ends_with(".safetensors"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::File {
                path: dir.to_path_buf(),
                message: "no model.safetensors in the CLIP folder (pickle checkpoints are not loaded)".into(),
            });
        }
        let weights = Weights::open(&files, device, DType::F32)?;
        let mut model = Self::load(&weights, &config, &config_path)?;
        model.tokenizer = Some(ClipTokenizer::load(dir)?);
        Ok(model)
    }

    /// Where each row's text embedding is read: the end-of-text token.
    fn eos_positions(&self, ids: &[Vec<u32>]) -> Vec<usize> {
        ids.iter()
            .map(|row| {
                if self.config.eos_token_id == 2 {
                    // Old configs: the largest id is the end token.
                    row.iter().enumerate().max_by_key(|&(i, id)| (*id, std::cmp::Reverse(i))).map_or(0, |(i, _)| i)
                } else {
                    row.iter().position(|&id| id as i64 == self.config.eos_token_id).unwrap_or(row.len() - 1)
                }
            })
            .collect()
    }

    /// `text_embeds` before normalisation ([B, projection_dim]) for token ids (each row as
    /// long as the model's positions, or shorter).
    pub fn text_features(&self, ids: &[Vec<u32>], device: &Device) -> Tensor<2> {
        let (b, t) = (ids.len(), ids[0].len());
        let flat: Vec<i64> = ids.iter().flat_map(|r| r.iter().map(|&i| i as i64)).collect();
        let tensor = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), device).reshape([b, t]);
        let hidden = self.text_model.forward(tensor);
        let d = self.config.text.hidden_size;
        let rows: Vec<Tensor<2>> = self
            .eos_positions(ids)
            .into_iter()
            .enumerate()
            .map(|(row, at)| hidden.clone().slice([row..row + 1, at..at + 1, 0..d]).reshape([1, d]))
            .collect();
        self.text_projection.forward(Tensor::cat(rows, 0))
    }

    /// Token ids of `texts` as the model reads them (start, text, end, padding), or `None`
    /// without a tokenizer (a model built by [`ClipModel::load`]).
    pub fn tokenize(&self, texts: &[&str]) -> Option<Vec<Vec<u32>>> {
        let tokenizer = self.tokenizer.as_ref()?;
        Some(texts.iter().map(|t| tokenizer.encode_padded(t)).collect())
    }

    /// `image_embeds` before normalisation ([B, projection_dim]) for normalised pixels
    /// [B, 3, image_size, image_size].
    pub fn image_features(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.vision.forward(pixels)
    }

    /// Pictures as the vision tower takes them: the shorter side scaled to the model's image
    /// size (with antialiasing), the centre cut square, CLIP's normalisation.
    pub fn pixels(&self, images: &[RgbImage], device: &Device) -> Tensor<4> {
        let size = self.config.vision.image_size;
        let planes: Vec<Tensor<4>> = images
            .iter()
            .map(|img| {
                let (w, h) = (img.width() as usize, img.height() as usize);
                let scale = size as f64 / w.min(h) as f64;
                let (nw, nh) =
                    (((w as f64 * scale).round() as usize).max(size), ((h as f64 * scale).round() as usize).max(size));
                let resized = Planar::from_rgb8(img, |v| v).resize_with_antialiasing(nh, nw);
                let (top, left) = ((nh - size) / 2, (nw - size) / 2);
                let mut data = Vec::with_capacity(3 * size * size);
                for c in 0..3 {
                    for y in 0..size {
                        let row = (c * nh + top + y) * nw + left;
                        data.extend_from_slice(&resized.data[row..row + size]);
                    }
                }
                let mut p = Planar { width: size, height: size, data };
                p.normalize(CLIP_MEAN, CLIP_STD);
                Tensor::<4>::from_data(TensorData::new(p.data, [1, 3, size, size]), device)
            })
            .collect();
        Tensor::cat(planes, 0)
    }
}

impl ClipModel {
    /// Normalised image embeddings, one per picture (the pictures prepared as CLIP wants).
    pub fn image_embeddings(&self, images: &[RgbImage], device: &Device) -> Vec<Vec<f32>> {
        rows(normalized(self.image_features(self.pixels(images, device))))
    }

    /// Normalised text embeddings, one per text; `None` without a tokenizer.
    pub fn text_embeddings(&self, texts: &[&str], device: &Device) -> Option<Vec<Vec<f32>>> {
        let ids = self.tokenize(texts)?;
        Some(rows(normalized(self.text_features(&ids, device))))
    }
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    let flat = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    flat.chunks(d.max(1)).map(<[f32]>::to_vec).collect()
}

/// Rows scaled to unit length.
pub fn normalized(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
