//! Real open models in the diffusers folder layout, ported to Burn with diffusers' module and
//! field names so their safetensors load as they are.
//!
//! - [`weights`]: safetensors reading, scoped names, used-tensor accounting.
//! - [`layers`], [`blocks`]: PyTorch layers and the blocks diffusers' image and video models share.
//! - [`clip`] + [`tokenizer`]: the CLIP text encoder and its BPE tokenizer.
//! - [`unet_2d_condition`], [`autoencoder_kl`], [`scheduler`]: the Stable Diffusion parts.
//! - [`folder`]: finding a model folder locally or in the Hugging Face cache, downloading it.
//! - [`stable_diffusion`]: the text-to-image pipeline.
//! - [`clip_vision`], [`spatio_temporal`], [`unet_spatio_temporal`],
//!   [`autoencoder_kl_temporal_decoder`], [`image_processing`]: the Stable Video Diffusion parts.
//! - [`stable_video_diffusion`]: the image-to-video pipeline.

pub mod autoencoder_kl;
pub mod autoencoder_kl_temporal_decoder;
pub mod blocks;
pub mod clip;
pub mod clip_vision;
pub mod folder;
pub mod image_processing;
pub mod layers;
pub mod scheduler;
pub mod spatio_temporal;
pub mod stable_diffusion;
pub mod stable_video_diffusion;
pub mod tokenizer;
pub mod unet_2d_condition;
pub mod unet_spatio_temporal;
pub mod weights;

/// The compute precision of a loaded model.
pub use burn::tensor::DType;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;
use weights::LoadError;

/// Reads and parses a JSON file; errors name the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::File { path: path.into(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| LoadError::File { path: path.into(), message: format!("invalid JSON: {e}") })
}

/// A config value given once for all blocks or once per block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IntOrList {
    One(usize),
    List(Vec<usize>),
}

impl IntOrList {
    pub fn per_block(&self, blocks: usize) -> Result<Vec<usize>, String> {
        match self {
            IntOrList::One(v) => Ok(vec![*v; blocks]),
            IntOrList::List(v) if v.len() == blocks => Ok(v.clone()),
            IntOrList::List(v) => Err(format!("has {} entries for {blocks} blocks", v.len())),
        }
    }
}

impl std::fmt::Display for IntOrList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrList::One(v) => write!(f, "{v}"),
            IntOrList::List(v) => write!(f, "{v:?}"),
        }
    }
}

/// Fails when a config sets a key to something other than the value this port implements
/// (absent keys and nulls are the defaults).
pub fn check_unsupported(path: &Path, raw: &serde_json::Value, keys: &[(&str, &str)]) -> Result<(), LoadError> {
    for (key, expected) in keys {
        let Some(value) = raw.get(*key) else { continue };
        let expected: serde_json::Value = serde_json::from_str(expected).expect("valid JSON literal");
        let same = value == &expected
            || value.is_null()
            || matches!((value.as_f64(), expected.as_f64()), (Some(a), Some(b)) if a == b);
        if !same {
            return Err(LoadError::config(path, key, value, &format!("this port implements {expected} only")));
        }
    }
    Ok(())
}

/// Block type lists must have one entry per `block_out_channels` entry, each of the given kinds.
pub fn check_block_lists(path: &Path, channels: usize, lists: [(&str, &[String], &[&str]); 2]) -> Result<(), LoadError> {
    for (key, list, allowed) in lists {
        if channels == 0 || list.len() != channels {
            return Err(LoadError::config(path, key, list.len(), "block lists must have one entry per block_out_channels"));
        }
        if let Some(t) = list.iter().find(|t| !allowed.contains(&t.as_str())) {
            return Err(LoadError::config(path, key, t, &format!("supported: {}", allowed.join(", "))));
        }
    }
    Ok(())
}
