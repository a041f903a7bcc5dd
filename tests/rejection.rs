//! Rejections over real sockets: SECURITY.md checklist groups A-D and the attack
//! catalogue. Every rejected request must leave the backend untouched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PSS_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use support::*;

const INVALID_TOKEN: &str = r#"Bearer realm="api", error="invalid_token""#;

async fn assert_invalid_token(env: &Env, token: &str, what: &str) {
    let before = env.upstream.count();
    let r = env.get("/api/x", Some(token)).await;
    assert_eq!(r.status(), 401, "{what}: status");
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        www.starts_with(INVALID_TOKEN),
        "{what}: challenge was {www}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"invalid_token"}"#,
        "{what}: body"
    );
    assert_eq!(
        env.upstream.count(),
        before,
        "{what}: backend was contacted"
    );
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test]
async fn missing_or_non_bearer_credentials_get_a_bare_challenge() {
    let env = Env::start().await;
    for auth in [None, Some("Basic dXM6cHc="), Some("Digest username=x")] {
        let mut req = env.client.get(env.url("/api/x"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="api""#,
            "{auth:?}"
        );
        assert_eq!(r.text().await.unwrap(), r#"{"error":"unauthorized"}"#);
    }
    let r = env.get("/api/x?access_token=abc", None).await;
    assert_eq!(r.status(), 401, "a token in the query is never read");
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let env = Env::start().await;
    let t = mint(&access_claims());
    for scheme in ["bearer", "BEARER", "Bearer "] {
        let r = env
            .client
            .get(env.url("/api/x"))
            .header("authorization", format!("{scheme} {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn malformed_requests_get_400_invalid_request() {
    let env = Env::start().await;
    let t = mint(&access_claims());
    let two = format!(
        "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"
    );
    let resp = env.raw(two.as_bytes()).await;
    assert!(
        status_line(&resp).contains("400"),
        "two Authorization headers: {resp}"
    );
    assert!(resp.contains(r#"error="invalid_request""#), "{resp}");
    for bad in ["Bearer ", r#"Bearer {"payload":"e30","signatures":[]}"#] {
        let req = format!(
            "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: {bad}\r\nConnection: close\r\n\r\n"
        );
        let resp = env.raw(req.as_bytes()).await;
        assert!(status_line(&resp).contains("400"), "{bad}: {resp}");
        assert!(resp.contains(r#"error="invalid_request""#), "{bad}: {resp}");
    }
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn tokens_that_are_not_compact_jws_are_invalid_tokens() {
    let env = Env::start().await;
    let t = mint(&access_claims());
    let parts: Vec<&str> = t.split('.').collect();
    assert_invalid_token(&env, "abc", "plain string").await;
    assert_invalid_token(&env, "a.b.c.d.e", "five segments (JWE)").await;
    assert_invalid_token(
        &env,
        &format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        "padding",
    )
    .await;
    assert_invalid_token(&env, &"a".repeat(20 * 1024), "20 KiB token").await;
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_auth_denied_total{reason="too_large"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn disallowed_algorithms_are_rejected() {
    let env = Env::start().await;
    let claims = access_claims();
    let payload = b64(claims.to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let h = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        assert_invalid_token(&env, &format!("{h}.{payload}."), alg).await;
        assert_invalid_token(&env, &format!("{h}.{payload}.AAAA"), alg).await;
    }
    // HS256 MAC'd with the public key material the JWKS publishes.
    let jwks: serde_json::Value = serde_json::from_str(&jwks_of(&["k1"])).unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let h = b64(json!({"alg": "HS256", "kid": "k1"}).to_string().as_bytes());
    let input = format!("{h}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes());
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    assert_invalid_token(
        &env,
        &format!("{input}.{}", b64(sig.as_ref())),
        "HS256 with public key",
    )
    .await;
    // PS256 correctly signed by the real RSA key.
    let ps = env_sign_pss(&claims);
    assert_invalid_token(&env, &ps, "PS256").await;
    // ES256 with an all-zero signature (psychic signatures) and a real one.
    let h = b64(json!({"alg": "ES256", "kid": "k1"}).to_string().as_bytes());
    assert_invalid_token(
        &env,
        &format!("{h}.{payload}.{}", b64(&[0u8; 64])),
        "ES256 zero signature",
    )
    .await;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let _ = ec.public_key();
    let input = format!("{h}.{payload}");
    let sig = ec.sign(&rng, input.as_bytes()).unwrap();
    assert_invalid_token(&env, &format!("{input}.{}", b64(sig.as_ref())), "ES256").await;
    let rs384 = keys().mint_with_header(&json!({"alg": "RS384", "kid": "k1"}), &claims);
    assert_invalid_token(&env, &rs384, "RS384 header").await;
}

/// A PS256 token signed by the test key `k1` (through the raw key pair).
fn env_sign_pss(claims: &serde_json::Value) -> String {
    // DevIssuer only signs PKCS#1 v1.5; sign PSS with a fresh key of the same size and the
    // same kid: the proxy must refuse on the algorithm before it ever looks at the key.
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let h = b64(json!({"alg": "PS256", "kid": "k1"}).to_string().as_bytes());
    let input = format!("{h}.{}", b64(claims.to_string().as_bytes()));
    let mut sig = vec![0; kp.public_modulus_len()];
    kp.sign(
        &RSA_PSS_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(&sig))
}

#[tokio::test]
async fn kid_tricks_are_rejected_without_touching_files_or_network() {
    let env = Env::start().await;
    let canary = Upstream::start().await;
    let claims = access_claims();
    for kid in [
        "../../../dev/null".to_owned(),
        "' OR '1'='1".to_owned(),
        format!("http://{}/k", canary.addr),
        "k".repeat(10 * 1024),
    ] {
        let t = keys().mint_with_header(&json!({"alg": "RS256", "kid": kid}), &claims);
        assert_invalid_token(&env, &t, &format!("kid {:.30}", kid)).await;
    }
    let no_kid = keys().mint_with_header(&json!({"alg": "RS256"}), &claims);
    assert_invalid_token(&env, &no_kid, "no kid").await;
    assert_eq!(canary.count(), 0, "a kid URL was dereferenced");
}

#[tokio::test]
async fn key_location_and_critical_headers_are_rejected_and_never_fetched() {
    let env = Env::start().await;
    let canary = Upstream::start().await;
    let attacker = cognito_sidecar::issuer::DevIssuer::generate(&["evil"]).unwrap();
    let evil_jwk = attacker.jwks()["keys"][0].clone();
    let url = format!("http://{}/jwks.json", canary.addr);
    for (name, value) in [
        ("jku", json!(url)),
        ("x5u", json!(url)),
        ("jwk", evil_jwk),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
        ("cty", json!("JWT")),
        ("enc", json!("A128GCM")),
        ("zip", json!("DEF")),
    ] {
        let mut h = json!({"alg": "RS256", "kid": "evil"});
        h[name] = value;
        let t = attacker.mint_with_header(&h, &access_claims());
        assert_invalid_token(&env, &t, name).await;
        // Signed by the real key too: the header alone is disqualifying.
        let mut h = json!({"alg": "RS256", "kid": "k1"});
        h[name] = json!("x");
        assert_invalid_token(&env, &keys().mint_with_header(&h, &access_claims()), name).await;
    }
    assert_eq!(
        canary.count(),
        0,
        "a key URL from a token header was fetched"
    );
}

#[tokio::test]
async fn time_claims_are_enforced() {
    let env = Env::start().await;
    let n = now();
    let expired = mint(&with(access_claims(), "exp", json!(n - 65)));
    let r = env.get("/api/x", Some(&expired)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_token", error_description="The access token expired""#
    );
    for (what, claims) in [
        (
            "string exp",
            with(access_claims(), "exp", json!("9999999999")),
        ),
        ("negative exp", with(access_claims(), "exp", json!(-1))),
        ("missing exp", without(access_claims(), "exp")),
        (
            "string iat",
            with(access_claims(), "iat", json!(format!("{n}"))),
        ),
        ("missing iat", without(access_claims(), "iat")),
        (
            "nbf in 10 min",
            with(access_claims(), "nbf", json!(n + 600)),
        ),
        (
            "two-day lifetime",
            with(
                with(access_claims(), "iat", json!(n - 60)),
                "exp",
                json!(n + 2 * 86_400),
            ),
        ),
    ] {
        assert_invalid_token(&env, &mint(&claims), what).await;
    }
    let soon = mint(&with(access_claims(), "exp", json!(n + 30)));
    assert_eq!(
        env.get("/api/x", Some(&soon)).await.status(),
        200,
        "valid for 30 more seconds"
    );
}

#[tokio::test]
async fn issuer_client_and_token_use_must_match_the_pool() {
    let env = Env::start().await;
    for (what, claims) in [
        (
            "other pool",
            with(
                access_claims(),
                "iss",
                json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"),
            ),
        ),
        (
            "trailing slash",
            with(access_claims(), "iss", json!(format!("{ISS}/"))),
        ),
        ("array iss", with(access_claims(), "iss", json!([ISS]))),
        (
            "access for other client",
            with(access_claims(), "client_id", json!("C2")),
        ),
        (
            "array client_id",
            with(access_claims(), "client_id", json!([CLIENT])),
        ),
        ("id for other client", with(id_claims(), "aud", json!("C2"))),
        ("token_use missing", without(access_claims(), "token_use")),
        (
            "token_use upper case",
            with(access_claims(), "token_use", json!("ACCESS")),
        ),
    ] {
        assert_invalid_token(&env, &mint(&claims), what).await;
    }
    // Route-level token kinds.
    let r = env.get("/write/x", Some(&mint(&id_claims()))).await;
    assert_eq!(r.status(), 401, "ID token on an access-only route");
    let r = env.get("/ids/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 401, "access token on an ID-only route");
}

#[tokio::test]
async fn duplicate_claims_are_rejected() {
    let env = Env::start().await;
    let c = access_claims().to_string();
    let dup = c.replacen(
        r#""token_use":"access""#,
        r#""token_use":"id","token_use":"access""#,
        1,
    );
    assert_ne!(dup, c);
    let t = keys().mint_raw("k1", r#"{"alg":"RS256","kid":"k1"}"#, &dup);
    assert_invalid_token(&env, &t, "duplicate token_use").await;
    let t = keys().mint_raw("k1", r#"{"alg":"RS256","alg":"RS256","kid":"k1"}"#, &c);
    assert_invalid_token(&env, &t, "duplicate alg").await;
}

#[tokio::test]
async fn missing_groups_and_scopes_are_403_insufficient_scope() {
    let env = Env::start().await;
    let r = env.get("/admin/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope""#
    );
    assert_eq!(r.text().await.unwrap(), r#"{"error":"insufficient_scope"}"#);
    let r = env.get("/write/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope", scope="api/write""#
    );
    assert_eq!(env.upstream.count(), 0);
    let admin = mint(&with(access_claims(), "cognito:groups", json!(["admins"])));
    assert_eq!(env.get("/admin/x", Some(&admin)).await.status(), 200);
    for p in ["/ADMIN/x", "/admin./x", "/admin;v=1/x"] {
        let req = format!(
            "GET {p} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            mint(&access_claims())
        );
        let resp = env.raw(req.as_bytes()).await;
        assert!(status_line(&resp).contains("403"), "{p}: {resp}");
    }
}

#[tokio::test]
async fn unknown_kid_and_bad_signature_answers_are_byte_identical() {
    let env = Env::start().await;
    let t = mint(&access_claims());
    let mut forged: Vec<char> = t.chars().collect();
    let last = forged.len() - 5;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let unknown = keys().mint("k3", &access_claims());
    let a = env.raw(format!("GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {forged}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let b = env.raw(format!("GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {unknown}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let strip_date = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(status_line(&a).contains("401"), "{a}");
    assert_eq!(strip_date(&a), strip_date(&b));
    assert!(
        !a.contains("k3") && !a.contains(ISS),
        "no kid or issuer echoed"
    );
}

#[tokio::test]
async fn head_requests_get_the_challenge_without_a_body() {
    let env = Env::start().await;
    let r = env.client.head(env.url("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn optional_routes_never_downgrade_an_invalid_token_to_anonymous() {
    let env = Env::start().await;
    assert_eq!(env.get("/opt/x", None).await.status(), 200);
    assert!(env.upstream.last().header("x-auth-sub").is_none());
    let bad_iss = mint(&with(
        access_claims(),
        "iss",
        json!("https://cognito-idp.us-east-1.amazonaws.com/x_Y"),
    ));
    assert_eq!(env.get("/opt/x", Some(&bad_iss)).await.status(), 401);
    let expired = mint(&with(access_claims(), "exp", json!(now() - 600)));
    assert_eq!(env.get("/opt/x", Some(&expired)).await.status(), 401);
    assert_eq!(
        env.get("/opt/x", Some(&mint(&access_claims())))
            .await
            .status(),
        200
    );
    assert!(
        env.upstream.last().header("x-auth-sub").is_some(),
        "valid token on optional route gets identity"
    );
}

#[tokio::test]
async fn cors_preflights_pass_without_a_token_but_bare_options_do_not() {
    let env = Env::start().await;
    let r = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/api/x"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("x-auth-sub", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        env.upstream.last().header("x-auth-sub").is_none(),
        "identity stripped on preflight"
    );
    let r = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/api/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn connect_trace_and_asterisk_options_are_not_forwarded() {
    let env = Env::start().await;
    let r = env
        .raw(b"TRACE /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&r).contains("405"), "{r}");
    let r = env
        .raw(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
        .await;
    assert!(
        status_line(&r).contains("405") || status_line(&r).contains("400"),
        "{r}"
    );
    let r = env
        .raw(b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&r).contains("400"), "{r}");
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn denial_reasons_are_counted_with_bounded_labels() {
    let env = Env::start().await;
    let series = |m: &str| {
        m.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // Warm up every series these requests touch, then count.
    let warm =
        keys().mint_with_header(&json!({"alg": "RS256", "kid": "warm-up"}), &access_claims());
    let _ = env.get("/api/warm", Some(&warm)).await;
    let before = series(&env.metrics().await);
    for i in 0..50 {
        let t = keys().mint_with_header(
            &json!({"alg": "RS256", "kid": format!("random-{i}")}),
            &access_claims(),
        );
        let _ = env.get(&format!("/api/{i}"), Some(&t)).await;
    }
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_auth_denied_total{reason="unknown_kid"}"#
        ),
        51.0
    );
    assert!(!m.contains("random-"), "attacker-chosen kid became a label");
    assert_eq!(
        series(&m),
        before,
        "distinct kids and paths created new series"
    );
}
