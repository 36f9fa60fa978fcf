//! Who may act on this server, and what every response tells the browser: requests for
//! unknown host names are refused (DNS rebinding), state-changing requests from other sites are
//! refused (CSRF), a token guards everything when the server is reachable beyond loopback, and
//! every response carries the headers that keep pages from being sniffed, framed or leaked.

mod auth;
mod headers;
mod origin;

pub use auth::{SESSION_COOKIE, SIGN_IN_FAILURES, SIGN_IN_WINDOW, signin_routes};
pub use headers::security_headers;

use app::people::Viewer;
use app::types::ApiError;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Who may talk to this server.
#[derive(Debug, Clone)]
pub struct Access {
    /// Host names (no port, lowercase; IPv6 in brackets) requests may be addressed to.
    pub allowed_hosts: Vec<String>,
    /// When set, every request needs it (a bearer token, or the sign-in cookie).
    pub token: Option<String>,
    /// Named tokens (`--tokens-file`), each also accepted; jobs submitted with one belong to
    /// its name (fair sharing between them).
    pub named: Vec<NamedToken>,
    /// Requests come through a reverse proxy of one's own (`--trust-proxy`): its
    /// `X-Forwarded-For` says who the client is, and its `X-Forwarded-Proto` whether the
    /// browser used https (then the sign-in cookie is `Secure`).
    pub trust_proxy: bool,
    /// Wrong tokens per client (sign-ins, bearer tokens, cookies): [`SIGN_IN_FAILURES`] within
    /// [`SIGN_IN_WINDOW`], then the client waits out the window.
    pub guesses: Arc<crate::limits::Quota>,
    /// Something in front authenticates (`--no-auth`): what is served is as private as with a
    /// token of our own.
    pub guarded_in_front: bool,
}

/// The shortest secret a token may have (`--token`, and each of a tokens file).
pub const MIN_SECRET_CHARS: usize = 12;

/// Who a request comes from, for limits per client: `token NAME` for a named token, else
/// `address IP` (from the trusted proxy's `X-Forwarded-For` with `--trust-proxy`), else
/// `address unknown` (a request made in process, as the tests make them). The guard puts it in
/// every request's extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Client(pub String);

/// Whether the browser reached this server over https (through a trusted proxy, see
/// [`Access::over_https`]): cookies set for it are then `Secure`. The guard puts it in every
/// request's extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OverHttps(pub bool);

impl Default for Client {
    /// A request the guard has not seen.
    fn default() -> Self {
        Client("address unknown".into())
    }
}

/// A token of a shared instance: a person, a class, a script.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedToken {
    pub name: String,
    pub secret: String,
}

impl NamedToken {
    /// Its holder: owns what they make, and no more.
    fn viewer(&self) -> Viewer {
        Viewer { name: self.name.clone(), admin: false }
    }
}

/// Reads a tokens file: one `NAME SECRET` a line (blank lines and `#` comments skipped).
pub fn read_tokens(text: &str) -> Result<Vec<NamedToken>, String> {
    let mut tokens: Vec<NamedToken> = Vec::new();
    for (i, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {i}: expected `NAME SECRET`"));
        };
        if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(format!("line {i}: a name is letters, digits, '-', '_' or '.', at most 64"));
        }
        if secret.len() < MIN_SECRET_CHARS {
            return Err(format!("line {i}: the secret of {name} is shorter than {MIN_SECRET_CHARS} characters"));
        }
        if tokens.iter().any(|t| t.name == name || t.secret == secret) {
            return Err(format!("line {i}: {name} or its secret is given twice"));
        }
        tokens.push(NamedToken { name: name.into(), secret: secret.into() });
    }
    Ok(tokens)
}

impl Access {
    /// Loopback names, the bound address and the public names given with `--public-host`.
    pub fn new(bound: SocketAddr, public_hosts: &[String], token: Option<String>) -> Access {
        let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec();
        if !bound.ip().is_unspecified() {
            allowed_hosts.push(host_of_ip(bound.ip()));
        }
        for name in public_hosts {
            let name = host_part(name.trim()).to_ascii_lowercase();
            if !name.is_empty() && !allowed_hosts.contains(&name) {
                allowed_hosts.push(name);
            }
        }
        Access {
            allowed_hosts,
            token: token.filter(|t| !t.is_empty()),
            named: Vec::new(),
            trust_proxy: false,
            guesses: Arc::new(crate::limits::Quota::new(SIGN_IN_FAILURES, SIGN_IN_WINDOW)),
            guarded_in_front: false,
        }
    }

    /// Served behind something that authenticates (`--no-auth`), or not.
    pub fn with_guard_in_front(mut self, guarded: bool) -> Access {
        self.guarded_in_front = guarded;
        self
    }

    /// Whether what is served is for its viewers only (a token here, or a login in front):
    /// media are then never for shared caches.
    pub fn private(&self) -> bool {
        self.guarded() || self.guarded_in_front
    }

    /// Trusting a reverse proxy's forwarded headers, or not.
    pub fn with_trust_proxy(mut self, trust: bool) -> Access {
        self.trust_proxy = trust;
        self
    }

    /// With named tokens besides (or instead of) the main one.
    pub fn with_named(mut self, named: Vec<NamedToken>) -> Access {
        self.named = named;
        self
    }

    /// Whether requests need a token.
    pub fn guarded(&self) -> bool {
        self.token.is_some() || !self.named.is_empty()
    }

    /// Whose token `secret` is: the administrator's (`--token`) or a named one's holder.
    pub fn viewer_of(&self, secret: &str) -> Option<Viewer> {
        if self.token.as_deref().is_some_and(|t| auth::same_secret(secret, t)) {
            return Some(Viewer::everyone());
        }
        self.named.iter().find(|t| auth::same_secret(secret, &t.secret)).map(|t| t.viewer())
    }

    /// Whose sign-in cookie `value` is (see [`auth::cookie_value`]).
    pub fn viewer_of_cookie(&self, value: &str) -> Option<Viewer> {
        if self.token.as_deref().is_some_and(|t| auth::same_secret(value, &auth::cookie_value(t))) {
            return Some(Viewer::everyone());
        }
        self.named.iter().find(|t| auth::same_secret(value, &auth::cookie_value(&t.secret))).map(|t| t.viewer())
    }

    /// Where `req` comes from (see [`Client`]): its address, whoever it is.
    fn address_of(&self, req: &Request) -> Client {
        let forwarded = self
            .trust_proxy
            .then(|| last_header(req.headers(), "x-forwarded-for"))
            .flatten()
            // The proxy appends the address it saw last (in the last header line); anything
            // before it the client could have written itself.
            .and_then(|list| list.rsplit(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
        let peer = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        forwarded.or(peer).map_or_else(Client::default, |ip| match ip {
            // One machine on IPv6 commonly holds a whole /64: it counts as one client.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                Client(format!("address {:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
            ip => Client(format!("address {}", ip.to_canonical())),
        })
    }

    /// Whether the browser reached the proxy over https (only a trusted proxy is asked).
    pub fn over_https(&self, headers: &HeaderMap) -> bool {
        self.trust_proxy
            && last_header(headers, "x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// Open to this machine only: what the tests and `vidplay serve` on loopback use.
    pub fn local() -> Access {
        Access::new(SocketAddr::from(([127, 0, 0, 1], 0)), &[], None)
    }

    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_part(host).to_ascii_lowercase();
        self.allowed_hosts.contains(&name)
    }
}

/// Refuses to serve beyond loopback without a token, unless the user said so with `--no-auth`.
pub fn check_exposure(addr: SocketAddr, token: Option<&str>, no_auth: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) || no_auth {
        return Ok(());
    }
    Err(format!(
        "{addr} is reachable from other machines, and anyone who can reach it could use and delete \
         everything. Set a token (--token TOKEN or VIDPLAY_TOKEN=TOKEN; e.g. `openssl rand -hex 16`), \
         or pass --no-auth if another layer guards it."
    ))
}

fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_part(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

pub(crate) fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(ApiError { error: error.into() })).into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The last line of a header a proxy adds to (a client may have sent lines of its own before).
fn last_header<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers.get_all(name).iter().next_back().and_then(|v| v.to_str().ok())
}

/// The guard in front of everything: host, then origin, then the token.
pub async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if let Some(host) = header_str(req.headers(), header::HOST)
        && !access.host_allowed(host)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("this server does not answer to the name {host:?}; start it with --public-host NAME to allow it"),
        );
    }
    if let Err(why) = origin::check(&access, req.method(), req.headers()) {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let mut req = req;
    let address = access.address_of(&req);
    // Without a token, everyone acts as one person, who may change everything; with one, a
    // request is nobody's until its token says whose (the open paths stay nobody's).
    let mut viewer = if access.guarded() { Viewer::default() } else { Viewer::everyone() };
    if access.guarded() && !super::rules::is_open(req.uri().path()) {
        let bearer = auth::bearer(req.headers());
        let cookies = auth::cookies(req.headers());
        let presented = bearer.is_some() || !cookies.is_empty();
        // Tokens guessed here count with wrong sign-ins: a client over the limit is refused
        // whatever it presents, so a right guess tells it nothing either.
        if presented && let Some(wait) = access.guesses.wait(&address.0) {
            return auth::too_many_guesses(wait);
        }
        let found = match bearer {
            Some(secret) => access.viewer_of(secret),
            None => cookies.into_iter().find_map(|value| access.viewer_of_cookie(value)),
        };
        let Some(found) = found else {
            if presented {
                access.guesses.spend(&address.0);
            }
            return auth::challenge(&req);
        };
        viewer = found;
    }
    // A named token's holder is one client wherever it connects from.
    let client = if viewer.name.is_empty() { address } else { Client(format!("token {}", viewer.name)) };
    req.extensions_mut().insert(client);
    req.extensions_mut().insert(viewer);
    let https = OverHttps(access.over_https(req.headers()));
    req.extensions_mut().insert(https);
    let legacy = auth::has_legacy_cookie(req.headers());
    let mut res = next.run(req).await;
    if legacy {
        res.headers_mut().append(header::SET_COOKIE, auth::legacy_cookie_removal());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let a = Access::new("0.0.0.0:3000".parse().unwrap(), &["Studio.Lab:8080".into(), "box".into()], None);
        for ok in ["localhost:3000", "127.0.0.1", "[::1]:3000", "studio.lab", "BOX:3000"] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:3000", "0.0.0.0:3000", "192.168.1.5:3000", "localhost.evil.example"] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let bound = Access::new("192.168.1.5:3000".parse().unwrap(), &[], None);
        assert!(bound.host_allowed("192.168.1.5:3000"));
        let v6 = Access::new("[fd00::5]:3000".parse().unwrap(), &[], None);
        assert!(v6.host_allowed("[fd00::5]:3000"));
    }

    #[test]
    fn media_are_private_behind_any_login() {
        let open = Access::local();
        assert!(!open.private());
        assert!(open.clone().with_guard_in_front(true).private(), "--no-auth: a login in front");
        assert!(Access::new("127.0.0.1:0".parse().unwrap(), &[], Some("s3cret-token".into())).private());
    }

    #[test]
    fn exposure_needs_a_token() {
        assert!(check_exposure("127.0.0.1:3000".parse().unwrap(), None, false).is_ok());
        assert!(check_exposure("[::1]:3000".parse().unwrap(), None, false).is_ok());
        let err = check_exposure("0.0.0.0:3000".parse().unwrap(), None, false).unwrap_err();
        assert!(err.contains("--token") && err.contains("VIDPLAY_TOKEN"), "{err}");
        assert!(check_exposure("0.0.0.0:3000".parse().unwrap(), Some(""), false).is_err());
        assert!(check_exposure("0.0.0.0:3000".parse().unwrap(), Some("s3cret"), false).is_ok());
        assert!(check_exposure("0.0.0.0:3000".parse().unwrap(), None, true).is_ok());
    }
}
