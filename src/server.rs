//! Listeners and connection handling: the proxy accept loop (HTTP/1.1 and h2c prior
//! knowledge via hyper-util's auto builder, with a `Timer` so the header read timeout is
//! enforced), explicit header limits, and graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Limits;
use crate::proxy::{self, ConnInfo, Shared};

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Builds the connection builder with every limit set explicitly.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(200);
    b
}

/// Serves the proxy on `listener` until `shutdown` turns true, then drains.
pub async fn serve_proxy(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = builder(&shared.config.limits);
    let graceful = GracefulShutdown::new();
    let local_port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let info = ConnInfo { peer, local_port, tls: false };
                let shared = Arc::clone(&shared);
                let metrics = Arc::clone(&shared.metrics);
                let svc = service_fn(move |req| proxy::handle(req, Arc::clone(&shared), info));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                metrics.connections.inc();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with error");
                    }
                    metrics.connections.dec();
                });
            }
            () = until_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_GRACE) => tracing::warn!("drain grace expired; closing remaining connections"),
    }
}

/// Binds a TCP listener, naming the address in the error.
///
/// # Errors
/// The bind error, with the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Resolves once `rx` holds `true` (or its sender is gone). Unlike `wait_for`, the
/// future holds no borrow guard, so it can sit in a `select!` of a spawned task.
pub async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
