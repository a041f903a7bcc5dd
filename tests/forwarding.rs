//! Forwarding over real sockets: identity to the backend, header hygiene (SECURITY.md
//! checklist E), canonical paths (F), framing and upstream failures (G).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::time::Duration;

use futures_util::stream;
use serde_json::json;
use support::*;

#[tokio::test]
async fn access_token_reaches_the_backend_as_identity_headers_without_authorization() {
    let env = Env::start().await;
    let r = env
        .get("/api/orders?id=7&x=%20y", Some(&mint(&access_claims())))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-upstream"],
        "echo",
        "upstream response headers pass back"
    );
    let seen = env.upstream.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.uri, "/api/orders?id=7&x=%20y",
        "path and query preserved"
    );
    assert_eq!(
        seen.header("x-auth-sub").as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("access"));
    assert_eq!(seen.header("x-auth-client-id").as_deref(), Some(CLIENT));
    assert_eq!(
        seen.header("x-auth-scope").as_deref(),
        Some("api/read,openid")
    );
    assert!(
        seen.header("x-auth-groups").is_none(),
        "absent claims are omitted, not sent empty"
    );
    assert!(seen.header("x-auth-email").is_none());
    assert!(
        seen.header("authorization").is_none(),
        "Authorization is not forwarded by default"
    );
}

#[tokio::test]
async fn id_token_identity_includes_verified_email_and_groups() {
    let env = Env::start().await;
    let claims = with(
        id_claims(),
        "cognito:groups",
        json!(["users", "a,b", "Équipe"]),
    );
    assert_eq!(env.get("/api/x", Some(&mint(&claims))).await.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("id"));
    assert_eq!(
        seen.header("x-auth-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        seen.header("x-auth-groups").as_deref(),
        Some("users,a%2Cb,%C3%89quipe")
    );
    let unverified = with(id_claims(), "email_verified", json!(false));
    assert_eq!(
        env.get("/api/x", Some(&mint(&unverified))).await.status(),
        200
    );
    assert!(
        env.upstream.last().header("x-auth-email").is_none(),
        "unverified email is not forwarded"
    );
}

#[tokio::test]
async fn machine_to_machine_tokens_get_no_empty_identity_headers() {
    let env = Env::start().await;
    let m2m = json!({"iss": ISS, "sub": CLIENT, "token_use": "access", "client_id": CLIENT,
                     "scope": "orders/read", "exp": now() + 600, "iat": now() - 10, "jti": "m2m"});
    assert_eq!(env.get("/api/x", Some(&mint(&m2m))).await.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-sub").as_deref(), Some(CLIENT));
    for absent in ["x-auth-username", "x-auth-groups", "x-auth-email"] {
        assert!(
            seen.header(absent).is_none(),
            "{absent} sent for an M2M token"
        );
    }
    assert_eq!(seen.header("x-auth-scope").as_deref(), Some("orders/read"));
}

#[tokio::test]
async fn claim_values_with_control_characters_cannot_split_headers() {
    let env = Env::start().await;
    let claims = with(
        access_claims(),
        "username",
        json!("eve\r\nX-Auth-Groups: admins\u{0}"),
    );
    assert_eq!(env.get("/api/x", Some(&mint(&claims))).await.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(
        seen.header("x-auth-username").as_deref(),
        Some("eve%0D%0AX-Auth-Groups:%20admins%00")
    );
    assert!(seen.header("x-auth-groups").is_none());
}

#[tokio::test]
async fn configured_claim_mappings_and_the_claims_header_are_sent() {
    let env = Env::configured("", "[identity]\nclaims_header = \"X-Auth-Claims\"\nforward_authorization = true\n[identity.claims]\n\"custom:tenant\" = \"X-Tenant\"\n")
    .await;
    let claims = with(id_claims(), "custom:tenant", json!("acme"));
    let token = mint(&claims);
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}"))
    );
    let encoded = seen.header("x-auth-claims").expect("claims header");
    let decoded =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, encoded).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(json["custom:tenant"], "acme");
    assert_eq!(json["sub"], claims["sub"]);
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_backend_even_on_public_routes() {
    let env = Env::start().await;
    let req = b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-Auth-Sub: admin\r\nx-auth-groups: admins\r\nX_Auth_User_Id: admin\r\nX-AUTH-EMAIL: ceo@corp\r\nConnection: close\r\n\r\n";
    let resp = env.raw(req).await;
    assert!(status_line(&resp).contains("200"), "{resp}");
    let seen = env.upstream.last();
    let leaked: Vec<_> = seen
        .headers
        .keys()
        .filter(|k| k.as_str().replace('_', "-").starts_with("x-auth-"))
        .collect();
    assert!(
        leaked.is_empty(),
        "spoofed headers reached the backend: {leaked:?}"
    );
    // With a valid token the backend sees exactly one value: the token's.
    let r = env
        .client
        .get(env.url("/api/x"))
        .header(
            "authorization",
            format!("Bearer {}", mint(&access_claims())),
        )
        .header("x-auth-sub", "admin")
        .header("x_auth_sub", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.count("x-auth-sub"), 1);
    assert_eq!(
        seen.header("x-auth-sub").as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(!seen.headers.contains_key("x_auth_sub"));
}

#[tokio::test]
async fn connection_header_cannot_remove_injected_headers() {
    let env = Env::start().await;
    let req = format!(
        "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nConnection: keep-alive, X-Auth-Sub, X-Forwarded-For\r\nX-Custom: 1\r\nConnection: close, X-Custom\r\n\r\n",
        mint(&access_claims())
    );
    let resp = env.raw(req.as_bytes()).await;
    assert!(status_line(&resp).contains("200"), "{resp}");
    let seen = env.upstream.last();
    assert!(seen.header("x-auth-sub").is_some());
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(
        seen.header("x-custom").is_none(),
        "Connection-named header forwarded"
    );
    assert!(
        seen.header("connection")
            .is_none_or(|c| !c.to_lowercase().contains("x-auth"))
    );
}

#[tokio::test]
async fn connection_naming_framing_or_auth_headers_is_a_bad_request() {
    let env = Env::start().await;
    for named in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
    ] {
        let req = format!("GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: {named}\r\n\r\n");
        let resp = env.raw(req.as_bytes()).await;
        assert!(status_line(&resp).contains("400"), "{named}: {resp}");
    }
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn hop_by_hop_and_smuggling_headers_are_not_forwarded() {
    let env = Env::start().await;
    let req = format!(
        "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nKeep-Alive: 300\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\n",
        mint(&access_claims())
    );
    let resp = env.raw(req.as_bytes()).await;
    assert!(
        status_line(&resp).contains("200"),
        "no protocol switch happens: {resp}"
    );
    let seen = env.upstream.last();
    for h in [
        "keep-alive",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
        "http2-settings",
    ] {
        assert!(seen.header(h).is_none(), "{h} reached the backend");
    }
    assert!(
        !resp.to_lowercase().contains("x-upstream-secret"),
        "response Connection-named header leaked"
    );
    assert!(
        !resp.to_lowercase().contains("keep-alive: timeout"),
        "response hop-by-hop header leaked"
    );
}

#[tokio::test]
async fn forwarding_headers_are_computed_not_copied() {
    let env = Env::start().await;
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-port", "443")
        .header("x-forwarded-uri", "/admin/")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-original-url", "/admin/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last();
    let port = env.sidecar.proxy_addr.port().to_string();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{port}"))
    );
    assert_eq!(seen.header("x-forwarded-port"), Some(port));
    assert_eq!(seen.header("via").as_deref(), Some("1.1 cognito-sidecar"));
    for h in [
        "x-forwarded-uri",
        "forwarded",
        "x-real-ip",
        "x-original-url",
    ] {
        assert!(seen.header(h).is_none(), "{h} copied from the client");
    }
}

#[tokio::test]
async fn a_capitalised_host_is_forwarded_lower_cased_and_repeat_requests_match() {
    let env = Env::start().await;
    let port = env.sidecar.proxy_addr.port().to_string();
    let resp = env
        .raw(b"GET /public/x?a=1 HTTP/1.0\r\nHost: API.Example:8080\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("200"), "{resp}");
    let seen = env.upstream.last();
    assert_eq!(seen.uri, "/public/x?a=1");
    assert_eq!(seen.header("host").as_deref(), Some("api.example:8080"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("api.example:8080")
    );
    assert_eq!(seen.header("via").as_deref(), Some("1.0 cognito-sidecar"));
    assert_eq!(seen.header("x-forwarded-port"), Some(port.clone()));
    for _ in 0..2 {
        let resp = env
            .raw(b"GET /public/y HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
            .await;
        assert!(status_line(&resp).contains("200"), "{resp}");
        let seen = env.upstream.last();
        assert_eq!(seen.header("host").as_deref(), Some("api.example"));
        assert_eq!(
            seen.header("x-forwarded-host").as_deref(),
            Some("api.example")
        );
        assert_eq!(seen.header("x-forwarded-port"), Some(port.clone()));
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(seen.header("via").as_deref(), Some("1.1 cognito-sidecar"));
    }
}

#[tokio::test]
async fn trusted_proxies_have_their_forwarded_for_chain_extended() {
    let env = Env::configured("trusted_proxies = [\"127.0.0.0/8\"]", "").await;
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.upstream.last().header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    let seen = env.upstream.last();
    assert_eq!(
        seen.header("x-forwarded-proto").as_deref(),
        Some("https"),
        "the load balancer terminated TLS"
    );
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("api.example.com")
    );
}

#[tokio::test]
async fn path_tricks_cannot_reach_protected_routes_through_public_rules() {
    let env = Env::start().await;
    for p in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/%2E%2E/api/x",
        "/public/.%2e/api/x",
        "/public/..;/api/x",
        "/public;x/../api/x",
        "//api/x",
        "/./api/x",
        "/api/x?next=/public/",
        "/PUBLIC/x",
        "/publicity",
    ] {
        let resp = env.raw(format!("GET {p} HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /public/\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(status_line(&resp).contains("401"), "{p}: {resp}");
    }
    for p in [
        "/public%2f..%2fapi/x",
        "/public%5c..%5capi",
        "/public\\..\\api\\x",
        "/public/%00/x",
    ] {
        let resp = env
            .raw(format!("GET {p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        assert!(status_line(&resp).contains("400"), "{p}: {resp}");
    }
    assert_eq!(env.upstream.count(), 0, "backend contacted");
    let resp = env
        .raw(b"GET /public/a/./b/../c?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("200"), "{resp}");
    assert_eq!(
        env.upstream.last().uri,
        "/public/a/c?q=1",
        "the authorised canonical path is forwarded"
    );
}

#[tokio::test]
async fn host_must_be_present_once() {
    let env = Env::start().await;
    let resp = env
        .raw(b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("400"), "missing Host: {resp}");
    let resp = env
        .raw(b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("400"), "two Hosts: {resp}");
    let resp = env.raw(b"GET http://real.example/public/x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n").await;
    assert!(status_line(&resp).contains("200"), "absolute form: {resp}");
    assert_eq!(
        env.upstream.last().header("host").as_deref(),
        Some("real.example")
    );
}

#[tokio::test]
async fn host_allow_list_answers_421_for_other_hosts() {
    let env = Env::configured("allowed_hosts = [\"api.example\"]", "").await;
    let resp = env
        .raw(b"GET /public/x HTTP/1.1\r\nHost: evil.com\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("421"), "{resp}");
    let resp = env
        .raw(b"GET /public/x HTTP/1.1\r\nHost: api.example:8080\r\nConnection: close\r\n\r\n")
        .await;
    assert!(status_line(&resp).contains("200"), "{resp}");
}

#[tokio::test]
async fn framing_attacks_get_one_response_and_never_desync_the_backend() {
    let env = Env::start().await;
    // An unauthenticated POST whose body is a complete second request.
    let inner = "GET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let req = format!(
        "POST /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let resp = env.raw(req.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    assert!(status_line(&resp).contains("401"));
    // CL + TE: one response, connection closed.
    let req = "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = env.raw(req.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    let seen = env.upstream.seen();
    assert_eq!(seen.len(), 1, "backend saw {seen:?}");
    assert!(
        seen[0].header("content-length").is_none() || seen[0].header("transfer-encoding").is_none()
    );
    for bad in [
        "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    ] {
        let resp = env.raw(bad.as_bytes()).await;
        assert!(status_line(&resp).contains("400"), "{bad:?}: {resp}");
    }
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test]
async fn expect_continue_is_not_granted_to_unauthenticated_clients() {
    let env = Env::start().await;
    let resp = env
        .raw(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await;
    assert!(!resp.contains("100 Continue"), "{resp}");
    assert!(status_line(&resp).contains("401"), "{resp}");
    let req = format!(
        "POST /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhello",
        mint(&access_claims())
    );
    let resp = env.raw(req.as_bytes()).await;
    assert!(resp.contains("200 OK"), "{resp}");
    assert_eq!(env.upstream.last().body_len, 5);
}

#[tokio::test]
async fn header_sections_over_the_limits_get_431() {
    let env = Env::start().await;
    let mut req = String::from("GET /public/x HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let resp = env.raw(req.as_bytes()).await;
    assert!(
        status_line(&resp).contains("431"),
        "too many headers: {resp:.200}"
    );
    let big = format!(
        "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let resp = env.raw(big.as_bytes()).await;
    assert!(
        status_line(&resp).contains("431"),
        "100 KiB header: {resp:.200}"
    );
    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test]
async fn large_uploads_stream_through_to_the_backend() {
    let env = Env::start().await;
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 64;
    let body = stream::iter((0..CHUNKS).map(|_| Ok::<_, std::io::Error>(vec![7u8; CHUNK])));
    let r = env
        .client
        .post(env.url("/api/upload"))
        .header(
            "authorization",
            format!("Bearer {}", mint(&access_claims())),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.last().body_len, CHUNK * CHUNKS);
    assert_eq!(
        r.text().await.unwrap(),
        format!("echo /api/upload {}", CHUNK * CHUNKS)
    );
}

#[tokio::test]
async fn unreachable_upstream_gives_a_generic_502() {
    let closed = Refusing::new();
    let env = Env::behind(closed.addr, "", "").await;
    let r = env.get("/api/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"bad_gateway"}"#);
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_upstream_errors_total{kind="connect"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn stalled_upstream_gives_a_generic_504() {
    let upstream = Upstream::start_with(Duration::from_secs(30)).await;
    let env = Env::with_upstream(upstream, "[limits]\nupstream_timeout_seconds = 1", "").await;
    let r = env.get("/api/x", Some(&mint(&access_claims()))).await;
    assert_eq!(r.status(), 504);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"gateway_timeout"}"#);
}

#[tokio::test]
async fn h2c_prior_knowledge_clients_are_served() {
    let env = Env::start().await;
    let client = h2_client();
    let r = client
        .get(env.url("/api/x"))
        .header(
            "authorization",
            format!("Bearer {}", mint(&access_claims())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.header("via").as_deref(), Some("2 cognito-sidecar"));
}
