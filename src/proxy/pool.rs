//! The HTTP/1.1 upstream pool: a last-in-first-out stack of idle
//! `hyper::client::conn::http1` senders to the one configured backend, instead of
//! hyper-util's general-purpose pooled client (a hashed `(scheme, authority)` key, a
//! checkout that races a connect, and a spawned task per request that waits for the
//! connection to become reusable).
//!
//! A connection goes back on the stack when its response body has ended cleanly (its
//! last frame read, or a body that was empty from the start dropped); a response
//! abandoned mid-body, a failed exchange or a protocol switch (101) takes its
//! connection with it, so hyper closes it. Idle connections are closed after
//! `limits.upstream_idle_timeout` by a reaper task that runs only while some are idle,
//! at most `limits.upstream_max_idle_connections` are kept, and a request that a
//! reused connection refused before sending anything (the backend closed it while it
//! was idle) is retried once per stale connection, then on a new one, as hyper-util's
//! client does.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{Builder, SendRequest};
use tower_service::Service;

use super::ProxyBody;
use super::upstream::{SendError, UpstreamBody, UpstreamConnector};
use crate::clock::{self, Instant};

/// An idle connection and when it became idle.
struct Idle {
    tx: SendRequest<UpstreamBody>,
    since: Instant,
}

/// What the pool's connections share.
struct Inner {
    connector: UpstreamConnector,
    /// The backend's base URI: the connector's destination.
    target: Uri,
    /// The `Host` header sent when the request carries none (as hyper-util's client
    /// derives it: the host, and the port unless it is the scheme's default).
    host: Option<HeaderValue>,
    builder: Builder,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Whether a reaper task is running.
    reaping: AtomicBool,
}

/// The HTTP/1.1 upstream pool.
pub struct Http1Pool {
    inner: Arc<Inner>,
}

impl Http1Pool {
    /// A pool reaching `target` through `connector`, with HTTP/1 buffers of at most
    /// `max_buf` bytes.
    pub(super) fn new(
        connector: UpstreamConnector,
        target: Uri,
        max_buf: usize,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        let mut builder = Builder::new();
        builder.max_buf_size(max_buf).writev(false);
        let host = host_header(&target);
        Self {
            inner: Arc::new(Inner {
                connector,
                target,
                host,
                builder,
                idle: Mutex::new(Vec::new()),
                max_idle,
                idle_timeout,
                reaping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` (absolute URI to the backend) on an idle connection or a new one.
    ///
    /// # Errors
    /// [`SendError`] when no connection could be made or the exchange failed.
    pub(super) async fn send(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<ProxyBody>, SendError> {
        if let Some(host) = &self.inner.host
            && !req.headers().contains_key(header::HOST)
        {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        origin_form(req.uri_mut());
        loop {
            let (mut tx, reused) = match self.inner.checkout() {
                Some(tx) => (tx, true),
                None => (self.inner.connect().await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let give_back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| (tx, Arc::clone(&self.inner)));
                    return Ok(resp.map(|body| PooledBody { body, give_back }.boxed()));
                }
                Err(mut e) => match e.take_message() {
                    // Refused before anything was sent on a connection that had been
                    // idle: the backend closed it meanwhile. Try the next one.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    }
}

impl Inner {
    /// The most recently idled connection that is ready, dropping closed and expired
    /// ones; connections still finishing their last exchange stay.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let now = clock::now();
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(c) = idle.pop() {
            if c.tx.is_closed() || now.saturating_duration_since(c.since) >= self.idle_timeout {
                continue;
            }
            if c.tx.is_ready() {
                found = Some(c.tx);
                break;
            }
            busy.push(c);
        }
        idle.extend(busy.into_iter().rev());
        found
    }

    /// Opens a new connection and spawns its driver.
    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, SendError> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let (tx, conn) = self
            .builder
            .handshake(io)
            .await
            .map_err(SendError::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Puts a connection whose exchange ended cleanly back on the stack.
    fn give_back(self: &Arc<Self>, tx: SendRequest<UpstreamBody>) {
        if tx.is_closed() || self.max_idle == 0 {
            return;
        }
        {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle {
                tx,
                since: clock::now(),
            });
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(reap(Arc::downgrade(self), self.idle_timeout));
                }
                Err(_) => self.reaping.store(false, Ordering::Release),
            }
        }
    }
}

/// Closes connections idle for `timeout`; ends when none is idle or the pool is gone.
async fn reap(pool: Weak<Inner>, timeout: Duration) {
    // Checked at least twice per timeout, so a connection lives at most 1.5 timeouts.
    let tick = (timeout / 2).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(tick).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = clock::now();
        let mut idle = pool
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|c| !c.tx.is_closed() && now.saturating_duration_since(c.since) < timeout);
        if idle.is_empty() {
            // Cleared under the lock: a give-back after this starts a new reaper.
            pool.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// A response body that returns its connection to the pool once it has ended.
struct PooledBody {
    body: Incoming,
    give_back: Option<(SendRequest<UpstreamBody>, Arc<Inner>)>,
}

impl PooledBody {
    fn finish(&mut self) {
        if let Some((tx, pool)) = self.give_back.take() {
            pool.give_back(tx);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.finish(),
            Some(Ok(_)) if this.body.is_end_stream() => this.finish(),
            Some(Ok(_)) => {}
            // The connection is broken; hyper closes it.
            Some(Err(_)) => this.give_back = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (a 204, a HEAD answer, `Content-Length: 0`) is often
        // dropped unread; one dropped with data left must not be reused.
        if self.body.is_end_stream() {
            self.finish();
        }
    }
}

/// Rewrites an absolute URI to origin form (`/path?query`), as hyper-util's client
/// does for HTTP/1.
fn origin_form(uri: &mut Uri) {
    let parts = std::mem::take(uri).into_parts();
    *uri = match parts.path_and_query {
        Some(pq) if pq.as_str() != "/" => {
            let mut p = http::uri::Parts::default();
            p.path_and_query = Some(pq);
            Uri::from_parts(p).unwrap_or_default()
        }
        _ => Uri::default(),
    };
}

/// The `Host` value hyper-util's client would send for `target`.
fn host_header(target: &Uri) -> Option<HeaderValue> {
    let host = target.host()?;
    let secure = matches!(target.scheme_str(), Some("https" | "wss"));
    let value = match target.port_u16() {
        Some(443) if secure => host.to_owned(),
        Some(80) if !secure => host.to_owned(),
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris_become_origin_form() {
        let mut u: Uri = "http://10.0.0.1:8080/a/b?x=1".parse().unwrap();
        origin_form(&mut u);
        assert_eq!(u.to_string(), "/a/b?x=1");
        let mut u: Uri = "http://10.0.0.1:8080/".parse().unwrap();
        origin_form(&mut u);
        assert_eq!(u.to_string(), "/");
    }

    #[test]
    fn the_host_header_omits_only_the_default_port() {
        let h = |s: &str| host_header(&s.parse().unwrap()).unwrap();
        assert_eq!(h("http://backend:8080"), "backend:8080");
        assert_eq!(h("http://backend:80"), "backend");
        assert_eq!(h("https://backend:443"), "backend");
        assert_eq!(h("https://backend:80"), "backend:80");
        assert_eq!(h("http://backend"), "backend");
    }
}
