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
use crate::header_names::{GRPC_MESSAGE, GRPC_STATUS};
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
    h.insert(GRPC_STATUS, HeaderValue::from_static(code));
    h.insert(GRPC_MESSAGE, HeaderValue::from_static(message));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
}

/// How the proxy answers one [`Denial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `outcome` label of `cognito_sidecar_requests_total`.
    pub outcome: &'static str,
    /// The RFC 6750 `error` of the `WWW-Authenticate` challenge; `Some("")` for a bare
    /// challenge, `None` for no challenge.
    pub error: Option<&'static str>,
    /// The JSON body.
    pub body: &'static str,
    /// Whether to ask the client to retry (`Retry-After`).
    pub retry: bool,
}

/// THE table: every [`Denial`] with its status, outcome label, challenge, body and
/// retry advice, in one exhaustive match (a new reason does not compile until it is
/// answered here). The metric reason is [`Denial::reason`].
pub(crate) fn answer(denial: &Denial) -> Answer {
    const INVALID_TOKEN: &str = r#"{"error":"invalid_token"}"#;
    const BAD_REQUEST: &str = r#"{"error":"bad_request"}"#;
    let a = |status, outcome, error, body| Answer {
        status,
        outcome,
        error,
        body,
        retry: false,
    };
    match denial {
        Denial::BadPath | Denial::BadMethod => {
            a(StatusCode::BAD_REQUEST, "bad_request", None, BAD_REQUEST)
        }
        Denial::MethodNotAllowed => a(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            None,
            r#"{"error":"method_not_allowed"}"#,
        ),
        Denial::InvalidRequest => a(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("invalid_request"),
            r#"{"error":"invalid_request"}"#,
        ),
        Denial::Missing => a(
            StatusCode::UNAUTHORIZED,
            "denied",
            Some(""),
            r#"{"error":"unauthorized"}"#,
        ),
        Denial::Expired
        | Denial::TooLarge
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
        | Denial::WrongClient
        | Denial::Revoked => a(
            StatusCode::UNAUTHORIZED,
            "denied",
            Some("invalid_token"),
            INVALID_TOKEN,
        ),
        Denial::KeysUnavailable | Denial::RevocationUnavailable => Answer {
            retry: true,
            ..a(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                r#"{"error":"temporarily_unavailable"}"#,
            )
        },
        Denial::Alb(e) if e.is_unavailable() => Answer {
            retry: true,
            ..a(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                r#"{"error":"temporarily_unavailable"}"#,
            )
        },
        Denial::Alb(_) | Denial::UnknownAlbKid { .. } | Denial::AlbMismatch => a(
            StatusCode::UNAUTHORIZED,
            "denied",
            Some("invalid_token"),
            INVALID_TOKEN,
        ),
        Denial::Forbidden
        | Denial::InsufficientScope { .. }
        | Denial::ScopesNeedAccessToken { .. } => a(
            StatusCode::FORBIDDEN,
            "denied",
            Some("insufficient_scope"),
            r#"{"error":"insufficient_scope"}"#,
        ),
    }
}

/// A [`Denial`] as a response: the answer table's status, challenge and body (RFC 6750), with
/// the route's scopes or the expiry explained in the challenge where it helps. Bodies
/// are fixed strings: never a token, claim, kid, issuer or library message.
#[must_use]
pub fn deny_response(denial: &Denial, realm: &str, method: &Method) -> Response<ProxyBody> {
    let Answer {
        status,
        error,
        body,
        retry,
        ..
    } = answer(denial);
    let detail = match denial {
        Denial::Expired => Some(r#", error_description="The access token expired""#.to_owned()),
        Denial::Revoked => {
            Some(r#", error_description="The access token has been revoked""#.to_owned())
        }
        Denial::InsufficientScope { scopes } => Some(format!(r#", scope="{scopes}""#)),
        Denial::ScopesNeedAccessToken { scopes } => Some(format!(
            r#", error_description="This route requires an access token with one of its scopes", scope="{scopes}""#
        )),
        _ => None,
    };
    let www = error.map(|e| {
        let mut w = format!("Bearer realm=\"{realm}\"");
        if !e.is_empty() {
            w.push_str(&format!(", error=\"{e}\""));
        }
        w.push_str(detail.as_deref().unwrap_or(""));
        w
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason, one value each. `index` is exhaustive: a new variant does not
    /// compile until it is listed there, and the test fails until it is listed here.
    fn every_denial() -> Vec<Denial> {
        let scopes = String::from("s");
        vec![
            Denial::BadPath,
            Denial::MethodNotAllowed,
            Denial::BadMethod,
            Denial::InvalidRequest,
            Denial::Missing,
            Denial::TooLarge,
            Denial::Malformed,
            Denial::BadAlgorithm,
            Denial::BadHeader,
            Denial::MissingKid,
            Denial::WrongIssuer,
            Denial::UnknownKid { pool: 0 },
            Denial::BadSignature,
            Denial::BadClaims,
            Denial::Expired,
            Denial::NotYetValid,
            Denial::IssuedInFuture,
            Denial::LifetimeTooLong,
            Denial::WrongTokenUse,
            Denial::WrongClient,
            Denial::KeysUnavailable,
            Denial::Forbidden,
            Denial::InsufficientScope {
                scopes: scopes.clone(),
            },
            Denial::ScopesNeedAccessToken { scopes },
            Denial::AlbMismatch,
            Denial::Alb(crate::alb::AlbError::Signature),
            Denial::UnknownAlbKid { kid: "k".into() },
            Denial::Revoked,
            Denial::RevocationUnavailable,
        ]
    }

    fn index(d: &Denial) -> usize {
        match d {
            Denial::BadPath => 0,
            Denial::MethodNotAllowed => 1,
            Denial::BadMethod => 2,
            Denial::InvalidRequest => 3,
            Denial::Missing => 4,
            Denial::TooLarge => 5,
            Denial::Malformed => 6,
            Denial::BadAlgorithm => 7,
            Denial::BadHeader => 8,
            Denial::MissingKid => 9,
            Denial::WrongIssuer => 10,
            Denial::UnknownKid { .. } => 11,
            Denial::BadSignature => 12,
            Denial::BadClaims => 13,
            Denial::Expired => 14,
            Denial::NotYetValid => 15,
            Denial::IssuedInFuture => 16,
            Denial::LifetimeTooLong => 17,
            Denial::WrongTokenUse => 18,
            Denial::WrongClient => 19,
            Denial::KeysUnavailable => 20,
            Denial::Forbidden => 21,
            Denial::InsufficientScope { .. } => 22,
            Denial::ScopesNeedAccessToken { .. } => 23,
            Denial::AlbMismatch => 24,
            Denial::Alb(_) => 25,
            Denial::UnknownAlbKid { .. } => 26,
            Denial::Revoked => 27,
            Denial::RevocationUnavailable => 28,
        }
    }

    #[test]
    fn every_denial_reason_has_one_answer_and_the_metric_reasons_list_is_complete() {
        let all = every_denial();
        let indexes: Vec<usize> = all.iter().map(index).collect();
        assert_eq!(indexes, (0..all.len()).collect::<Vec<_>>());
        let reasons: Vec<&str> = all.iter().map(Denial::reason).collect();
        let mut expected = Denial::REASONS.to_vec();
        // The reasons of `Denial::Alb` and `UnknownAlbKid` follow `AlbMismatch`.
        let after_alb = expected
            .iter()
            .position(|r| *r == "alb_subject_mismatch")
            .map_or(expected.len(), |i| i + 1);
        expected.splice(
            after_alb..after_alb,
            ["alb_bad_signature", "alb_unknown_kid"],
        );
        assert_eq!(reasons, expected, "Denial::REASONS");
        for d in &all {
            let a = answer(d);
            let r = deny_response(d, "api", &Method::GET);
            assert_eq!(r.status(), a.status, "{d:?}");
            assert_eq!(
                r.headers().contains_key(header::WWW_AUTHENTICATE),
                a.error.is_some(),
                "{d:?}"
            );
            let expected_outcome = match a.status {
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                s if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => "denied",
                _ => "bad_request",
            };
            assert_eq!(a.outcome, expected_outcome, "{d:?}");
        }
    }
}
