//! Phases 1-2: header checks, the decision (with the kid-miss refresh, the sign-in
//! phase of `login.rs` when `[login]` is set, report mode's review in `report.rs`, and
//! the body-size check), and the request the upstream receives (stripping, identity and
//! its signed assertion, forwarding headers, WebSocket upgrade headers).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::access_log::Outcome;
use super::forward::call_upstream;
use super::login::{Gate, add_cookies};
use super::respond::*;
use super::upstream::UpstreamBody;
use super::websocket;
use super::*;
use crate::auth::{self, Admission, Admit, Decision, Denial};
use crate::clock::{Instant, unix_now};
use crate::config::{Config, TokenSource, UpstreamProtocol};
use crate::header_names::X_REQUEST_ID;
use crate::headers::{self, Forwarding};

/// The TCP peer is in `trusted_proxies`.
pub(super) fn is_trusted_peer(cfg: &Config, conn: ConnInfo) -> bool {
    conn.peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        cfg.trusted_proxies.iter().any(|n| n.contains(&ip))
    })
}

/// A copy of a request head (method, URI, version, headers; no extensions).
pub(super) fn head_copy(parts: &Parts) -> Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

pub(super) fn is_grpc(parts: &Parts) -> bool {
    is_grpc_head(&parts.headers)
}

pub(super) fn is_grpc_head(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// `GET` + `Connection: upgrade` + `Upgrade: websocket`, the only upgrade ever honoured.
pub(super) fn is_websocket_upgrade(parts: &Parts) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    parts.method == Method::GET
        && parts.version == Version::HTTP_11
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

pub(super) async fn process(
    req: Request<Incoming>,
    shared: &Shared,
    conn: ConnInfo,
) -> (Response<ProxyBody>, Outcome, Option<String>) {
    let auth_started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let grpc = is_grpc(&parts);
    let host = match headers::check_request(&parts, &shared.config.allowed_hosts) {
        Ok(h) => h,
        Err(e) => {
            shared.metrics.denied.with_label_values(&[e.reason()]).inc();
            let outcome = Outcome::refused(
                "bad_request",
                e.reason(),
                auth_started.elapsed().as_secs_f64(),
            );
            return (header_error_response(e), outcome, None);
        }
    };
    let (decision, session_cookies) = match &shared.login {
        Some(login) => {
            match super::login::decide(&mut parts, shared, login, conn, auth_started).await {
                Gate::Answer(response, outcome) => {
                    let path = crate::path::canonicalize(parts.uri.path()).ok();
                    return (response, outcome, path);
                }
                Gate::Decided(decision, cookies) => (decision, cookies),
            }
        }
        None => (request_filter(&parts, shared).await, Vec::new()),
    };
    let (decision, would_deny) = super::report::review(decision, &parts, shared);
    let auth_secs = auth_started.elapsed().as_secs_f64();
    let admission = match decision {
        Decision::Deny(denial) => {
            shared
                .metrics
                .denied
                .with_label_values(&[denial.reason()])
                .inc();
            let mut response = deny_response(&denial, &shared.config.realm, &parts.method);
            if grpc {
                add_grpc_status(&mut response);
            }
            add_cookies(&mut response, &session_cookies);
            let label = answer(&denial).outcome;
            // Log the canonical form when there is one: never raw attacker bytes.
            let path = crate::path::canonicalize(parts.uri.path()).ok();
            return (
                response,
                Outcome::refused(label, denial.reason(), auth_secs),
                path,
            );
        }
        Decision::Allow(admission) => admission,
    };
    let sub = admission.identity.as_ref().map(|i| i.claims.sub.clone());
    if let Some(max) = shared.config.limits.max_request_body {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            shared
                .metrics
                .denied
                .with_label_values(&["body_too_large"])
                .inc();
            let outcome = Outcome {
                sub,
                ..Outcome::refused("bad_request", "body_too_large", auth_secs)
            };
            return (payload_too_large(), outcome, Some(admission.path));
        }
    }
    let websocket = admission.websocket && is_websocket_upgrade(&parts);
    let client_upgrade = if websocket {
        parts.extensions.remove::<OnUpgrade>().map(|upgrade| {
            let admitted = websocket::Admitted {
                parts: head_copy(&parts),
                expires: admission.identity.as_ref().map(|i| i.claims.exp),
                keep_alive: parts.extensions.remove::<websocket::KeepAlive>(),
            };
            (upgrade, admitted)
        })
    } else {
        None
    };
    let body: UpstreamBody = match shared.config.limits.max_request_body {
        Some(max) => Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).boxed(),
        None => body.map_err(Into::into).boxed(),
    };
    let upstream_req =
        upstream_request_filter(parts, body, &admission, &host, shared, conn, websocket);
    let upstream_started = Instant::now();
    let (mut response, error) = call_upstream(upstream_req, shared, client_upgrade).await;
    add_cookies(&mut response, &session_cookies);
    let upstream_secs = upstream_started.elapsed().as_secs_f64();
    shared.metrics.upstream_duration.observe(upstream_secs);
    let outcome = Outcome {
        label: match (error, would_deny) {
            (Some(_), _) => "upstream_error",
            (None, Some(_)) => "report_denied",
            (None, None) => admission.admit.label(),
        },
        reason: error.or(would_deny),
        sub,
        auth_secs,
        upstream_secs: Some(upstream_secs),
        upstream_status: error.is_none().then(|| response.status().as_u16()),
    };
    (response, outcome, Some(admission.path))
}

/// Phase 1: decide, then check an admitted access token's revocation online (opt-in).
pub(super) async fn request_filter(parts: &Parts, shared: &Shared) -> Decision {
    let decision = verify_filter(parts, shared).await;
    match &shared.revocation {
        Some(revocation) => revocation.filter(parts, &shared.policy, decision).await,
        None => decision,
    }
}

/// The decision, refreshing keys once if the token names an unknown `kid`.
async fn verify_filter(parts: &Parts, shared: &Shared) -> Decision {
    let decision = decide(parts, shared);
    if let Decision::Deny(Denial::UnknownKid { pool }) = decision
        && shared.jwks.refresh_after_kid_miss(pool).await
    {
        return decide(parts, shared);
    }
    // The load balancer's key for this kid, fetched once (single flight, failures
    // remembered, fetches budgeted inside `AlbKeys`); a key that cannot be had fails
    // closed.
    if let Decision::Deny(Denial::UnknownAlbKid { kid }) = &decision
        && let Some(alb) = &shared.alb_keys
    {
        return match alb.fetch(kid).await {
            Ok(_) => decide(parts, shared),
            Err(e) => Decision::Deny(Denial::Alb(e)),
        };
    }
    decision
}

pub(super) fn decide(parts: &Parts, shared: &Shared) -> Decision {
    let (now, mut keys) = (unix_now(), shared.jwks.snapshot());
    if let Some(alb) = &shared.alb_keys {
        keys = Arc::new(crate::jwks::KeysSnapshot {
            alb: Some(alb.snapshot()),
            ..(*keys).clone()
        });
    }
    let decision = match &shared.cache {
        Some(cache) => cache.authorize(parts, now, &keys, &shared.policy),
        None => auth::authorize(parts, now, &keys, &shared.policy),
    };
    if let Decision::Allow(Admission {
        cached: Some(hit), ..
    }) = &decision
    {
        let counter = if *hit {
            &shared.metrics.token_cache_hits
        } else {
            &shared.metrics.token_cache_misses
        };
        counter.inc();
    }
    crate::deny_list::apply(decision, shared.deny_list.as_deref())
}

/// Phase 2: the request the upstream receives.
pub(super) fn upstream_request_filter(
    mut parts: Parts,
    body: UpstreamBody,
    admission: &Admission,
    host: &str,
    shared: &Shared,
    conn: ConnInfo,
    websocket: bool,
) -> Request<UpstreamBody> {
    let cfg = &shared.config;
    let peer = conn.peer.map(|p| p.ip().to_canonical());
    let trusted_peer = is_trusted_peer(cfg, conn);
    // The credential travels on only when it is the one this request was admitted with:
    // never an unchecked one on a public route, a preflight or an anonymous request.
    let keep_credentials =
        cfg.identity.forward_authorization && admission.admit == Admit::Authenticated;
    let rules = headers::Inbound {
        identity: &cfg.identity,
        managed: &shared.managed,
        // Credential headers (`header:NAME` sources of any route) go unless this
        // request's verified credential is forwarded on purpose.
        extra: if keep_credentials {
            &cfg.strip_headers
        } else {
            &shared.strip_with_credentials
        },
        trusted_peer,
        keep_authorization: keep_credentials,
    };
    // Only a trusted proxy's hops are kept: nobody else's are read.
    let prior = if trusted_peer {
        headers::prior_hops(&parts.headers)
    } else {
        headers::PriorHops::default()
    };
    let wants_trailers = parts
        .headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    // Trailers can carry any header name (HTTP/2 and chunked HTTP/1.1): they get the same
    // stripping as the header section before an upstream sees them.
    let body = if parts.version == Version::HTTP_2
        || parts.headers.contains_key(header::TRANSFER_ENCODING)
    {
        let config = Arc::clone(&shared.config);
        let managed = Arc::clone(&shared.managed);
        let strip = Arc::clone(&shared.strip_with_credentials);
        body.map_frame(move |frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                let rules = headers::Inbound {
                    identity: &config.identity,
                    managed: &managed,
                    extra: &strip,
                    trusted_peer,
                    keep_authorization: false,
                };
                headers::strip_inbound(&mut trailers, &rules);
                http_body::Frame::trailers(trailers)
            }
            Err(frame) => frame,
        })
        .boxed()
    } else {
        body
    };
    // A chunked message's length is whatever the chunks say; never pass a stale length on.
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    // The request id is the proxy's own header: a `Connection: x-request-id` may not
    // remove it.
    let request_id = parts.headers.get(X_REQUEST_ID).cloned();
    headers::strip_inbound(&mut parts.headers, &rules);
    if let Some(id) = request_id {
        parts.headers.insert(X_REQUEST_ID, id);
    }
    if let Some(identity) = &admission.identity {
        headers::inject_identity(&mut parts.headers, identity, &cfg.identity);
        if let Some(signer) = &shared.assertion
            && admission.admit == Admit::Authenticated
        {
            signer.inject(&mut parts.headers, identity, unix_now());
        }
    }
    let forwarding = Forwarding {
        peer,
        trusted_peer,
        tls: conn.tls,
        host,
        port: conn.local_port,
        version: parts.version,
        values: &shared.forwarding,
    };
    headers::set_forwarding(&mut parts.headers, &forwarding, prior);
    let sent_host = parts.headers.remove(header::HOST);
    if cfg.preserve_host && !host.is_empty() {
        // The client's own value when it spells the validated host exactly (no copy).
        let value = match sent_host {
            Some(v) if v.as_bytes() == host.as_bytes() => Some(v),
            _ => HeaderValue::from_str(host).ok(),
        };
        if let Some(v) = value {
            parts.headers.insert(header::HOST, v);
        }
    }
    // gRPC over h2 needs `te: trailers` end to end; it is the one TE value allowed in h2.
    if wants_trailers && cfg.upstream_protocol == UpstreamProtocol::Http2 {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if websocket {
        websocket::set_upgrade_headers(&mut parts.headers);
    }
    let mut query = parts.uri.query().map(std::borrow::Cow::Borrowed);
    for source in admission.sources.iter() {
        match source {
            TokenSource::Cookie(name) if !keep_credentials => {
                headers::remove_cookie(&mut parts.headers, name);
            }
            // A token taken from the query never travels further (backend access logs).
            TokenSource::Query(name) => {
                query = query.and_then(|q| {
                    crate::credential::query_without(&q, name).map(std::borrow::Cow::Owned)
                });
            }
            _ => {}
        }
    }
    // Built at its exact length and handed over without another copy.
    let path_and_query = match query {
        Some(q) => {
            let mut pq = String::with_capacity(admission.path.len() + 1 + q.len());
            pq.push_str(&admission.path);
            pq.push('?');
            pq.push_str(&q);
            pq
        }
        None => admission.path.clone(),
    };
    let mut uri = cfg.upstream.clone().into_parts();
    uri.path_and_query =
        http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(path_and_query)).ok();
    parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| cfg.upstream.clone());
    parts.version = match cfg.upstream_protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::Http2 => Version::HTTP_2,
    };
    Request::from_parts(parts, body)
}
