//! The compiled, immutable policy: pools by issuer, routes in match order, and the
//! limits the decision applies; built once per configuration.

use std::collections::HashMap;

use http::Method;

use crate::config::{AuthMode, Config, PathMatch, PreflightMode, RouteConfig, TokenUse};
use crate::jwks::{KeySet, KeysSnapshot};
use crate::path;

#[derive(Debug, Clone)]
pub(super) struct PoolPolicy {
    pub(super) name: String,
    pub(super) client_ids: Vec<String>,
    pub(super) token_use: Vec<TokenUse>,
    pub(super) leeway: i64,
    pub(super) max_lifetime: i64,
}

/// The compiled, immutable policy [`super::authorize`] applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(super) pools: Vec<PoolPolicy>,
    pub(super) issuers: HashMap<String, usize>,
    pub(super) routes: Vec<RouteConfig>,
    pub(super) default_route: RouteConfig,
    pub(super) max_token_bytes: usize,
    pub(super) preflight: PreflightMode,
    pub(super) max_stale: i64,
    pub(super) strict_path: bool,
    pub(super) alb: Option<super::alb::AlbPolicy>,
}

impl Policy {
    /// Compiles the policy from a validated configuration.
    #[must_use]
    pub fn from_config(cfg: &Config) -> Self {
        let mut issuers = HashMap::new();
        let pools = cfg
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                for iss in &p.issuers {
                    issuers.insert(iss.clone(), i);
                }
                PoolPolicy {
                    name: p.name.clone(),
                    client_ids: p.client_ids.clone(),
                    token_use: p.token_use.clone(),
                    leeway: secs(p.leeway_seconds),
                    max_lifetime: secs(p.max_lifetime_seconds),
                }
            })
            .collect();
        // `[alb] access_token`: the load balancer's access token is one more source on
        // every route.
        let alb_source = cfg.alb.as_ref().filter(|a| a.access_token).map(|_| {
            crate::config::TokenSource::Header(http::HeaderName::from_static(
                "x-amzn-oidc-accesstoken",
            ))
        });
        let with_alb = |sources: &std::sync::Arc<[crate::config::TokenSource]>| match &alb_source {
            Some(s) if !sources.contains(s) => {
                let mut v = sources.to_vec();
                v.push(s.clone());
                v.into()
            }
            _ => std::sync::Arc::clone(sources),
        };
        let routes = cfg
            .routes
            .iter()
            .map(|r| RouteConfig {
                token_sources: with_alb(&r.token_sources),
                ..r.clone()
            })
            .collect();
        let alb = cfg.alb.as_ref().and_then(|a| {
            a.data.as_ref().map(|d| super::alb::AlbPolicy {
                signer_arn: d.signer_arn.clone(),
                leeway: secs(d.leeway_seconds),
                identity_from_data: !a.access_token,
            })
        });
        Self {
            pools,
            issuers,
            alb,
            routes,
            default_route: RouteConfig {
                path: "/".to_owned(),
                path_match: PathMatch::Prefix,
                methods: Vec::new(),
                auth: AuthMode::Required,
                groups: Vec::new(),
                scopes: Vec::new(),
                token_use: Vec::new(),
                websocket: false,
                token_query_param: String::new(),
                token_cookie: String::new(),
                token_sources: with_alb(&cfg.token_sources),
                mode: cfg.mode,
            },
            max_token_bytes: cfg.limits.max_token_bytes,
            preflight: cfg.cors_preflight,
            max_stale: i64::try_from(cfg.jwks.max_stale.as_secs()).unwrap_or(i64::MAX),
            strict_path: cfg.strict_path_encoding,
        }
    }

    /// The route rule that governs a canonical path and method (first match wins;
    /// unmatched paths need a valid token).
    ///
    /// Public and optional rules match only if the path matches them case-sensitively
    /// as is, with `;params` stripped, and in the most generous backend's reading
    /// ([`path::backend_reading`]); rules that require a token match if any reading of
    /// the path (case, params, trailing dots, decoding, trimming) reaches them. Whatever
    /// the backend's reading, it cannot end up less protected than the rule it resembles.
    ///
    /// A rule that lists `GET` also covers `HEAD`: backends answer `HEAD` with the `GET`
    /// handler, so `HEAD` never gets fewer restrictions than `GET`.
    #[must_use]
    pub fn route(&self, method: &Method, canonical: &str) -> &RouteConfig {
        let stripped = path::strip_params(canonical);
        let reading = path::backend_reading(canonical);
        let head = *method == Method::HEAD;
        self.routes
            .iter()
            .find(|r| {
                if !r.methods.is_empty()
                    && !r
                        .methods
                        .iter()
                        .any(|m| m == method.as_str() || (head && m == "GET"))
                {
                    return false;
                }
                let exact = r.path_match == PathMatch::Exact;
                match r.auth {
                    AuthMode::Public | AuthMode::Optional => {
                        path::matches_strict(&r.path, exact, canonical)
                            && stripped
                                .as_deref()
                                .is_some_and(|s| path::matches_strict(&r.path, exact, s))
                            && reading
                                .as_deref()
                                .is_some_and(|s| path::matches_strict(&r.path, exact, s))
                    }
                    AuthMode::Required | AuthMode::Login => {
                        path::matches_lenient(&r.path, exact, canonical)
                            || stripped
                                .as_deref()
                                .is_some_and(|s| path::matches_lenient(&r.path, exact, s))
                            || reading
                                .as_deref()
                                .is_some_and(|s| path::matches_lenient(&r.path, exact, s))
                    }
                }
            })
            .unwrap_or(&self.default_route)
    }

    /// The `route` metric label of a rule [`Policy::route`] returned: its configured
    /// `path`, or `default` for the implicit rule.
    #[must_use]
    pub fn route_label<'a>(&self, route: &'a RouteConfig) -> &'a str {
        if std::ptr::eq(route, &self.default_route) {
            crate::config::DEFAULT_ROUTE_LABEL
        } else {
            &route.path
        }
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn usable(
    keys: &KeysSnapshot,
    pool: usize,
    now: i64,
    max_stale: i64,
) -> Option<&KeySet> {
    let p = keys.pools.get(pool)?;
    let set = p.keys.as_deref()?;
    if max_stale > 0 && now.saturating_sub(p.fetched_at) > max_stale {
        return None;
    }
    Some(set)
}
