//! Cross-site request refusal: a state-changing request (anything but GET, HEAD and OPTIONS)
//! must come from this server's own pages, or from a client that sends no `Origin` at all
//! (curl, scripts). Browsers send `Origin` on every cross-site POST, including the "simple"
//! form posts that need no preflight.

use super::{Access, header_str};
use axum::http::{HeaderMap, Method, header};

pub(super) fn check(access: &Access, method: &Method, headers: &HeaderMap) -> Result<(), String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if header_str(headers, header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err("requests from other sites are refused".into());
    }
    let Some(origin) = header_str(headers, header::ORIGIN) else {
        return Ok(());
    };
    let refused = || Err(format!("requests from other sites are refused (origin {origin})"));
    // scheme://authority, nothing else; "null" (sandboxed frames, file: pages) is never ours.
    let Some((_, authority)) = origin.split_once("://") else {
        return refused();
    };
    if authority.is_empty() || authority.contains('/') {
        return refused();
    }
    let same = match header_str(headers, header::HOST) {
        Some(host) => authority.eq_ignore_ascii_case(host),
        // No Host (HTTP/1.0, in-process): the origin must still name this server.
        None => true,
    };
    if same && access.host_allowed(authority) { Ok(()) } else { refused() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_our_own_pages_and_originless_clients_may_change_things() {
        let a = Access::local();
        let post = Method::POST;
        assert!(check(&a, &post, &headers(&[])).is_ok(), "curl sends no Origin");
        assert!(check(&a, &post, &headers(&[("host", "localhost:3000"), ("origin", "http://localhost:3000")])).is_ok());
        assert!(check(&a, &post, &headers(&[("host", "localhost:3000"), ("origin", "http://evil.example")])).is_err());
        assert!(
            check(&a, &post, &headers(&[("host", "localhost:3000"), ("origin", "http://localhost:8080")])).is_err()
        );
        assert!(check(&a, &post, &headers(&[("host", "localhost:3000"), ("origin", "null")])).is_err());
        assert!(check(&a, &Method::DELETE, &headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(check(&a, &post, &headers(&[("origin", "http://evil.example")])).is_err());
        assert!(
            check(&a, &Method::GET, &headers(&[("origin", "http://evil.example")])).is_ok(),
            "reads are not refused here"
        );
    }
}
