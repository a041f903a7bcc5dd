//! The per-request handler, in phases: `request_filter` (header checks, the pure
//! decision, kid-miss refresh, body-size check), `upstream_request_filter` (strip,
//! inject, forwarding headers, WebSocket upgrade headers), the upstream call (pooled,
//! streamed, with timeouts), `response_filter` (hop-by-hop removal, WebSocket bridging)
//! and `logging` (one metrics observation and one access-log event).
//!
//! Layout: this file holds the shared state and the entry points ([`handle`],
//! [`overloaded`]); `handler.rs` the phases up to the upstream request; `forward.rs`
//! the upstream call and its failures; `login.rs` browser sign-in (callback, sign-out,
//! sessions); `report.rs` report-only mode (every decision counted, would-be denials
//! forwarded anonymously); `respond.rs` every answer the proxy makes itself (statuses,
//! challenges, gRPC status); `access_log.rs` the access log, metrics and request ids;
//! `upstream.rs` the upstream client and its connector; `pool.rs` the HTTP/1.1 pool;
//! `upload.rs` request-body timing; `websocket.rs` bridged sessions.

mod access_log;
mod forward;
mod handler;
mod login;
mod pool;
mod report;
mod respond;
pub mod upload;
pub mod upstream;
pub mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;

use crate::auth::Policy;
use crate::clock::Instant;
use crate::config::{Config, normalize_header_name};
use crate::header_names::X_REQUEST_ID;
use crate::jwks::Jwks;
use crate::metrics::Metrics;
use upstream::{Upstream, UpstreamError};

/// Response body type: upstream bodies stream through; local answers are small.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

pub use websocket::Sessions;

/// Why the shared state for a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The upstream client could not be built.
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    /// The browser sign-in machinery could not be built.
    #[error("login: {0}")]
    Login(#[from] crate::login::LoginError),
    /// The ALB key client could not be built.
    #[error("alb: {0}")]
    Alb(#[from] crate::alb::AlbClientError),
    /// The assertion signing key could not be set up.
    #[error("assertion: {0}")]
    Assertion(#[from] crate::assertion::AssertionError),
    /// The revocation check's client could not be built.
    #[error("revocation_check: {0}")]
    Revocation(#[from] crate::revocation::RevocationError),
}

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
    /// The upstream client (the HTTP/1.1 pool or the HTTP/2 client).
    pub client: Upstream,
    /// Bridged WebSocket sessions.
    pub websockets: Arc<Sessions>,
    /// Verified-token cache (`None` when disabled); new and empty per configuration.
    pub cache: Option<crate::cache::TokenCache>,
    /// Browser sign-in (`None` without `[login]`).
    pub login: Option<crate::login::Login>,
    /// The load balancer's public keys (`[alb] verify_data`).
    pub alb_keys: Option<Arc<crate::alb::AlbKeys>>,
    /// `strip_headers` plus every `header:NAME` token source (normalized names).
    pub strip_with_credentials: Arc<[String]>,
    /// Signs the identity assertion (`None` without `[assertion]`).
    pub assertion: Option<crate::assertion::Signer>,
    /// The online revocation check (`None` unless a pool has `revocation_check`).
    pub revocation: Option<crate::revocation::Revocation>,
    /// The deny-list (`None` without `[deny_list]`); shared across configurations
    /// whose `[deny_list]` file and limits are the same.
    pub deny_list: Option<Arc<crate::deny_list::DenyListHandle>>,
    /// Forwarding header values built once (`Via`, the listener's port).
    pub forwarding: crate::headers::ForwardingValues,
}

impl Shared {
    /// Builds the shared state, including the pooled upstream client and, with
    /// `[assertion]`, a signing key installed in `assertion_keys` (the ring that
    /// outlives configurations); without it, the ring's current key is retired.
    ///
    /// # Errors
    /// [`SharedError`] if the upstream TLS roots cannot be loaded, the sign-in
    /// machinery cannot be built or the assertion key cannot be set up.
    pub fn new(
        config: Arc<Config>,
        jwks: Arc<Jwks>,
        metrics: Arc<Metrics>,
        websockets: Arc<Sessions>,
        assertion_keys: &Arc<crate::assertion::KeyRing>,
        deny_list: Option<Arc<crate::deny_list::DenyListHandle>>,
    ) -> Result<Self, SharedError> {
        let client = upstream::client(&config)?;
        let login = crate::login::Login::from_config(&config)?;
        let revocation = crate::revocation::Revocation::from_config(&config, &metrics)?;
        let alb_keys = match config.alb.as_ref().and_then(|a| a.data.as_ref()) {
            Some(d) => Some(Arc::new(crate::alb::AlbKeys::from_settings(d)?)),
            None => None,
        };
        let managed = config
            .identity
            .managed_headers()
            .iter()
            .chain(config.assertion.iter().map(|a| &a.header))
            .map(|h| normalize_header_name(h.as_str()))
            .collect::<Vec<_>>()
            .into();
        // Last, so that a configuration that fails to build never touches the ring.
        let now = crate::clock::unix_now();
        let assertion = match &config.assertion {
            Some(settings) => Some(crate::assertion::Signer::install(
                settings,
                assertion_keys,
                now,
            )?),
            None => {
                assertion_keys.retire_current(now);
                None
            }
        };
        let cache = (config.cache.max_entries > 0).then(|| {
            crate::cache::TokenCache::new(config.cache.max_entries, config.cache.max_bytes)
        });
        let mut strip_with_credentials = config.strip_headers.clone();
        let sources = config
            .routes
            .iter()
            .flat_map(|r| r.token_sources.iter())
            .chain(config.token_sources.iter());
        for source in sources {
            if let crate::config::TokenSource::Header(h) = source {
                let name = normalize_header_name(h.as_str());
                if !strip_with_credentials.contains(&name) {
                    strip_with_credentials.push(name);
                }
            }
        }
        Ok(Self {
            forwarding: crate::headers::ForwardingValues::new(&config.via),
            revocation,
            deny_list,
            alb_keys,
            strip_with_credentials: strip_with_credentials.into(),
            login,
            assertion,
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

use access_log::{Outcome, logging, new_request_id, request_id};
use handler::{is_grpc_head, is_trusted_peer, process};
pub use respond::deny_response;
use respond::{add_grpc_status, simple};

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
    let client_sent_id = parts.headers.get(X_REQUEST_ID) == Some(&id);
    parts.headers.insert(X_REQUEST_ID, id.clone());
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
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    // HTTP/2 has no connection-level headers; `Connection: close` on a local answer
    // would make the h2 layer reset the stream instead of delivering it.
    if version == Version::HTTP_2 {
        response.headers_mut().remove(header::CONNECTION);
    }
    Ok(response)
}

/// The answer to a request over `limits.max_in_flight_requests` (or its address's
/// share, `reason` says which): 503 with
/// `Retry-After: 1` (gRPC: UNAVAILABLE, which clients retry), before any work on the
/// request; logged and counted with outcome `overloaded`. The body is empty so the
/// answer ends with its head: an HTTP/2 stream is closed at once even when the
/// client's flow-control window is zero, and holds nothing.
#[must_use]
pub fn overloaded<B>(
    req: &Request<B>,
    shared: &Shared,
    reason: &'static str,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let mut response = simple(StatusCode::SERVICE_UNAVAILABLE, "");
    let h = response.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if is_grpc_head(req.headers()) {
        add_grpc_status(&mut response);
    }
    let outcome = Outcome::refused("overloaded", reason, 0.0);
    let id = new_request_id();
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
