//! Headers on every response: no MIME sniffing, no framing (clickjacking), no referrer leaks,
//! and a Content-Security-Policy ([`app::csp`]; pages set their own, with their nonce).

use axum::http::{HeaderValue, header};
use axum::response::Response;

pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(value) = HeaderValue::from_str(&app::csp::content_security_policy(None))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    res
}
