//! transformers' `CLIPImageProcessor` from its `preprocessor_config.json`, as its PIL backend
//! runs it (transformers without torchvision): the shorter side resized to
//! `size.shortest_edge` (the longer one in proportion, truncated) with Pillow's `resample`
//! filter on the 8-bit picture, the centre cut to `crop_size`, values times `rescale_factor`,
//! then normalised with `image_mean` and `image_std`.

use crate::diffusers::common::config::read_json;
use crate::diffusers::common::image_processing::Planar;
use crate::diffusers::common::pil_resize::{self, Filter};
use crate::diffusers::common::weights::LoadError;
use image::RgbImage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
struct Raw {
    size: serde_json::Value,
    crop_size: serde_json::Value,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default = "yes")]
    do_center_crop: bool,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "one_255th")]
    rescale_factor: f32,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: [f32; 3],
    image_std: [f32; 3],
}

fn bicubic() -> u32 {
    3
}
fn yes() -> bool {
    true
}
fn one_255th() -> f32 {
    1.0 / 255.0
}

#[derive(Debug, Clone)]
pub struct ClipImageProcessor {
    shortest_edge: Option<usize>,
    crop: Option<(usize, usize)>,
    filter: Filter,
    rescale: f32,
    normalize: Option<([f32; 3], [f32; 3])>,
}

impl ClipImageProcessor {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let raw: Raw = read_json(path)?;
        let shortest_edge = match (raw.do_resize, raw.size.get("shortest_edge").and_then(|v| v.as_u64())) {
            (false, _) => None,
            (true, Some(edge)) if edge > 0 => Some(edge as usize),
            _ => return Err(LoadError::config(path, "size", &raw.size, "only {\"shortest_edge\": N} is supported")),
        };
        let side = |key: &str| raw.crop_size.get(key).and_then(|v| v.as_u64()).map(|v| v as usize);
        let crop = match (raw.do_center_crop, side("height"), side("width"), raw.crop_size.as_u64()) {
            (false, ..) => None,
            (true, Some(h), Some(w), _) => Some((h, w)),
            (true, _, _, Some(s)) => Some((s as usize, s as usize)),
            _ => return Err(LoadError::config(path, "crop_size", &raw.crop_size, "a height and a width")),
        };
        if let (Some(edge), Some((h, w))) = (shortest_edge, crop)
            && (h > edge || w > edge || h == 0 || w == 0)
        {
            return Err(LoadError::config(path, "crop_size", &raw.crop_size, "must fit within size.shortest_edge"));
        }
        let filter = match raw.resample {
            1 => Filter::Lanczos,
            3 => Filter::Bicubic,
            other => return Err(LoadError::config(path, "resample", other, "only bicubic (3) and Lanczos (1)")),
        };
        Ok(Self {
            shortest_edge,
            crop,
            filter,
            rescale: if raw.do_rescale { raw.rescale_factor } else { 1.0 },
            normalize: raw.do_normalize.then_some((raw.image_mean, raw.image_std)),
        })
    }

    /// `pixel_values` of one picture: [3, height, width].
    pub fn preprocess(&self, image: &RgbImage) -> Planar {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let resized = match self.shortest_edge {
            Some(edge) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                let long = edge * long / short.max(1);
                let (nw, nh) = if w <= h { (edge, long) } else { (long, edge) };
                pil_resize::resize(image, nw as u32, nh as u32, self.filter)
            }
            None => image.clone(),
        };
        let (w, h) = (resized.width() as usize, resized.height() as usize);
        let (ch, cw) = self.crop.unwrap_or((h, w));
        let (top, left) = ((h - ch.min(h)) / 2, (w - cw.min(w)) / 2);
        let cropped = image::imageops::crop_imm(&resized, left as u32, top as u32, cw as u32, ch as u32).to_image();
        let rescale = self.rescale * 255.0;
        let mut planar = Planar::from_rgb8(&cropped, |v| v * rescale);
        if let Some((mean, std)) = self.normalize {
            planar.normalize(mean, std);
        }
        planar
    }
}
