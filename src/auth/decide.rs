//! The decision: a pure function of the request head, the time, the key snapshot and
//! the policy (plus, read-only, verifications made earlier). Checks in order: method,
//! path, route, preflight, credential, token shape, issuer -> pool, key by `kid` from
//! that pool only, signature, claims, time, `token_use`, client, then the route's token
//! kinds, groups and scopes.

use std::sync::Arc;

use http::Method;
use http::request::Parts;

use super::alb::alb_identity;
use super::extract::{Credential, extract, is_b64token, is_preflight};
use super::policy::{PoolPolicy, usable};
use super::{Admission, Admit, Decision, Denial, Earlier, Identity, Policy, Remembered};
use crate::config::{AuthMode, PreflightMode, TokenUse};
use crate::jwks::KeysSnapshot;
use crate::path;
use crate::token::{self, Claims, TokenError};

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

/// The bearer token an admitted request was authenticated with (found again, from the
/// sources of the route that admitted `path`), for checks made after the decision.
#[must_use]
pub fn bearer_token<'a>(parts: &'a Parts, policy: &'a Policy, path: &str) -> Option<&'a str> {
    match extract(parts, policy.route(&parts.method, path)) {
        Ok(Credential::Bearer(token)) => Some(token),
        _ => None,
    }
}

pub(super) fn decide(
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
        sources: Arc::clone(&route.token_sources),
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
        Credential::None if policy.alb.as_ref().is_some_and(|a| a.identity_from_data) => {
            // Behind an authenticating ALB: its signed data header is the credential.
            let alb = policy.alb.as_ref().ok_or(Denial::Missing)?;
            let identity = alb_identity(parts, now, keys, alb)?;
            route_rules(route, &identity.claims)?;
            return Ok(admit(
                Admit::Authenticated,
                Some(Arc::new(identity)),
                None,
                None,
            ));
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
    let (identity, learned) = verify_reusing(token, now, keys, policy, earlier)?;
    let cached = learned.is_none();
    route_rules(route, &identity.claims)?;
    if let Some(alb) = &policy.alb {
        // Both the access token and the load balancer's data header: the same user.
        let data = alb_identity(parts, now, keys, alb)?;
        if data.claims.sub != identity.claims.sub {
            return Err(Denial::AlbMismatch);
        }
    }
    Ok(admit(
        Admit::Authenticated,
        Some(identity),
        Some(cached),
        learned,
    ))
}

/// The route's token kinds, groups and scopes, checked against verified claims.
fn route_rules(route: &crate::config::RouteConfig, claims: &Claims) -> Result<(), Denial> {
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
    Ok(())
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
pub(super) struct Verified {
    pool: usize,
    kid: String,
    key_fingerprint: u64,
    identity: Identity,
}

pub(super) fn verify_full(
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
pub(super) fn check_claims(claims: &Claims, pool: &PoolPolicy, now: i64) -> Result<(), Denial> {
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
pub(super) fn verify_reusing(
    token: &str,
    now: i64,
    keys: &KeysSnapshot,
    policy: &Policy,
    earlier: Earlier<'_>,
) -> Result<(Arc<Identity>, Option<Arc<Remembered>>), Denial> {
    // A token remembered earlier is these exact bytes, which passed the b64token scan
    // when they were verified: only a token not remembered is scanned.
    if let Some(entry) = earlier(token).filter(|e| *e.token == *token) {
        let same_key = usable(keys, entry.pool, now, policy.max_stale)
            .and_then(|set| set.fingerprint(&entry.kid))
            == Some(entry.key_fingerprint);
        if same_key && let Some(pool) = policy.pools.get(entry.pool) {
            check_claims(&entry.identity.claims, pool, now)?;
            return Ok((Arc::clone(&entry.identity), None));
        }
    }
    if !is_b64token(token) {
        return Err(Denial::InvalidRequest);
    }
    let v = verify_full(token, now, keys, policy)?;
    let identity = Arc::new(v.identity);
    let learned = Remembered {
        pool: v.pool,
        kid: v.kid,
        key_fingerprint: v.key_fingerprint,
        identity: Arc::clone(&identity),
        token: token.into(),
        // Measured: decoded claims and their map take about four times the token's
        // size, plus fixed overhead (bench/PROFILE.md); plus the copy of the token.
        weight: token.len() as u64 * 5 + 1024,
    };
    Ok((identity, Some(Arc::new(learned))))
}
