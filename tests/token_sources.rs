//! Token sources over real sockets: where API Gateway and Amplify clients send tokens
//! (raw `Authorization`, a named header), accepted only where configured, refused
//! elsewhere with the normal challenge, two at once a 400, and never forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/gw/"
token_sources = ["bearer", "raw"]
[[routes]]
path = "/hdr/"
token_sources = ["header:X-Id-Token"]
[[routes]]
path = "/both/"
token_sources = ["raw", "header:X-Id-Token"]
"#;

async fn send(env: &Env, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = env.client.get(env.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn a_raw_id_token_in_authorization_is_accepted_only_where_configured() {
    let env = Env::configured("", ROUTES).await;
    let t = mint(&id_claims());
    let ok = send(&env, "/gw/x", &[("authorization", &t)]).await;
    assert_eq!(ok.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("id"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the token is not forwarded"
    );
    assert_eq!(
        send(&env, "/gw/x", &[("authorization", &format!("Bearer {t}"))])
            .await
            .status(),
        200,
        "Bearer still works there"
    );
    let elsewhere = send(&env, "/api/x", &[("authorization", &t)]).await;
    assert_eq!(elsewhere.status(), 401, "raw is opt-in");
    assert!(
        elsewhere.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    for not_a_jws in [
        "opaque-api-key",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "a.b",
        "a..c",
    ] {
        let r = send(&env, "/gw/x", &[("authorization", not_a_jws)]).await;
        assert_eq!(r.status(), 401, "{not_a_jws}");
    }
    assert_eq!(env.upstream.count(), 2);
}

#[tokio::test]
async fn a_named_header_carries_the_token_where_configured_and_never_reaches_the_backend() {
    let env = Env::configured("", ROUTES).await;
    let t = mint(&id_claims());
    let ok = send(&env, "/hdr/x", &[("x-id-token", &t)]).await;
    assert_eq!(ok.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-id-token"), None);
    let prefixed = send(&env, "/hdr/x", &[("x-id-token", &format!("Bearer {t}"))]).await;
    assert_eq!(prefixed.status(), 200);
    let bearer = send(&env, "/hdr/x", &[("authorization", &format!("Bearer {t}"))]).await;
    assert_eq!(bearer.status(), 401, "this route takes the header only");
    // On a route that does not take it, the header is no credential, and is still
    // removed: a backend never sees a token it was not meant to.
    let public = send(&env, "/public/x", &[("x-id-token", &t), ("x_id_token", &t)]).await;
    assert_eq!(public.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-id-token"), None);
    assert_eq!(seen.header("x_id_token"), None);
}

#[tokio::test]
async fn two_credentials_at_once_are_a_400_and_a_bad_one_is_a_401() {
    let env = Env::configured("", ROUTES).await;
    let t = mint(&id_claims());
    let two = send(
        &env,
        "/both/x",
        &[("authorization", &t), ("x-id-token", &t)],
    )
    .await;
    assert_eq!(two.status(), 400);
    let twice = env
        .client
        .get(env.url("/hdr/x"))
        .header("x-id-token", &t)
        .header("x-id-token", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400, "one source repeated");
    let forged = format!("{}x", &t[..t.len() - 1]);
    assert_eq!(
        send(&env, "/both/x", &[("x-id-token", &forged)])
            .await
            .status(),
        401
    );
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn the_top_level_list_applies_to_every_route_that_does_not_say() {
    let env = Env::configured("token_sources = [\"raw\"]", "").await;
    let t = mint(&access_claims());
    assert_eq!(
        send(&env, "/api/x", &[("authorization", &t)])
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&env, "/api/x", &[("authorization", &format!("Bearer {t}"))])
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn forward_authorization_forwards_the_verified_header_credential() {
    let env = Env::configured(
        "",
        &format!("{ROUTES}\n[identity]\nforward_authorization = true"),
    )
    .await;
    let t = mint(&id_claims());
    assert_eq!(
        send(&env, "/hdr/x", &[("x-id-token", &t)]).await.status(),
        200
    );
    assert_eq!(
        env.upstream.last().header("x-id-token").as_deref(),
        Some(t.as_str())
    );
    assert_eq!(
        send(&env, "/public/x", &[("x-id-token", &t)])
            .await
            .status(),
        200
    );
    assert_eq!(
        env.upstream.last().header("x-id-token"),
        None,
        "never on a public route"
    );
}
