//! Operability over real sockets: exact metric movements, request ids and trace
//! context, live reload of the real binary (file change, SIGHUP, invalid config),
//! `verify-token`, and a scan of a whole run's logs for token material.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::process::Stdio;

use serde_json::json;
use support::*;

#[tokio::test]
async fn metrics_move_exactly_for_allowed_denied_and_failed_traffic() {
    let env = Env::start().await;
    let series = |m: &str, s: &str| metric(m, s);
    let before = env.metrics().await;
    for _ in 0..3 {
        assert_eq!(
            env.get("/api/x", Some(&mint(&access_claims())))
                .await
                .status(),
            200
        );
    }
    assert_eq!(env.get("/api/x", None).await.status(), 401);
    let expired = mint(&with(access_claims(), "exp", json!(now() - 600)));
    assert_eq!(env.get("/api/x", Some(&expired)).await.status(), 401);
    assert_eq!(
        env.get("/admin/x", Some(&mint(&access_claims())))
            .await
            .status(),
        403
    );
    let other_client = mint(&with(access_claims(), "client_id", json!("C9")));
    assert_eq!(env.get("/api/x", Some(&other_client)).await.status(), 401);
    assert_eq!(env.get("/public/x", None).await.status(), 200);
    let after = env.metrics().await;
    for (s, delta) in [
        (
            r#"cognito_sidecar_requests_total{outcome="allowed",status_class="2xx"}"#,
            3.0,
        ),
        (
            r#"cognito_sidecar_requests_total{outcome="public",status_class="2xx"}"#,
            1.0,
        ),
        (
            r#"cognito_sidecar_requests_total{outcome="denied",status_class="4xx"}"#,
            4.0,
        ),
        (
            r#"cognito_sidecar_auth_denied_total{reason="missing"}"#,
            1.0,
        ),
        (
            r#"cognito_sidecar_auth_denied_total{reason="expired"}"#,
            1.0,
        ),
        (
            r#"cognito_sidecar_auth_denied_total{reason="forbidden"}"#,
            1.0,
        ),
        (
            r#"cognito_sidecar_auth_denied_total{reason="wrong_client"}"#,
            1.0,
        ),
        (
            r#"cognito_sidecar_auth_denied_total{reason="bad_signature"}"#,
            0.0,
        ),
        ("cognito_sidecar_auth_duration_seconds_count", 8.0),
        ("cognito_sidecar_upstream_duration_seconds_count", 4.0),
        ("cognito_sidecar_request_duration_seconds_count", 8.0),
    ] {
        assert_eq!(series(&after, s) - series(&before, s), delta, "{s}");
    }
    assert_eq!(series(&after, "cognito_sidecar_requests_in_flight"), 0.0);
    assert_eq!(
        series(&after, r#"cognito_sidecar_jwks_keys{pool="test"}"#),
        2.0
    );
    assert!(
        series(
            &after,
            r#"cognito_sidecar_jwks_last_success_timestamp_seconds{pool="test"}"#
        ) > 1.7e9
    );
    assert!(after.contains("cognito_sidecar_build_info{commit="));
    assert!(after.contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn jwks_and_upstream_failures_are_counted_by_kind() {
    let refusing = Refusing::new();
    let closed = refusing.addr;
    let env = Env::behind(closed, "", "[jwks]\nkid_miss_min_interval_seconds = 0\n").await;
    assert_eq!(
        env.get("/api/x", Some(&mint(&access_claims())))
            .await
            .status(),
        502
    );
    env.jwks.set(JwksAnswer::Status(500));
    let unknown = keys().mint("k3", &access_claims());
    assert_eq!(env.get("/api/x", Some(&unknown)).await.status(), 401);
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_upstream_errors_total{kind="connect"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_requests_total{outcome="upstream_error",status_class="5xx"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_jwks_fetches_total{pool="test",result="bad_status"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_jwks_fetches_total{pool="test",result="success"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"cognito_sidecar_jwks_kid_miss_refreshes_total{pool="test"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn request_ids_are_kept_or_created_and_trace_context_passes_untouched() {
    // A request id is kept only from a trusted hop (here: every loopback peer).
    let env = Env::configured(r#"trusted_proxies = ["127.0.0.1/32"]"#, "").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-request-id", "req-123.abc")
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-123.abc");
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-request-id").as_deref(), Some("req-123.abc"));
    assert_eq!(seen.header("traceparent").as_deref(), Some(traceparent));
    assert_eq!(seen.header("tracestate").as_deref(), Some("vendor=x"));

    // Absent or unsafe ids are replaced by a generated one, sent both ways.
    for sent in [None, Some("bad id with spaces"), Some(&*"x".repeat(200))] {
        let mut req = env.client.get(env.url("/public/x"));
        if let Some(s) = sent {
            req = req.header("x-request-id", s);
        }
        let r = req.send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert_eq!(env.upstream.last().header("x-request-id"), Some(id));
    }
    // Rejections carry the client's id; generated ids are not added to them, so two
    // rejections for different reasons stay byte-identical.
    let r = env
        .client
        .get(env.url("/api/x"))
        .header("x-request-id", "mine")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "mine");
    let r = env.get("/api/x", None).await;
    assert!(!r.headers().contains_key("x-request-id"));
}

// ---------------------------------------------------------------------------
// The real binary.
// ---------------------------------------------------------------------------

/// The real binary on the standard configuration with JSON logs at `info` (and every
/// target at `trace` through `RUST_LOG`), `top` and `tables` added.
async fn start_binary(top: &str, tables: &str) -> (Binary, JwksServer, Upstream) {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(
        &jwks.url(),
        upstream.addr,
        &format!("log_format = \"json\"\n{top}"),
        tables,
    );
    let text = set_line(&text, "log_level", "\"info\"");
    let bin = Binary::start_with(
        &text,
        &[(
            "RUST_LOG",
            "trace,hyper=debug,h2=debug,rustls=debug,reqwest=debug",
        )],
    )
    .await;
    (bin, jwks, upstream)
}

#[tokio::test]
async fn configuration_changes_apply_live_and_invalid_ones_are_rejected() {
    let (bin, _jwks, _upstream) = start_binary("", "").await;
    assert_eq!(bin.get("/open/x", None).await, 401);
    let original = std::fs::read_to_string(&bin.config).unwrap();

    // 1. A file change adds a public route.
    let opened = original.replace(
        "[[routes]]\npath = \"/public/\"",
        "[[routes]]\npath = \"/open/\"\nauth = \"public\"\n[[routes]]\npath = \"/public/\"",
    );
    std::fs::write(&bin.config, &opened).unwrap();
    wait_until("file-change reload", async || {
        bin.metric(r#"cognito_sidecar_config_reloads_total{result="success"}"#)
            .await
            >= 1.0
    })
    .await;
    assert_eq!(bin.get("/open/x", None).await, 200, "new route not applied");

    // 2. An invalid file is rejected and the running configuration keeps serving.
    std::fs::write(&bin.config, format!("{opened}\nbogus_key = 1\n")).unwrap();
    wait_until("invalid reload", async || {
        bin.metric(r#"cognito_sidecar_config_reloads_total{result="invalid"}"#)
            .await
            >= 1.0
    })
    .await;
    assert_eq!(bin.get("/open/x", None).await, 200);
    assert_eq!(bin.get("/api/x", Some(&mint(&access_claims()))).await, 200);

    // 3. SIGHUP reloads too; a listener change is reported as needing a restart.
    let moved = set_line(
        &original,
        "listen",
        &format!("\"127.0.0.1:{}\"", free_port()),
    );
    std::fs::write(&bin.config, &moved).unwrap();
    wait_until("reload after restoring", async || {
        bin.metric(r#"cognito_sidecar_config_reloads_total{result="success"}"#)
            .await
            >= 2.0
    })
    .await;
    assert_eq!(
        bin.get("/open/x", None).await,
        401,
        "route removal not applied"
    );
    bin.proc.signal("-HUP");
    wait_until("SIGHUP reload", async || {
        bin.metric(r#"cognito_sidecar_config_reloads_total{result="success"}"#)
            .await
            >= 3.0
    })
    .await;
    let log = bin.log();
    assert!(
        log.contains("only takes effect after a restart") && log.contains("\"key\":\"listen\""),
        "{log}"
    );
    assert!(
        log.contains("new configuration rejected") && log.contains("bogus_key"),
        "{log}"
    );
}

#[tokio::test]
async fn a_whole_run_logs_no_token_material_at_any_level() {
    let tables = "[[routes]]\npath = \"/ws/\"\nwebsocket = true\ntoken_query_param = \"access_token\"\ntoken_cookie = \"id_token\"\n";
    let (mut bin, _jwks, _upstream) = start_binary("", tables).await;
    let valid = mint(&access_claims());
    let id = mint(&id_claims());
    let expired = mint(&with(access_claims(), "exp", json!(now() - 600)));
    let forged = keys().mint_as("k1", "k2", &access_claims());
    let unknown = keys().mint("k3", &access_claims());
    let evil_sub = mint(&with(
        access_claims(),
        "sub",
        json!("line\nbreak\u{1b}[31m"),
    ));
    let tokens = [&valid, &id, &expired, &forged, &unknown, &evil_sub];
    for t in tokens {
        let _ = bin.get("/api/x", Some(t)).await;
        let _ = bin.get("/admin/x", Some(t)).await;
        let _ = bin
            .client
            .get(bin.url(&format!("/ws/x?access_token={t}")))
            .send()
            .await;
        let _ = bin
            .client
            .get(bin.url("/ws/x"))
            .header("cookie", format!("id_token={t}"))
            .send()
            .await;
    }
    let _ = bin.get("/api/x", Some(&format!("{valid}{valid}"))).await;
    bin.proc.signal("-TERM");
    let code = bin.wait_exit().await.code().unwrap_or(-1);
    let log = bin.log();
    assert_eq!(code, 0);
    assert!(
        log.lines().count() > 20,
        "suspiciously little was logged:\n{log}"
    );
    for t in tokens {
        for segment in t.split('.') {
            // Any 16-character run of a header, payload or signature segment.
            for start in (0..segment.len().saturating_sub(16)).step_by(8) {
                let needle = &segment[start..start + 16];
                assert!(!log.contains(needle), "token fragment {needle} in the logs");
            }
        }
    }
    assert!(
        !log.contains("line\nbreak"),
        "control characters logged raw"
    );
    for line in log
        .lines()
        .filter(|l| l.contains("\"target\":\"access\""))
        .take(3)
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in [
            "method",
            "path",
            "status",
            "outcome",
            "latency_ms",
            "request_id",
        ] {
            assert!(v.get(field).is_some(), "access log lacks {field}: {line}");
        }
    }
}

#[tokio::test]
async fn verify_token_explains_the_verdict_and_the_headers_the_backend_gets() {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let text = config_text(&jwks.url(), "127.0.0.1:9".parse().unwrap(), "", "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let verify = |args: Vec<String>, stdin: Option<String>| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = sidecar_command()
                    .arg("verify-token")
                    .arg("--config")
                    .arg(&config)
                    .args(&args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                if let Some(s) = stdin {
                    use std::io::Write as _;
                    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
                }
                child.stdin.take();
                let out = child.wait_with_output().unwrap();
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .await
            .unwrap()
        }
    };
    let (code, out, err) = verify(vec![mint(&id_claims())], None).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ACCEPTED"), "{out}");
    assert!(
        out.contains("x-auth-sub: 11111111-2222-3333-4444-555555555555"),
        "{out}"
    );
    assert!(out.contains("x-auth-email: alice@example.com"), "{out}");

    let expired = mint(&with(access_claims(), "exp", json!(now() - 600)));
    let (code, out, _) = verify(vec!["-".into()], Some(format!("Bearer {expired}\n"))).await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("REJECTED (expired)") && out.contains("10 min ago"),
        "{out}"
    );

    let (code, out, _) = verify(
        vec!["--path".into(), "/admin/x".into(), mint(&access_claims())],
        None,
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("REJECTED (forbidden)") && out.contains("groups"),
        "{out}"
    );

    let foreign = mint(&with(
        access_claims(),
        "iss",
        json!("https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool1"),
    ));
    let (code, out, _) = verify(vec![foreign], None).await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("no configured pool has issuer") && out.contains("issuer-cognito-idp"),
        "{out}"
    );

    let (code, _, err) = verify(
        vec!["--pool".into(), "nope".into(), mint(&id_claims())],
        None,
    )
    .await;
    assert_eq!(code, Some(64));
    assert!(err.contains("no pool named"), "{err}");
}
