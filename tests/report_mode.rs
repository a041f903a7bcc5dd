//! Report-only mode over real sockets: would-be denials reach the backend without
//! identity and are counted by reason and route; verified tokens keep their identity;
//! spoofed identity never passes; per-route report mode leaves the other routes
//! enforcing; what protects parsing stays refused; readiness, metrics, `check-config`
//! and the access log say report mode is on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback signature"
)]

mod support;

use support::*;

const SUB: &str = "11111111-2222-3333-4444-555555555555";

fn decisions(mode: &str, outcome: &str, reason: &str, route: &str) -> String {
    format!(
        "cognito_sidecar_decisions_total{{mode=\"{mode}\",outcome=\"{outcome}\",reason=\"{reason}\",route=\"{route}\"}}"
    )
}

/// The identity-like headers (any case, `_` or `-`) the backend received.
fn identity_headers(seen: &Seen) -> Vec<String> {
    seen.headers
        .keys()
        .map(|k| k.as_str().replace('_', "-"))
        .filter(|k| k.starts_with("x-auth-"))
        .collect()
}

/// A token whose signature belongs to another token: verifies with no key.
fn forged() -> String {
    let a = mint(&access_claims());
    let b = mint(&with(access_claims(), "username", "mallory".into()));
    let (head, _) = a.rsplit_once('.').unwrap();
    let (_, sig) = b.rsplit_once('.').unwrap();
    format!("{head}.{sig}")
}

/// `GET path` with a bearer token (if any) and spoofed identity headers.
async fn get_spoofing(env: &Env, path: &str, token: Option<&str>) -> u16 {
    let mut r = env
        .client
        .get(env.url(path))
        .header("x-auth-sub", "admin")
        .header("X_Auth_Groups", "admins");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn requests_enforce_mode_would_refuse_reach_the_backend_anonymously_and_count_as_would_deny()
{
    let env = Env::configured("mode = \"report\"", "").await;
    let fetches = env.jwks.fetches();
    let unknown_kid = keys().mint("k3", &access_claims());
    let user = mint(&access_claims());
    let cases = [
        ("/api/x", None, "missing", "default"),
        ("/api/x", Some(forged()), "bad_signature", "default"),
        ("/api/x", Some(unknown_kid), "unknown_kid", "default"),
        ("/admin/x", Some(user), "forbidden", "/admin/"),
    ];
    for (i, (path, token, reason, route)) in cases.iter().enumerate() {
        let status = get_spoofing(&env, path, token.as_deref()).await;
        assert_eq!(status, 200, "{reason}: forwarded");
        assert_eq!(env.upstream.count(), i + 1, "{reason}: reached the backend");
        let seen = env.upstream.last();
        assert_eq!(identity_headers(&seen), Vec::<String>::new(), "{reason}");
        assert!(
            seen.header("authorization").is_none(),
            "{reason}: credential"
        );
        let m = env.metrics().await;
        assert_eq!(
            metric(&m, &decisions("report", "would_deny", reason, route)),
            1.0,
            "{reason} on {route}:\n{m}"
        );
    }
    // The decision is enforce mode's, kid-miss refresh included.
    assert!(
        env.jwks.fetches() > fetches,
        "no refresh for the unknown kid"
    );
    let m = env.metrics().await;
    for reason in ["missing", "bad_signature", "unknown_kid", "forbidden"] {
        let series = format!("cognito_sidecar_auth_denied_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &series), 0.0, "{reason} counted as refused");
    }
    let forwarded =
        "cognito_sidecar_requests_total{outcome=\"report_denied\",status_class=\"2xx\"}";
    assert_eq!(metric(&m, forwarded), 4.0, "{m}");
    env.stop().await;
}

#[tokio::test]
async fn a_verified_token_in_report_mode_still_gets_its_identity_and_spoofed_headers_never_pass() {
    let env = Env::configured("mode = \"report\"", "").await;
    let admin = mint(&with(
        id_claims(),
        "cognito:groups",
        serde_json::json!(["admins"]),
    ));
    assert_eq!(get_spoofing(&env, "/admin/x", Some(&admin)).await, 200);
    let seen = env.upstream.last();
    assert_eq!(seen.count("x-auth-sub"), 1);
    assert_eq!(seen.header("x-auth-sub").as_deref(), Some(SUB));
    assert_eq!(seen.header("x-auth-groups").as_deref(), Some("admins"));
    assert!(!seen.headers.contains_key("x_auth_groups"));
    // A public route never injects identity, in report mode as in enforce mode.
    assert_eq!(get_spoofing(&env, "/public/x", None).await, 200);
    assert_eq!(identity_headers(&env.upstream.last()), Vec::<String>::new());
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, &decisions("report", "allow", "ok", "/admin/")),
        1.0
    );
    assert_eq!(
        metric(&m, &decisions("report", "allow", "ok", "/public/")),
        1.0
    );
    env.stop().await;
}

#[tokio::test]
async fn report_mode_on_one_route_leaves_the_other_routes_enforcing() {
    let env = Env::configured(
        "",
        "[[routes]]\npath = \"/shadow/\"\ngroups = [\"admins\"]\nmode = \"report\"\n",
    )
    .await;
    let user = mint(&access_claims());
    assert_eq!(get_spoofing(&env, "/shadow/x", None).await, 200);
    assert_eq!(get_spoofing(&env, "/shadow/x", Some(&user)).await, 200);
    assert_eq!(env.upstream.count(), 2);
    assert_eq!(identity_headers(&env.upstream.last()), Vec::<String>::new());
    assert_eq!(get_spoofing(&env, "/api/x", None).await, 401);
    assert_eq!(get_spoofing(&env, "/admin/x", Some(&user)).await, 403);
    assert_eq!(env.upstream.count(), 2, "an enforcing route forwarded");
    let m = env.metrics().await;
    for (series, want) in [
        (
            decisions("report", "would_deny", "missing", "/shadow/"),
            1.0,
        ),
        (
            decisions("report", "would_deny", "forbidden", "/shadow/"),
            1.0,
        ),
        (decisions("enforce", "deny", "missing", "default"), 1.0),
        (decisions("enforce", "deny", "forbidden", "/admin/"), 1.0),
        (
            "cognito_sidecar_auth_denied_total{reason=\"missing\"}".to_owned(),
            1.0,
        ),
        (
            "cognito_sidecar_auth_denied_total{reason=\"forbidden\"}".to_owned(),
            1.0,
        ),
        ("cognito_sidecar_report_mode_routes".to_owned(), 1.0),
    ] {
        assert_eq!(metric(&m, &series), want, "{series}:\n{m}");
    }
    env.stop().await;
}

#[tokio::test]
async fn bad_paths_methods_and_oversized_bodies_are_refused_even_in_report_mode() {
    let env = Env::configured(
        "mode = \"report\"",
        "[limits]\nmax_request_body_bytes = 16\n",
    )
    .await;
    for (request, status) in [
        ("GET /api/a%2Fb HTTP/1.1", "400"),
        ("GET /api/%2e%2e/%2e%2e/etc HTTP/1.1", "400"),
        ("get /api/x HTTP/1.1", "400"),
        ("TRACE /api/x HTTP/1.1", "405"),
    ] {
        let resp = env
            .raw(format!("{request}\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        assert!(status_line(&resp).contains(status), "{request}: {resp}");
    }
    let body = "x".repeat(100);
    let r = env
        .client
        .post(env.url("/api/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a would-be denial with a body too large");
    assert_eq!(env.upstream.count(), 0, "the backend was contacted");
    let m = env.metrics().await;
    for (series, want) in [
        (decisions("report", "deny", "bad_path", "none"), 2.0),
        (decisions("report", "deny", "bad_method", "default"), 1.0),
        (
            decisions("report", "deny", "method_not_allowed", "default"),
            1.0,
        ),
        (decisions("report", "would_deny", "missing", "default"), 1.0),
        (
            "cognito_sidecar_auth_denied_total{reason=\"body_too_large\"}".to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(metric(&m, &series), want, "{series}:\n{m}");
    }
    env.stop().await;
}

#[tokio::test]
async fn readiness_and_metrics_name_report_mode_while_it_is_on_and_stay_quiet_otherwise() {
    let env = Env::configured(
        "mode = \"report\"",
        "[[routes]]\npath = \"/strict/\"\nmode = \"enforce\"\n",
    )
    .await;
    let r = env.admin_get("/readyz").await;
    assert_eq!(r.status(), 200, "report mode is not a readiness failure");
    let body = r.text().await.unwrap();
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(
        body.contains("report mode") && body.contains("/admin/") && body.contains("default"),
        "{body}"
    );
    assert!(!body.contains("/strict/"), "{body}");
    // The five standard routes and the default rule; not /strict/.
    let m = env.metrics().await;
    assert_eq!(metric(&m, "cognito_sidecar_report_mode_routes"), 6.0);
    env.stop().await;

    let env = Env::start().await;
    let r = env.admin_get("/readyz").await;
    assert_eq!(r.text().await.unwrap(), "ready\n");
    let m = env.metrics().await;
    assert!(m.contains("cognito_sidecar_report_mode_routes 0"), "{m}");
    env.stop().await;
}

#[test]
fn check_config_warns_while_any_route_is_in_report_mode_and_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = "127.0.0.1:2".parse().unwrap();
    for (top, tables, warns) in [
        ("", "", false),
        ("mode = \"report\"", "", true),
        (
            "",
            "[[routes]]\npath = \"/shadow/\"\nmode = \"report\"\n",
            true,
        ),
    ] {
        let text = config_text("http://127.0.0.1:1/jwks", upstream, top, tables);
        let file = write(dir.path(), "config.toml", &text);
        let out = sidecar_command()
            .args(["check-config", "--config", &file])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{top} {tables}: {err}");
        assert_eq!(
            err.contains("warning: report mode"),
            warns,
            "{top} {tables}: {err}"
        );
        if !tables.is_empty() {
            assert!(
                err.contains("/shadow/") && !err.contains("default"),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn the_access_log_says_report_denied_with_the_reason() {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1", "k2"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&jwks.url(), upstream.addr, "mode = \"report\"", "");
    let sidecar =
        Binary::start_with(&text, &[("RUST_LOG", "access=info"), ("NO_COLOR", "1")]).await;
    let user = mint(&access_claims());
    assert_eq!(sidecar.get("/admin/x", Some(&user)).await, 200);
    wait_until("the access log line", async || {
        sidecar.log().contains("report_denied")
    })
    .await;
    let log = sidecar.log();
    let line = log
        .lines()
        .find(|l| l.contains("report_denied"))
        .unwrap_or_default();
    assert!(
        line.contains("forbidden") && line.contains("/admin/x"),
        "{line}"
    );
    assert!(!line.contains(&user), "the token was logged: {line}");
}

/// An echoing WebSocket backend; records whether each upgrade carried identity.
async fn ws_backend(
    identity_seen: std::sync::Arc<std::sync::Mutex<Vec<bool>>>,
) -> std::net::SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = std::sync::Arc::clone(&identity_seen);
            tokio::spawn(async move {
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    let any = req
                        .headers()
                        .keys()
                        .any(|k| k.as_str().starts_with("x-auth-"));
                    seen.lock().unwrap().push(any);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() || ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_without_a_token_is_bridged_in_report_mode_until_a_reload_enforces_the_route() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let identity_seen = std::sync::Arc::default();
    let backend = ws_backend(std::sync::Arc::clone(&identity_seen)).await;
    let env = Env::behind(
        backend,
        "",
        "[[routes]]\npath = \"/ws/\"\nwebsocket = true\nmode = \"report\"\n",
    )
    .await;
    let stream = tokio::net::TcpStream::connect(env.sidecar.proxy_addr)
        .await
        .unwrap();
    let url = format!("ws://{}/ws/chat", env.sidecar.proxy_addr);
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-auth-sub", "admin".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let mut echoes = async || {
        ws.send(Message::Text("ping".into())).await.is_ok()
            && matches!(ws.next().await, Some(Ok(Message::Text(t))) if t == "ping")
    };
    assert!(echoes().await, "bridged without a token");
    assert_eq!(*identity_seen.lock().unwrap(), [false]);
    // A reload that keeps report mode keeps the session.
    let same = env.sidecar.live.load().config.as_ref().clone();
    env.sidecar.live.reload(same.clone()).await.unwrap();
    assert!(echoes().await, "a reload still in report mode ended it");
    // Enforcing the route ends it: it would be refused now.
    let mut enforcing = same;
    for r in &mut enforcing.routes {
        r.mode = cognito_sidecar::config::RolloutMode::Enforce;
    }
    env.sidecar.live.reload(enforcing).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await
    .expect("the session was not ended");
}
