//! diffusers model folders: `model_index.json` plus one subfolder per component, found locally
//! or in the Hugging Face cache, and downloaded into that cache when missing.

use crate::diffusers::common::weights::{LoadError, Weights};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub root: PathBuf,
    pub class_name: String,
    /// Component names listed in model_index.json (non-null entries).
    pub components: Vec<String>,
    /// model_index.json as read (a pipeline's own settings, e.g. Wan's `boundary_ratio`).
    pub index: serde_json::Value,
}

/// Weight precision preference when a folder holds both plain and `fp16` variant files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl ModelFolder {
    pub fn open(root: &Path) -> Result<Self, LoadError> {
        let index_path = root.join("model_index.json");
        if !index_path.is_file() {
            return Err(LoadError::File {
                path: index_path,
                message: "not found: a diffusers model folder has a model_index.json".into(),
            });
        }
        let raw: serde_json::Value = crate::diffusers::common::config::read_json(&index_path)?;
        let class_name = raw.get("_class_name").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let components = raw
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, v)| {
                        !k.starts_with('_') && v.as_array().is_some_and(|a| a.first().is_some_and(|x| !x.is_null()))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self { root: root.to_path_buf(), class_name, components, index: raw })
    }

    /// Checks the folder holds the pipeline `class` (`model_index.json`'s `_class_name`), which
    /// a loader of that pipeline names.
    pub fn expect_class(&self, class: &str) -> Result<(), LoadError> {
        if self.class_name == class {
            return Ok(());
        }
        Err(LoadError::config(
            &self.root.join("model_index.json"),
            "_class_name",
            &self.class_name,
            &format!("this loads a {class}"),
        ))
    }

    /// A component's config file.
    pub fn config(&self, component: &str, file: &str) -> Result<PathBuf, LoadError> {
        let p = self.root.join(component).join(file);
        if p.is_file() { Ok(p) } else { Err(LoadError::File { path: p, message: "missing file".into() }) }
    }

    /// Loads one component's weights (`stem`, in the precision `dtype` prefers), builds it, and
    /// checks every tensor in its files was used; gives the model and its tensor count.
    pub fn load_component<T>(
        &self,
        name: &str,
        stem: &str,
        device: &burn::prelude::Device,
        dtype: burn::tensor::DType,
        build: impl FnOnce(&Weights) -> Result<T, LoadError>,
    ) -> Result<(T, usize), LoadError> {
        self.load_component_with(name, stem, device, dtype, &[], &|_| None, build)
    }

    /// [`Self::load_component`] with `loras`' updates of the component merged into its weights
    /// (`rename`: see [`Weights::with_loras`]).
    #[allow(clippy::too_many_arguments)]
    pub fn load_component_with<T>(
        &self,
        name: &str,
        stem: &str,
        device: &burn::prelude::Device,
        dtype: burn::tensor::DType,
        loras: &[super::lora::LoraUse],
        rename: &dyn Fn(&str) -> Option<String>,
        build: impl FnOnce(&Weights) -> Result<T, LoadError>,
    ) -> Result<(T, usize), LoadError> {
        let precision = if dtype == burn::tensor::DType::F32 { Precision::F32 } else { Precision::F16 };
        let files = self.weights(name, stem, precision)?;
        let weights = Weights::open(&files, device, dtype)?.with_loras(name, loras, rename)?;
        let built = build(&weights)?;
        weights.finish()?;
        Ok((built, weights.len()))
    }

    /// A component's safetensors weight files (one file, or the shards named by an index),
    /// preferring the `fp16` variant for f16 and plain files for f32. Pickle-only components are refused.
    pub fn weights(&self, component: &str, stem: &str, precision: Precision) -> Result<Vec<PathBuf>, LoadError> {
        let dir = self.root.join(component);
        let plain = dir.join(format!("{stem}.safetensors"));
        let half = dir.join(format!("{stem}.fp16.safetensors"));
        let order = match precision {
            Precision::F16 => [&half, &plain],
            Precision::F32 => [&plain, &half],
        };
        for p in order {
            if p.is_file() {
                return Ok(vec![p.clone()]);
            }
        }
        for variant in match precision {
            Precision::F16 => [".fp16", ""],
            Precision::F32 => ["", ".fp16"],
        } {
            // transformers and diffusers name a variant's index `x.safetensors.index.fp16.json`.
            let index =
                [format!("{stem}{variant}.safetensors.index.json"), format!("{stem}.safetensors.index{variant}.json")]
                    .into_iter()
                    .map(|name| dir.join(name))
                    .find(|p| p.is_file());
            if let Some(index) = index {
                let raw: serde_json::Value = crate::diffusers::common::config::read_json(&index)?;
                let mut files: Vec<String> = raw
                    .get("weight_map")
                    .and_then(|m| m.as_object())
                    .map(|m| m.values().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                files.sort();
                files.dedup();
                if files.is_empty() {
                    return Err(LoadError::File { path: index, message: "no weight_map".into() });
                }
                return Ok(files.into_iter().map(|f| dir.join(f)).collect());
            }
        }
        for pickle in [format!("{stem}.bin"), format!("{stem}.fp16.bin"), format!("{stem}.ckpt")] {
            if dir.join(&pickle).is_file() {
                return Err(LoadError::File {
                    path: dir.join(pickle),
                    message: "only a pickle checkpoint is here; pickle files are refused (they can run code): use a safetensors copy".into(),
                });
            }
        }
        Err(LoadError::File { path: plain, message: format!("missing file (nor {stem}.fp16.safetensors)") })
    }
}

/// Where models come from on the Hugging Face hub: the cache folder and the server. Read from
/// the environment as the hub's own tools do (`HF_HOME`, `HF_ENDPOINT`), or given.
#[derive(Debug, Clone)]
pub struct Hub {
    /// The cache's `hub` folder (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache: PathBuf,
    /// The hub's address; `None` is huggingface.co.
    pub endpoint: Option<String>,
}

impl Hub {
    pub fn from_env() -> Self {
        let cache = hf_hub::Cache::from_env().path().clone();
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
        Hub { cache, endpoint }
    }

    /// The cached snapshot of a repo at `main`, if its model_index.json is there.
    pub fn cached_snapshot(&self, repo: &str) -> Option<PathBuf> {
        let cache = hf_hub::Cache::new(self.cache.clone());
        let path = cache.model(repo.to_string()).get("model_index.json")?;
        path.parent().map(Path::to_path_buf)
    }

    /// Downloads a diffusers repo's pipeline files into the Hugging Face cache (resumable, with a
    /// progress bar on a terminal, `HF_TOKEN` or the cached login honoured) and returns the snapshot.
    pub fn download(&self, repo: &str, precision: Precision, progress: bool) -> Result<PathBuf, LoadError> {
        use hf_hub::api::sync::ApiBuilder;
        let err = |message: String| LoadError::File { path: PathBuf::from(repo), message };
        let mut builder =
            ApiBuilder::from_cache(hf_hub::Cache::new(self.cache.clone())).with_progress(progress).with_retries(3);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if let Ok(token) = std::env::var("HF_TOKEN")
            && !token.trim().is_empty()
        {
            builder = builder.with_token(Some(token.trim().to_string()));
        }
        let api = builder.build().map_err(|e| err(format!("hub client: {e}")))?;
        let repo_api = api.model(repo.to_string());
        let info = repo_api.info().map_err(|e| err(format!("cannot list the repository on the hub: {e}")))?;
        let files: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
        if !files.iter().any(|f| f == "model_index.json") {
            return Err(err("the repository has no model_index.json: not a diffusers pipeline".into()));
        }
        let mut snapshot = None;
        for f in wanted(&files, precision) {
            let path = repo_api.download(&f).map_err(|e| err(format!("downloading {f}: {e}")))?;
            if f == "model_index.json" {
                snapshot = path.parent().map(Path::to_path_buf);
            }
        }
        snapshot.ok_or_else(|| err("download gave no model_index.json".into()))
    }

    /// A model argument: a local folder, a cached repo, or a repo to download.
    pub fn resolve(&self, model: &str, precision: Precision, allow_download: bool) -> Result<PathBuf, LoadError> {
        let p = Path::new(model);
        if p.is_dir() {
            return Ok(p.to_path_buf());
        }
        if !is_repo_id(model) {
            return Err(LoadError::File {
                path: p.into(),
                message: "no such folder, and not a Hugging Face repo id (owner/name)".into(),
            });
        }
        if let Some(snapshot) = self.cached_snapshot(model) {
            return Ok(snapshot);
        }
        if !allow_download {
            return Err(LoadError::File { path: p.into(), message: "not in the Hugging Face cache".into() });
        }
        self.download(model, precision, std::io::IsTerminal::is_terminal(&std::io::stderr()))
    }

    /// Every repository in the cache with a snapshot: (owner/name, snapshot folder).
    fn cached_repos(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.cache) else { return Vec::new() };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
        entries.sort();
        entries
            .iter()
            .filter_map(|dir| dir.strip_prefix("models--"))
            .map(|rest| rest.replacen("--", "/", 1))
            .filter_map(|repo| self.cached_snapshot(&repo).map(|snapshot| (repo, snapshot)))
            .collect()
    }
}

/// The Hugging Face hub cache directory of this environment.
pub fn hub_cache() -> PathBuf {
    Hub::from_env().cache
}

/// A repo id looks like `owner/name`.
pub fn is_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
        if !a.is_empty() && !b.is_empty() && !a.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)))
}

/// The cached snapshot of a repo at `main` in this environment's cache.
pub fn cached_snapshot(repo: &str) -> Option<PathBuf> {
    Hub::from_env().cached_snapshot(repo)
}

/// The components the pipelines run (not e.g. SD 1.5's safety checker).
const COMPONENTS: [&str; 8] =
    ["unet", "transformer", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder", "feature_extractor"];

/// Files a pipeline needs: configs, tokenizer files and one precision's safetensors per
/// component (a single file, or every shard with its index).
fn wanted(files: &[String], precision: Precision) -> Vec<String> {
    let mut out = vec!["model_index.json".to_string()];
    let files: Vec<&String> =
        files.iter().filter(|f| f.split_once('/').is_some_and(|(dir, _)| COMPONENTS.contains(&dir))).collect();
    let is_index = |name: &str| name.contains(".safetensors.index") && name.ends_with(".json");
    for &f in &files {
        let name = f.rsplit('/').next().unwrap_or(f);
        let is_config = name.ends_with(".json") && !is_index(name) && f.contains('/');
        let is_tok = f.starts_with("tokenizer") && (name == "vocab.json" || name == "merges.txt");
        if is_config || is_tok {
            out.push(f.clone());
        }
    }
    // `x.fp16.safetensors`, `x.fp16-00001-of-00002.safetensors`, `x.safetensors.index.fp16.json`.
    let is_half = |f: &str| f.contains(".fp16.") || f.contains(".fp16-");
    let weights: Vec<&String> = files.iter().copied().filter(|f| f.matches('/').count() == 1).collect();
    let mut dirs: Vec<&str> = weights.iter().filter_map(|f| f.split_once('/').map(|(d, _)| d)).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        let in_dir: Vec<&String> = weights
            .iter()
            .copied()
            .filter(|f| f.starts_with(&format!("{dir}/")) && (f.ends_with(".safetensors") || is_index(f)))
            .collect();
        let want_half = precision == Precision::F16;
        let half = if in_dir.iter().any(|f| f.ends_with(".safetensors") && is_half(f) == want_half) {
            want_half
        } else {
            !want_half
        };
        out.extend(in_dir.into_iter().filter(|f| is_half(f) == half).cloned());
    }
    out
}

/// A model argument: a local folder, a repo in this environment's cache, or a repo to download.
pub fn resolve(model: &str, precision: Precision, allow_download: bool) -> Result<PathBuf, LoadError> {
    Hub::from_env().resolve(model, precision, allow_download)
}

/// An installed model: where it is and which diffusers pipeline it holds (what runs it is the
/// server's concern).
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub path: PathBuf,
    /// `model_index.json`'s `_class_name`, e.g. `StableDiffusionPipeline`.
    pub class_name: String,
}

/// Models in a local models directory (each subfolder with a model_index.json) and in this
/// environment's Hugging Face cache.
pub fn installed(local: Option<&Path>) -> Vec<Installed> {
    installed_in(&Hub::from_env(), local)
}

/// Models in a local models directory and in the given hub's cache.
pub fn installed_in(hub: &Hub, local: Option<&Path>) -> Vec<Installed> {
    let mut out = Vec::new();
    if let Some(dir) = local
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if let Ok(f) = ModelFolder::open(&path) {
                let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                out.push(Installed { name, path, class_name: f.class_name });
            }
        }
    }
    for (repo, snapshot) in hub.cached_repos() {
        if let Ok(f) = ModelFolder::open(&snapshot) {
            out.push(Installed { name: repo, path: snapshot, class_name: f.class_name });
        }
    }
    out
}

/// CLIPModel folders (transformers layout, `model_type: clip`) in a local models directory and
/// in the Hugging Face cache, as (name, folder): the models visual search and CLIP scores use.
pub fn installed_clip(local: Option<&Path>) -> Vec<(String, PathBuf)> {
    let is_clip = crate::diffusers::clip::model::is_clip_folder;
    let mut out = Vec::new();
    if let Some(dir) = local
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| is_clip(p)) {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            out.push((name, path));
        }
    }
    out.extend(Hub::from_env().cached_repos().into_iter().filter(|(_, snapshot)| is_clip(snapshot)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_one_weight_file_per_component() {
        let files: Vec<String> = [
            "model_index.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json",
            "README.md",
            "safety_checker/config.json",
            "safety_checker/model.safetensors",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let half = wanted(&files, Precision::F16);
        assert!(half.contains(&"unet/diffusion_pytorch_model.fp16.safetensors".to_string()));
        assert!(!half.contains(&"unet/diffusion_pytorch_model.safetensors".to_string()));
        assert!(half.contains(&"vae/diffusion_pytorch_model.safetensors".to_string()));
        let full = wanted(&files, Precision::F32);
        assert!(full.contains(&"unet/diffusion_pytorch_model.safetensors".to_string()));
        assert!(!full.iter().any(|f| f.ends_with(".bin") || f == "README.md" || f.starts_with("safety_checker")));
        assert!(full.contains(&"tokenizer/merges.txt".to_string()));
        // Sharded components come whole, with their index, in one precision.
        let sharded: Vec<String> = [
            "model_index.json",
            "transformer/config.json",
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "text_encoder/model.fp16-00001-of-00002.safetensors",
            "text_encoder/model.fp16-00002-of-00002.safetensors",
            "text_encoder/model.safetensors.index.fp16.json",
            "text_encoder/model-00001-of-00001.safetensors",
            "text_encoder/model.safetensors.index.json",
            "tokenizer/tokenizer.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let half = wanted(&sharded, Precision::F16);
        for f in [
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "text_encoder/model.fp16-00002-of-00002.safetensors",
            "text_encoder/model.safetensors.index.fp16.json",
            "tokenizer/tokenizer.json",
        ] {
            assert!(half.contains(&f.to_string()), "{f} in {half:?}");
        }
        assert!(!half.contains(&"text_encoder/model-00001-of-00001.safetensors".to_string()));
        let full = wanted(&sharded, Precision::F32);
        assert!(full.contains(&"text_encoder/model-00001-of-00001.safetensors".to_string()));
        assert!(!full.iter().any(|f| f.contains(".fp16")), "{full:?}");
        assert!(is_repo_id("stabilityai/sd-turbo"));
        assert!(!is_repo_id("/tmp/x") && !is_repo_id("a/b/c") && !is_repo_id("../x"));
    }
}
