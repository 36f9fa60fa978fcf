//! Who may call what: every route and server function of the web layer falls under one rule.
//! The guard lets [`Rule::Open`] paths through without a token ([`is_open`]); the queue refuses
//! a [`Rule::Owner`] change by someone else ([`app::people::Viewer::may_change`]). The tests
//! enumerate the routes and server functions registered and check each against its rule.

/// What a route or server function asks of whoever calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone who reaches the server: signing in and out, and the files the sign-in page needs.
    Open,
    /// Anyone signed in (everyone, on a server without tokens): the shared gallery, queue and
    /// leaderboard are everyone's to see; new work, votes and favourites are each person's own.
    SignedIn,
    /// Changes the job or video it names: only its owner or the administrator, else 403.
    Owner,
}

/// Every route (method and path as registered; `{id}` one segment, `{*rest}` the rest) and
/// its rule. Pages answer GET only.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/signin", Rule::Open),
    ("POST", "/signin", Rule::Open),
    ("POST", "/signout", Rule::Open),
    ("GET", "/favicon.svg", Rule::Open),
    ("GET", "/pkg/{*file}", Rule::Open),
    ("GET", "/", Rule::SignedIn),
    ("GET", "/gallery", Rule::SignedIn),
    ("GET", "/v/{id}", Rule::SignedIn),
    ("GET", "/queue", Rule::SignedIn),
    ("GET", "/compare", Rule::SignedIn),
    ("GET", "/leaderboard", Rule::SignedIn),
    ("GET", "/media/{id}/{*file}", Rule::SignedIn),
    ("GET", "/api/jobs", Rule::SignedIn),
    ("POST", "/api/jobs", Rule::SignedIn),
    ("GET", "/api/jobs/events", Rule::SignedIn),
    ("GET", "/api/jobs/{id}", Rule::SignedIn),
    ("DELETE", "/api/jobs/{id}", Rule::Owner),
    ("POST", "/api/jobs/{id}/retry-decode", Rule::Owner),
    ("GET", "/api/videos", Rule::SignedIn),
    ("GET", "/api/videos/{id}", Rule::SignedIn),
    ("DELETE", "/api/videos/{id}", Rule::Owner),
    ("GET", "/api/videos/{id}/chain", Rule::SignedIn),
    ("GET", "/api/health", Rule::SignedIn),
    ("GET", "/api/models", Rule::SignedIn),
    ("GET", "/api/loras", Rule::SignedIn),
    ("POST", "/api/settings", Rule::SignedIn),
    ("POST", "/api/comparisons", Rule::SignedIn),
    ("GET", "/api/votes", Rule::SignedIn),
    ("POST", "/api/votes", Rule::SignedIn),
    ("GET", "/api/leaderboard", Rule::SignedIn),
];

/// Every server function the pages call (by the name of its function in `app::calls`) and its
/// rule; those that change a job or video take its id as `id`.
pub const SERVER_FUNCTIONS: &[(&str, Rule)] = &[
    ("list_models", Rule::SignedIn),
    ("list_loras", Rule::SignedIn),
    ("read_prompt", Rule::SignedIn),
    ("surprise_prompt", Rule::SignedIn),
    ("example_images", Rule::SignedIn),
    ("find_videos", Rule::SignedIn),
    ("video_by_id", Rule::SignedIn),
    ("video_chain", Rule::SignedIn),
    ("set_favorite", Rule::SignedIn),
    ("delete_video", Rule::Owner),
    ("recent_jobs", Rule::SignedIn),
    ("recent_prompts", Rule::SignedIn),
    ("queue_health", Rule::SignedIn),
    ("job_by_id", Rule::SignedIn),
    ("cancel_job", Rule::Owner),
    ("retry_decode", Rule::Owner),
    ("compare_videos", Rule::SignedIn),
    ("cast_vote", Rule::SignedIn),
    ("leaderboard", Rule::SignedIn),
];

/// Whether `path` matches the route pattern `pattern`.
pub fn matches(pattern: &str, path: &str) -> bool {
    let mut path = path.split('/');
    for part in pattern.split('/') {
        if part.starts_with("{*") {
            return path.next().is_some_and(|p| !p.is_empty());
        }
        match path.next() {
            Some(p) if part.starts_with('{') => {
                if p.is_empty() {
                    return false;
                }
            }
            Some(p) if p == part => {}
            _ => return false,
        }
    }
    path.next().is_none()
}

/// Whether a request for `path` needs no token (a [`Rule::Open`] route).
pub fn is_open(path: &str) -> bool {
    ROUTES.iter().any(|(_, pattern, rule)| *rule == Rule::Open && matches(pattern, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("/api/jobs/{id}", "/api/jobs/0123"));
        assert!(!matches("/api/jobs/{id}", "/api/jobs/0123/x"));
        assert!(!matches("/api/jobs/{id}", "/api/jobs/"));
        assert!(matches("/pkg/{*file}", "/pkg/a/b.js"));
        assert!(!matches("/pkg/{*file}", "/pkg/"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "/gallery"));
        assert!(is_open("/signin") && is_open("/pkg/vidplay.css") && is_open("/favicon.svg"));
        assert!(!is_open("/api/jobs") && !is_open("/signin/x") && !is_open("/pkgx"));
    }
}
