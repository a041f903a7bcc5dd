//! `cognito-sidecar verify-token`: fetches the pools' keys once and explains, in plain
//! words, whether a token would be accepted on a route, why not, and which headers the
//! backend would receive. It runs the same pure decision as the proxy, and the online
//! revocation check for pools that have it on.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;

use crate::auth::{self, Decision, Policy};
use crate::config::{Config, normalize_header_name};
use crate::headers;
use crate::jwks::Jwks;
use crate::metrics::Metrics;

/// The verdict and its explanation.
#[derive(Debug)]
pub struct Verdict {
    /// Whether the proxy would forward the request.
    pub accepted: bool,
    /// Human-readable report.
    pub report: String,
}

fn describe_time(label: &str, t: Option<i64>, now: i64, out: &mut String) {
    if let Some(t) = t {
        let d = t - now;
        let rel = if d >= 0 {
            format!("in {}", human(d))
        } else {
            format!("{} ago", human(-d))
        };
        let _ = writeln!(out, "  {label:<10} {t} ({rel})");
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Verifies `token` as the proxy would for `method` + `path`.
///
/// `pool` restricts verification to one configured pool (by name).
///
/// # Errors
/// A message if the pool name is unknown or the key store cannot be set up.
pub async fn verify_token(
    config: &Config,
    pool: Option<&str>,
    token: &str,
    method: &str,
    path: &str,
) -> Result<Verdict, String> {
    let mut cfg = config.clone();
    if let Some(name) = pool {
        cfg.pools.retain(|p| p.name == name);
        if cfg.pools.is_empty() {
            let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no pool named {name:?} (configured: {})",
                names.join(", ")
            ));
        }
    }
    let token = token.trim();
    let mut out = String::new();
    let now = crate::clock::unix_now();

    // What the token says, before any check (operators need to see it).
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() == 3 {
        let decode = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        };
        if let Some(h) = decode(segments[0]) {
            let _ = writeln!(out, "header:   {h}");
        }
        if let Some(c) = decode(segments[1]) {
            let _ = writeln!(out, "claims:");
            for key in [
                "iss",
                "token_use",
                "aud",
                "client_id",
                "sub",
                "username",
                "cognito:username",
                "cognito:groups",
                "scope",
            ] {
                if let Some(v) = c.get(key) {
                    let _ = writeln!(out, "  {key:<10} {v}");
                }
            }
            describe_time(
                "iat",
                c.get("iat").and_then(serde_json::Value::as_i64),
                now,
                &mut out,
            );
            describe_time(
                "nbf",
                c.get("nbf").and_then(serde_json::Value::as_i64),
                now,
                &mut out,
            );
            describe_time(
                "exp",
                c.get("exp").and_then(serde_json::Value::as_i64),
                now,
                &mut out,
            );
            if let Some(iss) = c.get("iss").and_then(serde_json::Value::as_str) {
                match cfg
                    .pools
                    .iter()
                    .find(|p| p.issuers.iter().any(|i| i == iss))
                {
                    Some(p) => {
                        let _ = writeln!(out, "pool:     {} (keys from {})", p.name, p.jwks_url);
                    }
                    None => {
                        let _ =
                            writeln!(out, "pool:     none: no configured pool has issuer {iss}");
                        for p in &cfg.pools {
                            let _ = writeln!(
                                out,
                                "          {} accepts {}",
                                p.name,
                                p.issuers.join(", ")
                            );
                        }
                    }
                }
            }
        }
    }

    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let jwks =
        Jwks::new(&cfg.pools, cfg.jwks.clone(), Arc::clone(&metrics)).map_err(|e| e.to_string())?;
    for (i, p) in cfg.pools.iter().enumerate() {
        match jwks.refresh_now(i).await {
            Ok(n) => {
                let _ = writeln!(out, "keys:     {}: {n} usable key(s) fetched", p.name);
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "keys:     {}: JWKS fetch from {} failed: {e}",
                    p.name, p.jwks_url
                );
            }
        }
    }

    let policy = Policy::from_config(&cfg);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .map_err(|e| format!("bad --method or --path: {e}"))?;
    let (parts, ()) = request.into_parts();
    let mut decision = auth::authorize(&parts, now, &jwks.snapshot(), &policy);
    // The online revocation check too, as the proxy makes it (pools with it on).
    let revocation = crate::revocation::Revocation::from_config(&cfg, &metrics);
    if let Some(r) = revocation.map_err(|e| e.to_string())? {
        decision = r.filter(&parts, &policy, decision).await;
    }
    // The deny-list as read with the configuration, as the proxy would apply it.
    let decision = match decision {
        Decision::Allow(a)
            if a.identity
                .as_ref()
                .zip(cfg.deny_list.as_ref())
                .is_some_and(|(i, d)| crate::deny_list::listed(i, &d.list).is_some()) =>
        {
            Decision::Deny(auth::Denial::Revoked)
        }
        d => d,
    };
    let _ = writeln!(out, "request:  {method} {path}");
    match decision {
        Decision::Deny(d) => {
            let _ = writeln!(out, "verdict:  REJECTED ({})", d.reason());
            let _ = writeln!(out, "why:      {}", d.explain());
            Ok(Verdict {
                accepted: false,
                report: out,
            })
        }
        Decision::Allow(a) => {
            let _ = writeln!(out, "verdict:  ACCEPTED ({})", a.admit.label());
            if let Some(identity) = &a.identity {
                let mut h = HeaderMap::new();
                headers::inject_identity(&mut h, identity, &cfg.identity);
                let _ = writeln!(out, "the backend would receive:");
                let mut names: Vec<_> = h.iter().collect();
                names.sort_by_key(|(k, _)| k.as_str());
                for (k, v) in names {
                    let _ = writeln!(out, "  {}: {}", k, v.to_str().unwrap_or("?"));
                }
                let managed: Vec<String> = cfg
                    .identity
                    .managed_headers()
                    .iter()
                    .map(|h| normalize_header_name(h.as_str()))
                    .collect();
                let _ = writeln!(
                    out,
                    "  (client-sent {}{} headers are removed first{})",
                    cfg.identity
                        .header_prefix
                        .as_deref()
                        .map_or(String::new(), |p| format!("{p}* and ")),
                    managed.join(", "),
                    if cfg.identity.forward_authorization {
                        ""
                    } else {
                        "; Authorization is not forwarded"
                    }
                );
            }
            Ok(Verdict {
                accepted: true,
                report: out,
            })
        }
    }
}
