//! Which models this server runs: the built-in one, and every diffusers folder installed (the
//! models directory and the Hugging Face cache), each behind its family's engine.

use super::Engine;
use super::builtin::BuiltinEngine;
use super::builtin_edit::BuiltinEditEngine;
use super::instruct_pix2pix::InstructPix2PixEngine;
use super::keyframe_chain::KeyframeChain;
use super::stable_diffusion::StableDiffusionEngine;
use super::stable_video_diffusion::StableVideoDiffusionEngine;
use super::wan::WanEngine;
use app::models::ModelInfo;
use app::types::Mode;
use model::diffusers::common::folder::{self, PipelineKind};
use std::path::Path;
use std::sync::Arc;

pub struct Registry {
    /// The default first: an installed native text-to-video model (Wan), else the built-in one.
    engines: Vec<Arc<dyn Engine>>,
}

impl Registry {
    /// The built-in model and the installed ones. An image-to-video model is offered for text to
    /// video too when a text-to-image model is installed to make its keyframes. An installed
    /// text-to-video model (Wan) comes first: it is the default for text to video.
    pub fn discover(builtin: BuiltinEngine, models_dir: Option<&Path>) -> Registry {
        let mut image = Vec::new();
        let mut video = Vec::new();
        let mut text_video: Vec<Arc<dyn Engine>> = Vec::new();
        let mut editors: Vec<Arc<dyn Engine>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in folder::installed(models_dir) {
            // The first folder of a name wins (the models folder before the cache); folders of
            // pipelines no engine runs are skipped.
            if matches!(m.kind, PipelineKind::Other(_)) || !seen.insert(m.name.clone()) {
                continue;
            }
            tracing::info!(name = %m.name, path = %m.path.display(), kind = ?m.kind, "installed model");
            match m.kind {
                PipelineKind::TextToImage => image.push(Arc::new(StableDiffusionEngine::new(&m.name, &m.path))),
                PipelineKind::TextToVideo => text_video.push(Arc::new(WanEngine::new(&m.name, &m.path))),
                PipelineKind::ImageToVideo => video.push(Arc::new(StableVideoDiffusionEngine::new(&m.name, &m.path))),
                PipelineKind::ImageEdit => editors.push(Arc::new(InstructPix2PixEngine::new(&m.name, &m.path))),
                PipelineKind::Other(_) => {}
            }
        }
        let mut engines: Vec<Arc<dyn Engine>> = text_video;
        engines.push(Arc::new(builtin));
        engines.extend(image.iter().map(|e| e.clone() as Arc<dyn Engine>));
        for v in video {
            engines.push(if image.is_empty() { v } else { Arc::new(KeyframeChain::new(v, image.clone())) });
        }
        // The built-in editor after the installed ones: an edit without a model goes to an
        // installed (real) editor first.
        engines.extend(editors);
        engines.push(Arc::new(BuiltinEditEngine::new()));
        Registry { engines }
    }

    /// A registry of exactly these engines (the first is the default).
    pub fn of(engines: Vec<Arc<dyn Engine>>) -> Registry {
        Registry { engines }
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
