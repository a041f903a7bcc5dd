//! One configuration's sign-in machinery ([`Login`]): the session keys, the token
//! endpoint client, the cookie rules and the rate limiter, plus what the proxy asks of
//! them per request (open the session, start a sign-in, take the sign-in state back on
//! the callback, accept an ID token, strip the sidecar's cookies before forwarding).
//! Built once per configuration; the proxy's `login` phase does the HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::browser::{logout_url, nonce_matches, open_sign_in, seal_sign_in};
use super::flow::{SignIn, authorize_url, same_secret};
use super::limit::RateLimiter;
use super::session::{CookieRules, Session, clear_cookies, cookie};
use super::token_endpoint::{TokenEndpoint, TokenEndpointError, Tokens};
use crate::auth::Identity;
use crate::clock::Instant;
use crate::config::{Config, LoginSettings};
use crate::credential::cookie_pairs;
use crate::seal::{SealKeyError, SealKeys};
use crate::token::TokenUse;

/// How long one refresh's answer is shared by the requests of its session.
pub const REFRESH_SHARED_FOR: std::time::Duration = std::time::Duration::from_secs(30);
/// Most refreshes remembered at once.
const MAX_REFRESHING: usize = 4096;

/// One refresh's answer, shared.
type SharedRefresh = Arc<tokio::sync::OnceCell<Result<Tokens, &'static str>>>;

/// Characters of the state that name its sign-in cookie (several tabs may sign in at
/// once; each has its own cookie).
const STATE_NAME_CHARS: usize = 12;

/// Why the sign-in machinery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The session keys do not parse.
    #[error("login.session_keys: {0}")]
    Keys(#[from] SealKeyError),
    /// The token endpoint client could not be built.
    #[error("login.token_url: {0}")]
    Endpoint(#[from] TokenEndpointError),
}

/// One configuration's sign-in machinery.
#[derive(Debug)]
pub struct Login {
    settings: LoginSettings,
    pool_name: String,
    keys: SealKeys,
    endpoint: TokenEndpoint,
    rules: CookieRules,
    /// Sign-in starts, callbacks and sign-outs per client address.
    pub limiter: RateLimiter,
    /// Refreshes in progress or just made, by SHA-256 of the refresh token.
    refreshing: Mutex<HashMap<[u8; 32], (Instant, SharedRefresh)>>,
}

impl Login {
    /// The machinery for `cfg`'s `[login]`, if it has one.
    ///
    /// # Errors
    /// [`LoginError`] if the keys or the HTTP client cannot be set up.
    pub fn from_config(cfg: &Config) -> Result<Option<Self>, LoginError> {
        let Some(settings) = cfg.login.clone() else {
            return Ok(None);
        };
        let keys = SealKeys::from_text(settings.session_keys.expose())?;
        let endpoint = TokenEndpoint::new(
            &settings.token_url,
            &settings.client_id,
            settings
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            settings.token_timeout,
        )?;
        let rules = CookieRules {
            name: settings.cookie_name.clone(),
            secure: settings.cookie_secure,
            max_age: i64::try_from(settings.max_session_seconds).unwrap_or(i64::MAX),
        };
        let pool_name = cfg
            .pools
            .get(settings.pool)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        Ok(Some(Self {
            limiter: RateLimiter::new(settings.rate_limit_per_minute),
            settings,
            pool_name,
            keys,
            endpoint,
            rules,
            refreshing: Mutex::default(),
        }))
    }

    /// The settings this was built from.
    #[must_use]
    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    /// The session the request's cookies carry, if they open and it has not outlived
    /// `max_session_seconds`. A tampered, foreign or old cookie is no session.
    #[must_use]
    pub fn open_session(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        Session::from_cookies(cookie_pairs(headers), &self.keys, &self.rules, now)
    }

    /// How many session cookie pieces the request carries (to expire the extra ones).
    #[must_use]
    pub fn pieces_present(&self, headers: &HeaderMap) -> usize {
        let name = &self.rules.name;
        cookie_pairs(headers)
            .filter(|(n, _)| {
                n == name
                    || n.strip_prefix(name.as_str())
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|i| i.parse::<usize>().is_ok())
            })
            .count()
    }

    /// `Set-Cookie` values carrying `session`, expiring pieces a bigger session needed.
    #[must_use]
    pub fn session_cookies(&self, session: &Session, now: i64, previous: usize) -> Vec<String> {
        session
            .set_cookies(&self.keys, &self.rules, now, previous)
            .unwrap_or_default()
    }

    /// `Set-Cookie` values that end the session.
    #[must_use]
    pub fn clear_session(&self, pieces: usize) -> Vec<String> {
        clear_cookies(&self.rules, pieces)
    }

    /// Starts a sign-in returning to `return_to`: the authorize URL to redirect to and
    /// the sealed state cookie. `None` only if randomness or sealing fails.
    #[must_use]
    pub fn start_sign_in(&self, return_to: &str, now: i64) -> Option<(String, String)> {
        let timeout = i64::try_from(self.settings.sign_in_timeout_seconds).unwrap_or(600);
        let sign_in = SignIn::start(return_to, now.saturating_add(timeout))?;
        let sealed = seal_sign_in(&self.keys, &sign_in)?;
        let url = authorize_url(
            &self.settings.authorize_url,
            &self.settings.client_id,
            &self.settings.redirect_uri(),
            &self.settings.scopes,
            &sign_in,
        );
        let name = self.state_cookie_name(&sign_in.state);
        Some((url, cookie(&name, &sealed, timeout, self.rules.secure)))
    }

    /// The sign-in `state` names, if this browser started it, has not let it expire,
    /// and the cookie really carries this state; plus the `Set-Cookie` that uses it up.
    #[must_use]
    pub fn take_sign_in(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: i64,
    ) -> (Option<SignIn>, Option<String>) {
        let Some(prefix) = state.get(..STATE_NAME_CHARS) else {
            return (None, None);
        };
        let name = self.state_cookie_name(prefix);
        let found = cookie_pairs(headers)
            .filter(|(n, _)| *n == name)
            .find_map(|(_, v)| open_sign_in(&self.keys, v, now))
            .filter(|s| same_secret(&s.state, state));
        let used = cookie_pairs(headers)
            .any(|(n, _)| n == name)
            .then(|| cookie(&name, "", 0, self.rules.secure));
        (found, used)
    }

    fn state_cookie_name(&self, state: &str) -> String {
        let short: String = state.chars().take(STATE_NAME_CHARS).collect();
        format!("{}-signin.{short}", self.rules.name)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    ///
    /// # Errors
    /// [`TokenEndpointError`] when the endpoint fails or refuses.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, TokenEndpointError> {
        self.endpoint
            .exchange(code, &self.settings.redirect_uri(), verifier)
            .await
    }

    /// Refreshes a session's tokens, once for all the requests of one session that find
    /// its ID token expired at the same time (a page loading its assets): they share one
    /// token endpoint call and its answer for [`REFRESH_SHARED_FOR`].
    ///
    /// The tokens, and whether this call was the one that asked the token endpoint.
    ///
    /// # Errors
    /// The failure's label (`refused`, `unreachable`, `malformed`).
    pub async fn refresh(&self, refresh_token: &str) -> Result<(Tokens, bool), &'static str> {
        let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, refresh_token.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(key.as_ref());
        let now = crate::clock::now();
        let cell = {
            let Ok(mut map) = self.refreshing.lock() else {
                return Err("unreachable");
            };
            map.retain(|_, (at, _)| now.saturating_duration_since(*at) < REFRESH_SHARED_FOR);
            if map.len() >= MAX_REFRESHING && !map.contains_key(&id) {
                map.clear();
            }
            Arc::clone(&map.entry(id).or_insert_with(|| (now, Arc::default())).1)
        };
        let mut called = false;
        let answer = cell
            .get_or_init(|| async {
                called = true;
                self.endpoint
                    .refresh(refresh_token)
                    .await
                    .map_err(|e| e.label())
            })
            .await
            .clone();
        answer.map(|t| (t, called))
    }

    /// Whether a verified token may make (or keep) a session: an ID token of the login
    /// pool and app client, carrying the sign-in's `nonce` when there is one.
    #[must_use]
    pub fn accepts(&self, identity: &Identity, nonce: Option<&str>) -> bool {
        let c = &identity.claims;
        identity.pool == self.pool_name
            && c.token_use == TokenUse::Id
            && c.client_id == self.settings.client_id
            && nonce.is_none_or(|n| nonce_matches(c, n))
    }

    /// Where sign-out sends the browser: the pool's logout endpoint (which returns to
    /// `after_sign_out_path`), or that path directly.
    #[must_use]
    pub fn sign_out_location(&self) -> String {
        let s = &self.settings;
        let back = format!("{}{}", s.external_url, s.after_sign_out_path);
        match &s.logout_url {
            Some(endpoint) => logout_url(endpoint, &s.client_id, &back),
            None => back,
        }
    }

    /// Removes the sidecar's own cookies (session pieces, sign-in state) from a request
    /// before it is forwarded: the backend never sees them.
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        let name = self.rules.name.as_str();
        let ours = |n: &str| {
            n.strip_prefix(name)
                .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with("-signin."))
        };
        if !cookie_pairs(headers).any(|(n, _)| ours(n)) {
            return;
        }
        let kept: Vec<String> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| crate::credential::cookie_header_retain(v, |n| !ours(n)))
            .collect();
        headers.remove(header::COOKIE);
        for v in kept {
            if let Ok(v) = HeaderValue::try_from(v) {
                headers.append(header::COOKIE, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        let dir = tempfile::tempdir().expect("dir");
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "cd".repeat(32)).expect("write");
        let cfg = Config::from_toml(&format!(
            r#"
            listen = "127.0.0.1:0"
            upstream = "http://127.0.0.1:1"
            [[pools]]
            id = "us-east-1_AbCdEf123"
            client_ids = ["web"]
            token_use = ["id"]
            [login]
            client_id = "web"
            domain = "https://auth.example.com"
            external_url = "https://app.example.com"
            session_keys_file = "{}"
            "#,
            keys.display()
        ))
        .expect("valid");
        Login::from_config(&cfg).expect("built").expect("login")
    }

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn a_sign_in_state_is_found_by_its_state_and_used_up() {
        let l = login();
        let (url, set) = l.start_sign_in("/app?x=1", 1000).expect("start");
        assert!(url.starts_with("https://auth.example.com/oauth2/authorize?"));
        assert!(
            set.contains("Max-Age=600; HttpOnly; SameSite=Lax; Secure"),
            "{set}"
        );
        let state = form_urlencoded::parse(url.split_once('?').expect("query").1.as_bytes())
            .find(|(k, _)| k == "state")
            .expect("state")
            .1
            .into_owned();
        let pair = set.split(';').next().expect("pair");
        let headers = cookies(&["other=1", pair]);
        let (found, used) = l.take_sign_in(&headers, &state, 1001);
        assert_eq!(found.expect("found").return_to, "/app?x=1");
        assert!(used.expect("cleared").contains("Max-Age=0"));
        assert!(
            l.take_sign_in(&headers, &state, 1000 + 600).0.is_none(),
            "expired"
        );
        let mut wrong = state.clone();
        wrong.push('x');
        assert!(
            l.take_sign_in(&headers, &wrong, 1001).0.is_none(),
            "other state"
        );
    }

    #[test]
    fn the_sidecars_cookies_never_reach_the_backend() {
        let l = login();
        let mut h = cookies(&[
            "a=1; __Host-cognito-session=x; __Host-cognito-session.1=y",
            "__Host-cognito-session-signin.abc=z; b=2; __Host-cognito-sessionx=keep",
            "__Host-cognito-session=only",
        ]);
        l.strip_cookies(&mut h);
        let left: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert_eq!(left, ["a=1", "b=2; __Host-cognito-sessionx=keep"]);
    }

    #[test]
    fn sign_out_goes_through_the_pools_logout_endpoint() {
        assert_eq!(
            login().sign_out_location(),
            "https://auth.example.com/logout?client_id=web&logout_uri=https%3A%2F%2Fapp.example.com%2F"
        );
    }
}
