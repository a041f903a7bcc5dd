//! Phase 5 and request ids: one metrics observation and one access-log event per
//! request (never a token), and the `X-Request-Id` each request carries.

use std::sync::atomic::Ordering;

use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Response};

use super::*;
use crate::clock::Instant;

/// What the access log and metrics record about one request.
pub(super) struct Outcome {
    pub(super) label: &'static str,
    pub(super) reason: Option<&'static str>,
    pub(super) sub: Option<String>,
    pub(super) auth_secs: f64,
    pub(super) upstream_secs: Option<f64>,
    pub(super) upstream_status: Option<u16>,
}

/// The client's `X-Request-Id` if the client is trusted with it (a `trusted_proxies`
/// peer, or `trust_client_request_id`) and it is short and plain (`[A-Za-z0-9._:-]`, at
/// most 128 bytes), else a new one: a per-process random prefix and a counter.
pub(super) fn request_id(parts: &Parts, trusted: bool) -> HeaderValue {
    if trusted
        && let Some(v) = parts.headers.get(crate::header_names::X_REQUEST_ID)
        && (1..=128).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
    {
        return v.clone();
    }
    new_request_id()
}

/// A new request id: a per-process random prefix and a counter.
pub(super) fn new_request_id() -> HeaderValue {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 32 lower-case hex digits, written on the stack and copied once.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        let (word, shift) = if i < 16 {
            (prefix, 60 - 4 * i)
        } else {
            (n, 124 - 4 * i)
        };
        *digit = HEX[usize::try_from((word >> shift) & 0xf).unwrap_or(0)];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

impl Outcome {
    pub(super) fn refused(label: &'static str, reason: &'static str, auth_secs: f64) -> Self {
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

/// Phase 5: one metrics observation and one access-log event. Never logs a token.
pub(super) fn logging(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_a_fixed_prefix_and_a_counter_in_32_hex_digits() {
        let (a, b) = (new_request_id(), new_request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(
                id.as_bytes()
                    .iter()
                    .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16]);
        let count = |id: &HeaderValue| {
            u64::from_str_radix(&id.to_str().expect("ascii")[16..], 16).expect("hex")
        };
        assert!(count(&b) > count(&a));
        let prefix = u64::from_str_radix(&a.to_str().expect("ascii")[..16], 16).expect("hex");
        assert_eq!(a, format!("{prefix:016x}{:016x}", count(&a)).as_str());
    }
}
