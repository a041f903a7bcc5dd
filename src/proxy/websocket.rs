//! Bridged WebSocket sessions: after an authenticated upgrade the proxy copies bytes both
//! ways until either side closes, nothing moves for `limits.websocket_idle_timeout_seconds`,
//! the token that opened the session expires (plus the pool's leeway; opt out with
//! `limits.websocket_close_on_token_expiry = false`), or a reload makes the route refuse
//! that token or a deny-list change names it (a route in report mode keeps what it may
//! forward). Open sessions are counted so the drain can wait for them.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::auth;
use crate::clock::unix_now;
use crate::metrics::Metrics;
use crate::proxy::Shared;

/// Counts bridged sessions (so a drain can wait for them) and tells them when a reload
/// installs a new configuration.
pub struct Sessions {
    open: AtomicUsize,
    closed: Notify,
    config: watch::Sender<Weak<Shared>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            config: watch::Sender::new(Weak::new()),
        }
    }
}

struct SessionGuard(Arc<Sessions>, Arc<Metrics>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.1.websocket_sessions.dec();
        self.0.closed.notify_waiters();
    }
}

impl Sessions {
    fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> SessionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        metrics.websocket_sessions.inc();
        SessionGuard(Arc::clone(self), Arc::clone(metrics))
    }

    /// Open sessions.
    #[must_use]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Resolves when no session is open.
    pub async fn wait_idle(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Changes each time a configuration is installed (sessions re-check against it;
    /// other waiters follow it).
    #[must_use]
    pub fn installed(&self) -> watch::Receiver<Weak<Shared>> {
        self.config.subscribe()
    }

    /// A reload installed `shared`: every open session re-checks its token against it.
    pub fn config_changed(&self, shared: &Arc<Shared>) {
        self.config.send_replace(Arc::downgrade(shared));
    }

    /// Every open session re-checks its token against the configuration in force (the
    /// deny-list changed).
    pub fn recheck(&self) {
        self.config.send_modify(|_| {});
    }
}

/// Whatever the accepting layer wants kept alive as long as the connection it came in
/// on: its `max_connections` slot and its place in the open-connections gauge. The
/// connection's requests that ask for an upgrade carry it as an extension; a bridged
/// session takes it over, so sessions count against the connection cap.
#[derive(Clone)]
pub struct KeepAlive(#[allow(dead_code, reason = "held for its Drop")] Arc<dyn Send + Sync>);

impl KeepAlive {
    /// Wraps what must stay alive.
    pub fn new(held: Arc<dyn Send + Sync>) -> Self {
        Self(held)
    }
}

/// What a session needs to re-decide its admission later: the request head it was
/// admitted with (the token included) and when the token stops being valid.
pub struct Admitted {
    /// Method, URI, version and headers of the upgrade request.
    pub parts: Parts,
    /// `exp` of the token, when the route needed one.
    pub expires: Option<i64>,
    /// The client connection's slot, held while the session lives.
    pub keep_alive: Option<KeepAlive>,
}

/// Re-runs the pure decision and the deny-list for a session's request; `true` while
/// it is still allowed (or, on a route in report mode, would be forwarded anyway).
fn still_allowed(shared: &Shared, parts: &Parts, now: i64) -> bool {
    let decision = auth::authorize(parts, now, &shared.jwks.snapshot(), &shared.policy);
    let decision = crate::deny_list::apply(decision, shared.deny_list.as_deref());
    super::report::forwards(&decision, parts, shared)
}

/// Marks a request or response head as a WebSocket upgrade (`Connection: upgrade`,
/// `Upgrade: websocket`), the only upgrade the proxy forwards.
pub(crate) fn set_upgrade_headers(headers: &mut http::HeaderMap) {
    use http::header::{CONNECTION, HeaderValue, UPGRADE};
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// Bridges an accepted upgrade (see the module docs for when it ends).
pub(crate) fn spawn_bridge(
    client: OnUpgrade,
    upstream: OnUpgrade,
    shared: &Shared,
    admitted: Admitted,
) {
    let guard = shared.websockets.enter(&shared.metrics);
    let idle = shared.config.limits.websocket_idle_timeout;
    let close_on_expiry = shared.config.limits.websocket_close_on_token_expiry;
    let mut reloads = shared.websockets.installed();
    reloads.mark_unchanged();
    let opened_at = unix_now();
    tokio::spawn(async move {
        let _guard = guard;
        // The whole of `admitted` lives as long as the session, its connection slot too.
        let admitted = admitted;
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(
                    client_ok = c.is_ok(),
                    upstream_ok = u.is_ok(),
                    "WebSocket upgrade did not complete"
                );
                return;
            }
        };
        let last = Arc::new(Moved::new());
        let mut client = Counted {
            inner: TokioIo::new(client),
            moved: Arc::clone(&last),
        };
        let mut upstream = TokioIo::new(upstream);
        // Checked once the token's `exp` passes, then every few seconds until the leeway
        // is used up and the decision turns.
        let mut next_check = admitted
            .expires
            .filter(|_| close_on_expiry)
            .map(|exp| seconds_until(exp.saturating_add(1)));
        let ended = loop {
            let expiry = async {
                match next_check {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    break if r.is_ok() { "closed" } else { "error" };
                }
                () = tokio::time::sleep_until(last.at() + idle) => {
                    if last.at() + idle <= Instant::now() {
                        break "idle";
                    }
                }
                () = expiry => {
                    // The configuration in force is always published (Live::new and
                    // every reload), so the session is re-decided under it.
                    let current = reloads.borrow().upgrade();
                    if current.is_some_and(|shared| !still_allowed(&shared, &admitted.parts, unix_now())) {
                        break "token_expired";
                    }
                    next_check = Some(Instant::now() + Duration::from_secs(5));
                }
                changed = reloads.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let current = reloads.borrow_and_update().upgrade();
                    if let Some(shared) = current {
                        let now = if close_on_expiry { unix_now() } else { opened_at };
                        if !still_allowed(&shared, &admitted.parts, now) {
                            break "reload_refused";
                        }
                    }
                }
            }
        };
        tracing::debug!(reason = ended, "WebSocket session ended");
    });
}

fn seconds_until(unix: i64) -> Instant {
    let secs = u64::try_from(unix.saturating_sub(unix_now())).unwrap_or(0);
    Instant::now() + Duration::from_secs(secs)
}

/// When bytes last moved (milliseconds after `origin`).
struct Moved {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Moved {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn at(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The client side of a bridge, recording when bytes move either way.
struct Counted<T> {
    inner: T,
    moved: Arc<Moved>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.moved.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
