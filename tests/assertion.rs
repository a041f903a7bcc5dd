//! The signed identity for backends that verify (`[assertion]`), over real sockets: the
//! backend's assertion is checked by an independent verifier (jsonwebtoken's own
//! `decode`, ES256 pinned, `iss`/`aud` required) against the JWKS fetched from the
//! admin port; it is absent whenever the request was not authenticated, a client's copy
//! never reaches the backend, a reload rotates the key without breaking assertions in
//! flight, and a configured key file keeps its `kid` across restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use cognito_sidecar::config::Config;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use support::*;

const ASSERTION: &str = "[assertion]\nissuer = \"sidecar.test\"\naudience = \"orders\"\n";

/// The admin port's JWKS, checking how it is served.
async fn served_jwks(env: &Env) -> Vec<Value> {
    let r = env.admin_get("/.well-known/jwks.json").await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("cache-control"), "max-age=60");
    let doc: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    doc["keys"].as_array().unwrap().clone()
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Verifies `jws` as a backend would: the key named by its `kid` in `keys`, ES256 only,
/// `iss` and `aud` required, `exp` and `nbf` checked.
fn verify(jws: &str, keys: &[Value]) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(jws).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("EC"), &json!("P-256")));
    let key =
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&["sidecar.test"]);
    validation.set_audience(&["orders"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(jws, &key, &validation)
        .map(|t| t.claims)
        .map_err(|e| e.to_string())
}

/// The assertion the backend received with the last request.
fn received(env: &Env) -> String {
    let seen = env.upstream.last();
    assert_eq!(seen.count("x-auth-assertion"), 1, "{:?}", seen.headers);
    seen.header("x-auth-assertion").unwrap()
}

#[tokio::test]
async fn the_backend_receives_an_assertion_that_verifies_against_the_served_jwks() {
    let env = Env::configured("", ASSERTION).await;
    let token = mint(&with(access_claims(), "cognito:groups", json!(["admins"])));
    assert_eq!(env.get("/api/orders", Some(&token)).await.status(), 200);
    let claims = verify(&received(&env), &served_jwks(&env).await).expect("verifies");
    assert_eq!(claims["sub"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(claims["groups"], json!(["admins"]));
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["original_jti"], "j1");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["pool"], "test");
    assert_eq!(claims["scope"], "api/read openid");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 60, "the default lifetime");
    assert!((iat - now()).abs() <= 5);

    // An ID token: its own token_use, groups, and no jti to carry over.
    let id = mint(&id_claims());
    assert_eq!(env.get("/ids/me", Some(&id)).await.status(), 200);
    let claims = verify(&received(&env), &served_jwks(&env).await).expect("verifies");
    assert_eq!(claims["token_use"], "id");
    assert_eq!(claims["groups"], json!(["users"]));
    assert!(claims.get("original_jti").is_none());
}

#[tokio::test]
async fn an_assertion_for_another_audience_or_altered_in_transit_does_not_verify() {
    let env = Env::configured("", ASSERTION).await;
    let token = mint(&access_claims());
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    let jws = received(&env);
    let keys = served_jwks(&env).await;
    let key = DecodingKey::from_ec_components(
        keys[0]["x"].as_str().unwrap(),
        keys[0]["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut other = Validation::new(Algorithm::ES256);
    other.set_audience(&["billing"]);
    assert!(jsonwebtoken::decode::<Value>(&jws, &key, &other).is_err());
    let (head, sig) = jws.rsplit_once('.').unwrap();
    let (jose, _) = head.split_once('.').unwrap();
    let forged = format!("{jose}.{}.{sig}", b64(&json!({"sub": "admin"}).to_string()));
    assert!(verify(&forged, &keys).is_err());
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn no_assertion_reaches_the_backend_unless_the_request_was_authenticated() {
    let env = Env::configured("", ASSERTION).await;
    let token = mint(&access_claims());
    let spoofed = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    // A public route ignores even a valid token; an optional route without one is
    // anonymous; a preflight is forwarded without credentials.
    let requests = [
        env.client
            .get(env.url("/public/x"))
            .header("authorization", format!("Bearer {token}")),
        env.client.get(env.url("/opt/x")),
        env.client
            .request(reqwest::Method::OPTIONS, env.url("/api/x"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST"),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let r = request
            .header("x-auth-assertion", spoofed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        let seen = env.upstream.last();
        assert_eq!(seen.count("x-auth-assertion"), 0, "request {i}");
        assert_eq!(seen.header("x-auth-sub"), None, "request {i}");
    }
    // A refused request never reaches the backend at all.
    let before = env.upstream.count();
    assert_eq!(env.get("/api/x", None).await.status(), 401);
    assert_eq!(env.upstream.count(), before);
}

#[tokio::test]
async fn a_client_sent_assertion_is_stripped_in_every_spelling() {
    // A header outside the reserved X-Auth- prefix: stripped because it is managed.
    let tables = format!("{ASSERTION}header = \"Sidecar-Identity\"\n");
    let env = Env::configured("", &tables).await;
    let keys = served_jwks(&env).await;
    let token = mint(&access_claims());
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for spelling in ["Sidecar-Identity", "sidecar_identity", "SIDECAR_IDENTITY"] {
        for (path, bearer) in [("/api/x", Some(&token)), ("/public/x", None)] {
            let mut r = env.client.get(env.url(path)).header(spelling, forged);
            if let Some(t) = bearer {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            assert_eq!(r.send().await.unwrap().status(), 200);
            let seen = env.upstream.last();
            let names: Vec<&str> = seen
                .headers
                .keys()
                .map(http::HeaderName::as_str)
                .filter(|n| n.replace('_', "-") == "sidecar-identity")
                .collect();
            match bearer {
                None => assert!(names.is_empty(), "{spelling} on {path}: {names:?}"),
                Some(_) => {
                    assert_eq!(names, ["sidecar-identity"], "{spelling}");
                    let ours = seen.header("sidecar-identity").unwrap();
                    assert_ne!(ours, forged);
                    verify(&ours, &keys).expect("the sidecar's own assertion");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_reload_rotates_the_key_and_assertions_signed_before_it_still_verify() {
    let env = Env::configured("", ASSERTION).await;
    let token = mint(&access_claims());
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    let before_reload = received(&env);
    let old = kids(&served_jwks(&env).await);
    assert_eq!(old.len(), 1);

    let text = config_text(&env.jwks.url(), env.upstream.addr, "", ASSERTION);
    env.sidecar
        .live
        .reload(Config::from_toml(&text).unwrap())
        .await
        .expect("the reload applies");
    let keys = served_jwks(&env).await;
    let now_served = kids(&keys);
    assert_eq!(now_served.len(), 2, "{now_served:?}");
    assert_ne!(now_served[0], old[0], "a new key signs after the reload");
    assert_eq!(now_served[1], old[0], "the old key is still published");
    verify(&before_reload, &keys).expect("an assertion in flight still verifies");

    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    let after = received(&env);
    let header = jsonwebtoken::decode_header(&after).unwrap();
    assert_eq!(header.kid.as_deref(), Some(now_served[0].as_str()));
    verify(&after, &keys).expect("the new assertion verifies");

    // A configuration without [assertion]: no header, no JWKS.
    let plain = config_text(&env.jwks.url(), env.upstream.addr, "", "");
    env.sidecar
        .live
        .reload(Config::from_toml(&plain).unwrap())
        .await
        .expect("the reload applies");
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    assert_eq!(env.upstream.last().count("x-auth-assertion"), 0);
    assert_eq!(env.admin_get("/.well-known/jwks.json").await.status(), 404);
}

#[tokio::test]
async fn without_an_assertion_section_there_is_no_header_and_no_jwks() {
    let env = Env::configured("", "").await;
    let token = mint(&access_claims());
    let r = env
        .client
        .get(env.url("/api/x"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-auth-assertion", "client-made")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.last().count("x-auth-assertion"), 0);
    assert_eq!(env.admin_get("/.well-known/jwks.json").await.status(), 404);
}

/// A P-256 private key in PKCS#8 PEM, generated for this test.
fn p256_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem()
}

#[tokio::test]
async fn a_configured_key_file_keeps_its_kid_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assertion.pem");
    std::fs::write(&path, p256_pem()).unwrap();
    let tables = format!("{ASSERTION}key_file = {path:?}\nlifetime_seconds = 300\n");
    let token = mint(&access_claims());

    let first = Env::configured("", &tables).await;
    let first_kids = kids(&served_jwks(&first).await);
    first.stop().await;

    let second = Env::configured("", &tables).await;
    let keys = served_jwks(&second).await;
    assert_eq!(kids(&keys), first_kids, "same key, same kid");
    assert_eq!(second.get("/api/x", Some(&token)).await.status(), 200);
    let claims = verify(&received(&second), &keys).expect("verifies");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300);

    // Reloading with the same key file keeps one key, not two copies of it.
    let text = config_text(&second.jwks.url(), second.upstream.addr, "", &tables);
    second
        .sidecar
        .live
        .reload(Config::from_toml(&text).unwrap())
        .await
        .expect("the reload applies");
    assert_eq!(kids(&served_jwks(&second).await), first_kids);
}

#[test]
fn assertion_problems_are_reported_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let p384 = dir.path().join("p384.pem");
    std::fs::write(
        &p384,
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_pem(),
    )
    .unwrap();
    let p = config_problems(
        "",
        &format!(
            "[assertion]\naudience = \"orders\"\nlifetime_seconds = 0\nkey_file = {garbage:?}\n"
        ),
    );
    for expected in [
        "assertion.issuer: missing required key".to_owned(),
        "assertion.lifetime_seconds: must be 1 to 3600".to_owned(),
        format!(
            "assertion.key_file: {} holds no PEM private key",
            garbage.display()
        ),
    ] {
        assert!(p.contains(expected.as_str()), "{expected:?} not in:\n{p}");
    }
    let p = config_problems(
        "",
        &format!("{ASSERTION}key_file = {p384:?}\nlifetime_seconds = 3601\n"),
    );
    for expected in [
        format!(
            "assertion.key_file: {} is not a P-256 (ES256) private key",
            p384.display()
        ),
        "assertion.lifetime_seconds: must be 1 to 3600".to_owned(),
    ] {
        assert!(p.contains(expected.as_str()), "{expected:?} not in:\n{p}");
    }
    let p = config_problems(
        "",
        "[assertion]\nissuer = \"s\"\naudience = \"a\"\nsigning = \"x\"\n",
    );
    assert!(p.contains("assertion: unknown field"), "{p}");
}
