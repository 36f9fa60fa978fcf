//! Reading a clip from a file into frames: H.264 MP4 (OpenH264), animated GIF, or a folder of
//! frame images taken in name order. What `vidplay score` measures.

use anyhow::{Context, Result, bail};
use image::{AnimationDecoder, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Most frames read from one clip; longer clips are cut here.
pub const MAX_FRAMES: usize = 1000;

/// The frames of the clip at `path`.
pub fn read(path: &Path) -> Result<Vec<RgbImage>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        return read_folder(path);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let frames = match ext.as_str() {
        "mp4" | "m4v" | "mov" => read_mp4(&bytes),
        "gif" => read_gif(&bytes),
        "webm" | "mkv" => {
            bail!("{}: WebM is not supported yet; convert it to MP4 or GIF, or pass a folder of frames", path.display())
        }
        _ if bytes.len() > 8 && &bytes[4..8] == b"ftyp" => read_mp4(&bytes),
        _ if bytes.starts_with(b"GIF8") => read_gif(&bytes),
        _ => bail!("{} is not a clip vidplay can read (H.264 MP4, GIF, or a folder of frames)", path.display()),
    }
    .with_context(|| format!("cannot read the clip {}", path.display()))?;
    if frames.is_empty() {
        bail!("{} has no frames", path.display());
    }
    Ok(frames)
}

fn read_folder(dir: &Path) -> Result<Vec<RgbImage>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            p.is_file() && matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "webp" | "bmp")
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("the folder {} has no frame images (PNG, JPEG, WebP, BMP)", dir.display());
    }
    paths.truncate(MAX_FRAMES);
    paths.iter().map(|p| super::input::load(p).map_err(anyhow::Error::from)).collect()
}

fn read_gif(bytes: &[u8]) -> Result<Vec<RgbImage>> {
    let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).context("not a readable GIF")?;
    let mut frames = Vec::new();
    for frame in decoder.into_frames().take(MAX_FRAMES) {
        let frame = frame.context("a GIF frame cannot be read")?;
        frames.push(image::DynamicImage::ImageRgba8(frame.into_buffer()).to_rgb8());
    }
    Ok(frames)
}

fn read_mp4(bytes: &[u8]) -> Result<Vec<RgbImage>> {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;
    let mut reader =
        mp4::Mp4Reader::read_header(Cursor::new(bytes), bytes.len() as u64).context("not a readable MP4")?;
    let track = reader
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .context("the MP4 has no video track")?;
    if !matches!(track.media_type(), Ok(mp4::MediaType::H264)) {
        bail!(
            "only H.264 video can be read (this MP4 has {:?})",
            track.media_type().map(|m| m.to_string()).unwrap_or_default()
        );
    }
    let track_id = track.track_id();
    let samples = track.sample_count();
    let start = |nal: &[u8]| [&[0u8, 0, 0, 1][..], nal].concat();
    let mut header = start(track.sequence_parameter_set().context("the MP4 has no H.264 parameter sets")?);
    header.extend(start(track.picture_parameter_set().context("the MP4 has no H.264 parameter sets")?));
    let mut decoder = Decoder::new().map_err(|e| anyhow::anyhow!("starting the H.264 decoder: {e}"))?;
    let mut frames = Vec::new();
    let to_rgb = |yuv: &openh264::decoder::DecodedYUV<'_>| {
        let (w, h) = yuv.dimensions();
        let mut rgb = vec![0u8; w * h * 3];
        yuv.write_rgb8(&mut rgb);
        RgbImage::from_raw(w as u32, h as u32, rgb)
    };
    for id in 1..=samples {
        if frames.len() >= MAX_FRAMES {
            break;
        }
        let Some(sample) = reader.read_sample(track_id, id).with_context(|| format!("reading sample {id}"))? else {
            continue;
        };
        // Length-prefixed NAL units to an Annex B stream, parameter sets first.
        let mut stream = if id == 1 { header.clone() } else { Vec::new() };
        let mut data = &sample.bytes[..];
        while data.len() >= 4 {
            let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if n == 0 || data.len() < 4 + n {
                bail!("sample {id} is truncated");
            }
            stream.extend(start(&data[4..4 + n]));
            data = &data[4 + n..];
        }
        if let Some(yuv) = decoder.decode(&stream).map_err(|e| anyhow::anyhow!("decoding frame {id}: {e}"))? {
            frames.extend(to_rgb(&yuv));
        }
    }
    for yuv in decoder.flush_remaining().map_err(|e| anyhow::anyhow!("decoding the last frames: {e}"))? {
        frames.extend(to_rgb(&yuv));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<RgbImage> {
        (0..6)
            .map(|t| RgbImage::from_fn(48, 32, |x, y| image::Rgb([(x * 5 + t * 9) as u8, (y * 7) as u8, 128])))
            .collect()
    }

    #[test]
    fn mp4_gif_and_folders_read_back() {
        let dir = std::env::temp_dir().join(format!("vidplay-clip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("frames")).unwrap();
        let src = frames();
        std::fs::write(dir.join("a.mp4"), super::super::encode::encode_mp4(&src, 8, "{}").unwrap()).unwrap();
        std::fs::write(dir.join("a.gif"), super::super::encode::encode_gif(&src, 8, "{}").unwrap()).unwrap();
        for (i, f) in src.iter().enumerate() {
            f.save(dir.join("frames").join(format!("{i:04}.png"))).unwrap();
        }
        for name in ["a.mp4", "a.gif", "frames"] {
            let got = read(&dir.join(name)).unwrap();
            assert_eq!(got.len(), 6, "{name}");
            assert_eq!(got[0].dimensions(), (48, 32), "{name}");
            let psnr = crate::scores::fidelity::psnr(&got[3], &src[3]);
            assert!(psnr > 25.0, "{name}: {psnr}");
        }
        std::fs::write(dir.join("b.webm"), b"\x1a\x45\xdf\xa3").unwrap();
        assert!(read(&dir.join("b.webm")).unwrap_err().to_string().contains("WebM"));
        std::fs::write(dir.join("c.mp4"), b"not a video").unwrap();
        assert!(read(&dir.join("c.mp4")).is_err());
        assert!(read(&dir.join("missing.gif")).is_err());
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        assert!(read(&dir.join("empty")).unwrap_err().to_string().contains("no frame images"));
    }
}
