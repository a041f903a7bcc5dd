//! The raw layer: what serde reads for each section, before any semantic check.
//!
//! Every struct denies unknown keys, so a misspelt key is an error ("unknown field
//! `x`, expected one of ...") instead of a silently ignored setting. Fields a user may
//! leave out are `Option`s (their defaults live with the typed structs, see
//! [`super::Limits`] and friends) or `#[serde(default)]`s whose default is the type's
//! own (`false`, empty, an enum's `#[default]` variant), except the two pool defaults
//! named below.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{AuthMode, IssuerFormat, PathMatch, PoolConfig, RolloutMode, TokenUse};

/// One `[[pools]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: Option<String>,
    pub(super) id: String,
    pub(super) client_ids: Vec<String>,
    pub(super) token_use: Vec<TokenUse>,
    #[serde(default = "default_leeway")]
    pub(super) leeway_seconds: u64,
    #[serde(default = "default_max_lifetime")]
    pub(super) max_lifetime_seconds: u64,
    pub(super) issuer: Option<String>,
    #[serde(default)]
    pub(super) issuer_format: IssuerFormat,
    #[serde(default)]
    pub(super) additional_issuers: Vec<String>,
    pub(super) jwks_url: Option<String>,
    #[serde(default)]
    pub(super) allow_insecure_jwks: bool,
    #[serde(default)]
    pub(super) revocation_check: bool,
    pub(super) idp_endpoint: Option<String>,
}

/// Default of `pools[].leeway_seconds`: [`PoolConfig::DEFAULT_LEEWAY_SECONDS`].
fn default_leeway() -> u64 {
    PoolConfig::DEFAULT_LEEWAY_SECONDS
}

/// Default of `pools[].max_lifetime_seconds`: [`PoolConfig::DEFAULT_MAX_LIFETIME_SECONDS`].
fn default_max_lifetime() -> u64 {
    PoolConfig::DEFAULT_MAX_LIFETIME_SECONDS
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: String,
    #[serde(default, rename = "match")]
    pub(super) path_match: PathMatch,
    #[serde(default)]
    pub(super) methods: Vec<String>,
    #[serde(default)]
    pub(super) auth: AuthMode,
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) token_use: Vec<TokenUse>,
    #[serde(default)]
    pub(super) websocket: bool,
    #[serde(default)]
    pub(super) token_query_param: String,
    #[serde(default)]
    pub(super) token_cookie: String,
    pub(super) token_sources: Option<Vec<String>>,
    pub(super) mode: Option<RolloutMode>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) reload_interval_seconds: Option<u64>,
    pub(super) handshake_timeout_seconds: Option<u64>,
}

/// `[deny_list]`. `file` is required but read as an option, so that a missing one is
/// reported by its own key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDenyList {
    pub(super) file: Option<PathBuf>,
    pub(super) reload_interval_seconds: Option<u64>,
    pub(super) max_entries: Option<usize>,
    pub(super) max_bytes: Option<u64>,
}

/// `[cache]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCache {
    pub(super) max_entries: Option<usize>,
    pub(super) max_bytes: Option<u64>,
}

/// `[shutdown]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawShutdown {
    pub(super) pre_stop_delay_seconds: Option<u64>,
    pub(super) drain_timeout_seconds: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub(super) max_token_bytes: Option<usize>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) max_headers: Option<usize>,
    pub(super) header_read_timeout_seconds: Option<u64>,
    pub(super) upstream_connect_timeout_ms: Option<u64>,
    pub(super) upstream_timeout_seconds: Option<u64>,
    pub(super) upstream_idle_timeout_seconds: Option<u64>,
    pub(super) max_request_body_bytes: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_ip: Option<usize>,
    pub(super) max_in_flight_requests_per_ip: Option<usize>,
    pub(super) idle_timeout_seconds: Option<u64>,
    pub(super) h2_max_concurrent_streams: Option<u32>,
    pub(super) websocket_idle_timeout_seconds: Option<u64>,
    pub(super) request_body_timeout_seconds: Option<u64>,
    pub(super) websocket_close_on_token_expiry: Option<bool>,
    pub(super) max_in_flight_requests: Option<usize>,
    pub(super) send_timeout_seconds: Option<u64>,
    pub(super) upstream_max_idle_connections: Option<usize>,
}

/// `[jwks]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawJwks {
    pub(super) refresh_interval_seconds: Option<u64>,
    pub(super) kid_miss_min_interval_seconds: Option<u64>,
    pub(super) fetch_timeout_ms: Option<u64>,
    pub(super) max_bytes: Option<usize>,
    pub(super) max_stale_seconds: Option<u64>,
}

/// `[identity]`; `[identity.claims]` maps claim names to header names.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIdentity {
    pub(super) header_prefix: Option<String>,
    pub(super) sub_header: Option<String>,
    pub(super) username_header: Option<String>,
    pub(super) email_header: Option<String>,
    pub(super) groups_header: Option<String>,
    pub(super) scope_header: Option<String>,
    pub(super) token_use_header: Option<String>,
    pub(super) client_id_header: Option<String>,
    pub(super) pool_header: Option<String>,
    pub(super) claims_header: Option<String>,
    pub(super) forward_authorization: Option<bool>,
    pub(super) claims: BTreeMap<String, String>,
}

/// `[alb]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlb {
    #[serde(default)]
    pub(super) access_token: bool,
    #[serde(default)]
    pub(super) verify_data: bool,
    pub(super) signer_arn: Option<String>,
    pub(super) region: Option<String>,
    pub(super) public_key_url: Option<String>,
    #[serde(default)]
    pub(super) allow_insecure_public_key_url: bool,
    pub(super) key_fetch_timeout_ms: Option<u64>,
    pub(super) leeway_seconds: Option<u64>,
}

/// `[login]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    pub(super) client_id: String,
    pub(super) pool: Option<String>,
    pub(super) domain: Option<String>,
    pub(super) authorize_url: Option<String>,
    pub(super) token_url: Option<String>,
    pub(super) logout_url: Option<String>,
    pub(super) external_url: String,
    pub(super) callback_path: Option<String>,
    pub(super) sign_out_path: Option<String>,
    pub(super) after_sign_out_path: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) session_keys_file: Option<PathBuf>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) cookie_name: Option<String>,
    pub(super) cookie_secure: Option<bool>,
    pub(super) max_session_seconds: Option<u64>,
    pub(super) sign_in_timeout_seconds: Option<u64>,
    pub(super) token_timeout_ms: Option<u64>,
    pub(super) rate_limit_per_minute: Option<u32>,
}

/// `[assertion]`. `issuer` and `audience` are required but read as options, so that a
/// missing one is reported by its own key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    pub(super) header: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) lifetime_seconds: Option<u64>,
    pub(super) key_file: Option<PathBuf>,
}
