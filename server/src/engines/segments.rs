//! Longer videos from any image-to-video engine: extending a video from its last frame, and
//! shot lists (several segments with a prompt each, each continuing from the last frame of the
//! one before). The segments run on the job's engine one after another with progress over all
//! of them, and are joined into one clip without a repeated frame: a segment that continues
//! from a frame starts with (about) that frame, so its first frame is dropped.

use super::{Engine, EngineJob, Overrides, Rendered, RunContext};
use app::params::Segment;
use app::types::{JobParams, Mode};
use image::RgbImage;
use image::imageops::FilterType;
use model::generate::{GenerateError, Progress};
use serde::{Deserialize, Serialize};

/// Longest clip an extension may make, in frames (the source's and the new segments').
pub const MAX_CLIP_FRAMES: usize = 240;

/// One planned segment: its prompt and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub prompt: String,
    pub seed: u64,
}

/// Where a segment sits in the joined clip, as recorded in the result's details ("segments").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpan {
    pub prompt: String,
    pub seed: u64,
    /// Index of its first frame in the joined clip, and how many frames it added.
    pub start: u32,
    pub frames: u32,
}

/// The segments a job runs: its shot list, or one segment of its prompt. A segment without its
/// own seed gets the job's seed plus its index, so re-rolling one segment (a new seed for it
/// alone) makes the segments before it again exactly.
pub fn plan(params: &JobParams) -> Vec<Planned> {
    let base = params.seed.unwrap_or(0);
    if params.segments.is_empty() {
        return vec![Planned { prompt: params.prompt.clone(), seed: base }];
    }
    params
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| Planned { prompt: s.prompt.clone(), seed: s.seed.unwrap_or(base.wrapping_add(i as u64)) })
        .collect()
}

/// The parameters of one segment: the job's, with the segment's prompt and seed.
pub fn segment_params(params: &JobParams, planned: &Planned) -> JobParams {
    JobParams {
        prompt: planned.prompt.clone(),
        seed: Some(planned.seed),
        task: String::new(),
        source: String::new(),
        segments: Vec::<Segment>::new(),
        ..params.clone()
    }
}

/// One segment, checked: the parameters its engine validated (and may have completed, e.g. the
/// keyframe model), its task and the steps it counts.
#[derive(Debug, Clone)]
pub struct Checked {
    pub params: JobParams,
    pub mode: Mode,
    pub steps: u32,
}

/// Checks every segment against `engine`; `starts_from_image`: the first segment continues a
/// frame (an upload or a video's last frame).
pub fn check(engine: &dyn Engine, params: &JobParams, starts_from_image: bool) -> Result<Vec<Checked>, String> {
    let planned = plan(params);
    if planned.len() > app::params::MAX_SEGMENTS {
        return Err(format!("a shot list has at most {} segments, not {}", app::params::MAX_SEGMENTS, planned.len()));
    }
    let mut out = Vec::with_capacity(planned.len());
    for (i, p) in planned.iter().enumerate() {
        let from_image = starts_from_image || i > 0;
        if from_image && !engine.info().tasks.contains(&Mode::ImageToVideo) {
            return Err(format!(
                "{} cannot continue a clip: it does not animate images (use the built-in model or an image-to-video model)",
                engine.info().id
            ));
        }
        let mut sub = segment_params(params, p);
        let mode = engine
            .validate(&mut sub, from_image)
            .map_err(|e| if planned.len() > 1 { format!("segment {} ({:?}): {e}", i + 1, p.prompt) } else { e })?;
        if !matches!(mode, Mode::TextToVideo | Mode::ImageToVideo) {
            return Err(format!("{} makes still images, not clips: a shot list needs a video model", engine.info().id));
        }
        let steps = engine.total_steps(&sub, mode);
        out.push(Checked { params: sub, mode, steps });
    }
    Ok(out)
}

/// The job's parameters with what its engine completed in checking (the first segment's
/// settings, e.g. the keyframe model), keeping the job's own prompt, seed, task and segments.
pub fn completed(params: &JobParams, checked: &[Checked]) -> JobParams {
    match checked.first() {
        Some(first) => JobParams {
            prompt: params.prompt.clone(),
            seed: params.seed,
            task: params.task.clone(),
            source: params.source.clone(),
            segments: params.segments.clone(),
            ..first.params.clone()
        },
        None => params.clone(),
    }
}

/// Whether a job runs as segments (an extension or a shot list) rather than one engine run.
pub fn is_segmented(params: &JobParams) -> bool {
    params.task == app::params::EXTEND_TASK || !params.segments.is_empty()
}

/// Appends a segment's frames to a clip: resized to the clip's size when they differ, and
/// without the segment's first frame when it continues the clip's last one.
pub fn join(clip: &mut Vec<RgbImage>, segment: Vec<RgbImage>, continues: bool) {
    let size = clip.first().map(|f| f.dimensions());
    let skip = usize::from(continues && !clip.is_empty());
    for frame in segment.into_iter().skip(skip) {
        match size {
            Some((w, h)) if frame.dimensions() != (w, h) => {
                clip.push(image::imageops::resize(&frame, w, h, FilterType::Lanczos3))
            }
            _ => clip.push(frame),
        }
    }
}

/// Runs a job's segments on `engine` after `prior` frames (an extended video's; empty for a new
/// clip), the first starting from `start` (an image to animate; `None`: from text, or from the
/// last prior frame). Returns the joined clip, its metadata that of the last segment with the
/// job's parameters, the total frame count and the segments' spans.
pub fn run(
    engine: &dyn Engine,
    params: &JobParams,
    prior: Vec<RgbImage>,
    start: Option<RgbImage>,
    ctx: &mut RunContext<'_>,
) -> Result<Rendered, GenerateError> {
    let extending = params.task == app::params::EXTEND_TASK;
    let mut image = start.or_else(|| prior.last().cloned());
    let checked = check(engine, params, image.is_some()).map_err(GenerateError::InvalidRequest)?;
    let total: u32 = checked.iter().map(|c| c.steps).sum();
    let mut clip = prior;
    let mut spans = Vec::with_capacity(checked.len());
    let mut first: Option<Rendered> = None;
    let mut last: Option<Rendered> = None;
    let (mut sampling_s, mut total_s) = (0.0, 0.0);
    let mut offset = 0u32;
    for c in &checked {
        let outer = &mut *ctx.progress;
        let mut progress = |q: Progress| {
            let mut shifted = Progress::new(offset as usize + q.step, total as usize);
            shifted.preview = q.preview;
            outer(shifted)
        };
        let mut sub_ctx = RunContext {
            device: ctx.device,
            models: &mut *ctx.models,
            progress: &mut progress,
            cancelled: ctx.cancelled,
            keep: None,
        };
        let mode = if image.is_some() { Mode::ImageToVideo } else { c.mode };
        let mut rendered = engine.run(
            EngineJob { params: &c.params, mode, input: image.as_ref(), last_image: None, overrides: &Overrides::NONE },
            &mut sub_ctx,
        )?;
        offset += c.steps;
        if rendered.still {
            return Err(GenerateError::InvalidRequest(format!("{} makes still images, not clips", engine.info().id)));
        }
        let before = clip.len();
        let continues = image.is_some();
        // Moved into the clip: what is kept of the segment below is its metadata and images.
        join(&mut clip, std::mem::take(&mut rendered.frames), continues);
        spans.push(SegmentSpan {
            prompt: c.params.prompt.clone(),
            seed: c.params.seed.unwrap_or(0),
            start: before as u32,
            frames: (clip.len() - before) as u32,
        });
        sampling_s += rendered.meta.timings.sampling_s;
        total_s += rendered.meta.timings.total_s;
        // The next segment starts from this one's last frame (without its weather, where the
        // engine says so), at the clip's size.
        image = match (&rendered.continue_from, clip.last()) {
            (Some(dry), Some(l)) if dry.dimensions() != l.dimensions() => {
                Some(image::imageops::resize(dry, l.width(), l.height(), FilterType::Lanczos3))
            }
            (Some(dry), _) => Some(dry.clone()),
            (None, l) => l.cloned(),
        };
        if first.is_none() {
            first = Some(rendered.clone());
        }
        last = Some(rendered);
    }
    let (Some(first), Some(mut out)) = (first, last) else {
        return Err(GenerateError::InvalidRequest("no segments to make".into()));
    };
    let fps = out.fps.max(1);
    let meta = &mut out.meta;
    meta.params = completed(params, &checked);
    meta.prompt = params.prompt.clone();
    meta.seed = params.seed.unwrap_or(meta.seed);
    meta.frames = clip.len() as u32;
    meta.duration_s = clip.len() as f64 / fps as f64;
    if let Some(f) = clip.first() {
        meta.resolution.display = [f.width(), f.height()];
    }
    meta.timings.sampling_s = sampling_s;
    meta.timings.total_s = total_s;
    // What the whole clip came from: the first segment's input and keyframe.
    meta.keyframe = first.meta.keyframe.clone();
    meta.input_image = if extending { None } else { first.meta.input_image.clone() };
    meta.details.insert("segments".into(), serde_json::to_value(&spans).unwrap_or_default());
    if extending {
        meta.details.insert("parent".into(), params.source.clone().into());
    }
    out.frames = clip;
    out.input = if extending { None } else { first.input };
    out.keyframe = first.keyframe;
    out.continue_from = None;
    Ok(out)
}

/// The prompt a shot list is searched and shown by when its own is empty: its segments'.
pub fn shot_list_prompt(segments: &[Segment]) -> String {
    let all = segments.iter().map(|s| s.prompt.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" / then ");
    // Kept within the prompt's bound, so a remix of it is a valid request.
    all.chars().take(app::limits::MAX_PROMPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: u8, w: u32) -> RgbImage {
        RgbImage::from_pixel(w, w, image::Rgb([v, v, v]))
    }

    #[test]
    fn joining_drops_the_repeated_first_frame_and_matches_sizes() {
        let mut clip = vec![frame(1, 8), frame(2, 8)];
        join(&mut clip, vec![frame(2, 8), frame(3, 8), frame(4, 8)], true);
        let values: Vec<u8> = clip.iter().map(|f| f.get_pixel(0, 0).0[0]).collect();
        assert_eq!(values, [1, 2, 3, 4]);
        join(&mut clip, vec![frame(4, 16), frame(5, 16)], true);
        assert_eq!(clip.len(), 5);
        assert!(clip.iter().all(|f| f.dimensions() == (8, 8)));
        // A first segment keeps its first frame (the picture itself).
        let mut fresh = Vec::new();
        join(&mut fresh, vec![frame(9, 4), frame(8, 4)], true);
        assert_eq!(fresh.len(), 2);
    }

    #[test]
    fn segments_get_the_job_seed_plus_their_index_unless_rerolled() {
        let params = JobParams {
            seed: Some(100),
            segments: vec![
                Segment { prompt: "camera pans right".into(), seed: None },
                Segment { prompt: "zoom in while it snows".into(), seed: Some(7) },
                Segment { prompt: "static camera".into(), seed: None },
            ],
            ..JobParams::default()
        };
        let seeds: Vec<u64> = plan(&params).iter().map(|p| p.seed).collect();
        assert_eq!(seeds, [100, 7, 102]);
        assert_eq!(
            plan(&JobParams { prompt: "x".into(), seed: Some(3), ..JobParams::default() }),
            [Planned { prompt: "x".into(), seed: 3 }]
        );
        assert_eq!(
            shot_list_prompt(&params.segments),
            "camera pans right / then zoom in while it snows / then static camera"
        );
    }
}
