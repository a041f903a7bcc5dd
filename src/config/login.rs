//! `[login]`: browser sign-in with the pool's managed login (authorization code flow
//! with PKCE) and sealed session cookies. Typed settings, defaults and checks; the
//! secrets (session keys, client secret) come from files or environment variables,
//! never from the TOML, and are read and checked when the configuration is loaded.

use std::fmt;
use std::time::Duration;

use super::raw::RawLogin;
use super::validate::{Root, Validator};
use super::{PoolConfig, TokenUse};
use crate::seal::SealKeys;

/// Environment variable holding the session keys when `session_keys_file` is not set.
pub const SESSION_KEYS_ENV: &str = "COGNITO_SIDECAR_SESSION_KEYS";
/// Environment variable holding the client secret when `client_secret_file` is not set.
pub const CLIENT_SECRET_ENV: &str = "COGNITO_SIDECAR_CLIENT_SECRET";

/// A secret read from a file or the environment: compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Browser sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// Index of the pool in `pools` whose ID tokens make sessions.
    pub pool: usize,
    /// The app client browsers sign in with.
    pub client_id: String,
    /// Authorization endpoint (managed login).
    pub authorize_url: String,
    /// Token endpoint (code exchange and refresh).
    pub token_url: String,
    /// Logout endpoint (`client_id` + `logout_uri`); `None`: sign-out stays local.
    pub logout_url: Option<String>,
    /// `scheme://host[:port]` browsers reach the sidecar at (no trailing slash).
    pub external_url: String,
    /// Path of the OAuth callback.
    pub callback_path: String,
    /// Path that signs out.
    pub sign_out_path: String,
    /// Where the browser lands after signing out.
    pub after_sign_out_path: String,
    /// Scopes asked for (always includes `openid`).
    pub scopes: Vec<String>,
    /// Session keys, one per line: the first seals, all open.
    pub session_keys: Secret,
    /// Client secret of a confidential app client.
    pub client_secret: Option<Secret>,
    /// Session cookie name (pieces are `name.1`, `name.2`, ...).
    pub cookie_name: String,
    /// Cookies carry `Secure`.
    pub cookie_secure: bool,
    /// Longest a session lasts after sign-in, refreshes included.
    pub max_session_seconds: u64,
    /// Time allowed between the redirect to sign in and the callback.
    pub sign_in_timeout_seconds: u64,
    /// Timeout of one token endpoint call.
    pub token_timeout: Duration,
    /// Sign-in starts, callbacks and sign-outs allowed per client address per minute.
    pub rate_limit_per_minute: u32,
}

/// Defaults of the optional `[login]` keys.
impl LoginSettings {
    /// `callback_path`.
    pub const DEFAULT_CALLBACK_PATH: &'static str = "/_auth/callback";
    /// `sign_out_path`.
    pub const DEFAULT_SIGN_OUT_PATH: &'static str = "/_auth/sign-out";
    /// `after_sign_out_path`.
    pub const DEFAULT_AFTER_SIGN_OUT_PATH: &'static str = "/";
    /// `scopes`.
    pub const DEFAULT_SCOPES: &'static [&'static str] = &["openid", "email", "profile"];
    /// `cookie_name` when cookies are `Secure` (the `__Host-` prefix pins the cookie to
    /// this host, path `/`, HTTPS).
    pub const DEFAULT_COOKIE_NAME_SECURE: &'static str = "__Host-cognito-session";
    /// `cookie_name` for plain-HTTP development.
    pub const DEFAULT_COOKIE_NAME_PLAIN: &'static str = "cognito-session";
    /// `max_session_seconds` (one day).
    pub const DEFAULT_MAX_SESSION_SECONDS: u64 = 86_400;
    /// `sign_in_timeout_seconds`.
    pub const DEFAULT_SIGN_IN_TIMEOUT_SECONDS: u64 = 600;
    /// `token_timeout_ms`.
    pub const DEFAULT_TOKEN_TIMEOUT_MS: u64 = 5_000;
    /// `rate_limit_per_minute`.
    pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;

    /// Where the pool sends the browser back: `external_url` + `callback_path`.
    #[must_use]
    pub fn redirect_uri(&self) -> String {
        format!("{}{}", self.external_url, self.callback_path)
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL without path, query or fragment.
fn origin(url: &str) -> Result<String, &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        _ => return Err("must be an http:// or https:// URL"),
    };
    let authority = uri.authority().ok_or("must name a host")?;
    if authority.as_str().contains('@') {
        return Err("must not carry credentials");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || url.contains('#') {
        return Err("must be scheme://host[:port] only (no path, query or fragment)");
    }
    Ok(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

/// An absolute http(s) endpoint URL (a path is allowed, a fragment is not).
fn endpoint(url: &str) -> Result<String, &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err("must be an absolute http:// or https:// URL");
    }
    if url.contains('#') {
        return Err("must not have a fragment");
    }
    Ok(url.to_owned())
}

fn is_cookie_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Validator {
    /// `[login]` (absent: `Some(None)`); `pools` are the pools that validated.
    pub(super) fn login(
        &mut self,
        root: &Root,
        pools: Option<&[PoolConfig]>,
    ) -> Option<Option<LoginSettings>> {
        let Some(value) = root.get("login") else {
            return Some(None);
        };
        let raw = self.get::<RawLogin>("login", Some(value))?;
        let before = self.problems.len();
        let check = |v: &mut Self, key: &str, r: Result<String, &'static str>| match r {
            Ok(s) => Some(s),
            Err(msg) => {
                v.problem(key, msg);
                None
            }
        };
        let external_url = check(self, "login.external_url", origin(&raw.external_url));
        let domain = raw
            .domain
            .as_deref()
            .and_then(|d| check(self, "login.domain", origin(d)));
        let from_domain = |path: &str| domain.as_ref().map(|d| format!("{d}{path}"));
        let explicit = |v: &mut Self, key: &str, given: Option<&String>, path: &str| match given {
            Some(u) => check(v, key, endpoint(u)),
            None => from_domain(path),
        };
        let authorize_url = explicit(
            self,
            "login.authorize_url",
            raw.authorize_url.as_ref(),
            "/oauth2/authorize",
        );
        let token_url = explicit(
            self,
            "login.token_url",
            raw.token_url.as_ref(),
            "/oauth2/token",
        );
        let logout_url = explicit(self, "login.logout_url", raw.logout_url.as_ref(), "/logout");
        if raw.domain.is_none() && (raw.authorize_url.is_none() || raw.token_url.is_none()) {
            self.problem(
                "login.domain",
                "set the managed login domain, or both authorize_url and token_url",
            );
        }
        let path = |v: &mut Self, key: &str, given: Option<String>, default: &str| {
            let p = given.unwrap_or_else(|| default.to_owned());
            let canonical = p.starts_with('/')
                && crate::path::canonicalize(&p).is_ok_and(|c| c == p)
                && !p.contains('?');
            if !canonical {
                v.problem(
                    key,
                    "must be a canonical absolute path like /_auth/callback",
                );
            }
            p
        };
        let callback_path = path(
            self,
            "login.callback_path",
            raw.callback_path,
            LoginSettings::DEFAULT_CALLBACK_PATH,
        );
        let sign_out_path = path(
            self,
            "login.sign_out_path",
            raw.sign_out_path,
            LoginSettings::DEFAULT_SIGN_OUT_PATH,
        );
        let after_sign_out_path = path(
            self,
            "login.after_sign_out_path",
            raw.after_sign_out_path,
            LoginSettings::DEFAULT_AFTER_SIGN_OUT_PATH,
        );
        if callback_path == sign_out_path {
            self.problem("login.sign_out_path", "must differ from callback_path");
        }
        let scopes = raw.scopes.unwrap_or_else(|| {
            LoginSettings::DEFAULT_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        });
        if !scopes.iter().any(|s| s == "openid") {
            self.problem(
                "login.scopes",
                "must include \"openid\" (an ID token is needed)",
            );
        }
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\'))
        {
            self.problem("login.scopes", "scopes are non-empty tokens without spaces");
        }
        let cookie_secure = raw.cookie_secure.unwrap_or_else(|| {
            external_url
                .as_deref()
                .is_none_or(|u| u.starts_with("https:"))
        });
        let cookie_name = raw.cookie_name.unwrap_or_else(|| {
            if cookie_secure {
                LoginSettings::DEFAULT_COOKIE_NAME_SECURE
            } else {
                LoginSettings::DEFAULT_COOKIE_NAME_PLAIN
            }
            .to_owned()
        });
        if !is_cookie_name(&cookie_name) {
            self.problem(
                "login.cookie_name",
                "must be 1-64 letters, digits, '-', '_', '.'",
            );
        } else if !cookie_secure
            && (cookie_name.starts_with("__Host-") || cookie_name.starts_with("__Secure-"))
        {
            self.problem(
                "login.cookie_name",
                "the __Host- and __Secure- prefixes need cookie_secure = true",
            );
        }
        let positive = |v: &mut Self, key: &str, value: Option<u64>, default: u64| {
            let n = value.unwrap_or(default);
            if n == 0 {
                v.problem(key, "must be positive");
            }
            n
        };
        let max_session_seconds = positive(
            self,
            "login.max_session_seconds",
            raw.max_session_seconds,
            LoginSettings::DEFAULT_MAX_SESSION_SECONDS,
        );
        let sign_in_timeout_seconds = positive(
            self,
            "login.sign_in_timeout_seconds",
            raw.sign_in_timeout_seconds,
            LoginSettings::DEFAULT_SIGN_IN_TIMEOUT_SECONDS,
        );
        let token_timeout_ms = positive(
            self,
            "login.token_timeout_ms",
            raw.token_timeout_ms,
            LoginSettings::DEFAULT_TOKEN_TIMEOUT_MS,
        );
        let rate_limit_per_minute = raw
            .rate_limit_per_minute
            .unwrap_or(LoginSettings::DEFAULT_RATE_LIMIT_PER_MINUTE);
        if rate_limit_per_minute == 0 {
            self.problem("login.rate_limit_per_minute", "must be positive");
        }
        let session_keys = self.session_keys(raw.session_keys_file.as_deref());
        let client_secret = self.client_secret(raw.client_secret_file.as_deref());
        let pool = self.login_pool(raw.pool.as_deref(), &raw.client_id, pools);
        if raw.client_id.is_empty() {
            self.problem("login.client_id", "must not be empty");
        }
        if self.problems.len() != before {
            return None;
        }
        Some(Some(LoginSettings {
            pool: pool?,
            client_id: raw.client_id,
            authorize_url: authorize_url?,
            token_url: token_url?,
            logout_url,
            external_url: external_url?,
            callback_path,
            sign_out_path,
            after_sign_out_path,
            scopes,
            session_keys: session_keys?,
            client_secret: client_secret?,
            cookie_name,
            cookie_secure,
            max_session_seconds,
            sign_in_timeout_seconds,
            token_timeout: Duration::from_millis(token_timeout_ms),
            rate_limit_per_minute,
        }))
    }

    /// The text of a secret: the file's when `file` is set, else the variable `env`'s
    /// (`Ok(None)` when it is unset); a problem under `key` when the file cannot be read.
    fn secret_text(
        &mut self,
        key: &str,
        file: Option<&std::path::Path>,
        env: &str,
    ) -> Result<Option<String>, ()> {
        match file {
            Some(path) => std::fs::read_to_string(path).map(Some).map_err(|e| {
                self.problem(key, format!("{} cannot be read: {e}", path.display()));
            }),
            None => Ok(std::env::var(env).ok()),
        }
    }

    /// The session keys from `session_keys_file` or [`SESSION_KEYS_ENV`], checked.
    fn session_keys(&mut self, file: Option<&std::path::Path>) -> Option<Secret> {
        let key = "login.session_keys_file";
        let Some(text) = self.secret_text(key, file, SESSION_KEYS_ENV).ok()? else {
            self.problem(
                key,
                format!(
                    "required (or set {SESSION_KEYS_ENV}): sessions are sealed with these keys"
                ),
            );
            return None;
        };
        match SealKeys::from_text(&text) {
            Ok(_) => Some(Secret(text)),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    /// The client secret from `client_secret_file` or [`CLIENT_SECRET_ENV`]; `Some(None)`
    /// for a public client.
    fn client_secret(&mut self, file: Option<&std::path::Path>) -> Option<Option<Secret>> {
        let key = "login.client_secret_file";
        let Some(text) = self.secret_text(key, file, CLIENT_SECRET_ENV).ok()? else {
            return Some(None);
        };
        let secret = text.trim_end_matches(['\r', '\n']);
        if secret.is_empty() || secret.bytes().any(|b| b.is_ascii_control()) {
            self.problem(key, "the client secret must be one non-empty line");
            return None;
        }
        Some(Some(Secret(secret.to_owned())))
    }

    /// The pool sessions come from: named, or the first; it must accept ID tokens from
    /// `client_id`.
    fn login_pool(
        &mut self,
        name: Option<&str>,
        client_id: &str,
        pools: Option<&[PoolConfig]>,
    ) -> Option<usize> {
        let pools = pools?;
        let index = match name {
            Some(n) => match pools.iter().position(|p| p.name == n) {
                Some(i) => i,
                None => {
                    self.problem("login.pool", format!("no pool is named {n:?}"));
                    return None;
                }
            },
            None => 0,
        };
        let pool = &pools[index];
        if !pool.client_ids.iter().any(|c| c == client_id) {
            self.problem(
                "login.client_id",
                format!(
                    "{client_id:?} is not in the client_ids of pool {:?}",
                    pool.name
                ),
            );
        }
        if !pool.token_use.contains(&TokenUse::Id) {
            self.problem(
                "login.pool",
                format!("pool {:?} must accept ID tokens (token_use)", pool.name),
            );
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};

    fn with_login(extra: &str, keys: &std::path::Path) -> String {
        format!(
            "{MIN}\n[login]\nclient_id = \"abc123\"\ndomain = \"https://auth.example.com\"\nexternal_url = \"https://app.example.com\"\nsession_keys_file = \"{}\"\n{extra}",
            keys.display()
        )
    }

    fn keys_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn a_login_section_derives_cognito_endpoints_and_secure_defaults() {
        let keys = keys_file(&"ab".repeat(32));
        let cfg = Config::from_toml(&with_login("", keys.path())).expect("valid");
        let l = cfg.login.expect("login");
        assert_eq!(l.authorize_url, "https://auth.example.com/oauth2/authorize");
        assert_eq!(l.token_url, "https://auth.example.com/oauth2/token");
        assert_eq!(
            l.logout_url.as_deref(),
            Some("https://auth.example.com/logout")
        );
        assert_eq!(l.redirect_uri(), "https://app.example.com/_auth/callback");
        assert!(l.cookie_secure);
        assert_eq!(l.cookie_name, "__Host-cognito-session");
        assert!(format!("{:?}", l.session_keys).contains("redacted"));
        assert!(!format!("{l:?}").contains(&"ab".repeat(32)));
    }

    #[test]
    fn login_problems_are_reported_by_key() {
        let keys = keys_file("not a key");
        let p = problems(&with_login(
            "scopes = [\"email\"]\ncookie_secure = false\ncookie_name = \"__Host-x\"\ncallback_path = \"/a/../b\"\npool = \"nope\"",
            keys.path(),
        ));
        let joined = p.join("\n");
        for key in [
            "login.scopes:",
            "login.cookie_name:",
            "login.callback_path:",
            "login.pool:",
            "login.session_keys_file:",
        ] {
            assert!(joined.contains(key), "missing {key} in:\n{joined}");
        }
        let p =
            problems(&with_login("", keys.path()).replace("abc123\"\ndomain", "other\"\ndomain"));
        assert!(p.iter().any(|m| m.starts_with("login.client_id:")), "{p:?}");
    }

    #[test]
    fn login_routes_need_a_login_section() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/\"\nauth = \"login\""
        ));
        assert!(
            p.iter()
                .any(|m| m.starts_with("routes[0].auth:") && m.contains("[login]")),
            "{p:?}"
        );
    }
}
