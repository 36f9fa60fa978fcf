//! Editing a picture with the built-in editor: the picture is seen at its working size (32 on
//! the short side), the network writes where to change it and what to put there, and the
//! change is drawn onto the picture at its own resolution: pixels outside the mask stay as
//! they were.

use super::instruction::{EDIT_DIM, Edit, parse};
use super::net::{EditConfig, EditNet};
use crate::builtin::motion::animate::bilinear;
use crate::builtin::weights::ModelError;
use crate::generate::{GenerateError, Progress};
use burn::prelude::*;
use burn::store::{HalfPrecisionAdapter, ModuleSnapshot, SafetensorsStore};
use image::RgbImage;
use image::imageops::FilterType;

/// Identifier of the shipped editor, recorded in results' metadata.
pub const EDIT_MODEL_ID: &str = "vidplay-edit-1";

const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../../weights/edit.safetensors");
const SHIPPED_CONFIG: &str = include_str!("../../../weights/edit.json");

/// Mask values below this count as "keep": the picture there is left exactly as it was.
pub const KEEP_BELOW: f32 = 0.02;
/// Longest working side, in multiples of the short one.
const MAX_ASPECT: usize = 4;

/// The built-in editor on a device.
pub struct Editor {
    net: EditNet,
    config: EditConfig,
    device: Device,
}

/// An edited picture.
#[derive(Debug, Clone)]
pub struct Edited {
    pub image: RgbImage,
    pub edit: Edit,
    /// Pixels the edit touched, of all.
    pub changed_fraction: f32,
    pub seconds: f64,
}

impl Editor {
    pub fn shipped_weights_bytes() -> usize {
        SHIPPED_WEIGHTS.len()
    }

    /// The weights shipped inside the binary.
    pub fn shipped(device: &Device) -> Result<Self, ModelError> {
        let config: EditConfig = serde_json::from_str(SHIPPED_CONFIG).map_err(|e| ModelError::Config(e.to_string()))?;
        Self::from_store(
            SafetensorsStore::from_bytes(Some(SHIPPED_WEIGHTS.to_vec())),
            config,
            "<built-in editor>",
            device,
        )
    }

    /// Weights exported by `train_edit`: `NAME.safetensors` with `NAME.json` beside it.
    pub fn load(weights: &std::path::Path, device: &Device) -> Result<Self, ModelError> {
        let config_path = weights.with_extension("json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::Weights { path: config_path.display().to_string(), message: e.to_string() })?;
        let config: EditConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config(e.to_string()))?;
        Self::from_store(SafetensorsStore::from_file(weights), config, &weights.display().to_string(), device)
    }

    fn from_store(
        store: SafetensorsStore,
        config: EditConfig,
        origin: &str,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut net = config.init(device);
        let mut store = store.with_from_adapter(HalfPrecisionAdapter::new()).allow_partial(true);
        let result = net
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights { path: origin.into(), message: e.to_string() })?;
        if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
            return Err(ModelError::Weights {
                path: origin.into(),
                message: format!(
                    "weights do not match the editor: missing {:?}, unused {:?}",
                    result.missing, result.unused
                ),
            });
        }
        Ok(Self { net, config, device: device.clone() })
    }

    pub fn config(&self) -> &EditConfig {
        &self.config
    }

    /// The size the network sees a `width` x `height` picture at: the short side at the
    /// trained size, the long side in proportion (a multiple of 8, at most 4 times the short).
    pub fn working_size(&self, width: u32, height: u32) -> (usize, usize) {
        let s = self.config.size;
        let (short, long) = (width.min(height).max(1) as f32, width.max(height) as f32);
        let long_side = (((long / short) * s as f32 / 8.0).round() as usize * 8).clamp(s, MAX_ASPECT * s);
        if width >= height { (long_side, s) } else { (s, long_side) }
    }

    /// Edits `picture` as `instruction` says.
    pub fn edit(
        &self,
        picture: &RgbImage,
        instruction: &str,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<Edited, GenerateError> {
        let started = std::time::Instant::now();
        let edit = parse(instruction).map_err(GenerateError::InvalidRequest)?;
        let edited = self.apply(picture, edit)?;
        on_progress(Progress::new(1, 1));
        Ok(Edited { seconds: started.elapsed().as_secs_f64(), ..edited })
    }

    /// Applies one edit to `picture`, at its own resolution.
    pub fn apply(&self, picture: &RgbImage, edit: Edit) -> Result<Edited, GenerateError> {
        let (w, h) = picture.dimensions();
        let (sw, sh) = self.working_size(w, h);
        let small = image::imageops::resize(picture, sw as u32, sh as u32, FilterType::Triangle);
        let plane = sw * sh;
        let mut input = vec![0.0f32; 3 * plane];
        for (x, y, p) in small.enumerate_pixels() {
            for c in 0..3 {
                input[c * plane + y as usize * sw + x as usize] = p.0[c] as f32 / 255.0 * 2.0 - 1.0;
            }
        }
        let image = Tensor::<4>::from_data(TensorData::new(input, [1, 3, sh, sw]), &self.device);
        let cond = Tensor::<2>::from_data(TensorData::new(edit.vector(), [1, EDIT_DIM]), &self.device);
        let out: Vec<f32> = self
            .net
            .forward(image, cond)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| GenerateError::Backend(format!("reading the editor's output: {e:?}")))?;
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        let mut touched = 0usize;
        let image = RgbImage::from_fn(w, h, |x, y| {
            let gx = (x as f32 + 0.5) / w as f32 * sw as f32 - 0.5;
            let gy = (y as f32 + 0.5) / h as f32 * sh as f32 - 0.5;
            let m = sigmoid(bilinear(&out, sw, sh, gx, gy));
            let m = ((m - KEEP_BELOW) / (1.0 - KEEP_BELOW)).clamp(0.0, 1.0);
            let p = picture.get_pixel(x, y).0;
            if m == 0.0 {
                return image::Rgb(p);
            }
            touched += 1;
            image::Rgb(std::array::from_fn(|c| {
                let colour = sigmoid(bilinear(&out[(1 + c) * plane..], sw, sh, gx, gy)) * 255.0;
                (p[c] as f32 * (1.0 - m) + colour * m).round().clamp(0.0, 255.0) as u8
            }))
        });
        Ok(Edited { image, edit, changed_fraction: touched as f32 / (w * h).max(1) as f32, seconds: 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_editor_loads_and_keeps_the_picture_size() {
        let device = Device::flex();
        let editor = Editor::shipped(&device).unwrap();
        assert_eq!(editor.working_size(64, 64), (32, 32));
        assert_eq!(editor.working_size(96, 64), (48, 32));
        assert_eq!(editor.working_size(40, 400), (32, 128));
        let pic = RgbImage::from_fn(50, 30, |x, y| image::Rgb([(x * 5) as u8, (y * 8) as u8, 90]));
        let out = editor.edit(&pic, "make it red", &mut |_| {}).unwrap();
        assert_eq!(out.image.dimensions(), (50, 30));
        assert!(editor.edit(&pic, "make it a fireman", &mut |_| {}).unwrap_err().to_string().contains("does not know"));
    }
}
