//! The outer bounds of every job parameter, in one table the JSON API, the forms, the server
//! functions and the command line share. A model family narrows them further (the built-in
//! model makes at most 16 frames, SVD sizes are multiples of 64), but nothing outside these
//! bounds is ever stored: no infinite or NaN number, no unbounded text.

use crate::types::JobParams;

/// One numeric parameter: its name (as in the API and the forms) and its inclusive range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberLimit {
    pub name: &'static str,
    pub min: f64,
    pub max: f64,
    pub help: &'static str,
}

/// Every numeric job parameter. The seed is any unsigned 64-bit number.
pub const NUMBERS: [NumberLimit; 12] = [
    NumberLimit { name: "frames", min: 1.0, max: 256.0, help: "frames in the clip" },
    NumberLimit { name: "fps", min: 1.0, max: 60.0, help: "frames per second" },
    NumberLimit { name: "steps", min: 1.0, max: 1000.0, help: "sampling steps" },
    NumberLimit { name: "guidance", min: 0.0, max: 30.0, help: "text guidance scale" },
    NumberLimit { name: "guidance_2", min: 0.0, max: 30.0, help: "low-noise guidance scale" },
    NumberLimit { name: "image_guidance", min: 0.0, max: 30.0, help: "image guidance scale" },
    NumberLimit { name: "motion", min: 0.0, max: 2.0, help: "motion strength (1 is normal)" },
    NumberLimit { name: "width", min: 8.0, max: 4096.0, help: "width in pixels" },
    NumberLimit { name: "height", min: 8.0, max: 4096.0, help: "height in pixels" },
    NumberLimit { name: "keyframe_steps", min: 1.0, max: 1000.0, help: "keyframe sampling steps" },
    NumberLimit { name: "keyframe_guidance", min: 0.0, max: 30.0, help: "keyframe guidance scale" },
    NumberLimit { name: "size", min: 1.0, max: 4096.0, help: "display size in pixels" },
];

/// Longest prompt and negative prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 1000;
/// Longest model name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest gallery search.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The limit of the numeric parameter `name`.
pub fn number(name: &str) -> NumberLimit {
    NUMBERS.iter().copied().find(|l| l.name == name).unwrap_or_else(|| panic!("no limit for {name:?}"))
}

/// Checks one number against its limit: finite and in range.
pub fn check_number(name: &str, value: f64) -> Result<(), String> {
    let l = number(name);
    if !value.is_finite() || value < l.min || value > l.max {
        return Err(format!("{} must be a number from {} to {}, not {value}", l.name, l.min, l.max));
    }
    Ok(())
}

/// Checks the length of a free-text field.
pub fn check_text(name: &str, value: &str, max_chars: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(format!("{name} is longer than {max_chars} characters (it has {n})"));
    }
    Ok(())
}

/// Checks every parameter of a job against the table (the family's own checks come after).
pub fn check_params(p: &JobParams) -> Result<(), String> {
    check_text("the prompt", &p.prompt, MAX_PROMPT_CHARS)?;
    check_text("the negative prompt", &p.negative, MAX_PROMPT_CHARS)?;
    check_text("the model name", &p.model, MAX_NAME_CHARS)?;
    check_text("the keyframe model name", &p.keyframe_model, MAX_NAME_CHARS)?;
    check_text("the source video", &p.source, MAX_NAME_CHARS)?;
    match p.task.as_str() {
        "" | crate::params::EXTEND_TASK | crate::params::EDIT_TASK => {}
        other => {
            return Err(format!(
                "unknown task {other:?}: leave it out for a new clip, use \"extend\" with a source video, or \"edit\" with an image"
            ));
        }
    }
    if p.task == crate::params::EXTEND_TASK && p.source.trim().is_empty() {
        return Err("extending needs the source video's id (\"source\")".into());
    }
    if p.segments.len() > crate::params::MAX_SEGMENTS {
        return Err(format!(
            "a shot list has at most {} segments, not {}",
            crate::params::MAX_SEGMENTS,
            p.segments.len()
        ));
    }
    for (i, s) in p.segments.iter().enumerate() {
        check_text(&format!("segment {}'s prompt", i + 1), &s.prompt, MAX_PROMPT_CHARS)?;
    }
    let numbers = [
        ("frames", p.frames as f64),
        ("fps", p.fps as f64),
        ("steps", p.steps as f64),
        ("guidance", p.guidance as f64),
        ("guidance_2", p.guidance_2 as f64),
        ("image_guidance", p.image_guidance as f64),
        ("motion", p.motion as f64),
        ("width", p.width as f64),
        ("height", p.height as f64),
        ("keyframe_steps", p.keyframe_steps as f64),
        ("keyframe_guidance", p.keyframe_guidance as f64),
    ];
    for (name, value) in numbers {
        check_number(name, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_every_number_is_bounded() {
        check_params(&JobParams::default()).unwrap();
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 31.0, -1.0] {
            let p = JobParams { guidance: bad, ..JobParams::default() };
            assert!(check_params(&p).unwrap_err().contains("guidance"), "{bad}");
            let p = JobParams { keyframe_guidance: bad, ..JobParams::default() };
            assert!(check_params(&p).is_err(), "{bad}");
        }
        let p = JobParams { motion: 1e30, ..JobParams::default() };
        assert!(check_params(&p).unwrap_err().contains("motion"));
        let p = JobParams { frames: 100_000, ..JobParams::default() };
        assert!(check_params(&p).is_err());
        // Every number of the table is checked by `check_params` or by the CLI's size option.
        for l in NUMBERS {
            assert!(l.min <= l.max && l.min.is_finite() && l.max.is_finite(), "{}", l.name);
        }
    }

    #[test]
    fn text_is_bounded() {
        let long = "a".repeat(MAX_PROMPT_CHARS + 1);
        let p = JobParams { negative: long.clone(), ..JobParams::default() };
        assert!(check_params(&p).unwrap_err().contains("negative"));
        let p = JobParams { prompt: long, ..JobParams::default() };
        assert!(check_params(&p).unwrap_err().contains("prompt"));
        let p = JobParams { prompt: "é".repeat(MAX_PROMPT_CHARS), ..JobParams::default() };
        check_params(&p).unwrap();
    }
}
