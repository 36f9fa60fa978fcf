//! What a generation is asked to do: its task ([`Mode`]) and its settings ([`JobParams`]).

use serde::{Deserialize, Serialize};

/// What a result is and how it was made: a task a model does (its description lists them,
/// the one it is chosen for first), or a stored clip continued (an extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    TextToVideo,
    ImageToVideo,
    /// A keyframe from a text-to-image model (the first half of text -> image -> video).
    TextToImage,
    /// A stored video continued from its last frame: the result is the source and the new
    /// segment(s), joined.
    Extend,
    /// An image edited by an instruction ("add snow"), from an upload or a stored image.
    Edit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::TextToVideo => "text-to-video",
            Mode::ImageToVideo => "image-to-video",
            Mode::TextToImage => "text-to-image",
            Mode::Extend => "extend",
            Mode::Edit => "edit",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "text-to-video" => Some(Mode::TextToVideo),
            "image-to-video" => Some(Mode::ImageToVideo),
            "text-to-image" => Some(Mode::TextToImage),
            "extend" => Some(Mode::Extend),
            "edit" => Some(Mode::Edit),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::TextToVideo => "Text to video",
            Mode::ImageToVideo => "Image to video",
            Mode::TextToImage => "Text to image (keyframe)",
            Mode::Extend => "Extended video",
            Mode::Edit => "Edited image",
        }
    }
}

/// The parameters of a generation, as a user sets them. Everything but the prompt has a
/// default, so `{"prompt": "a red ball"}` is a complete request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobParams {
    pub prompt: String,
    /// The model to run; empty: the server's default for the request (an installed
    /// text-to-video model for text, a model that animates images for an image or an extension;
    /// the built-in model when nothing else is installed).
    pub model: String,
    pub frames: u32,
    pub fps: u32,
    pub steps: u32,
    pub guidance: f32,
    /// Two-expert models (Wan 2.2 A14B): the guidance of the low-noise expert, which makes the
    /// last steps (0: the same as `guidance`).
    #[serde(skip_serializing_if = "is_zero")]
    pub guidance_2: f32,
    pub image_guidance: f32,
    pub motion: f32,
    /// `None`: a random seed is drawn (and recorded) when the job is created.
    pub seed: Option<u64>,
    /// What the result should not show (the models that take a negative prompt), and its size
    /// in pixels (the models that take one; each model's description says which).
    pub negative: String,
    pub width: u32,
    pub height: u32,
    /// Text to video through a keyframe (an image-to-video model chained with a text-to-image
    /// one): the text-to-image model that makes the keyframe first (empty: the first
    /// installed), and its steps and guidance.
    pub keyframe_model: String,
    pub keyframe_steps: u32,
    pub keyframe_guidance: f32,
    /// Empty: a new result; `"extend"`: continue the stored video `source` from its last frame;
    /// `"edit"`: change the image `source` (or the upload) as the prompt says.
    pub task: String,
    /// The video an extension continues, or the image an edit changes (its parent).
    pub source: String,
    /// An edit of a clip: the frame it starts from (0: the first).
    pub source_frame: u32,
    /// A shot list: one segment per entry, each continuing from the last frame of the one
    /// before (empty: one segment, the prompt). The first starts from the image, the source
    /// video, or the text.
    pub segments: Vec<Segment>,
    /// The variants group this result belongs to (set by the server for every result of one
    /// variants request; empty otherwise).
    pub group: String,
    /// LoRAs merged into the model for this job (the models that take them: their description
    /// says so), from the server's LoRA folder (`GET /api/loras`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraChoice>,
    /// Whether the job has a last frame (the models that take one: their description has a
    /// `last_image` picture): the server sets it when the request uploads one, which it keeps
    /// for the job beside the first picture.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub last_image: bool,
    /// How a model that offers the choice holds its weights while it runs (its description's
    /// `memory` values, e.g. Wan's "resident", "one component at a time", "block swap"); empty:
    /// the model's first.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub memory: String,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// One LoRA of a job: its file in the server's LoRA folder, and its scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraChoice {
    pub file: String,
    #[serde(default = "one")]
    pub scale: f32,
}

fn one() -> f32 {
    1.0
}

/// Most LoRAs one job merges.
pub const MAX_LORAS: usize = 4;
/// The largest LoRA scale either way (diffusers takes any; far beyond a few, a LoRA only
/// breaks the picture).
pub const MAX_LORA_SCALE: f32 = 4.0;

/// One segment of a shot list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Segment {
    pub prompt: String,
    /// `None`: the job's seed plus the segment's index. Re-rolling a segment sets its own.
    pub seed: Option<u64>,
}

/// The task name of an extension.
pub const EXTEND_TASK: &str = "extend";

/// The task name of an instruction edit of an image.
pub const EDIT_TASK: &str = "edit";

/// Most segments in one shot list.
pub const MAX_SEGMENTS: usize = 8;

impl Default for JobParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            model: String::new(),
            frames: 16,
            fps: 8,
            steps: 24,
            guidance: 3.0,
            guidance_2: 0.0,
            image_guidance: 1.5,
            motion: 1.0,
            seed: None,
            negative: String::new(),
            width: 512,
            height: 512,
            keyframe_model: String::new(),
            keyframe_steps: 25,
            keyframe_guidance: 7.5,
            task: String::new(),
            source: String::new(),
            source_frame: 0,
            segments: Vec::new(),
            group: String::new(),
            loras: Vec::new(),
            last_image: false,
            memory: String::new(),
        }
    }
}
