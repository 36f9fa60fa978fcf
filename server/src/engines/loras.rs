//! The LoRAs jobs may use: the `.safetensors` files of the models folder's `loras/` (a job names
//! a file there and a scale, `JobParams::loras`); checked when a job is submitted and read when
//! it runs, for the engines whose description says they take LoRAs.

use app::models::ModelInfo;
use app::params::{LoraChoice, MAX_LORA_SCALE, MAX_LORAS};
use model::diffusers::common::lora::{Lora, LoraUse};
use model::generate::GenerateError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// LoRA files kept read, by their size on disk: a job that uses one again (the merged model is
/// cached by the LoRAs' hashes) does not read and hash the file again. Their f32 copies sit
/// outside the model memory budget, so this stays small, and a larger file is read every time.
const KEPT_BYTES: u64 = 512 << 20;

/// A file read: its path, the modification time and size it had, and what it holds.
type Kept = (PathBuf, SystemTime, u64, Arc<Lora>);

#[derive(Clone, Default)]
pub struct LoraLibrary {
    /// The folder (none: no LoRAs offered).
    dir: Option<PathBuf>,
    /// The last files read, newest last.
    read: Arc<Mutex<Vec<Kept>>>,
}

impl LoraLibrary {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, read: Arc::default() }
    }

    /// The file at `path`, from those kept when it has not changed since, else read.
    fn read(&self, path: &Path) -> Result<Arc<Lora>, model::diffusers::common::weights::LoadError> {
        let stamp = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        let kept = || self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((modified, len)) = stamp {
            let mut kept = kept();
            if let Some(i) = kept.iter().position(|(p, t, l, _)| p == path && *t == modified && *l == len) {
                let entry = kept.remove(i);
                let lora = entry.3.clone();
                kept.push(entry);
                return Ok(lora);
            }
        }
        // Read without holding the others up.
        let lora = Arc::new(Lora::read(path)?);
        let mut kept = kept();
        kept.retain(|(p, ..)| p != path);
        if let Some((modified, len)) = stamp.filter(|(_, len)| *len <= KEPT_BYTES) {
            kept.push((path.to_path_buf(), modified, len, lora.clone()));
            while kept.iter().map(|(_, _, len, _)| len).sum::<u64>() > KEPT_BYTES {
                kept.remove(0);
            }
        }
        Ok(lora)
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
                let lora = self
                    .read(&dir.join(&choice.file))
                    .map_err(|e| GenerateError::InvalidRequest(format!("the LoRA {:?}: {e}", choice.file)))?;
                Ok(LoraUse { lora, scale: choice.scale })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::LoraLibrary;
    use app::params::LoraChoice;
    use std::sync::Arc;

    /// A file used again is the one read before; a changed file is read again.
    #[test]
    fn files_are_read_once_until_they_change() {
        let dir = std::env::temp_dir().join(format!("vidplay-loras-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/wan");
        std::fs::copy(fixtures.join("wan1-lora/comfyui.safetensors"), dir.join("a.safetensors")).unwrap();
        let library = LoraLibrary::new(Some(dir.clone()));
        let choice = [LoraChoice { file: "a.safetensors".into(), scale: 1.0 }];
        let first = library.load(&choice).unwrap().remove(0).lora;
        let again = library.load(&choice).unwrap().remove(0).lora;
        assert!(Arc::ptr_eq(&first, &again), "read once");
        std::fs::copy(fixtures.join("wan1-lora/comfyui-diff.safetensors"), dir.join("a.safetensors")).unwrap();
        let changed = library.load(&choice).unwrap().remove(0).lora;
        assert_ne!(changed.sha256, first.sha256, "a changed file is read again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
