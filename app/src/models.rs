//! What a model says about itself: its tasks, every parameter it takes (type, bounds, step,
//! default, help), its native size and an estimate of its memory. The server's engines write
//! it once per family; the API validates with it, `GET /api/models` returns it, and the Create
//! page draws its form from it, so the three agree by construction.

use crate::params::{JobParams, Mode};
use serde::{Deserialize, Serialize};

/// The picture parameter of a clip's last frame (and the form's file field for it).
pub const LAST_IMAGE: &str = "last_image";

/// How a parameter is entered and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// A whole number; the accepted values are `min`, `min + step`, ... up to `max`.
    Integer,
    /// A decimal number in [`min`, `max`]; `step` is the form's increment.
    Number,
    /// Free text of at most `max` characters.
    Text,
    /// One of the listed values (e.g. the model that makes a keyframe).
    Choice(Vec<String>),
    /// A picture uploaded with the request under the parameter's name (e.g. a clip's last
    /// frame); the job keeps whether it had one.
    Image,
}

/// One parameter of a model, named as the field of [`JobParams`] (and of the API's form) it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub label: String,
    pub kind: ParamKind,
    pub min: f64,
    pub max: f64,
    pub step: f64,
    /// The default value, as the form shows it.
    pub default: String,
    pub help: String,
    /// The tasks it applies to (others ignore it).
    pub tasks: Vec<Mode>,
}

impl ParamSpec {
    /// A whole-number parameter.
    pub fn integer(name: &str, label: &str, min: u32, max: u32, step: u32, default: u32, help: &str) -> Self {
        Self::new(name, label, ParamKind::Integer, min as f64, max as f64, step as f64, default.to_string(), help)
    }

    /// A decimal parameter.
    pub fn number(name: &str, label: &str, min: f32, max: f32, step: f32, default: f32, help: &str) -> Self {
        Self::new(name, label, ParamKind::Number, decimal(min), decimal(max), decimal(step), default.to_string(), help)
    }

    /// A text parameter of at most `max_chars` characters.
    pub fn text(name: &str, label: &str, max_chars: usize, help: &str) -> Self {
        Self::new(name, label, ParamKind::Text, 0.0, max_chars as f64, 1.0, String::new(), help)
    }

    /// A picture sent with the request (a file field of the form).
    pub fn image(name: &str, label: &str, help: &str) -> Self {
        Self::new(name, label, ParamKind::Image, 0.0, 0.0, 1.0, String::new(), help)
    }

    /// A choice among `options`; the first is the default.
    pub fn choice(name: &str, label: &str, options: Vec<String>, help: &str) -> Self {
        let default = options.first().cloned().unwrap_or_default();
        Self::new(name, label, ParamKind::Choice(options), 0.0, 0.0, 1.0, default, help)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        label: &str,
        kind: ParamKind,
        min: f64,
        max: f64,
        step: f64,
        default: String,
        help: &str,
    ) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            kind,
            min,
            max,
            step,
            default,
            help: help.into(),
            tasks: Vec::new(),
        }
    }

    /// Restricts the parameter to `tasks` (by default it applies to every task of the model).
    pub fn for_tasks(mut self, tasks: &[Mode]) -> Self {
        self.tasks = tasks.to_vec();
        self
    }

    pub fn applies_to(&self, task: Mode) -> bool {
        self.tasks.is_empty() || self.tasks.contains(&task)
    }

    /// Checks a value of this parameter; the message names the parameter and its bounds.
    pub fn check(&self, value: &ParamValue) -> Result<(), String> {
        let label = self.label.to_lowercase();
        match (&self.kind, value) {
            (ParamKind::Integer, ParamValue::Number(v)) => {
                let stepped = self.step <= 1.0 || ((v - self.min) / self.step).fract() == 0.0;
                if !v.is_finite() || *v < self.min || *v > self.max || v.fract() != 0.0 || !stepped {
                    let step = match self.step {
                        s if s <= 1.0 => "a whole number ".to_string(),
                        s if (self.min / s).fract() != 0.0 => format!("{} plus a multiple of {s}, ", self.min),
                        s => format!("a multiple of {s} "),
                    };
                    return Err(format!("{label} must be {step}from {} to {}, not {v}", self.min, self.max));
                }
            }
            (ParamKind::Number, ParamValue::Number(v)) => {
                if !v.is_finite() || *v < self.min || *v > self.max {
                    return Err(format!("{label} must be from {} to {}, not {v}", self.min, self.max));
                }
            }
            (ParamKind::Text, ParamValue::Text(t)) => {
                let n = t.chars().count();
                if n as f64 > self.max {
                    return Err(format!("{label} is longer than {} characters (it has {n})", self.max));
                }
            }
            (ParamKind::Choice(options), ParamValue::Text(t)) => {
                if !t.is_empty() && !options.contains(t) {
                    return Err(format!("{label} must be one of {options:?}, not {t:?}"));
                }
            }
            _ => return Err(format!("{label} has the wrong type")),
        }
        Ok(())
    }
}

/// An f32 as the f64 of its shortest decimal form (0.1f32 is 0.1, not 0.10000000149011612), so
/// bounds, steps and values print and compare as people wrote them.
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// A parameter's value read from [`JobParams`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Number(f64),
    Text(String),
}

impl JobParams {
    /// The value of the field `name`; `None` for names that are not parameters.
    pub fn value(&self, name: &str) -> Option<ParamValue> {
        use ParamValue::{Number as N, Text as T};
        Some(match name {
            "frames" => N(self.frames as f64),
            "fps" => N(self.fps as f64),
            "steps" => N(self.steps as f64),
            "guidance" => N(decimal(self.guidance)),
            "guidance_2" => N(decimal(self.guidance_2)),
            "image_guidance" => N(decimal(self.image_guidance)),
            "motion" => N(decimal(self.motion)),
            "width" => N(self.width as f64),
            "height" => N(self.height as f64),
            "keyframe_steps" => N(self.keyframe_steps as f64),
            "keyframe_guidance" => N(decimal(self.keyframe_guidance)),
            "negative" => T(self.negative.clone()),
            "keyframe_model" => T(self.keyframe_model.clone()),
            "memory" => T(self.memory.clone()),
            _ => return None,
        })
    }
}

/// A model as the server describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// The model family (one engine each): "builtin", "stable-diffusion", ...
    pub family: String,
    pub description: String,
    /// What it makes, the first being what it is chosen for by default.
    pub tasks: Vec<Mode>,
    pub params: Vec<ParamSpec>,
    /// The size it generates at (width, height), or its default size when it takes one.
    pub native_width: u32,
    pub native_height: u32,
    /// Native clip length (1 for image models).
    pub native_frames: u32,
    /// Roughly how much memory it needs loaded, in MiB.
    pub memory_mib: u64,
    /// Words it understands, for the prompt builder (empty: free text).
    pub chips: Vec<ChipGroup>,
    /// Whether the prompt is read word by word (the page shows what was understood).
    pub reads_prompt: bool,
    /// How an image to animate is used, for people (empty when it takes none).
    pub input_note: String,
    /// Whether a job may merge LoRAs into it (`JobParams::loras`).
    #[serde(default)]
    pub takes_loras: bool,
}

/// One category of prompt words, e.g. "subject": ball, square, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChipGroup {
    pub name: String,
    pub phrases: Vec<String>,
}

impl ModelInfo {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether it ends a clip on a given last frame (a `last_image` picture parameter).
    pub fn takes_last_image(&self) -> bool {
        self.param(LAST_IMAGE).is_some_and(|p| p.kind == ParamKind::Image)
    }

    /// The parameters shown and checked for `task`.
    pub fn params_for(&self, task: Mode) -> impl Iterator<Item = &ParamSpec> {
        self.params.iter().filter(move |p| p.applies_to(task))
    }

    /// Checks every parameter that applies to `task` against this model's bounds.
    pub fn check(&self, params: &JobParams, task: Mode) -> Result<(), String> {
        if !self.tasks.contains(&task) {
            let tasks: Vec<&str> = self.tasks.iter().map(|t| t.as_str()).collect();
            return Err(format!("{} does not do {}; it does {}", self.id, task.as_str(), tasks.join(", ")));
        }
        for spec in self.params_for(task) {
            if let Some(value) = params.value(&spec.name) {
                spec.check(&value)?;
            }
        }
        Ok(())
    }

    /// `params` with every parameter of `task` at this model's default.
    pub fn defaults(&self, task: Mode, mut params: JobParams) -> JobParams {
        for spec in self.params_for(task) {
            set_value(&mut params, &spec.name, &spec.default);
        }
        params
    }
}

/// Sets the field `name` from its text form (as a form sends it); returns false when the text
/// is not a valid value of the field.
pub fn set_value(params: &mut JobParams, name: &str, text: &str) -> bool {
    fn parse<T: std::str::FromStr>(text: &str, field: &mut T) -> bool {
        text.trim().parse().map(|v| *field = v).is_ok()
    }
    match name {
        "frames" => parse(text, &mut params.frames),
        "fps" => parse(text, &mut params.fps),
        "steps" => parse(text, &mut params.steps),
        "guidance" => parse(text, &mut params.guidance),
        "guidance_2" => parse(text, &mut params.guidance_2),
        "image_guidance" => parse(text, &mut params.image_guidance),
        "motion" => parse(text, &mut params.motion),
        "width" => parse(text, &mut params.width),
        "height" => parse(text, &mut params.height),
        "keyframe_steps" => parse(text, &mut params.keyframe_steps),
        "keyframe_guidance" => parse(text, &mut params.keyframe_guidance),
        "negative" => {
            params.negative = text.to_string();
            true
        }
        "keyframe_model" => {
            params.keyframe_model = text.to_string();
            true
        }
        "memory" => {
            params.memory = text.to_string();
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            id: "m".into(),
            family: "test".into(),
            description: String::new(),
            tasks: vec![Mode::ImageToVideo, Mode::TextToVideo],
            params: vec![
                ParamSpec::integer("width", "Width", 64, 1024, 64, 512, "width"),
                ParamSpec::number("guidance", "Guidance", 1.0, 20.0, 0.5, 3.0, "guidance"),
                ParamSpec::integer("keyframe_steps", "Keyframe steps", 1, 150, 1, 25, "")
                    .for_tasks(&[Mode::TextToVideo]),
                ParamSpec::text("negative", "Negative prompt", 10, ""),
            ],
            native_width: 512,
            native_height: 512,
            native_frames: 14,
            memory_mib: 1,
            chips: Vec::new(),
            reads_prompt: false,
            input_note: String::new(),
            takes_loras: false,
        }
    }

    #[test]
    fn bounds_steps_and_tasks_are_checked() {
        let m = info();
        let ok = JobParams { width: 576, guidance: 2.5, keyframe_steps: 500, ..JobParams::default() };
        m.check(&ok, Mode::ImageToVideo).unwrap();
        // Keyframe steps only count for text to video.
        assert!(m.check(&ok, Mode::TextToVideo).unwrap_err().contains("keyframe steps"));
        let off_step = JobParams { width: 520, ..ok.clone() };
        assert!(m.check(&off_step, Mode::ImageToVideo).unwrap_err().contains("multiple of 64"));
        let nan = JobParams { guidance: f32::NAN, ..ok.clone() };
        assert!(m.check(&nan, Mode::ImageToVideo).unwrap_err().contains("guidance"));
        let long = JobParams { negative: "x".repeat(11), ..ok.clone() };
        assert!(m.check(&long, Mode::ImageToVideo).unwrap_err().contains("longer than 10"));
        assert!(m.check(&ok, Mode::TextToImage).unwrap_err().contains("does not do text-to-image"));
    }

    #[test]
    fn defaults_and_form_values_set_the_fields() {
        let m = info();
        assert_eq!(decimal(0.1), 0.1);
        assert_eq!(JobParams { motion: 0.7, ..JobParams::default() }.value("motion"), Some(ParamValue::Number(0.7)));
        let p = m.defaults(Mode::TextToVideo, JobParams { width: 64, guidance: 9.0, ..JobParams::default() });
        assert_eq!((p.width, p.guidance, p.keyframe_steps), (512, 3.0, 25));
        let mut p = JobParams::default();
        assert!(set_value(&mut p, "width", "768"));
        assert!(!set_value(&mut p, "width", "wide"));
        assert!(!set_value(&mut p, "nonsense", "1"));
        assert_eq!(p.width, 768);
        // Every settable name reads back.
        for spec in &m.params {
            assert!(p.value(&spec.name).is_some(), "{}", spec.name);
        }
    }
}
