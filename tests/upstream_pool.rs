//! The HTTP/1.1 upstream pool, seen from a raw-socket backend that numbers its
//! connections: connections are reused, never after a response was abandoned midway,
//! a backend closing idle connections costs no request, idle connections are closed
//! after `upstream_idle_timeout_seconds`, and at most `upstream_max_idle_connections`
//! stay open.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use support::claims::{access_claims, mint};
use support::env::Env;
use support::wait::{wait_notified, wait_until};

/// A backend speaking just enough HTTP/1.1: each answer's body names the connection
/// (numbered from 1) that served it.
struct Backend {
    addr: SocketAddr,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    changed: Arc<Notify>,
    /// Lets every `/hold` answer finish.
    release: watch::Sender<bool>,
}

impl Backend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let changed = Arc::new(Notify::new());
        let (release, released) = watch::channel(false);
        let (o, c, n) = (opened.clone(), closed.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let id = o.fetch_add(1, Ordering::SeqCst) + 1;
                n.notify_waiters();
                let (c, n, r) = (c.clone(), n.clone(), released.clone());
                tokio::spawn(async move {
                    serve(sock, id, r).await;
                    c.fetch_add(1, Ordering::SeqCst);
                    n.notify_waiters();
                });
            }
        });
        Self {
            addr,
            opened,
            closed,
            changed,
            release,
        }
    }

    fn open_now(&self) -> usize {
        self.opened.load(Ordering::SeqCst) - self.closed.load(Ordering::SeqCst)
    }
}

/// Serves requests (heads only, no bodies) until the client closes: `/big` answers
/// 32 MiB (more than any socket buffers hold), `/empty` a 204, `/bye` answers then closes without saying so, `/hold`
/// sends half its body and the rest once released, anything else `conn=<id>`.
async fn serve(mut sock: TcpStream, id: usize, mut released: watch::Receiver<bool>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let answer = match path.as_str() {
            "/big" => {
                let body = vec![b'x'; 32 * 1024 * 1024];
                let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                    .into_bytes();
                a.extend_from_slice(&body);
                a
            }
            "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/hold" => {
                let half = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello";
                if sock.write_all(half).await.is_err() || released.wait_for(|r| *r).await.is_err() {
                    return;
                }
                b"world".to_vec()
            }
            _ => {
                let body = format!("conn={id}");
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        };
        if sock.write_all(&answer).await.is_err() {
            return;
        }
        if path == "/bye" {
            return;
        }
    }
}

async fn body(env: &Env, path: &str, token: &str) -> String {
    let resp = env.get(path, Some(token)).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let backend = Backend::start().await;
    let env = Env::behind(backend.addr, "", "").await;
    let token = mint(&access_claims());
    for _ in 0..20 {
        assert_eq!(body(&env, "/a", &token).await, "conn=1");
    }
    // Answers without a body (a 204) give their connection back too.
    for _ in 0..5 {
        let resp = env.get("/empty", Some(&token)).await;
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(body(&env, "/a", &token).await, "conn=1");
    assert_eq!(backend.opened.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_abandoned_midway_never_leaves_its_bytes_for_the_next_request() {
    let backend = Backend::start().await;
    let env = Env::behind(backend.addr, "", "").await;
    let token = mint(&access_claims());
    assert_eq!(body(&env, "/a", &token).await, "conn=1");
    // Read the head of a 32 MiB answer and walk away from it, over a raw socket.
    let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
    let req = format!("GET /big HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    // Connection 1 carried the abandoned answer: it is closed, never reused.
    wait_notified(&backend.changed, "the abandoned connection closed", || {
        backend.closed.load(Ordering::SeqCst) >= 1
    })
    .await;
    for _ in 0..5 {
        assert_eq!(body(&env, "/a", &token).await, "conn=2");
    }
}

#[tokio::test]
async fn a_backend_closing_connections_after_each_answer_costs_no_request() {
    let backend = Backend::start().await;
    let env = Env::behind(backend.addr, "", "").await;
    let token = mint(&access_claims());
    for i in 1..=10 {
        let resp = env.get("/bye", Some(&token)).await;
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), format!("conn={i}"));
    }
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let backend = Backend::start().await;
    let env = Env::behind(
        backend.addr,
        "",
        "[limits]\nupstream_idle_timeout_seconds = 1\n",
    )
    .await;
    let token = mint(&access_claims());
    assert_eq!(body(&env, "/a", &token).await, "conn=1");
    wait_notified(&backend.changed, "the idle connection closed", || {
        backend.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // The next request opens a new connection and is served.
    assert_eq!(body(&env, "/a", &token).await, "conn=2");
}

#[tokio::test]
async fn at_most_upstream_max_idle_connections_stay_open() {
    let backend = Backend::start().await;
    let env = Env::behind(
        backend.addr,
        "",
        "[limits]\nupstream_max_idle_connections = 2\n",
    )
    .await;
    let token = mint(&access_claims());
    // Eight clients at once, their answers held half-sent by the backend.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(env.sidecar.proxy_addr).await.unwrap();
        let req = format!("GET /hold HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        held.push(s);
    }
    wait_notified(&backend.changed, "eight upstream connections", || {
        backend.opened.load(Ordering::SeqCst) == 8
    })
    .await;
    // Every answer finished and read to its end: the connections go back, two stay.
    backend.release.send_replace(true);
    for mut s in held {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !got.ends_with(b"helloworld") {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "answer cut short");
            got.extend_from_slice(&chunk[..n]);
        }
    }
    wait_until("six upstream connections closed", async || {
        backend.open_now() == 2
    })
    .await;
    assert_eq!(backend.opened.load(Ordering::SeqCst), 8);
}
