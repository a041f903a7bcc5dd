//! The online revocation check end to end against moto's Cognito emulator: the real
//! binary, with `revocation_check = true` and moto as the `idp_endpoint`, admits two
//! signed-in users; after `GlobalSignOut` (boto3, with the user's own access token) the
//! same access token is refused once the cache window has passed, and the other user
//! is unaffected until an administrator signs them out too
//! (`AdminUserGlobalSignOut`).
//!
//! What moto does (5.x): a global sign-out drops every access token of the user from
//! the pool, and its `GetUser` then answers 400 `NotAuthorizedException` ("Invalid
//! token"); it answers `NotAuthorizedException` for a disabled user and
//! `UserNotFoundException` for a deleted one. Its `RevokeToken` is not usable (500).
//!
//! Needs `moto_server` and `python3` with `boto3`; skips with a notice without them
//! unless `COGNITO_E2E_REQUIRE_MOTO=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    Binary, ChildGuard, Upstream, free_port, moto_server, wait_until, wait_until_within,
};

/// Signs a user out with boto3: `self TOKEN` (`GlobalSignOut` with the user's access
/// token) or `admin POOL USERNAME` (`AdminUserGlobalSignOut`).
const SIGN_OUT: &str = r#"
import sys, boto3
idp = boto3.client("cognito-idp", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
if sys.argv[2] == "self":
    idp.global_sign_out(AccessToken=sys.argv[3])
else:
    idp.admin_user_global_sign_out(UserPoolId=sys.argv[3], Username=sys.argv[4])
"#;

async fn python(args: Vec<String>) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python3 {:?} failed: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sign_out(endpoint: &str, how: &[&str]) {
    let mut args = vec!["-c".to_owned(), SIGN_OUT.to_owned(), endpoint.to_owned()];
    args.extend(how.iter().map(|s| (*s).to_owned()));
    python(args).await;
}

fn text(v: &Value, path: &[&str]) -> String {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_else(|| panic!("setup output has no {path:?}: {v}"))
        .to_owned()
}

/// The `WWW-Authenticate` of `GET /x` with `token`, and the status.
async fn get(proxy: &Binary, token: &str) -> (u16, String) {
    let r = proxy
        .client
        .get(proxy.url("/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), www)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_globally_signed_out_access_token_is_refused_after_the_cache_window_and_others_pass() {
    let Some(moto_server) = moto_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(moto_server);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut moto = ChildGuard::spawn("moto_server", cmd, dir.path()).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let probe = format!("{endpoint}/us-east-1_probe/.well-known/jwks.json");
    wait_until_within(
        Duration::from_secs(30),
        "moto_server to answer",
        async || {
            assert!(moto.exited().is_none(), "{}", moto.stderr_tail());
            client
                .get(&probe)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;

    // Pool, app client, alice and bob signed in (the moto suite's setup script).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/cognito_setup.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--endpoint", &endpoint])
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let mut setup = ChildGuard::spawn("cognito_setup.py", cmd, dir.path()).unwrap();
    let status = setup.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "setup failed: {}", setup.stderr_tail());
    let moto_out: Value = serde_json::from_str(setup.stdout().trim()).unwrap();
    let pool = text(&moto_out, &["pool_id"]);
    let alice = text(&moto_out, &["users", "alice", "access_token"]);
    let alice_id = text(&moto_out, &["users", "alice", "id_token"]);
    let bob = text(&moto_out, &["users", "bob", "access_token"]);

    let upstream = Upstream::start().await;
    let config = format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://{upstream}"
log_level = "warn"

[[pools]]
name = "moto"
id = "{pool}"
client_ids = ["{client}"]
token_use = ["id", "access"]
jwks_url = "{endpoint}/{pool}/.well-known/jwks.json"
revocation_check = true
idp_endpoint = "{endpoint}/"

[revocation_check]
cache_seconds = 1
"#,
        upstream = upstream.addr,
        client = text(&moto_out, &["client_id"]),
    );
    let proxy = Binary::start(&config).await;
    let series = |result: &str| {
        format!("cognito_sidecar_revocation_checks_total{{pool=\"moto\",result=\"{result}\"}}")
    };

    assert_eq!(get(&proxy, &alice).await.0, 200, "alice before sign-out");
    assert_eq!(get(&proxy, &bob).await.0, 200, "bob before sign-out");
    assert_eq!(proxy.metric(&series("valid")).await, 2.0);

    // Alice signs herself out everywhere; within a cache window her token is refused.
    sign_out(&endpoint, &["self", &alice]).await;
    wait_until("alice's access token to be refused", async || {
        get(&proxy, &alice).await.0 == 401
    })
    .await;
    let (_, www) = get(&proxy, &alice).await;
    assert!(
        www.contains("error=\"invalid_token\"")
            && www.contains("error_description=\"The access token has been revoked\""),
        "{www}"
    );
    assert_eq!(get(&proxy, &bob).await.0, 200, "bob is not affected");
    // Documented limit: ID tokens are not checked (GetUser takes access tokens only).
    assert_eq!(get(&proxy, &alice_id).await.0, 200, "alice's ID token");

    // An administrator signs bob out.
    sign_out(&endpoint, &["admin", &pool, "bob"]).await;
    wait_until("bob's access token to be refused", async || {
        get(&proxy, &bob).await.0 == 401
    })
    .await;
    assert!(proxy.metric(&series("revoked")).await >= 2.0);
    assert_eq!(proxy.metric(&series("error")).await, 0.0);
    assert!(
        proxy
            .metric("cognito_sidecar_auth_denied_total{reason=\"revoked\"}")
            .await
            >= 2.0
    );
}
