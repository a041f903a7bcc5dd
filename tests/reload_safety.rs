//! Reload safety over real sockets: a configuration file is loaded only once it has
//! settled (never half-written), and a reload never throws away keys that still verify.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::io::Write as _;
use std::time::Duration;

use cognito_sidecar::config::Config;
use cognito_sidecar::reload::{self, ReloadError, WatchSettings};
use serde_json::json;
use support::*;

const FAST_JWKS: &str = "[jwks]\nfetch_timeout_ms = 500\n";

async fn reloads(env: &Env, outcome: &str) -> f64 {
    metric(
        &env.metrics().await,
        &format!(r#"cognito_sidecar_config_reloads_total{{result="{outcome}"}}"#),
    )
}

#[tokio::test]
async fn a_config_file_written_in_two_steps_is_never_loaded_half_written() {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1", "k2"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&jwks.url(), upstream.addr, "", "");
    let env = Env::start_with_config(jwks, upstream, &text, true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    std::fs::write(&path, &text).unwrap();
    let watcher = tokio::spawn(reload::watch(
        std::sync::Arc::clone(&env.sidecar.live),
        WatchSettings {
            path: Some(path.clone()),
            poll: Duration::from_millis(50),
            settle: Duration::from_millis(400),
            sighup: false,
        },
    ));
    let user = mint(&access_claims());
    assert_eq!(env.get("/admin/x", Some(&user)).await.status(), 403);

    // The new file adds a public route. Its first part alone is valid TOML that has lost
    // the admin rule: loading it would let every user into /admin/.
    let full = format!("{text}\n[[routes]]\npath = \"/added/\"\nauth = \"public\"\n");
    let cut = full.find("[[routes]]\npath = \"/admin/\"").unwrap();
    assert!(
        Config::from_toml(&full[..cut]).is_ok(),
        "the first part is valid"
    );
    let before = reloads(&env, "success").await;
    let writer = {
        let (path, full) = (path.clone(), full.clone());
        tokio::spawn(async move {
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(&full.as_bytes()[..cut]).unwrap();
            f.flush().unwrap();
            // A slow writer: the second part comes later.
            tokio::time::sleep(Duration::from_millis(150)).await;
            f.write_all(&full.as_bytes()[cut..]).unwrap();
        })
    };
    // Until the reload lands, the admin rule holds on every request.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reloads(&env, "success").await <= before {
        assert_eq!(
            env.get("/admin/x", Some(&user)).await.status(),
            403,
            "a non-admin reached /admin/ during the write"
        );
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
    }
    writer.await.unwrap();
    assert_eq!(env.get("/admin/x", Some(&user)).await.status(), 403);
    assert_eq!(
        env.get("/added/x", None).await.status(),
        200,
        "the whole file loaded"
    );
    assert_eq!(reloads(&env, "invalid").await, 0.0);
    watcher.abort();
}

#[tokio::test]
async fn a_reload_to_an_unreachable_jwks_url_keeps_verifying_with_the_old_keys() {
    let env = Env::configured(FAST_JWKS, "").await;
    let token = mint(&access_claims());
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
    // Same pool, its JWKS URL now points nowhere, and a route is added.
    let refusing = Refusing::new();
    let dead = format!("http://{}/jwks", refusing.addr);
    let text = config_text(
        &dead,
        env.upstream.addr,
        FAST_JWKS,
        "[[routes]]\npath = \"/added/\"\nauth = \"public\"\n",
    );
    let report = env
        .sidecar
        .live
        .reload(Config::from_toml(&text).unwrap())
        .await
        .expect("the reload applies");
    assert_eq!(report.keys_carried_over, ["test"]);
    assert_eq!(env.get("/added/x", None).await.status(), 200, "applied");
    assert_eq!(
        env.get("/api/x", Some(&token)).await.status(),
        200,
        "tokens still verify with the previous keys"
    );
    let ready = env.admin_get("/readyz").await;
    assert_eq!(ready.status(), 200, "readiness holds");
}

#[tokio::test]
async fn a_reload_adding_a_pool_whose_keys_cannot_load_is_refused_whole() {
    let env = Env::configured(FAST_JWKS, "").await;
    let refusing = Refusing::new();
    let dead = format!("http://{}/jwks", refusing.addr);
    let text = format!(
        "{}\n[[pools]]\nname = \"other\"\nid = \"eu-west-1_Other1\"\nclient_ids = [\"C9\"]\ntoken_use = [\"access\"]\njwks_url = \"{dead}\"\n",
        config_text(
            &env.jwks.url(),
            env.upstream.addr,
            FAST_JWKS,
            "[[routes]]\npath = \"/added/\"\nauth = \"public\"\n",
        )
    );
    let err = env
        .sidecar
        .live
        .reload(Config::from_toml(&text).unwrap())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ReloadError::KeysUnavailable(p) if p == &["other".to_owned()]),
        "{err}"
    );
    assert_eq!(
        env.get("/added/x", None).await.status(),
        401,
        "the previous configuration is still in force"
    );
    let admin = mint(&with(access_claims(), "cognito:groups", json!(["admins"])));
    assert_eq!(env.get("/admin/x", Some(&admin)).await.status(), 200);
}

#[tokio::test]
async fn after_a_reload_that_replaces_the_key_store_the_running_handle_follows_it() {
    let mut env = Env::configured(FAST_JWKS, "").await;
    let before = env.sidecar.jwks();
    // A changed [jwks] section rebuilds the key store (same pool, same JWKS URL).
    let text = config_text(
        &env.jwks.url(),
        env.upstream.addr,
        "[jwks]\nfetch_timeout_ms = 600\n",
        "",
    );
    let report = env
        .sidecar
        .live
        .reload(Config::from_toml(&text).unwrap())
        .await
        .expect("the reload applies");
    assert!(report.keys_rebuilt, "the key store was rebuilt");
    let after = env.sidecar.jwks();
    assert!(
        !std::sync::Arc::ptr_eq(&before, &after),
        "the handle names the store in force, not the first one"
    );
    // Readiness is that of the store in force: it resolves once the new one has keys.
    tokio::time::timeout(Duration::from_secs(10), env.sidecar.ready())
        .await
        .expect("ready follows the new key store");
    assert!(*after.ready().borrow(), "the new store has its keys");
    let token = mint(&access_claims());
    assert_eq!(env.get("/api/x", Some(&token)).await.status(), 200);
}
