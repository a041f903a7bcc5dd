//! Configuration: figment merges built-in defaults, an optional TOML file and
//! `COGNITO_SIDECAR_*` environment variables into raw serde structs (unknown keys
//! rejected), which [`Config::from_raw`] turns into a validated, typed [`Config`].
//!
//! Each top-level key and each `[[pools]]` / `[[routes]]` entry is deserialized on its
//! own, and semantic checks run over everything that parsed, so one start-up attempt
//! reports every problem at once, each naming its key.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;
use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "COGNITO_SIDECAR_";

/// Largest clock leeway a pool may configure (RFC 7519 says "a few minutes").
pub const MAX_LEEWAY_SECONDS: u64 = 300;

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

pub use crate::token::TokenUse;

/// How a route treats credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A valid token is required (the default for every path).
    #[default]
    Required,
    /// No token needed; identity headers are still stripped.
    Public,
    /// No token forwards anonymously; a token that is present must be valid.
    Optional,
}

/// How a route's `path` is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    /// Whole-segment prefix: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[default]
    Prefix,
    /// The whole path, exactly.
    Exact,
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

/// Which issuer host format(s) a pool accepts when `issuer` is not overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IssuerFormat {
    /// `https://cognito-idp.<region>.amazonaws.com/<pool>`
    #[default]
    Original,
    /// `https://issuer-cognito-idp.<region>.amazonaws.com/<pool>`
    Updated,
    /// Either of the two.
    Both,
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

// ---------------------------------------------------------------------------
// Raw layer: what serde reads. Every struct denies unknown keys.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Option<String>,
    id: String,
    client_ids: Vec<String>,
    token_use: Vec<TokenUse>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
    #[serde(default = "default_max_lifetime")]
    max_lifetime_seconds: u64,
    issuer: Option<String>,
    #[serde(default)]
    issuer_format: IssuerFormat,
    #[serde(default)]
    additional_issuers: Vec<String>,
    jwks_url: Option<String>,
    #[serde(default)]
    allow_insecure_jwks: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default, rename = "match")]
    path_match: PathMatch,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    auth: AuthMode,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    token_use: Vec<TokenUse>,
    #[serde(default)]
    websocket: bool,
    #[serde(default)]
    token_query_param: String,
    #[serde(default)]
    token_cookie: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    reload_interval_seconds: Option<u64>,
    handshake_timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCache {
    max_entries: Option<usize>,
    max_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawShutdown {
    pre_stop_delay_seconds: Option<u64>,
    drain_timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_token_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    header_read_timeout_seconds: Option<u64>,
    upstream_connect_timeout_ms: Option<u64>,
    upstream_timeout_seconds: Option<u64>,
    upstream_idle_timeout_seconds: Option<u64>,
    max_request_body_bytes: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    idle_timeout_seconds: Option<u64>,
    h2_max_concurrent_streams: Option<u32>,
    websocket_idle_timeout_seconds: Option<u64>,
    request_body_timeout_seconds: Option<u64>,
    websocket_close_on_token_expiry: Option<bool>,
    max_in_flight_requests: Option<usize>,
    send_timeout_seconds: Option<u64>,
    upstream_max_idle_connections: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawJwks {
    refresh_interval_seconds: Option<u64>,
    kid_miss_min_interval_seconds: Option<u64>,
    fetch_timeout_ms: Option<u64>,
    max_bytes: Option<usize>,
    max_stale_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawIdentity {
    header_prefix: Option<String>,
    sub_header: Option<String>,
    username_header: Option<String>,
    email_header: Option<String>,
    groups_header: Option<String>,
    scope_header: Option<String>,
    token_use_header: Option<String>,
    client_id_header: Option<String>,
    pool_header: Option<String>,
    claims_header: Option<String>,
    forward_authorization: Option<bool>,
    claims: BTreeMap<String, String>,
}

fn default_leeway() -> u64 {
    60
}
fn default_max_lifetime() -> u64 {
    86_400
}

// ---------------------------------------------------------------------------
// Typed layer: what the rest of the crate uses.
// ---------------------------------------------------------------------------

/// One configured Cognito user pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Name used in metrics and logs (defaults to the pool id).
    pub name: String,
    /// Pool id, e.g. `us-east-1_AbCdEf123`.
    pub id: String,
    /// Accepted app client ids.
    pub client_ids: Vec<String>,
    /// Accepted token kinds.
    pub token_use: Vec<TokenUse>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    pub leeway_seconds: u64,
    /// Largest accepted `exp - iat`.
    pub max_lifetime_seconds: u64,
    /// Exact `iss` values this pool accepts (first one is primary).
    pub issuers: Vec<String>,
    /// Where the pool's keys are fetched.
    pub jwks_url: String,
}

/// One route rule; the first rule that matches a request decides its policy.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Canonical path or prefix (leading `/`).
    pub path: String,
    /// Prefix or exact comparison.
    pub path_match: PathMatch,
    /// Upper-case methods the rule applies to; empty means all.
    pub methods: Vec<String>,
    /// Credential handling.
    pub auth: AuthMode,
    /// Any-of `cognito:groups` membership required.
    pub groups: Vec<String>,
    /// Any-of access-token scopes required.
    pub scopes: Vec<String>,
    /// Token kinds this route accepts; empty means what the pool accepts.
    pub token_use: Vec<TokenUse>,
    /// Authenticated WebSocket upgrades are bridged on this route.
    pub websocket: bool,
    /// Query parameter a token may also come from (browsers cannot set headers on
    /// WebSockets); empty: header only.
    pub token_query_param: String,
    /// Cookie a token may also come from; empty: header only.
    pub token_cookie: String,
}

/// Limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest bearer token looked at; longer ones are rejected before parsing.
    pub max_token_bytes: usize,
    /// Largest request header section (hyper's read buffer).
    pub max_header_bytes: usize,
    /// Most request header lines.
    pub max_headers: usize,
    /// A client must finish sending headers within this time; it also bounds the time
    /// from connection start to the first complete request head (any protocol) and
    /// how long an HTTP/2 header block may stay open.
    pub header_read_timeout: Duration,
    /// Upstream TCP connect timeout (502 after it).
    pub upstream_connect_timeout: Duration,
    /// Time allowed for the upstream's response headers, counted from the end of the
    /// request body (504 after it).
    pub upstream_timeout: Duration,
    /// A request body that delivers nothing for this long is abandoned (408).
    pub request_body_timeout: Duration,
    /// Close a bridged WebSocket when the token that opened it expires (plus leeway).
    pub websocket_close_on_token_expiry: bool,
    /// How long idle pooled upstream connections are kept.
    pub upstream_idle_timeout: Duration,
    /// Largest request body; `None` = unlimited (bodies stream).
    pub max_request_body: Option<u64>,
    /// Most concurrent client connections, bridged WebSocket sessions included; more
    /// wait in the accept queue.
    pub max_connections: usize,
    /// Most requests (HTTP/1 requests and HTTP/2 streams) in flight at once across all
    /// connections; more get 503 at once.
    pub max_in_flight_requests: usize,
    /// A response the client takes nothing of for this long is abandoned (HTTP/2: its
    /// stream is reset; HTTP/1: the connection is closed) and its upstream released.
    pub send_timeout: Duration,
    /// Most idle pooled upstream connections kept.
    pub upstream_max_idle_connections: usize,
    /// Most concurrent connections from one client address (IPv6: one /64); more are
    /// closed at once. `None` = no cap. Peers in `trusted_proxies` are exempt.
    pub max_connections_per_ip: Option<usize>,
    /// Idle client connections (no request progressing, i.e. none waiting on the
    /// upstream; no request bytes arriving; HTTP/2 control frames do not count) are
    /// closed after this.
    pub idle_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// A bridged WebSocket with no traffic either way is closed after this.
    pub websocket_idle_timeout: Duration,
}

/// Downstream TLS termination.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// If set, clients must present a certificate signed by a CA in this PEM bundle.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
}

/// Verified-token cache bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most cached tokens; 0 disables the cache.
    pub max_entries: usize,
    /// Approximate memory bound for cached claims, in bytes.
    pub max_bytes: u64,
}

/// Shutdown sequence timings.
#[derive(Debug, Clone)]
pub struct ShutdownSettings {
    /// After SIGTERM, keep accepting (with `/readyz` failing) this long.
    pub pre_stop_delay: Duration,
    /// Then stop accepting and give in-flight requests this long.
    pub drain_timeout: Duration,
}

/// JWKS lifecycle settings.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Scheduled refresh period (jittered by up to 10%).
    pub refresh_interval: Duration,
    /// Least time between two fetches triggered by unknown `kid`s.
    pub kid_miss_min_interval: Duration,
    /// Whole-fetch timeout.
    pub fetch_timeout: Duration,
    /// Largest JWKS body accepted.
    pub max_bytes: usize,
    /// Keys older than this (no successful refresh) stop verifying; 0 = never.
    pub max_stale: Duration,
}

/// Identity headers sent to the backend.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Every inbound header whose normalized name starts with this is removed.
    pub header_prefix: Option<String>,
    /// `sub` claim.
    pub sub_header: Option<HeaderName>,
    /// `username` (access) or `cognito:username` (ID).
    pub username_header: Option<HeaderName>,
    /// `email`, only when `email_verified` is true.
    pub email_header: Option<HeaderName>,
    /// `cognito:groups`, comma-joined, each element percent-encoded.
    pub groups_header: Option<HeaderName>,
    /// `scope`, comma-joined.
    pub scope_header: Option<HeaderName>,
    /// `token_use`.
    pub token_use_header: Option<HeaderName>,
    /// `aud` (ID) or `client_id` (access).
    pub client_id_header: Option<HeaderName>,
    /// Name of the pool that verified the token.
    pub pool_header: Option<HeaderName>,
    /// All verified claims, base64url JSON.
    pub claims_header: Option<HeaderName>,
    /// Extra claim -> header mappings.
    pub claims: Vec<(String, HeaderName)>,
    /// Forward the client's `Authorization` header.
    pub forward_authorization: bool,
}

impl IdentityConfig {
    /// Every header name this proxy manages (stripped from clients, set by us).
    #[must_use]
    pub fn managed_headers(&self) -> Vec<HeaderName> {
        [
            &self.sub_header,
            &self.username_header,
            &self.email_header,
            &self.groups_header,
            &self.scope_header,
            &self.token_use_header,
            &self.client_id_header,
            &self.pool_header,
            &self.claims_header,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(self.claims.iter().map(|(_, h)| h.clone()))
        .collect()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy listener.
    pub listen: ListenAddr,
    /// Admin listener (health, metrics).
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
    /// Shutdown timings.
    pub shutdown: ShutdownSettings,
    /// Verified-token cache.
    pub cache: CacheSettings,
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Pseudonym in the `Via` header.
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
    /// Log filter (tracing `EnvFilter` syntax).
    pub log_level: String,
    /// User pools.
    pub pools: Vec<PoolConfig>,
    /// Route rules, first match wins.
    pub routes: Vec<RouteConfig>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// JWKS settings.
    pub jwks: JwksSettings,
    /// Identity header settings.
    pub identity: IdentityConfig,
}

/// Every key accepted at the top level of the configuration.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "upstream",
    "upstream_protocol",
    "upstream_ca_file",
    "tls",
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
    "limits",
    "jwks",
    "identity",
];

/// Builds the figment: TOML file (if any), then `COGNITO_SIDECAR_*` variables on top.
#[must_use]
pub fn figment(file: Option<&Path>) -> Figment {
    let mut fig = Figment::new();
    if let Some(path) = file {
        fig = fig.merge(Toml::file_exact(path));
    }
    fig.merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__"))
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
        Self::from_figment(
            &Figment::from(Toml::string(text))
                .merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__")),
        )
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
        let mut v = Validator::default();
        for key in root.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                v.problem(key, "unknown key");
            }
        }
        let cfg = v.build(&root);
        match cfg {
            Some(cfg) if v.problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError {
                problems: v.problems,
            }),
        }
    }

    /// The pool with the given name.
    #[must_use]
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// Where a config file path comes from when `--config` is absent.
#[must_use]
pub fn config_path_from_env() -> Option<PathBuf> {
    std::env::var_os(format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from)
}

#[derive(Default)]
struct Validator {
    problems: Vec<String>,
}

impl Validator {
    fn problem(&mut self, key: &str, msg: impl fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }

    /// Deserializes one value, recording a problem on failure.
    fn get<T: DeserializeOwned>(&mut self, key: &str, value: Option<&Value>) -> Option<T> {
        let value = value?;
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e.kind);
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        root: &BTreeMap<String, Value>,
        key: &str,
    ) -> Option<T> {
        if root.get(key).is_none() {
            self.problem(key, "missing required key");
            return None;
        }
        self.get(key, root.get(key))
    }

    fn optional<T: DeserializeOwned>(
        &mut self,
        root: &BTreeMap<String, Value>,
        key: &str,
        default: T,
    ) -> Option<T> {
        match root.get(key) {
            None => Some(default),
            Some(v) => self.get(key, Some(v)),
        }
    }

    fn header_name(
        &mut self,
        key: &str,
        value: Option<String>,
        default: &str,
    ) -> Option<HeaderName> {
        let name = value.unwrap_or_else(|| default.to_owned());
        if name.is_empty() {
            return None;
        }
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.problem(key, format!("{name:?} is not a valid header name"));
                None
            }
        }
    }

    fn build(&mut self, root: &BTreeMap<String, Value>) -> Option<Config> {
        let listen = self
            .required::<String>(root, "listen")
            .and_then(|l| self.listen_addr(&l));
        let admin_listen = self.optional::<SocketAddr>(
            root,
            "admin_listen",
            SocketAddr::from(([127, 0, 0, 1], 9901)),
        );
        let upstream = self
            .required::<String>(root, "upstream")
            .and_then(|u| self.upstream(&u));
        let upstream_protocol = self.optional(root, "upstream_protocol", UpstreamProtocol::Http1);
        let upstream_ca_file = self.optional::<Option<PathBuf>>(root, "upstream_ca_file", None);
        let tls = self.tls(root);
        let shutdown = self.shutdown(root);
        let cache = self
            .optional::<RawCache>(root, "cache", RawCache::default())
            .map(|c| CacheSettings {
                max_entries: c.max_entries.unwrap_or(10_000),
                max_bytes: c.max_bytes.unwrap_or(8 * 1024 * 1024),
            });
        let realm = self
            .optional(root, "realm", "api".to_owned())
            .and_then(|r| self.quoted_safe("realm", r));
        let via = self.optional(root, "via", "cognito-sidecar".to_owned());
        let via = via.and_then(|v| {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                Some(v)
            } else {
                self.problem(
                    "via",
                    "must be a non-empty token of letters, digits, '-', '.', '_'",
                );
                None
            }
        });
        let trusted_proxies = self
            .optional::<Vec<String>>(root, "trusted_proxies", Vec::new())
            .map(|list| self.cidrs(&list));
        let allowed_hosts = self
            .optional::<Vec<String>>(root, "allowed_hosts", Vec::new())
            .map(|hs| hs.into_iter().map(|h| h.to_ascii_lowercase()).collect());
        let strip_headers = self
            .optional::<Vec<String>>(root, "strip_headers", Vec::new())
            .map(|names| self.strip_headers(&names));
        let strict_path_encoding = self.optional(root, "strict_path_encoding", true);
        let trust_client_request_id = self.optional(root, "trust_client_request_id", false);
        let preserve_host = self.optional(root, "preserve_host", true);
        let cors_preflight = self.optional(root, "cors_preflight", PreflightMode::Forward);
        let log_format = self.optional(root, "log_format", LogFormat::Auto);
        let log_level = self.optional(root, "log_level", "info".to_owned());
        let pools = self.pools(root);
        let routes = self.routes(root);
        let limits = self.limits(root);
        let jwks = self.jwks(root);
        let identity = self.identity(root);

        if let (Some(ListenAddr::Tcp(a)), Some(b)) = (&listen, admin_listen)
            && *a == b
            && a.port() != 0
        {
            self.problem("admin_listen", "must differ from listen");
        }

        if upstream_protocol == Some(UpstreamProtocol::Http2)
            && routes
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|r| r.websocket))
        {
            self.problem(
                "upstream_protocol",
                "WebSocket routes need upstream_protocol = \"http1\"",
            );
        }
        if upstream_ca_file.as_ref().is_some_and(Option::is_some)
            && !matches!(upstream, Some((_, UpstreamTarget::Https)))
        {
            self.problem("upstream_ca_file", "only applies to an https:// upstream");
        }
        Some(Config {
            listen: listen?,
            admin_listen: admin_listen?,
            upstream: upstream.as_ref()?.0.clone(),
            upstream_target: upstream?.1,
            upstream_protocol: upstream_protocol?,
            upstream_ca_file: upstream_ca_file?,
            tls: tls?,
            shutdown: shutdown?,
            cache: cache?,
            realm: realm?,
            via: via?,
            trusted_proxies: trusted_proxies?,
            allowed_hosts: allowed_hosts?,
            strip_headers: strip_headers?,
            strict_path_encoding: strict_path_encoding?,
            trust_client_request_id: trust_client_request_id?,
            preserve_host: preserve_host?,
            cors_preflight: cors_preflight?,
            log_format: log_format?,
            log_level: log_level?,
            pools: pools?,
            routes: routes?,
            limits: limits?,
            jwks: jwks?,
            identity: identity?,
        })
    }

    fn strip_headers(&mut self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.problem(
                    &format!("strip_headers[{i}]"),
                    format!("{name:?} is not a valid header name"),
                );
                continue;
            }
            out.push(normalize_header_name(name));
        }
        out
    }

    fn quoted_safe(&mut self, key: &str, s: String) -> Option<String> {
        // RFC 6750 quoted-string content without '"' and '\'.
        if !s.is_empty()
            && s.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            Some(s)
        } else {
            self.problem(
                key,
                "must be non-empty printable ASCII without '\"' or '\\'",
            );
            None
        }
    }

    fn listen_addr(&mut self, l: &str) -> Option<ListenAddr> {
        if let Some(path) = l.strip_prefix("unix:") {
            let path = path.trim_start_matches("//");
            if path.starts_with('/') {
                return Some(ListenAddr::Unix(PathBuf::from(path)));
            }
            self.problem(
                "listen",
                "unix socket paths must be absolute: unix:/run/x.sock",
            );
            return None;
        }
        match l.parse::<SocketAddr>() {
            Ok(a) => Some(ListenAddr::Tcp(a)),
            Err(_) => {
                self.problem(
                    "listen",
                    format!("{l:?} is not an address like 0.0.0.0:8080 or unix:/path"),
                );
                None
            }
        }
    }

    fn upstream(&mut self, u: &str) -> Option<(http::Uri, UpstreamTarget)> {
        if let Some(path) = u.strip_prefix("unix://") {
            if !path.starts_with('/') {
                self.problem(
                    "upstream",
                    "unix socket upstreams look like unix:///run/app.sock",
                );
                return None;
            }
            return Some((
                http::Uri::from_static("http://localhost"),
                UpstreamTarget::Unix(PathBuf::from(path)),
            ));
        }
        let Ok(uri) = u.parse::<http::Uri>() else {
            self.problem("upstream", format!("{u:?} is not a URL"));
            return None;
        };
        let target = match uri.scheme_str() {
            Some("http") => UpstreamTarget::Http,
            Some("https") => UpstreamTarget::Https,
            _ => {
                self.problem("upstream", "must be http://, https:// or unix:///path");
                return None;
            }
        };
        if uri.authority().is_none() {
            self.problem("upstream", "must name a host");
            return None;
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            self.problem(
                "upstream",
                "must not have a path or query (scheme://host:port only)",
            );
            return None;
        }
        Some((uri, target))
    }

    fn tls(&mut self, root: &BTreeMap<String, Value>) -> Option<Option<TlsSettings>> {
        let Some(value) = root.get("tls") else {
            return Some(None);
        };
        let raw = self.get::<RawTls>("tls", Some(value))?;
        let before = self.problems.len();
        for (key, path) in [
            ("tls.cert_file", Some(&raw.cert_file)),
            ("tls.key_file", Some(&raw.key_file)),
            ("tls.client_ca_file", raw.client_ca_file.as_ref()),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                self.problem(key, format!("{} is not a readable file", path.display()));
            }
        }
        let reload = raw.reload_interval_seconds.unwrap_or(10);
        if reload == 0 {
            self.problem("tls.reload_interval_seconds", "must be positive");
        }
        let handshake = raw.handshake_timeout_seconds.unwrap_or(10);
        if handshake == 0 {
            self.problem("tls.handshake_timeout_seconds", "must be positive");
        }
        (self.problems.len() == before).then(|| {
            Some(TlsSettings {
                cert_file: raw.cert_file,
                key_file: raw.key_file,
                client_ca_file: raw.client_ca_file,
                reload_interval: Duration::from_secs(reload),
                handshake_timeout: Duration::from_secs(handshake),
            })
        })
    }

    fn shutdown(&mut self, root: &BTreeMap<String, Value>) -> Option<ShutdownSettings> {
        let raw = self.optional::<RawShutdown>(root, "shutdown", RawShutdown::default())?;
        Some(ShutdownSettings {
            pre_stop_delay: Duration::from_secs(raw.pre_stop_delay_seconds.unwrap_or(0)),
            drain_timeout: Duration::from_secs(raw.drain_timeout_seconds.unwrap_or(30)),
        })
    }

    fn cidrs(&mut self, list: &[String]) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => out.push(n),
                Err(_) => self.problem(
                    &format!("trusted_proxies[{i}]"),
                    format!("{s:?} is not an IP or CIDR"),
                ),
            }
        }
        out
    }

    fn pools(&mut self, root: &BTreeMap<String, Value>) -> Option<Vec<PoolConfig>> {
        let items = self.required::<Vec<Value>>(root, "pools")?;
        if items.is_empty() {
            self.problem("pools", "at least one pool is required");
            return None;
        }
        let mut pools = Vec::new();
        let mut ok = true;
        let mut names = HashSet::new();
        let mut issuers = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("pools[{i}]");
            let Some(raw) = self.get::<RawPool>(&key, Some(item)) else {
                ok = false;
                continue;
            };
            match self.pool(&key, raw) {
                Some(p) => {
                    if !names.insert(p.name.clone()) {
                        self.problem(
                            &format!("{key}.name"),
                            format!("duplicate pool name {:?}", p.name),
                        );
                    }
                    for iss in &p.issuers {
                        if !issuers.insert(iss.clone()) {
                            self.problem(
                                &format!("{key}.issuer"),
                                format!("issuer {iss:?} is used by two pools"),
                            );
                        }
                    }
                    pools.push(p);
                }
                None => ok = false,
            }
        }
        ok.then_some(pools)
    }

    fn pool(&mut self, key: &str, raw: RawPool) -> Option<PoolConfig> {
        let before = self.problems.len();
        let region = parse_pool_id(&raw.id);
        if region.is_none() {
            self.problem(
                &format!("{key}.id"),
                format!(
                    "{:?} is not a Cognito user pool id like us-east-1_AbCdEf123",
                    raw.id
                ),
            );
        }
        if raw.client_ids.is_empty() || raw.client_ids.iter().any(String::is_empty) {
            self.problem(
                &format!("{key}.client_ids"),
                "at least one non-empty app client id is required",
            );
        }
        if raw.token_use.is_empty() {
            self.problem(
                &format!("{key}.token_use"),
                "list the accepted token kinds: \"id\", \"access\" or both",
            );
        }
        if raw.leeway_seconds > MAX_LEEWAY_SECONDS {
            self.problem(
                &format!("{key}.leeway_seconds"),
                format!(
                    "{} exceeds the maximum of {MAX_LEEWAY_SECONDS}",
                    raw.leeway_seconds
                ),
            );
        }
        if raw.max_lifetime_seconds == 0 {
            self.problem(&format!("{key}.max_lifetime_seconds"), "must be positive");
        }
        let mut issuers = Vec::new();
        match (&raw.issuer, region) {
            (Some(iss), _) => issuers.push(iss.clone()),
            (None, Some(region)) => {
                let original = format!("https://cognito-idp.{region}.amazonaws.com/{}", raw.id);
                let updated = format!(
                    "https://issuer-cognito-idp.{region}.amazonaws.com/{}",
                    raw.id
                );
                match raw.issuer_format {
                    IssuerFormat::Original => issuers.push(original),
                    IssuerFormat::Updated => issuers.push(updated),
                    IssuerFormat::Both => issuers.extend([original, updated]),
                }
            }
            (None, None) => {}
        }
        issuers.extend(raw.additional_issuers.iter().cloned());
        for (j, iss) in issuers.iter().enumerate() {
            let ok = iss.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("https" | "http")) && u.authority().is_some()
            });
            if !ok || iss.ends_with('/') {
                let k = if j == 0 && raw.issuer.is_some() {
                    format!("{key}.issuer")
                } else {
                    format!("{key}.additional_issuers")
                };
                self.problem(
                    &k,
                    format!("{iss:?} must be an absolute http(s) URL without a trailing '/'"),
                );
            }
        }
        let jwks_url = match (&raw.jwks_url, region) {
            (Some(u), _) => Some(u.clone()),
            // Cognito serves the keys under the original-format issuer in every case.
            (None, Some(region)) if raw.issuer.is_none() => Some(format!(
                "https://cognito-idp.{region}.amazonaws.com/{}/.well-known/jwks.json",
                raw.id
            )),
            (None, _) => issuers
                .first()
                .map(|i| format!("{i}/.well-known/jwks.json")),
        };
        if let Some(url) = &jwks_url
            && let Err(msg) = check_jwks_url(url, raw.allow_insecure_jwks)
        {
            self.problem(&format!("{key}.jwks_url"), msg);
        }
        if self.problems.len() != before {
            return None;
        }
        Some(PoolConfig {
            name: raw.name.unwrap_or_else(|| raw.id.clone()),
            id: raw.id,
            client_ids: raw.client_ids,
            token_use: raw.token_use,
            leeway_seconds: raw.leeway_seconds,
            max_lifetime_seconds: raw.max_lifetime_seconds,
            issuers,
            jwks_url: jwks_url?,
        })
    }

    fn routes(&mut self, root: &BTreeMap<String, Value>) -> Option<Vec<RouteConfig>> {
        let items = self.optional::<Vec<Value>>(root, "routes", Vec::new())?;
        let mut routes = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let key = format!("routes[{i}]");
            let Some(raw) = self.get::<RawRoute>(&key, Some(item)) else {
                ok = false;
                continue;
            };
            let before = self.problems.len();
            if !raw.path.starts_with('/') {
                self.problem(&format!("{key}.path"), "must start with '/'");
            } else {
                match crate::path::canonicalize(&raw.path) {
                    Ok(c)
                        if c == raw.path
                            || c == raw.path.trim_end_matches('/')
                            || raw.path == "/" => {}
                    _ => self.problem(
                        &format!("{key}.path"),
                        "must be a canonical path (no '..', '.', '//', '%2F', '\\')",
                    ),
                }
            }
            let mut methods = Vec::new();
            for m in &raw.methods {
                // Methods are case-sensitive tokens; requests in any other spelling are
                // refused, so a rule must name the one spelling that can arrive.
                if m.is_empty()
                    || !m.bytes().all(|b| {
                        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    })
                {
                    self.problem(
                        &format!("{key}.methods"),
                        format!("{m:?} is not an upper-case HTTP method token (e.g. \"GET\")"),
                    );
                }
                methods.push(m.clone());
            }
            if raw.auth != AuthMode::Required
                && (!raw.groups.is_empty() || !raw.scopes.is_empty() || !raw.token_use.is_empty())
            {
                self.problem(
                    &format!("{key}.auth"),
                    "groups, scopes and token_use need auth = \"required\"",
                );
            }
            if !raw.scopes.is_empty() && raw.token_use.contains(&TokenUse::Id) {
                self.problem(
                    &format!("{key}.scopes"),
                    "scopes can only be met by access tokens; remove \"id\" from token_use",
                );
            }
            let token_name_ok = |n: &str| {
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            };
            if !token_name_ok(&raw.token_query_param) || !token_name_ok(&raw.token_cookie) {
                self.problem(
                    &format!("{key}.token_query_param"),
                    "query parameter and cookie names are letters, digits, '-', '_', '.'",
                );
            }
            if raw.groups.iter().chain(&raw.scopes).any(String::is_empty) {
                self.problem(&key.to_string(), "group and scope names must not be empty");
            }
            if self.problems.len() != before {
                ok = false;
                continue;
            }
            routes.push(RouteConfig {
                path: raw.path,
                path_match: raw.path_match,
                methods,
                auth: raw.auth,
                groups: raw.groups,
                scopes: raw.scopes,
                token_use: raw.token_use,
                websocket: raw.websocket,
                token_query_param: raw.token_query_param,
                token_cookie: raw.token_cookie,
            });
        }
        ok.then_some(routes)
    }

    fn limits(&mut self, root: &BTreeMap<String, Value>) -> Option<Limits> {
        let raw = self.optional::<RawLimits>(root, "limits", RawLimits::default())?;
        let positive = |v: &mut Self, key: &str, val: u64| {
            if val == 0 {
                v.problem(&format!("limits.{key}"), "must be positive");
            }
            val
        };
        let max_token_bytes = raw.max_token_bytes.unwrap_or(16 * 1024);
        if !(1024..=1024 * 1024).contains(&max_token_bytes) {
            self.problem("limits.max_token_bytes", "must be between 1024 and 1048576");
        }
        let max_header_bytes = raw.max_header_bytes.unwrap_or(64 * 1024);
        if max_header_bytes < 8192 {
            self.problem("limits.max_header_bytes", "must be at least 8192");
        }
        let max_headers = raw.max_headers.unwrap_or(100);
        if max_headers == 0 {
            self.problem("limits.max_headers", "must be positive");
        }
        Some(Limits {
            max_token_bytes,
            max_header_bytes,
            max_headers,
            header_read_timeout: Duration::from_secs(positive(
                self,
                "header_read_timeout_seconds",
                raw.header_read_timeout_seconds.unwrap_or(10),
            )),
            upstream_connect_timeout: Duration::from_millis(positive(
                self,
                "upstream_connect_timeout_ms",
                raw.upstream_connect_timeout_ms.unwrap_or(5000),
            )),
            upstream_timeout: Duration::from_secs(positive(
                self,
                "upstream_timeout_seconds",
                raw.upstream_timeout_seconds.unwrap_or(60),
            )),
            websocket_close_on_token_expiry: raw.websocket_close_on_token_expiry.unwrap_or(true),
            request_body_timeout: Duration::from_secs(positive(
                self,
                "request_body_timeout_seconds",
                raw.request_body_timeout_seconds.unwrap_or(30),
            )),
            upstream_idle_timeout: Duration::from_secs(
                raw.upstream_idle_timeout_seconds.unwrap_or(90),
            ),
            max_request_body: raw.max_request_body_bytes.filter(|b| *b > 0),
            max_in_flight_requests: match raw.max_in_flight_requests.unwrap_or(128) {
                0 => {
                    self.problem("limits.max_in_flight_requests", "must be positive");
                    1
                }
                // tokio's semaphore holds at most usize::MAX >> 3 permits.
                n if n > 100_000_000 => {
                    self.problem("limits.max_in_flight_requests", "must be at most 100000000");
                    1
                }
                n => n,
            },
            send_timeout: Duration::from_secs(positive(
                self,
                "send_timeout_seconds",
                raw.send_timeout_seconds.unwrap_or(30),
            )),
            upstream_max_idle_connections: raw.upstream_max_idle_connections.unwrap_or(128),
            max_connections: match raw.max_connections.unwrap_or(512) {
                0 => {
                    self.problem("limits.max_connections", "must be positive");
                    1
                }
                n if n > 100_000_000 => {
                    self.problem("limits.max_connections", "must be at most 100000000");
                    1
                }
                n => n,
            },
            max_connections_per_ip: match raw.max_connections_per_ip.unwrap_or(256) {
                0 => None,
                n if n > 1_000_000 => {
                    self.problem(
                        "limits.max_connections_per_ip",
                        "must be at most 1000000 (0 turns the cap off)",
                    );
                    None
                }
                n => Some(n),
            },
            idle_timeout: Duration::from_secs(positive(
                self,
                "idle_timeout_seconds",
                raw.idle_timeout_seconds.unwrap_or(60),
            )),
            h2_max_concurrent_streams: match raw.h2_max_concurrent_streams.unwrap_or(100) {
                0 => {
                    self.problem("limits.h2_max_concurrent_streams", "must be positive");
                    1
                }
                n => n,
            },
            websocket_idle_timeout: Duration::from_secs(positive(
                self,
                "websocket_idle_timeout_seconds",
                raw.websocket_idle_timeout_seconds.unwrap_or(600),
            )),
        })
    }

    fn jwks(&mut self, root: &BTreeMap<String, Value>) -> Option<JwksSettings> {
        let raw = self.optional::<RawJwks>(root, "jwks", RawJwks::default())?;
        let refresh = raw.refresh_interval_seconds.unwrap_or(3600);
        if refresh < 10 {
            self.problem("jwks.refresh_interval_seconds", "must be at least 10");
        }
        let fetch_timeout = raw.fetch_timeout_ms.unwrap_or(3000);
        if !(100..=60_000).contains(&fetch_timeout) {
            self.problem("jwks.fetch_timeout_ms", "must be between 100 and 60000");
        }
        let max_bytes = raw.max_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_bytes) {
            self.problem("jwks.max_bytes", "must be between 1024 and 16777216");
        }
        let max_stale = raw.max_stale_seconds.unwrap_or(86_400);
        if max_stale != 0 && max_stale < refresh {
            self.problem(
                "jwks.max_stale_seconds",
                "must be 0 (never) or at least jwks.refresh_interval_seconds",
            );
        }
        Some(JwksSettings {
            refresh_interval: Duration::from_secs(refresh),
            kid_miss_min_interval: Duration::from_secs(
                raw.kid_miss_min_interval_seconds.unwrap_or(10),
            ),
            fetch_timeout: Duration::from_millis(fetch_timeout),
            max_bytes,
            max_stale: Duration::from_secs(max_stale),
        })
    }

    fn identity(&mut self, root: &BTreeMap<String, Value>) -> Option<IdentityConfig> {
        let raw = self.optional::<RawIdentity>(root, "identity", RawIdentity::default())?;
        let before = self.problems.len();
        let prefix = raw.header_prefix.unwrap_or_else(|| "X-Auth-".to_owned());
        let header_prefix = if prefix.is_empty() {
            None
        } else if HeaderName::from_bytes(prefix.as_bytes()).is_err() {
            self.problem(
                "identity.header_prefix",
                format!("{prefix:?} is not a valid header name prefix"),
            );
            None
        } else {
            Some(normalize_header_name(&prefix))
        };
        let mut claims = Vec::new();
        for (claim, header) in raw.claims {
            let key = format!("identity.claims.{claim:?}");
            if header.is_empty() {
                continue;
            }
            if let Some(h) = self.header_name(&key, Some(header), "") {
                claims.push((claim, h));
            }
        }
        let id = IdentityConfig {
            header_prefix,
            sub_header: self.header_name("identity.sub_header", raw.sub_header, "X-Auth-Sub"),
            username_header: self.header_name(
                "identity.username_header",
                raw.username_header,
                "X-Auth-Username",
            ),
            email_header: self.header_name(
                "identity.email_header",
                raw.email_header,
                "X-Auth-Email",
            ),
            groups_header: self.header_name(
                "identity.groups_header",
                raw.groups_header,
                "X-Auth-Groups",
            ),
            scope_header: self.header_name(
                "identity.scope_header",
                raw.scope_header,
                "X-Auth-Scope",
            ),
            token_use_header: self.header_name(
                "identity.token_use_header",
                raw.token_use_header,
                "X-Auth-Token-Use",
            ),
            client_id_header: self.header_name(
                "identity.client_id_header",
                raw.client_id_header,
                "X-Auth-Client-Id",
            ),
            pool_header: self.header_name("identity.pool_header", raw.pool_header, ""),
            claims_header: self.header_name("identity.claims_header", raw.claims_header, ""),
            claims,
            forward_authorization: raw.forward_authorization.unwrap_or(false),
        };
        for h in id.managed_headers() {
            if crate::header_names::is_hop_by_hop_or_framing(&h) || h == http::header::HOST {
                self.problem(
                    "identity",
                    format!("{h} cannot be used as an identity header"),
                );
            }
        }
        (self.problems.len() == before).then_some(id)
    }
}

pub use crate::header_names::normalize_header_name;

/// Returns the region of a pool id like `us-east-1_AbCdEf123`.
fn parse_pool_id(id: &str) -> Option<&str> {
    let (region, rest) = id.split_once('_')?;
    let region_ok = region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    let rest_ok = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    (region_ok && rest_ok).then_some(region)
}

/// JWKS URLs must be https, or plain http to a loopback host, or plain http with opt-in.
fn check_jwks_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_insecure || is_loopback_host(host) => Ok(()),
        Some("http") => Err(format!(
            "{url:?} uses plain http to a non-loopback host; use https or set allow_insecure_jwks = true"
        )),
        _ => Err(format!("{url:?} must be an https:// URL")),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        listen = "127.0.0.1:8080"
        upstream = "http://127.0.0.1:3000"
        [[pools]]
        id = "us-east-1_AbCdEf123"
        client_ids = ["abc123"]
        token_use = ["id", "access"]
    "#;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn minimal_config_derives_issuer_and_jwks_url_from_pool_id() {
        let cfg = Config::from_toml(MIN).expect("valid");
        let p = &cfg.pools[0];
        assert_eq!(
            p.issuers,
            ["https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"]
        );
        assert_eq!(
            p.jwks_url,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123/.well-known/jwks.json"
        );
        assert_eq!(p.leeway_seconds, 60);
        assert_eq!(p.name, "us-east-1_AbCdEf123");
        assert!(!cfg.identity.forward_authorization);
    }

    #[test]
    fn issuer_format_both_accepts_original_and_updated_hosts() {
        let cfg = Config::from_toml(&format!("{MIN}\nissuer_format = \"both\"")).expect("valid");
        assert_eq!(
            cfg.pools[0].issuers,
            [
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123",
                "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"
            ]
        );
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
    fn plain_http_jwks_is_allowed_only_to_loopback_or_with_opt_in() {
        let with =
            |url: &str, extra: &str| problems(&format!("{MIN}\njwks_url = \"{url}\"\n{extra}"));
        assert!(with("http://127.0.0.1:9/jwks.json", "").is_empty());
        assert!(with("http://localhost:9/jwks.json", "").is_empty());
        assert!(!with("http://jwks.internal/jwks.json", "").is_empty());
        assert!(
            with(
                "http://jwks.internal/jwks.json",
                "allow_insecure_jwks = true"
            )
            .is_empty()
        );
    }

    #[test]
    fn scopes_on_an_id_token_route_are_rejected() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a\"\nscopes = [\"x/y\"]\ntoken_use = [\"id\"]"
        ));
        assert!(p.iter().any(|m| m.contains("routes[0].scopes")), "{p:?}");
    }

    #[test]
    fn non_canonical_route_paths_are_rejected() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a/../b\"\nauth = \"public\""
        ));
        assert!(p.iter().any(|m| m.contains("routes[0].path")), "{p:?}");
    }

    #[test]
    fn header_names_are_normalized_with_underscores_as_dashes() {
        assert_eq!(normalize_header_name("X_Auth_Sub"), "x-auth-sub");
    }

    #[test]
    fn the_per_ip_connection_cap_defaults_to_256_and_zero_turns_it_off() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert_eq!(cfg.limits.max_connections_per_ip, Some(256));
        let off = Config::from_toml(&format!("{MIN}\n[limits]\nmax_connections_per_ip = 0"))
            .expect("valid");
        assert_eq!(off.limits.max_connections_per_ip, None);
        let p = problems(&format!(
            "{MIN}\n[limits]\nmax_connections_per_ip = 2000000"
        ));
        assert!(
            p.iter()
                .any(|m| m.starts_with("limits.max_connections_per_ip:")),
            "{p:?}"
        );
    }
}
