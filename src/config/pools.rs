//! `[[pools]]` (which Cognito user pools issue accepted tokens, and where their keys
//! are) and `[jwks]` (how those keys are fetched and kept): typed settings, defaults
//! and checks.

use std::collections::HashSet;
use std::time::Duration;

use figment::value::Value;
use serde::Deserialize;

use super::TokenUse;
use super::raw::{RawJwks, RawPool};
use super::validate::{Root, Validator};

/// Largest clock leeway a pool may configure (RFC 7519 says "a few minutes").
pub const MAX_LEEWAY_SECONDS: u64 = 300;

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

/// One configured Cognito user pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name used in metrics and logs (defaults to the pool id).
    pub name: String,
    /// Pool id, e.g. `us-east-1_AbCdEf123`.
    pub id: String,
    /// Accepted app client ids.
    pub client_ids: Vec<String>,
    /// Accepted token kinds.
    pub token_use: Vec<TokenUse>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`; default
    /// [`PoolConfig::DEFAULT_LEEWAY_SECONDS`], at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u64,
    /// Largest accepted `exp - iat`; default [`PoolConfig::DEFAULT_MAX_LIFETIME_SECONDS`].
    pub max_lifetime_seconds: u64,
    /// Exact `iss` values this pool accepts (first one is primary).
    pub issuers: Vec<String>,
    /// Where the pool's keys are fetched.
    pub jwks_url: String,
    /// Present admitted access tokens to Cognito's `GetUser` (`src/revocation/`).
    pub revocation_check: bool,
    /// The user-pool API endpoint `GetUser` is sent to; `None` only when the pool id
    /// names no region and none is given.
    pub idp_endpoint: Option<String>,
}

/// Defaults of `[[pools]]` keys (the serde defaults in `raw.rs` give these).
impl PoolConfig {
    /// `leeway_seconds`.
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
    /// `max_lifetime_seconds` (one day).
    pub const DEFAULT_MAX_LIFETIME_SECONDS: u64 = 86_400;
}

/// JWKS lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Defaults of the `[jwks]` keys, in the keys' units.
impl JwksSettings {
    /// `refresh_interval_seconds` (at least 10).
    pub const DEFAULT_REFRESH_INTERVAL_SECONDS: u64 = 3600;
    /// `kid_miss_min_interval_seconds`.
    pub const DEFAULT_KID_MISS_MIN_INTERVAL_SECONDS: u64 = 10;
    /// `fetch_timeout_ms` (100 to 60000).
    pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 3000;
    /// `max_bytes` (1 KiB to 16 MiB).
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
    /// `max_stale_seconds` (one day; 0 = never).
    pub const DEFAULT_MAX_STALE_SECONDS: u64 = 86_400;
}

impl Validator {
    /// `[[pools]]`: at least one, each valid, names and issuers unique.
    pub(super) fn pools(&mut self, root: &Root) -> Option<Vec<PoolConfig>> {
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

    /// One `[[pools]]` entry (`key` is `pools[i]`); derives issuers and the JWKS URL
    /// from the pool id unless they are given.
    fn pool(&mut self, key: &str, raw: RawPool) -> Option<PoolConfig> {
        let before = self.problems.len();
        let region = parse_pool_id(&raw.id);
        // Nothing is derived from the id once both the issuer and the key location are
        // given, so emulators' ids (cognito-local's `local_4qnW86eo`) are accepted then.
        let derives_nothing = raw.issuer.is_some() && raw.jwks_url.is_some();
        if region.is_none() && !(derives_nothing && is_emulator_pool_id(&raw.id)) {
            let problem = if derives_nothing {
                format!(
                    "{:?} must be 1 to {MAX_POOL_ID_LEN} characters of A-Z, a-z, 0-9, '_' and '-'",
                    raw.id
                )
            } else {
                format!(
                    "{:?} is not a Cognito user pool id like us-east-1_AbCdEf123 \
                     (set issuer and jwks_url for emulators)",
                    raw.id
                )
            };
            self.problem(&format!("{key}.id"), problem);
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
            && let Err(e) = check_jwks_url(url, raw.allow_insecure_jwks)
        {
            self.problem(&format!("{key}.jwks_url"), e);
        }
        let idp_endpoint = self.pool_revocation(
            key,
            raw.revocation_check,
            raw.idp_endpoint.as_deref(),
            region,
            &raw.token_use,
            |url| check_jwks_url(url, raw.allow_insecure_jwks).map_err(|e| e.to_string()),
        );
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
            revocation_check: raw.revocation_check,
            idp_endpoint,
        })
    }

    /// `[jwks]`.
    pub(super) fn jwks(&mut self, root: &Root) -> Option<JwksSettings> {
        type D = JwksSettings;
        let raw = self.optional::<RawJwks>(root, "jwks", RawJwks::default())?;
        let refresh = raw
            .refresh_interval_seconds
            .unwrap_or(D::DEFAULT_REFRESH_INTERVAL_SECONDS);
        if refresh < 10 {
            self.problem("jwks.refresh_interval_seconds", "must be at least 10");
        }
        let fetch_timeout = raw.fetch_timeout_ms.unwrap_or(D::DEFAULT_FETCH_TIMEOUT_MS);
        if !(100..=60_000).contains(&fetch_timeout) {
            self.problem("jwks.fetch_timeout_ms", "must be between 100 and 60000");
        }
        let max_bytes = raw.max_bytes.unwrap_or(D::DEFAULT_MAX_BYTES);
        if !(1024..=16 * 1024 * 1024).contains(&max_bytes) {
            self.problem("jwks.max_bytes", "must be between 1024 and 16777216");
        }
        let max_stale = raw
            .max_stale_seconds
            .unwrap_or(D::DEFAULT_MAX_STALE_SECONDS);
        if max_stale != 0 && max_stale < refresh {
            self.problem(
                "jwks.max_stale_seconds",
                "must be 0 (never) or at least jwks.refresh_interval_seconds",
            );
        }
        Some(JwksSettings {
            refresh_interval: Duration::from_secs(refresh),
            kid_miss_min_interval: Duration::from_secs(
                raw.kid_miss_min_interval_seconds
                    .unwrap_or(D::DEFAULT_KID_MISS_MIN_INTERVAL_SECONDS),
            ),
            fetch_timeout: Duration::from_millis(fetch_timeout),
            max_bytes,
            max_stale: Duration::from_secs(max_stale),
        })
    }
}

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

/// Longest pool id accepted when `issuer` and `jwks_url` are both set: the limit AWS
/// puts on a `UserPoolId`.
pub const MAX_POOL_ID_LEN: usize = 55;

/// An id that derives nothing (an emulator's, with `issuer` and `jwks_url` set): it
/// only names the pool in metrics and logs, so it stays short and label-safe.
fn is_emulator_pool_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_POOL_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a JWKS URL is refused (each names the URL).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum JwksUrlError {
    /// Not parseable as a URI.
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    /// No host to fetch from.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// Plain http to a host that is not loopback, without `allow_insecure_jwks`.
    #[error(
        "{0:?} uses plain http to a non-loopback host; use https or set allow_insecure_jwks = true"
    )]
    InsecureHttp(String),
    /// Neither https nor http.
    #[error("{0:?} must be an https:// URL")]
    NotHttps(String),
}

/// JWKS URLs must be https, or plain http to a loopback host, or plain http with opt-in.
fn check_jwks_url(url: &str, allow_insecure: bool) -> Result<(), JwksUrlError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| JwksUrlError::NotAUrl(url.to_owned()))?;
    let host = uri
        .host()
        .ok_or_else(|| JwksUrlError::NoHost(url.to_owned()))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_insecure || is_loopback_host(host) => Ok(()),
        Some("http") => Err(JwksUrlError::InsecureHttp(url.to_owned())),
        _ => Err(JwksUrlError::NotHttps(url.to_owned())),
    }
}

/// `localhost` or a loopback IP literal (brackets allowed).
pub(super) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

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
        assert_eq!(p.max_lifetime_seconds, 86_400);
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
    fn jwks_url_problems_name_the_url() {
        let msg = |url: &str| check_jwks_url(url, false).map_err(|e| e.to_string());
        assert_eq!(msg("https://x/j"), Ok(()));
        assert_eq!(msg("http://[::1]/j"), Ok(()));
        assert_eq!(msg("a b"), Err("\"a b\" is not a URL".to_owned()));
        assert_eq!(msg("/j"), Err("\"/j\" has no host".to_owned()));
        assert_eq!(
            msg("http://x/j"),
            Err(
                "\"http://x/j\" uses plain http to a non-loopback host; use https or set \
                 allow_insecure_jwks = true"
                    .to_owned()
            )
        );
        assert_eq!(
            msg("ftp://x/j"),
            Err("\"ftp://x/j\" must be an https:// URL".to_owned())
        );
    }

    #[test]
    fn pool_ids_name_their_region() {
        assert_eq!(parse_pool_id("eu-west-1_Abc1"), Some("eu-west-1"));
        assert_eq!(parse_pool_id("us-gov-west-1_X"), Some("us-gov-west-1"));
        for bad in [
            "bad",
            "us-east_X",
            "us-east-1_",
            "us-east-1_a-b",
            "-us-east-1_X",
        ] {
            assert_eq!(parse_pool_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_emulator_pool_id_is_accepted_when_issuer_and_jwks_url_are_both_set() {
        let local = MIN.replace("us-east-1_AbCdEf123", "local_4qnW86eo");
        let both = "issuer = \"http://localhost:9229/local_4qnW86eo\"\n\
                    jwks_url = \"http://127.0.0.1:9229/local_4qnW86eo/.well-known/jwks.json\"";
        let cfg = Config::from_toml(&format!("{local}\n{both}")).expect("valid");
        let p = &cfg.pools[0];
        assert_eq!(p.id, "local_4qnW86eo");
        assert_eq!(p.name, "local_4qnW86eo");
        assert_eq!(p.issuers, ["http://localhost:9229/local_4qnW86eo"]);
        assert_eq!(
            p.jwks_url,
            "http://127.0.0.1:9229/local_4qnW86eo/.well-known/jwks.json"
        );
    }

    #[test]
    fn an_emulator_pool_id_without_both_overrides_is_refused_with_the_way_out() {
        let local = MIN.replace("us-east-1_AbCdEf123", "local_4qnW86eo");
        let want = "pools[0].id: \"local_4qnW86eo\" is not a Cognito user pool id like \
                    us-east-1_AbCdEf123 (set issuer and jwks_url for emulators)";
        for only in [
            "",
            "issuer = \"http://localhost:9229/local_4qnW86eo\"",
            "jwks_url = \"http://127.0.0.1:9229/local_4qnW86eo/.well-known/jwks.json\"",
        ] {
            assert_eq!(problems(&format!("{local}\n{only}")), [want], "{only:?}");
        }
    }

    #[test]
    fn an_emulator_pool_id_is_still_limited_in_length_and_characters() {
        let both = "issuer = \"http://localhost:9229/p\"\n\
                    jwks_url = \"http://127.0.0.1:9229/p/.well-known/jwks.json\"";
        let with_id = |id: &str| {
            problems(&format!(
                "{}\n{both}",
                MIN.replace("\"us-east-1_AbCdEf123\"", &format!("{id:?}"))
            ))
        };
        let longest = "a".repeat(MAX_POOL_ID_LEN);
        for good in [
            "local_4qnW86eo",
            "us-east-1_AbC",
            "my-pool",
            "X",
            longest.as_str(),
        ] {
            assert!(with_id(good).is_empty(), "{good}: {:?}", with_id(good));
        }
        let too_long = "a".repeat(MAX_POOL_ID_LEN + 1);
        for bad in [
            "",
            "local pool",
            "local/../x",
            "p\u{e9}",
            "a.b",
            too_long.as_str(),
        ] {
            let p = with_id(bad);
            assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
            assert!(
                p[0].starts_with("pools[0].id: ")
                    && p[0].ends_with("must be 1 to 55 characters of A-Z, a-z, 0-9, '_' and '-'"),
                "{bad:?}: {p:?}"
            );
        }
    }

    #[test]
    fn jwks_defaults_and_bounds() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert_eq!(cfg.jwks.refresh_interval, Duration::from_secs(3600));
        assert_eq!(cfg.jwks.kid_miss_min_interval, Duration::from_secs(10));
        assert_eq!(cfg.jwks.fetch_timeout, Duration::from_millis(3000));
        assert_eq!(cfg.jwks.max_bytes, 64 * 1024);
        assert_eq!(cfg.jwks.max_stale, Duration::from_secs(86_400));
        let p = problems(&format!(
            "{MIN}\n[jwks]\nrefresh_interval_seconds = 600\nmax_stale_seconds = 60"
        ));
        assert_eq!(
            p,
            ["jwks.max_stale_seconds: must be 0 (never) or at least jwks.refresh_interval_seconds"]
        );
    }
}
