//! ALB data headers verified over real sockets: keys fetched by `kid` from a local
//! stand-in for the ELB public-key endpoint, signed by a local load balancer stand-in
//! (`support::alb`). Covers the outcomes a proxy must tell apart (valid, wrong signer,
//! expired, unknown kid, forged, endpoint down) and the bounds on what an attacker
//! choosing `kid`s can make the sidecar fetch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use cognito_sidecar::alb::{AlbClaims, AlbError, AlbKeyLimits, AlbKeys, parse_data};
use cognito_sidecar::clock::unix_now;
use cognito_sidecar::config::Config;
use support::alb::{ALB_ARN, ALB_CLIENT, AlbKeyServer, AlbSigner, OTHER_ALB_ARN, alb_userinfo};

const KID: &str = "7f1e3c2a-5b6d-4e8f-9a0b-1c2d3e4f5a6b";

fn store(server: &AlbKeyServer) -> AlbKeys {
    store_with(server, AlbKeyLimits::default())
}

fn store_with(server: &AlbKeyServer, limits: AlbKeyLimits) -> AlbKeys {
    AlbKeys::new(&server.url(), Duration::from_millis(2000), limits).unwrap()
}

/// What the proxy does: parse, take the key from the cache or fetch it, verify.
async fn verify(keys: &AlbKeys, value: &str) -> Result<AlbClaims, AlbError> {
    let data = parse_data(value)?;
    let key = match keys.get(data.kid()) {
        Some(key) => key,
        None => keys.fetch(data.kid()).await?,
    };
    data.verify(&key, ALB_ARN, unix_now(), 0)
}

async fn alb_with_published_key() -> (AlbSigner, AlbKeyServer) {
    let signer = AlbSigner::new(KID);
    let server = AlbKeyServer::start().await;
    server.publish(&signer);
    (signer, server)
}

fn userinfo() -> serde_json::Value {
    alb_userinfo("sub-1", "alice", "alice@example.com", unix_now() + 120)
}

#[tokio::test]
async fn a_valid_data_header_verifies_with_a_key_fetched_from_the_endpoint() {
    let (signer, server) = alb_with_published_key().await;
    let keys = store(&server);
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    let claims = verify(&keys, &value).await.unwrap();
    assert_eq!(claims.sub, "sub-1");
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.client, ALB_CLIENT);
    // The key is now cached: the next header costs no fetch.
    assert!(keys.snapshot().get(KID).is_some());
    verify(&keys, &value).await.unwrap();
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn padded_base64url_segments_are_accepted() {
    let (signer, server) = alb_with_published_key().await;
    let keys = store(&server);
    let value = signer.sign(&signer.header(ALB_ARN, unix_now() + 60), &userinfo(), true);
    assert!(
        value.contains('='),
        "the header must carry padding: {value}"
    );
    assert_eq!(verify(&keys, &value).await.unwrap().sub, "sub-1");
}

#[tokio::test]
async fn a_header_signed_for_another_load_balancer_is_refused_as_wrong_signer() {
    let (signer, server) = alb_with_published_key().await;
    let value = signer.data(OTHER_ALB_ARN, unix_now() + 60, &userinfo());
    assert_eq!(
        verify(&store(&server), &value).await.err(),
        Some(AlbError::WrongSigner)
    );
}

#[tokio::test]
async fn an_expired_data_header_is_refused() {
    let (signer, server) = alb_with_published_key().await;
    let value = signer.data(ALB_ARN, unix_now() - 5, &userinfo());
    assert_eq!(
        verify(&store(&server), &value).await.err(),
        Some(AlbError::Expired)
    );
}

#[tokio::test]
async fn a_kid_the_endpoint_does_not_know_is_refused_and_asked_for_once() {
    let server = AlbKeyServer::start().await;
    let stranger = AlbSigner::new("not-published");
    let keys = store(&server);
    let value = stranger.data(ALB_ARN, unix_now() + 60, &userinfo());
    assert_eq!(
        verify(&keys, &value).await.err(),
        Some(AlbError::UnknownKid)
    );
    assert_eq!(
        verify(&keys, &value).await.err(),
        Some(AlbError::UnknownKid)
    );
    assert_eq!(server.hits(), 1, "the failure is remembered for a while");
    assert!(keys.snapshot().is_empty());
}

#[tokio::test]
async fn a_header_forged_with_another_key_under_the_same_kid_has_a_bad_signature() {
    let (_signer, server) = alb_with_published_key().await;
    let forger = AlbSigner::new(KID);
    let value = forger.data(ALB_ARN, unix_now() + 60, &userinfo());
    assert_eq!(
        verify(&store(&server), &value).await.err(),
        Some(AlbError::Signature)
    );
}

#[tokio::test]
async fn a_key_endpoint_that_is_down_fails_closed_and_caches_no_key() {
    let (signer, server) = alb_with_published_key().await;
    server.set_failing(true);
    let keys = store(&server);
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    let err = verify(&keys, &value).await.err();
    assert_eq!(err, Some(AlbError::KeyUnavailable));
    assert!(err.unwrap().is_unavailable());
    assert!(keys.get(KID).is_none());

    // Nothing listening at all.
    let closed = AlbKeys::new(
        "http://127.0.0.1:9/",
        Duration::from_millis(500),
        AlbKeyLimits::default(),
    )
    .unwrap();
    assert_eq!(
        verify(&closed, &value).await.err(),
        Some(AlbError::KeyUnavailable)
    );
    assert!(closed.snapshot().is_empty());
}

#[tokio::test]
async fn a_key_endpoint_slower_than_the_timeout_fails_closed() {
    let (signer, server) = alb_with_published_key().await;
    server.set_delay(Duration::from_secs(3));
    let keys = AlbKeys::new(
        &server.url(),
        Duration::from_millis(200),
        AlbKeyLimits::default(),
    )
    .unwrap();
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    assert_eq!(
        verify(&keys, &value).await.err(),
        Some(AlbError::KeyUnavailable)
    );
    assert!(keys.get(KID).is_none());
}

#[tokio::test]
async fn garbage_and_oversized_key_documents_are_bad_keys_and_cache_nothing() {
    let server = AlbKeyServer::start().await;
    let keys = store(&server);
    server.publish_pem("garbage", "<html>hello</html>");
    server.publish_pem("huge", &"A".repeat(9 * 1024));
    let rsa = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n";
    server.publish_pem("rsa", rsa);
    for kid in ["garbage", "huge", "rsa"] {
        assert_eq!(keys.fetch(kid).await.err(), Some(AlbError::BadKey), "{kid}");
    }
    assert!(keys.snapshot().is_empty());
}

#[tokio::test]
async fn an_endpoint_that_recovers_serves_the_key_once_the_failure_has_lapsed() {
    let (signer, server) = alb_with_published_key().await;
    server.set_failing(true);
    let keys = store_with(
        &server,
        AlbKeyLimits {
            negative_ttl: Duration::ZERO,
            ..AlbKeyLimits::default()
        },
    );
    assert_eq!(keys.fetch(KID).await.err(), Some(AlbError::KeyUnavailable));
    server.set_failing(false);
    keys.fetch(KID).await.unwrap();
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    assert!(verify(&keys, &value).await.is_ok());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn concurrent_fetches_of_one_kid_share_one_request() {
    let (_signer, server) = alb_with_published_key().await;
    server.set_delay(Duration::from_millis(300));
    let keys = Arc::new(store(&server));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let keys = Arc::clone(&keys);
            tokio::spawn(async move { keys.fetch(KID).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn concurrent_fetches_of_a_failing_kid_share_one_request_and_its_failure() {
    let server = AlbKeyServer::start().await;
    server.set_delay(Duration::from_millis(300));
    let keys = Arc::new(store(&server));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let keys = Arc::clone(&keys);
            tokio::spawn(async move { keys.fetch("missing").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().err(), Some(AlbError::UnknownKid));
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_flood_of_bogus_kids_reaches_the_endpoint_at_most_the_fetch_budget() {
    let (signer, server) = alb_with_published_key().await;
    let keys = Arc::new(store(&server));
    let budget = AlbKeyLimits::default().max_fetches;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let keys = Arc::clone(&keys);
            tokio::spawn(async move { keys.fetch(&format!("bogus-{i}")).await })
        })
        .collect();
    let mut throttled = 0;
    for t in tasks {
        match t.await.unwrap() {
            Err(AlbError::Throttled) => throttled += 1,
            Err(AlbError::UnknownKid) => {}
            other => panic!("a bogus kid gave {other:?}"),
        }
    }
    assert_eq!(server.hits(), budget);
    assert_eq!(throttled, 200 - budget);
    // The same bogus kids again: answered from memory or throttled, never fetched.
    for i in 0..50 {
        assert!(keys.fetch(&format!("bogus-{i}")).await.is_err());
    }
    assert_eq!(server.hits(), budget);
    // Fail closed while the budget is spent, even for the real key.
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    assert_eq!(verify(&keys, &value).await.err(), Some(AlbError::Throttled));
}

#[tokio::test]
async fn the_alb_section_builds_a_key_store_for_its_public_key_url() {
    let (signer, server) = alb_with_published_key().await;
    let cfg = Config::from_toml(&format!(
        r#"
        listen = "127.0.0.1:0"
        upstream = "http://127.0.0.1:3000"
        [[pools]]
        id = "us-east-1_AbCdEf123"
        client_ids = ["abc123"]
        token_use = ["access"]
        [alb]
        access_token = true
        verify_data = true
        signer_arn = "{ALB_ARN}"
        public_key_url = "{}"
        key_fetch_timeout_ms = 1500
        leeway_seconds = 0
        "#,
        server.url()
    ))
    .unwrap();
    let data = cfg.alb.unwrap().data.unwrap();
    assert_eq!(data.region, "us-east-1");
    let keys = AlbKeys::from_settings(&data).unwrap();
    let value = signer.data(ALB_ARN, unix_now() + 60, &userinfo());
    let parsed = parse_data(&value).unwrap();
    let key = keys.fetch(parsed.kid()).await.unwrap();
    let leeway = i64::try_from(data.leeway_seconds).unwrap();
    let claims = parsed
        .verify(&key, &data.signer_arn, unix_now(), leeway)
        .unwrap();
    assert_eq!(claims.sub, "sub-1");
}
