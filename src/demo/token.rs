//! The demo issuer's token endpoint (`POST /oauth2/token`, RFC 6749 section 3.2) and
//! the bounded store of what it redeems: authorization codes (single use, five
//! minutes, bound to the redirect URI and the PKCE S256 challenge) and refresh tokens
//! (30 days; refreshing mints new ID and access tokens but no new refresh token, like
//! Cognito). Errors are RFC 6749 section 5.2 JSON. The single-page app calls it from
//! the proxy's origin, so that one origin gets CORS answers (preflight included).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::idp::{State, is_pkce_value, params, read_form};
use super::{ACCESS_KEY, DEMO_CLIENT, DemoUser, ID_KEY, access_claims, id_claims};
use crate::clock::{Instant, now, unix_now};
use crate::login::flow::{random_token, s256_challenge, same_secret};

/// How long an authorization code can be redeemed.
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a refresh token works (Cognito's default).
const REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
/// Most outstanding codes kept.
const MAX_CODES: usize = 1024;
/// Most refresh tokens kept.
const MAX_REFRESH_TOKENS: usize = 4096;

/// An authorization code's grant.
pub(super) struct Code {
    /// Index of the user in the settings.
    pub(super) user: usize,
    /// The redirect URI it was issued for; the exchange must name the same.
    pub(super) redirect_uri: String,
    /// The PKCE S256 challenge.
    pub(super) challenge: String,
    /// The authorize request's nonce, echoed in the ID token.
    pub(super) nonce: Option<String>,
    /// Unix time of the sign-in (`auth_time`).
    pub(super) auth_time: i64,
    /// When it stops being redeemable.
    pub(super) expires: Instant,
}

struct Refresh {
    user: usize,
    auth_time: i64,
    expires: Instant,
}

/// Outstanding codes and refresh tokens, each map bounded.
#[derive(Default)]
pub(super) struct Grants {
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
}

impl Grants {
    /// Stores a fresh code.
    pub(super) fn insert_code(&mut self, code: String, grant: Code) {
        bounded_insert(&mut self.codes, code, grant, MAX_CODES, |c| c.expires);
    }

    fn insert_refresh(&mut self, token: String, grant: Refresh) {
        bounded_insert(&mut self.refresh, token, grant, MAX_REFRESH_TOKENS, |r| {
            r.expires
        });
    }
}

/// Inserts under a bound: when full, expired entries go first, then the entry closest
/// to expiry (a flood of sign-ins can cost the oldest pending one, never memory).
fn bounded_insert<V>(
    map: &mut HashMap<String, V>,
    key: String,
    value: V,
    cap: usize,
    expires: impl Fn(&V) -> Instant,
) {
    if map.len() >= cap {
        let t = now();
        map.retain(|_, v| expires(v) > t);
    }
    if map.len() >= cap
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| expires(v))
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(key, value);
}

/// RFC 6749 section 5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OAuthError {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    ServerError,
}

impl OAuthError {
    fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::ServerError => "server_error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRequest | Self::InvalidGrant | Self::UnsupportedGrantType => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// The request's `Origin` if it is the proxy's (the only browser origin allowed).
fn allowed_origin(state: &State, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    origin
        .as_bytes()
        .eq_ignore_ascii_case(state.settings.external_url.as_bytes())
        .then(|| origin.clone())
}

/// `OPTIONS /oauth2/token`: the CORS preflight (403 for any other origin).
pub(super) fn preflight(state: &State, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = allowed_origin(state, headers) else {
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    };
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

/// `POST /oauth2/token`.
pub(super) async fn token(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (status, body) = match grant(state, &parts.headers, body).await {
        Ok(tokens) => (StatusCode::OK, tokens),
        Err(e) => (e.status(), json!({ "error": e.code() })),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"demo\""),
        );
    }
    if let Some(origin) = allowed_origin(state, &parts.headers) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    r
}

async fn grant(state: &State, headers: &HeaderMap, body: Incoming) -> Result<Value, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::InvalidRequest);
    }
    let body = read_form(body)
        .await
        .map_err(|_| OAuthError::InvalidRequest)?;
    let p = params(&body).map_err(|_| OAuthError::InvalidRequest)?;
    authenticate(state, headers, &p)?;
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange(state, &p),
        Some("refresh_token") => refresh(state, &p),
        Some(_) => Err(OAuthError::UnsupportedGrantType),
        None => Err(OAuthError::InvalidRequest),
    }
}

/// Form-decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `Authorization: Basic` credentials (RFC 6749 section 2.3.1: each part
/// form-encoded before base64).
fn basic_credentials(v: &HeaderValue) -> Option<(String, String)> {
    let (scheme, b64) = v.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// The client is the demo's (by HTTP Basic or `client_id`), with its secret when one
/// is configured.
fn authenticate(
    state: &State,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Result<(), OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => Some(basic_credentials(v).ok_or(OAuthError::InvalidClient)?),
        None => None,
    };
    let form_id = p.get("client_id");
    let client_id = match (&basic, form_id) {
        (Some((id, _)), Some(f)) if id != f => return Err(OAuthError::InvalidRequest),
        (Some((id, _)), _) => id,
        (None, Some(f)) => f,
        (None, None) => return Err(OAuthError::InvalidClient),
    };
    if client_id != DEMO_CLIENT {
        return Err(OAuthError::InvalidClient);
    }
    if let Some(secret) = &state.settings.client_secret {
        let given = basic
            .as_ref()
            .map(|(_, s)| s)
            .or_else(|| p.get("client_secret"));
        if !given.is_some_and(|g| same_secret(g, secret)) {
            return Err(OAuthError::InvalidClient);
        }
    }
    Ok(())
}

/// `grant_type=authorization_code`.
fn exchange(state: &State, p: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let code = p.get("code").ok_or(OAuthError::InvalidRequest)?;
    // Single use: the code is gone whatever the outcome (RFC 6749 section 4.1.2).
    let grant = state
        .grants_lock()
        .codes
        .remove(code)
        .ok_or(OAuthError::InvalidGrant)?;
    let verifier = p.get("code_verifier").map_or("", String::as_str);
    let valid = grant.expires > now()
        && p.get("redirect_uri") == Some(&grant.redirect_uri)
        && is_pkce_value(verifier, 43, 128)
        && same_secret(&s256_challenge(verifier), &grant.challenge);
    if !valid {
        return Err(OAuthError::InvalidGrant);
    }
    let user = state
        .settings
        .users
        .get(grant.user)
        .ok_or(OAuthError::InvalidGrant)?;
    let (id_token, access_token) = mint(state, user, grant.auth_time, grant.nonce.as_deref())?;
    let refresh_token = random_token().ok_or(OAuthError::ServerError)?;
    state.grants_lock().insert_refresh(
        refresh_token.clone(),
        Refresh {
            user: grant.user,
            auth_time: grant.auth_time,
            expires: now() + REFRESH_LIFETIME,
        },
    );
    Ok(json!({
        "id_token": id_token,
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": state.settings.token_lifetime_seconds,
    }))
}

/// `grant_type=refresh_token`: new ID and access tokens, the same refresh token.
fn refresh(state: &State, p: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let token = p.get("refresh_token").ok_or(OAuthError::InvalidRequest)?;
    let (user, auth_time) = {
        let grants = state.grants_lock();
        let r = grants
            .refresh
            .get(token)
            .filter(|r| r.expires > now())
            .ok_or(OAuthError::InvalidGrant)?;
        (r.user, r.auth_time)
    };
    let user = state
        .settings
        .users
        .get(user)
        .ok_or(OAuthError::InvalidGrant)?;
    let (id_token, access_token) = mint(state, user, auth_time, None)?;
    Ok(json!({
        "id_token": id_token,
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.settings.token_lifetime_seconds,
    }))
}

/// A fresh ID token (with `nonce` when given) and access token for `user`.
fn mint(
    state: &State,
    user: &DemoUser,
    auth_time: i64,
    nonce: Option<&str>,
) -> Result<(String, String), OAuthError> {
    let iat = unix_now();
    let lifetime = i64::try_from(state.settings.token_lifetime_seconds).unwrap_or(i64::MAX);
    let exp = iat.saturating_add(lifetime);
    let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
    let mut id = id_claims(&user.username, &groups, iat, exp);
    let mut access = access_claims(&user.username, &groups, iat, exp);
    for claims in [&mut id, &mut access] {
        // Distinct tokens each time (RS256 signatures are deterministic).
        claims["jti"] = Value::String(random_token().ok_or(OAuthError::ServerError)?);
        claims["auth_time"] = Value::from(auth_time);
        if groups.is_empty()
            && let Some(map) = claims.as_object_mut()
        {
            map.remove("cognito:groups");
        }
    }
    if let Some(nonce) = nonce {
        id["nonce"] = Value::String(nonce.to_owned());
    }
    let id_token = state.issuer.mint(ID_KEY, &id);
    let access_token = state.issuer.mint(ACCESS_KEY, &access);
    if id_token.is_empty() || access_token.is_empty() {
        return Err(OAuthError::ServerError);
    }
    Ok((id_token, access_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_drops_expired_grants_first_then_the_oldest() {
        let t = now();
        let mut map = HashMap::new();
        bounded_insert(&mut map, "expired".into(), t, 2, |e| *e);
        bounded_insert(
            &mut map,
            "later".into(),
            t + Duration::from_secs(60),
            2,
            |e| *e,
        );
        bounded_insert(
            &mut map,
            "new".into(),
            t + Duration::from_secs(30),
            2,
            |e| *e,
        );
        assert!(!map.contains_key("expired"));
        assert_eq!(map.len(), 2);
        bounded_insert(
            &mut map,
            "newest".into(),
            t + Duration::from_secs(90),
            2,
            |e| *e,
        );
        assert!(!map.contains_key("new"), "the entry closest to expiry goes");
        assert!(map.contains_key("later") && map.contains_key("newest"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let v = |s: &str| HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(s))).unwrap();
        assert_eq!(
            basic_credentials(&v("demo-client:a%3Ab+c")),
            Some(("demo-client".into(), "a:b c".into()))
        );
        assert_eq!(basic_credentials(&v("no-colon")), None);
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!!")),
            None
        );
    }
}
