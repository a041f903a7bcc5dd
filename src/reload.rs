//! Live configuration. The request path reads the current [`Shared`] from an
//! [`ArcSwap`] once per request; [`Live::reload`] builds a complete new one from a
//! validated [`Config`] and swaps it in atomically, so a request sees either the old or
//! the new configuration, never a mix. Routes, identity headers, pools, client ids,
//! upstream and per-request limits change live; settings bound to sockets (listeners,
//! TLS files, connection-level limits, shutdown timings) are reported as needing a
//! restart. An invalid configuration never gets here: it is rejected by validation
//! and the old one keeps serving.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::StartError;
use crate::config::Config;
use crate::jwks::Jwks;
use crate::metrics::Metrics;
use crate::proxy::{Sessions, Shared};

/// The sidecar's current configuration and everything derived from it.
pub struct Live {
    current: ArcSwap<Shared>,
    metrics: Arc<Metrics>,
    websockets: Arc<Sessions>,
    /// Stops the refreshers of the key store in use.
    jwks_stop: Mutex<watch::Sender<bool>>,
    reloading: tokio::sync::Mutex<()>,
}

/// What a reload changed, and what it could not.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Keys that changed but only take effect after a restart.
    pub restart_required: Vec<&'static str>,
    /// Whether the key store was rebuilt (pools or JWKS URLs changed).
    pub keys_rebuilt: bool,
}

fn pools_signature(cfg: &Config) -> Vec<(String, String)> {
    cfg.pools
        .iter()
        .map(|p| (p.name.clone(), p.jwks_url.clone()))
        .collect()
}

impl Live {
    /// Builds the first configuration's state and starts its key refreshers.
    ///
    /// # Errors
    /// [`StartError`] if the JWKS or upstream client cannot be built.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, StartError> {
        let config = Arc::new(config);
        for p in &config.pools {
            metrics.init_pool(&p.name);
        }
        let jwks = Jwks::new(&config.pools, config.jwks.clone(), Arc::clone(&metrics))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        jwks.spawn_refreshers(stop_rx);
        let websockets = Arc::<Sessions>::default();
        let shared = Shared::new(config, jwks, Arc::clone(&metrics), Arc::clone(&websockets))?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(shared),
            metrics,
            websockets,
            jwks_stop: Mutex::new(stop_tx),
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// The configuration in force now.
    #[must_use]
    pub fn load(&self) -> Arc<Shared> {
        self.current.load_full()
    }

    /// Bridged WebSocket sessions, across reloads.
    #[must_use]
    pub fn websockets(&self) -> &Arc<Sessions> {
        &self.websockets
    }

    /// Stops the current key refreshers (process shutdown).
    pub fn stop(&self) {
        if let Ok(tx) = self.jwks_stop.lock() {
            let _ = tx.send(true);
        }
    }

    /// Swaps in a new, already validated configuration.
    ///
    /// # Errors
    /// [`StartError`] if its JWKS or upstream client cannot be built; the old
    /// configuration then stays in force.
    pub async fn reload(&self, new: Config) -> Result<ReloadReport, StartError> {
        let _one_at_a_time = self.reloading.lock().await;
        let old = self.load();
        let mut report = ReloadReport::default();
        let o = &old.config;
        let changed = |a: String, b: String| a != b;
        for (key, differs) in [
            ("listen", o.listen != new.listen),
            ("admin_listen", o.admin_listen != new.admin_listen),
            (
                "tls",
                changed(format!("{:?}", o.tls), format!("{:?}", new.tls)),
            ),
            (
                "shutdown",
                changed(format!("{:?}", o.shutdown), format!("{:?}", new.shutdown)),
            ),
            (
                "limits (connection-level: header sizes and timeouts, max_connections, idle and h2 limits)",
                o.limits.max_header_bytes != new.limits.max_header_bytes
                    || o.limits.max_headers != new.limits.max_headers
                    || o.limits.header_read_timeout != new.limits.header_read_timeout
                    || o.limits.max_connections != new.limits.max_connections
                    || o.limits.idle_timeout != new.limits.idle_timeout
                    || o.limits.h2_max_concurrent_streams != new.limits.h2_max_concurrent_streams,
            ),
            (
                "log_format / log_level",
                o.log_format != new.log_format || o.log_level != new.log_level,
            ),
        ] {
            if differs {
                report.restart_required.push(key);
            }
        }
        let new = Arc::new(new);
        let same_keys = pools_signature(o) == pools_signature(&new)
            && format!("{:?}", o.jwks) == format!("{:?}", new.jwks);
        let (jwks, stop) = if same_keys {
            (Arc::clone(&old.jwks), None)
        } else {
            for p in &new.pools {
                self.metrics.init_pool(&p.name);
            }
            let jwks = Jwks::new(&new.pools, new.jwks.clone(), Arc::clone(&self.metrics))?;
            let (tx, rx) = watch::channel(false);
            jwks.spawn_refreshers(rx);
            // Give the new pools a moment to load keys so the swap does not turn
            // verifiable traffic into 503s; a slow IdP does not block the reload.
            let mut ready = jwks.ready();
            let _ = tokio::time::timeout(new.jwks.fetch_timeout, ready.wait_for(|r| *r)).await;
            report.keys_rebuilt = true;
            (jwks, Some(tx))
        };
        let shared = Shared::new(
            Arc::clone(&new),
            jwks,
            Arc::clone(&self.metrics),
            Arc::clone(&self.websockets),
        )?;
        self.current.store(Arc::new(shared));
        if let Some(tx) = stop
            && let Ok(mut current) = self.jwks_stop.lock()
        {
            let old_stop = std::mem::replace(&mut *current, tx);
            let _ = old_stop.send(true);
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "unix seconds fit an f64 exactly"
        )]
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs() as f64);
        self.metrics.config_last_reload.set(now);
        Ok(report)
    }
}
