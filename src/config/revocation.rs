//! `[revocation_check]` (how the online revocation check of access tokens runs: cache
//! window, timeout, concurrency, failure mode) and the per-pool keys that turn it on
//! (`pools[].revocation_check`, `pools[].idp_endpoint`): typed settings, defaults and
//! checks. The check itself is in `src/revocation/`.

use std::time::Duration;

use serde::Deserialize;

use super::TokenUse;
use super::validate::{Root, Validator};

/// What an admitted access token gets when its revocation cannot be checked (the
/// endpoint timed out, failed, throttled, or the concurrency bound was reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse with 503 `temporarily_unavailable` and `Retry-After` (the default: a
    /// token that may be revoked is not admitted).
    #[default]
    Closed,
    /// Admit on the signature check alone (availability first).
    Open,
}

/// `[revocation_check]`: how the online check runs for the pools that turn it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    /// How long an answer (valid or revoked) is remembered per token; never past the
    /// token's `exp`.
    pub cache: Duration,
    /// Whole-call timeout (connect, request, answer).
    pub timeout: Duration,
    /// Most calls in flight at once; a check over it counts as unavailable.
    pub max_concurrent: usize,
    /// What a check that cannot be made gives.
    pub failure_mode: FailureMode,
}

/// Defaults and bounds of the `[revocation_check]` keys, in the keys' units.
impl RevocationSettings {
    /// `cache_seconds`.
    pub const DEFAULT_CACHE_SECONDS: u64 = 60;
    /// Largest `cache_seconds` (an hour: longer only delays a revocation).
    pub const MAX_CACHE_SECONDS: u64 = 3600;
    /// `timeout_ms`.
    pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
    /// `max_concurrent`.
    pub const DEFAULT_MAX_CONCURRENT: usize = 32;
}

impl Default for RevocationSettings {
    fn default() -> Self {
        Self {
            cache: Duration::from_secs(Self::DEFAULT_CACHE_SECONDS),
            timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            max_concurrent: Self::DEFAULT_MAX_CONCURRENT,
            failure_mode: FailureMode::Closed,
        }
    }
}

/// `[revocation_check]` as serde reads it (kept here rather than in `raw.rs`: the
/// section is read by this file only).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRevocation {
    cache_seconds: Option<u64>,
    timeout_ms: Option<u64>,
    max_concurrent: Option<usize>,
    failure_mode: Option<FailureMode>,
}

/// The Cognito user-pool API endpoint of a region (where `GetUser` is served).
#[must_use]
pub fn default_idp_endpoint(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/")
}

impl Validator {
    /// `[revocation_check]`.
    pub(super) fn revocation(&mut self, root: &Root) -> Option<RevocationSettings> {
        type D = RevocationSettings;
        let raw =
            self.optional::<RawRevocation>(root, "revocation_check", RawRevocation::default())?;
        let cache = raw.cache_seconds.unwrap_or(D::DEFAULT_CACHE_SECONDS);
        if cache > D::MAX_CACHE_SECONDS {
            self.problem(
                "revocation_check.cache_seconds",
                format!("must be at most {}", D::MAX_CACHE_SECONDS),
            );
        }
        let timeout = raw.timeout_ms.unwrap_or(D::DEFAULT_TIMEOUT_MS);
        if !(50..=30_000).contains(&timeout) {
            self.problem(
                "revocation_check.timeout_ms",
                "must be between 50 and 30000",
            );
        }
        let max_concurrent = raw.max_concurrent.unwrap_or(D::DEFAULT_MAX_CONCURRENT);
        if !(1..=4096).contains(&max_concurrent) {
            self.problem(
                "revocation_check.max_concurrent",
                "must be between 1 and 4096",
            );
        }
        Some(RevocationSettings {
            cache: Duration::from_secs(cache),
            timeout: Duration::from_millis(timeout),
            max_concurrent,
            failure_mode: raw.failure_mode.unwrap_or_default(),
        })
    }

    /// `pools[i].revocation_check` and `pools[i].idp_endpoint` (`key` is `pools[i]`):
    /// the endpoint, given or derived from the `region`; a problem when the check is on
    /// for a pool that takes no access tokens or has no endpoint. The URL rules are the
    /// `jwks_url` ones (`check`).
    pub(super) fn pool_revocation(
        &mut self,
        key: &str,
        check: bool,
        endpoint: Option<&str>,
        region: Option<&str>,
        token_use: &[TokenUse],
        check_url: impl Fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        if check && !token_use.contains(&TokenUse::Access) {
            self.problem(
                &format!("{key}.revocation_check"),
                "checks access tokens only (Cognito's GetUser takes no ID token); \
                 token_use has no \"access\"",
            );
        }
        let endpoint = match (endpoint, region) {
            (Some(e), _) => Some(e.to_owned()),
            (None, Some(region)) => Some(default_idp_endpoint(region)),
            (None, None) => None,
        };
        match &endpoint {
            Some(url) => {
                if let Err(e) = check_url(url) {
                    self.problem(&format!("{key}.idp_endpoint"), e);
                }
            }
            None if check => self.problem(
                &format!("{key}.idp_endpoint"),
                "required with revocation_check when the pool id names no region",
            ),
            None => {}
        }
        endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    #[test]
    fn the_check_is_off_by_default_and_the_endpoint_is_the_pools_region() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert!(!cfg.pools[0].revocation_check);
        assert_eq!(
            cfg.pools[0].idp_endpoint.as_deref(),
            Some("https://cognito-idp.us-east-1.amazonaws.com/")
        );
        assert_eq!(cfg.revocation_check, RevocationSettings::default());
        assert_eq!(cfg.revocation_check.cache, Duration::from_secs(60));
        assert_eq!(cfg.revocation_check.timeout, Duration::from_millis(2000));
        assert_eq!(cfg.revocation_check.max_concurrent, 32);
        assert_eq!(cfg.revocation_check.failure_mode, FailureMode::Closed);
    }

    #[test]
    fn the_section_reads_every_key() {
        let cfg = Config::from_toml(&format!(
            "{MIN}\nrevocation_check = true\n[revocation_check]\ncache_seconds = 5\n\
             timeout_ms = 300\nmax_concurrent = 4\nfailure_mode = \"open\""
        ))
        .expect("valid");
        assert!(cfg.pools[0].revocation_check);
        let s = &cfg.revocation_check;
        assert_eq!(s.cache, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_millis(300));
        assert_eq!(s.max_concurrent, 4);
        assert_eq!(s.failure_mode, FailureMode::Open);
    }

    #[test]
    fn bounds_are_reported_naming_their_keys() {
        let p = problems(&format!(
            "{MIN}\n[revocation_check]\ncache_seconds = 3601\ntimeout_ms = 10\n\
             max_concurrent = 0"
        ));
        assert_eq!(
            p,
            [
                "revocation_check.cache_seconds: must be at most 3600",
                "revocation_check.timeout_ms: must be between 50 and 30000",
                "revocation_check.max_concurrent: must be between 1 and 4096",
            ]
        );
        let p = problems(&format!(
            "{MIN}\n[revocation_check]\nfailure_mode = \"maybe\""
        ));
        assert!(
            p.len() == 1 && p[0].starts_with("revocation_check: ") && p[0].contains("maybe"),
            "{p:?}"
        );
    }

    #[test]
    fn a_pool_of_id_tokens_only_cannot_turn_the_check_on() {
        let ids = MIN.replace(r#"["id", "access"]"#, r#"["id"]"#);
        assert_eq!(
            problems(&format!("{ids}\nrevocation_check = true")),
            [
                "pools[0].revocation_check: checks access tokens only (Cognito's GetUser takes \
                 no ID token); token_use has no \"access\""
            ]
        );
    }

    #[test]
    fn the_endpoint_follows_the_jwks_url_rules() {
        let with = |url: &str, extra: &str| {
            problems(&format!(
                "{MIN}\nrevocation_check = true\nidp_endpoint = \"{url}\"\n{extra}"
            ))
        };
        assert!(with("http://127.0.0.1:5000/", "").is_empty());
        assert!(with("https://idp.example.com/", "").is_empty());
        assert_eq!(
            with("http://idp.internal/", ""),
            [
                "pools[0].idp_endpoint: \"http://idp.internal/\" uses plain http to a \
                 non-loopback host; use https or set allow_insecure_jwks = true"
            ]
        );
        assert!(with("http://idp.internal/", "allow_insecure_jwks = true").is_empty());
    }

    #[test]
    fn an_emulator_pool_with_the_check_needs_an_endpoint() {
        let local = MIN.replace("us-east-1_AbCdEf123", "local_4qnW86eo");
        let both = "issuer = \"http://localhost:9229/local_4qnW86eo\"\n\
                    jwks_url = \"http://127.0.0.1:9229/local_4qnW86eo/.well-known/jwks.json\"";
        let cfg = Config::from_toml(&format!("{local}\n{both}")).expect("valid");
        assert_eq!(cfg.pools[0].idp_endpoint, None);
        assert_eq!(
            problems(&format!("{local}\n{both}\nrevocation_check = true")),
            [
                "pools[0].idp_endpoint: required with revocation_check when the pool id names \
                 no region"
            ]
        );
        let given = format!(
            "{local}\n{both}\nrevocation_check = true\nidp_endpoint = \"http://127.0.0.1:9229/\""
        );
        assert!(problems(&given).is_empty(), "{:?}", problems(&given));
    }
}
