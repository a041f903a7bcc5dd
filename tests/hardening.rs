//! Hardening over real sockets: no request is ever less protected because of how it is
//! spelled (method case, path encodings, header spellings), and no client-chosen header
//! that backends trust survives (SECURITY.md, "Hardening decisions").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::*;
use tokio::net::TcpStream;

/// The standard routes plus a GET-only group rule and a scope rule without `token_use`.
const EXTRA_ROUTES: &str = r#"
[[routes]]
path = "/reports/"
methods = ["GET"]
groups = ["analysts"]
[[routes]]
path = "/scoped/"
scopes = ["api/write"]
"#;

async fn env_with(top: &str) -> Env {
    Env::configured(top, EXTRA_ROUTES).await
}

fn status_of(raw: &str) -> u16 {
    status_line(raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// 1. Method spelling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn head_gets_every_restriction_a_rule_puts_on_get() {
    let env = env_with("").await;
    let outsider = mint(&access_claims());
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let r = env
            .client
            .request(method.clone(), env.url("/reports/x"))
            .bearer_auth(&outsider)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} by a non-analyst");
        let r = env
            .client
            .request(method.clone(), env.url("/reports/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} without a token");
    }
    let analyst = mint(&with(
        access_claims(),
        "cognito:groups",
        json!(["analysts"]),
    ));
    let r = env
        .client
        .head(env.url("/reports/x"))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an analyst may HEAD");
    assert_eq!(
        env.upstream.count(),
        1,
        "only the analyst reached the backend"
    );
}

#[tokio::test]
async fn methods_spelled_in_lower_case_are_refused_before_any_rule() {
    let env = env_with("").await;
    let outsider = mint(&access_claims());
    for method in ["get", "Get", "head", "delete", "pOST"] {
        let req = format!(
            "{method} /reports/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {outsider}\r\nConnection: close\r\n\r\n"
        );
        let resp = env.raw(req.as_bytes()).await;
        assert_eq!(status_of(&resp), 400, "{method}: {resp}");
        let resp = env
            .raw(
                format!("{method} /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        assert_eq!(status_of(&resp), 400, "{method} on a public route: {resp}");
    }
    assert_eq!(env.upstream.count(), 0, "no spelling reached the backend");
    let m = env.metrics().await;
    assert!(
        metric(
            &m,
            r#"cognito_sidecar_auth_denied_total{reason="bad_method"}"#
        ) >= 10.0
    );
}

#[test]
fn route_methods_must_be_upper_case_tokens() {
    let err = config_problems(
        "",
        "[[routes]]\npath = \"/x/\"\nmethods = [\"get\", \"PO ST\", \"DELETE\"]\n",
    );
    assert!(err.contains("routes[5].methods: \"get\""), "{err}");
    assert!(err.contains("routes[5].methods: \"PO ST\""), "{err}");
    assert!(!err.contains("DELETE"), "{err}");
}

// ---------------------------------------------------------------------------
// 2. Scopes are an access-token property
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_id_token_with_a_scope_claim_never_meets_a_scope_rule() {
    let env = env_with("").await;
    let id = mint(&with(id_claims(), "scope", json!("api/write")));
    let r = env.get("/scoped/x", Some(&id)).await;
    assert_eq!(r.status(), 403);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    assert!(www.contains("access token"), "the 403 says why: {www}");
    assert_eq!(env.upstream.count(), 0);

    // The same ID token elsewhere: admitted, but no scope reaches the backend.
    let r = env.get("/api/x", Some(&id)).await;
    assert_eq!(r.status(), 200);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("id"));
    assert_eq!(seen.header("x-auth-scope"), None);

    // An access token with the scope passes and carries it.
    let at = mint(&with(access_claims(), "scope", json!("openid api/write")));
    let r = env.get("/scoped/x", Some(&at)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.upstream.last().header("x-auth-scope").as_deref(),
        Some("api/write,openid")
    );
}

#[tokio::test]
async fn an_id_token_scope_claim_is_not_even_in_the_all_claims_header() {
    let env = env_with("[identity]\nclaims_header = \"X-Auth-Claims\"\n").await;
    let id = mint(&with(id_claims(), "scope", json!("api/write")));
    assert_eq!(env.get("/api/x", Some(&id)).await.status(), 200);
    let encoded = env.upstream.last().header("x-auth-claims").unwrap();
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert!(json.get("scope").is_none(), "{json}");
    assert_eq!(json["token_use"], "id");
}

// ---------------------------------------------------------------------------
// 3, 4. Headers backends trust
// ---------------------------------------------------------------------------

const TRUSTED_BY_BACKENDS: [(&str, &str); 14] = [
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X_Method_Override", "DELETE"),
    ("X-Original-Method", "DELETE"),
    ("X-Amzn-Oidc-Data", "eyJhbGciOiJFUzI1NiJ9.e30.sig"),
    ("X-Amzn-Oidc-Identity", "admin"),
    ("x_amzn_oidc_accesstoken", "token"),
    ("True-Client-IP", "10.1.1.1"),
    ("X-Client-IP", "10.1.1.1"),
    ("CF-Connecting-IP", "10.1.1.1"),
    ("X-Cluster-Client-IP", "10.1.1.1"),
    ("Fastly_Client_IP", "10.1.1.1"),
    ("X-Legacy-User", "admin"),
];

async fn send_all(env: &Env, path: &str, token: Option<&str>) -> Seen {
    let before = env.upstream.count();
    let mut req = env.client.post(env.url(path));
    for (k, v) in TRUSTED_BY_BACKENDS {
        req = req.header(k, v);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(env.upstream.count(), before + 1);
    env.upstream.last()
}

#[tokio::test]
async fn method_overrides_alb_identity_and_client_address_headers_never_reach_the_backend() {
    let env = env_with("strip_headers = [\"X-Legacy-User\"]").await;
    let token = mint(&access_claims());
    for (path, token) in [("/public/x", None), ("/api/x", Some(token.as_str()))] {
        let seen = send_all(&env, path, token).await;
        for (name, _) in TRUSTED_BY_BACKENDS {
            let norm = name.to_ascii_lowercase().replace('_', "-");
            let present: Vec<&str> = seen
                .headers
                .keys()
                .map(http::HeaderName::as_str)
                .filter(|k| k.replace('_', "-") == norm)
                .collect();
            assert!(present.is_empty(), "{path}: {name} reached the backend");
        }
        assert_eq!(seen.method, "POST");
    }
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_client_address_headers_but_never_alb_identity() {
    let env = env_with("trusted_proxies = [\"127.0.0.1/32\"]").await;
    let seen = send_all(&env, "/public/x", None).await;
    for name in [
        "true-client-ip",
        "x-client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
    ] {
        assert_eq!(seen.header(name).as_deref(), Some("10.1.1.1"), "{name}");
    }
    for name in [
        "x-amzn-oidc-data",
        "x-amzn-oidc-identity",
        "x_amzn_oidc_accesstoken",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
    ] {
        assert_eq!(seen.header(name), None, "{name}");
    }
}

#[test]
fn strip_headers_must_be_header_names() {
    let err = config_problems("strip_headers = [\"ok-name\", \"bad name\", \"\"]", "");
    assert!(err.contains("strip_headers[1]"), "{err}");
    assert!(err.contains("strip_headers[2]"), "{err}");
    assert!(!err.contains("strip_headers[0]"), "{err}");
}

// ---------------------------------------------------------------------------
// 5. Host allow-list
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_host_never_passes_a_host_allow_list() {
    let env = env_with("allowed_hosts = [\"api.example\"]").await;
    let resp = env
        .raw(b"GET /public/x HTTP/1.0\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status_of(&resp), 421, "{resp}");
    let resp = env
        .raw(b"GET /public/x HTTP/1.0\r\nHost: api.example\r\n\r\n")
        .await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(env.upstream.count(), 1);
}

// ---------------------------------------------------------------------------
// 6. forward_authorization
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forward_authorization_forwards_only_the_verified_credential() {
    let env = env_with("[identity]\nforward_authorization = true\n").await;
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    // Public route with a forged token.
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.last().header("authorization"), None, "public");
    // A preflight carries no verified credential either.
    let r = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/api/x"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.upstream.last().header("authorization"),
        None,
        "preflight"
    );
    // Optional route, anonymous (a non-Bearer credential is not a token).
    let r = env
        .client
        .get(env.url("/opt/x"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.upstream.last().header("authorization"),
        None,
        "anonymous"
    );
    // A verified token is forwarded as sent.
    let token = mint(&access_claims());
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    assert_eq!(
        env.upstream.last().header("authorization"),
        Some(format!("Bearer {token}"))
    );
}

// ---------------------------------------------------------------------------
// 7. Path spellings that backends fold
// ---------------------------------------------------------------------------

const FOLDED_ADMIN: [&str; 6] = [
    "/admin%20/x",
    "/admin%3B/x",
    "/admin%3b/x",
    "/admin%09/x",
    "/%20admin/x",
    "/admin%C2%A0/x",
];

const FOLDED_FROM_PUBLIC: [&str; 6] = [
    "/public/%252e%252e/admin/x",
    "/public/..%3B/admin/x",
    "/public/%C0%AE%C0%AE/admin/x",
    "/public/%252E%252E%252Fadmin/x",
    "/public/..%2520/admin/x",
    "/public/%2e%2e%3b/admin/x",
];

#[tokio::test]
async fn ambiguous_path_encodings_are_refused_by_default() {
    let env = env_with("").await;
    let user = mint(&access_claims());
    for p in FOLDED_ADMIN.iter().chain(&FOLDED_FROM_PUBLIC) {
        let r = env.get(p, Some(&user)).await;
        assert_eq!(r.status(), 400, "{p}");
        let r = env.get(p, None).await;
        assert_eq!(r.status(), 400, "{p} without a token");
    }
    assert_eq!(env.upstream.count(), 0, "nothing ambiguous was forwarded");
    // Ordinary encodings still work.
    for p in [
        "/public/My%20File.pdf",
        "/public/caf%C3%A9",
        "/public/a;v=1",
    ] {
        assert_eq!(env.get(p, None).await.status(), 200, "{p}");
    }
}

#[tokio::test]
async fn with_lenient_encoding_restricted_rules_still_see_through_every_spelling() {
    let env = env_with("strict_path_encoding = false").await;
    let user = mint(&access_claims());
    for p in FOLDED_ADMIN {
        let r = env.get(p, Some(&user)).await;
        // %09 is a control byte: refused in every mode.
        let expected = if p.contains("%09") { 400 } else { 403 };
        assert_eq!(r.status(), expected, "{p}");
    }
    for p in FOLDED_FROM_PUBLIC {
        let r = env.get(p, None).await;
        assert!(
            r.status() == 401 || r.status() == 400,
            "{p}: a public rule admitted a path that reads as /admin ({})",
            r.status()
        );
        let r = env.get(p, Some(&user)).await;
        assert!(
            r.status() == 403 || r.status() == 400,
            "{p}: reached with a non-admin token ({})",
            r.status()
        );
    }
    assert_eq!(env.upstream.count(), 0);
    let admin = mint(&with(access_claims(), "cognito:groups", json!(["admins"])));
    assert_eq!(env.get("/admin%20/x", Some(&admin)).await.status(), 200);
}

// ---------------------------------------------------------------------------
// 10. Trailers, Connection-named proxy headers, request ids
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_trailers_reach_an_http2_backend_only_after_stripping() {
    let env = Env::configured("upstream_protocol = \"http2\"", "").await;
    let stream = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-auth-user-id", HeaderValue::from_static("admin"));
    trailers.insert("x-amzn-oidc-identity", HeaderValue::from_static("admin"));
    trailers.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"hello"))),
        Ok(Frame::trailers(trailers)),
    ];
    let req = Request::post(format!("http://{}/public/x", env.sidecar.proxy_addr))
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let seen = env.upstream.last();
    assert_eq!(seen.body_len, 5);
    let t = seen.trailers.expect("the backend received trailers");
    assert_eq!(
        t.get("x-checksum").unwrap(),
        "abc",
        "ordinary trailers pass"
    );
    for name in [
        "x-auth-user-id",
        "x-amzn-oidc-identity",
        "x-http-method-override",
    ] {
        assert!(!t.contains_key(name), "{name} passed as a trailer");
    }
}

#[tokio::test]
async fn connection_cannot_remove_a_header_the_proxy_sets() {
    let env = env_with("").await;
    let resp = env
        .raw(
            b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close, x-request-id, x-forwarded-for, via\r\n\r\n",
        )
        .await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-request-id").map(|v| v.len()), Some(32));
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(seen.header("via").is_some());
}

#[tokio::test]
async fn a_request_id_from_an_untrusted_client_is_replaced() {
    let env = env_with("").await;
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-request-id", "chosen-by-attacker")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "chosen-by-attacker");
    assert_eq!(env.upstream.last().header("x-request-id"), Some(id));

    let env = env_with("trust_client_request_id = true").await;
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-request-id", "chosen-by-edge")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "chosen-by-edge");
}
