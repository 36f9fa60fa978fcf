//! Frames as the built-in models handle them: which frames of a clip to keep, a centre-cropped
//! square, and images as planar tensors in [-1, 1].

use image::RgbImage;
use image::imageops::FilterType;

/// `wanted` frame indices spread evenly over a clip of `native` frames.
pub fn frame_indices(native: usize, wanted: usize) -> Vec<usize> {
    if wanted <= 1 {
        return vec![0];
    }
    (0..wanted).map(|i| ((i * (native - 1)) as f32 / (wanted - 1) as f32).round() as usize).collect()
}

/// Centre-crops to a square and resizes (antialiased) to `size`.
pub fn crop_resize(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let cropped = image::imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    image::imageops::resize(&cropped, size, size, FilterType::Triangle)
}

/// RGB image -> planar `[3, h, w]` in [-1, 1].
pub fn to_planar(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = p.0[c] as f32 / 127.5 - 1.0;
        }
    }
    out
}

/// Planar `[3, size, size]` in [-1, 1] -> RGB image.
pub fn from_planar(data: &[f32], size: u32) -> RgbImage {
    let plane = (size * size) as usize;
    RgbImage::from_fn(size, size, |x, y| {
        let i = (y * size + x) as usize;
        image::Rgb(std::array::from_fn(|c| ((data[c * plane + i] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8))
    })
}
