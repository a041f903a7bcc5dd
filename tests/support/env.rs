//! The sidecar started in-process with `cognito_sidecar::start` on listeners bound to
//! `127.0.0.1:0` and handed over (no port race), with its JWKS server, upstream and a
//! client; plus raw-socket and metric-reading helpers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use cognito_sidecar::config::Config;
use cognito_sidecar::{Listeners, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::claims::jwks_of;
use super::config::config_text;
use super::servers::{JwksAnswer, JwksServer, Upstream};
use super::wait::{Admin, scrape};

/// A started sidecar with its dependencies.
pub struct Env {
    pub sidecar: Running,
    pub jwks: JwksServer,
    pub upstream: Upstream,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Env {
    /// Standard environment: JWKS serving k1 and k2, echo upstream, ready sidecar.
    pub async fn start() -> Self {
        Self::start_custom(JwksAnswer::Json(jwks_of(&["k1", "k2"])), "", "", true).await
    }

    /// The standard environment with `top` TOML at top level and `tables` appended.
    pub async fn configured(top: &str, tables: &str) -> Self {
        Self::start_custom(JwksAnswer::Json(jwks_of(&["k1", "k2"])), top, tables, true).await
    }

    /// The standard environment forwarding to `upstream` (a server of the test's own)
    /// instead of the recording echo upstream.
    pub async fn behind(upstream: SocketAddr, top: &str, tables: &str) -> Self {
        let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1", "k2"]))).await;
        let text = config_text(&jwks.url(), upstream, top, tables);
        Self::start_with_config(jwks, Upstream::start().await, &text, true).await
    }

    /// The standard environment with a recording upstream the test started itself (for
    /// instance a slow one).
    pub async fn with_upstream(upstream: Upstream, top: &str, tables: &str) -> Self {
        let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1", "k2"]))).await;
        let text = config_text(&jwks.url(), upstream.addr, top, tables);
        Self::start_with_config(jwks, upstream, &text, true).await
    }

    pub async fn start_custom(
        answer: JwksAnswer,
        top: &str,
        tables: &str,
        wait_ready: bool,
    ) -> Self {
        let jwks = JwksServer::start(answer).await;
        let upstream = Upstream::start().await;
        let text = config_text(&jwks.url(), upstream.addr, top, tables);
        Self::start_with_config(jwks, upstream, &text, wait_ready).await
    }

    pub async fn start_with_config(
        jwks: JwksServer,
        upstream: Upstream,
        text: &str,
        wait_ready: bool,
    ) -> Self {
        let config = Config::from_toml(text).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let listeners = Listeners {
            proxy: TcpListener::bind("127.0.0.1:0").await.unwrap().into(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let mut sidecar = cognito_sidecar::start(config, listeners, async move {
            let _ = rx.await;
        })
        .await
        .expect("sidecar starts");
        if wait_ready {
            tokio::time::timeout(Duration::from_secs(10), sidecar.ready())
                .await
                .expect("sidecar did not become ready");
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self {
            sidecar,
            jwks,
            upstream,
            client,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.sidecar.proxy_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.sidecar.admin_addr)
    }

    /// `GET` on the admin listener, e.g. `/readyz`.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.admin_url(path))
            .send()
            .await
            .expect("request to the admin listener")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send().await.expect("request to sidecar")
    }

    /// Sends raw bytes to the proxy and returns everything it answers until it closes
    /// the connection (or 5 s pass).
    pub async fn raw(&self, request: &[u8]) -> String {
        raw(self.sidecar.proxy_addr, request).await
    }

    pub async fn metrics(&self) -> String {
        scrape(self).await
    }

    /// Stops the sidecar and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.sidecar.wait().await;
    }
}

impl Admin for Env {
    fn admin_addr(&self) -> SocketAddr {
        self.sidecar.admin_addr
    }
}

/// A plain HTTP client that ignores proxy settings.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// An HTTP/2 client with prior knowledge (h2c), ignoring proxy settings.
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap()
}

pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a metric series line, e.g. `cognito_sidecar_auth_denied_total{reason="expired"}`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

pub fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

pub fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}
