//! Which models this server runs: the built-in ones, and every diffusers folder installed (the
//! models directory and the Hugging Face cache) whose pipeline a family runs, each behind its
//! family's engine.

use super::Engine;
use super::builtin::BuiltinEngine;
use super::builtin_edit::BuiltinEditEngine;
use super::family::Family;
use super::keyframe_chain::KeyframeChain;
use super::loras::LoraLibrary;
use super::{instruct_pix2pix, stable_diffusion, stable_video_diffusion, wan, wan_image_to_video};
use app::models::ModelInfo;
use app::types::Mode;
use model::diffusers::common::folder;
use std::path::Path;
use std::sync::Arc;

/// Every family of installed models, one line each.
pub const FAMILIES: &[Family] = &[
    stable_diffusion::FAMILY,
    stable_video_diffusion::FAMILY,
    wan::FAMILY,
    wan_image_to_video::FAMILY,
    instruct_pix2pix::FAMILY,
];

/// The family that runs diffusers' pipeline `class`, if any does.
pub fn family_of(class: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.runs(class))
}

/// The order tasks are chosen by, as a model's first task: what a request without a model
/// wants first.
const TASK_ORDER: [Mode; 4] = [Mode::TextToVideo, Mode::TextToImage, Mode::ImageToVideo, Mode::Edit];

pub struct Registry {
    /// The default first: an installed native text-to-video model (Wan), else the built-in one.
    engines: Vec<Arc<dyn Engine>>,
    /// The LoRAs jobs may merge into the models that take them (the models folder's `loras/`).
    pub loras: LoraLibrary,
}

impl Registry {
    /// The built-in models and the installed ones.
    pub fn discover(builtin: BuiltinEngine, models_dir: Option<&Path>) -> Registry {
        let mut installed: Vec<Arc<dyn Engine>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in folder::installed(models_dir) {
            // The first folder of a name wins (the models folder before the cache); folders of
            // pipelines no family runs are skipped.
            let Some(family) = family_of(&m.class_name) else { continue };
            if !seen.insert(m.name.clone()) {
                continue;
            }
            tracing::info!(name = %m.name, path = %m.path.display(), family = family.name, "installed model");
            installed.push((family.build)(&m.name, &m.path));
        }
        let mut registry = Registry::arrange(vec![Arc::new(builtin), Arc::new(BuiltinEditEngine::new())], installed);
        registry.loras = LoraLibrary::new(models_dir.map(|d| d.join("loras"))).with_hub(folder::hub_cache());
        registry
    }

    /// Orders the engines by their first task (text to video, text to image, image to video,
    /// editing), installed models before built-in ones of the same task: an installed
    /// text-to-video model is the default for text to video, and an edit without a model goes
    /// to an installed editor first. A model that only animates images is offered for text to
    /// video too, through a keyframe, when a model makes images from text.
    pub fn arrange(builtin: Vec<Arc<dyn Engine>>, installed: Vec<Arc<dyn Engine>>) -> Registry {
        let rank = |e: &Arc<dyn Engine>| {
            let first = e.info().tasks.first().copied();
            TASK_ORDER.iter().position(|t| Some(*t) == first).unwrap_or(TASK_ORDER.len())
        };
        let mut ranked: Vec<(usize, bool, Arc<dyn Engine>)> = installed
            .into_iter()
            .map(|e| (rank(&e), false, e))
            .chain(builtin.into_iter().map(|e| (rank(&e), true, e)))
            .collect();
        ranked.sort_by_key(|(rank, builtin, _)| (*rank, *builtin));
        let keyframers: Vec<Arc<dyn Engine>> = ranked
            .iter()
            .filter(|(_, _, e)| e.info().tasks == [Mode::TextToImage])
            .map(|(_, _, e)| e.clone())
            .collect();
        let engines = ranked
            .into_iter()
            .map(|(_, _, e)| {
                let animates_only = e.info().tasks == [Mode::ImageToVideo];
                if animates_only && !keyframers.is_empty() {
                    Arc::new(KeyframeChain::new(e, keyframers.clone())) as Arc<dyn Engine>
                } else {
                    e
                }
            })
            .collect();
        Registry { engines, loras: LoraLibrary::default() }
    }

    /// A registry of exactly these engines (the first is the default).
    pub fn of(engines: Vec<Arc<dyn Engine>>) -> Registry {
        Registry { engines, loras: LoraLibrary::default() }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Engine>> {
        self.engines.iter().find(|e| e.info().id == id)
    }

    /// The model a request without one runs on: the first that animates an image when one is
    /// given, else the first that makes video from text, else the first.
    pub fn default_id(&self, has_image: bool) -> &str {
        let wanted = if has_image { Mode::ImageToVideo } else { Mode::TextToVideo };
        self.engines
            .iter()
            .find(|e| e.info().tasks.contains(&wanted))
            .or(self.engines.first())
            .map_or("", |e| &e.info().id)
    }

    /// Every engine, the default first.
    pub fn engines(&self) -> &[Arc<dyn Engine>] {
        &self.engines
    }

    /// Whether the model `id` reads its prompt word by word (its description says so); false
    /// for a model not here.
    pub fn reads_prompt(&self, id: &str) -> bool {
        self.get(id).is_some_and(|e| e.info().reads_prompt)
    }

    pub fn ids(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.info().id.clone()).collect()
    }

    /// Every model's description, the default first.
    pub fn infos(&self) -> Vec<ModelInfo> {
        self.engines.iter().map(|e| e.info().clone()).collect()
    }

    /// The largest side an accepted upload keeps: the largest any model uses.
    pub fn max_input_side(&self) -> u32 {
        self.engines.iter().map(|e| e.max_input_side()).max().unwrap_or(1024)
    }
}
