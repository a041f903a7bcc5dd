//! Which protocol a client connection speaks, and the hyper connection that serves it:
//! HTTP/2 when TLS negotiated ALPN `h2` or the first bytes are the HTTP/2 connection
//! preface (prior knowledge, in clear and over TLS without ALPN `h2`, as hyper-util's
//! auto builder accepted), HTTP/1.1 (with upgrades) otherwise. The first bytes are read
//! here, before hyper exists, so a connection that sends nothing holds no hyper state
//! or buffers; the choice is made at the first byte that differs from the preface (a
//! trickled preface waits, under the connection watch's header read timeout), and the
//! bytes read are replayed to hyper by [`Watched`], without an allocation. This module
//! also builds the two hyper builders with every limit set explicitly.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::{PREFACE, Protocol};

use super::conn::Watched;
use crate::config::Limits;

/// HTTP/2 receive window per stream (nginx's default too): request data buffered per
/// stream is bounded by it.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2 receive window per connection (the protocol's default size): request data
/// buffered per connection, whatever its streams do, is bounded by it.
const H2_CONN_WINDOW: u32 = 64 * 1024;
/// Response data queued per HTTP/2 stream beyond what the client's window allows.
const H2_SEND_BUF: usize = 64 * 1024;

/// Runs each HTTP/2 stream's future once on the connection's own task before spawning
/// it, and spawns it only if it is not done. A stream answered at once (503 over the
/// in-flight cap) then ends with its head instead of waiting as a task: a flood of
/// streams on a busy machine cannot pile up as a queue of unstarted tasks, each
/// holding its stream open (about 10 KiB apiece, up to `max_connections` x
/// `h2_max_concurrent_streams` of them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EagerExecutor;

impl<F> hyper::rt::Executor<F> for EagerExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut fut = Box::pin(fut);
        // A no-op waker is sound here: if the future is pending, the spawned task polls
        // it again at once, registering its real waker.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if fut.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(fut);
        }
    }
}

/// The HTTP/1.1 and HTTP/2 connection builders, every limit set explicitly.
pub(crate) struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<EagerExecutor>,
}

impl Builders {
    pub(crate) fn new(limits: &Limits) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers);
        let mut h2 = http2::Builder::new(EagerExecutor);
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_local_error_reset_streams(Some(1024))
            // Memory bounds (README "Memory model"): request data buffered per stream
            // while the upstream is slow to read it, and response data queued per
            // stream.
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONN_WINDOW)
            .max_send_buf_size(H2_SEND_BUF);
        Self { h1, h2 }
    }
}

type Io<T> = TokioIo<Watched<T>>;

/// How a connection ended badly (logged, nothing more).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Ended {
    /// Reading the first bytes failed.
    #[error("reading the first bytes: {0}")]
    Io(#[from] std::io::Error),
    /// hyper reported an error.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Reading the first bytes, before any hyper state exists.
pub(crate) struct Sniff<T, S> {
    io: Watched<T>,
    buf: [u8; PREFACE.len()],
    filled: u8,
    builders: Arc<Builders>,
    svc: S,
}

/// What the first bytes said.
enum Proto {
    Http1,
    Http2,
    /// The client closed before sending anything.
    Gone,
}

impl<T: AsyncRead + Unpin, S> Sniff<T, S> {
    fn poll_proto(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Proto>> {
        loop {
            let have = usize::from(self.filled);
            let mut rb = ReadBuf::new(&mut self.buf[have..]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            // have + n <= 24.
            self.filled += u8::try_from(n).unwrap_or(0);
            if n == 0 {
                // End of stream: what came (a piece of the preface) goes to HTTP/1,
                // as the auto builder did.
                return Poll::Ready(Ok(if self.filled == 0 {
                    Proto::Gone
                } else {
                    Proto::Http1
                }));
            }
            // The connection watch's sniffer has seen these bytes and decides, at the
            // latest once the buffer holds a whole preface's length.
            match self.io.protocol() {
                Some(Protocol::Http1) => return Poll::Ready(Ok(Proto::Http1)),
                Some(Protocol::Http2) => return Poll::Ready(Ok(Proto::Http2)),
                None => {}
            }
        }
    }
}

/// One client connection's hyper connection, or the first bytes that choose it.
pub(crate) enum Conn<T, S>
where
    S: HttpService<Incoming>,
{
    Sniffing(Sniff<T, S>),
    Http1(Pin<Box<http1::UpgradeableConnection<Io<T>, S>>>),
    Http2(Pin<Box<http2::Connection<Io<T>, S, EagerExecutor>>>),
    Done,
}

impl<T, S, B> Conn<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves `io`: HTTP/2 at once if TLS negotiated it (`h2_alpn`), else by the first
    /// bytes.
    pub(crate) fn new(io: Watched<T>, h2_alpn: bool, builders: &Arc<Builders>, svc: S) -> Self {
        if h2_alpn {
            let io = TokioIo::new(io);
            return Self::Http2(Box::pin(builders.h2.serve_connection(io, svc)));
        }
        Self::Sniffing(Sniff {
            io,
            buf: [0; PREFACE.len()],
            filled: 0,
            builders: Arc::clone(builders),
            svc,
        })
    }

    /// Asks the connection to close once its requests are done (GOAWAY on HTTP/2,
    /// keep-alive off on HTTP/1); one still choosing its protocol ends at once.
    pub(crate) fn graceful_shutdown(&mut self) {
        let this = self;
        match this {
            Self::Http1(c) => c.as_mut().graceful_shutdown(),
            Self::Http2(c) => c.as_mut().graceful_shutdown(),
            Self::Sniffing(_) => *this = Self::Done,
            Self::Done => {}
        }
    }

    fn start(sniff: Sniff<T, S>, proto: &Proto) -> Self {
        let Sniff {
            mut io,
            buf,
            filled,
            builders,
            svc,
        } = sniff;
        io.replay(buf, filled);
        let io = TokioIo::new(io);
        match proto {
            Proto::Http1 => Self::Http1(Box::pin(
                builders.h1.serve_connection(io, svc).with_upgrades(),
            )),
            Proto::Http2 => Self::Http2(Box::pin(builders.h2.serve_connection(io, svc))),
            Proto::Gone => Self::Done,
        }
    }

    /// Drives the connection; ready when it has ended.
    pub(crate) fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        let this = self;
        loop {
            match this {
                Self::Http1(c) => return c.as_mut().poll(cx).map_err(Ended::from),
                Self::Http2(c) => return c.as_mut().poll(cx).map_err(Ended::from),
                Self::Done => return Poll::Ready(Ok(())),
                Self::Sniffing(s) => {
                    let proto = match ready!(s.poll_proto(cx)) {
                        Ok(p) => p,
                        Err(e) => {
                            *this = Self::Done;
                            return Poll::Ready(Err(e.into()));
                        }
                    };
                    if let Self::Sniffing(s) = std::mem::replace(this, Self::Done) {
                        *this = Self::start(s, &proto);
                    }
                }
            }
        }
    }
}
