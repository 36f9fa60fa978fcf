//! The one place that names a result's files: their keys in the media store
//! (`media/ID/NAME`), which are also their URLs (`/media/ID/NAME`), and uploads' keys. Pages, API, engines' writers and the media stores all ask here.

/// One file of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFile {
    /// H.264 MP4 (settings embedded).
    Video,
    /// Animated GIF (settings embedded).
    Gif,
    /// The still shown before a clip plays (its middle frame, or the image).
    Poster,
    /// Every frame as PNG, zipped.
    Frames,
    /// A text-to-image result (settings embedded).
    Image,
    /// The image an image-to-video clip animates, as the model saw it.
    Input,
    /// The keyframe a text-to-video clip was made from.
    Keyframe,
    /// The result's metadata as JSON.
    Metadata,
    /// Frame `n` as PNG.
    Frame(usize),
}

impl MediaFile {
    /// Every file a result can have, but single frames.
    pub const ALL: [MediaFile; 8] = [
        MediaFile::Video,
        MediaFile::Gif,
        MediaFile::Poster,
        MediaFile::Frames,
        MediaFile::Image,
        MediaFile::Input,
        MediaFile::Keyframe,
        MediaFile::Metadata,
    ];

    /// The name inside the result's folder.
    pub fn name(self) -> String {
        match self {
            MediaFile::Video => "video.mp4".into(),
            MediaFile::Gif => "video.gif".into(),
            MediaFile::Poster => "poster.png".into(),
            MediaFile::Frames => "frames.zip".into(),
            MediaFile::Image => "image.png".into(),
            MediaFile::Input => "input.png".into(),
            MediaFile::Keyframe => "keyframe.png".into(),
            MediaFile::Metadata => "metadata.json".into(),
            MediaFile::Frame(n) => format!("frames/{n:04}.png"),
        }
    }

    /// The file a name inside a result's folder stands for.
    pub fn parse(name: &str) -> Option<MediaFile> {
        if let Some(frame) = name.strip_prefix("frames/").and_then(|f| f.strip_suffix(".png")) {
            return (frame.len() == 4 && frame.bytes().all(|b| b.is_ascii_digit()))
                .then(|| MediaFile::Frame(frame.parse().unwrap_or(0)));
        }
        MediaFile::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            MediaFile::Video => "video/mp4",
            MediaFile::Gif => "image/gif",
            MediaFile::Frames => "application/zip",
            MediaFile::Metadata => "application/json",
            _ => "image/png",
        }
    }
}

/// The key of a result's file in the media store.
pub fn key(id: &str, file: MediaFile) -> String {
    format!("{}{}", result_prefix(id), file.name())
}

/// The prefix of every key of a result.
pub fn result_prefix(id: &str) -> String {
    format!("{RESULTS}/{id}/")
}

/// Where results live in the media store.
pub const RESULTS: &str = "media";
/// Where uploads wait for their jobs in the media store.
pub const UPLOADS: &str = "uploads";

/// The URL a result's file is served at.
pub fn url(id: &str, file: MediaFile) -> String {
    format!("/{}", key(id, file))
}

/// The key of a job's uploaded image (kept as PNG until the job has run).
pub fn upload_key(id: &str) -> String {
    format!("{UPLOADS}/{id}.png")
}

/// The key of a job's uploaded last frame (the models that take one), kept as its first.
pub fn last_upload_key(id: &str) -> String {
    format!("{UPLOADS}/{id}-last.png")
}

/// Every upload key job `id` may have (what goes when the job is done with them).
pub fn upload_keys(id: &str) -> [String; 2] {
    [upload_key(id), last_upload_key(id)]
}

/// The job an upload's key belongs to.
pub fn upload_job(key: &str) -> Option<&str> {
    let name = key.strip_prefix(UPLOADS)?.strip_prefix('/')?.strip_suffix(".png")?;
    Some(name.strip_suffix("-last").unwrap_or(name))
}

/// Where each run of a job writes its result before the store decides which run's result is
/// the job's (`attempts/ID/ATTEMPT/NAME`; never served): a worker that lost its job writes and
/// removes only its own run's files, never the result of the worker that took the job over.
pub const ATTEMPTS: &str = "attempts";

/// The prefix of every run's files of job `id`.
pub fn attempts_prefix(id: &str) -> String {
    format!("{ATTEMPTS}/{id}/")
}

/// The prefix of one run's files of job `id`.
pub fn attempt_prefix(id: &str, attempt: &str) -> String {
    format!("{}{attempt}/", attempts_prefix(id))
}

/// Where sampled latents wait for their decode in the media store (never served).
pub const LATENTS: &str = "latents";

/// The key of a job's sampled latents, kept from just before its decode until the result is
/// stored, and after a decode that failed until it is decoded again.
pub fn latents_key(id: &str) -> String {
    format!("{LATENTS}/{id}.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for f in MediaFile::ALL.into_iter().chain([MediaFile::Frame(0), MediaFile::Frame(17)]) {
            assert_eq!(MediaFile::parse(&f.name()), Some(f));
        }
        for bad in ["", "video.mp4/..", "frames/../x.png", "frames/12.png", "other.txt", "uploads/a.png"] {
            assert_eq!(MediaFile::parse(bad), None, "{bad}");
        }
        assert_eq!(url("abc", MediaFile::Video), "/media/abc/video.mp4");
    }
}
