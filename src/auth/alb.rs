//! The load balancer's identity (`[alb] verify_data`), as part of the pure decision:
//! the `x-amzn-oidc-data` header an authenticating ALB adds, verified with the ALB key
//! of its `kid` from the key snapshot (ES256, `signer` = the configured ARN, `exp`).
//! Alone it admits a request (identity from the user-info claims); beside a Cognito
//! access token (`access_token = true`) both must name the same `sub`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use http::request::Parts;

use super::{Denial, Identity};
use crate::alb::{AlbError, parse_data};
use crate::jwks::KeysSnapshot;
use crate::token::{Claims, TokenUse};

/// Name of the pool an ALB identity is reported under (`X-Auth-Pool`, logs).
pub const ALB_POOL: &str = "alb";

/// The compiled `[alb] verify_data` rules.
#[derive(Debug, Clone)]
pub(super) struct AlbPolicy {
    pub(super) signer_arn: String,
    pub(super) leeway: i64,
    /// `access_token = false`: the data header alone admits a request.
    pub(super) identity_from_data: bool,
}

/// The identity the request's `x-amzn-oidc-data` carries; [`Denial::Missing`] when it
/// has none, [`Denial::UnknownAlbKid`] when its key is not in the snapshot yet.
pub(super) fn alb_identity(
    parts: &Parts,
    now: i64,
    keys: &KeysSnapshot,
    alb: &AlbPolicy,
) -> Result<Identity, Denial> {
    let mut values = parts.headers.get_all("x-amzn-oidc-data").iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(Denial::Missing),
        (Some(_), Some(_)) => return Err(Denial::Alb(AlbError::Malformed)),
        (Some(v), None) => v.to_str().map_err(|_| Denial::Alb(AlbError::Malformed))?,
    };
    let data = parse_data(value).map_err(Denial::Alb)?;
    let key = keys
        .alb
        .as_ref()
        .and_then(|set| set.get(data.kid()).cloned())
        .ok_or_else(|| Denial::UnknownAlbKid {
            kid: data.kid().to_owned(),
        })?;
    let c = data
        .verify(&key, &alb.signer_arn, now, alb.leeway)
        .map_err(Denial::Alb)?;
    Ok(Identity {
        pool: ALB_POOL.to_owned(),
        claims: Claims {
            sub: c.sub,
            iss: c.iss,
            // User-info claims of the signed-in user: the closest Cognito kind.
            token_use: TokenUse::Id,
            client_id: c.client,
            exp: c.exp,
            iat: now,
            nbf: None,
            username: c.username,
            verified_email: c.email,
            groups: Vec::new(),
            scopes: BTreeSet::new(),
            raw: c.raw,
        },
        rendered: OnceLock::new(),
    })
}
