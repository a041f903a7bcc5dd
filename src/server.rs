//! Listeners and connection handling: the proxy accept loop over TCP (plain or TLS) or a
//! unix socket; HTTP/1.1 with upgrades and HTTP/2 (ALPN `h2` over TLS, prior knowledge
//! otherwise), chosen per connection before hyper is involved (`proto`), with a `Timer`
//! so the header read timeout is actually enforced; explicit header and stream limits;
//! a connection cap
//! that applies back-pressure by not accepting; a per-address cap that closes the
//! excess at once (`per_ip`); the connection watch (`conn`: time to the first request
//! head, HTTP/2 header blocks, idle with control frames not counting); and graceful
//! drain.

mod conn;
mod inflight;
mod per_ip;
mod proto;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::ListenAddr;
use crate::flag::until_true;
use crate::proxy::websocket::KeepAlive;
use crate::proxy::{self, ConnInfo};
use crate::reload::Live;
use conn::{ConnWatch, Rules, Verdict, Watched};
use inflight::{GuardedBody, InFlight, Permits, Streams};
use per_ip::{PerIp, Slot};
use proto::{Builders, Conn};

/// The socket the proxy accepts on.
pub enum ProxyListener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix domain socket (path kept to remove it on shutdown).
    Unix(UnixListener, PathBuf),
}

impl From<TcpListener> for ProxyListener {
    fn from(l: TcpListener) -> Self {
        Self::Tcp(l)
    }
}

impl ProxyListener {
    /// Binds the configured address. A stale unix socket file (nobody listening) is
    /// replaced.
    ///
    /// # Errors
    /// The bind error, naming the address.
    pub async fn bind(addr: &ListenAddr) -> std::io::Result<Self> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Self::Tcp(bind(*a).await?)),
            ListenAddr::Unix(path) => {
                if path.exists() && tokio::net::UnixStream::connect(path).await.is_err() {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot listen on unix:{}: {e}", path.display()),
                    )
                })?;
                Ok(Self::Unix(l, path.clone()))
            }
        }
    }

    /// The TCP address, if this is a TCP listener.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }

    fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Tcp(_) => None,
            Self::Unix(_, p) => Some(p),
        }
    }
}

/// What an accepted connection holds while it lives: its `max_connections` permit, its
/// per-address slot, and its place in the open-connections gauge. A bridged WebSocket
/// session inherits it (through [`KeepAlive`]), so sessions count against the cap.
struct ConnHold {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _slot: Option<Slot>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ConnHold {
    fn new(
        permit: tokio::sync::OwnedSemaphorePermit,
        slot: Option<Slot>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        metrics.connections.inc();
        Self {
            _permit: permit,
            _slot: slot,
            metrics,
        }
    }
}

impl Drop for ConnHold {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// Once a connection has been asked to close gracefully (GOAWAY sent, keep-alive
/// off), how long it may take to finish when no request is left progressing; then it
/// is dropped. Clients that never acknowledge a GOAWAY cannot hold it open.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often a closing connection with requests still in flight is looked at.
const CLOSING_TICK: Duration = Duration::from_millis(250);

/// What a connection needs besides its socket.
struct ConnCtx {
    info: ConnInfo,
    live: Arc<Live>,
    builders: Arc<Builders>,
    rules: Rules,
    /// The global cap on requests in flight.
    permits: Permits,
    /// `limits.send_timeout`.
    send_timeout: Duration,
    /// The connection's slot; handed to a WebSocket session that outlives it.
    hold: Arc<ConnHold>,
    /// Turns true when the server drains.
    drain: watch::Receiver<bool>,
    /// Held while the connection lives, so the drain can wait for it.
    _open: watch::Receiver<()>,
}

/// Serves one accepted connection until it ends, breaks a rule of the connection
/// watch (`server/conn.rs`: first request head, h2 header blocks, idle), or the drain
/// ends it.
async fn serve_conn<IO>(io: IO, h2_alpn: bool, ctx: ConnCtx)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ConnCtx {
        info,
        live,
        builders,
        rules,
        permits,
        send_timeout,
        hold,
        mut drain,
        _open,
    } = ctx;
    let watch = ConnWatch::new(tokio::time::Instant::now());
    let streams = Arc::new(Streams::default());
    let io = Watched::new(io, Arc::clone(&watch));
    let svc_watch = Arc::clone(&watch);
    let svc_streams = Arc::clone(&streams);
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        // Each request sees the configuration in force when it arrives. The guard
        // lives until the response body is done, dropped or abandoned.
        let shared = live.load();
        let permit = permits.try_take(
            per_ip_key(&shared.config, info.peer),
            shared.config.limits.max_in_flight_requests_per_ip,
        );
        let refused = permit.as_ref().err().copied();
        let admitted = refused.is_none();
        let guard = InFlight::enter(&svc_watch, shared.metrics.in_flight.clone(), permit.ok());
        if admitted && req.headers().contains_key(http::header::UPGRADE) {
            let held: Arc<dyn Send + Sync> = Arc::clone(&hold) as _;
            req.extensions_mut().insert(KeepAlive::new(held));
        }
        let streams = Arc::clone(&svc_streams);
        async move {
            let response = if admitted {
                // Boxed: hyper keeps room for one request future per HTTP/1
                // connection for as long as it lives (idle too), and the proxy's is
                // ~3.9 KB; boxed, that room is a pointer and the future exists only
                // while a request does.
                match Box::pin(proxy::handle(req, shared, info)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            } else {
                let reason = refused.map_or("in_flight_limit", inflight::Refused::reason);
                proxy::overloaded(&req, &shared, reason)
            };
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard, &streams)))
        }
    });
    let mut conn = Conn::new(io, h2_alpn, &builders, svc);
    // Set once a graceful close was asked for (a rule, or the drain).
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        let wake = if let Some(since) = closing {
            // Requests still progressing may finish (the drain bounds them); requests
            // stuck on a client that takes nothing do not hold the close up.
            let stuck = watch.in_flight() == 0 || watch.is_idle(&rules, now);
            if stuck && now >= since + CLOSE_GRACE {
                tracing::debug!("dropping a connection that did not finish closing");
                return;
            }
            (since + CLOSE_GRACE).max(now + CLOSING_TICK)
        } else {
            match watch.verdict(&rules, now) {
                Verdict::Open(at) if watch.in_flight() > 0 => {
                    match streams.abandon_stalled(send_timeout, now) {
                        (0, next) => next.map_or(at, |n| n.min(at)),
                        (n, _) => {
                            tracing::debug!(
                                abandoned = n,
                                "responses the client took nothing of for the send timeout abandoned"
                            );
                            if watch.is_http1() {
                                // Its one response cannot finish: close now.
                                conn.graceful_shutdown();
                                closing = Some(now);
                            }
                            continue;
                        }
                    }
                }
                Verdict::Open(at) => at,
                Verdict::Close(why) => {
                    tracing::debug!(?why, "closing client connection");
                    if why.is_abrupt() {
                        return;
                    }
                    conn.graceful_shutdown();
                    closing = Some(now);
                    continue;
                }
            }
        };
        tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_conn(cx)) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            () = until_true(&mut drain), if closing.is_none() => {
                conn.graceful_shutdown();
                closing = Some(tokio::time::Instant::now());
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// The address a peer's requests count against for the per-address caps: `None` for
/// unix-socket peers and peers in `trusted_proxies` (a load balancer carries many
/// clients), which are exempt.
fn per_ip_key(cfg: &crate::config::Config, peer: Option<SocketAddr>) -> Option<std::net::IpAddr> {
    let ip = peer?.ip().to_canonical();
    (!cfg.trusted_proxies.iter().any(|n| n.contains(&ip))).then_some(ip)
}

/// A connection from an address already at `limits.max_connections_per_ip`.
struct OverCap;

/// Applies the per-address cap to a new connection. Unix-socket peers, peers in
/// `trusted_proxies` (a load balancer carries many clients) and a cap of 0 are exempt.
fn admit(
    per_ip: &Arc<PerIp>,
    live: &Live,
    peer: Option<SocketAddr>,
) -> Result<Option<Slot>, OverCap> {
    let shared = live.load();
    let (Some(ip), Some(cap)) = (
        per_ip_key(&shared.config, peer),
        shared.config.limits.max_connections_per_ip,
    ) else {
        return Ok(None);
    };
    per_ip.try_enter(ip, cap).map(Some).ok_or(OverCap)
}

/// Serves the proxy on `listener` until `stop_accepting` turns true, then waits up to
/// `drain` for in-flight requests and bridged WebSockets to finish.
pub async fn serve_proxy(
    listener: ProxyListener,
    live: Arc<Live>,
    tls: Option<(TlsAcceptor, Duration)>,
    mut stop_accepting: watch::Receiver<bool>,
    drain: Duration,
) {
    // Connection-level limits are fixed at start; a reload reports changes to them.
    let startup = live.load();
    let builders = Arc::new(Builders::new(&startup.config.limits));
    let rules = Rules {
        header_read_timeout: startup.config.limits.header_read_timeout,
        idle_timeout: startup.config.limits.idle_timeout,
    };
    // Every connection holds a receiver; the drain waits until none is left.
    let (open_conns, _) = watch::channel(());
    let per_ip = Arc::new(PerIp::default());
    let local_port = listener.local_addr().map_or(0, |a| a.port());
    let permits = Arc::new(Semaphore::new(startup.config.limits.max_connections));
    let in_flight = Permits::new(startup.config.limits.max_in_flight_requests);
    let send_timeout = startup.config.limits.send_timeout;
    let metrics = Arc::clone(&startup.metrics);
    drop(startup);
    loop {
        // Back-pressure: at the connection cap, stop accepting until one closes.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = until_true(&mut stop_accepting) => break,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            () = until_true(&mut stop_accepting) => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = admit(&per_ip, &live, peer) else {
            // Closed at once, before any TLS work: queueing would let one address
            // hold the accept queue instead.
            metrics
                .connections_rejected
                .with_label_values(&["per_ip_limit"])
                .inc();
            tracing::debug!(?peer, "connection over the per-address cap closed");
            drop(stream);
            continue;
        };
        let tls = tls.clone();
        let metrics = Arc::clone(&metrics);
        let hold = Arc::new(ConnHold::new(permit, slot, Arc::clone(&metrics)));
        let ctx = ConnCtx {
            info: ConnInfo {
                peer,
                local_port,
                tls: tls.is_some(),
            },
            live: Arc::clone(&live),
            builders: Arc::clone(&builders),
            rules,
            permits: in_flight.clone(),
            send_timeout,
            hold: Arc::clone(&hold),
            drain: stop_accepting.clone(),
            _open: open_conns.subscribe(),
        };
        tokio::spawn(async move {
            match (stream, tls) {
                (Accepted::Tcp(s), Some((acceptor, timeout))) => {
                    match tokio::time::timeout(timeout, acceptor.accept(s)).await {
                        Ok(Ok(tls_stream)) => {
                            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_conn(tls_stream, h2, ctx).await;
                        }
                        Ok(Err(e)) => {
                            metrics.tls_handshake_failures.inc();
                            tracing::debug!(error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics.tls_handshake_failures.inc();
                            tracing::debug!("TLS handshake timed out");
                        }
                    }
                }
                (Accepted::Tcp(s), None) => serve_conn(s, false, ctx).await,
                (Accepted::Unix(s), _) => serve_conn(s, false, ctx).await,
            }
            // A bridged WebSocket session may keep the slot (see `ConnHold`).
            drop(hold);
        });
    }
    let unix_path = listener.unix_path().map(Path::to_path_buf);
    drop(listener);
    if let Some(p) = unix_path {
        let _ = std::fs::remove_file(p);
    }
    tracing::info!(
        drain_seconds = drain.as_secs(),
        "stopped accepting; draining"
    );
    let websockets = Arc::clone(live.websockets());
    let drained = async {
        open_conns.closed().await;
        websockets.wait_idle().await;
    };
    if tokio::time::timeout(drain, drained).await.is_ok() {
        tracing::info!("all connections drained");
    } else {
        tracing::warn!("drain timeout expired; closing remaining connections");
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &ProxyListener) -> std::io::Result<(Accepted, Option<SocketAddr>)> {
    match listener {
        ProxyListener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Accepted::Tcp(s), Some(peer)))
        }
        ProxyListener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            Ok((Accepted::Unix(s), None))
        }
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
