//! `vidplay extend`: continues a clip that `vidplay generate` or `vidplay extend` wrote, from
//! its last frame, with the built-in model: one segment per `--prompt` (or `--segments N` of
//! the last prompt), joined to the clip without a repeated frame. The folder written has the
//! whole clip (source and new segments), so it can be extended again.

use super::common::{ModelArgs, check_numbers, check_text, metered_steps, step_bar};
use crate::engines::builtin::BuiltinEngine;
use crate::engines::cache::ModelCache;
use crate::engines::{Engine, RunContext, segments};
use crate::ids::random_seed;
use crate::media::writer::{WriteOptions, write_to_folder};
use anyhow::{Context, bail};
use app::media_files::MediaFile;
use app::params::{EXTEND_TASK, Segment};
use app::results::ResultMeta;
use app::types::Mode;
use model::builtin::pipeline::BUILTIN_MODEL_ID;
use model::gpu_memory::GpuMemoryMeter;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct ExtendArgs {
    /// A folder `vidplay generate --png-frames` or `vidplay extend` wrote.
    #[arg(long)]
    from: PathBuf,
    /// What happens next; give it several times for a shot list, one segment each.
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// Segments to add: the prompts in order, the last one repeated as needed.
    #[arg(long)]
    segments: Option<usize>,
    /// Frames per segment (default: the source clip's).
    #[arg(long)]
    frames: Option<u32>,
    /// Motion strength (default: the source clip's).
    #[arg(long)]
    motion: Option<f32>,
    /// Seed of the first new segment; the next ones count up (default: a random one).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    builtin: ModelArgs,
}

/// The metadata and frames of a result folder.
fn read_clip(dir: &Path) -> anyhow::Result<(ResultMeta, Vec<image::RgbImage>)> {
    let meta_path = dir.join("metadata.json");
    let text = std::fs::read_to_string(&meta_path)
        .with_context(|| format!("{} is not a vidplay result (no metadata.json)", dir.display()))?;
    let meta = ResultMeta::from_value(
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", meta_path.display()))?,
    );
    if meta.is_image() || meta.frames < 2 {
        bail!("{} holds a still image, not a clip: animate it with `vidplay generate --image`", dir.display());
    }
    let frames = (0..meta.frames as usize)
        .map(|i| {
            let path = dir.join(MediaFile::Frame(i).name());
            if !path.is_file() {
                bail!(
                    "{} has no frame {} ({}); make the clip with `vidplay generate --png-frames` (vidplay extend always writes them)",
                    dir.display(),
                    i,
                    path.display()
                );
            }
            Ok(crate::media::input::load(&path)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((meta, frames))
}

pub fn run(a: ExtendArgs) -> anyhow::Result<()> {
    for p in &a.prompt {
        check_text("the prompt", p)?;
    }
    if let Some(m) = a.motion {
        check_numbers(&[("motion", m as f64)])?;
    }
    if let Some(f) = a.frames {
        check_numbers(&[("frames", f as f64)])?;
    }
    let count = a.segments.unwrap_or(a.prompt.len()).max(a.prompt.len());
    if count == 0 || count > app::params::MAX_SEGMENTS {
        bail!("--segments must be between 1 and {}", app::params::MAX_SEGMENTS);
    }
    let started = Instant::now();
    let (source, frames) = read_clip(&a.from)?;
    let mut params = source.params.clone();
    params.model = BUILTIN_MODEL_ID.into();
    params.task = EXTEND_TASK.into();
    params.source = a.from.display().to_string();
    params.seed = Some(a.seed.unwrap_or_else(random_seed));
    params.frames = a.frames.unwrap_or(params.frames.clamp(2, 16));
    params.motion = a.motion.unwrap_or(params.motion);
    params.segments =
        (0..count).map(|i| Segment { prompt: a.prompt[i.min(a.prompt.len() - 1)].clone(), seed: None }).collect();
    params.prompt = segments::shot_list_prompt(&params.segments);
    let (model, opened) = a.builtin.load_on_device()?;
    let engine = BuiltinEngine::new(model.config().clone());
    let steps = segments::check(&engine, &params, true).map_err(|e| anyhow::anyhow!(e))?;
    let mut models = ModelCache::new(u64::MAX);
    models.insert_pinned(BUILTIN_MODEL_ID, engine.info().memory_mib, model);
    let bar = step_bar(steps.iter().map(|c| c.steps).sum::<u32>() as usize);
    let mut meter = GpuMemoryMeter::start(&opened.device);
    let source_frames = frames.len();
    let mut result = {
        let mut progress = metered_steps(&bar, &mut meter);
        let mut ctx = RunContext {
            device: &opened,
            models: &mut models,
            progress: &mut progress,
            cancelled: &|| false,
            keep: None,
        };
        segments::run(&engine, &params, frames, None, &mut ctx)?
    };
    bar.finish_and_clear();
    result.meta.mode = Mode::Extend;
    result.meta.timings.total_s = started.elapsed().as_secs_f64();
    result.meta.peak_gpu_memory_mib = meter.peak_mib();
    result.meta.peak_host_memory_mib = crate::memory::peak_rss_mib();
    write_to_folder(&mut result, WriteOptions { png_frames: true, gallery: false }, &a.out)?;
    println!(
        "wrote {} ({} frames: {source_frames} from {} and {} new in {count} segment(s), {}x{}) in {:.1} s",
        a.out.display(),
        result.frames.len(),
        a.from.display(),
        result.frames.len() - source_frames,
        result.frames[0].width(),
        result.frames[0].height(),
        result.meta.timings.total_s
    );
    Ok(())
}
