//! The documentation keeps up with the server: every route of the JSON API and the media the
//! router serves is in the API page, and every page the README links to exists.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The (method, path) pairs of the routes registered with axum's `.route(PATH, METHODS)` in the
/// web layer. axum cannot list a router's routes, so this reads the calls from the source: each
/// `.route(` with its path and the method routers (`get(`, `post(`, ...) inside its parentheses.
pub(crate) fn routes() -> Vec<(String, String)> {
    let mut files = Vec::new();
    sources(&repo().join("server/src/web"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (start, _) in text.match_indices(".route(") {
            // The call's text, to its closing parenthesis.
            let rest = &text[start + ".route(".len()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else { continue };
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = |sep: &str| call.contains(&format!("{sep}{method}("));
                if called(" ") || called("(") || called(".") || called(":") {
                    found.push((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_api_route_is_in_the_api_page() {
    let page = std::fs::read_to_string(repo().join("docs/api.md")).unwrap();
    let routes = routes();
    let api: Vec<_> = routes.iter().filter(|(_, p)| p.starts_with("/api/") || p.starts_with("/media/")).collect();
    // The reader must find the routes it knows are there (a check that can fail).
    assert!(api.iter().any(|(m, p)| m == "POST" && p == "/api/jobs"), "{routes:?}");
    assert!(api.iter().any(|(m, p)| m == "DELETE" && p == "/api/videos/{id}"), "{routes:?}");
    assert!(api.len() >= 15, "{api:?}");
    for (method, path) in api {
        // A catch-all (`{*file}`) is documented by the files it serves: its prefix is enough.
        let documented = path.split("{*").next().unwrap();
        assert!(page.contains(&format!("`{method} {documented}")), "docs/api.md lacks `{method} {path}`");
    }
}

#[test]
fn the_readmes_links_lead_to_pages_that_exist() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut checked = 0;
    for link in readme.split("](").skip(1) {
        let target = link.split(')').next().unwrap().split('#').next().unwrap();
        if target.starts_with("http") || target.is_empty() {
            continue;
        }
        assert!(repo().join(target).exists(), "README.md links to {target}, which does not exist");
        checked += 1;
    }
    assert!(checked >= 9, "the README links its docs pages ({checked} links)");
}
