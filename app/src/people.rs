//! Who uses the playground, and the one rule of what each may change: the pages hide what a
//! person may not do by it, and the server refuses it by it.

use serde::{Deserialize, Serialize};

/// The name of the page's meta tag that says who is using it (a [`Viewer`] as JSON), so the
/// browser hides what the server's HTML hid.
pub const VIEWER_META: &str = "vidplay-viewer";

/// Who is using the page: on the server, from the request (the security guard put them in its
/// extensions); in the browser, from the page's [`VIEWER_META`] tag. Nobody when neither says.
#[cfg(feature = "ssr")]
pub fn current() -> Viewer {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Viewer>().cloned())
        .unwrap_or_default()
}

/// Who is using the page (see the server's side).
#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
pub fn current() -> Viewer {
    crate::browser::meta_content(VIEWER_META).and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default()
}

/// Who is using the page: nobody, without a server or a browser.
#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
pub fn current() -> Viewer {
    Viewer::default()
}

/// The person behind a request, as the server knows them from their token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// A named token's name (`--tokens-file`); empty for the administrator's `--token`, and on a
    /// server without named tokens, where everyone acts as one.
    pub name: String,
    /// The administrator's `--token`, or anyone on a server without named tokens: may change
    /// everything. The default (a request nobody vouched for) may change nothing.
    pub admin: bool,
}

impl Viewer {
    /// Everyone on a server without named tokens: each may change everything, as one person.
    pub fn everyone() -> Viewer {
        Viewer { name: String::new(), admin: true }
    }

    /// Whether this person may cancel, delete or otherwise change what `owner` made (a job's or
    /// video's owner: the named token it was made with, empty when made without one).
    pub fn may_change(&self, owner: &str) -> bool {
        self.admin || (!self.name.is_empty() && self.name == owner)
    }

    /// Why not, when [`Viewer::may_change`] says no: `what` is "this job" or "this video".
    pub fn refusal(&self, what: &str, owner: &str) -> String {
        if owner.is_empty() {
            format!("{what} was made without a named token; only the administrator (--token) may change it")
        } else {
            format!("{what} is {owner}'s; only {owner} or the administrator may change it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_the_administrator_may_change_what_others_may_not() {
        let ann = Viewer { name: "ann".into(), admin: false };
        assert!(ann.may_change("ann"));
        assert!(!ann.may_change("bob"));
        assert!(!ann.may_change(""), "what the administrator made is not everyone's");
        assert!(Viewer::everyone().may_change("bob") && Viewer::everyone().may_change(""));
        assert!(!Viewer::default().may_change(""), "nobody vouched for may change nothing");
        assert!(ann.refusal("this job", "bob").contains("bob's"));
    }
}
