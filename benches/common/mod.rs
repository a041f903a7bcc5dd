//! Set-up shared by the micro-benchmarks (`mod common;` in each): the clock, a key
//! snapshot holding a development issuer's keys, a browser-like request and the
//! admission of an allowed decision.
#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cognito_sidecar::auth::{Admission, Decision};
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::jwks::{KeysSnapshot, PoolKeys};
use http::request::Parts;

/// Seconds since the epoch.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// One pool whose keys are `issuer`'s, fetched now.
pub fn snapshot(issuer: &DevIssuer) -> KeysSnapshot {
    KeysSnapshot {
        pools: vec![PoolKeys {
            keys: Some(Arc::new(issuer.key_set())),
            fetched_at: now(),
        }],
        alb: None,
    }
}

/// A GET with a browser's usual headers, a spoofed identity header and, if given, the
/// token as a Bearer credential.
pub fn request(path: &str, token: Option<&str>) -> Parts {
    let mut b = http::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", "api.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, deflate, br")
        .header("x-request-id", "0123456789abcdef0123456789abcdef")
        .header("x-auth-sub", "spoofed");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(()).unwrap().into_parts().0
}

/// The admission of an allowed decision; panics naming the denial otherwise.
pub fn allowed(d: Decision) -> Admission {
    match d {
        Decision::Allow(a) => a,
        Decision::Deny(d) => panic!("denied: {d:?}"),
    }
}
