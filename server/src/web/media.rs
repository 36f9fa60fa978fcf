//! Serving result files from the media store: only plain `ID/FILE` names of videos in the
//! gallery (nothing being written, nothing of a deleted video even while its files are being
//! removed), with byte ranges (video seeking), as downloads when asked with `?download`.
//! Files are streamed a chunk at a time (as the client takes them) and ranges read only their
//! own bytes, so a response holds one chunk however large the file; at most [`MAX_READS`] files
//! are opened at once (more wait for their turn). The turn is held while the store opens the
//! file, not while a client reads it: a paused video (browsers stop reading after its
//! metadata) must not keep others waiting.

use super::state::WebState;
use crate::media::store::Span;
use crate::web::security;
use app::media_files::{self, MediaFile};
use app::types::is_valid_id;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many media files are opened at once.
pub const MAX_READS: usize = 32;
/// How long a request waits for its turn before it is told to come back.
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `private`: requests need a token, so no shared cache may keep what they get.
pub fn routes(private: bool) -> axum::Router<WebState> {
    let reads = Arc::new(Semaphore::new(MAX_READS));
    let serve = move |state: State<WebState>, path: Path<(String, String)>, req: Request| {
        serve(state, path, req, reads.clone(), private)
    };
    axum::Router::new().route("/media/{id}/{*file}", axum::routing::get(serve))
}

async fn serve(
    State(web): State<WebState>,
    Path((id, file)): Path<(String, String)>,
    req: Request,
    reads: Arc<Semaphore>,
    private: bool,
) -> Response {
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
    let span = match range {
        Some(ByteRange::From(start, end)) => Span::Between(start..end.map_or(u64::MAX, |e| e.saturating_add(1))),
        Some(ByteRange::Last(n)) => Span::Last(n),
        None => Span::All,
    };
    let Ok(Ok(permit)) = tokio::time::timeout(READ_WAIT, reads.acquire_owned()).await else {
        let mut res =
            security::refuse(StatusCode::SERVICE_UNAVAILABLE, "too many files are being opened at once; try again");
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    };
    let opened = web.media.stream(&key, span).await;
    drop(permit);
    let streamed = match opened {
        Ok(Some(s)) => s,
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
    let (sent, size) = (streamed.range.clone(), streamed.size);
    let mut res = (status, Body::from_stream(streamed.chunks)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(which.content_type()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(sent.end - sent.start));
    // Results never change once written; behind a token only the browser may keep them.
    let cache = if private { "private, max-age=31536000, immutable" } else { "public, max-age=31536000, immutable" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if range.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", sent.start, sent.end.saturating_sub(1)))
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
