//! Writing generated clips: H.264 in MP4 (plays in every browser), animated GIF, PNG frames.
//!
//! The generation parameters (JSON) are embedded in both files: in the MP4 as an H.264 SEI
//! "user data unregistered" message in the first access unit, in the GIF as a comment
//! extension. [`embedded_metadata`] reads them back from either.

use anyhow::{Result, bail};
use image::RgbImage;

/// UUID that marks vidplay's SEI payload.
const SEI_UUID: [u8; 16] = *b"vidplay-params-1";
/// Marker that precedes the JSON in a GIF comment.
const GIF_MARKER: &str = "vidplay-params:";

fn check_frames(frames: &[RgbImage]) -> Result<(u32, u32)> {
    let Some(first) = frames.first() else { bail!("no frames to encode") };
    let dims = first.dimensions();
    if frames.iter().any(|f| f.dimensions() != dims) {
        bail!("frames differ in size");
    }
    Ok(dims)
}

/// Splits an Annex-B byte stream into NAL units (without start codes).
fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A 4-byte start code leaves one more zero before the next NAL.
        while end > s && stream[end - 1] == 0 && starts.get(k + 1).is_some() {
            end -= 1;
        }
        if end > s {
            nals.push(&stream[s..end]);
        }
    }
    nals
}

/// An SEI NAL unit (type 6) carrying `payload` as user_data_unregistered (payload type 5).
fn sei_user_data(payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 32);
    body.push(5u8);
    let mut size = SEI_UUID.len() + payload.len();
    while size >= 255 {
        body.push(255);
        size -= 255;
    }
    body.push(size as u8);
    body.extend_from_slice(&SEI_UUID);
    body.extend_from_slice(payload);
    body.push(0x80); // rbsp trailing bits
    // Emulation prevention: no 00 00 0x (x <= 3) may appear inside a NAL.
    let mut nal = vec![0x06u8];
    let mut zeros = 0;
    for b in body {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        nal.push(b);
    }
    nal
}

/// Encodes frames as H.264 (constrained baseline, via OpenH264) in an MP4 file.
pub fn encode_mp4(frames: &[RgbImage], fps: u32, metadata_json: &str) -> Result<Vec<u8>> {
    use openh264::OpenH264API;
    use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, RateControlMode};
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    let (w, h) = check_frames(frames)?;
    if w % 2 != 0 || h % 2 != 0 {
        bail!("H.264 needs even frame sizes, got {w}x{h}");
    }
    let config = EncoderConfig::new()
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .rate_control_mode(RateControlMode::Quality)
        .bitrate(BitRate::from_bps(4_000_000));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| anyhow::anyhow!("starting the H.264 encoder: {e}"))?;

    let mut sps = None;
    let mut pps = None;
    let mut samples: Vec<(Vec<u8>, bool)> = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(frame.as_raw(), (w as usize, h as usize)));
        if i == 0 {
            encoder.force_intra_frame();
        }
        let stream = encoder.encode(&yuv).map_err(|e| anyhow::anyhow!("encoding frame {i}: {e}"))?.to_vec();
        let mut sample = Vec::new();
        let mut is_sync = false;
        let push = |sample: &mut Vec<u8>, nal: &[u8]| {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        };
        if i == 0 {
            push(&mut sample, &sei_user_data(metadata_json.as_bytes()));
        }
        for nal in split_annex_b(&stream) {
            match nal[0] & 0x1f {
                7 => sps = Some(nal.to_vec()),
                8 => pps = Some(nal.to_vec()),
                t => {
                    if t == 5 {
                        is_sync = true;
                    }
                    push(&mut sample, nal);
                }
            }
        }
        samples.push((sample, is_sync));
    }
    let (Some(sps), Some(pps)) = (sps, pps) else { bail!("the H.264 encoder produced no parameter sets") };

    let timescale = fps * 1000;
    let mut writer = mp4::Mp4Writer::write_start(
        std::io::Cursor::new(Vec::new()),
        &mp4::Mp4Config {
            major_brand: str::parse("isom").unwrap(),
            minor_version: 512,
            compatible_brands: ["isom", "iso2", "avc1", "mp41"].iter().map(|b| str::parse(b).unwrap()).collect(),
            timescale,
        },
    )?;
    writer.add_track(&mp4::TrackConfig {
        track_type: mp4::TrackType::Video,
        timescale,
        language: "und".into(),
        media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
            width: w as u16,
            height: h as u16,
            seq_param_set: sps,
            pic_param_set: pps,
        }),
    })?;
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        writer.write_sample(
            1,
            &mp4::Mp4Sample {
                start_time: i as u64 * 1000,
                duration: 1000,
                rendering_offset: 0,
                is_sync,
                bytes: bytes.into(),
            },
        )?;
    }
    writer.write_end()?;
    Ok(writer.into_writer().into_inner())
}

/// Encodes frames as a looping animated GIF with the metadata in a comment extension.
pub fn encode_gif(frames: &[RgbImage], fps: u32, metadata_json: &str) -> Result<Vec<u8>> {
    let (w, h) = check_frames(frames)?;
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &[])?;
        enc.set_repeat(gif::Repeat::Infinite)?;
        let comment = format!("{GIF_MARKER}{metadata_json}");
        enc.write_raw_extension(gif::Extension::Comment.into(), &[comment.as_bytes()])?;
        let delay = (100.0 / fps as f32).round().max(2.0) as u16;
        for f in frames {
            let mut frame = gif::Frame::from_rgb_speed(w as u16, h as u16, f.as_raw(), 10);
            frame.delay = delay;
            enc.write_frame(&frame)?;
        }
    }
    Ok(out)
}

/// The keyword of the PNG text chunk that carries the metadata.
const PNG_KEYWORD: &str = "vidplay-params";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Encodes an image as PNG, with the metadata in a `tEXt` chunk when given.
pub fn encode_png(image: &RgbImage, metadata_json: Option<&str>) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let Some(json) = metadata_json else { return Ok(png) };
    // The text chunk goes right after IHDR (signature, then 4 + 4 + 13 + 4 bytes).
    let at = PNG_SIGNATURE.len() + 25;
    let mut data = Vec::with_capacity(PNG_KEYWORD.len() + 1 + json.len());
    data.extend_from_slice(PNG_KEYWORD.as_bytes());
    data.push(0);
    data.extend_from_slice(json.as_bytes());
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
    png.splice(at..at, chunk);
    Ok(png)
}

/// The metadata text chunk of a PNG, if any.
fn png_metadata(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = PNG_SIGNATURE.len();
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().ok()?) as usize;
        let kind = &bytes[i + 4..i + 8];
        let data = bytes.get(i + 8..i + 8 + len)?;
        if kind == b"tEXt" && data.starts_with(PNG_KEYWORD.as_bytes()) && data.get(PNG_KEYWORD.len()) == Some(&0) {
            return Some(&data[PNG_KEYWORD.len() + 1..]);
        }
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        i += 12 + len;
    }
    None
}

/// Finds the embedded metadata in an MP4, GIF or PNG written by this module.
pub fn embedded_metadata(bytes: &[u8]) -> Option<serde_json::Value> {
    if bytes.starts_with(PNG_SIGNATURE) {
        return serde_json::from_slice(png_metadata(bytes)?).ok();
    }
    let start = if let Some(p) = find(bytes, &SEI_UUID) {
        p + SEI_UUID.len()
    } else {
        find(bytes, GIF_MARKER.as_bytes())? + GIF_MARKER.len()
    };
    // GIF comments are split into sub-blocks of at most 255 bytes, each preceded by its length.
    let mut json = Vec::new();
    let is_gif = bytes.starts_with(b"GIF");
    if is_gif {
        // Walk back to the first sub-block's length byte.
        let block_start = start - GIF_MARKER.len() - 1;
        let mut i = block_start;
        let mut first = true;
        while i < bytes.len() && bytes[i] != 0 {
            let len = bytes[i] as usize;
            let data = bytes.get(i + 1..i + 1 + len)?;
            json.extend_from_slice(if first { data.get(GIF_MARKER.len()..)? } else { data });
            first = false;
            i += 1 + len;
        }
    } else {
        // The JSON runs from here to the end of the SEI payload; remove emulation prevention
        // bytes and read the first complete JSON value (what follows it is not JSON).
        let mut zeros = 0;
        for &b in &bytes[start..] {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            json.push(b);
        }
        return serde_json::Deserializer::from_slice(&json).into_iter::<serde_json::Value>().next()?.ok();
    }
    serde_json::from_slice(&json).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_metadata_round_trips_and_the_image_still_decodes() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        let png = encode_png(&img, Some(r#"{"seed":5,"prompt":"a boat"}"#)).unwrap();
        assert_eq!(embedded_metadata(&png).unwrap()["seed"], 5);
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert!(embedded_metadata(&encode_png(&img, None).unwrap()).is_none());
    }

    fn frames() -> Vec<RgbImage> {
        (0..6)
            .map(|t| RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, (t * 40) as u8])))
            .collect()
    }

    #[test]
    fn mp4_is_valid_and_carries_metadata() {
        let meta = r#"{"prompt":"a red ball","seed":7}"#;
        let bytes = encode_mp4(&frames(), 8, meta).unwrap();
        let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
        let track = reader.tracks().get(&1).unwrap();
        assert_eq!(track.sample_count(), 6);
        assert_eq!(track.width(), 64);
        assert_eq!(track.height(), 48);
        assert_eq!(embedded_metadata(&bytes).unwrap()["seed"], 7);
        // Typographic punctuation holds 0x80 bytes in UTF-8: the settings still read back.
        let curly = r#"{"prompt":"the boat’s wake — “slow”…","seed":8}"#;
        let bytes = encode_mp4(&frames(), 8, curly).unwrap();
        assert_eq!(embedded_metadata(&bytes).unwrap()["prompt"], "the boat’s wake — “slow”…");
        // Truncated or forged files are no settings, never a panic.
        for bad in [&b"GIF89a\x02\x01vidplay-params:{}"[..], b"GIFvidplay-params:", b"\x89PNG\r\n\x1a\n\xff\xff"] {
            let _ = embedded_metadata(bad);
        }
    }

    #[test]
    fn gif_decodes_and_carries_long_metadata() {
        let long = "x".repeat(700);
        let meta = format!(r#"{{"prompt":"{long}","seed":9}}"#);
        let bytes = encode_gif(&frames(), 8, &meta).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(decoded.width(), 64);
        let back = embedded_metadata(&bytes).unwrap();
        assert_eq!(back["seed"], 9);
        assert_eq!(back["prompt"].as_str().unwrap().len(), 700);
    }

    #[test]
    fn sei_escapes_start_code_patterns() {
        let nal = sei_user_data(&[0, 0, 1, 0, 0, 0]);
        assert!(!nal.windows(3).any(|w| w == [0, 0, 1] || w == [0, 0, 0]));
    }
}
