//! What a browser-session request costs next to a bearer request (issue 11), measured
//! in one process with the real proxy: a local JWKS server, a minimal upstream, the
//! sidecar with `[login]`, and a keep-alive HTTP/1.1 client driving `/app/` first with
//! `Authorization: Bearer <ID token>`, then with the session cookies that carry the same
//! ID token (plus a Cognito-sized refresh token). Also prints the cookie sizes and the
//! cost of opening a session alone.
//!
//! ```text
//! cargo run --release --example session_cost -- [--seconds S] [--connections C]
//! ```
//! Writes nothing; `bench/SESSION.md` records a run. Both modes hit the verified-token
//! cache after the first request, as real traffic does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "benchmark tool"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cognito_sidecar::config::Config;
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::login::Login;
use cognito_sidecar::login::session::Session;
use cognito_sidecar::{Listeners, demo};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

const POOL: &str = "us-east-1_BenchPool1";
const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_BenchPool1";
const KEYS: &str = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second over `seconds` on `connections` keep-alive connections.
async fn drive(
    addr: std::net::SocketAddr,
    header: (&'static str, String),
    seconds: u64,
    connections: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, header) = (Arc::clone(&done), header.clone());
        tasks.push(tokio::spawn(async move {
            let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            while Instant::now() < until {
                let req = Request::get("/app/page")
                    .header("host", "app.example.com")
                    .header(header.0, &header.1)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = send.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200, "{:?}", resp.headers());
                resp.into_body().collect().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = arg("--seconds", 5);
    let connections = arg("--connections", 16);
    let issuer = DevIssuer::generate(&["k1"]).unwrap();
    let jwks = issuer.jwks().to_string();
    let jwks_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = jwks_listener.local_addr().unwrap();
    demo::spawn_server(jwks_listener, move |_req| {
        let body = jwks.clone();
        async move { Response::new(Full::new(Bytes::from(body))) }
    });
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    demo::spawn_server(upstream, |_req| async {
        Response::new(Full::new(Bytes::from_static(b"ok")))
    });
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, KEYS).unwrap();
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        upstream = "http://{upstream_addr}"
        log_level = "error"
        [[pools]]
        id = "{POOL}"
        client_ids = ["web"]
        token_use = ["id"]
        jwks_url = "http://{jwks_addr}/jwks.json"
        [[routes]]
        path = "/app/"
        auth = "login"
        [login]
        client_id = "web"
        domain = "https://auth.example.com"
        external_url = "https://app.example.com"
        session_keys_file = "{}"
        "#,
        keys.display()
    );
    let config = Config::from_toml(&text).unwrap();
    let login = Login::from_config(&config).unwrap().unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    let mut running = cognito_sidecar::start(config, listeners, std::future::pending())
        .await
        .unwrap();
    running.ready().await;
    let addr = running.proxy_addr;

    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let groups: Vec<String> = (0..5).map(|i| format!("group-{i}")).collect();
    let id_token = issuer.mint(
        "k1",
        &json!({
            "sub": "5f1b2c3d-4e5f-4061-8272-839495a6b7c8", "aud": "web", "iss": ISS,
            "token_use": "id", "cognito:username": "alice", "cognito:groups": groups,
            "email": "alice@example.com", "email_verified": true,
            "auth_time": now, "iat": now, "exp": now + 3600,
            "origin_jti": "0b9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
            "jti": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "event_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
            "nonce": "Kq3v9x1Zb8Yt2Rw6Lp4Nm0Hc7Jd5Fg8Sa1Qe3Tu6Io9",
        }),
    );
    // Cognito's refresh tokens are JWE compact serializations of about 1.8 KB.
    let refresh = "x".repeat(1780);
    let session = Session {
        id_token: id_token.clone(),
        refresh_token: Some(refresh),
        signed_in_at: now,
    };
    let set = login.session_cookies(&session, now, 0);
    let pairs: Vec<String> = set
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    let cookie = pairs.join("; ");
    println!(
        "ID token: {} bytes; refresh token: 1780 bytes",
        id_token.len()
    );
    println!(
        "session cookies: {} pieces, Set-Cookie sizes {:?}, Cookie header {} bytes",
        set.len(),
        set.iter().map(String::len).collect::<Vec<_>>(),
        cookie.len()
    );
    let mut headers = HeaderMap::new();
    headers.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        assert!(login.open_session(&headers, now).is_some());
    }
    println!(
        "opening a session alone: {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );

    let bearer = ("authorization", format!("Bearer {id_token}"));
    let cookies = ("cookie", cookie);
    // Warm both paths, then alternate to even out drift.
    drive(addr, bearer.clone(), 1, connections).await;
    drive(addr, cookies.clone(), 1, connections).await;
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        b.push(drive(addr, bearer.clone(), seconds, connections).await);
        s.push(drive(addr, cookies.clone(), seconds, connections).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (b, s) = (mean(&b), mean(&s));
    println!(
        "bearer requests: {b:.0}/s; session requests: {s:.0}/s ({connections} connections, 2 x {seconds} s each)"
    );
    println!(
        "per request: bearer {:.1} µs, session {:.1} µs of wall time on this machine; session / bearer throughput {:.2}",
        1e6 / b,
        1e6 / s,
        s / b
    );
}
