//! The admin listener: `/healthz` (the process serves), `/readyz` (every pool has keys
//! and the process is not draining; the body names what is missing, and the routes in
//! report mode), `/metrics`
//! (Prometheus text) and, with `[assertion]`, `/.well-known/jwks.json` (the keys that
//! verify the sidecar's identity assertions). It never shares a port with the proxy.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::reload::Live;

/// State the admin endpoints report on.
pub struct AdminState {
    /// Current configuration and key store (readiness).
    pub live: Arc<Live>,
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    /// True once shutdown has begun.
    pub draining: watch::Receiver<bool>,
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Readiness: `None` when ready, else the reasons.
#[must_use]
pub fn not_ready_reasons(state: &AdminState) -> Option<Vec<String>> {
    let mut reasons: Vec<String> = state
        .live
        .load()
        .jwks
        .pools_without_keys()
        .into_iter()
        .map(|p| format!("pool {p}: no signing keys loaded yet"))
        .collect();
    if *state.draining.borrow() {
        reasons.push("draining: shutdown in progress".to_owned());
    }
    (!reasons.is_empty()).then_some(reasons)
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<AdminState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ));
    }
    Ok(match req.uri().path() {
        "/healthz" | "/livez" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let reasons = not_ready_reasons(&state);
            state
                .metrics
                .ready
                .set(if reasons.is_none() { 1.0 } else { 0.0 });
            // Report mode is a choice, not a readiness failure: named, still 200.
            let note = state
                .live
                .load()
                .config
                .report_mode_warning()
                .map(|w| format!("note: {w}\n"))
                .unwrap_or_default();
            match reasons {
                None => reply(StatusCode::OK, "text/plain", format!("ready\n{note}")),
                Some(r) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready:\n{}\n{note}", r.join("\n")),
                ),
            }
        }
        "/metrics" => {
            // Read from the configuration in force at each scrape: always current,
            // across reloads, with nothing to update elsewhere.
            let report_routes = state.live.load().config.report_mode_routes().len();
            state
                .metrics
                .report_mode_routes
                .set(i64::try_from(report_routes).unwrap_or(i64::MAX));
            state
                .metrics
                .ready
                .set(if not_ready_reasons(&state).is_none() {
                    1.0
                } else {
                    0.0
                });
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                state.metrics.render(),
            )
        }
        "/.well-known/jwks.json" => match &state.live.load().assertion {
            Some(signer) => {
                let mut r = reply(
                    StatusCode::OK,
                    "application/json",
                    signer.key_set(crate::clock::unix_now()),
                );
                // Short enough for verifiers to see a rotated key soon (and they
                // refetch on an unknown kid); retired keys stay listed meanwhile.
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("max-age=60"),
                );
                r
            }
            None => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let state = Arc::clone(&state);
                let svc = service_fn(move |req| handle(req, Arc::clone(&state)));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = crate::flag::until_true(&mut shutdown) => return,
        }
    }
}
