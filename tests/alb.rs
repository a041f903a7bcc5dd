//! Behind an ALB that authenticates with Cognito, over real sockets: the data header
//! (`x-amzn-oidc-data`, ES256 from the load balancer, key fetched by kid) admits a
//! request alone or must match the access token (`x-amzn-oidc-accesstoken`); every
//! failure is a 401, a key endpoint that is down fails closed (503), and without
//! `[alb]` the headers are neither trusted nor forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use support::alb::*;
use support::*;

const KID: &str = "alb-kid-1";

async fn behind_alb(alb: &str) -> (Env, AlbSigner, AlbKeyServer) {
    let signer = AlbSigner::new(KID);
    let server = AlbKeyServer::start().await;
    server.publish(&signer);
    let tables = if alb.contains("verify_data") {
        format!(
            "[alb]\n{alb}\nsigner_arn = \"{ALB_ARN}\"\npublic_key_url = \"{}\"\n",
            server.url()
        )
    } else {
        format!("[alb]\n{alb}\n")
    };
    (Env::configured("", &tables).await, signer, server)
}

async fn send(env: &Env, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = env.client.get(env.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn data(signer: &AlbSigner, sub: &str) -> String {
    signer.data(
        ALB_ARN,
        now() + 60,
        &alb_userinfo(sub, "alice", "alice@example.com", now() + 60),
    )
}

#[tokio::test]
async fn a_valid_data_header_alone_admits_the_user_it_names() {
    let (env, signer, server) = behind_alb("verify_data = true").await;
    let ok = send(
        &env,
        "/api/x",
        &[("x-amzn-oidc-data", &data(&signer, "sub-1"))],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-sub").as_deref(), Some("sub-1"));
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(
        seen.header("x-auth-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(seen.header("x-amzn-oidc-data"), None, "never forwarded");
    send(
        &env,
        "/api/y",
        &[("x-amzn-oidc-data", &data(&signer, "sub-1"))],
    )
    .await;
    assert_eq!(server.hits(), 1, "the key is fetched once");
    assert_eq!(
        send(&env, "/api/x", &[]).await.status(),
        401,
        "no header, no entry"
    );
}

#[tokio::test]
async fn every_bad_data_header_is_a_401() {
    let (env, signer, server) = behind_alb("verify_data = true").await;
    let user = alb_userinfo("sub-1", "alice", "a@example.com", now() + 60);
    let other_key = AlbSigner::new(KID);
    let stranger = AlbSigner::new("alb-kid-unknown");
    let cases = [
        (
            "wrong signer",
            signer.data(OTHER_ALB_ARN, now() + 60, &user),
        ),
        ("expired", signer.data(ALB_ARN, now() - 3600, &user)),
        (
            "forged with another key",
            other_key.data(ALB_ARN, now() + 60, &user),
        ),
        ("unknown kid", stranger.data(ALB_ARN, now() + 60, &user)),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (what, value) in cases {
        let r = send(&env, "/api/x", &[("x-amzn-oidc-data", &value)]).await;
        assert_eq!(r.status(), 401, "{what}");
        assert!(r.headers().contains_key("www-authenticate"), "{what}");
    }
    assert_eq!(env.upstream.count(), 0);
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_auth_denied_total{reason="alb_wrong_signer"}"#
        ),
        1.0
    );
    assert!(server.hits() >= 2, "the unknown kid was asked for");
}

#[tokio::test]
async fn a_key_endpoint_that_is_down_fails_closed() {
    let (env, signer, server) = behind_alb("verify_data = true").await;
    server.set_failing(true);
    let r = send(
        &env,
        "/api/x",
        &[("x-amzn-oidc-data", &data(&signer, "sub-1"))],
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn the_access_token_from_the_alb_is_verified_like_a_bearer_token() {
    let (env, _signer, _server) = behind_alb("access_token = true").await;
    let t = mint(&access_claims());
    let ok = send(&env, "/api/x", &[("x-amzn-oidc-accesstoken", &t)]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(env.upstream.last().header("x-amzn-oidc-accesstoken"), None);
    let forged = format!("{}x", &t[..t.len() - 1]);
    assert_eq!(
        send(&env, "/api/x", &[("x-amzn-oidc-accesstoken", &forged)])
            .await
            .status(),
        401
    );
    let both = send(
        &env,
        "/api/x",
        &[
            ("x-amzn-oidc-accesstoken", &t),
            ("authorization", &format!("Bearer {t}")),
        ],
    )
    .await;
    assert_eq!(both.status(), 400, "two credentials");
}

#[tokio::test]
async fn with_both_the_access_token_and_the_data_header_must_name_the_same_user() {
    let (env, signer, _server) = behind_alb("access_token = true\nverify_data = true").await;
    let t = mint(&access_claims());
    let sub = access_claims()["sub"].as_str().unwrap().to_owned();
    let same = send(
        &env,
        "/api/x",
        &[
            ("x-amzn-oidc-accesstoken", &t),
            ("x-amzn-oidc-data", &data(&signer, &sub)),
        ],
    )
    .await;
    assert_eq!(same.status(), 200);
    let other = send(
        &env,
        "/api/x",
        &[
            ("x-amzn-oidc-accesstoken", &t),
            ("x-amzn-oidc-data", &data(&signer, "someone-else")),
        ],
    )
    .await;
    assert_eq!(other.status(), 401);
    let token_only = send(&env, "/api/x", &[("x-amzn-oidc-accesstoken", &t)]).await;
    assert_eq!(token_only.status(), 401, "the data header is required too");
}

#[tokio::test]
async fn without_an_alb_section_its_headers_are_neither_trusted_nor_forwarded() {
    let env = Env::start().await;
    let signer = AlbSigner::new(KID);
    let t = mint(&access_claims());
    let r = send(
        &env,
        "/api/x",
        &[
            ("x-amzn-oidc-accesstoken", &t),
            ("x-amzn-oidc-data", &data(&signer, "sub-1")),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    let public = send(
        &env,
        "/public/x",
        &[
            ("x-amzn-oidc-accesstoken", &t),
            ("x-amzn-oidc-identity", "admin"),
        ],
    )
    .await;
    assert_eq!(public.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-amzn-oidc-accesstoken"), None);
    assert_eq!(seen.header("x-amzn-oidc-identity"), None);
}
