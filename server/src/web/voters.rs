//! Who casts a vote: a named token's holder by its name; anyone else (the administrator, or
//! everyone on a server without named tokens) by a random id the server gives their browser in
//! a signed cookie, so one browser has one vote per comparison and axis.

use super::security::OverHttps;
use app::people::Viewer;
use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};

/// The cookie that carries a browser's voter id: `ID.MAC`.
pub const VOTER_COOKIE: &str = "vidplay_voter";

/// Signs and checks voter cookies with a key kept in the store (made on first start), so
/// cookies outlive restarts and every web node of a lab reads them alike.
pub struct Voters {
    key: Vec<u8>,
}

impl Voters {
    /// With the store's key, made when it has none.
    pub async fn open(store: &dyn crate::storage::Store) -> anyhow::Result<Voters> {
        let mut fresh = vec![0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no randomness for the voter key: {e}"))?;
        let key = store.voter_key(fresh).await?;
        Ok(Voters { key })
    }

    fn mac(&self, id: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"vidplay voter, version 1: ");
        mac.update(id.as_bytes());
        mac.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Who votes with the request `parts` (as the security guard marked it: its viewer, and
    /// whether it came over https); see [`Voters::voter`].
    pub fn voter_of(&self, parts: &axum::http::request::Parts) -> (String, Option<HeaderValue>) {
        let viewer = parts.extensions.get::<Viewer>().cloned().unwrap_or_default();
        let https = parts.extensions.get::<OverHttps>().copied().unwrap_or_default();
        self.voter(&viewer, &parts.headers, https)
    }

    /// Who votes with this request: `token NAME` for a named token, else `cookie ID` from the
    /// request's voter cookie, or from a new one to set (the second value; `Secure` when the
    /// browser came over https).
    pub fn voter(&self, viewer: &Viewer, headers: &HeaderMap, https: OverHttps) -> (String, Option<HeaderValue>) {
        if !viewer.name.is_empty() {
            return (format!("token {}", viewer.name), None);
        }
        let signed = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(VOTER_COOKIE)?.strip_prefix('='))
            .find_map(|value| {
                let (id, mac) = value.split_once('.')?;
                (app::types::is_valid_id(id) && mac == self.mac(id)).then(|| id.to_string())
            });
        if let Some(id) = signed {
            return (format!("cookie {id}"), None);
        }
        let id = crate::ids::new_id();
        let secure = if https.0 { "; Secure" } else { "" };
        let cookie = format!(
            "{VOTER_COOKIE}={id}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000{secure}",
            self.mac(&id)
        );
        (format!("cookie {id}"), HeaderValue::from_str(&cookie).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_browser_keeps_its_voter_id_and_cannot_forge_another() {
        let path = std::env::temp_dir().join(format!("vidplay-voters-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = crate::storage::sqlite::SqliteStore::open(&path).await.unwrap();
        let voters = Voters::open(&store).await.unwrap();
        let nobody = Viewer::everyone();
        let (first, cookie) = voters.voter(&nobody, &HeaderMap::new(), OverHttps(false));
        let cookie = cookie.expect("a new voter gets a cookie");
        assert!(!cookie.to_str().unwrap().contains("Secure"));
        let secure = voters.voter(&nobody, &HeaderMap::new(), OverHttps(true)).1.unwrap();
        assert!(secure.to_str().unwrap().ends_with("; Secure"), "over https: {secure:?}");
        let value = cookie.to_str().unwrap().split(';').next().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("a=b; {value}")).unwrap());
        assert_eq!(voters.voter(&nobody, &headers, OverHttps(false)), (first.clone(), None), "the same voter");
        // After a restart, with the key kept.
        assert_eq!(Voters::open(&store).await.unwrap().voter(&nobody, &headers, OverHttps(false)).0, first);
        let forged = format!("{}.{}", value.split_once('.').unwrap().0, "0".repeat(32));
        headers.insert(header::COOKIE, HeaderValue::from_str(&forged).unwrap());
        let (other, cookie) = voters.voter(&nobody, &headers, OverHttps(false));
        assert!(other != first && cookie.is_some(), "a forged cookie is a new voter");
        let ann = Viewer { name: "ann".into(), admin: false };
        assert_eq!(voters.voter(&ann, &HeaderMap::new(), OverHttps(false)), ("token ann".to_string(), None));
    }
}
