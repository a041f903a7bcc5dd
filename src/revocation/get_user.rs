//! Cognito's `GetUser` (I/O): the one call the revocation check makes. The access
//! token authorizes the call itself (no AWS credentials, no signing); Cognito answers
//! 200 while the token is live and 400 with an error type once it is revoked, its user
//! signed out globally, disabled or deleted. The answer is bounded in size and time
//! and reduced to a [`Verdict`]; nothing of it (user attributes, messages) is kept.

use std::time::Duration;

use http::header::CONTENT_TYPE;

/// Largest answer body read (a `GetUser` answer lists the user's attributes).
const MAX_ANSWER: usize = 64 * 1024;

/// The error types (`__type`) by which Cognito refuses the token for what it is or for
/// its user: the token is refused. Every other error (throttling, internal errors,
/// WAF, a wrong endpoint) says nothing about the token and counts as a failure.
const REFUSALS: &[&str] = &[
    "NotAuthorizedException",
    "UserNotFoundException",
    "UserNotConfirmedException",
    "PasswordResetRequiredException",
];

/// What a check found out about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Cognito accepts the token.
    Valid,
    /// Cognito refuses the token: revoked, signed out, user disabled or deleted.
    Revoked,
    /// Cognito refuses the token as expired (its clock, within the pool's leeway).
    Expired,
    /// No answer about the token; the failure mode decides.
    Unavailable(Failure),
}

/// Why a check gave no answer (the `result` label of a check that failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint could not be reached, answered 5xx, throttled, or answered
    /// something that is not a `GetUser` answer.
    Error,
    /// No answer within `revocation_check.timeout_ms`.
    Timeout,
    /// `revocation_check.max_concurrent` calls were in flight already.
    Overloaded,
}

impl Failure {
    /// Metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
        }
    }
}

/// A `GetUser` client (one connection pool for every endpoint).
#[derive(Debug, Clone)]
pub(super) struct GetUser {
    http: reqwest::Client,
}

impl GetUser {
    /// A client whose calls end after `timeout`.
    pub(super) fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: crate::outbound::client(timeout)?,
        })
    }

    /// Presents `token` to the `GetUser` API at `endpoint`.
    pub(super) async fn call(&self, endpoint: &str, token: &str) -> Verdict {
        let body = serde_json::json!({ "AccessToken": token }).to_string();
        let sent = self
            .http
            .post(endpoint)
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSCognitoIdentityProviderService.GetUser")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Verdict::Unavailable(failure_of(e)),
        };
        let status = response.status().as_u16();
        let header_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read (bounded) even a 200's body, so that the connection can be reused.
        let body = match read_bounded(response).await {
            Ok(b) => b,
            Err(_) if status == 200 => Vec::new(),
            Err(e) => return Verdict::Unavailable(failure_of(e)),
        };
        let verdict = classify(status, header_type.as_deref(), &body);
        if let Verdict::Unavailable(_) = verdict {
            tracing::warn!(
                status,
                error_type = error_type(header_type.as_deref(), &body).unwrap_or("none"),
                "revocation check: GetUser gave no answer about the token"
            );
        }
        verdict
    }
}

fn failure_of(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        tracing::warn!(error = %e.without_url(), "revocation check: GetUser unreachable");
        Failure::Error
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if out.len() + chunk.len() > MAX_ANSWER {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The error type of an AWS JSON answer: the body's `__type` (after any `namespace#`),
/// else the `x-amzn-ErrorType` header (before any `:`).
fn error_type<'a>(header: Option<&'a str>, body: &'a [u8]) -> Option<&'a str> {
    let from_body = std::str::from_utf8(body).ok().and_then(|text| {
        let start = text.find("\"__type\"")?;
        let rest = text[start + "\"__type\"".len()..].trim_start();
        let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
        let value = &rest[..rest.find('"')?];
        value.rsplit('#').next()
    });
    from_body.or_else(|| header.and_then(|h| h.split(':').next()))
}

/// A `GetUser` answer as a [`Verdict`].
pub(super) fn classify(status: u16, header_type: Option<&str>, body: &[u8]) -> Verdict {
    match status {
        200 => Verdict::Valid,
        400 => match error_type(header_type, body) {
            Some("NotAuthorizedException") if says_expired(body) => Verdict::Expired,
            Some(t) if REFUSALS.contains(&t) => Verdict::Revoked,
            _ => Verdict::Unavailable(Failure::Error),
        },
        _ => Verdict::Unavailable(Failure::Error),
    }
}

/// Cognito's message for an expired token is "Access Token has expired".
fn says_expired(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(|m| m.to_ascii_lowercase().contains("expired"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognitos_refusals_revoke_and_everything_else_is_a_failure() {
        let body = |t: &str, m: &str| format!(r#"{{"__type":"{t}","message":"{m}"}}"#);
        let revoked = [
            ("NotAuthorizedException", "Access Token has been revoked"),
            ("NotAuthorizedException", "Invalid token"),
            ("NotAuthorizedException", "User is disabled."),
            ("UserNotFoundException", "User does not exist."),
        ];
        for (t, m) in revoked {
            assert_eq!(
                classify(400, None, body(t, m).as_bytes()),
                Verdict::Revoked,
                "{t}"
            );
        }
        assert_eq!(
            classify(
                400,
                None,
                body("NotAuthorizedException", "Access Token has expired").as_bytes()
            ),
            Verdict::Expired
        );
        let failed = Verdict::Unavailable(Failure::Error);
        for t in [
            "TooManyRequestsException",
            "InternalErrorException",
            "ResourceNotFoundException",
            "ForbiddenException",
            "InvalidParameterException",
        ] {
            assert_eq!(classify(400, None, body(t, "x").as_bytes()), failed, "{t}");
        }
        assert_eq!(classify(500, None, b"{}"), failed);
        assert_eq!(classify(503, None, b""), failed);
        assert_eq!(classify(400, None, b"not json"), failed);
        assert_eq!(classify(200, None, b""), Verdict::Valid);
    }

    #[test]
    fn the_error_type_is_read_from_a_namespaced_body_or_the_header() {
        assert_eq!(
            error_type(
                None,
                br#"{"__type": "com.amazonaws.cognito#NotAuthorizedException"}"#
            ),
            Some("NotAuthorizedException")
        );
        assert_eq!(
            error_type(
                Some("UserNotFoundException:http://internal.amazon.com/coral/"),
                b""
            ),
            Some("UserNotFoundException")
        );
        assert_eq!(
            classify(400, Some("NotAuthorizedException"), b""),
            Verdict::Revoked
        );
    }
}
