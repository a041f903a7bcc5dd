//! Local servers the sidecar talks to: a JWKS server whose answer a test can change and
//! whose fetches it can count, and a recording echo upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::claims::POOL;
use super::wait::wait_notified;

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
        wait_notified(&self.fetched, "JWKS fetches", || self.fetches() >= n).await;
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
        wait_notified(&self.arrived, "requests at the upstream", || {
            self.count() >= n
        })
        .await;
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
