//! Loading the built-in network's weights: strictly (every tensor of the file, nothing else),
//! f16 files widened to f32.

use crate::builtin::net::{Net, NetConfig};
use burn::prelude::*;
use burn::store::{HalfPrecisionAdapter, ModuleSnapshot, SafetensorsStore};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model weights {path}: {message}")]
    Weights { path: String, message: String },
    #[error("model config: {0}")]
    Config(String),
}

/// Builds a network on `device` and loads every tensor of `store` into it (f16 files are
/// widened to f32); a file that does not match the network exactly is an error naming `origin`.
pub fn load_net(store: SafetensorsStore, config: &NetConfig, origin: &str, device: &Device) -> Result<Net, ModelError> {
    load_net_with_new_layers(store, config, origin, device, &[])
}

/// Like [`load_net`], but layers named in `new_layers` (added to the network after the
/// weights were exported, and zero-initialised so they change nothing) may be missing.
pub fn load_net_with_new_layers(
    store: SafetensorsStore,
    config: &NetConfig,
    origin: &str,
    device: &Device,
    new_layers: &[&str],
) -> Result<Net, ModelError> {
    let mut net = config.init(device);
    // Partial: what is missing is reported below (and refused unless it is a new layer).
    let mut store = store.with_from_adapter(HalfPrecisionAdapter::new()).allow_partial(true);
    let result =
        net.load_from(&mut store).map_err(|e| ModelError::Weights { path: origin.into(), message: e.to_string() })?;
    let missing: Vec<_> = result
        .missing
        .iter()
        .filter(|(path, _)| !new_layers.iter().any(|layer| path == layer || path.starts_with(&format!("{layer}."))))
        .collect();
    if !missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
        return Err(ModelError::Weights {
            path: origin.into(),
            message: format!(
                "weights do not match the network: missing {:?}, unused {:?}, errors {:?}",
                missing, result.unused, result.errors
            ),
        });
    }
    Ok(net)
}
