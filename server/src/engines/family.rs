//! A family of installed models, as its engine declares it: the diffusers pipeline classes it
//! runs (`model_index.json`'s `_class_name`) and how its engine is built from a folder. The
//! registry reads these declarations; it never matches on a family itself.

use super::Engine;
use app::types::Mode;
use std::path::Path;
use std::sync::Arc;

pub struct Family {
    /// How results and model descriptions name it: "stable-diffusion", "wan", ...
    pub name: &'static str,
    /// The diffusers pipeline classes its engine runs.
    pub pipelines: &'static [&'static str],
    /// What its engine does on its own (its description's tasks; a registry may chain it with
    /// others for more).
    pub tasks: &'static [Mode],
    /// Its engine for the model `name` in the folder `path` (reads configs only: loading the
    /// weights waits for the first job).
    pub build: fn(name: &str, path: &Path) -> Arc<dyn Engine>,
}

impl Family {
    pub fn runs(&self, class: &str) -> bool {
        self.pipelines.contains(&class)
    }
}

/// A model folder's weights in MiB: what loading it costs, roughly.
pub fn weights_mib(root: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                match e.metadata() {
                    Ok(m) if m.is_dir() && depth < 2 => walk(&path, depth + 1),
                    Ok(m) if path.extension().is_some_and(|x| x == "safetensors") => m.len(),
                    _ => 0,
                }
            })
            .sum()
    }
    walk(root, 0).div_ceil(1 << 20).max(1)
}
