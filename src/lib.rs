//! cognito-sidecar: an authenticating reverse proxy that admits only requests carrying
//! a valid Amazon Cognito user-pool token, tells the backend who the caller is through
//! headers, and streams everything else through untouched.
//!
//! # Layout
//! Modules form layers and import only downward (`tests/architecture.rs` fails on an
//! upward import, a cycle, a file without a `//!` header or over 500 lines). Bottom
//! first:
//!
//! 1. Facts with no dependency inside the crate: [`clock`] (the one clock: wall time
//!    in, pure code takes it as a value), [`flag`], [`header_names`], [`path`] (PURE
//!    canonicalisation and rule matching), [`metrics`], [`token`] (PURE strict JWS
//!    parsing, RS256 check, typed claims), [`credential`] (the one query/cookie
//!    credential parser), [`seal`] (sealed cookie values).
//! 2. [`config`]: figment (TOML + `COGNITO_SIDECAR_*`) -> validated [`config::Config`].
//! 3. [`jwks`]: key sets (PURE parse) and the per-pool refresher (I/O); [`issuer`], the
//!    development issuer; [`alb`], the `x-amzn-oidc-data` header of an authenticating
//!    ALB (PURE parse and verify) and its load balancers' keys (I/O).
//! 4. [`auth`]: PURE `authorize(parts, now, keys, policy) -> Decision`.
//! 5. [`cache`] (the verified-token cache around the decision), [`deny_list`] (the
//!    incident-response deny-list checked after every decision), [`headers`] (PURE
//!    header hygiene: strip, then inject identity and forwarding headers),
//!    [`assertion`] (the signed identity for backends that verify, and its key ring),
//!    [`login`] (browser sign-in building blocks, not yet wired into routing) and
//!    [`revocation`] (the online revocation check of access tokens: Cognito's
//!    `GetUser`, cached and single-flight).
//! 6. [`proxy`]: the request handler phase by phase, the upstream client, uploads and
//!    bridged WebSockets.
//! 7. [`reload`] (configuration reload, in-process and testable) and [`diagnose`].
//! 8. [`tls`] and [`server`]: listeners, connection rules, limits, graceful drain.
//! 9. [`admin`] (`/healthz`, `/readyz`, `/metrics`, the assertion JWKS) and [`demo`].
//!
//! # The request's path
//! ```text
//! accept (server) -> proxy::handle
//!   1 request_filter          Host/Connection checks; keys = snapshot (lock-free load)
//!                             decision = cache.authorize(&parts, now, &keys, &policy)
//!                               (auth::authorize reusing cached verifications)
//!                             unknown kid -> one rate-limited, single-flight JWKS refetch
//!                             admitted access token -> revocation check (opt-in per pool)
//!                             Deny -> proxy::deny_response (one exhaustive match)
//!   2 upstream_request_filter strip spoofable + hop-by-hop headers; inject identity;
//!                             computed X-Forwarded-*; Via; canonical path
//!   3 upstream                pooled hyper client (proxy::forward); bodies stream both ways
//!   4 response_filter         hop-by-hop removal; errors -> 502 / 504
//!   5 logging                 one metrics observation + one access-log event
//! ```
#![deny(clippy::disallowed_methods)]

pub mod admin;
pub mod alb;
pub mod assertion;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod credential;
pub mod demo;
pub mod deny_list;
pub mod diagnose;
pub mod flag;
pub mod header_names;
pub mod headers;
pub mod issuer;
pub mod jwks;
pub mod login;
pub mod metrics;
pub mod outbound;
pub mod path;
pub mod proxy;
pub mod reload;
pub mod revocation;
pub mod seal;
pub mod server;
pub mod tls;
pub mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::AdminState;
use crate::config::Config;
use crate::jwks::Jwks;
use crate::metrics::Metrics;
use crate::reload::Live;

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound or inspected.
    #[error("{0}")]
    Listen(#[from] std::io::Error),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The JWKS client could not be built.
    #[error("JWKS client: {0}")]
    Jwks(#[from] jwks::JwksError),
    /// The TLS certificate, key or client CA could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The upstream client or the sign-in machinery could not be built.
    #[error("{0}")]
    Shared(#[from] proxy::SharedError),
}

/// The two sockets the sidecar serves on.
pub struct Listeners {
    /// Proxy traffic (TCP or unix socket).
    pub proxy: server::ProxyListener,
    /// Health and metrics.
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds `listen` and `admin_listen` from the configuration.
    ///
    /// # Errors
    /// If either address cannot be bound.
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            proxy: server::ProxyListener::bind(&config.listen).await?,
            admin: server::bind(config.admin_listen).await?,
        })
    }
}

/// A started sidecar.
pub struct Running {
    /// Where the proxy listens (`0.0.0.0:0` for a unix socket).
    pub proxy_addr: SocketAddr,
    /// Where the admin endpoints listen.
    pub admin_addr: SocketAddr,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The live configuration (reload through it).
    pub live: Arc<Live>,
    task: JoinHandle<()>,
}

impl Running {
    /// The key store in force now (a reload that changes pools or JWKS settings
    /// replaces it).
    #[must_use]
    pub fn jwks(&self) -> Arc<Jwks> {
        Arc::clone(&self.live.load().jwks)
    }

    /// Resolves once every pool of the configuration in force has loaded keys,
    /// following reloads that replace the key store.
    pub async fn ready(&mut self) {
        let mut installed = self.live.installed();
        loop {
            installed.mark_unchanged();
            let jwks = self.jwks();
            let mut ready = jwks.ready();
            tokio::select! {
                r = ready.wait_for(|r| *r) => match r {
                    Ok(_) if Arc::ptr_eq(&jwks, &self.jwks()) => return,
                    Ok(_) => {}
                    // This store was stopped: only a reload can bring another.
                    Err(_) => {
                        if installed.changed().await.is_err() {
                            return;
                        }
                    }
                },
                // A reload installed a configuration: wait on the store now in force.
                changed = installed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Resolves when the sidecar has shut down and drained.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts the sidecar on the given listeners; it drains and stops when `shutdown`
/// resolves.
///
/// # Errors
/// [`StartError`] if the listeners, metrics or JWKS client cannot be set up.
pub async fn start(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new()?);
    let alb_reasons: &[&str] = match config.alb.as_ref().and_then(|a| a.data.as_ref()) {
        Some(_) => alb::AlbError::REASONS,
        None => &[],
    };
    for reason in auth::Denial::REASONS
        .iter()
        .chain(&["body_too_large", "body_timeout"])
        .chain(alb_reasons)
    {
        metrics.denied.with_label_values(&[reason]);
    }
    let proxy_addr = listeners
        .proxy
        .local_addr()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let admin_addr = listeners.admin.local_addr()?;
    let (draining_tx, draining_rx) = watch::channel(false);
    let (accepting_done_tx, accepting_done_rx) = watch::channel(false);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let tls = match &config.tls {
        Some(settings) => {
            let (server_config, reloadable) = tls::server_config(settings)?;
            tls::spawn_reloader(
                reloadable,
                settings.clone(),
                Arc::clone(&metrics),
                stopped_rx.clone(),
            );
            Some((
                tokio_rustls::TlsAcceptor::from(server_config),
                settings.handshake_timeout,
            ))
        }
        None => None,
    };
    let live = Live::new(config, Arc::clone(&metrics))?;
    let first = live.load();
    let config = Arc::clone(&first.config);
    drop(first);
    let admin = Arc::new(AdminState {
        live: Arc::clone(&live),
        metrics: Arc::clone(&metrics),
        draining: draining_rx.clone(),
    });
    let admin_task = tokio::spawn(admin::serve_admin(listeners.admin, admin, stopped_rx));
    let proxy_task = tokio::spawn(server::serve_proxy(
        listeners.proxy,
        Arc::clone(&live),
        tls,
        accepting_done_rx,
        config.shutdown.drain_timeout,
    ));
    // The bound address, not the configured one (port 0 picks a free port).
    let listen = match &config.listen {
        config::ListenAddr::Tcp(_) => proxy_addr.to_string(),
        unix => unix.to_string(),
    };
    tracing::info!(%listen, %admin_addr, upstream = %config.upstream, tls = config.tls.is_some(), pools = config.pools.len(), "cognito-sidecar started");
    let pre_stop = config.shutdown.pre_stop_delay;
    let stopping = Arc::clone(&live);
    let task = tokio::spawn(async move {
        shutdown.await;
        // 1. Readiness off at once, so endpoint controllers stop sending new traffic,
        // 2. keep accepting for the pre-stop delay while they catch up,
        // 3. stop accepting and drain in-flight requests and WebSockets.
        tracing::info!(
            pre_stop_seconds = pre_stop.as_secs(),
            "shutdown requested: readiness off"
        );
        let _ = draining_tx.send(true);
        tokio::time::sleep(pre_stop).await;
        let _ = accepting_done_tx.send(true);
        let _ = proxy_task.await;
        stopping.stop();
        let _ = stopped_tx.send(true);
        let _ = admin_task.await;
        tracing::info!("stopped");
    });
    Ok(Running {
        proxy_addr,
        admin_addr,
        metrics,
        live,
        task,
    })
}

/// Runs the sidecar until `shutdown` resolves and in-flight requests have drained.
///
/// # Errors
/// [`StartError`] if it cannot start.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    start(config, listeners, shutdown).await?.wait().await;
    Ok(())
}
