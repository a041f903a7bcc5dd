//! Test harness: a local IdP (fresh RSA keys, a JWKS server whose answers a test can
//! change and whose fetches it can count), a recording echo upstream, the sidecar
//! started with `cognito_sidecar::start` on `127.0.0.1:0` (optionally with TLS, with
//! certificates generated at test time), and raw-socket helpers.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cognito_sidecar::config::Config;
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::{Listeners, Running};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

pub const POOL: &str = "us-east-1_TestPool1";
pub const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool1";
pub const CLIENT: &str = "C1";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Keys generated once per test binary (RSA key generation is slow in debug builds).
pub fn keys() -> &'static DevIssuer {
    static K: std::sync::OnceLock<DevIssuer> = std::sync::OnceLock::new();
    K.get_or_init(|| DevIssuer::generate(&["k1", "k2", "k3"]).expect("keygen"))
}

pub fn access_claims() -> Value {
    json!({"iss": ISS, "sub": "11111111-2222-3333-4444-555555555555", "token_use": "access",
           "client_id": CLIENT, "scope": "openid api/read", "username": "alice",
           "exp": now() + 600, "iat": now() - 60, "auth_time": now() - 60, "jti": "j1"})
}

pub fn id_claims() -> Value {
    json!({"iss": ISS, "sub": "11111111-2222-3333-4444-555555555555", "token_use": "id", "aud": CLIENT,
           "cognito:username": "alice", "email": "alice@example.com", "email_verified": true,
           "cognito:groups": ["users"], "exp": now() + 600, "iat": now() - 60, "auth_time": now() - 60})
}

pub fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

pub fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

pub fn mint(claims: &Value) -> String {
    keys().mint("k1", claims)
}

/// A JWKS document with the given kids of the shared test keys.
pub fn jwks_of(kids: &[&str]) -> String {
    let all = keys().jwks();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    json!({ "keys": keys }).to_string()
}

/// What the JWKS server answers.
#[derive(Clone, Debug)]
pub enum JwksAnswer {
    Json(String),
    Status(u16),
    Redirect(String),
    Bytes(Vec<u8>),
}

/// A JWKS server whose answer tests can change and whose fetches they can count.
pub struct JwksServer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<JwksAnswer>>,
    fetches: Arc<AtomicUsize>,
    fetched: Arc<Notify>,
}

impl JwksServer {
    pub async fn start(answer: JwksAnswer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let fetches = Arc::new(AtomicUsize::new(0));
        let fetched = Arc::new(Notify::new());
        let (a, f, n) = (answer.clone(), fetches.clone(), fetched.clone());
        cognito_sidecar::demo::spawn_server(listener, move |_req| {
            let (a, f, n) = (a.clone(), f.clone(), n.clone());
            async move {
                let ans = a.lock().unwrap().clone();
                f.fetch_add(1, Ordering::SeqCst);
                n.notify_waiters();
                match ans {
                    JwksAnswer::Json(s) => Response::new(Full::new(Bytes::from(s))),
                    JwksAnswer::Bytes(b) => Response::new(Full::new(Bytes::from(b))),
                    JwksAnswer::Status(code) => {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"oops")));
                        *r.status_mut() = StatusCode::from_u16(code).unwrap();
                        r
                    }
                    JwksAnswer::Redirect(to) => {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::FOUND;
                        r.headers_mut().insert("location", to.parse().unwrap());
                        r
                    }
                }
            }
        });
        Self {
            addr,
            answer,
            fetches,
            fetched,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/{POOL}/.well-known/jwks.json", self.addr)
    }

    pub fn set(&self, answer: JwksAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` fetches have happened.
    pub async fn wait_fetches(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.fetched.notified();
                if self.fetches() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("JWKS fetch did not happen");
    }
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body_len: usize,
    /// Request trailers, when the body ended with some.
    pub trailers: Option<http::HeaderMap>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
    pub fn count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}

/// A recording echo upstream.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<Notify>,
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with(Duration::ZERO).await
    }

    /// An upstream that waits `delay` before answering.
    pub async fn start_with(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (s, a) = (seen.clone(), arrived.clone());
        cognito_sidecar::demo::spawn_server(listener, move |req: Request<Incoming>| {
            let (s, a) = (s.clone(), a.clone());
            async move {
                let (parts, body) = req.into_parts();
                // Count the body chunk by chunk: never buffer it whole.
                let mut body = body;
                let mut len = 0;
                let mut trailers = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            len += f.data_ref().map_or(0, |d| d.len());
                            if let Ok(t) = f.into_trailers() {
                                trailers = Some(t);
                            }
                        }
                        Err(_) => break,
                    }
                }
                s.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    version: parts.version,
                    headers: parts.headers.clone(),
                    body_len: len,
                    trailers,
                });
                a.notify_waiters();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut r =
                    Response::new(Full::new(Bytes::from(format!("echo {} {len}", parts.uri))));
                r.headers_mut()
                    .insert("x-upstream", "echo".parse().unwrap());
                r.headers_mut()
                    .insert("connection", "x-upstream-secret".parse().unwrap());
                r.headers_mut()
                    .insert("x-upstream-secret", "1".parse().unwrap());
                r.headers_mut()
                    .insert("keep-alive", "timeout=5".parse().unwrap());
                r
            }
        });
        Self {
            addr,
            seen,
            arrived,
        }
    }

    /// Waits until the upstream has received at least `n` requests.
    pub async fn wait_count(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.arrived.notified();
                if self.count() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("upstream did not receive the request");
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("upstream received no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// The standard test configuration (SECURITY.md test conventions), with `extra` TOML
/// appended at top level before the tables.
pub fn config_text(jwks_url: &str, upstream: SocketAddr, top: &str, tables: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://{upstream}"
log_level = "warn"
{top}
[[pools]]
name = "test"
id = "{POOL}"
client_ids = ["{CLIENT}"]
token_use = ["id", "access"]
jwks_url = "{jwks_url}"

[[routes]]
path = "/public/"
auth = "public"
[[routes]]
path = "/opt/"
auth = "optional"
[[routes]]
path = "/admin/"
groups = ["admins"]
[[routes]]
path = "/write/"
scopes = ["api/write"]
token_use = ["access"]
[[routes]]
path = "/ids/"
token_use = ["id"]
{tables}
"#
    )
}

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
        self.client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the sidecar and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.sidecar.wait().await;
    }
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

/// A loopback port nobody listens on right now (for processes that bind it themselves).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// TLS: certificates generated at test time, HTTPS clients, a sidecar with `[tls]`.
// ---------------------------------------------------------------------------

/// A certificate authority issuing server and client certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (cert PEM, key PEM) for `localhost` / 127.0.0.1.
    pub fn server_cert(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// (cert PEM, key PEM) for a client (extended key usage `clientAuth`).
    pub fn client_cert(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` to `dir/name`; returns the path as a string for TOML.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Replaces the file at `path` atomically, as a rotation does: write a sibling, rename it
/// over the original.
pub fn replace(path: &str, text: &str) {
    let tmp = format!("{path}.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTPS client trusting `ca_pem`, presenting `identity` (cert PEM, key PEM) if given.
pub fn tls_client_builder(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    match identity {
        Some((cert, key)) => {
            b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        }
        None => b,
    }
}

pub fn tls_client(ca_pem: &str, identity: Option<(&str, &str)>, http2: bool) -> reqwest::Client {
    let b = tls_client_builder(ca_pem, identity);
    if http2 { b } else { b.http1_only() }.build().unwrap()
}

/// A ready sidecar with the standard configuration plus `top` and `tls` (a `[tls]` table).
pub async fn start_tls_env(top: &str, tls: &str) -> Env {
    let jwks = JwksServer::start(JwksAnswer::Json(jwks_of(&["k1"]))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&jwks.url(), upstream.addr, top, tls);
    Env::start_with_config(jwks, upstream, &text, true).await
}

pub fn https(env: &Env, path: &str) -> String {
    format!("https://localhost:{}{path}", env.sidecar.proxy_addr.port())
}

/// Polls `/metrics` until `series` reaches `want` (there is no push signal to await).
pub async fn wait_metric(env: &Env, series: &str, want: f64) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if metric(&env.metrics().await, series) >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{series} never reached {want}"));
}
