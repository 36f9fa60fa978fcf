//! The token: `Authorization: Bearer TOKEN` for scripts, and for people a sign-in page that
//! sets an HttpOnly, SameSite=Strict cookie (`Secure` when a trusted proxy says the browser
//! used https). The cookie holds a MAC of the token, never the token itself: a cookie a
//! browser keeps (or leaks) is a sign-in of its own, but it does not give away the token that
//! scripts use, and removing a token from the server signs out its cookies. Wrong tokens (at
//! sign-in, as bearer tokens or as cookies) are limited per client.

use super::{Access, Client, header_str, refuse};
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub const SESSION_COOKIE: &str = "vidplay_session";
/// The cookie of earlier versions, which held the token itself: removed wherever it is sent.
const LEGACY_COOKIE: &str = "vidplay_token";

/// Whether a request still carries the cookie of earlier versions.
pub(super) fn has_legacy_cookie(headers: &HeaderMap) -> bool {
    named_cookies(headers, LEGACY_COOKIE).next().is_some()
}

/// A `Set-Cookie` value that removes the cookie of earlier versions.
pub(super) fn legacy_cookie_removal() -> header::HeaderValue {
    header::HeaderValue::from_static("vidplay_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Failed sign-ins a client may make within [`SIGN_IN_WINDOW`].
pub const SIGN_IN_FAILURES: u32 = 10;
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(600);

/// The sign-in cookie's value for `secret`: HMAC-SHA256 keyed by the token, in hex.
pub(super) fn cookie_value(secret: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"vidplay sign-in cookie, version 1");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the first difference is.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token a request presents.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
}

/// The sign-in cookies a request presents.
pub(super) fn cookies(headers: &HeaderMap) -> Vec<&str> {
    named_cookies(headers, SESSION_COOKIE).collect()
}

fn named_cookies<'a>(headers: &'a HeaderMap, wanted: &'static str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(name, _)| *name == wanted)
        .map(|(_, value)| value)
}

#[cfg(test)]
fn authorized(token: &str, headers: &HeaderMap) -> bool {
    match bearer(headers) {
        Some(secret) => same_secret(secret, token),
        None => cookies(headers).iter().any(|v| same_secret(v, &cookie_value(token))),
    }
}

/// 401 with a JSON message for the API and media; the sign-in page for a person's browser.
pub(super) fn challenge(req: &Request) -> Response {
    let path = req.uri().path();
    let wants_page = header_str(req.headers(), header::ACCEPT).is_some_and(|a| a.contains("text/html"));
    if wants_page && req.method() == axum::http::Method::GET && !path.starts_with("/api/") {
        let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
        return Redirect::to(&format!("/signin?next={}", encode(next))).into_response();
    }
    let mut res = refuse(
        StatusCode::UNAUTHORIZED,
        "this server needs a token: send `Authorization: Bearer TOKEN`, or sign in at /signin",
    );
    res.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    res
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only paths on this server (never `//other.host`, `https://...`, or characters browsers drop
/// while parsing, such as `/<TAB>/other.host`).
fn local_path(next: &str) -> &str {
    let plain = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if plain && next.starts_with('/') && !next.starts_with("//") { next } else { "/" }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn page(stylesheet: &str, next: &str, message: Option<&str>) -> Html<String> {
    let message = message.map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in · vidplay</title><link rel=\"stylesheet\" href=\"{}\"></head><body><main id=\"main\">\
         <h1>Sign in</h1><p>This vidplay server needs its token (the one it was started with).</p>{message}\
         <form method=\"post\" action=\"/signin\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\">Sign in</button></form></main></body></html>",
        escape(stylesheet),
        escape(local_path(next))
    ))
}

#[derive(Deserialize)]
struct NextParam {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// 429 for a client that guessed too many wrong tokens, with when to come back.
pub(super) fn too_many_guesses(wait: Duration) -> Response {
    let mut res = refuse(StatusCode::TOO_MANY_REQUESTS, "too many wrong tokens from here; try again later");
    res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs().max(1)));
    res
}

/// What a sign-in is checked with: the server's tokens (and the wrong ones per client).
struct SignInCheck<'a> {
    access: &'a Access,
    client: &'a Client,
    headers: &'a HeaderMap,
}

/// Checks a sign-in form: the cookie and the way on, or the page again with a message.
fn sign_in(check: SignInCheck<'_>, stylesheet: &str, form: SignIn) -> Response {
    let SignInCheck { access, client, headers } = check;
    if !access.guarded() {
        return Redirect::to(local_path(&form.next)).into_response();
    }
    // Every try counts; one that succeeds forgets them.
    if let Err(wait) = access.guesses.try_spend(&client.0) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let message = format!("Too many wrong tokens from here; try again in {minutes} min.");
        let mut res = (StatusCode::TOO_MANY_REQUESTS, page(stylesheet, &form.next, Some(&message))).into_response();
        res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs().max(1)));
        return res;
    }
    let token = form.token.trim();
    if form.token.len() > 1024 || access.viewer_of(token).is_none() {
        let page = page(stylesheet, &form.next, Some("That is not one of this server's tokens."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    access.guesses.forget(&client.0);
    let secure = if access.over_https(headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000{secure}",
        cookie_value(token)
    );
    let mut res = Redirect::to(local_path(&form.next)).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, value);
    }
    res
}

/// `GET /signin`, `POST /signin` (sets the cookie) and `POST /signout`; `stylesheet` is the
/// bundle's stylesheet.
pub fn signin_routes(stylesheet: String) -> Router<Arc<Access>> {
    let css = stylesheet.clone();
    Router::new()
        .route(
            "/signin",
            get(move |Query(q): Query<NextParam>| std::future::ready(page(&css, &q.next, None))).post(
                move |State(access): State<Arc<Access>>,
                      Extension(client): Extension<Client>,
                      headers: HeaderMap,
                      Form(form): Form<SignIn>| {
                    let check = SignInCheck { access: &access, client: &client, headers: &headers };
                    std::future::ready(sign_in(check, &stylesheet, form))
                },
            ),
        )
        .route(
            "/signout",
            post(|| async {
                let mut res = Redirect::to("/signin").into_response();
                let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
                res.headers_mut().insert(header::SET_COOKIE, header::HeaderValue::from_str(&cookie).expect("ascii"));
                res
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_or_cookie() {
        let mut h = HeaderMap::new();
        assert!(!authorized("s3cret", &h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized("s3cret", &h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert!(!authorized("s3cret", &h));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; vidplay_session={}", cookie_value("s3cret"))).unwrap(),
        );
        assert!(authorized("s3cret", &h));
        // The token itself is not a sign-in cookie.
        h.insert(header::COOKIE, HeaderValue::from_static("vidplay_session=s3cret"));
        assert!(!authorized("s3cret", &h));
        assert_ne!(cookie_value("s3cret"), cookie_value("s3cret2"));
        assert_eq!(cookie_value("s3cret").len(), 64);
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path("/gallery?q=a"), "/gallery?q=a");
        assert_eq!(local_path("//evil.example/x"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil.example"), "/");
        assert_eq!(local_path("/\t/evil.example"), "/");
        assert_eq!(local_path("/\n/evil.example"), "/");
        assert_eq!(local_path("/ok path"), "/");
        assert_eq!(encode("/v/ab?x=1&y"), "/v/ab%3Fx%3D1%26y");
    }
}
