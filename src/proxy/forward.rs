//! Phases 3-4: the upstream call, streamed both ways, its failures mapped to 502, 504
//! and 413, and the hand-over of an accepted WebSocket upgrade to its bridge.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;

use super::respond::*;
use super::upload::{self, Expired};
use super::upstream::UpstreamBody;
use super::websocket;
use super::*;
use crate::headers::{self};

/// `connect` (refused, unreachable, connect timeout), `reset` (the upstream closed or
/// reset the connection mid-exchange) or `other`.
pub(super) fn upstream_error_kind(e: &super::upstream::SendError) -> &'static str {
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

pub(super) fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
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
pub(super) async fn call_upstream(
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
        r = shared.client.send(req) => Ok(r),
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
            websocket::set_upgrade_headers(&mut parts.headers);
            websocket::spawn_bridge(client_upgrade, upstream_upgrade, shared, admitted);
            (Response::from_parts(parts, empty()), None)
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            headers::strip_response(&mut parts.headers);
            (Response::from_parts(parts, body), None)
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
