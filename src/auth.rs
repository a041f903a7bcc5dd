//! PURE: the allow/deny decision. [`authorize`] takes the request head, the time, the
//! key snapshot and the compiled [`Policy`], and returns a [`Decision`]; it does no I/O
//! and reads no clock, so every denial reason is unit-tested with a fixed `now`.
//!
//! Order of checks: method, path canonicalisation, route selection, CORS preflight,
//! credential extraction (RFC 6750), token shape and header, issuer -> pool, key by
//! `kid` from that pool only, signature, typed claims, time, `token_use`, client, then
//! the route's token kinds, groups and scopes.

use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use http::{Method, header};

use crate::config::{AuthMode, Config, PathMatch, PreflightMode, RouteConfig, TokenUse};
use crate::credential;
use crate::jwks::KeysSnapshot;
use crate::path;
use crate::token::{self, Claims, TokenError};

/// Why a request is refused. Each reason has its own status, challenge and metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Path with forbidden encodings, climbing above `/`, or not origin-form.
    BadPath,
    /// `CONNECT` or `TRACE`.
    MethodNotAllowed,
    /// A method spelled with lower-case letters (`get`, `Delete`): methods are
    /// case-sensitive, rules name them in upper case, and backends that fold case would
    /// run a handler under fewer restrictions than its canonical spelling gets.
    BadMethod,
    /// Two `Authorization` headers, an empty or non-b64token bearer credential, or a
    /// token in both the header and the query.
    InvalidRequest,
    /// No bearer token on a route that needs one.
    Missing,
    /// Bearer token longer than `limits.max_token_bytes`.
    TooLarge,
    /// Not a compact JWS of JSON objects, or duplicate members.
    Malformed,
    /// `alg` other than `RS256`.
    BadAlgorithm,
    /// Header parameter never accepted (`crit`, `jku`, `jwk`, `x5u`, `x5c`, `cty`, ...).
    BadHeader,
    /// No `kid`, or an oversized one.
    MissingKid,
    /// `iss` missing or not a configured issuer.
    WrongIssuer,
    /// `kid` not in the issuing pool's key set.
    UnknownKid {
        /// Index of the pool whose keys were searched.
        pool: usize,
    },
    /// Signature does not verify.
    BadSignature,
    /// A claim missing, duplicated or of the wrong type.
    BadClaims,
    /// `exp` passed (beyond the leeway).
    Expired,
    /// `nbf` in the future (beyond the leeway).
    NotYetValid,
    /// `iat` in the future (beyond the leeway).
    IssuedInFuture,
    /// `exp - iat` longer than the pool's `max_lifetime_seconds`.
    LifetimeTooLong,
    /// `token_use` not accepted by the pool or route.
    WrongTokenUse,
    /// `aud` / `client_id` not a configured app client.
    WrongClient,
    /// The pool has no usable keys (never loaded, or stale past `max_stale_seconds`).
    KeysUnavailable,
    /// Valid token without a required group.
    Forbidden,
    /// Valid token without a required scope.
    InsufficientScope {
        /// The route's scopes, space-separated, for the challenge.
        scopes: String,
    },
    /// A valid ID token on a route that requires scopes: scopes are an access-token
    /// property, so only an access token can meet them.
    ScopesNeedAccessToken {
        /// The route's scopes, space-separated, for the challenge.
        scopes: String,
    },
}

impl Denial {
    /// The token verified but the route refused it: whatever a cache remembers about
    /// the token stays true.
    #[must_use]
    pub fn is_route_refusal(&self) -> bool {
        matches!(
            self,
            Self::Forbidden
                | Self::InsufficientScope { .. }
                | Self::ScopesNeedAccessToken { .. }
                | Self::WrongTokenUse
        )
    }

    /// Bounded metric label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadPath => "bad_path",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadMethod => "bad_method",
            Self::InvalidRequest => "invalid_request",
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BadAlgorithm => "bad_algorithm",
            Self::BadHeader => "bad_header",
            Self::MissingKid => "missing_kid",
            Self::WrongIssuer => "wrong_issuer",
            Self::UnknownKid { .. } => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::BadClaims => "bad_claims",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::WrongTokenUse => "wrong_token_use",
            Self::WrongClient => "wrong_client",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::ScopesNeedAccessToken { .. } => "scopes_need_access_token",
        }
    }

    /// A plain-words explanation for operators (`verify-token`, never sent to clients).
    #[must_use]
    pub fn explain(&self) -> &'static str {
        match self {
            Self::BadPath => {
                "the path has an encoding the proxy refuses (%2F, %5C, \\, %00, control bytes) or climbs above /"
            }
            Self::MethodNotAllowed => "CONNECT and TRACE are never forwarded",
            Self::BadMethod => {
                "the method is not spelled in upper case (methods are case-sensitive; a backend that folds case would bypass rules written for the upper-case method)"
            }
            Self::InvalidRequest => {
                "the request offers the credential ambiguously: two Authorization headers, an empty or non-b64token bearer value, or a token in more than one place"
            }
            Self::Missing => {
                "no bearer token was sent (tokens are read from the Authorization header unless the route opts in to a query parameter or cookie)"
            }
            Self::TooLarge => "the token is longer than limits.max_token_bytes",
            Self::Malformed => {
                "the token is not a compact JWS of three base64url JSON segments (or has duplicate JSON members)"
            }
            Self::BadAlgorithm => "the token's alg is not RS256 (Cognito signs with RS256 only)",
            Self::BadHeader => {
                "the token header carries a parameter that is never accepted (jku, x5u, jwk, x5c, crit, cty, enc, zip, ...)"
            }
            Self::MissingKid => "the token header has no kid (or one longer than 256 bytes)",
            Self::WrongIssuer => {
                "the token's iss is not the exact issuer of any configured pool (check region, pool id, trailing slash, and the issuer format: cognito-idp vs issuer-cognito-idp)"
            }
            Self::UnknownKid { .. } => {
                "the issuing pool's JWKS has no key with this kid, even after a refresh (token from another pool or environment?)"
            }
            Self::BadSignature => {
                "the signature does not verify with the pool's key: the token was altered or signed by someone else"
            }
            Self::BadClaims => {
                "a required claim is missing or of the wrong JSON type (iss, sub, exp, iat as integers, token_use, aud for ID tokens / client_id for access tokens)"
            }
            Self::Expired => {
                "the token has expired (exp plus the pool's leeway is in the past); check the client's refresh logic and clock"
            }
            Self::NotYetValid => {
                "the token's nbf is in the future beyond the leeway: check clock skew"
            }
            Self::IssuedInFuture => {
                "the token's iat is in the future beyond the leeway: check clock skew"
            }
            Self::LifetimeTooLong => "exp - iat is longer than the pool's max_lifetime_seconds",
            Self::WrongTokenUse => {
                "the token kind (ID vs access) is not accepted by the pool's token_use or the route's token_use"
            }
            Self::WrongClient => {
                "the app client (aud of an ID token, client_id of an access token) is not in the pool's client_ids"
            }
            Self::KeysUnavailable => {
                "the pool has no usable keys yet (JWKS unreachable since start, or stale beyond jwks.max_stale_seconds)"
            }
            Self::Forbidden => {
                "the token is valid but not in any of the route's groups (cognito:groups)"
            }
            Self::InsufficientScope { .. } => {
                "the token is valid but has none of the route's scopes (scopes exist in access tokens only)"
            }
            Self::ScopesNeedAccessToken { .. } => {
                "the route requires scopes and the token is an ID token: scopes are read from access tokens only, never from an ID token's scope claim"
            }
        }
    }

    /// Every reason label, for pre-creating metric series.
    pub const REASONS: [&'static str; 24] = [
        "bad_path",
        "method_not_allowed",
        "bad_method",
        "invalid_request",
        "missing",
        "too_large",
        "malformed",
        "bad_algorithm",
        "bad_header",
        "missing_kid",
        "wrong_issuer",
        "unknown_kid",
        "bad_signature",
        "bad_claims",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "lifetime_too_long",
        "wrong_token_use",
        "wrong_client",
        "keys_unavailable",
        "forbidden",
        "insufficient_scope",
        "scopes_need_access_token",
    ];
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Name of the pool that issued the token.
    pub pool: String,
    /// The verified claims.
    pub claims: Claims,
    /// The identity headers, rendered once (a cached identity lives no longer than the
    /// configuration that rendered them).
    pub rendered: std::sync::OnceLock<Vec<(http::HeaderName, http::HeaderValue)>>,
}

/// A verification to remember: the identity and the key that verified it. A remembered
/// verification is reused only while the same key is in the pool's usable key set, and
/// the time and pool checks always run again.
#[derive(Debug)]
pub struct Remembered {
    /// Index of the issuing pool.
    pub pool: usize,
    /// `kid` of the signing key.
    pub kid: String,
    /// Fingerprint of the signing key at verification time.
    pub key_fingerprint: u64,
    /// The verified identity.
    pub identity: Arc<Identity>,
    /// Approximate bytes held.
    pub weight: u64,
}

/// Verifications made earlier, looked up by token (a cache, or nothing). Read-only: the
/// decision never changes it; the caller remembers [`Admission::learned`].
pub type Earlier<'a> = &'a dyn Fn(&str) -> Option<Arc<Remembered>>;

/// How a request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A valid token satisfied the route.
    Authenticated,
    /// Public route; credentials ignored.
    Public,
    /// Optional route without a token.
    Anonymous,
    /// CORS preflight forwarded without credentials.
    Preflight,
}

impl Admit {
    /// Metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Authenticated => "allowed",
            Self::Public => "public",
            Self::Anonymous => "anonymous",
            Self::Preflight => "preflight",
        }
    }
}

/// An admitted request.
#[derive(Debug, Clone)]
pub struct Admission {
    /// How it was admitted.
    pub admit: Admit,
    /// The canonical path that was authorised (and is forwarded).
    pub path: String,
    /// The verified caller, when there is one.
    pub identity: Option<Arc<Identity>>,
    /// Whether the token's verification came from an earlier one (`None`: no token).
    pub cached: Option<bool>,
    /// What a full verification of the token learned, for a cache to remember.
    pub learned: Option<Arc<Remembered>>,
    /// The route bridges WebSocket upgrades.
    pub websocket: bool,
    /// Query parameter the route may take a token from: removed before forwarding.
    pub token_query_param: Option<String>,
    /// Cookie the route may take a token from: removed before forwarding.
    pub token_cookie: Option<String>,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone)]
pub enum Decision {
    /// Forward.
    Allow(Admission),
    /// Answer locally.
    Deny(Denial),
}

#[derive(Debug, Clone)]
struct PoolPolicy {
    name: String,
    client_ids: Vec<String>,
    token_use: Vec<TokenUse>,
    leeway: i64,
    max_lifetime: i64,
}

/// The compiled, immutable policy [`authorize`] applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pools: Vec<PoolPolicy>,
    issuers: HashMap<String, usize>,
    routes: Vec<RouteConfig>,
    default_route: RouteConfig,
    max_token_bytes: usize,
    preflight: PreflightMode,
    max_stale: i64,
    strict_path: bool,
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
        Self {
            pools,
            issuers,
            routes: cfg.routes.clone(),
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
                    AuthMode::Required => {
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
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// RFC 6750 b64token characters: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`
/// and `=`. A credential with anything else (space, quotes, braces: a JSON-serialized
/// JWS) is a malformed *request*; `=` in the wrong place only makes a malformed *token*.
fn is_b64token(s: &str) -> bool {
    // Branch-free fold over every byte: the compiler vectorises it (a 1.6 KB token is
    // scanned on every request).
    fn ok(b: u8) -> bool {
        b.is_ascii_alphanumeric()
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
            | (b == b'=')
    }
    !s.is_empty() && s.bytes().fold(true, |all, b| all & ok(b))
}

enum Credential<'a> {
    None,
    Bearer(&'a str),
}

/// The only value of a credential source, or `Err` when it occurs more than once (two
/// credentials, even of one kind, are an invalid request).
fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, Denial> {
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(Denial::InvalidRequest),
        (first, None) => Ok(first),
        (None, Some(_)) => Ok(None),
    }
}

/// The bearer credential, from the `Authorization` header, or from the query parameter
/// or cookie a route opted in to (browsers cannot set headers on WebSockets). Offering
/// more than one is an invalid request (RFC 6750 section 2).
fn extract<'a>(parts: &'a Parts, route: &'a RouteConfig) -> Result<Credential<'a>, Denial> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let header_token = match values.next() {
        None => None,
        Some(_) if values.next().is_some() => return Err(Denial::InvalidRequest),
        Some(value) => {
            let value = value.to_str().map_err(|_| Denial::InvalidRequest)?;
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            // Basic, Digest, ...: no bearer credential was offered.
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim_start_matches(' '))
        }
    };
    let query_name = if route.token_query_param.is_empty() {
        "access_token"
    } else {
        route.token_query_param.as_str()
    };
    let query_token = match parts.uri.query() {
        Some(q) => single(credential::query_values(q, query_name))?,
        None => None,
    };
    let cookie_token = if route.token_cookie.is_empty() {
        None
    } else {
        single(credential::cookie_values(
            &parts.headers,
            &route.token_cookie,
        ))?
    };
    let accepted_query = query_token.filter(|_| !route.token_query_param.is_empty());
    let offered = [
        header_token.is_some(),
        query_token.is_some(),
        cookie_token.is_some(),
    ];
    if offered.iter().filter(|o| **o).count() > 1 {
        return Err(Denial::InvalidRequest);
    }
    Ok(match header_token.or(accepted_query).or(cookie_token) {
        Some(t) => Credential::Bearer(t),
        None => Credential::None,
    })
}

fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn usable(
    keys: &KeysSnapshot,
    pool: usize,
    now: i64,
    max_stale: i64,
) -> Option<&crate::jwks::KeySet> {
    let p = keys.pools.get(pool)?;
    let set = p.keys.as_deref()?;
    if max_stale > 0 && now.saturating_sub(p.fetched_at) > max_stale {
        return None;
    }
    Some(set)
}

/// Decides whether a request may be forwarded, and as whom: a pure function of the
/// request head, the time, the key set and the policy.
///
/// `now` is Unix time in seconds. Never performs I/O; an [`Denial::UnknownKid`] tells
/// the caller a key refresh might help.
#[must_use]
pub fn authorize(parts: &Parts, now: i64, keys: &KeysSnapshot, policy: &Policy) -> Decision {
    authorize_with(parts, now, keys, policy, &|_| None)
}

/// [`authorize`], reusing a verification made `earlier` (same decisions; a reuse saves
/// the parse and the signature check). Still pure: `earlier` is only read.
#[must_use]
pub fn authorize_with(
    parts: &Parts,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
    earlier: Earlier<'_>,
) -> Decision {
    match decide(parts, now, keys, policy, earlier) {
        Ok(a) => Decision::Allow(a),
        Err(d) => Decision::Deny(d),
    }
}

fn decide(
    parts: &Parts,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
    earlier: Earlier<'_>,
) -> Result<Admission, Denial> {
    if parts.method == Method::CONNECT || parts.method == Method::TRACE {
        return Err(Denial::MethodNotAllowed);
    }
    if parts
        .method
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
    {
        return Err(Denial::BadMethod);
    }
    if policy.strict_path {
        path::check_strict(parts.uri.path()).map_err(|_| Denial::BadPath)?;
    }
    let canonical = path::canonicalize(parts.uri.path()).map_err(|_| Denial::BadPath)?;
    let route = policy.route(&parts.method, &canonical);
    let admit = |admit, identity, cached, learned| Admission {
        admit,
        path: canonical.clone(),
        identity,
        cached,
        learned,
        websocket: route.websocket,
        token_query_param: (!route.token_query_param.is_empty())
            .then(|| route.token_query_param.clone()),
        token_cookie: (!route.token_cookie.is_empty()).then(|| route.token_cookie.clone()),
    };
    if policy.preflight == PreflightMode::Forward && is_preflight(parts) {
        return Ok(admit(Admit::Preflight, None, None, None));
    }
    if route.auth == AuthMode::Public {
        return Ok(admit(Admit::Public, None, None, None));
    }
    let token = match extract(parts, route)? {
        Credential::None if route.auth == AuthMode::Optional => {
            return Ok(admit(Admit::Anonymous, None, None, None));
        }
        Credential::None => {
            // Nothing can be verified while no pool has keys: say so instead of 401.
            let any =
                (0..policy.pools.len()).any(|i| usable(keys, i, now, policy.max_stale).is_some());
            return Err(if any {
                Denial::Missing
            } else {
                Denial::KeysUnavailable
            });
        }
        Credential::Bearer(t) => t,
    };
    if token.len() > policy.max_token_bytes {
        return Err(Denial::TooLarge);
    }
    if !is_b64token(token) {
        return Err(Denial::InvalidRequest);
    }
    let (identity, learned) = verify_reusing(token, now, keys, policy, earlier)?;
    let cached = learned.is_none();
    let claims = &identity.claims;
    if !route.token_use.is_empty() && !route.token_use.contains(&claims.token_use) {
        return Err(Denial::WrongTokenUse);
    }
    if !route.groups.is_empty() && !route.groups.iter().any(|g| claims.groups.contains(g)) {
        return Err(Denial::Forbidden);
    }
    if !route.scopes.is_empty() {
        let scopes = || route.scopes.join(" ");
        // Scopes are an access-token property (RFC 8725 3.12): an ID token never meets
        // them, whatever its payload says.
        if claims.token_use != TokenUse::Access {
            return Err(Denial::ScopesNeedAccessToken { scopes: scopes() });
        }
        if !route.scopes.iter().any(|s| claims.scopes.contains(s)) {
            return Err(Denial::InsufficientScope { scopes: scopes() });
        }
    }
    Ok(admit(
        Admit::Authenticated,
        Some(identity),
        Some(cached),
        learned,
    ))
}

/// Verifies a bearer token against the pool its `iss` names.
///
/// # Errors
/// The [`Denial`] for the first failed check.
pub fn verify(
    token: &str,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
) -> Result<Identity, Denial> {
    verify_full(token, now, keys, policy).map(|v| v.identity)
}

/// A full verification's result, with what a cache entry needs.
struct Verified {
    pool: usize,
    kid: String,
    key_fingerprint: u64,
    identity: Identity,
}

fn verify_full(
    token: &str,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
) -> Result<Verified, Denial> {
    let unverified = token::parse(token).map_err(|e| match e {
        TokenError::Algorithm => Denial::BadAlgorithm,
        TokenError::ForbiddenHeader => Denial::BadHeader,
        TokenError::Kid => Denial::MissingKid,
        TokenError::Malformed | TokenError::Claims | TokenError::Signature => Denial::Malformed,
    })?;
    let pool_idx = unverified
        .issuer()
        .and_then(|iss| policy.issuers.get(iss))
        .copied()
        .ok_or(Denial::WrongIssuer)?;
    let pool = &policy.pools[pool_idx];
    let set = usable(keys, pool_idx, now, policy.max_stale).ok_or(Denial::KeysUnavailable)?;
    // Only the issuing pool's keys are consulted (RFC 8725 3.8).
    let key = set
        .get(&unverified.kid)
        .ok_or(Denial::UnknownKid { pool: pool_idx })?;
    let key_fingerprint = set.fingerprint(&unverified.kid).unwrap_or_default();
    unverified.verify(key).map_err(|_| Denial::BadSignature)?;
    let kid = unverified.kid;
    let claims = Claims::from_payload(unverified.payload).map_err(|_| Denial::BadClaims)?;
    check_claims(&claims, pool, now)?;
    Ok(Verified {
        pool: pool_idx,
        kid,
        key_fingerprint,
        identity: Identity {
            pool: pool.name.clone(),
            claims,
            rendered: std::sync::OnceLock::new(),
        },
    })
}

/// The checks that depend on the time and the pool's settings: run on every request,
/// cached or not.
fn check_claims(claims: &Claims, pool: &PoolPolicy, now: i64) -> Result<(), Denial> {
    if now >= claims.exp.saturating_add(pool.leeway) {
        return Err(Denial::Expired);
    }
    if claims.exp < claims.iat {
        return Err(Denial::BadClaims);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(pool.leeway))
    {
        return Err(Denial::NotYetValid);
    }
    if claims.iat > now.saturating_add(pool.leeway) {
        return Err(Denial::IssuedInFuture);
    }
    if claims.exp - claims.iat > pool.max_lifetime.saturating_add(pool.leeway) {
        return Err(Denial::LifetimeTooLong);
    }
    if !pool.token_use.contains(&claims.token_use) {
        return Err(Denial::WrongTokenUse);
    }
    if !pool.client_ids.contains(&claims.client_id) {
        return Err(Denial::WrongClient);
    }
    Ok(())
}

/// [`verify`], reusing a verification made `earlier` only if the same key is still in
/// the pool's current, usable key set; the time and pool checks always run against
/// `now`. Returns the identity and, for a full verification, what to remember.
fn verify_reusing(
    token: &str,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
    earlier: Earlier<'_>,
) -> Result<(Arc<Identity>, Option<Arc<Remembered>>), Denial> {
    if let Some(entry) = earlier(token) {
        let same_key = usable(keys, entry.pool, now, policy.max_stale)
            .and_then(|set| set.fingerprint(&entry.kid))
            == Some(entry.key_fingerprint);
        if same_key && let Some(pool) = policy.pools.get(entry.pool) {
            check_claims(&entry.identity.claims, pool, now)?;
            return Ok((Arc::clone(&entry.identity), None));
        }
    }
    let v = verify_full(token, now, keys, policy)?;
    let identity = Arc::new(v.identity);
    let learned = Remembered {
        pool: v.pool,
        kid: v.kid,
        key_fingerprint: v.key_fingerprint,
        identity: Arc::clone(&identity),
        // Measured: decoded claims and their map take about four times the token's
        // size, plus fixed overhead (bench/PROFILE.md).
        weight: token.len() as u64 * 4 + 1024,
    };
    Ok((identity, Some(Arc::new(learned))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::DevIssuer;
    use crate::jwks::{KeySet, PoolKeys};
    use serde_json::json;
    use std::sync::OnceLock;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test0001";
    const ISS_B: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other0002";

    fn issuer() -> &'static DevIssuer {
        static I: OnceLock<DevIssuer> = OnceLock::new();
        I.get_or_init(|| DevIssuer::generate(&["k1", "k2"]).expect("keygen"))
    }
    fn other_issuer() -> &'static DevIssuer {
        static I: OnceLock<DevIssuer> = OnceLock::new();
        I.get_or_init(|| DevIssuer::generate(&["b1"]).expect("keygen"))
    }

    fn config() -> Config {
        Config::from_toml(
            r#"
            listen = "127.0.0.1:1"
            upstream = "http://127.0.0.1:2"
            [[pools]]
            name = "a"
            id = "us-east-1_Test0001"
            client_ids = ["c1"]
            token_use = ["id", "access"]
            jwks_url = "http://127.0.0.1:3/jwks"
            [[pools]]
            name = "b"
            id = "eu-west-1_Other0002"
            client_ids = ["c1"]
            token_use = ["access"]
            jwks_url = "http://127.0.0.1:3/jwks2"
            [[routes]]
            path = "/public/"
            auth = "public"
            [[routes]]
            path = "/opt/"
            auth = "optional"
            [[routes]]
            path = "/admin/"
            groups = ["admins"]
            [[routes]]
            path = "/write/"
            scopes = ["api/write"]
            token_use = ["access"]
            [[routes]]
            path = "/ids/"
            token_use = ["id"]
            "#,
        )
        .expect("test config")
    }

    fn policy() -> Policy {
        Policy::from_config(&config())
    }

    fn keys() -> KeysSnapshot {
        KeysSnapshot {
            pools: vec![
                PoolKeys {
                    keys: Some(Arc::new(issuer().key_set())),
                    fetched_at: NOW - 10,
                },
                PoolKeys {
                    keys: Some(Arc::new(other_issuer().key_set())),
                    fetched_at: NOW - 10,
                },
            ],
        }
    }

    fn access() -> serde_json::Value {
        json!({"iss": ISS, "sub": "u-1", "token_use": "access", "client_id": "c1",
               "scope": "api/read", "username": "alice", "exp": NOW + 600, "iat": NOW - 60})
    }

    fn id_token() -> serde_json::Value {
        json!({"iss": ISS, "sub": "u-1", "token_use": "id", "aud": "c1", "cognito:username": "alice",
               "cognito:groups": ["admins"], "exp": NOW + 600, "iat": NOW - 60})
    }

    fn with(mut v: serde_json::Value, key: &str, val: serde_json::Value) -> serde_json::Value {
        v[key] = val;
        v
    }

    fn without(mut v: serde_json::Value, key: &str) -> serde_json::Value {
        if let Some(o) = v.as_object_mut() {
            o.remove(key);
        }
        v
    }

    fn request(method: &str, path: &str, auth: &[&str], extra: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        for a in auth {
            b = b.header("authorization", *a);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(()).expect("test request").into_parts().0
    }

    fn decide_with(path: &str, token: &str) -> Decision {
        authorize(
            &request("GET", path, &[&format!("Bearer {token}")], &[]),
            NOW,
            &keys(),
            &policy(),
        )
    }

    fn denial(d: Decision) -> Option<Denial> {
        match d {
            Decision::Deny(d) => Some(d),
            Decision::Allow(_) => None,
        }
    }

    fn mint(claims: &serde_json::Value) -> String {
        issuer().mint("k1", claims)
    }

    #[test]
    fn valid_access_token_is_admitted_with_its_identity() {
        let Decision::Allow(a) = decide_with("/api/x", &mint(&access())) else {
            panic!("denied")
        };
        assert_eq!(a.admit, Admit::Authenticated);
        let id = a.identity.expect("identity");
        assert_eq!(id.claims.sub, "u-1");
        assert_eq!(id.pool, "a");
    }

    #[test]
    fn valid_id_token_is_admitted() {
        assert!(denial(decide_with("/api/x", &mint(&id_token()))).is_none());
    }

    #[test]
    fn missing_token_is_denied_as_missing() {
        let d = authorize(&request("GET", "/api/x", &[], &[]), NOW, &keys(), &policy());
        assert_eq!(denial(d), Some(Denial::Missing));
    }

    #[test]
    fn basic_credentials_count_as_missing() {
        let d = authorize(
            &request("GET", "/api/x", &["Basic dXM6cHc="], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::Missing));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_allows_extra_spaces() {
        let t = mint(&access());
        for a in [
            format!("bearer {t}"),
            format!("BEARER {t}"),
            format!("Bearer   {t}"),
        ] {
            let d = authorize(
                &request("GET", "/api/x", &[&a], &[]),
                NOW,
                &keys(),
                &policy(),
            );
            assert!(denial(d).is_none(), "{a:.20}");
        }
    }

    #[test]
    fn two_authorization_headers_are_an_invalid_request() {
        let t = format!("Bearer {}", mint(&access()));
        let d = authorize(
            &request("GET", "/api/x", &[&t, &t], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::InvalidRequest));
    }

    #[test]
    fn empty_or_non_b64token_credentials_are_invalid_requests() {
        for a in ["Bearer ", "Bearer {\"payload\":\"x\"}", "Bearer a\"b"] {
            let d = authorize(
                &request("GET", "/api/x", &[a], &[]),
                NOW,
                &keys(),
                &policy(),
            );
            assert_eq!(denial(d), Some(Denial::InvalidRequest), "{a}");
        }
    }

    #[test]
    fn token_in_header_and_query_is_an_invalid_request() {
        let t = format!("Bearer {}", mint(&access()));
        let d = authorize(
            &request("GET", "/api/x?access_token=abc", &[&t], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::InvalidRequest));
    }

    #[test]
    fn token_only_in_query_is_missing() {
        let d = authorize(
            &request("GET", "/api/x?access_token=abc", &[], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::Missing));
    }

    #[test]
    fn oversized_token_is_rejected_before_parsing() {
        let big = "a".repeat(20 * 1024);
        assert_eq!(denial(decide_with("/api/x", &big)), Some(Denial::TooLarge));
    }

    #[test]
    fn non_jwt_b64tokens_are_malformed() {
        for t in ["abc", "a.b.c.d.e", "a.b=.c", "a~b.c.d"] {
            assert_eq!(
                denial(decide_with("/api/x", t)),
                Some(Denial::Malformed),
                "{t}"
            );
        }
    }

    #[test]
    fn alg_none_and_other_algorithms_are_rejected() {
        for alg in ["none", "NONE", "HS256", "PS256", "ES256", "RS384"] {
            let t = issuer().mint_with_header(&json!({"alg": alg, "kid": "k1"}), &access());
            assert_eq!(
                denial(decide_with("/api/x", &t)),
                Some(Denial::BadAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn dangerous_headers_are_rejected_even_when_signed() {
        for (k, v) in [
            ("jku", json!("http://127.0.0.1:1/k")),
            ("crit", json!(["exp"])),
            ("x5c", json!([])),
            ("cty", json!("JWT")),
        ] {
            let mut h = json!({"alg": "RS256", "kid": "k1"});
            h[k] = v;
            let t = issuer().mint_with_header(&h, &access());
            assert_eq!(
                denial(decide_with("/api/x", &t)),
                Some(Denial::BadHeader),
                "{k}"
            );
        }
    }

    #[test]
    fn token_without_kid_is_rejected_not_tried_against_every_key() {
        let t = issuer().mint_with_header(&json!({"alg": "RS256"}), &access());
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::MissingKid));
    }

    #[test]
    fn unknown_kid_names_the_pool_for_a_refresh() {
        let t =
            issuer().mint_with_header(&json!({"alg": "RS256", "kid": "../../dev/null"}), &access());
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::UnknownKid { pool: 0 })
        );
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let t = mint(&access());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&with(access(), "sub", json!("admin"))).expect("json"),
        );
        parts[1] = &forged;
        assert_eq!(
            denial(decide_with("/api/x", &parts.join("."))),
            Some(Denial::BadSignature)
        );
    }

    #[test]
    fn token_of_pool_b_signed_with_pool_a_key_is_rejected() {
        // kid k1 exists only in pool a; iss selects pool b, so its key is never consulted.
        let t = mint(&with(access(), "iss", json!(ISS_B)));
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::UnknownKid { pool: 1 })
        );
        // Same kid name in both pools: pool b's key must be used, and fails.
        let t = issuer().mint_as("b1", "k1", &with(access(), "iss", json!(ISS_B)));
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::BadSignature)
        );
    }

    #[test]
    fn wrong_issuer_forms_are_rejected() {
        for iss in [
            json!(format!("{ISS}/")),
            json!([ISS]),
            json!("https://evil.example/us-east-1_Test0001"),
        ] {
            let t = mint(&with(access(), "iss", iss.clone()));
            assert_eq!(
                denial(decide_with("/api/x", &t)),
                Some(Denial::WrongIssuer),
                "{iss}"
            );
        }
        assert_eq!(
            denial(decide_with("/api/x", &mint(&without(access(), "iss")))),
            Some(Denial::WrongIssuer)
        );
    }

    #[test]
    fn expiry_is_checked_against_the_injected_clock_with_leeway() {
        let t = mint(&with(access(), "exp", json!(NOW - 65)));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::Expired));
        let t = mint(&with(access(), "exp", json!(NOW - 30)));
        assert!(denial(decide_with("/api/x", &t)).is_none(), "within leeway");
        let t = mint(&with(access(), "exp", json!(NOW + 30)));
        assert!(denial(decide_with("/api/x", &t)).is_none());
    }

    #[test]
    fn wrongly_typed_or_missing_time_claims_are_rejected() {
        for claims in [
            with(access(), "exp", json!("9999999999")),
            with(access(), "exp", json!(-1)),
            without(access(), "exp"),
            with(access(), "iat", json!("1")),
            without(access(), "iat"),
            without(access(), "sub"),
        ] {
            assert_eq!(
                denial(decide_with("/api/x", &mint(&claims))),
                Some(Denial::BadClaims),
                "{claims}"
            );
        }
    }

    #[test]
    fn future_nbf_and_iat_are_rejected() {
        let t = mint(&with(access(), "nbf", json!(NOW + 600)));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::NotYetValid));
        let t = mint(&with(
            with(access(), "iat", json!(NOW + 600)),
            "exp",
            json!(NOW + 1200),
        ));
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::IssuedInFuture)
        );
    }

    #[test]
    fn lifetime_longer_than_a_day_is_rejected() {
        let t = mint(&with(
            with(access(), "iat", json!(NOW - 60)),
            "exp",
            json!(NOW - 60 + 2 * 86_400),
        ));
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::LifetimeTooLong)
        );
    }

    #[test]
    fn client_binding_uses_aud_for_id_and_client_id_for_access_tokens() {
        let t = mint(&with(id_token(), "aud", json!("c2")));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::WrongClient));
        let t = mint(&with(access(), "client_id", json!("c2")));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::WrongClient));
        let t = mint(&with(access(), "client_id", json!(["c1"])));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::BadClaims));
    }

    #[test]
    fn token_use_must_be_exact_and_allowed_by_pool_and_route() {
        let t = mint(&with(access(), "token_use", json!("ACCESS")));
        assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::BadClaims));
        let t = mint(&id_token());
        assert_eq!(
            denial(decide_with("/write/x", &t)),
            Some(Denial::WrongTokenUse)
        );
        let t = mint(&access());
        assert_eq!(
            denial(decide_with("/ids/x", &t)),
            Some(Denial::WrongTokenUse)
        );
        // Pool b accepts only access tokens.
        let t = other_issuer().mint(
            "b1",
            &with(with(id_token(), "iss", json!(ISS_B)), "aud", json!("c1")),
        );
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::WrongTokenUse)
        );
    }

    #[test]
    fn groups_and_scopes_are_any_of_and_answer_forbidden() {
        assert_eq!(
            denial(decide_with("/admin/x", &mint(&access()))),
            Some(Denial::Forbidden)
        );
        assert!(denial(decide_with("/admin/x", &mint(&id_token()))).is_none());
        assert_eq!(
            denial(decide_with("/write/x", &mint(&access()))),
            Some(Denial::InsufficientScope {
                scopes: "api/write".into()
            })
        );
        let t = mint(&with(access(), "scope", json!("openid api/write")));
        assert!(denial(decide_with("/write/x", &t)).is_none());
    }

    #[test]
    fn group_rules_cannot_be_dodged_by_case_dots_or_params() {
        for p in [
            "/ADMIN/x",
            "/admin./x",
            "/admin;v=1/x",
            "/admin/",
            "/public/..;/admin/x",
        ] {
            assert_eq!(
                denial(decide_with(p, &mint(&access()))),
                Some(Denial::Forbidden),
                "{p}"
            );
        }
    }

    #[test]
    fn public_rules_admit_only_their_own_canonical_paths() {
        let anon = |p: &str| authorize(&request("GET", p, &[], &[]), NOW, &keys(), &policy());
        let Decision::Allow(a) = anon("/public/a/./b/../c") else {
            panic!("denied")
        };
        assert_eq!(a.path, "/public/a/c");
        for p in [
            "/public/../api/x",
            "/public/%2e%2e/api/x",
            "/public/..;/api/x",
            "//api/x",
            "/PUBLIC/x",
            "/publicity",
            "/api/x?next=/public/",
        ] {
            assert_eq!(denial(anon(p)), Some(Denial::Missing), "{p}");
        }
        for p in ["/public%2f..%2fapi/x", "/public/%00/x", "/../x"] {
            assert_eq!(denial(anon(p)), Some(Denial::BadPath), "{p}");
        }
    }

    #[test]
    fn optional_route_forwards_anonymously_but_never_downgrades_a_bad_token() {
        let d = authorize(&request("GET", "/opt/x", &[], &[]), NOW, &keys(), &policy());
        assert!(matches!(
            d,
            Decision::Allow(Admission {
                admit: Admit::Anonymous,
                ..
            })
        ));
        let t = mint(&with(access(), "exp", json!(NOW - 600)));
        assert_eq!(denial(decide_with("/opt/x", &t)), Some(Denial::Expired));
        let t = mint(&with(access(), "iss", json!("https://unknown.example/x")));
        assert_eq!(denial(decide_with("/opt/x", &t)), Some(Denial::WrongIssuer));
    }

    #[test]
    fn cors_preflight_needs_all_three_signals() {
        let pre = request(
            "OPTIONS",
            "/api/x",
            &[],
            &[
                ("origin", "https://a"),
                ("access-control-request-method", "POST"),
            ],
        );
        assert!(matches!(
            authorize(&pre, NOW, &keys(), &policy()),
            Decision::Allow(Admission {
                admit: Admit::Preflight,
                ..
            })
        ));
        let bare = request("OPTIONS", "/api/x", &[], &[("origin", "https://a")]);
        assert_eq!(
            denial(authorize(&bare, NOW, &keys(), &policy())),
            Some(Denial::Missing)
        );
    }

    #[test]
    fn connect_and_trace_are_not_allowed() {
        for m in ["TRACE", "CONNECT"] {
            let uri = if m == "CONNECT" {
                "example.com:443"
            } else {
                "/api/x"
            };
            let d = authorize(&request(m, uri, &[], &[]), NOW, &keys(), &policy());
            assert_eq!(denial(d), Some(Denial::MethodNotAllowed), "{m}");
        }
    }

    #[test]
    fn without_any_keys_protected_routes_are_unavailable_and_public_ones_work() {
        let empty = KeysSnapshot {
            pools: vec![PoolKeys::default(), PoolKeys::default()],
        };
        let d = authorize(&request("GET", "/api/x", &[], &[]), NOW, &empty, &policy());
        assert_eq!(denial(d), Some(Denial::KeysUnavailable));
        let t = format!("Bearer {}", mint(&access()));
        let d = authorize(
            &request("GET", "/api/x", &[&t], &[]),
            NOW,
            &empty,
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::KeysUnavailable));
        let d = authorize(
            &request("GET", "/public/x", &[], &[]),
            NOW,
            &empty,
            &policy(),
        );
        assert!(denial(d).is_none());
    }

    #[test]
    fn keys_older_than_max_stale_stop_verifying() {
        let mut k = keys();
        k.pools[0].fetched_at = NOW - 86_400 - 1;
        let d = authorize(
            &request(
                "GET",
                "/api/x",
                &[&format!("Bearer {}", mint(&access()))],
                &[],
            ),
            NOW,
            &k,
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::KeysUnavailable));
    }

    fn summary(d: &Decision) -> String {
        match d {
            Decision::Deny(d) => format!("deny {d:?}"),
            Decision::Allow(a) => format!(
                "allow {:?} {} {:?}",
                a.admit,
                a.path,
                a.identity
                    .as_ref()
                    .map(|i| (&i.pool, &i.claims.sub, &i.claims.groups))
            ),
        }
    }

    /// Property: over random tokens, times, paths and key sets, the cached decision is
    /// always the uncached one, including when a cached token is replayed later, after
    /// its key left the JWKS, or on a stricter route.
    #[test]
    fn a_cache_hit_never_decides_differently_from_a_miss() {
        let cache = crate::cache::TokenCache::new(64, 1 << 20);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let full = keys();
        let without_k1 = KeysSnapshot {
            pools: vec![
                PoolKeys {
                    keys: Some(Arc::new(DevIssuer::generate(&[]).expect("empty").key_set())),
                    fetched_at: NOW,
                },
                full.pools[1].clone(),
            ],
        };
        let tokens: Vec<String> = (0..40)
            .map(|_| {
                let mut c = if rnd(2) == 0 { access() } else { id_token() };
                let exp = NOW + i64::try_from(rnd(2000)).unwrap_or(0) - 500;
                c["exp"] = json!(exp);
                c["iat"] = json!(exp - 600);
                if rnd(5) == 0 {
                    c["nbf"] = json!(NOW + i64::try_from(rnd(200)).unwrap_or(0));
                }
                if rnd(6) == 0 {
                    c["iss"] = json!(ISS_B);
                }
                if rnd(6) == 0 {
                    c["client_id"] = json!("c2");
                    c["aud"] = json!("c2");
                }
                if rnd(3) == 0 {
                    c["cognito:groups"] = json!(["admins"]);
                }
                if rnd(4) == 0 {
                    c["scope"] = json!("api/write");
                }
                match rnd(5) {
                    0 => issuer().mint("k2", &c),
                    1 => issuer().mint_as("k1", "k2", &c),
                    2 => other_issuer().mint("b1", &c),
                    _ => issuer().mint("k1", &c),
                }
            })
            .collect();
        let paths = ["/api/x", "/admin/x", "/write/x", "/ids/x", "/opt/x"];
        let p = policy();
        for _ in 0..600 {
            let token = &tokens[usize::try_from(rnd(tokens.len() as u64)).unwrap_or(0)];
            let path = paths[usize::try_from(rnd(paths.len() as u64)).unwrap_or(0)];
            let now = NOW + i64::try_from(rnd(1400)).unwrap_or(0) - 700;
            let snapshot = if rnd(4) == 0 { &without_k1 } else { &full };
            let req = request("GET", path, &[&format!("Bearer {token}")], &[]);
            let plain = authorize(&req, now, snapshot, &p);
            let cached = cache.authorize(&req, now, snapshot, &p);
            assert_eq!(summary(&plain), summary(&cached), "{path} at {now}");
        }
        assert!(!cache.is_empty(), "the cache was never used");
    }

    #[test]
    fn weak_keys_never_enter_a_key_set() {
        let set = KeySet::from_components([("weak", &[0xC5u8; 128][..], &[1u8, 0, 1][..])]);
        assert!(set.is_empty());
    }
}
