//! Unit tests of the decision, one denial reason at a time, with a fixed `now`; the
//! fixtures are `pub(crate)` so the cache's tests can reuse them. The whole file is
//! test code: `mod.rs` includes it under #[cfg(test)].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use super::decide::*;
use super::policy::*;
use super::*;
use crate::config::Config;
use crate::issuer::DevIssuer;
use crate::jwks::KeysSnapshot;
use crate::jwks::{KeySet, PoolKeys};
use http::request::Parts;
use serde_json::json;
use std::sync::OnceLock;

pub(crate) const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test0001";
pub(crate) const ISS_B: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other0002";

pub(crate) fn issuer() -> &'static DevIssuer {
    static I: OnceLock<DevIssuer> = OnceLock::new();
    I.get_or_init(|| DevIssuer::generate(&["k1", "k2"]).expect("keygen"))
}
pub(crate) fn other_issuer() -> &'static DevIssuer {
    static I: OnceLock<DevIssuer> = OnceLock::new();
    I.get_or_init(|| DevIssuer::generate(&["b1"]).expect("keygen"))
}

fn config() -> Config {
    Config::from_toml(
        r#"
        listen = "127.0.0.1:1"
        upstream = "http://127.0.0.1:2"
        [[pools]]
        name = "a"
        id = "us-east-1_Test0001"
        client_ids = ["c1"]
        token_use = ["id", "access"]
        jwks_url = "http://127.0.0.1:3/jwks"
        [[pools]]
        name = "b"
        id = "eu-west-1_Other0002"
        client_ids = ["c1"]
        token_use = ["access"]
        jwks_url = "http://127.0.0.1:3/jwks2"
        [[routes]]
        path = "/public/"
        auth = "public"
        [[routes]]
        path = "/opt/"
        auth = "optional"
        [[routes]]
        path = "/admin/"
        groups = ["admins"]
        [[routes]]
        path = "/write/"
        scopes = ["api/write"]
        token_use = ["access"]
        [[routes]]
        path = "/ids/"
        token_use = ["id"]
        "#,
    )
    .expect("test config")
}

pub(crate) fn policy() -> Policy {
    Policy::from_config(&config())
}

pub(crate) fn keys() -> KeysSnapshot {
    KeysSnapshot {
        pools: vec![
            PoolKeys {
                keys: Some(Arc::new(issuer().key_set())),
                fetched_at: NOW - 10,
            },
            PoolKeys {
                keys: Some(Arc::new(other_issuer().key_set())),
                fetched_at: NOW - 10,
            },
        ],
        alb: None,
    }
}

pub(crate) fn access() -> serde_json::Value {
    json!({"iss": ISS, "sub": "u-1", "token_use": "access", "client_id": "c1",
           "scope": "api/read", "username": "alice", "exp": NOW + 600, "iat": NOW - 60})
}

pub(crate) fn id_token() -> serde_json::Value {
    json!({"iss": ISS, "sub": "u-1", "token_use": "id", "aud": "c1", "cognito:username": "alice",
           "cognito:groups": ["admins"], "exp": NOW + 600, "iat": NOW - 60})
}

fn with(mut v: serde_json::Value, key: &str, val: serde_json::Value) -> serde_json::Value {
    v[key] = val;
    v
}

fn without(mut v: serde_json::Value, key: &str) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

pub(crate) fn request(method: &str, path: &str, auth: &[&str], extra: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().method(method).uri(path);
    for a in auth {
        b = b.header("authorization", *a);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test request").into_parts().0
}

fn decide_with(path: &str, token: &str) -> Decision {
    authorize(
        &request("GET", path, &[&format!("Bearer {token}")], &[]),
        NOW,
        &keys(),
        &policy(),
    )
}

fn denial(d: Decision) -> Option<Denial> {
    match d {
        Decision::Deny(d) => Some(d),
        Decision::Allow(_) => None,
    }
}

fn mint(claims: &serde_json::Value) -> String {
    issuer().mint("k1", claims)
}

#[test]
fn valid_access_token_is_admitted_with_its_identity() {
    let Decision::Allow(a) = decide_with("/api/x", &mint(&access())) else {
        panic!("denied")
    };
    assert_eq!(a.admit, Admit::Authenticated);
    let id = a.identity.expect("identity");
    assert_eq!(id.claims.sub, "u-1");
    assert_eq!(id.pool, "a");
}

#[test]
fn valid_id_token_is_admitted() {
    assert!(denial(decide_with("/api/x", &mint(&id_token()))).is_none());
}

#[test]
fn missing_token_is_denied_as_missing() {
    let d = authorize(&request("GET", "/api/x", &[], &[]), NOW, &keys(), &policy());
    assert_eq!(denial(d), Some(Denial::Missing));
}

#[test]
fn basic_credentials_count_as_missing() {
    let d = authorize(
        &request("GET", "/api/x", &["Basic dXM6cHc="], &[]),
        NOW,
        &keys(),
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::Missing));
}

#[test]
fn bearer_scheme_is_case_insensitive_and_allows_extra_spaces() {
    let t = mint(&access());
    for a in [
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!("Bearer   {t}"),
    ] {
        let d = authorize(
            &request("GET", "/api/x", &[&a], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert!(denial(d).is_none(), "{a:.20}");
    }
}

#[test]
fn two_authorization_headers_are_an_invalid_request() {
    let t = format!("Bearer {}", mint(&access()));
    let d = authorize(
        &request("GET", "/api/x", &[&t, &t], &[]),
        NOW,
        &keys(),
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::InvalidRequest));
}

#[test]
fn empty_or_non_b64token_credentials_are_invalid_requests() {
    for a in ["Bearer ", "Bearer {\"payload\":\"x\"}", "Bearer a\"b"] {
        let d = authorize(
            &request("GET", "/api/x", &[a], &[]),
            NOW,
            &keys(),
            &policy(),
        );
        assert_eq!(denial(d), Some(Denial::InvalidRequest), "{a}");
    }
}

#[test]
fn token_in_header_and_query_is_an_invalid_request() {
    let t = format!("Bearer {}", mint(&access()));
    let d = authorize(
        &request("GET", "/api/x?access_token=abc", &[&t], &[]),
        NOW,
        &keys(),
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::InvalidRequest));
}

#[test]
fn token_only_in_query_is_missing() {
    let d = authorize(
        &request("GET", "/api/x?access_token=abc", &[], &[]),
        NOW,
        &keys(),
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::Missing));
}

#[test]
fn oversized_token_is_rejected_before_parsing() {
    let big = "a".repeat(20 * 1024);
    assert_eq!(denial(decide_with("/api/x", &big)), Some(Denial::TooLarge));
}

#[test]
fn non_jwt_b64tokens_are_malformed() {
    for t in ["abc", "a.b.c.d.e", "a.b=.c", "a~b.c.d"] {
        assert_eq!(
            denial(decide_with("/api/x", t)),
            Some(Denial::Malformed),
            "{t}"
        );
    }
}

#[test]
fn alg_none_and_other_algorithms_are_rejected() {
    for alg in ["none", "NONE", "HS256", "PS256", "ES256", "RS384"] {
        let t = issuer().mint_with_header(&json!({"alg": alg, "kid": "k1"}), &access());
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::BadAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn dangerous_headers_are_rejected_even_when_signed() {
    for (k, v) in [
        ("jku", json!("http://127.0.0.1:1/k")),
        ("crit", json!(["exp"])),
        ("x5c", json!([])),
        ("cty", json!("JWT")),
    ] {
        let mut h = json!({"alg": "RS256", "kid": "k1"});
        h[k] = v;
        let t = issuer().mint_with_header(&h, &access());
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::BadHeader),
            "{k}"
        );
    }
}

#[test]
fn token_without_kid_is_rejected_not_tried_against_every_key() {
    let t = issuer().mint_with_header(&json!({"alg": "RS256"}), &access());
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::MissingKid));
}

#[test]
fn unknown_kid_names_the_pool_for_a_refresh() {
    let t = issuer().mint_with_header(&json!({"alg": "RS256", "kid": "../../dev/null"}), &access());
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::UnknownKid { pool: 0 })
    );
}

#[test]
fn tampered_payload_fails_the_signature() {
    let t = mint(&access());
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&with(access(), "sub", json!("admin"))).expect("json"),
    );
    parts[1] = &forged;
    assert_eq!(
        denial(decide_with("/api/x", &parts.join("."))),
        Some(Denial::BadSignature)
    );
}

#[test]
fn token_of_pool_b_signed_with_pool_a_key_is_rejected() {
    // kid k1 exists only in pool a; iss selects pool b, so its key is never consulted.
    let t = mint(&with(access(), "iss", json!(ISS_B)));
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::UnknownKid { pool: 1 })
    );
    // Same kid name in both pools: pool b's key must be used, and fails.
    let t = issuer().mint_as("b1", "k1", &with(access(), "iss", json!(ISS_B)));
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::BadSignature)
    );
}

#[test]
fn wrong_issuer_forms_are_rejected() {
    for iss in [
        json!(format!("{ISS}/")),
        json!([ISS]),
        json!("https://evil.example/us-east-1_Test0001"),
    ] {
        let t = mint(&with(access(), "iss", iss.clone()));
        assert_eq!(
            denial(decide_with("/api/x", &t)),
            Some(Denial::WrongIssuer),
            "{iss}"
        );
    }
    assert_eq!(
        denial(decide_with("/api/x", &mint(&without(access(), "iss")))),
        Some(Denial::WrongIssuer)
    );
}

#[test]
fn expiry_is_checked_against_the_injected_clock_with_leeway() {
    let t = mint(&with(access(), "exp", json!(NOW - 65)));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::Expired));
    let t = mint(&with(access(), "exp", json!(NOW - 30)));
    assert!(denial(decide_with("/api/x", &t)).is_none(), "within leeway");
    let t = mint(&with(access(), "exp", json!(NOW + 30)));
    assert!(denial(decide_with("/api/x", &t)).is_none());
}

#[test]
fn wrongly_typed_or_missing_time_claims_are_rejected() {
    for claims in [
        with(access(), "exp", json!("9999999999")),
        with(access(), "exp", json!(-1)),
        without(access(), "exp"),
        with(access(), "iat", json!("1")),
        without(access(), "iat"),
        without(access(), "sub"),
    ] {
        assert_eq!(
            denial(decide_with("/api/x", &mint(&claims))),
            Some(Denial::BadClaims),
            "{claims}"
        );
    }
}

#[test]
fn future_nbf_and_iat_are_rejected() {
    let t = mint(&with(access(), "nbf", json!(NOW + 600)));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::NotYetValid));
    let t = mint(&with(
        with(access(), "iat", json!(NOW + 600)),
        "exp",
        json!(NOW + 1200),
    ));
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::IssuedInFuture)
    );
}

#[test]
fn lifetime_longer_than_a_day_is_rejected() {
    let t = mint(&with(
        with(access(), "iat", json!(NOW - 60)),
        "exp",
        json!(NOW - 60 + 2 * 86_400),
    ));
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::LifetimeTooLong)
    );
}

#[test]
fn client_binding_uses_aud_for_id_and_client_id_for_access_tokens() {
    let t = mint(&with(id_token(), "aud", json!("c2")));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::WrongClient));
    let t = mint(&with(access(), "client_id", json!("c2")));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::WrongClient));
    let t = mint(&with(access(), "client_id", json!(["c1"])));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::BadClaims));
}

#[test]
fn token_use_must_be_exact_and_allowed_by_pool_and_route() {
    let t = mint(&with(access(), "token_use", json!("ACCESS")));
    assert_eq!(denial(decide_with("/api/x", &t)), Some(Denial::BadClaims));
    let t = mint(&id_token());
    assert_eq!(
        denial(decide_with("/write/x", &t)),
        Some(Denial::WrongTokenUse)
    );
    let t = mint(&access());
    assert_eq!(
        denial(decide_with("/ids/x", &t)),
        Some(Denial::WrongTokenUse)
    );
    // Pool b accepts only access tokens.
    let t = other_issuer().mint(
        "b1",
        &with(with(id_token(), "iss", json!(ISS_B)), "aud", json!("c1")),
    );
    assert_eq!(
        denial(decide_with("/api/x", &t)),
        Some(Denial::WrongTokenUse)
    );
}

#[test]
fn groups_and_scopes_are_any_of_and_answer_forbidden() {
    assert_eq!(
        denial(decide_with("/admin/x", &mint(&access()))),
        Some(Denial::Forbidden)
    );
    assert!(denial(decide_with("/admin/x", &mint(&id_token()))).is_none());
    assert_eq!(
        denial(decide_with("/write/x", &mint(&access()))),
        Some(Denial::InsufficientScope {
            scopes: "api/write".into()
        })
    );
    let t = mint(&with(access(), "scope", json!("openid api/write")));
    assert!(denial(decide_with("/write/x", &t)).is_none());
}

#[test]
fn group_rules_cannot_be_dodged_by_case_dots_or_params() {
    for p in [
        "/ADMIN/x",
        "/admin./x",
        "/admin;v=1/x",
        "/admin/",
        "/public/..;/admin/x",
    ] {
        assert_eq!(
            denial(decide_with(p, &mint(&access()))),
            Some(Denial::Forbidden),
            "{p}"
        );
    }
}

#[test]
fn public_rules_admit_only_their_own_canonical_paths() {
    let anon = |p: &str| authorize(&request("GET", p, &[], &[]), NOW, &keys(), &policy());
    let Decision::Allow(a) = anon("/public/a/./b/../c") else {
        panic!("denied")
    };
    assert_eq!(a.path, "/public/a/c");
    for p in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/..;/api/x",
        "//api/x",
        "/PUBLIC/x",
        "/publicity",
        "/api/x?next=/public/",
    ] {
        assert_eq!(denial(anon(p)), Some(Denial::Missing), "{p}");
    }
    for p in ["/public%2f..%2fapi/x", "/public/%00/x", "/../x"] {
        assert_eq!(denial(anon(p)), Some(Denial::BadPath), "{p}");
    }
}

#[test]
fn optional_route_forwards_anonymously_but_never_downgrades_a_bad_token() {
    let d = authorize(&request("GET", "/opt/x", &[], &[]), NOW, &keys(), &policy());
    assert!(matches!(
        d,
        Decision::Allow(Admission {
            admit: Admit::Anonymous,
            ..
        })
    ));
    let t = mint(&with(access(), "exp", json!(NOW - 600)));
    assert_eq!(denial(decide_with("/opt/x", &t)), Some(Denial::Expired));
    let t = mint(&with(access(), "iss", json!("https://unknown.example/x")));
    assert_eq!(denial(decide_with("/opt/x", &t)), Some(Denial::WrongIssuer));
}

#[test]
fn cors_preflight_needs_all_three_signals() {
    let pre = request(
        "OPTIONS",
        "/api/x",
        &[],
        &[
            ("origin", "https://a"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert!(matches!(
        authorize(&pre, NOW, &keys(), &policy()),
        Decision::Allow(Admission {
            admit: Admit::Preflight,
            ..
        })
    ));
    let bare = request("OPTIONS", "/api/x", &[], &[("origin", "https://a")]);
    assert_eq!(
        denial(authorize(&bare, NOW, &keys(), &policy())),
        Some(Denial::Missing)
    );
}

#[test]
fn connect_and_trace_are_not_allowed() {
    for m in ["TRACE", "CONNECT"] {
        let uri = if m == "CONNECT" {
            "example.com:443"
        } else {
            "/api/x"
        };
        let d = authorize(&request(m, uri, &[], &[]), NOW, &keys(), &policy());
        assert_eq!(denial(d), Some(Denial::MethodNotAllowed), "{m}");
    }
}

#[test]
fn without_any_keys_protected_routes_are_unavailable_and_public_ones_work() {
    let empty = KeysSnapshot {
        pools: vec![PoolKeys::default(), PoolKeys::default()],
        alb: None,
    };
    let d = authorize(&request("GET", "/api/x", &[], &[]), NOW, &empty, &policy());
    assert_eq!(denial(d), Some(Denial::KeysUnavailable));
    let t = format!("Bearer {}", mint(&access()));
    let d = authorize(
        &request("GET", "/api/x", &[&t], &[]),
        NOW,
        &empty,
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::KeysUnavailable));
    let d = authorize(
        &request("GET", "/public/x", &[], &[]),
        NOW,
        &empty,
        &policy(),
    );
    assert!(denial(d).is_none());
}

#[test]
fn keys_older_than_max_stale_stop_verifying() {
    let mut k = keys();
    k.pools[0].fetched_at = NOW - 86_400 - 1;
    let d = authorize(
        &request(
            "GET",
            "/api/x",
            &[&format!("Bearer {}", mint(&access()))],
            &[],
        ),
        NOW,
        &k,
        &policy(),
    );
    assert_eq!(denial(d), Some(Denial::KeysUnavailable));
}

pub(crate) fn summary(d: &Decision) -> String {
    match d {
        Decision::Deny(d) => format!("deny {d:?}"),
        Decision::Allow(a) => format!(
            "allow {:?} {} {:?}",
            a.admit,
            a.path,
            a.identity
                .as_ref()
                .map(|i| (&i.pool, &i.claims.sub, &i.claims.groups))
        ),
    }
}

#[test]
fn weak_keys_never_enter_a_key_set() {
    let set = KeySet::from_components([("weak", &[0xC5u8; 128][..], &[1u8, 0, 1][..])]);
    assert!(set.is_empty());
}
