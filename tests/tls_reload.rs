//! Hot reload of the mTLS client CA bundle over real sockets: a rotated bundle applies to
//! new handshakes without a restart, established connections continue, resumed sessions
//! do not outlive the CA that verified them, and a broken bundle keeps the previous one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use support::*;

const SUCCESS: &str = r#"cognito_sidecar_tls_reloads_total{result="success"}"#;
const ERROR: &str = r#"cognito_sidecar_tls_reloads_total{result="error"}"#;

/// A sidecar serving a certificate of `server`, requiring client certificates from the
/// bundle at the returned path (holding `clients`), checked every second.
async fn start_mtls(dir: &std::path::Path, server: &Ca, clients: &Ca) -> (Env, String) {
    let ca_path = write(dir, "clients.pem", &clients.pem());
    let (tls, _, _) = tls_table(
        dir,
        server,
        &format!("client_ca_file = \"{ca_path}\"\nreload_interval_seconds = 1\n"),
    );
    (start_tls_env("", &tls).await, ca_path)
}

/// A client (with its own connection pool and TLS session cache) holding a fresh
/// certificate from `ca`.
fn client_of(server: &Ca, ca: &Ca) -> reqwest::Client {
    let (cert, key) = ca.client_cert();
    tls_client(&server.pem(), Some((&cert, &key)), false)
}

/// Whether `client` gets through (a refused certificate fails the handshake).
async fn admitted(env: &Env, client: &reqwest::Client) -> bool {
    match client.get(https(env, "/public/x")).send().await {
        Ok(r) => {
            assert_eq!(r.status(), 200);
            true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_rotated_client_ca_bundle_admits_clients_of_the_new_ca_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ca::new("server ca");
    let (a, b) = (Ca::new("client ca A"), Ca::new("client ca B"));
    let (env, ca_path) = start_mtls(dir.path(), &server, &a).await;
    let held = client_of(&server, &a);
    assert!(
        admitted(&env, &held).await,
        "client of A refused by bundle A"
    );
    assert!(
        !admitted(&env, &client_of(&server, &b)).await,
        "client of B admitted by bundle A"
    );

    replace(&ca_path, &b.pem());
    wait_metric(&env, SUCCESS, 1.0).await;
    assert!(
        admitted(&env, &client_of(&server, &b)).await,
        "client of B refused after the rotation to B"
    );
    assert!(
        !admitted(&env, &client_of(&server, &a)).await,
        "client of A admitted after the rotation to B"
    );
    // The connection established under A is not torn down by the rotation.
    assert!(admitted(&env, &held).await, "established connection cut");
    assert_eq!(metric(&env.metrics().await, ERROR), 0.0);

    // A broken bundle (a half-written certificate) is reported; B keeps serving.
    replace(&ca_path, "-----BEGIN CERTIFICATE-----\ngarbage\n");
    wait_metric(&env, ERROR, 1.0).await;
    assert!(
        admitted(&env, &client_of(&server, &b)).await,
        "client of B refused after a broken bundle"
    );
    assert!(
        !admitted(&env, &client_of(&server, &a)).await,
        "client of A admitted after a broken bundle"
    );
    // A bundle holding no certificate at all is unusable too. Errors count per poll while
    // the file stays broken: the second one from now has certainly read the empty file.
    let errors = metric(&env.metrics().await, ERROR);
    replace(&ca_path, "");
    wait_metric(&env, ERROR, errors + 2.0).await;
    assert!(admitted(&env, &client_of(&server, &b)).await);
    assert_eq!(metric(&env.metrics().await, SUCCESS), 1.0);
    env.stop().await;
}

#[tokio::test]
async fn a_client_resuming_a_session_after_its_ca_was_rotated_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ca::new("server ca");
    let (a, b) = (Ca::new("client ca A"), Ca::new("client ca B"));
    let (env, ca_path) = start_mtls(dir.path(), &server, &a).await;
    // No pooled connections: every request makes a handshake, resuming the TLS session
    // of the previous one when the server still knows it.
    let (cert, key) = a.client_cert();
    let resuming = tls_client_builder(&server.pem(), Some((&cert, &key)))
        .http1_only()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert!(admitted(&env, &resuming).await);
    assert!(admitted(&env, &resuming).await);

    replace(&ca_path, &b.pem());
    wait_metric(&env, SUCCESS, 1.0).await;
    assert!(
        !admitted(&env, &resuming).await,
        "a session verified under A was resumed after the rotation to B"
    );
    env.stop().await;
}
