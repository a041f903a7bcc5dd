//! The per-request handler, in phases: `request_filter` (header checks, the pure
//! decision, kid-miss refresh), `upstream_request_filter` (strip, inject, forwarding
//! headers), the upstream call (pooled, streamed, with timeouts), `response_filter`
//! (hop-by-hop removal) and `logging` (one metrics observation and one access-log
//! event). Every status code the proxy itself produces is chosen in this file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::auth::{self, Admission, Decision, Denial, Policy};
use crate::config::{Config, normalize_header_name};
use crate::headers::{self, Forwarding, HeaderError};
use crate::jwks::Jwks;
use crate::metrics::Metrics;

/// Response body type: upstream bodies stream through; local answers are small.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Everything a request handler needs, shared by all connections.
pub struct Shared {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Compiled route and pool policy.
    pub policy: Policy,
    /// Normalized names of every managed identity header.
    pub managed: Vec<String>,
    /// Key store.
    pub jwks: Arc<Jwks>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled upstream client.
    pub client: Client<HttpConnector, Incoming>,
}

impl Shared {
    /// Builds the shared state, including the pooled upstream client.
    #[must_use]
    pub fn new(config: Arc<Config>, jwks: Arc<Jwks>, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.limits.upstream_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.limits.upstream_idle_timeout)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        let managed = config
            .identity
            .managed_headers()
            .iter()
            .map(|h| normalize_header_name(h.as_str()))
            .collect();
        Self {
            policy: Policy::from_config(&config),
            managed,
            config,
            jwks,
            metrics,
            client,
        }
    }
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client address.
    pub peer: SocketAddr,
    /// Listener port.
    pub local_port: u16,
    /// Whether the connection is TLS.
    pub tls: bool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
}

/// Handles one request end to end. Never fails: every problem becomes a response.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    shared.metrics.in_flight.inc();
    let method = req.method().clone();
    let (response, outcome, path) = process(req, &shared, conn).await;
    shared.metrics.in_flight.dec();
    logging(
        &shared,
        &method,
        path.as_deref(),
        &response,
        &outcome,
        started,
    );
    Ok(response)
}

async fn process(
    req: Request<Incoming>,
    shared: &Shared,
    conn: ConnInfo,
) -> (Response<ProxyBody>, Outcome, Option<String>) {
    let auth_started = Instant::now();
    let (parts, body) = req.into_parts();
    let host = match headers::check_request(&parts, &shared.config.allowed_hosts) {
        Ok(h) => h,
        Err(e) => {
            let outcome = Outcome {
                label: "bad_request",
                reason: Some(e.reason()),
                sub: None,
                auth_secs: auth_started.elapsed().as_secs_f64(),
                upstream_secs: None,
            };
            shared.metrics.denied.with_label_values(&[e.reason()]).inc();
            return (header_error_response(e), outcome, None);
        }
    };
    let decision = request_filter(&parts, shared).await;
    let auth_secs = auth_started.elapsed().as_secs_f64();
    match decision {
        Decision::Deny(denial) => {
            shared
                .metrics
                .denied
                .with_label_values(&[denial.reason()])
                .inc();
            let response = deny_response(&denial, &shared.config.realm, &parts.method);
            let label = match denial {
                Denial::KeysUnavailable => "unavailable",
                Denial::BadPath | Denial::MethodNotAllowed | Denial::InvalidRequest => {
                    "bad_request"
                }
                _ => "denied",
            };
            let outcome = Outcome {
                label,
                reason: Some(denial.reason()),
                sub: None,
                auth_secs,
                upstream_secs: None,
            };
            // Log the canonical form when there is one: never raw attacker bytes.
            (
                response,
                outcome,
                crate::path::canonicalize(parts.uri.path()).ok(),
            )
        }
        Decision::Allow(admission) => {
            let sub = admission.identity.as_ref().map(|i| i.claims.sub.clone());
            let label = admission.admit.label();
            let path = admission.path.clone();
            let upstream_req =
                upstream_request_filter(parts, body, &admission, &host, shared, conn);
            let upstream_started = Instant::now();
            let (response, error) = upstream(upstream_req, shared).await;
            let upstream_secs = upstream_started.elapsed().as_secs_f64();
            shared.metrics.upstream_duration.observe(upstream_secs);
            let outcome = Outcome {
                label: if error.is_some() {
                    "upstream_error"
                } else {
                    label
                },
                reason: error,
                sub,
                auth_secs,
                upstream_secs: Some(upstream_secs),
            };
            (response, outcome, Some(path))
        }
    }
}

/// Phase 1: decide, refreshing keys once if the token names an unknown `kid`.
async fn request_filter(parts: &Parts, shared: &Shared) -> Decision {
    let decision = auth::authorize(parts, unix_now(), &shared.jwks.snapshot(), &shared.policy);
    if let Decision::Deny(Denial::UnknownKid { pool }) = decision
        && shared.jwks.refresh_after_kid_miss(pool).await
    {
        return auth::authorize(parts, unix_now(), &shared.jwks.snapshot(), &shared.policy);
    }
    decision
}

/// Phase 2: the request the upstream receives.
fn upstream_request_filter(
    mut parts: Parts,
    body: Incoming,
    admission: &Admission,
    host: &str,
    shared: &Shared,
    conn: ConnInfo,
) -> Request<Incoming> {
    let cfg = &shared.config;
    let peer = conn.peer.ip().to_canonical();
    let trusted_peer = cfg.trusted_proxies.iter().any(|n| n.contains(&peer));
    let prior_xff = headers::inbound_forwarded_for(&parts.headers);
    // A chunked message's length is whatever the chunks say; never pass a stale length on.
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    headers::strip_inbound(&mut parts.headers, &cfg.identity, &shared.managed);
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
    headers::set_forwarding(&mut parts.headers, &forwarding, prior_xff);
    parts.headers.remove(header::HOST);
    if cfg.preserve_host
        && !host.is_empty()
        && let Ok(v) = HeaderValue::from_str(host)
    {
        parts.headers.insert(header::HOST, v);
    }
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", admission.path),
        None => admission.path.clone(),
    };
    let mut uri = cfg.upstream.clone().into_parts();
    uri.path_and_query = path_and_query.parse().ok();
    parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| cfg.upstream.clone());
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body)
}

/// Phases 3-4: send upstream, stream the answer back, map failures to 502/504.
async fn upstream(
    req: Request<Incoming>,
    shared: &Shared,
) -> (Response<ProxyBody>, Option<&'static str>) {
    let timeout = shared.config.limits.upstream_timeout;
    match tokio::time::timeout(timeout, shared.client.request(req)).await {
        // Upgrades are never requested upstream, so a 101 would be a confused or hostile
        // backend: never pass a protocol switch on to the client.
        Ok(Ok(resp)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            shared
                .metrics
                .upstream_errors
                .with_label_values(&["other"])
                .inc();
            (
                simple(StatusCode::BAD_GATEWAY, r#"{"error":"bad_gateway"}"#),
                Some("other"),
            )
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            headers::strip_response(&mut parts.headers);
            (Response::from_parts(parts, body.boxed()), None)
        }
        Ok(Err(e)) => {
            let kind = if e.is_connect() { "connect" } else { "other" };
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
        Err(_) => {
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
        sub = outcome.sub.as_deref().unwrap_or(""),
        auth_ms = outcome.auth_secs * 1000.0,
        upstream_ms = outcome.upstream_secs.map_or(0.0, |s| s * 1000.0),
        latency_ms = elapsed * 1000.0,
    );
}
