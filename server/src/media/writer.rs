//! A rendered result as files: MP4 and GIF (settings embedded), or a PNG image (settings
//! embedded), with PNG frames, a zip of them, a poster, the input and keyframe images, and
//! metadata.json, written last. Where they go is the caller's: the media store (the server) or
//! a folder (the command line).

use super::encode::{encode_gif, encode_mp4, encode_png};
use crate::engines::Rendered;
use anyhow::{Context, Result};
use app::media_files::MediaFile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which optional files to write.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Every frame as PNG.
    pub png_frames: bool,
    /// The frames zipped, and a poster (what the gallery needs).
    pub gallery: bool,
}

impl WriteOptions {
    /// Everything the playground serves.
    pub const GALLERY: WriteOptions = WriteOptions { png_frames: true, gallery: true };
}

/// Encodes `result` and hands each file to `put`; fills in the encode time before the
/// metadata is written. Returns the seconds spent.
pub fn write_result(
    result: &mut Rendered,
    options: WriteOptions,
    put: &mut dyn FnMut(MediaFile, Vec<u8>) -> Result<()>,
) -> Result<f64> {
    let started = Instant::now();
    let embedded = serde_json::to_string(&result.meta)?;
    if result.still {
        let image = result.frames.first().context("no image to write")?;
        let png = encode_png(image, Some(&embedded))?;
        if options.gallery {
            put(MediaFile::Poster, png.clone())?;
        }
        put(MediaFile::Image, png)?;
    } else {
        put(MediaFile::Video, encode_mp4(&result.frames, result.fps, &embedded)?)?;
        put(MediaFile::Gif, encode_gif(&result.frames, result.fps, &embedded)?)?;
        let mut zipped = Vec::new();
        if options.png_frames || options.gallery {
            for (i, frame) in result.frames.iter().enumerate() {
                let png = encode_png(frame, None)?;
                if options.gallery {
                    zipped.push((MediaFile::Frame(i).name(), png.clone()));
                }
                if options.png_frames {
                    put(MediaFile::Frame(i), png)?;
                }
            }
        }
        if options.gallery {
            put(MediaFile::Frames, super::zip::store(&zipped)?)?;
            // The poster is the middle frame.
            let middle = result.frames.get(result.frames.len() / 2).context("no frames to write")?;
            put(MediaFile::Poster, encode_png(middle, None)?)?;
        }
    }
    if let Some(input) = &result.input {
        put(MediaFile::Input, encode_png(input, None)?)?;
    }
    if let Some(keyframe) = &result.keyframe {
        put(MediaFile::Keyframe, encode_png(keyframe, Some(&embedded))?)?;
    }
    let encode_s = started.elapsed().as_secs_f64();
    result.meta.timings.encode_s = encode_s;
    result.meta.timings.total_s += encode_s;
    put(MediaFile::Metadata, serde_json::to_vec_pretty(&result.meta)?)?;
    Ok(encode_s)
}

/// Writes a result's files into `dir` (the command line's `--out`), each atomically.
pub fn write_to_folder(result: &mut Rendered, options: WriteOptions, dir: &Path) -> Result<f64> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_result(result, options, &mut |file, bytes| write_atomic(&dir.join(file.name()), &bytes))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so no half-written file is
/// ever visible under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp: PathBuf =
        path.with_extension(format!("{}.partial", path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("vidplay-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.gif");
        write_atomic(&p, b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
