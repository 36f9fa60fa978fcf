//! The metadata of a result, one versioned type that every engine writes (into metadata.json,
//! the database and the files themselves) and the pages and the API read. Results written
//! before it existed (unversioned, one shape per family) are read into it too.

use crate::params::{JobParams, Mode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The version written now. 1 is the unversioned shapes written before.
pub const RESULT_VERSION: u32 = 2;

/// Everything needed to understand and reproduce a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultMeta {
    pub version: u32,
    pub mode: Mode,
    pub model: String,
    pub family: String,
    pub prompt: String,
    /// The settings it was made with (seed resolved): what "remix" and dropping the file on the
    /// Create page restore.
    pub params: JobParams,
    pub seed: u64,
    /// Frames in the files (1 for an image).
    pub frames: u32,
    pub fps: u32,
    pub duration_s: f64,
    pub resolution: Resolution,
    /// Where the input image came from, for image-to-video.
    pub input_image: Option<String>,
    pub device: String,
    pub precision: String,
    pub timings: Timings,
    /// Peak resident memory of the process when the run ended (host memory).
    pub peak_host_memory_mib: Option<f64>,
    /// Peak GPU memory Burn's allocator held during the run (weights included); none on the
    /// CPU backend.
    pub peak_gpu_memory_mib: Option<f64>,
    /// Text to video through a keyframe: the keyframe's own metadata.
    pub keyframe: Option<Box<ResultMeta>>,
    /// What only this family records (e.g. how the prompt was understood, the motion bucket).
    #[serde(flatten)]
    pub details: Map<String, Value>,
    pub created_unix: u64,
    pub vidplay_version: String,
}

impl Default for ResultMeta {
    fn default() -> Self {
        Self {
            version: RESULT_VERSION,
            mode: Mode::TextToVideo,
            model: String::new(),
            family: String::new(),
            prompt: String::new(),
            params: JobParams::default(),
            seed: 0,
            frames: 0,
            fps: 0,
            duration_s: 0.0,
            resolution: Resolution::default(),
            input_image: None,
            device: String::new(),
            precision: String::new(),
            timings: Timings::default(),
            peak_host_memory_mib: None,
            peak_gpu_memory_mib: None,
            keyframe: None,
            details: Map::new(),
            created_unix: 0,
            vidplay_version: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resolution {
    /// What the model generated (width, height).
    pub native: [u32; 2],
    /// What the files contain.
    pub display: [u32; 2],
    /// How native frames were scaled to the display size ("none" when they are the same).
    pub upscale_filter: String,
}

/// Seconds spent in each phase; phases a family does not have stay 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    pub load_s: f64,
    /// The CLI's `--warmup` (benchmarks): one step at the same size before the timed run, which
    /// compiles and tunes the kernels; 0 without it.
    pub warmup_s: f64,
    /// Conditioning: encoding the prompt or the input image.
    pub conditioning_s: f64,
    pub sampling_s: f64,
    pub decode_s: f64,
    /// Writing the files.
    pub encode_s: f64,
    pub total_s: f64,
}

impl ResultMeta {
    /// Reads metadata of any version; never fails (what cannot be read stays at its default,
    /// and unknown fields are kept in `details`).
    pub fn from_value(value: Value) -> ResultMeta {
        let value = match value {
            Value::Object(map) if !map.contains_key("version") => Value::Object(upgrade_v1(map)),
            other => other,
        };
        match serde_json::from_value::<ResultMeta>(value.clone()) {
            Ok(meta) => meta,
            Err(_) => ResultMeta {
                version: 0,
                details: value.as_object().cloned().unwrap_or_default(),
                ..ResultMeta::default()
            },
        }
    }

    pub fn is_image(&self) -> bool {
        matches!(self.mode, Mode::TextToImage | Mode::Edit)
    }
}

/// Deserializes `ResultMeta` of any version (for fields holding stored metadata).
pub fn read_any_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ResultMeta, D::Error> {
    Ok(ResultMeta::from_value(Value::deserialize(d)?))
}

fn num(map: &Map<String, Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(Value::as_f64)
}

/// The three unversioned shapes: the built-in model's (`parameters` holds its request), Stable
/// Video Diffusion's (`kind: image-to-video`, sizes and guidance at the top level) and Stable
/// Diffusion's (`kind: text-to-image`).
fn upgrade_v1(mut map: Map<String, Value>) -> Map<String, Value> {
    let kind = map.get("kind").and_then(Value::as_str).map(str::to_string);
    let mut params = JobParams {
        model: map.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
        ..JobParams::default()
    };
    params.prompt = map.get("prompt").and_then(Value::as_str).unwrap_or_default().to_string();
    params.seed = map.get("seed").and_then(Value::as_u64);
    let family;
    if let Some(Value::Object(p)) = map.remove("parameters") {
        family = "builtin";
        if let Some(v) = num(&p, "frames") {
            params.frames = v as u32
        }
        if let Some(v) = num(&p, "fps") {
            params.fps = v as u32
        }
        if let Some(v) = num(&p, "steps") {
            params.steps = v as u32
        }
        if let Some(v) = num(&p, "guidance") {
            params.guidance = v as f32
        }
        if let Some(v) = num(&p, "image_guidance") {
            params.image_guidance = v as f32
        }
        if let Some(v) = num(&p, "motion") {
            params.motion = v as f32
        }
        map.insert("parameters".into(), Value::Object(p));
    } else {
        if let Some(v) = num(&map, "width") {
            params.width = v as u32
        }
        if let Some(v) = num(&map, "height") {
            params.height = v as u32
        }
        if let Some(v) = num(&map, "steps") {
            params.steps = v as u32
        }
        if kind.as_deref() == Some("text-to-image") {
            family = "stable-diffusion";
            map.insert("mode".into(), Value::from(Mode::TextToImage.as_str()));
            if let Some(v) = num(&map, "guidance") {
                params.guidance = v as f32
            }
            params.negative = map.get("negative_prompt").and_then(Value::as_str).unwrap_or_default().to_string();
            map.insert("frames".into(), Value::from(1));
            let size = [params.width, params.height];
            map.insert(
                "resolution".into(),
                serde_json::json!({"native": size, "display": size, "upscale_filter": "none"}),
            );
        } else {
            family = "stable-video-diffusion";
            if let Some(v) = num(&map, "frames") {
                params.frames = v as u32
            }
            if let Some(v) = num(&map, "fps") {
                params.fps = v as u32
            }
            if let Some(v) = num(&map, "max_guidance") {
                params.guidance = v as f32
            }
            if let Some(v) = num(&map, "motion_bucket") {
                params.motion = (v / 127.0) as f32
            }
        }
    }
    if let Some(Value::Object(kf)) = map.remove("keyframe") {
        let kf = upgrade_v1(kf);
        if let Some(Value::Object(p)) = kf.get("params") {
            params.keyframe_model = p.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(v) = num(p, "steps") {
                params.keyframe_steps = v as u32
            }
            if let Some(v) = num(p, "guidance") {
                params.keyframe_guidance = v as f32
            }
            params.negative = p.get("negative").and_then(Value::as_str).unwrap_or_default().to_string();
        }
        map.insert("keyframe".into(), Value::Object(kf));
    }
    map.entry("family").or_insert_with(|| Value::from(family));
    map.insert("params".into(), serde_json::to_value(&params).unwrap_or_default());
    map.insert("version".into(), Value::from(1));
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_metadata_before_versions_still_reads() {
        let old = json!({
            "model": "vidplay-toy-1", "mode": "image-to-video", "prompt": "a red ball",
            "understood": {"subject": "ball"},
            "parameters": {"prompt": "a red ball", "frames": 12, "fps": 6, "steps": 20, "guidance": 2.5,
                           "image_guidance": 1.5, "seed": 42, "motion": 0.5, "display_size": 256},
            "seed": 42, "frames": 12, "fps": 6, "duration_s": 2.0,
            "resolution": {"native": [32, 32], "display": [256, 256], "upscale_filter": "catmull-rom"},
            "input_image": "upload", "device": "cpu", "timings": {"load_s": 0.0, "sampling_s": 1.5, "encode_s": 0.2, "total_s": 1.8},
            "created_unix": 1, "vidplay_version": "0.1.0"
        });
        let m = ResultMeta::from_value(old);
        assert_eq!((m.version, m.mode, m.family.as_str()), (1, Mode::ImageToVideo, "builtin"));
        assert_eq!((m.params.frames, m.params.fps, m.params.steps, m.params.seed), (12, 6, 20, Some(42)));
        assert_eq!(m.params.motion, 0.5);
        assert_eq!(m.resolution.native, [32, 32]);
        assert_eq!(m.timings.sampling_s, 1.5);
        assert_eq!(m.details["understood"]["subject"], "ball");
    }

    #[test]
    fn svd_and_keyframe_metadata_before_versions_still_read() {
        let old = json!({
            "kind": "image-to-video", "mode": "text-to-video", "model": "svd", "model_path": "/m/svd", "prompt": "a boat",
            "width": 576, "height": 320, "frames": 14, "fps": 7, "duration_s": 2.0, "steps": 25, "motion_bucket": 127,
            "max_guidance": 3.0, "min_guidance": 1.0, "seed": 9, "precision": "F16", "device": "cuda",
            "resolution": {"native": [576, 320], "display": [576, 320], "upscale_filter": "none"},
            "keyframe": {"kind": "text-to-image", "model": "sd", "prompt": "a boat", "negative_prompt": "fog",
                         "steps": 30, "guidance": 7.0, "width": 576, "height": 320, "seed": 9,
                         "timings": {"load_s": 1.0, "sampling_s": 2.0, "decode_s": 0.5, "total_s": 3.5}},
            "timings": {"load_s": 1.0, "conditioning_s": 0.5, "sampling_s": 9.0, "decode_s": 2.0, "encode_s": 0.5, "total_s": 13.0}
        });
        let m = ResultMeta::from_value(old);
        assert_eq!(
            (m.mode, m.family.as_str(), m.precision.as_str()),
            (Mode::TextToVideo, "stable-video-diffusion", "F16")
        );
        assert_eq!((m.params.width, m.params.height, m.params.guidance, m.params.motion), (576, 320, 3.0, 1.0));
        assert_eq!(
            (m.params.keyframe_model.as_str(), m.params.keyframe_steps, m.params.keyframe_guidance),
            ("sd", 30, 7.0)
        );
        assert_eq!(m.params.negative, "fog", "the keyframe's negative prompt is the job's");
        let kf = m.keyframe.expect("the keyframe");
        assert_eq!((kf.mode, kf.model.as_str(), kf.resolution.native), (Mode::TextToImage, "sd", [576, 320]));
        assert_eq!(kf.timings.decode_s, 0.5);
        assert_eq!(m.details["model_path"], "/m/svd");
    }

    #[test]
    fn current_metadata_round_trips_and_garbage_never_fails() {
        let m = ResultMeta {
            model: "x".into(),
            frames: 3,
            details: [("k".to_string(), json!(1))].into_iter().collect(),
            ..ResultMeta::default()
        };
        let back = ResultMeta::from_value(serde_json::to_value(&m).unwrap());
        assert_eq!(back, m);
        assert_eq!(ResultMeta::from_value(json!("not an object")).version, 0);
        assert_eq!(ResultMeta::from_value(json!({"version": 2, "frames": "many"})).version, 0);
    }
}
