//! Cognito-shaped claims shared by `examples/bench_fixtures.rs` and
//! `benches/decision.rs` (included with `#[path]`), so the micro-benchmarks and the
//! end-to-end suite verify the same kind of token.
#![allow(dead_code, reason = "each includer uses a different part")]

use serde_json::{Value, json};

/// Pool the fixtures pretend to come from.
pub const POOL: &str = "us-east-1_BenchPool1";
/// App client id (Cognito's are 26 lower-case alphanumerics).
pub const CLIENT: &str = "4r5ps8kdq3benchcl1ent0abcd";
/// Cognito kids are base64 SHA-256 fingerprints.
pub const KID: &str = "XYZbenchKid0123456789abcdefghijklmnopqrstuv=";

pub fn issuer_url() -> String {
    format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}")
}

/// A UUID-shaped string from two numbers (deterministic, distinct per input).
pub fn uuid_like(a: u64, b: u64) -> String {
    let x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.rotate_left(29);
    let y = b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ a.rotate_left(17);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        y >> 52,
        y & 0xffff_ffff_ffff
    )
}

/// Claims shaped like a real Cognito access token of a user in several groups
/// (Cognito access tokens carry `cognito:groups`, `scope`, `username`, `version`,
/// `origin_jti`, `event_id`, ...). About 1 KB of JSON.
pub fn access_claims(user: &str, seq: u64, groups: &[&str], iat: i64) -> Value {
    json!({
        "sub": uuid_like(seq, 1),
        "cognito:groups": groups,
        "iss": issuer_url(),
        "version": 2,
        "client_id": CLIENT,
        "origin_jti": uuid_like(seq, 2),
        "event_id": uuid_like(seq, 3),
        "token_use": "access",
        "scope": "phone openid profile email aws.cognito.signin.user.admin orders/read orders/write invoices/read",
        "auth_time": iat,
        "exp": iat + 3600,
        "iat": iat,
        "jti": uuid_like(seq, 4),
        "username": format!("{user}-{}", uuid_like(seq, 5)),
        "device_key": format!("us-east-1_{}", uuid_like(seq, 6)),
    })
}

pub const GROUPS: [&str; 12] = [
    "us-east-1_BenchPool1_Google",
    "tenant-7f3a9c21-readers",
    "tenant-7f3a9c21-writers",
    "billing-viewers",
    "support-tier-2",
    "feature-flag-beta-dashboard",
    "eu-data-residency",
    "project-atlas-maintainers",
    "oncall-platform-primary",
    "analytics-exports-readonly",
    "users",
    "admins",
];
