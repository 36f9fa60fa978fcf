//! What the built-in models' trainers write: f16 inference weights with their config beside
//! them (what the playground ships and loads), each file written atomically.

use burn::store::{HalfPrecisionAdapter, ModuleSnapshot, SafetensorsStore};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Exports `module` as f16 safetensors at `weights` (recording the training `step`), and
/// `config` as JSON next to it (`NAME.json`); returns the config's path.
pub fn export_f16<M: ModuleSnapshot>(
    module: &M,
    weights: &Path,
    step: u64,
    config: &impl Serialize,
) -> anyhow::Result<PathBuf> {
    if let Some(parent) = weights.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = weights.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_to_adapter(HalfPrecisionAdapter::new())
        .metadata("vidplay.step", step.to_string())
        .overwrite(true);
    module.save_into(&mut store).map_err(|e| anyhow::anyhow!("exporting weights: {e}"))?;
    std::fs::rename(&tmp, weights)?;
    let config_path = weights.with_extension("json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
    Ok(config_path)
}
