//! The key lifecycle over real sockets: rotation, removal, kid-miss rate limiting,
//! bad JWKS answers, and an IdP that is down from the start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::sync::Arc;

use serde_json::json;
use support::*;

#[tokio::test]
async fn a_rotated_in_key_is_accepted_after_one_kid_miss_refresh() {
    let env = Env::start_custom(JwksAnswer::Json(jwks_of(&["k1"])), "", "", true).await;
    assert_eq!(env.jwks.fetches(), 1);
    env.jwks.set(JwksAnswer::Json(jwks_of(&["k1", "k2"])));
    let t = keys().mint("k2", &access_claims());
    assert_eq!(
        env.get("/api/x", Some(&t)).await.status(),
        200,
        "new kid accepted once fetched"
    );
    assert_eq!(env.jwks.fetches(), 2);
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_jwks_kid_miss_refreshes_total{pool="test"}"#
        ),
        1.0
    );
    assert_eq!(metric(&m, r#"cognito_sidecar_jwks_keys{pool="test"}"#), 2.0);
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_the_next_refresh() {
    let env = Env::start().await;
    let old = keys().mint("k1", &access_claims());
    assert_eq!(env.get("/api/x", Some(&old)).await.status(), 200);
    env.jwks.set(JwksAnswer::Json(jwks_of(&["k2"])));
    // Any refresh publishes the new set; an unknown kid triggers one.
    let unknown = keys().mint("k3", &access_claims());
    assert_eq!(env.get("/api/x", Some(&unknown)).await.status(), 401);
    assert_eq!(env.jwks.fetches(), 2);
    assert_eq!(
        env.get("/api/x", Some(&old)).await.status(),
        401,
        "removed key still verifies"
    );
    let new = keys().mint("k2", &access_claims());
    assert_eq!(env.get("/api/x", Some(&new)).await.status(), 200);
}

#[tokio::test]
async fn a_storm_of_unknown_kids_causes_at_most_one_refetch_and_valid_traffic_continues() {
    let env = Arc::new(Env::start().await);
    let valid = mint(&access_claims());
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let env = Arc::clone(&env);
        let valid = valid.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..63 {
                let kid = format!("rnd-{worker}-{i}");
                let t =
                    keys().mint_with_header(&json!({"alg": "RS256", "kid": kid}), &access_claims());
                statuses.push((false, env.get("/api/x", Some(&t)).await.status().as_u16()));
                if i % 8 == 0 {
                    statuses.push((
                        true,
                        env.get("/api/x", Some(&valid)).await.status().as_u16(),
                    ));
                }
            }
            statuses
        }));
    }
    let mut bad = 0;
    for t in tasks {
        for (is_valid, status) in t.await.unwrap() {
            if is_valid {
                assert_eq!(status, 200, "valid token refused during the storm");
            } else {
                assert_eq!(status, 401);
                bad += 1;
            }
        }
    }
    assert_eq!(bad, 32 * 63);
    assert!(
        env.jwks.fetches() <= 2,
        "JWKS fetched {} times",
        env.jwks.fetches()
    );
}

#[tokio::test]
async fn bad_jwks_answers_keep_the_last_good_keys() {
    let canary = JwksServer::start(JwksAnswer::Json(String::new())).await;
    let attacker = cognito_sidecar::issuer::DevIssuer::generate(&["evil"]).unwrap();
    canary.set(JwksAnswer::Json(attacker.jwks().to_string()));
    let env = Env::start_custom(
        JwksAnswer::Json(jwks_of(&["k1"])),
        "",
        "[jwks]\nkid_miss_min_interval_seconds = 0\nmax_bytes = 65536",
        true,
    )
    .await;
    let good = mint(&access_claims());
    let weak_only = json!({"keys": [{"kty": "RSA", "kid": "weak", "n": "xcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcU", "e": "AQAB"}]});
    let answers = [
        ("500", JwksAnswer::Status(500)),
        ("404", JwksAnswer::Status(404)),
        (
            "garbage",
            JwksAnswer::Bytes(b"<html>not json</html>".to_vec()),
        ),
        ("no keys", JwksAnswer::Json(r#"{"keys":[]}"#.into())),
        ("weak key only", JwksAnswer::Json(weak_only.to_string())),
        ("5 MB", JwksAnswer::Bytes(vec![b' '; 5 * 1024 * 1024])),
        ("redirect", JwksAnswer::Redirect(canary.url())),
    ];
    for (what, answer) in answers {
        env.jwks.set(answer);
        let before = env.jwks.fetches();
        let probe = keys().mint_with_header(
            &json!({"alg": "RS256", "kid": format!("probe-{what}")}),
            &access_claims(),
        );
        assert_eq!(
            env.get("/api/x", Some(&probe)).await.status(),
            401,
            "{what}"
        );
        assert_eq!(
            env.jwks.fetches(),
            before + 1,
            "{what}: no refetch happened"
        );
        assert_eq!(
            env.get("/api/x", Some(&good)).await.status(),
            200,
            "{what}: last good keys lost"
        );
    }
    let evil = attacker.mint("evil", &access_claims());
    assert_eq!(env.get("/api/x", Some(&evil)).await.status(), 401);
    assert_eq!(canary.fetches(), 0, "the redirect was followed");
    let m = env.metrics().await;
    for result in ["bad_status", "invalid", "no_usable_keys", "too_large"] {
        let series =
            format!("cognito_sidecar_jwks_fetches_total{{pool=\"test\",result=\"{result}\"}}");
        assert!(metric(&m, &series) >= 1.0, "{series} not counted:\n{m}");
    }
}

#[tokio::test]
async fn without_keys_protected_routes_answer_503_and_readiness_waits_for_them() {
    let env = Env::start_custom(JwksAnswer::Status(503), "", "", false).await;
    env.jwks.wait_fetches(1).await;
    let r = env.get("/api/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"temporarily_unavailable"}"#
    );
    assert_eq!(
        env.get("/api/x", None).await.status(),
        503,
        "no token, no keys"
    );
    let ready = env.admin_get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert!(
        ready.text().await.unwrap().contains("pool test"),
        "readiness names the pool"
    );
    assert_eq!(
        env.upstream.count(),
        0,
        "protected request forwarded without keys"
    );
    assert_eq!(
        env.get("/public/x", None).await.status(),
        200,
        "public routes keep working"
    );

    // The IdP comes back: the refresher retries on its own and readiness flips.
    env.jwks.set(JwksAnswer::Json(jwks_of(&["k1"])));
    let mut running = env;
    tokio::time::timeout(std::time::Duration::from_secs(15), running.sidecar.ready())
        .await
        .expect("keys never loaded after the IdP recovered");
    let ready = running.admin_get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        running
            .get("/api/x", Some(&mint(&access_claims())))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn admin_endpoints_are_not_served_on_the_proxy_port() {
    let env = Env::start().await;
    for p in ["/metrics", "/readyz", "/healthz"] {
        let r = env
            .client
            .get(env.url(p))
            .header("user-agent", "kube-probe/1.29")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{p} answered on the proxy port");
    }
    assert_eq!(
        env.client
            .get(env.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(env.admin_get("/readyz").await.status(), 200);
    let m = env.metrics().await;
    assert!(m.contains("cognito_sidecar_build_info"));
}

#[tokio::test]
async fn shutdown_fails_readiness_and_drains_in_flight_requests() {
    let upstream = Upstream::start_with(std::time::Duration::from_millis(500)).await;
    let env = Env::with_upstream(upstream, "", "").await;
    let url = env.url("/api/slow");
    let client = env.client.clone();
    let token = mint(&access_claims());
    let in_flight = tokio::spawn(async move {
        client
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .map(|r| r.status())
    });
    // Wait until the upstream has the request, then stop.
    env.upstream.wait_count(1).await;
    let proxy = env.sidecar.proxy_addr;
    env.stop().await;
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "in-flight request was cut off"
    );
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "still accepting after shutdown"
    );
}
