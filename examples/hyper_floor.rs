//! The floor under the sidecar: a bare hyper 1.x reverse proxy on the same stack
//! (tokio multi-thread runtime, hyper-util's auto server builder with the sidecar's
//! timer and header-read timeout, hyper-util's pooled legacy client with `TCP_NODELAY`)
//! that does nothing but forward: no auth, no header hygiene, no metrics, no logging.
//!
//! ```text
//! hyper_floor --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
//! ```
//!
//! `bench/run.sh` measures it next to the sidecar: the difference between the two is
//! what the sidecar's own per-request work costs; the difference between it and nginx
//! is what the runtime and HTTP stack cost (throughput, and memory per idle
//! keep-alive connection).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark tool"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

fn arg(name: &str) -> String {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next().expect("value");
        }
    }
    panic!("usage: hyper_floor --listen ADDR --upstream ADDR (missing {name})")
}

fn main() {
    let listen: SocketAddr = arg("--listen").parse().expect("--listen");
    let upstream = arg("--upstream");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(listen, upstream));
}

async fn serve(listen: SocketAddr, upstream: String) {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(http);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let listener = TcpListener::bind(listen).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let client = client.clone();
            let upstream = upstream.clone();
            async move {
                let (mut parts, body) = req.into_parts();
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{upstream}{pq}")
                    .parse::<Uri>()
                    .expect("uri");
                parts.headers.remove(http::header::HOST);
                let resp = match client.request(Request::from_parts(parts, body)).await {
                    Ok(r) => r.map(BodyExt::boxed),
                    Err(_) => {
                        let mut r = Response::new(
                            http_body_util::Empty::new()
                                .map_err(|never: Infallible| match never {})
                                .boxed(),
                        );
                        *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                        r
                    }
                };
                Ok::<Response<Body>, Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
