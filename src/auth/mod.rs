//! PURE: the allow/deny decision. [`authorize`] takes the request head, the time, the
//! key snapshot and the compiled [`Policy`], and returns a [`Decision`]; it does no I/O
//! and reads no clock, so every denial reason is unit-tested with a fixed `now`.
//!
//! Order of checks: method, path canonicalisation, route selection, CORS preflight,
//! credential extraction (RFC 6750), token shape and header, issuer -> pool, key by
//! `kid` from that pool only, signature, typed claims, time, `token_use`, client, then
//! the route's token kinds, groups and scopes.
//!
//! Layout: this file holds the outcome types ([`Decision`], [`Admission`], [`Denial`],
//! [`Identity`]); `policy.rs` compiles the configuration into a [`Policy`];
//! `extract.rs` finds the credential; `decide.rs` is the decision itself.

mod alb;
mod decide;
mod extract;
mod policy;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use crate::token::Claims;

pub use alb::ALB_POOL;
pub use decide::{authorize, authorize_with, bearer_token, verify};
pub use policy::Policy;

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
    /// `x-amzn-oidc-data` refused (`[alb] verify_data`).
    Alb(crate::alb::AlbError),
    /// `x-amzn-oidc-data` names a key not fetched yet: the caller may fetch it.
    UnknownAlbKid {
        /// The key id to fetch.
        kid: String,
    },
    /// The access token and the ALB data header name different users.
    AlbMismatch,
    /// The token verified but is revoked: Cognito's `GetUser` refuses it (revoked,
    /// signed out globally, its user disabled or deleted; `src/revocation/`), or the
    /// deny-list names its `sub`, username, `jti`, `origin_jti` or client.
    Revoked,
    /// The revocation check could not be made (timeout, endpoint error, throttling, too
    /// many checks in flight) and `revocation_check.failure_mode` is `closed`.
    RevocationUnavailable,
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
            Self::Alb(e) => e.reason(),
            Self::UnknownAlbKid { .. } => "alb_unknown_kid",
            Self::AlbMismatch => "alb_subject_mismatch",
            Self::Revoked => "revoked",
            Self::RevocationUnavailable => "revocation_unavailable",
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
            Self::Alb(_) => {
                "the load balancer's x-amzn-oidc-data header did not verify (format, ES256 signature, signer ARN, exp) or its key could not be fetched"
            }
            Self::UnknownAlbKid { .. } => {
                "the load balancer's key endpoint has no public key for the data header's kid"
            }
            Self::AlbMismatch => {
                "the access token and the load balancer's data header name different users (sub)"
            }
            Self::Revoked => {
                "the token is revoked: Cognito's GetUser refuses the access token (RevokeToken, global sign-out, user disabled or deleted), or the deny-list ([deny_list] file) names its sub, username, jti, origin_jti or client_id"
            }
            Self::RevocationUnavailable => {
                "the online revocation check could not be made (timeout, endpoint error or throttling, max_concurrent reached) and failure_mode is closed"
            }
        }
    }

    /// Every reason label, for pre-creating metric series ([`crate::alb::AlbError::REASONS`]
    /// are the reasons of [`Denial::Alb`]).
    pub const REASONS: [&'static str; 27] = [
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
        "alb_subject_mismatch",
        "revoked",
        "revocation_unavailable",
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
    /// The token exactly as presented and verified: a lookup by a digest is confirmed
    /// by comparing the whole token with it.
    pub token: Box<str>,
    /// Approximate bytes held.
    pub weight: u64,
}

/// Verifications made earlier, looked up by token (a cache, or nothing). Read-only: the
/// decision never changes it; the caller remembers [`Admission::learned`]. The decision
/// uses an entry only if its [`Remembered::token`] is exactly the presented token.
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
    /// Where the route takes credentials from: query parameters, cookies and headers
    /// among them are removed before forwarding.
    pub sources: std::sync::Arc<[crate::config::TokenSource]>,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone)]
pub enum Decision {
    /// Forward.
    Allow(Admission),
    /// Answer locally.
    Deny(Denial),
}
