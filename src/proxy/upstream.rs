//! The upstream client: a connector that reaches the backend over TCP, TLS (system
//! roots or a configured CA bundle, ALPN for h2) or a unix socket, and speaks HTTP/1.1
//! through the lean pool of `pool.rs` or HTTP/2 (h2c prior knowledge for gRPC
//! backends) through hyper-util's client, which multiplexes one connection.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Config, UpstreamProtocol, UpstreamTarget};

/// Request body sent upstream: the client's body, possibly length-limited.
pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The upstream client for the configured protocol.
pub enum Upstream {
    /// HTTP/1.1: the lean pool.
    Http1(super::pool::Http1Pool),
    /// HTTP/2: hyper-util's client (boxed: it is large and there is one per
    /// configuration).
    Http2(Box<Client<UpstreamConnector, UpstreamBody>>),
}

impl Upstream {
    /// Sends `req` (absolute URI to the backend) and returns the answer's head with
    /// its body streaming.
    ///
    /// # Errors
    /// [`SendError`] when no connection could be made or the exchange failed.
    pub async fn send(
        &self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<super::ProxyBody>, SendError> {
        match self {
            Self::Http1(pool) => pool.send(req).await,
            Self::Http2(client) => match client.request(req).await {
                Ok(resp) => Ok(resp.map(http_body_util::BodyExt::boxed)),
                Err(e) if e.is_connect() => Err(SendError::Connect(Box::new(e))),
                Err(e) => Err(SendError::Pooled(e)),
            },
        }
    }
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, connect timeout, TLS).
    #[error("connect: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP/1.1 exchange failed.
    #[error("{0}")]
    Exchange(#[source] hyper::Error),
    /// The HTTP/2 client failed.
    #[error("{0}")]
    Pooled(#[source] hyper_util::client::legacy::Error),
}

impl SendError {
    /// Whether no connection could be made.
    #[must_use]
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The CA bundle could not be read or holds no certificate.
    #[error("upstream_ca_file {path}: {reason}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No system root certificates were found for an https:// upstream.
    #[error(
        "no system root certificates for the https upstream ({errors} errors); set upstream_ca_file"
    )]
    NativeRoots {
        /// How many errors loading the system roots gave.
        errors: usize,
    },
    /// rustls refused the client configuration.
    #[error("upstream TLS configuration: {0}")]
    ClientConfig(#[source] rustls::Error),
}

/// Connects to the backend the configuration names.
#[derive(Clone)]
pub enum UpstreamConnector {
    /// TCP, with TLS for `https://`.
    Tcp(HttpsConnector<HttpConnector>),
    /// A unix domain socket; the request URI's authority is ignored.
    Unix(Arc<Path>),
}

/// A connection to the backend.
#[allow(
    clippy::large_enum_variant,
    reason = "one per pooled connection; boxing would add an indirection on every read"
)]
pub enum UpstreamStream {
    /// TCP or TLS.
    Tcp(MaybeHttpsStream<TokioIo<TcpStream>>),
    /// Unix domain socket.
    Unix(TokioIo<UnixStream>),
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::Tcp(c) => c.poll_ready(cx),
            Self::Unix(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Self::Tcp(c) => {
                let fut = c.call(uri);
                Box::pin(async move { fut.await.map(UpstreamStream::Tcp) })
            }
            Self::Unix(path) => {
                let path = Arc::clone(path);
                Box::pin(async move {
                    let s = UnixStream::connect(&*path).await?;
                    Ok(UpstreamStream::Unix(TokioIo::new(s)))
                })
            }
        }
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            Self::Tcp(s) => s.connected(),
            Self::Unix(_) => Connected::new(),
        }
    }
}

impl hyper::rt::Read for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

fn tls_config(cfg: &Config) -> Result<rustls::ClientConfig, UpstreamError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match (&cfg.upstream_target, &cfg.upstream_ca_file) {
        (UpstreamTarget::Https, Some(path)) => {
            let err = |reason: String| UpstreamError::CaBundle {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err("no usable certificate".into()));
            }
        }
        (UpstreamTarget::Https, None) => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(UpstreamError::NativeRoots {
                    errors: native.errors.len(),
                });
            }
        }
        // Plain http or unix: the TLS side of the connector is never used.
        _ => {}
    }
    let versions = rustls::DEFAULT_VERSIONS;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(UpstreamError::ClientConfig)?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Largest HTTP/1 read or write buffer of an upstream connection.
const UPSTREAM_BUF: usize = 64 * 1024;
/// HTTP/2 receive window per upstream stream: response data buffered for a client that
/// does not read is bounded by it.
const UPSTREAM_H2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2 receive window per upstream connection.
const UPSTREAM_H2_CONN_WINDOW: u32 = 4 * 1024 * 1024;

/// Builds the upstream client.
///
/// # Errors
/// [`UpstreamError`] if TLS roots cannot be loaded for an https:// upstream.
pub fn client(cfg: &Config) -> Result<Upstream, UpstreamError> {
    let connector = match &cfg.upstream_target {
        UpstreamTarget::Unix(path) => UpstreamConnector::Unix(Arc::from(path.as_path())),
        UpstreamTarget::Http | UpstreamTarget::Https => {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(cfg.limits.upstream_connect_timeout));
            http.set_nodelay(true);
            http.enforce_http(false);
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config(cfg)?)
                .https_or_http();
            let https = match cfg.upstream_protocol {
                UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
                UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
            };
            UpstreamConnector::Tcp(https)
        }
    };
    if cfg.upstream_protocol == UpstreamProtocol::Http1 {
        // Memory bounds per upstream connection (README "Memory model"): HTTP/1 read
        // and write buffers of at most UPSTREAM_BUF bytes each; request body chunks
        // are copied into the write buffer instead of queued (a queued chunk would pin
        // the whole client read buffer it was cut from).
        return Ok(Upstream::Http1(super::pool::Http1Pool::new(
            connector,
            cfg.upstream.clone(),
            UPSTREAM_BUF,
            cfg.limits.upstream_max_idle_connections,
            cfg.limits.upstream_idle_timeout,
        )));
    }
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(cfg.limits.upstream_idle_timeout)
        .pool_max_idle_per_host(cfg.limits.upstream_max_idle_connections)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // Memory bound per upstream connection (README "Memory model"): at most
        // UPSTREAM_H2_STREAM_WINDOW bytes of HTTP/2 response data buffered per stream
        // while its client takes nothing.
        .http2_initial_stream_window_size(UPSTREAM_H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(UPSTREAM_H2_CONN_WINDOW)
        .http2_adaptive_window(false);
    builder.http2_only(true);
    Ok(Upstream::Http2(Box::new(builder.build(connector))))
}
