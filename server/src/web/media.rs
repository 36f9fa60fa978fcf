//! Serving result files from the media store: only plain `ID/FILE` names of videos in the
//! gallery (nothing being written, nothing of a deleted video even while its files are being
//! removed), with byte ranges (video seeking), as downloads when asked with `?download`.

use super::state::WebState;
use crate::web::security;
use app::media_files::{self, MediaFile};
use app::types::is_valid_id;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub fn routes() -> axum::Router<WebState> {
    axum::Router::new().route("/media/{id}/{*file}", axum::routing::get(serve))
}

async fn serve(State(web): State<WebState>, Path((id, file)): Path<(String, String)>, req: Request) -> Response {
    let Some(which) = MediaFile::parse(&file).filter(|_| is_valid_id(&id)) else {
        return security::refuse(StatusCode::NOT_FOUND, "no such file");
    };
    match web.store.video_exists(id.clone()).await {
        Ok(true) => {}
        Ok(false) => return security::refuse(StatusCode::NOT_FOUND, "no such file"),
        Err(e) => return crate::web::api::Failure::from(e).into_response(),
    }
    // A header that is not one plain range is ignored (the whole file), as HTTP allows.
    let range = req.headers().get(header::RANGE).and_then(|v| parse_range(v.to_str().unwrap_or("")));
    let key = media_files::key(&id, which);
    let wanted = match range {
        Some(ByteRange::From(start, end)) => Some(start..end.map_or(u64::MAX, |e| e.saturating_add(1))),
        // The last N bytes: read the whole (small) file and keep its end.
        Some(ByteRange::Last(_)) | None => None,
    };
    let fetched = match web.media.get(&key, wanted).await {
        Ok(Some(mut f)) => {
            if let Some(ByteRange::Last(n)) = range {
                if n == 0 || f.size == 0 {
                    return unsatisfiable(f.size);
                }
                let start = f.size.saturating_sub(n);
                f.bytes = f.bytes.slice(start as usize..);
                f.range = start..f.size;
            }
            f
        }
        Ok(None) => return security::refuse(StatusCode::NOT_FOUND, "no such file"),
        Err(crate::media::MediaError::Range { size, .. }) => return unsatisfiable(size),
        Err(e) => {
            tracing::error!(key, "reading media: {e}");
            return security::refuse(StatusCode::INTERNAL_SERVER_ERROR, "the file cannot be read");
        }
    };
    let download =
        req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "download" || p.starts_with("download=")));
    let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut res = (status, Body::from(fetched.bytes.clone())).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(which.content_type()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Results never change once written.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    if range.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            fetched.range.start,
            fetched.range.end.saturating_sub(1),
            fetched.size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    let name = file.replace('/', "-");
    let disposition = format!("{}; filename=\"vidplay-{id}-{name}\"", if download { "attachment" } else { "inline" });
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    res
}

/// 416 with the file's size, as HTTP asks.
fn unsatisfiable(size: u64) -> Response {
    let mut res = security::refuse(StatusCode::RANGE_NOT_SATISFIABLE, "the range is outside the file");
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        res.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    res
}

/// One byte range of a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ByteRange {
    /// `bytes=START-` or `bytes=START-END` (inclusive end).
    From(u64, Option<u64>),
    /// `bytes=-N`: the last N bytes.
    Last(u64),
}

/// One plain range; `None` for anything else (several ranges, other units, nonsense).
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    if start.trim().is_empty() {
        return end.trim().parse().ok().map(ByteRange::Last);
    }
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().ok().filter(|e| *e >= start)?),
    };
    Some(ByteRange::From(start, end))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_parse() {
        use super::{ByteRange, parse_range};
        assert_eq!(parse_range("bytes=0-99"), Some(ByteRange::From(0, Some(99))));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100, None)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Last(5)));
        for bad in ["bytes=9-3", "items=0-1", "bytes=0-1,5-6", "bytes=x-1", "bytes=-"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
