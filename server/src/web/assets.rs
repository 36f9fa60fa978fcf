//! The browser bundle in the site directory (`cargo xtask site` writes it): which bundle to
//! load, and serving it compressed and cached. A release bundle is named after its content
//! (`pkg/bundle.txt` says `vidplay.HASH`), so browsers keep it for good; a development bundle
//! is plain `vidplay` and is checked again on every load.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::path::Path;
use tower_http::services::ServeDir;

/// The bundle's base name: `vidplay.HASH` for a release build, else `vidplay`.
pub fn bundle_name(site_root: &Path) -> String {
    std::fs::read_to_string(site_root.join("pkg").join("bundle.txt"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or_else(|| "vidplay".into())
}

/// Whether the browser bundle has been built into `site_root`.
pub fn site_is_built(site_root: &Path) -> bool {
    let name = bundle_name(site_root);
    let pkg = site_root.join("pkg");
    pkg.join(format!("{name}.js")).is_file() && pkg.join(format!("{name}_bg.wasm")).is_file()
}

/// `/pkg/...`: the brotli or gzip copy when the browser takes it, cached for good when the
/// name carries the content hash.
pub fn routes(site_root: &Path) -> Router {
    let hashed = bundle_name(site_root);
    let serve = ServeDir::new(site_root.join("pkg")).precompressed_br().precompressed_gzip();
    Router::new().fallback_service(serve).layer(middleware::from_fn(move |req: Request, next: Next| {
        let file = req.uri().path().trim_start_matches('/');
        let immutable = hashed != "vidplay"
            && (file.starts_with(&format!("{hashed}.")) || file.starts_with(&format!("{hashed}_bg.")));
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
