//! The raised floor: the leanest hyper 1.x reverse proxy measured in
//! `/work/shared/PERF-NOTES.md`, to compare the sidecar with what hyper itself can do
//! (next to `examples/hyper_floor.rs`, the sidecar's stack as it was configured).
//!
//! - one `current_thread` tokio runtime per CPU the process may use, each accepting on
//!   its own `SO_REUSEPORT` listener (nginx's worker model; `--threads N` overrides);
//! - `hyper::server::conn::http1` (no HTTP/2 version check of the auto builder), with a
//!   timer and a 10 s header-read timeout like the sidecar;
//! - no pool: each client connection owns one upstream connection
//!   (`hyper::client::conn::http1`, opened on its first request and re-opened when the
//!   backend closed it), so a request never hashes a pool key, takes a lock held by
//!   another thread or crosses threads;
//! - it forwards the request as received (origin-form URI, headers untouched), answers
//!   502 if the backend cannot be reached, and does nothing else.
//!
//! ```text
//! hyper_floor_lean --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N]
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark tool"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

type Body = Either<Incoming, Empty<Bytes>>;

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

fn required(name: &str) -> String {
    arg(name).unwrap_or_else(|| {
        panic!(
            "usage: hyper_floor_lean --listen ADDR --upstream ADDR [--threads N] (missing {name})"
        )
    })
}

fn main() {
    let listen: SocketAddr = required("--listen").parse().expect("--listen");
    let upstream: SocketAddr = required("--upstream").parse().expect("--upstream");
    let threads = arg("--threads").map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |n| n.parse().expect("--threads"),
    );
    let workers: Vec<_> = (0..threads.max(1))
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("floor-{i}"))
                .spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(serve(listen, upstream));
                })
                .expect("thread")
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn listener(addr: SocketAddr) -> TcpListener {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind(addr).expect("bind");
    socket.listen(4096).expect("listen")
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let listener = listener(listen);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        // This connection's upstream connection, opened on its first request. HTTP/1
        // serves one request at a time, so the lock is never contended.
        let slot: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
        let svc = service_fn(move |req| forward(upstream, Arc::clone(&slot), req));
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn forward(
    upstream: SocketAddr,
    slot: Arc<Mutex<Option<SendRequest<Incoming>>>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let mut held = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(s) = held.as_mut()
        && s.ready().await.is_err()
    {
        held = None; // the backend closed it: open another
    }
    let mut sender = match held {
        Some(s) => s,
        None => match connect(upstream).await {
            Some(s) => s,
            None => return Ok(bad_gateway()),
        },
    };
    let response = sender.send_request(req);
    if let Ok(mut s) = slot.lock() {
        *s = Some(sender);
    }
    Ok(match response.await {
        Ok(r) => r.map(Either::Left),
        Err(_) => bad_gateway(),
    })
}

async fn connect(upstream: SocketAddr) -> Option<SendRequest<Incoming>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.ready().await.ok()?;
    Some(sender)
}

fn bad_gateway() -> Response<Body> {
    let mut r = Response::new(Either::Right(Empty::new()));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}
