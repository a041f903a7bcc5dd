//! Phase 1 with browser sign-in (`[login]`): the callback and sign-out paths, the
//! session a request carries on `auth = "login"` routes (re-verified on every request,
//! refreshed when its ID token expires, ended when it cannot be used), the redirect of
//! top-level navigations to sign in, the same-origin rule for unsafe methods, and the
//! removal of the sidecar's cookies before forwarding. Every sign-in answer is a small
//! page or a redirect with `Cache-Control: no-store`; failures never loop.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::access_log::Outcome;
use super::handler::{is_trusted_peer, request_filter};
use super::respond::answer;
use super::*;
use crate::auth::{Decision, Denial, Identity};
use crate::clock::{Instant, unix_now};
use crate::config::{AuthMode, TokenSource};
use crate::login::Login;
use crate::login::browser::{is_navigation, may_use_session};
use crate::login::flow::{Callback, parse_callback};
use crate::login::token_endpoint::TokenEndpointError;

/// What the sign-in phase made of a request.
pub(super) enum Gate {
    /// The sidecar answers itself (callback, sign-out, sign-in redirect, refusal).
    Answer(Response<ProxyBody>, Outcome),
    /// The decision, and `Set-Cookie` values for whatever answer follows (a refreshed
    /// or an ended session).
    Decided(Decision, Vec<String>),
}

/// Phase 1 when `[login]` is configured.
pub(super) async fn decide(
    parts: &mut Parts,
    shared: &Shared,
    login: &Login,
    conn: ConnInfo,
    started: Instant,
) -> Gate {
    let settings = login.settings();
    let canonical = crate::path::canonicalize(parts.uri.path()).ok();
    let secs = || started.elapsed().as_secs_f64();
    if let Some(path) = canonical.as_deref()
        && (path == settings.callback_path || path == settings.sign_out_path)
    {
        if let Some(limited) = over_rate(shared, login, parts, conn, secs()) {
            return limited;
        }
        let (response, reason, sub) = if path == settings.callback_path {
            callback(parts, shared, login).await
        } else {
            sign_out(parts, shared, login)
        };
        let outcome = Outcome {
            sub,
            ..Outcome::refused("login", reason, secs())
        };
        return Gate::Answer(response, outcome);
    }
    let route = canonical
        .as_deref()
        .map(|c| shared.policy.route(&parts.method, c));
    let login_route = route.is_some_and(|r| r.auth == AuthMode::Login);
    if !login_route || route.is_some_and(|r| offers_credential(parts, r)) {
        login.strip_cookies(&mut parts.headers);
        return Gate::Decided(request_filter(parts, shared).await, Vec::new());
    }
    let now = unix_now();
    let pieces = login.pieces_present(&parts.headers);
    let mut cookies = Vec::new();
    if pieces > 0 {
        match login.open_session(&parts.headers, now) {
            Some(mut session) => {
                if !same_origin(parts, login) {
                    count(shared, "refused", "cross_site");
                    let r = page(
                        StatusCode::FORBIDDEN,
                        "Cross-site request refused",
                        "This request did not come from this site's own pages.",
                    );
                    return Gate::Answer(r, Outcome::refused("login", "cross_site", secs()));
                }
                set_bearer(parts, &session.id_token);
                let mut decision = request_filter(parts, shared).await;
                if matches!(decision, Decision::Deny(Denial::Expired))
                    && let Some(refresh_token) = session.refresh_token.clone()
                {
                    match refresh(shared, login, &refresh_token).await {
                        Ok((id_token, rotated)) => {
                            session.id_token = id_token;
                            if rotated.is_some() {
                                session.refresh_token = rotated;
                            }
                            set_bearer(parts, &session.id_token);
                            decision = request_filter(parts, shared).await;
                            cookies = login.session_cookies(&session, now, pieces);
                        }
                        Err(reason) => count(shared, "refresh", reason),
                    }
                }
                let usable = match &decision {
                    Decision::Allow(a) => a
                        .identity
                        .as_deref()
                        .is_some_and(|i| login.accepts(i, None)),
                    Decision::Deny(d) => answer(d).status != StatusCode::UNAUTHORIZED,
                };
                if usable {
                    login.strip_cookies(&mut parts.headers);
                    return Gate::Decided(decision, cookies);
                }
                // The session's tokens no longer verify: it ends, and the request is
                // treated as carrying none.
                parts.headers.remove(header::AUTHORIZATION);
                count(shared, "session_ended", "token_rejected");
            }
            None => count(shared, "session_ended", "unreadable"),
        }
        cookies = login.clear_session(pieces);
    }
    let decision = request_filter(parts, shared).await;
    if matches!(decision, Decision::Deny(Denial::Missing)) && is_navigation(parts) {
        if let Some(limited) = over_rate(shared, login, parts, conn, secs()) {
            return limited;
        }
        let return_to = match (canonical.as_deref(), parts.uri.query()) {
            (Some(p), Some(q)) => format!("{p}?{q}"),
            (Some(p), None) => p.to_owned(),
            (None, _) => "/".to_owned(),
        };
        if let Some((location, state_cookie)) = login.start_sign_in(&return_to, now) {
            cookies.push(state_cookie);
            count(shared, "sign_in_started", "ok");
            let r = redirect(StatusCode::FOUND, &location, &cookies);
            return Gate::Answer(r, Outcome::refused("login", "sign_in", secs()));
        }
    }
    login.strip_cookies(&mut parts.headers);
    Gate::Decided(decision, cookies)
}

/// The 429 answer when the client's address is over `rate_limit_per_minute`.
fn over_rate(
    shared: &Shared,
    login: &Login,
    parts: &Parts,
    conn: ConnInfo,
    secs: f64,
) -> Option<Gate> {
    let client = client_address(shared, parts, conn)?;
    if login.limiter.allow(client, crate::clock::now()) {
        return None;
    }
    count(shared, "refused", "rate_limited");
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        "Wait a minute, then try again.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    Some(Gate::Answer(
        r,
        Outcome::refused("login", "rate_limited", secs),
    ))
}

/// The redirect back from the pool's managed login.
async fn callback(
    parts: &Parts,
    shared: &Shared,
    login: &Login,
) -> (Response<ProxyBody>, &'static str, Option<String>) {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let r = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Sign-in failed",
            "The sign-in callback only takes GET.",
        );
        return (r, "bad_callback", None);
    }
    let now = unix_now();
    let fail = |status, reason: &'static str, message: &str| {
        count(shared, "sign_in", reason);
        (page(status, "Sign-in failed", message), reason, None)
    };
    let (code, state) = match parse_callback(parts.uri.query()) {
        Callback::Code { code, state } => (code, state),
        Callback::Error { error } => {
            let status = if error == "access_denied" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            // `error` is letters, digits and '_' only (parse_callback makes sure).
            let message = format!("The sign-in service answered: {error}.");
            return fail(status, "idp_error", &message);
        }
        Callback::Invalid => {
            return fail(
                StatusCode::BAD_REQUEST,
                "bad_callback",
                "The sign-in answer was not understood.",
            );
        }
    };
    let (sign_in, used) = login.take_sign_in(&parts.headers, &state, now);
    let Some(sign_in) = sign_in else {
        let (mut r, reason, sub) = fail(
            StatusCode::BAD_REQUEST,
            "state_mismatch",
            "This sign-in was not started in this browser, or it took too long.",
        );
        add_cookies(&mut r, used.iter());
        return (r, reason, sub);
    };
    let mut cookies: Vec<String> = used.into_iter().collect();
    let tokens = match login.exchange(&code, &sign_in.verifier).await {
        Ok(t) => t,
        Err(e) => {
            let (status, message) = match &e {
                TokenEndpointError::Refused { status, .. } if *status < 500 => (
                    StatusCode::BAD_REQUEST,
                    "The sign-in service refused the sign-in code (it may have been used already).",
                ),
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "The sign-in service could not be reached or answered nonsense.",
                ),
            };
            let reason = match e.label() {
                "refused" if status == StatusCode::BAD_REQUEST => "exchange_refused",
                "unreachable" => "exchange_unreachable",
                "refused" => "exchange_failed",
                _ => "exchange_malformed",
            };
            let (mut r, reason, sub) = fail(status, reason, message);
            add_cookies(&mut r, cookies.iter());
            return (r, reason, sub);
        }
    };
    let identity = match verify(&tokens.id_token, shared).await {
        Ok(i) if login.accepts(&i, Some(&sign_in.nonce)) => i,
        _ => {
            let (mut r, reason, sub) = fail(
                StatusCode::UNAUTHORIZED,
                "token_rejected",
                "The sign-in service's ID token was not accepted.",
            );
            add_cookies(&mut r, cookies.iter());
            return (r, reason, sub);
        }
    };
    let session = crate::login::session::Session {
        id_token: tokens.id_token,
        refresh_token: tokens.refresh_token,
        signed_in_at: now,
    };
    let pieces = login.pieces_present(&parts.headers);
    cookies.extend(login.session_cookies(&session, now, pieces));
    count(shared, "sign_in", "ok");
    let r = redirect(StatusCode::SEE_OTHER, &sign_in.return_to, &cookies);
    (r, "signed_in", Some(identity.claims.sub))
}

/// Clears the session and sends the browser to the pool's logout endpoint.
fn sign_out(
    parts: &Parts,
    shared: &Shared,
    login: &Login,
) -> (Response<ProxyBody>, &'static str, Option<String>) {
    let allowed = matches!(parts.method, Method::GET | Method::HEAD | Method::POST);
    // A cross-site page must not sign anyone out, even with a plain link: browsers that
    // say where a navigation comes from (`Sec-Fetch-Site`) must say this site, or the
    // user (`none`: typed, bookmarked).
    let cross_site_link = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none"));
    if !allowed || cross_site_link || !same_origin(parts, login) {
        count(shared, "refused", "cross_site");
        let r = page(
            StatusCode::FORBIDDEN,
            "Sign-out refused",
            "Sign out from this site's own pages.",
        );
        return (r, "cross_site", None);
    }
    let cookies = login.clear_session(login.pieces_present(&parts.headers));
    count(shared, "sign_out", "ok");
    let r = redirect(StatusCode::FOUND, &login.sign_out_location(), &cookies);
    (r, "signed_out", None)
}

/// Verifies an ID token from the token endpoint like any bearer token, refreshing the
/// keys once if it names an unknown `kid`.
async fn verify(token: &str, shared: &Shared) -> Result<Identity, Denial> {
    let check = || crate::auth::verify(token, unix_now(), &shared.jwks.snapshot(), &shared.policy);
    match check() {
        Err(Denial::UnknownKid { pool }) if shared.jwks.refresh_after_kid_miss(pool).await => {
            check()
        }
        other => other,
    }
}

/// Refreshes a session: the new ID token (verified, of the login client) and the new
/// refresh token if the pool rotated it; else the failure reason.
async fn refresh(
    shared: &Shared,
    login: &Login,
    refresh_token: &str,
) -> Result<(String, Option<String>), &'static str> {
    let (tokens, called) = login.refresh(refresh_token).await?;
    match verify(&tokens.id_token, shared).await {
        Ok(i) if login.accepts(&i, None) => {
            count(shared, "refresh", if called { "ok" } else { "shared" });
            Ok((tokens.id_token, tokens.refresh_token))
        }
        _ => Err("token_rejected"),
    }
}

/// Whether the request brings a credential of its own (any of the route's sources):
/// then it is checked as such and the session is not consulted.
fn offers_credential(parts: &Parts, route: &crate::config::RouteConfig) -> bool {
    parts.headers.contains_key(header::AUTHORIZATION)
        || route.token_sources.iter().any(|s| match s {
            TokenSource::Bearer | TokenSource::Raw => false,
            TokenSource::Header(h) => parts.headers.contains_key(h),
            TokenSource::Cookie(c) => crate::credential::cookie_values(&parts.headers, c)
                .next()
                .is_some(),
            TokenSource::Query(q) => parts
                .uri
                .query()
                .is_some_and(|query| crate::credential::query_values(query, q).next().is_some()),
        })
}

/// Unsafe methods acting on a session must come from the site's own pages (`Origin`,
/// or `Sec-Fetch-Site: same-origin`); so must WebSocket upgrades, which browsers send
/// cross-origin with cookies.
fn same_origin(parts: &Parts, login: &Login) -> bool {
    let origin = &login.settings().external_url;
    if parts.headers.contains_key(header::UPGRADE) {
        return parts
            .headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.eq_ignore_ascii_case(origin));
    }
    may_use_session(parts, origin)
}

fn set_bearer(parts: &mut Parts, token: &str) {
    if let Ok(v) = HeaderValue::try_from(format!("Bearer {token}")) {
        parts.headers.insert(header::AUTHORIZATION, v);
    }
}

/// The address the rate limit counts: the peer, or, behind a trusted proxy, the
/// address that proxy saw (the last `X-Forwarded-For` entry).
fn client_address(shared: &Shared, parts: &Parts, conn: ConnInfo) -> Option<IpAddr> {
    let peer = conn.peer.map(|p| p.ip().to_canonical())?;
    if !is_trusted_peer(&shared.config, conn) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|a| a.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

fn count(shared: &Shared, event: &str, outcome: &str) {
    shared
        .metrics
        .login_events
        .with_label_values(&[event, outcome])
        .inc();
}

/// Appends `Set-Cookie` values to a response.
pub(super) fn add_cookies<'a>(
    response: &mut Response<ProxyBody>,
    cookies: impl IntoIterator<Item = &'a String>,
) {
    for c in cookies {
        if let Ok(v) = HeaderValue::try_from(c.as_str()) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

fn no_store(response: &mut Response<ProxyBody>) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn redirect(status: StatusCode, location: &str, cookies: &[String]) -> Response<ProxyBody> {
    let mut r = Response::new(respond::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::try_from(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    no_store(&mut r);
    add_cookies(&mut r, cookies);
    r
}

/// A small HTML page; `title` and `message` are the sidecar's own text (no markup).
fn page(status: StatusCode, title: &str, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Start again</a></p></body></html>\n"
    );
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    no_store(&mut r);
    r
}
