//! `[alb]`: running behind an AWS Application Load Balancer that authenticates users
//! with Cognito. Typed settings, defaults and checks: which ALB headers count as
//! credentials (the access token it forwards, the data header it signs), the load
//! balancer whose signature is trusted, and where its public keys are fetched.

use std::time::Duration;

use super::raw::RawAlb;
use super::validate::{Root, Validator};
use super::{MAX_LEEWAY_SECONDS, PoolConfig, TokenUse};

/// Settings for requests that come through an authenticating ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbSettings {
    /// Take `x-amzn-oidc-accesstoken` (a Cognito access token) as a credential,
    /// verified like a bearer token under the same pool rules.
    pub access_token: bool,
    /// Verify `x-amzn-oidc-data`; `None` when `verify_data = false`.
    pub data: Option<AlbDataSettings>,
}

/// How `x-amzn-oidc-data` is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbDataSettings {
    /// The only load balancer whose signature is accepted (its `signer` ARN).
    pub signer_arn: String,
    /// Region of the key endpoint (default: the ARN's).
    pub region: String,
    /// Keys are fetched from this URL + `kid`; ends with `/`.
    pub public_key_url: String,
    /// Timeout of one key fetch.
    pub key_fetch_timeout: Duration,
    /// Clock skew allowed on `exp`, in seconds.
    pub leeway_seconds: u64,
}

/// Defaults of the optional `[alb]` keys.
impl AlbSettings {
    /// `key_fetch_timeout_ms` (100 to 60000).
    pub const DEFAULT_KEY_FETCH_TIMEOUT_MS: u64 = 3000;
    /// `leeway_seconds` (at most [`MAX_LEEWAY_SECONDS`]).
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

    /// Default `public_key_url` of a region (the ELB public-key endpoint).
    #[must_use]
    pub fn default_public_key_url(region: &str) -> String {
        format!("https://public-keys.auth.elb.{region}.amazonaws.com/")
    }
}

/// A region name like `eu-west-1` or `us-gov-west-1`.
fn is_region(r: &str) -> bool {
    r.split('-').count() >= 3
        && r.split('-').all(|p| !p.is_empty())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The region of an ALB ARN:
/// `arn:aws[-a-z]*:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>`.
fn alb_arn_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [
        "arn",
        partition,
        "elasticloadbalancing",
        region,
        account,
        resource,
    ] = parts[..]
    else {
        return None;
    };
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        });
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let resource_ok = resource
        .strip_prefix("loadbalancer/app/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(name, id)| {
            (1..=32).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-')
                && (1..=32).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    (partition_ok && is_region(region) && account_ok && resource_ok).then_some(region)
}

/// `public_key_url`: https (or http to loopback, or with opt-in), a host, no
/// credentials, query or fragment, ending with `/` (the `kid` is appended).
fn check_public_key_url(url: &str, allow_insecure: bool) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    let Some(authority) = uri.authority() else {
        return Err("must name a host");
    };
    if authority.as_str().contains('@') {
        return Err("must not carry credentials");
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_insecure || super::pools::is_loopback_host(authority.host()) => {}
        Some("http") => {
            return Err(
                "uses plain http to a non-loopback host; use https or set allow_insecure_public_key_url = true",
            );
        }
        _ => return Err("must be an https:// URL"),
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not have a query or fragment");
    }
    if !url.ends_with('/') {
        return Err("must end with '/' (the key id is appended)");
    }
    Ok(())
}

impl Validator {
    /// `[alb]` (absent: `Some(None)`); `pools` are the pools that validated.
    pub(super) fn alb(
        &mut self,
        root: &Root,
        pools: Option<&[PoolConfig]>,
    ) -> Option<Option<AlbSettings>> {
        let Some(value) = root.get("alb") else {
            return Some(None);
        };
        let raw = self.get::<RawAlb>("alb", Some(value))?;
        let before = self.problems.len();
        let access_token = raw.access_token;
        if !raw.access_token && !raw.verify_data {
            self.problem(
                "alb",
                "set access_token = true, verify_data = true or both (or remove [alb])",
            );
        }
        if raw.access_token
            && pools.is_some_and(|ps| !ps.iter().any(|p| p.token_use.contains(&TokenUse::Access)))
        {
            self.problem(
                "alb.access_token",
                "no pool accepts access tokens (add \"access\" to a pool's token_use)",
            );
        }
        let data = if raw.verify_data {
            self.alb_data(raw)
        } else {
            for (key, set) in [
                ("alb.signer_arn", raw.signer_arn.is_some()),
                ("alb.region", raw.region.is_some()),
                ("alb.public_key_url", raw.public_key_url.is_some()),
                (
                    "alb.allow_insecure_public_key_url",
                    raw.allow_insecure_public_key_url,
                ),
                (
                    "alb.key_fetch_timeout_ms",
                    raw.key_fetch_timeout_ms.is_some(),
                ),
                ("alb.leeway_seconds", raw.leeway_seconds.is_some()),
            ] {
                if set {
                    self.problem(key, "only applies with verify_data = true");
                }
            }
            None
        };
        (self.problems.len() == before).then_some(Some(AlbSettings { access_token, data }))
    }

    /// The `verify_data` keys of `[alb]`.
    fn alb_data(&mut self, raw: RawAlb) -> Option<AlbDataSettings> {
        let before = self.problems.len();
        let arn_region = match &raw.signer_arn {
            None => {
                self.problem("alb.signer_arn", "required with verify_data = true");
                None
            }
            Some(arn) => {
                let region = alb_arn_region(arn);
                if region.is_none() {
                    self.problem(
                        "alb.signer_arn",
                        "must be an ALB ARN like arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>",
                    );
                }
                region.map(str::to_owned)
            }
        };
        let region = match raw.region {
            Some(r) if is_region(&r) => Some(r),
            Some(_) => {
                self.problem("alb.region", "must be a region like eu-west-1");
                None
            }
            None => arn_region,
        };
        let public_key_url = raw
            .public_key_url
            .or_else(|| region.as_deref().map(AlbSettings::default_public_key_url));
        if let Some(url) = &public_key_url
            && let Err(msg) = check_public_key_url(url, raw.allow_insecure_public_key_url)
        {
            self.problem("alb.public_key_url", msg);
        }
        let timeout = raw
            .key_fetch_timeout_ms
            .unwrap_or(AlbSettings::DEFAULT_KEY_FETCH_TIMEOUT_MS);
        if !(100..=60_000).contains(&timeout) {
            self.problem("alb.key_fetch_timeout_ms", "must be between 100 and 60000");
        }
        let leeway = raw
            .leeway_seconds
            .unwrap_or(AlbSettings::DEFAULT_LEEWAY_SECONDS);
        if leeway > MAX_LEEWAY_SECONDS {
            self.problem(
                "alb.leeway_seconds",
                format!("{leeway} exceeds the maximum of {MAX_LEEWAY_SECONDS}"),
            );
        }
        if self.problems.len() != before {
            return None;
        }
        Some(AlbDataSettings {
            signer_arn: raw.signer_arn?,
            region: region?,
            public_key_url: public_key_url?,
            key_fetch_timeout: Duration::from_millis(timeout),
            leeway_seconds: leeway,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";

    fn with(alb: &str) -> Vec<String> {
        problems(&format!("{MIN}\n[alb]\n{alb}"))
    }

    #[test]
    fn alb_is_off_unless_configured() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert_eq!(cfg.alb, None);
    }

    #[test]
    fn verify_data_derives_region_and_key_url_from_the_arn() {
        let cfg = Config::from_toml(&format!(
            "{MIN}\n[alb]\nverify_data = true\nsigner_arn = \"{ARN}\""
        ))
        .expect("valid");
        let alb = cfg.alb.expect("alb");
        assert!(!alb.access_token);
        let data = alb.data.expect("data");
        assert_eq!(data.region, "eu-west-1");
        assert_eq!(
            data.public_key_url,
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/"
        );
        assert_eq!(data.key_fetch_timeout, Duration::from_millis(3000));
        assert_eq!(data.leeway_seconds, 60);
    }

    #[test]
    fn access_token_alone_needs_no_arn() {
        let cfg = Config::from_toml(&format!("{MIN}\n[alb]\naccess_token = true")).expect("valid");
        assert_eq!(
            cfg.alb,
            Some(AlbSettings {
                access_token: true,
                data: None
            })
        );
    }

    #[test]
    fn an_alb_section_that_enables_nothing_is_refused() {
        assert_eq!(
            with("leeway_seconds = 5"),
            [
                "alb: set access_token = true, verify_data = true or both (or remove [alb])",
                "alb.leeway_seconds: only applies with verify_data = true",
            ]
        );
    }

    #[test]
    fn verify_data_needs_a_well_formed_alb_arn() {
        assert_eq!(
            with("verify_data = true"),
            ["alb.signer_arn: required with verify_data = true"]
        );
        for bad in [
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/50dc6c495c0c9188",
            "arn:aws:elasticloadbalancing:eu-west-1:1234:loadbalancer/app/web/50dc6c495c0c9188",
            "arn:gcp:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web",
            "arn:aws:elasticloadbalancing:EU:123456789012:loadbalancer/app/web/50dc",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc/x",
        ] {
            let p = with(&format!("verify_data = true\nsigner_arn = \"{bad}\""));
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(
                p[0].starts_with("alb.signer_arn: must be an ALB ARN"),
                "{p:?}"
            );
        }
        assert_eq!(
            alb_arn_region(
                "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:loadbalancer/app/a-b/0f"
            ),
            Some("us-gov-west-1")
        );
    }

    #[test]
    fn the_key_url_is_https_or_loopback_and_ends_with_a_slash() {
        let url = |u: &str, extra: &str| {
            with(&format!(
                "verify_data = true\nsigner_arn = \"{ARN}\"\npublic_key_url = \"{u}\"\n{extra}"
            ))
        };
        assert!(url("http://127.0.0.1:9/keys/", "").is_empty());
        assert!(url("https://keys.internal/", "").is_empty());
        assert!(
            url(
                "http://keys.internal/",
                "allow_insecure_public_key_url = true"
            )
            .is_empty()
        );
        assert_eq!(
            url("http://keys.internal/", ""),
            [
                "alb.public_key_url: uses plain http to a non-loopback host; use https or set allow_insecure_public_key_url = true"
            ]
        );
        assert_eq!(
            url("https://keys.internal/k", ""),
            ["alb.public_key_url: must end with '/' (the key id is appended)"]
        );
        assert_eq!(
            url("https://u:p@keys.internal/", ""),
            ["alb.public_key_url: must not carry credentials"]
        );
        assert_eq!(
            url("ftp://keys.internal/", ""),
            ["alb.public_key_url: must be an https:// URL"]
        );
    }

    #[test]
    fn region_overrides_the_arn_and_bounds_are_checked() {
        let cfg = Config::from_toml(&format!(
            "{MIN}\n[alb]\nverify_data = true\nsigner_arn = \"{ARN}\"\nregion = \"us-east-2\""
        ))
        .expect("valid");
        assert_eq!(
            cfg.alb.and_then(|a| a.data).map(|d| d.public_key_url),
            Some("https://public-keys.auth.elb.us-east-2.amazonaws.com/".to_owned())
        );
        assert_eq!(
            with(&format!(
                "verify_data = true\nsigner_arn = \"{ARN}\"\nregion = \"Mars\"\nleeway_seconds = 301\nkey_fetch_timeout_ms = 5"
            )),
            [
                "alb.region: must be a region like eu-west-1",
                "alb.key_fetch_timeout_ms: must be between 100 and 60000",
                "alb.leeway_seconds: 301 exceeds the maximum of 300",
            ]
        );
    }

    #[test]
    fn access_token_needs_a_pool_that_accepts_access_tokens() {
        let p = problems(&format!(
            "{}\n[alb]\naccess_token = true",
            MIN.replace("[\"id\", \"access\"]", "[\"id\"]")
        ));
        assert_eq!(
            p,
            [
                "alb.access_token: no pool accepts access tokens (add \"access\" to a pool's token_use)"
            ]
        );
    }
}
