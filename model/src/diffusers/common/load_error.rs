//! What loading weights can go wrong with ([`LoadError`]: every message names the file, and
//! the key or config value), and reading a stored tensor's bytes as f32 ([`decode_f32`]): shared
//! by the weights reader and the LoRA reader, which each build on them.

use safetensors::Dtype as StDtype;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{key}`")]
    Missing { path: PathBuf, key: String },
    #[error("{path}: tensor `{key}` has shape {found:?}, the config implies {expected:?}")]
    Shape { path: PathBuf, key: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{path}: tensor `{key}` has dtype {dtype}, only F32, F16 and BF16 are supported")]
    Dtype { path: PathBuf, key: String, dtype: String },
    #[error("{path}: {count} tensors are not used by the model, e.g. {examples}")]
    Unused { path: PathBuf, count: usize, examples: String },
    #[error("{path}: unsupported config value `{key}` = {value}: {why}")]
    Config { path: PathBuf, key: String, value: String, why: String },
}

impl LoadError {
    pub fn config(path: &Path, key: &str, value: impl std::fmt::Display, why: &str) -> Self {
        LoadError::Config { path: path.to_path_buf(), key: key.into(), value: value.to_string(), why: why.into() }
    }
}

/// A floating tensor's little-endian bytes as f32 values; `None` for a dtype that is not F32,
/// F16 or BF16.
pub fn decode_f32(dtype: StDtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        StDtype::F32 => Some(bytes.as_chunks::<4>().0.iter().map(|c| f32::from_le_bytes(*c)).collect()),
        StDtype::F16 => Some(bytes.as_chunks::<2>().0.iter().map(|c| half::f16::from_le_bytes(*c).to_f32()).collect()),
        StDtype::BF16 => {
            Some(bytes.as_chunks::<2>().0.iter().map(|c| half::bf16::from_le_bytes(*c).to_f32()).collect())
        }
        _ => None,
    }
}
