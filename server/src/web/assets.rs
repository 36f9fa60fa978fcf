//! The browser bundle in the site directory (`cargo xtask site` writes it): which bundle to
//! load, and serving it compressed and cached. The bundle is a folder of files that load each
//! other by fixed names (the main module `vidplay.js` and `vidplay_bg.wasm`, a module per
//! page and shared chunks, their loader, `vidplay.css`). A release bundle's folder is named
//! after its content (`pkg/bundle.txt` says `vidplay.HASH`), so browsers keep its files for
//! good; a development bundle is `pkg/vidplay/` and is checked again on every load.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::path::Path;
use tower_http::services::ServeDir;

/// The base name of the bundle's own files inside its folder.
pub const BUNDLE_FILES: &str = "vidplay";

/// The bundle's folder under `pkg/`: `vidplay.HASH` for a release build, else `vidplay`.
pub fn bundle_name(site_root: &Path) -> String {
    std::fs::read_to_string(site_root.join("pkg").join("bundle.txt"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or_else(|| "vidplay".into())
}

/// Whether the browser bundle has been built into `site_root`.
pub fn site_is_built(site_root: &Path) -> bool {
    let bundle = site_root.join("pkg").join(bundle_name(site_root));
    bundle.join(format!("{BUNDLE_FILES}.js")).is_file() && bundle.join(format!("{BUNDLE_FILES}_bg.wasm")).is_file()
}

/// `/pkg/...`: the brotli or gzip copy when the browser takes it, cached for good when the
/// name carries the content hash.
pub fn routes(site_root: &Path) -> Router {
    let hashed = bundle_name(site_root);
    let serve = ServeDir::new(site_root.join("pkg")).precompressed_br().precompressed_gzip();
    Router::new().fallback_service(serve).layer(middleware::from_fn(move |req: Request, next: Next| {
        let file = req.uri().path().trim_start_matches('/');
        let immutable = hashed != BUNDLE_FILES && file.starts_with(&format!("{hashed}/"));
        async move { cache(next.run(req).await, immutable) }
    }))
}

fn cache(mut res: Response, immutable: bool) -> Response {
    if res.status().is_success() {
        let value = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    res
}
