//! The per-request handler, in phases: `request_filter` (header checks, the pure
//! decision, kid-miss refresh, body-size check), `upstream_request_filter` (strip,
//! inject, forwarding headers, WebSocket upgrade headers), the upstream call (pooled,
//! streamed, with timeouts), `response_filter` (hop-by-hop removal, WebSocket bridging)
//! and `logging` (one metrics observation and one access-log event). Every status code
//! the proxy itself produces is chosen in this file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::auth::{self, Admission, Admit, Decision, Denial, Policy};
use crate::clock::Instant;
use crate::clock::unix_now;
use crate::config::{Config, UpstreamProtocol, normalize_header_name};
use crate::headers::{self, Forwarding, HeaderError};
use crate::jwks::Jwks;
use crate::metrics::Metrics;
use crate::upload::{self, Expired};
use crate::upstream::{self, UpstreamBody, UpstreamClient, UpstreamError};
use crate::websocket;

/// Response body type: upstream bodies stream through; local answers are small.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

pub use crate::websocket::Sessions;

/// Everything a request handler needs, shared by all connections.
pub struct Shared {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Compiled route and pool policy.
    pub policy: Policy,
    /// Normalized names of every managed identity header.
    pub managed: Arc<[String]>,
    /// Key store.
    pub jwks: Arc<Jwks>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled upstream client.
    pub client: UpstreamClient,
    /// Bridged WebSocket sessions.
    pub websockets: Arc<Sessions>,
    /// Verified-token cache (`None` when disabled); new and empty per configuration.
    pub cache: Option<crate::cache::TokenCache>,
}

impl Shared {
    /// Builds the shared state, including the pooled upstream client.
    ///
    /// # Errors
    /// [`UpstreamError`] if the upstream TLS roots cannot be loaded.
    pub fn new(
        config: Arc<Config>,
        jwks: Arc<Jwks>,
        metrics: Arc<Metrics>,
        websockets: Arc<Sessions>,
    ) -> Result<Self, UpstreamError> {
        let client = upstream::client(&config)?;
        let managed = config
            .identity
            .managed_headers()
            .iter()
            .map(|h| normalize_header_name(h.as_str()))
            .collect::<Vec<_>>()
            .into();
        let cache = (config.cache.max_entries > 0).then(|| {
            crate::cache::TokenCache::new(config.cache.max_entries, config.cache.max_bytes)
        });
        Ok(Self {
            cache,
            policy: Policy::from_config(&config),
            managed,
            config,
            jwks,
            metrics,
            client,
            websockets,
        })
    }
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client address (`None` on a unix socket).
    pub peer: Option<SocketAddr>,
    /// Listener port (0 on a unix socket).
    pub local_port: u16,
    /// Whether the connection is TLS.
    pub tls: bool,
}

fn full(body: &'static str) -> ProxyBody {
    Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// What the access log and metrics record about one request.
struct Outcome {
    label: &'static str,
    reason: Option<&'static str>,
    sub: Option<String>,
    auth_secs: f64,
    upstream_secs: Option<f64>,
    upstream_status: Option<u16>,
}

/// The client's `X-Request-Id` if the client is trusted with it (a `trusted_proxies`
/// peer, or `trust_client_request_id`) and it is short and plain (`[A-Za-z0-9._:-]`, at
/// most 128 bytes), else a new one: a per-process random prefix and a counter.
fn request_id(parts: &Parts, trusted: bool) -> HeaderValue {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if trusted
        && let Some(v) = parts.headers.get("x-request-id")
        && (1..=128).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
    {
        return v.clone();
    }
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:016x}{n:016x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

impl Outcome {
    fn refused(label: &'static str, reason: &'static str, auth_secs: f64) -> Self {
        Self {
            label,
            reason: Some(reason),
            sub: None,
            auth_secs,
            upstream_secs: None,
            upstream_status: None,
        }
    }
}

/// Handles one request end to end. Never fails: every problem becomes a response.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let version = req.version();
    let (mut parts, body) = req.into_parts();
    let trusted = shared.config.trust_client_request_id || is_trusted_peer(&shared.config, conn);
    let id = request_id(&parts, trusted);
    let client_sent_id = parts.headers.get("x-request-id") == Some(&id);
    parts.headers.insert("x-request-id", id.clone());
    let (mut response, outcome, path) =
        process(Request::from_parts(parts, body), &shared, conn).await;
    logging(
        &shared,
        &method,
        path.as_deref(),
        &response,
        &outcome,
        started,
        &id,
    );
    // Echo the id on forwarded answers, and on the proxy's own answers when the client
    // chose it: a generated id on a rejection would make otherwise identical rejections
    // differ (an unknown kid and a bad signature must be indistinguishable).
    if client_sent_id || outcome.upstream_status.is_some() {
        response.headers_mut().insert("x-request-id", id);
    }
    // HTTP/2 has no connection-level headers; `Connection: close` on a local answer
    // would make the h2 layer reset the stream instead of delivering it.
    if version == Version::HTTP_2 {
        response.headers_mut().remove(header::CONNECTION);
    }
    Ok(response)
}

/// The answer to a request over `limits.max_in_flight_requests`: 503 with
/// `Retry-After: 1` (gRPC: UNAVAILABLE, which clients retry), before any work on the
/// request; logged and counted with outcome `overloaded`. The body is empty so the
/// answer ends with its head: an HTTP/2 stream is closed at once even when the
/// client's flow-control window is zero, and holds nothing.
#[must_use]
pub fn overloaded<B>(req: &Request<B>, shared: &Shared) -> Response<ProxyBody> {
    let started = Instant::now();
    let mut response = simple(StatusCode::SERVICE_UNAVAILABLE, "");
    let h = response.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if is_grpc_head(req.headers()) {
        add_grpc_status(&mut response);
    }
    let outcome = Outcome::refused("overloaded", "in_flight_limit", 0.0);
    let id = request_id(&Request::new(()).into_parts().0, false);
    logging(
        shared,
        req.method(),
        None,
        &response,
        &outcome,
        started,
        &id,
    );
    response
}

/// The TCP peer is in `trusted_proxies`.
fn is_trusted_peer(cfg: &Config, conn: ConnInfo) -> bool {
    conn.peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        cfg.trusted_proxies.iter().any(|n| n.contains(&ip))
    })
}

/// A copy of a request head (method, URI, version, headers; no extensions).
fn head_copy(parts: &Parts) -> Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn is_grpc(parts: &Parts) -> bool {
    is_grpc_head(&parts.headers)
}

fn is_grpc_head(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// `GET` + `Connection: upgrade` + `Upgrade: websocket`, the only upgrade ever honoured.
fn is_websocket_upgrade(parts: &Parts) -> bool {
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

async fn process(
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
    let decision = request_filter(&parts, shared).await;
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
            let label = match denial {
                Denial::KeysUnavailable => "unavailable",
                Denial::BadPath
                | Denial::MethodNotAllowed
                | Denial::BadMethod
                | Denial::InvalidRequest => "bad_request",
                _ => "denied",
            };
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
    let path = Some(admission.path.clone());
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
            return (payload_too_large(), outcome, path);
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
    let (response, error) = call_upstream(upstream_req, shared, client_upgrade).await;
    let upstream_secs = upstream_started.elapsed().as_secs_f64();
    shared.metrics.upstream_duration.observe(upstream_secs);
    let outcome = Outcome {
        label: if error.is_some() {
            "upstream_error"
        } else {
            admission.admit.label()
        },
        reason: error,
        sub,
        auth_secs,
        upstream_secs: Some(upstream_secs),
        upstream_status: error.is_none().then(|| response.status().as_u16()),
    };
    (response, outcome, path)
}

/// Phase 1: decide, refreshing keys once if the token names an unknown `kid`.
async fn request_filter(parts: &Parts, shared: &Shared) -> Decision {
    let decision = decide(parts, shared);
    if let Decision::Deny(Denial::UnknownKid { pool }) = decision
        && shared.jwks.refresh_after_kid_miss(pool).await
    {
        return decide(parts, shared);
    }
    decision
}

fn decide(parts: &Parts, shared: &Shared) -> Decision {
    let (now, keys) = (unix_now(), shared.jwks.snapshot());
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
    decision
}

/// Phase 2: the request the upstream receives.
fn upstream_request_filter(
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
        extra: &cfg.strip_headers,
        trusted_peer,
        keep_authorization: keep_credentials,
    };
    let prior = headers::prior_hops(&parts.headers);
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
        body.map_frame(move |frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                let rules = headers::Inbound {
                    identity: &config.identity,
                    managed: &managed,
                    extra: &config.strip_headers,
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
    let request_id = parts.headers.get("x-request-id").cloned();
    headers::strip_inbound(&mut parts.headers, &rules);
    if let Some(id) = request_id {
        parts.headers.insert("x-request-id", id);
    }
    if let Some(identity) = &admission.identity {
        headers::inject_identity(&mut parts.headers, identity, &cfg.identity);
    }
    let forwarding = Forwarding {
        peer,
        trusted_peer,
        proto: if conn.tls { "https" } else { "http" },
        host,
        port: conn.local_port,
        version: parts.version,
        via: &cfg.via,
    };
    headers::set_forwarding(&mut parts.headers, &forwarding, prior);
    parts.headers.remove(header::HOST);
    if cfg.preserve_host
        && !host.is_empty()
        && let Ok(v) = HeaderValue::from_str(host)
    {
        parts.headers.insert(header::HOST, v);
    }
    // gRPC over h2 needs `te: trailers` end to end; it is the one TE value allowed in h2.
    if wants_trailers && cfg.upstream_protocol == UpstreamProtocol::Http2 {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if websocket {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts
            .headers
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    if let Some(name) = &admission.token_cookie
        && !keep_credentials
    {
        headers::remove_cookie(&mut parts.headers, name);
    }
    let query = match (&admission.token_query_param, parts.uri.query()) {
        // A token taken from the query never travels further (backend access logs).
        (Some(name), Some(q)) => crate::credential::query_without(q, name),
        (_, q) => q.map(str::to_owned),
    };
    let path_and_query = match query {
        Some(q) => format!("{}?{q}", admission.path),
        None => admission.path.clone(),
    };
    let mut uri = cfg.upstream.clone().into_parts();
    uri.path_and_query = path_and_query.parse().ok();
    parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| cfg.upstream.clone());
    parts.version = match cfg.upstream_protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::Http2 => Version::HTTP_2,
    };
    Request::from_parts(parts, body)
}

/// `connect` (refused, unreachable, connect timeout), `reset` (the upstream closed or
/// reset the connection mid-exchange) or `other`.
fn upstream_error_kind(e: &hyper_util::client::legacy::Error) -> &'static str {
    if e.is_connect() {
        return "connect";
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return "reset";
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return "reset";
        }
        cur = err.source();
    }
    "other"
}

fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Phases 3-4: send upstream, stream the answer back, map failures to 502/504/413,
/// bridge an accepted WebSocket upgrade.
async fn call_upstream(
    req: Request<UpstreamBody>,
    shared: &Shared,
    client_upgrade: Option<(OnUpgrade, websocket::Admitted)>,
) -> (Response<ProxyBody>, Option<&'static str>) {
    let limits = &shared.config.limits;
    let (parts, body) = req.into_parts();
    let (body, deadline) =
        upload::track(body, limits.upstream_timeout, limits.request_body_timeout);
    let req = Request::from_parts(parts, body.boxed());
    let answer = tokio::select! {
        r = shared.client.request(req) => Ok(r),
        why = deadline.expired() => Err(why),
    };
    match answer {
        Ok(Ok(mut resp)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // Only a WebSocket upgrade that the route allowed and the proxy asked for
            // may switch protocols; anything else is a confused or hostile backend.
            let Some((client_upgrade, admitted)) = client_upgrade else {
                shared
                    .metrics
                    .upstream_errors
                    .with_label_values(&["other"])
                    .inc();
                return (
                    simple(StatusCode::BAD_GATEWAY, r#"{"error":"bad_gateway"}"#),
                    Some("unexpected_upgrade"),
                );
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let (mut parts, _) = resp.into_parts();
            headers::strip_response(&mut parts.headers);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts
                .headers
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            websocket::spawn_bridge(client_upgrade, upstream_upgrade, shared, admitted);
            (Response::from_parts(parts, empty()), None)
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            headers::strip_response(&mut parts.headers);
            (Response::from_parts(parts, body.boxed()), None)
        }
        Ok(Err(e)) if is_body_limit(&e) => {
            shared
                .metrics
                .denied
                .with_label_values(&["body_too_large"])
                .inc();
            (payload_too_large(), Some("body_too_large"))
        }
        Ok(Err(e)) => {
            let kind = upstream_error_kind(&e);
            shared
                .metrics
                .upstream_errors
                .with_label_values(&[kind])
                .inc();
            tracing::warn!(kind, error = %e, "upstream request failed");
            (
                simple(StatusCode::BAD_GATEWAY, r#"{"error":"bad_gateway"}"#),
                Some(kind),
            )
        }
        Err(Expired::Body) => {
            shared
                .metrics
                .denied
                .with_label_values(&["body_timeout"])
                .inc();
            let mut r = simple(
                StatusCode::REQUEST_TIMEOUT,
                r#"{"error":"request_timeout"}"#,
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            (r, Some("body_timeout"))
        }
        Err(Expired::Upstream) => {
            shared
                .metrics
                .upstream_errors
                .with_label_values(&["timeout"])
                .inc();
            (
                simple(
                    StatusCode::GATEWAY_TIMEOUT,
                    r#"{"error":"gateway_timeout"}"#,
                ),
                Some("timeout"),
            )
        }
    }
}

fn empty() -> ProxyBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn simple(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn payload_too_large() -> Response<ProxyBody> {
    let mut r = simple(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":"payload_too_large"}"#,
    );
    // The rest of the body is never read: the connection cannot be reused.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn header_error_response(e: HeaderError) -> Response<ProxyBody> {
    let mut r = match e.status() {
        StatusCode::MISDIRECTED_REQUEST => simple(
            StatusCode::MISDIRECTED_REQUEST,
            r#"{"error":"misdirected_request"}"#,
        ),
        status => simple(status, r#"{"error":"bad_request"}"#),
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Makes a proxy answer readable by gRPC clients: `grpc-status` / `grpc-message`
/// headers (a trailers-only response) next to the HTTP status.
fn add_grpc_status(r: &mut Response<ProxyBody>) {
    let (code, message) = match r.status() {
        StatusCode::UNAUTHORIZED => ("16", "unauthenticated"),
        StatusCode::FORBIDDEN => ("7", "permission denied"),
        StatusCode::SERVICE_UNAVAILABLE => ("14", "unavailable"),
        StatusCode::BAD_REQUEST => ("3", "invalid request"),
        _ => ("13", "internal"),
    };
    let h = r.headers_mut();
    h.insert("grpc-status", HeaderValue::from_static(code));
    h.insert("grpc-message", HeaderValue::from_static(message));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
}

/// The one place a [`Denial`] becomes a status, challenge and body (RFC 6750).
/// Bodies are fixed strings: never a token, claim, kid, issuer or library message.
#[must_use]
pub fn deny_response(denial: &Denial, realm: &str, method: &Method) -> Response<ProxyBody> {
    const INVALID_TOKEN: &str = r#"{"error":"invalid_token"}"#;
    let challenge = |extra: &str| format!("Bearer realm=\"{realm}\"{extra}");
    let (status, www, body, retry) = match denial {
        Denial::BadPath => (
            StatusCode::BAD_REQUEST,
            None,
            r#"{"error":"bad_request"}"#,
            false,
        ),
        Denial::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            r#"{"error":"method_not_allowed"}"#,
            false,
        ),
        Denial::BadMethod => (
            StatusCode::BAD_REQUEST,
            None,
            r#"{"error":"bad_request"}"#,
            false,
        ),
        Denial::InvalidRequest => (
            StatusCode::BAD_REQUEST,
            Some(challenge(", error=\"invalid_request\"")),
            r#"{"error":"invalid_request"}"#,
            false,
        ),
        Denial::Missing => (
            StatusCode::UNAUTHORIZED,
            Some(challenge("")),
            r#"{"error":"unauthorized"}"#,
            false,
        ),
        Denial::Expired => (
            StatusCode::UNAUTHORIZED,
            Some(challenge(
                ", error=\"invalid_token\", error_description=\"The access token expired\"",
            )),
            INVALID_TOKEN,
            false,
        ),
        Denial::TooLarge
        | Denial::Malformed
        | Denial::BadAlgorithm
        | Denial::BadHeader
        | Denial::MissingKid
        | Denial::WrongIssuer
        | Denial::UnknownKid { .. }
        | Denial::BadSignature
        | Denial::BadClaims
        | Denial::NotYetValid
        | Denial::IssuedInFuture
        | Denial::LifetimeTooLong
        | Denial::WrongTokenUse
        | Denial::WrongClient => (
            StatusCode::UNAUTHORIZED,
            Some(challenge(", error=\"invalid_token\"")),
            INVALID_TOKEN,
            false,
        ),
        Denial::KeysUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            r#"{"error":"temporarily_unavailable"}"#,
            true,
        ),
        Denial::Forbidden => (
            StatusCode::FORBIDDEN,
            Some(challenge(", error=\"insufficient_scope\"")),
            r#"{"error":"insufficient_scope"}"#,
            false,
        ),
        Denial::InsufficientScope { scopes } => (
            StatusCode::FORBIDDEN,
            Some(challenge(&format!(
                ", error=\"insufficient_scope\", scope=\"{scopes}\""
            ))),
            r#"{"error":"insufficient_scope"}"#,
            false,
        ),
        Denial::ScopesNeedAccessToken { scopes } => (
            StatusCode::FORBIDDEN,
            Some(challenge(&format!(
                ", error=\"insufficient_scope\", error_description=\"This route requires an access token with one of its scopes\", scope=\"{scopes}\""
            ))),
            r#"{"error":"insufficient_scope"}"#,
            false,
        ),
    };
    let mut r = simple(status, body);
    if let Some(www) = www.and_then(|w| HeaderValue::try_from(w).ok()) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, www);
    }
    if retry {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if *denial == Denial::MethodNotAllowed {
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    if method == Method::HEAD {
        *r.body_mut() = full("");
    }
    r
}

/// Phase 5: one metrics observation and one access-log event. Never logs a token.
fn logging(
    shared: &Shared,
    method: &Method,
    path: Option<&str>,
    response: &Response<ProxyBody>,
    outcome: &Outcome,
    started: Instant,
    request_id: &HeaderValue,
) {
    let status = response.status().as_u16();
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let elapsed = started.elapsed().as_secs_f64();
    let m = &shared.metrics;
    m.requests.with_label_values(&[outcome.label, class]).inc();
    m.auth_duration.observe(outcome.auth_secs);
    m.request_duration.observe(elapsed);
    tracing::info!(
        target: "access",
        method = %method,
        path = path.unwrap_or("-"),
        status,
        outcome = outcome.label,
        reason = outcome.reason.unwrap_or(""),
        sub = outcome.sub.as_deref().map(crate::headers::encode_value).unwrap_or_default(),
        upstream_status = outcome.upstream_status.unwrap_or(0),
        request_id = request_id.to_str().unwrap_or("-"),
        auth_ms = outcome.auth_secs * 1000.0,
        upstream_ms = outcome.upstream_secs.map_or(0.0, |s| s * 1000.0),
        latency_ms = elapsed * 1000.0,
    );
}
