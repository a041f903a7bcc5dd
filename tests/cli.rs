//! The binary as a user runs it: configuration errors, environment overrides, the
//! documented example configuration, and the one-command demo.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{ChildGuard, sidecar_command as sidecar, write};

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = sidecar()
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg =
        cognito_sidecar::config::Config::from_toml(&std::fs::read_to_string(&example).unwrap())
            .unwrap();
    assert_eq!(cfg.pools[0].client_ids, ["abc123"]);
    assert_eq!(cfg.routes.len(), 2);
}

#[test]
fn a_bad_configuration_exits_64_listing_every_problem_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.toml",
        r#"
listen = "not an address"
upstream = "http://127.0.0.1:3000"
colour = "blue"
[[pools]]
id = "us-east-1_AbCdEf123"
client_ids = []
token_use = ["id"]
leeway_seconds = 900
[[routes]]
path = "/x"
auth = "sometimes"
"#,
    );
    let out = sidecar().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "listen:",
        "colour: unknown key",
        "pools[0].client_ids:",
        "pools[0].leeway_seconds:",
        "routes[0]:",
    ] {
        assert!(err.contains(key), "{key} not reported in:\n{err}");
    }
}

#[test]
fn a_missing_pool_or_config_file_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "nopool.toml",
        "listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:1\"\n",
    );
    let out = sidecar().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pools: missing required key"));
    let out = sidecar()
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn environment_variables_override_the_file_and_can_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = sidecar()
        .arg("check-config")
        .env("COGNITO_SIDECAR_CONFIG", &example)
        .env("COGNITO_SIDECAR_UPSTREAM", "http://127.0.0.1:4242")
        .env("COGNITO_SIDECAR_LIMITS__UPSTREAM_TIMEOUT_SECONDS", "7")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("127.0.0.1:4242"), "{text}");
    assert!(text.contains("upstream_timeout: 7s"), "{text}");
    // Pools entirely from the environment.
    let file = write(
        dir.path(),
        "base.toml",
        "listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:1\"\n",
    );
    let out = sidecar()
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .env(
            "COGNITO_SIDECAR_POOLS",
            r#"[{id="eu-west-1_Env123",client_ids=["envclient"],token_use=["access"]}]"#,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("envclient"));
    let out = sidecar()
        .arg("check-config")
        .env("COGNITO_SIDECAR_CONFIG", &example)
        .env("COGNITO_SIDECAR_LISTEN", "nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// Parses `curl -i URL [-H 'Name: value']` lines printed by the demo.
fn parse_curl(line: &str) -> (String, Vec<(String, String)>) {
    let rest = line.trim_start_matches("curl -i ");
    let (url, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut headers = Vec::new();
    while let Some(start) = rest.find("-H '") {
        let after = &rest[start + 4..];
        let end = after.find('\'').unwrap();
        let (name, value) = after[..end].split_once(": ").unwrap();
        headers.push((name.to_owned(), value.to_owned()));
        rest = &after[end + 1..];
    }
    (url.to_owned(), headers)
}

#[tokio::test]
async fn the_demo_prints_commands_that_show_each_answer() {
    let child = sidecar()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::adopt("demo", child);
    let stdout = child.child_mut().stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("Press Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), lines)
        .await
        .expect("demo never became ready")
        .unwrap();
    let curls: Vec<&String> = lines.iter().filter(|l| l.starts_with("curl -i ")).collect();
    let expected = [200, 200, 401, 403, 200, 401, 200];
    assert_eq!(curls.len(), expected.len(), "{lines:#?}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (line, want) in curls.iter().zip(expected) {
        let (url, headers) = parse_curl(line);
        let mut req = client.get(&url);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{line:.120}");
        let body = resp.text().await.unwrap();
        if want == 200 && headers.iter().any(|(k, _)| k == "Authorization") {
            assert!(
                body.contains("x-auth-sub"),
                "identity headers reach the echo backend: {body}"
            );
            assert!(!body.contains("authorization"), "token forwarded: {body}");
        }
        if url.contains("/public/") {
            assert!(
                !body.contains("x-auth-sub"),
                "spoofed header reached the backend: {body}"
            );
        }
    }
}
