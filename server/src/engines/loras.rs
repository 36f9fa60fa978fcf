//! The LoRAs jobs may use: the `.safetensors` files of the models folder's `loras/` (a job names
//! a file there and a scale, `JobParams::loras`), and those of LoRA repos in the Hugging Face
//! cache (`ORG/NAME/FILE`: a repo downloaded with the hub's tools that holds no model, that is
//! no `model_index.json` and no `config.json`); checked when a job is submitted and read when it
//! runs, for the engines whose description says they take LoRAs.

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
    /// The Hugging Face cache's `hub` folder, whose LoRA repos are offered too.
    hub: Option<PathBuf>,
    /// The last files read, newest last.
    read: Arc<Mutex<Vec<Kept>>>,
}

impl LoraLibrary {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, hub: None, read: Arc::default() }
    }

    /// Also the LoRA repos of the Hugging Face cache at `hub`.
    pub fn with_hub(mut self, hub: PathBuf) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The cached LoRA repos' files: (`ORG/NAME/FILE`, its path).
    fn hub_files(&self) -> Vec<(String, PathBuf)> {
        let Some(hub) = &self.hub else { return Vec::new() };
        let Ok(repos) = std::fs::read_dir(hub) else { return Vec::new() };
        let mut found = Vec::new();
        for repo in repos.flatten() {
            let folder = repo.file_name().to_string_lossy().into_owned();
            let Some(id) = folder.strip_prefix("models--").map(|r| r.replacen("--", "/", 1)) else { continue };
            // The snapshot `main` points at.
            let Ok(rev) = std::fs::read_to_string(repo.path().join("refs/main")) else { continue };
            let snapshot = repo.path().join("snapshots").join(rev.trim());
            if snapshot.join("model_index.json").exists() || snapshot.join("config.json").exists() {
                continue;
            }
            for (rel, path) in safetensors_under(&snapshot, "", 2) {
                found.push((format!("{id}/{rel}"), path));
            }
        }
        found.sort();
        found
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

    /// The LoRA files offered, by name: the folder's, sorted, then the cache's.
    pub fn list(&self) -> Vec<String> {
        self.offered().into_iter().map(|(name, _)| name).collect()
    }

    /// The LoRA files offered, by name, with their paths.
    fn offered(&self) -> Vec<(String, PathBuf)> {
        let mut offered = self.dir.as_ref().map_or_else(Vec::new, |dir| safetensors_under(dir, "", 0));
        offered.extend(self.hub_files());
        offered
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
        let offered = self.offered();
        loras
            .iter()
            .map(|choice| {
                let gone = || GenerateError::InvalidRequest(format!("the LoRA {:?} is no longer offered", choice.file));
                let (_, path) = offered.iter().find(|(name, _)| *name == choice.file).ok_or_else(gone)?;
                let lora = self
                    .read(path)
                    .map_err(|e| GenerateError::InvalidRequest(format!("the LoRA {:?}: {e}", choice.file)))?;
                Ok(LoraUse { lora, scale: choice.scale })
            })
            .collect()
    }
}

/// The `.safetensors` files under `dir` (`prefix` before their names), `depth` folders down,
/// hidden ones left out, sorted.
fn safetensors_under(dir: &Path, prefix: &str, depth: usize) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            found.extend(safetensors_under(&path, &format!("{prefix}{name}/"), depth - 1));
        } else if path.is_file() && name.ends_with(".safetensors") {
            found.push((format!("{prefix}{name}"), path));
        }
    }
    found.sort();
    found
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

    /// A LoRA repo in the Hugging Face cache is offered by `ORG/NAME/FILE` and loads; a model
    /// repo there is not offered, nor is a name outside what is listed.
    #[test]
    fn lora_repos_of_the_hub_cache_are_offered() {
        let hub = std::env::temp_dir().join(format!("vidplay-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&hub);
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/wan");
        for (repo, extra) in [("models--lightx2v--Wan-Lora", None), ("models--org--a-model", Some("model_index.json"))]
        {
            let snapshot = hub.join(repo).join("snapshots/abc123");
            std::fs::create_dir_all(snapshot.join("high")).unwrap();
            std::fs::create_dir_all(hub.join(repo).join("refs")).unwrap();
            std::fs::write(hub.join(repo).join("refs/main"), "abc123\n").unwrap();
            std::fs::copy(fixtures.join("wan1-lora/comfyui.safetensors"), snapshot.join("high/model.safetensors"))
                .unwrap();
            if let Some(file) = extra {
                std::fs::write(snapshot.join(file), "{}").unwrap();
            }
        }
        let library = LoraLibrary::new(None).with_hub(hub.clone());
        assert_eq!(library.list(), ["lightx2v/Wan-Lora/high/model.safetensors"]);
        let choice = [LoraChoice { file: "lightx2v/Wan-Lora/high/model.safetensors".into(), scale: 1.0 }];
        assert_eq!(library.load(&choice).unwrap()[0].lora.components(), ["transformer"]);
        let outside = [LoraChoice { file: "org/a-model/high/model.safetensors".into(), scale: 1.0 }];
        assert!(library.load(&outside).is_err());
        let _ = std::fs::remove_dir_all(&hub);
    }
}
