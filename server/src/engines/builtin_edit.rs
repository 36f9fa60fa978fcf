//! The built-in instruction editor as an engine: it changes one thing of a picture (colour,
//! shape, setting, weather, position, size) and keeps the rest, offline, on the CPU.

use super::{EngineJob, Rendered, RunContext};
use crate::media::input::image_sha256;
use app::models::ModelInfo;
use app::results::{Resolution, ResultMeta, Timings};
use app::types::{JobParams, Mode};
use model::builtin::edit::apply::{EDIT_MODEL_ID, Editor};
use model::builtin::edit::instruction::parse;
use model::generate::GenerateError;
use std::time::Instant;

pub struct BuiltinEditEngine {
    info: ModelInfo,
}

impl Default for BuiltinEditEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl BuiltinEditEngine {
    pub fn new() -> Self {
        let info = ModelInfo {
            id: EDIT_MODEL_ID.into(),
            family: "builtin-edit".into(),
            description: "The built-in editor: one change per instruction to a toy-world picture, the rest kept as it was: \
                 the colour (\"make it red\"), the shape (\"turn it into a star\"), the setting (\"put it in the desert\"), \
                 the weather (\"add snow\", \"remove the rain\"), the position (\"move it left\") or the size (\"make it bigger\")."
                .into(),
            tasks: vec![Mode::Edit],
            params: Vec::new(),
            native_width: 32,
            native_height: 32,
            native_frames: 1,
            memory_mib: (Editor::shipped_weights_bytes() as u64).div_ceil(1 << 20).max(1),
            chips: Vec::new(),
            reads_prompt: false,
            input_note: "The picture keeps its own resolution; only what the instruction names changes.".into(),
            takes_loras: false,
        };
        Self { info }
    }
}

impl super::Engine for BuiltinEditEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn validate(&self, params: &mut JobParams, has_image: bool) -> Result<Mode, String> {
        super::check_edit_request(&self.info.id, params, has_image)?;
        parse(&params.prompt)?;
        // One pass of the network: no sampling steps or guidance to set.
        params.steps = 1;
        Ok(Mode::Edit)
    }

    fn total_steps(&self, _params: &JobParams, _mode: Mode) -> u32 {
        1
    }

    fn run(&self, job: EngineJob<'_>, ctx: &mut RunContext<'_>) -> Result<Rendered, GenerateError> {
        let started = Instant::now();
        let source = job.input.ok_or_else(|| GenerateError::InvalidRequest("an edit needs an image".into()))?;
        let device = ctx.device.device.clone();
        let editor = ctx.models.get_or_load(&self.info.id, self.info.memory_mib, || {
            Editor::shipped(&device).map_err(|e| super::load_error(&self.info.id, e))
        })?;
        let load_s = started.elapsed().as_secs_f64();
        let edited = editor.edit(source, &job.params.prompt, ctx.progress)?;
        let size = [edited.image.width(), edited.image.height()];
        let mut details = serde_json::Map::new();
        details.insert("source_sha256".into(), image_sha256(source).into());
        details.insert("edit".into(), serde_json::to_value(edited.edit).unwrap_or_default());
        details.insert("changed_fraction".into(), edited.changed_fraction.into());
        let meta = ResultMeta {
            mode: Mode::Edit,
            model: self.info.id.clone(),
            family: self.info.family.clone(),
            prompt: job.params.prompt.clone(),
            params: JobParams { model: self.info.id.clone(), width: size[0], height: size[1], ..job.params.clone() },
            seed: job.params.seed.unwrap_or_default(),
            frames: 1,
            fps: 1,
            resolution: Resolution { native: size, display: size, upscale_filter: "none".into() },
            input_image: Some("source".into()),
            device: ctx.device.description.clone(),
            precision: "F32".into(),
            timings: Timings {
                load_s,
                sampling_s: edited.seconds,
                total_s: started.elapsed().as_secs_f64(),
                ..Timings::default()
            },
            details,
            ..super::metadata::made_now()
        };
        Ok(Rendered {
            frames: vec![edited.image],
            fps: 1,
            still: true,
            input: Some(source.clone()),
            keyframe: None,
            continue_from: None,
            meta,
        })
    }
}
