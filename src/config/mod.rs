//! Configuration: the typed, validated [`Config`] and how it is loaded.
//!
//! Loading goes in three steps, one file each, read top to bottom:
//!
//! 1. here: [`figment()`] merges an optional TOML file and `COGNITO_SIDECAR_*`
//!    environment variables (`__` separates nested keys) into one tree of values;
//!    [`Config::from_figment`] takes that tree apart by top-level key.
//! 2. `raw.rs`: the serde structs each section is read into (unknown keys rejected).
//! 3. `validate.rs`: decodes each top-level key and each `[[pools]]` / `[[routes]]`
//!    entry on its own, then runs semantic checks over everything that parsed, so one
//!    attempt reports every problem at once, each naming its key ([`ConfigError`]).
//!
//! Each section's typed struct, its defaults (associated `DEFAULT_*` constants next to
//! the struct) and its checks live together: `pools.rs` (`[[pools]]`, `[jwks]`),
//! `routes.rs` (`[[routes]]`), `limits.rs` (`[limits]`, `[cache]`, `[shutdown]`),
//! `identity.rs` (`[identity]`), `login.rs` (`[login]`), `assertion.rs` (`[assertion]`), `revocation.rs` (`[revocation_check]`), `deny_list.rs` (`[deny_list]` and its file's format) and `tls.rs` (`[tls]`). Defaults of top-level keys are
//! constants on [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;
use ipnet::IpNet;
use serde::Deserialize;

mod alb;
mod assertion;
mod deny_list;
mod identity;
mod limits;
mod login;
mod pools;
mod raw;
mod revocation;
mod routes;
mod sources;
mod tls;
mod validate;

pub use self::alb::{AlbDataSettings, AlbSettings};
pub use self::assertion::{AssertionKey, AssertionSettings};
pub use self::deny_list::{DenyKind, DenyList, DenyListError, DenyListSettings};
pub use self::identity::IdentityConfig;
pub use self::limits::{CacheSettings, Limits, ShutdownSettings};
pub use self::login::{CLIENT_SECRET_ENV, LoginSettings, SESSION_KEYS_ENV, Secret};
pub use self::pools::{
    IssuerFormat, JwksSettings, MAX_LEEWAY_SECONDS, MAX_POOL_ID_LEN, PoolConfig,
};
pub use self::revocation::{FailureMode, RevocationSettings, default_idp_endpoint};
pub use self::routes::{AuthMode, DEFAULT_ROUTE_LABEL, PathMatch, RolloutMode, RouteConfig};
pub use self::sources::{TokenSource, default_sources};
pub use self::tls::TlsSettings;
pub use crate::header_names::normalize_header_name;
pub use crate::token::TokenUse;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "COGNITO_SIDECAR_";

/// All problems found in a configuration, each naming the key it concerns.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem: `key: what is wrong`.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// What to do with CORS preflights (`OPTIONS` + `Origin` + `Access-Control-Request-Method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PreflightMode {
    /// Forward to the backend without a token (identity headers stripped).
    #[default]
    Forward,
    /// Treat like any other request: the route's auth mode applies.
    Authenticate,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text when stderr is a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix domain socket path (`unix:/run/app/proxy.sock`).
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How the proxy reaches the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// Plain TCP (`http://host:port`).
    Http,
    /// TLS (`https://host:port`), verified against system roots or `upstream_ca_file`.
    Https,
    /// A unix domain socket (`unix:///run/app.sock`).
    Unix(PathBuf),
}

/// Protocol spoken to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (the default; WebSockets need it).
    #[default]
    Http1,
    /// HTTP/2: h2 over TLS for `https://`, h2c prior knowledge otherwise (gRPC backends).
    Http2,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Proxy listener.
    pub listen: ListenAddr,
    /// Admin listener (health, metrics); default [`Config::DEFAULT_ADMIN_LISTEN`].
    pub admin_listen: SocketAddr,
    /// Upstream base URI (`scheme://host:port`; `http://localhost` for unix sockets).
    pub upstream: http::Uri,
    /// How the upstream is reached.
    pub upstream_target: UpstreamTarget,
    /// Protocol spoken upstream.
    pub upstream_protocol: UpstreamProtocol,
    /// CA bundle for `https://` upstreams (default: system roots).
    pub upstream_ca_file: Option<PathBuf>,
    /// Downstream TLS; `None` = plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Deny-list for incident response; `None` unless `[deny_list]` is set.
    pub deny_list: Option<DenyListSettings>,
    /// Shutdown timings.
    pub shutdown: ShutdownSettings,
    /// Verified-token cache.
    pub cache: CacheSettings,
    /// `realm` in `WWW-Authenticate`; default [`Config::DEFAULT_REALM`].
    pub realm: String,
    /// Pseudonym in the `Via` header; default [`Config::DEFAULT_VIA`].
    pub via: String,
    /// Peers whose `X-Forwarded-For` is extended instead of replaced.
    pub trusted_proxies: Vec<IpNet>,
    /// If not empty, other `Host` values (and requests without one) get 421.
    pub allowed_hosts: Vec<String>,
    /// Extra request headers removed from every client (normalized names).
    pub strip_headers: Vec<String>,
    /// Refuse path encodings backends read differently (400); see [`crate::path::check_strict`].
    pub strict_path_encoding: bool,
    /// Honour a well-formed client `X-Request-Id` from any peer (else only from
    /// `trusted_proxies`).
    pub trust_client_request_id: bool,
    /// Send the client's `Host` upstream (else the upstream authority).
    pub preserve_host: bool,
    /// CORS preflight handling.
    pub cors_preflight: PreflightMode,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax); default [`Config::DEFAULT_LOG_LEVEL`].
    pub log_level: String,
    /// User pools.
    pub pools: Vec<PoolConfig>,
    /// Route rules, first match wins.
    pub routes: Vec<RouteConfig>,
    /// `mode`: of the implicit default rule, and of routes that do not set their own.
    pub mode: RolloutMode,
    /// Limits and timeouts.
    pub limits: Limits,
    /// JWKS settings.
    pub jwks: JwksSettings,
    /// Identity header settings.
    pub identity: IdentityConfig,
    /// Browser sign-in; `None` unless `[login]` is set.
    pub login: Option<LoginSettings>,
    /// Where credentials may come from on routes that do not say (`token_sources`).
    pub token_sources: std::sync::Arc<[TokenSource]>,
    /// Identity from an authenticating ALB; `None` unless `[alb]` is set.
    pub alb: Option<AlbSettings>,
    /// Signed identity for backends that verify; `None` unless `[assertion]` is set.
    pub assertion: Option<AssertionSettings>,
    /// How the online revocation check runs (`pools[].revocation_check` turns it on).
    pub revocation_check: RevocationSettings,
}

/// Defaults of the optional top-level keys whose type has no `#[default]` of its own
/// (`upstream_protocol`, `cors_preflight` and `log_format` default to their enum's
/// `#[default]` variant, `mode` to enforce; lists default to empty).
impl Config {
    /// `admin_listen`.
    pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9901));
    /// `realm`.
    pub const DEFAULT_REALM: &'static str = "api";
    /// `via`.
    pub const DEFAULT_VIA: &'static str = "cognito-sidecar";
    /// `strict_path_encoding`.
    pub const DEFAULT_STRICT_PATH_ENCODING: bool = true;
    /// `trust_client_request_id`.
    pub const DEFAULT_TRUST_CLIENT_REQUEST_ID: bool = false;
    /// `preserve_host`.
    pub const DEFAULT_PRESERVE_HOST: bool = true;
    /// `log_level`.
    pub const DEFAULT_LOG_LEVEL: &'static str = "info";
}

/// Every key accepted at the top level of the configuration.
///
/// The top level is not one serde struct (each key is decoded on its own so that every
/// problem is reported), so this list is kept by hand; a test in `validate.rs` checks
/// that the validator reads each key listed here.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "upstream",
    "upstream_protocol",
    "upstream_ca_file",
    "tls",
    "deny_list",
    "shutdown",
    "cache",
    "realm",
    "via",
    "trusted_proxies",
    "allowed_hosts",
    "strip_headers",
    "strict_path_encoding",
    "trust_client_request_id",
    "preserve_host",
    "cors_preflight",
    "log_format",
    "log_level",
    "pools",
    "routes",
    "mode",
    "limits",
    "jwks",
    "identity",
    "login",
    "token_sources",
    "alb",
    "assertion",
    "revocation_check",
];

/// The `COGNITO_SIDECAR_*` variables (except `COGNITO_SIDECAR_CONFIG`, the file path),
/// `__` separating nested keys.
fn env() -> Env {
    // The secrets have variables of their own, read by the `[login]` checks.
    Env::prefixed(ENV_PREFIX)
        .ignore(&["config", "session_keys", "client_secret"])
        .split("__")
}

/// Builds the figment: TOML file (if any), then `COGNITO_SIDECAR_*` variables on top.
#[must_use]
pub fn figment(file: Option<&Path>) -> Figment {
    let mut fig = Figment::new();
    if let Some(path) = file {
        fig = fig.merge(Toml::file_exact(path));
    }
    fig.merge(env())
}

impl Config {
    /// Loads and validates configuration from an optional TOML file plus the environment.
    ///
    /// # Errors
    /// Returns every problem found, each naming its key.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(&figment(file))
    }

    /// Loads and validates configuration from TOML text (the exact bytes of a file that
    /// was read once), with `COGNITO_SIDECAR_*` variables on top, as [`Config::load`]
    /// does for a path.
    ///
    /// # Errors
    /// Returns every problem found, each naming its key.
    pub fn load_text(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(&Figment::from(Toml::string(text)).merge(env()))
    }

    /// Loads and validates configuration from TOML text only (no environment).
    ///
    /// # Errors
    /// Returns every problem found, each naming its key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(&Figment::from(Toml::string(text)))
    }

    /// Validates whatever a figment holds.
    ///
    /// # Errors
    /// Returns every problem found, each naming its key.
    pub fn from_figment(fig: &Figment) -> Result<Self, ConfigError> {
        let root = match fig.extract::<BTreeMap<String, Value>>() {
            Ok(root) => root,
            Err(e) => {
                return Err(ConfigError {
                    problems: e.into_iter().map(|e| e.to_string()).collect(),
                });
            }
        };
        validate::validate(&root).map_err(|problems| ConfigError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with only the required keys.
    pub(super) const MIN: &str = r#"
        listen = "127.0.0.1:8080"
        upstream = "http://127.0.0.1:3000"
        [[pools]]
        id = "us-east-1_AbCdEf123"
        client_ids = ["abc123"]
        token_use = ["id", "access"]
    "#;

    /// The problems `text` is answered with (empty if it is valid).
    pub(super) fn problems(text: &str) -> Vec<String> {
        match Config::from_toml(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_key() {
        let p = problems(
            r#"
            listen = "nonsense"
            upstream = "ftp://x"
            colour = "blue"
            [[pools]]
            id = "bad"
            client_ids = []
            token_use = []
            leeway_seconds = 301
            [[routes]]
            path = "/x"
            auth = "sometimes"
        "#,
        );
        let joined = p.join("\n");
        for key in [
            "listen:",
            "upstream:",
            "colour: unknown key",
            "pools[0].id:",
            "pools[0].client_ids:",
            "pools[0].token_use:",
            "pools[0].leeway_seconds:",
            "routes[0]:",
        ] {
            assert!(joined.contains(key), "missing {key} in:\n{joined}");
        }
    }

    #[test]
    fn unknown_keys_inside_sections_are_errors() {
        let p = problems(&format!(
            "{MIN}\nclient_secret = \"x\"\n[limits]\nmax_tokens = 3"
        ));
        let joined = p.join("\n");
        assert!(
            joined.contains("pools[0]") && joined.contains("client_secret"),
            "{joined}"
        );
        assert!(
            joined.contains("limits") && joined.contains("max_tokens"),
            "{joined}"
        );
    }

    #[test]
    fn missing_pools_and_upstream_are_reported() {
        let p = problems("listen = \"127.0.0.1:1\"");
        assert!(p.iter().any(|m| m.starts_with("pools:")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("upstream:")), "{p:?}");
    }

    #[test]
    fn header_names_are_normalized_with_underscores_as_dashes() {
        assert_eq!(normalize_header_name("X_Auth_Sub"), "x-auth-sub");
    }

    #[test]
    fn top_level_defaults_apply_and_equal_configs_compare_equal() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:9901");
        assert_eq!(cfg.realm, "api");
        assert_eq!(cfg.via, "cognito-sidecar");
        assert_eq!(cfg.log_level, "info");
        assert!(cfg.strict_path_encoding && cfg.preserve_host && !cfg.trust_client_request_id);
        assert_eq!(cfg.upstream_protocol, UpstreamProtocol::Http1);
        assert_eq!(cfg.cors_preflight, PreflightMode::Forward);
        assert_eq!(cfg.log_format, LogFormat::Auto);
        assert_eq!(Config::from_toml(MIN).expect("valid"), cfg);
        let other = Config::from_toml(&MIN.replace("3000", "3001")).expect("valid");
        assert_ne!(other, cfg);
    }
}
