//! Reading user images safely: clear errors for missing, unreadable, truncated or huge files.

use image::{ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Largest accepted width or height of an input image.
pub const MAX_SIDE: u32 = 8192;
/// Smallest side an image to animate may have (after fitting it within the models' largest).
pub const MIN_SIDE: u32 = 16;
/// Largest accepted input file.
pub const MAX_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImageInputError {
    #[error("cannot read image {0}: {1}")]
    Read(String, String),
    #[error("image {0} is larger than {max} MB", max = MAX_BYTES / (1024 * 1024))]
    TooLarge(String),
    #[error("{0} is not an image vidplay can read (PNG, JPEG, GIF, WebP, BMP): {1}")]
    Decode(String, String),
    #[error("image {0} is {1}x{2} pixels; at most {MAX_SIDE}x{MAX_SIDE} is accepted")]
    Dimensions(String, u32, u32),
}

/// Decodes an image from bytes; `name` is used in messages.
pub fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, ImageInputError> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ImageInputError::TooLarge(name.into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageInputError::Decode(name.into(), e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageInputError::Decode(name.into(), "unknown file format".into()));
    }
    // Check declared dimensions before allocating anything (decompression bombs).
    let (w, h) = reader.into_dimensions().map_err(|e| ImageInputError::Decode(name.into(), e.to_string()))?;
    if w > MAX_SIDE || h > MAX_SIDE || w == 0 || h == 0 {
        return Err(ImageInputError::Dimensions(name.into(), w, h));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageInputError::Decode(name.into(), e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| ImageInputError::Decode(name.into(), e.to_string()))?;
    Ok(img.to_rgb8())
}

/// `img` scaled down (aspect kept, Lanczos) so neither side exceeds `max_side`; unchanged
/// when it already fits.
pub fn fit_within(img: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w <= max_side && h <= max_side {
        return img;
    }
    let scale = max_side as f64 / w.max(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    image::imageops::resize(&img, nw.min(max_side), nh.min(max_side), image::imageops::FilterType::Lanczos3)
}

pub fn load(path: &Path) -> Result<RgbImage, ImageInputError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| ImageInputError::Read(name.clone(), e.to_string()))?;
    if meta.is_dir() {
        return Err(ImageInputError::Read(name, "it is a directory".into()));
    }
    if meta.len() > MAX_BYTES {
        return Err(ImageInputError::TooLarge(name));
    }
    let bytes = std::fs::read(path).map_err(|e| ImageInputError::Read(name.clone(), e.to_string()))?;
    decode(&bytes, &name)
}

/// The hex SHA-256 of an image's RGB pixels (with its size), so the same picture has the same
/// hash whatever file format carried it.
pub fn image_sha256(image: &image::RgbImage) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(image.width().to_le_bytes());
    h.update(image.height().to_le_bytes());
    h.update(image.as_raw());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn large_images_are_fitted_within_the_limit() {
        let img = RgbImage::new(3000, 1500);
        assert_eq!(fit_within(img, 1024).dimensions(), (1024, 512));
        assert_eq!(fit_within(RgbImage::new(20, 4000), 1024).dimensions(), (5, 1024));
        assert_eq!(fit_within(RgbImage::new(640, 480), 1024).dimensions(), (640, 480));
    }

    #[test]
    fn good_png_decodes() {
        assert_eq!(decode(&png(5, 3), "x").unwrap().dimensions(), (5, 3));
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        assert!(matches!(decode(b"hello, not an image", "t.txt"), Err(ImageInputError::Decode(..))));
        let mut truncated = png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(decode(&truncated, "t.png"), Err(ImageInputError::Decode(..))));
        // A PNG header declaring 100000 x 100000 pixels.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = decode(&bomb, "bomb.png").unwrap_err();
        assert!(matches!(err, ImageInputError::Dimensions(..) | ImageInputError::Decode(..)), "{err}");
        assert!(matches!(load(Path::new("/no/such/file.png")), Err(ImageInputError::Read(..))));
    }
}
