//! The deny-list over real sockets: a listed `sub`, username, `jti`, `origin_jti` or
//! client is refused with 401 and the revoked description on its next request (cache
//! hits included) while other users pass; the file is re-read when it changes and on
//! SIGHUP; an invalid, oversized or missing file keeps the last good list and is
//! counted; configuration problems name their key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cognito_sidecar::deny_list::Reread;
use serde_json::json;
use support::*;

const REVOKED: &str = r#"Bearer realm="api", error="invalid_token", error_description="The access token has been revoked""#;
const SUB: &str = "11111111-2222-3333-4444-555555555555";

/// A deny-list file with `content` in a fresh temporary directory.
fn deny_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deny-list.txt");
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// The `[deny_list]` table for `path`, polled every `interval` seconds, with `extra`
/// keys.
fn table(path: &Path, interval: u64, extra: &str) -> String {
    format!(
        "[deny_list]\nfile = \"{}\"\nreload_interval_seconds = {interval}\n{extra}",
        path.display()
    )
}

fn series(name: &str, label: &str, value: &str) -> String {
    format!("cognito_sidecar_{name}{{{label}=\"{value}\"}}")
}

fn reloads(result: &str) -> String {
    series("deny_list_reloads_total", "result", result)
}

async fn assert_revoked(env: &Env, token: &str, what: &str) {
    let r = env.get("/api/x", Some(token)).await;
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        REVOKED,
        "{what}"
    );
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_token"}"#);
}

async fn status(env: &Env, token: &str) -> u16 {
    env.get("/api/x", Some(token)).await.status().as_u16()
}

#[tokio::test]
async fn a_listed_sub_username_jti_or_origin_jti_is_refused_as_revoked_and_other_users_pass() {
    let (_dir, path) = deny_file(
        "# incident 7\nsub:listed-sub\nusername:mallory\n\njti:leaked-jti\norigin_jti:leaked-sign-in\n",
    );
    let env = Env::configured("", &table(&path, 1, "")).await;
    for (claims, what) in [
        (with(access_claims(), "sub", json!("listed-sub")), "sub"),
        (
            with(access_claims(), "username", json!("mallory")),
            "username",
        ),
        (
            with(id_claims(), "cognito:username", json!("mallory")),
            "an ID token's cognito:username",
        ),
        (with(access_claims(), "jti", json!("leaked-jti")), "jti"),
        (
            with(access_claims(), "origin_jti", json!("leaked-sign-in")),
            "origin_jti",
        ),
    ] {
        assert_revoked(&env, &mint(&claims), what).await;
    }
    assert_eq!(status(&env, &mint(&access_claims())).await, 200);
    assert_eq!(status(&env, &mint(&id_claims())).await, 200);
    // Values match exactly: no prefix, no case folding.
    let near = with(access_claims(), "username", json!("Mallory"));
    assert_eq!(status(&env, &mint(&near)).await, 200);
    // A public route ignores credentials, listed or not.
    let listed = mint(&with(access_claims(), "sub", json!("listed-sub")));
    let public = env.get("/public/x", Some(&listed)).await;
    assert_eq!(public.status(), 200);

    let m = env.metrics().await;
    for (kind, want) in [
        ("sub", 1.0),
        ("username", 2.0),
        ("jti", 1.0),
        ("origin_jti", 1.0),
    ] {
        assert_eq!(
            metric(&m, &series("deny_list_hits_total", "kind", kind)),
            want,
            "{kind}"
        );
    }
    assert_eq!(
        metric(&m, &series("auth_denied_total", "reason", "revoked")),
        5.0
    );
    assert_eq!(metric(&m, "cognito_sidecar_deny_list_entries"), 4.0);
}

#[tokio::test]
async fn a_listed_client_id_refuses_every_token_of_that_app_client() {
    let (_dir, path) = deny_file(&format!("client_id:{CLIENT}\n"));
    let env = Env::configured("", &table(&path, 1, "")).await;
    assert_revoked(&env, &mint(&access_claims()), "access token").await;
    assert_revoked(&env, &mint(&id_claims()), "ID token").await;
    assert_eq!(env.get("/public/x", None).await.status(), 200);
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, &series("deny_list_hits_total", "kind", "client_id")),
        2.0
    );
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_sub_is_listed_and_admitted_again_once_removed() {
    let (_dir, path) = deny_file("# nobody yet\n");
    let env = Env::configured("", &table(&path, 1, "")).await;
    let token = mint(&access_claims());
    let other = mint(&with(access_claims(), "sub", json!("someone-else")));
    assert_eq!(status(&env, &token).await, 200);
    assert_eq!(status(&env, &token).await, 200);
    wait_metric(&env, "cognito_sidecar_token_cache_hits_total", 1.0).await;

    // Revoking access now: append the user's sub.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "sub:{SUB}").unwrap();
    drop(f);
    wait_metric(&env, &reloads("success"), 1.0).await;
    assert_revoked(&env, &token, "cached token of a listed sub").await;
    assert_eq!(
        status(&env, &other).await,
        200,
        "other users are unaffected"
    );
    assert_eq!(
        metric(&env.metrics().await, "cognito_sidecar_deny_list_entries"),
        1.0
    );

    std::fs::write(&path, "").unwrap();
    wait_metric(&env, &reloads("success"), 2.0).await;
    assert_eq!(status(&env, &token).await, 200, "removed from the list");
}

#[tokio::test]
async fn an_oversized_invalid_or_missing_file_keeps_the_last_good_list_and_is_counted() {
    let (_dir, path) = deny_file("sub:first\n");
    let env = Env::configured("", &table(&path, 1, "max_bytes = 64\n")).await;
    let first = mint(&with(access_claims(), "sub", json!("first")));
    let second = mint(&with(access_claims(), "sub", json!("second")));
    let third = mint(&with(access_claims(), "sub", json!("third")));
    assert_revoked(&env, &first, "initial list").await;

    std::fs::write(&path, format!("sub:first\nsub:{}\n", "x".repeat(64))).unwrap();
    wait_metric(&env, &reloads("invalid"), 1.0).await;
    assert_revoked(&env, &first, "after an oversized file").await;

    std::fs::write(&path, "sub:first\nsub:second\n").unwrap();
    wait_metric(&env, &reloads("success"), 1.0).await;
    assert_revoked(&env, &second, "after a good file").await;

    let invalid = metric(&env.metrics().await, &reloads("invalid"));
    std::fs::write(&path, "sub:third\nthis line has no kind\n").unwrap();
    wait_metric(&env, &reloads("invalid"), invalid + 1.0).await;
    assert_revoked(&env, &first, "after an invalid file").await;
    assert_revoked(&env, &second, "after an invalid file").await;
    assert_eq!(status(&env, &third).await, 200, "nothing of it applies");
    assert_eq!(
        metric(&env.metrics().await, "cognito_sidecar_deny_list_entries"),
        2.0
    );

    std::fs::remove_file(&path).unwrap();
    wait_metric(&env, &reloads("error"), 1.0).await;
    assert_revoked(&env, &second, "after the file was removed").await;
}

#[tokio::test]
async fn a_reread_applies_at_once_and_a_reload_naming_another_file_applies_that_list() {
    let (_dir, path) = deny_file("sub:a-user\n");
    let env = Env::configured("", &table(&path, 3600, "")).await;
    let a = mint(&with(access_claims(), "sub", json!("a-user")));
    let b = mint(&with(access_claims(), "sub", json!("b-user")));
    assert_eq!(status(&env, &b).await, 200);

    // What SIGHUP does, without waiting for the (hour-long) poll.
    std::fs::write(&path, "sub:a-user\nsub:b-user\n").unwrap();
    assert_eq!(
        env.sidecar.live.reread_deny_list().await,
        Some(Reread::Loaded(2))
    );
    assert_revoked(&env, &b, "re-read").await;

    // An unrelated reload keeps the list in force.
    let config = env.sidecar.live.load().config.as_ref().clone();
    env.sidecar.live.reload(config.clone()).await.unwrap();
    assert_revoked(&env, &b, "after an unrelated reload").await;

    // A reload naming another file puts that file's list in force at once.
    let (_other_dir, other) = deny_file("sub:c-user\n");
    let text = config_text(
        &env.jwks.url(),
        env.upstream.addr,
        "",
        &table(&other, 3600, ""),
    );
    let moved = cognito_sidecar::config::Config::from_toml(&text).unwrap();
    env.sidecar.live.reload(moved).await.unwrap();
    assert_eq!(status(&env, &a).await, 200);
    assert_revoked(
        &env,
        &mint(&with(access_claims(), "sub", json!("c-user"))),
        "the new file",
    )
    .await;
    assert_eq!(
        metric(&env.metrics().await, "cognito_sidecar_deny_list_entries"),
        1.0
    );
}

#[tokio::test]
async fn sighup_makes_the_binary_reread_the_deny_list_at_once() {
    let (_dir, path) = deny_file("");
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&jwks.url(), upstream.addr, "", &table(&path, 3600, ""));
    let bin = Binary::start(&set_line(&text, "log_level", "\"info\"")).await;
    let token = mint(&access_claims());
    assert_eq!(bin.get("/api/x", Some(&token)).await, 200);
    std::fs::write(&path, format!("sub:{SUB}\n")).unwrap();
    bin.proc.signal("-HUP");
    wait_metric(&bin, &reloads("success"), 1.0).await;
    assert_eq!(bin.get("/api/x", Some(&token)).await, 401);
    let log = bin.log();
    assert!(log.contains("deny-list loaded"), "{log}");
    assert!(!log.contains(&token), "the token was logged");
}

#[tokio::test]
async fn verify_token_explains_that_a_listed_token_is_revoked() {
    let (_dir, path) = deny_file(&format!("sub:{SUB}\n"));
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let text = config_text(
        &jwks.url(),
        "127.0.0.1:2".parse().unwrap(),
        "",
        &table(&path, 1, ""),
    );
    let cfg = cognito_sidecar::config::Config::from_toml(&text).unwrap();
    let token = mint(&access_claims());
    let v = cognito_sidecar::diagnose::verify_token(&cfg, None, &token, "GET", "/api/x")
        .await
        .unwrap();
    assert!(!v.accepted);
    assert!(
        v.report.contains("REJECTED (revoked)") && v.report.contains("deny-list"),
        "{}",
        v.report
    );
    let other = mint(&with(access_claims(), "sub", json!("someone-else")));
    let v = cognito_sidecar::diagnose::verify_token(&cfg, None, &other, "GET", "/api/x")
        .await
        .unwrap();
    assert!(v.accepted, "{}", v.report);
}

#[test]
fn deny_list_problems_are_reported_by_key() {
    let (_dir, bad) = deny_file("sub:ok\n\neyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln\n");
    let p = config_problems("", &table(&bad, 1, ""));
    assert!(
        p.contains(&format!(
            "deny_list.file: {} line 3: expected kind:value",
            bad.display()
        )),
        "{p}"
    );
    assert!(!p.contains("c2VjcmV0"), "a bad line is never quoted: {p}");
    let p = config_problems("", "[deny_list]\nfile = \"/nonexistent/deny\"\n");
    assert!(
        p.contains("deny_list.file: /nonexistent/deny cannot be read"),
        "{p}"
    );
    let p = config_problems("", "[deny_list]\nreload_interval_seconds = 0\n");
    assert!(
        p.contains("deny_list.reload_interval_seconds: must be positive")
            && p.contains("deny_list.file: missing required key"),
        "{p}"
    );
    let p = config_problems("", &table(&bad, 1, "max_entries = 0\nmax_bytes = 0\n"));
    assert!(
        p.contains("deny_list.max_entries: must be positive")
            && p.contains("deny_list.max_bytes: must be 1 to"),
        "{p}"
    );
}

#[test]
fn check_config_refuses_a_deny_list_that_does_not_parse_with_exit_code_64() {
    let (dir, bad) = deny_file("username:alice\nemail:alice@example.com\n");
    let config = dir.path().join("config.toml");
    let text = config_text(
        "http://127.0.0.1:1/jwks",
        "127.0.0.1:2".parse().unwrap(),
        "",
        &table(&bad, 1, ""),
    );
    std::fs::write(&config, text).unwrap();
    let out = sidecar_command()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("deny_list.file:") && stderr.contains("line 2: unknown kind"));
    assert!(!stderr.contains("alice@example.com"), "{stderr}");
}
