//! The LoRAs jobs may use: the `.safetensors` files of the models folder's `loras/` (a job names
//! a file there and a scale, `JobParams::loras`); checked when a job is submitted and read when
//! it runs, for the engines whose description says they take LoRAs.

use app::models::ModelInfo;
use app::params::{LoraChoice, MAX_LORA_SCALE, MAX_LORAS};
use model::diffusers::common::lora::{Lora, LoraUse};
use model::generate::GenerateError;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct LoraLibrary {
    /// The folder (none: no LoRAs offered).
    dir: Option<PathBuf>,
}

impl LoraLibrary {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The LoRA files offered, by name, sorted.
    pub fn list(&self) -> Vec<String> {
        let Some(dir) = &self.dir else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.ends_with(".safetensors") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// Whether a job for `model` may use `loras` (a message for the person who sent it if not).
    pub fn check(&self, loras: &[LoraChoice], model: &ModelInfo) -> Result<(), String> {
        if loras.is_empty() {
            return Ok(());
        }
        if !model.takes_loras {
            return Err(format!("{} takes no LoRAs", model.id));
        }
        if loras.len() > MAX_LORAS {
            return Err(format!("at most {MAX_LORAS} LoRAs, not {}", loras.len()));
        }
        let offered = self.list();
        for lora in loras {
            if !offered.contains(&lora.file) {
                return Err(format!(
                    "there is no LoRA {:?} in the server's LoRA folder (GET /api/loras lists them)",
                    lora.file
                ));
            }
            if !lora.scale.is_finite() || lora.scale.abs() > MAX_LORA_SCALE {
                return Err(format!(
                    "a LoRA's scale must be between -{MAX_LORA_SCALE} and {MAX_LORA_SCALE}, not {}",
                    lora.scale
                ));
            }
        }
        Ok(())
    }

    /// The files of `loras`, read (a file that went away or is not a LoRA fails the job).
    pub fn load(&self, loras: &[LoraChoice]) -> Result<Vec<LoraUse>, GenerateError> {
        if loras.is_empty() {
            return Ok(Vec::new());
        }
        let offered = self.list();
        loras
            .iter()
            .map(|choice| {
                let gone = || GenerateError::InvalidRequest(format!("the LoRA {:?} is no longer offered", choice.file));
                let dir = self.dir.as_ref().ok_or_else(gone)?;
                if !offered.contains(&choice.file) {
                    return Err(gone());
                }
                let lora = Lora::read(&dir.join(&choice.file))
                    .map_err(|e| GenerateError::InvalidRequest(format!("the LoRA {:?}: {e}", choice.file)))?;
                Ok(LoraUse { lora: Arc::new(lora), scale: choice.scale })
            })
            .collect()
    }
}
