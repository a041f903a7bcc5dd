//! Every answer the proxy makes itself: the one exhaustive `Denial` -> status,
//! challenge and body table (RFC 6750), header errors, 413, gRPC status for gRPC
//! clients. Bodies are fixed strings: never a token, claim, kid or library message.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use super::*;
use crate::auth::Denial;
use crate::headers::HeaderError;

pub(super) fn full(body: &'static str) -> ProxyBody {
    Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(super) fn empty() -> ProxyBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(super) fn simple(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
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

pub(super) fn payload_too_large() -> Response<ProxyBody> {
    let mut r = simple(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":"payload_too_large"}"#,
    );
    // The rest of the body is never read: the connection cannot be reused.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub(super) fn header_error_response(e: HeaderError) -> Response<ProxyBody> {
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
pub(super) fn add_grpc_status(r: &mut Response<ProxyBody>) {
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
