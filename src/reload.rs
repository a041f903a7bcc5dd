//! Live configuration. The request path reads the current [`Shared`] from an
//! [`ArcSwap`] once per request; [`Live::reload`] builds a complete new one from a
//! validated [`Config`] and swaps it in atomically, so a request sees either the old or
//! the new configuration, never a mix. Routes, identity headers, pools, client ids,
//! upstream and per-request limits change live; settings bound to sockets (listeners,
//! TLS files, connection-level limits, shutdown timings) are reported as needing a
//! restart. An invalid configuration never gets here: it is rejected by validation
//! and the old one keeps serving.
//!
//! [`watch()`] is the reload loop: SIGHUP, or a change of the file's content that has
//! settled (the same bytes across a settle interval, so a file written in several steps
//! is never loaded half-written), and it parses exactly the bytes it saw settle. SIGHUP
//! also re-reads the deny-list file (which has a watcher of its own, see
//! [`crate::deny_list`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::StartError;
use crate::assertion::KeyRing;
use crate::config::Config;
use crate::deny_list::{DenyListHandle, Reread};
use crate::jwks::Jwks;
use crate::metrics::Metrics;
use crate::proxy::{Sessions, Shared};

/// The sidecar's current configuration and everything derived from it.
pub struct Live {
    current: ArcSwap<Shared>,
    metrics: Arc<Metrics>,
    websockets: Arc<Sessions>,
    /// Assertion signing keys of this and recent configurations.
    assertion_keys: Arc<KeyRing>,
    /// Stops the refreshers of the key store in use.
    jwks_stop: Mutex<watch::Sender<bool>>,
    reloading: tokio::sync::Mutex<()>,
}

/// Why a reload was not applied (the previous configuration keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new key store or upstream client could not be built.
    #[error(transparent)]
    Build(#[from] StartError),
    /// New pools (or pools with new issuers) could not load keys in time; applying the
    /// configuration would turn their traffic into 503s.
    #[error("no keys could be loaded for pool(s) {}; keeping the previous configuration", .0.join(", "))]
    KeysUnavailable(Vec<String>),
}

/// What a reload changed, and what it could not.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Keys that changed but only take effect after a restart.
    pub restart_required: Vec<&'static str>,
    /// Whether the key store was rebuilt (pools or JWKS URLs changed).
    pub keys_rebuilt: bool,
    /// Pools whose new JWKS could not be fetched yet and which keep verifying with the
    /// keys of the previous configuration (same issuers).
    pub keys_carried_over: Vec<String>,
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
        let assertion_keys = Arc::<KeyRing>::default();
        let deny_list = DenyListHandle::for_config(
            None,
            config.deny_list.as_ref(),
            &metrics,
            recheck(&websockets),
        );
        let shared = Arc::new(Shared::new(
            config,
            jwks,
            Arc::clone(&metrics),
            Arc::clone(&websockets),
            &assertion_keys,
            deny_list,
        )?);
        websockets.config_changed(&shared);
        DenyListHandle::installed(None, shared.deny_list.as_ref(), &metrics);
        Ok(Arc::new(Self {
            current: ArcSwap::new(shared),
            metrics,
            websockets,
            assertion_keys,
            jwks_stop: Mutex::new(stop_tx),
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// The configuration in force now.
    #[must_use]
    pub fn load(&self) -> Arc<Shared> {
        self.current.load_full()
    }

    /// Changes each time a reload installs a configuration.
    #[must_use]
    pub fn installed(&self) -> watch::Receiver<std::sync::Weak<Shared>> {
        self.websockets.installed()
    }

    /// Bridged WebSocket sessions, across reloads.
    #[must_use]
    pub fn websockets(&self) -> &Arc<Sessions> {
        &self.websockets
    }

    /// Stops the current key refreshers and deny-list watcher (process shutdown).
    pub fn stop(&self) {
        if let Ok(tx) = self.jwks_stop.lock() {
            let _ = tx.send(true);
        }
        if let Some(deny_list) = &self.load().deny_list {
            deny_list.stop();
        }
    }

    /// Re-reads the deny-list file now, changed or not (SIGHUP); `None` without
    /// `[deny_list]`.
    pub async fn reread_deny_list(&self) -> Option<Reread> {
        let handle = self.load().deny_list.clone()?;
        Some(handle.reread("SIGHUP").await)
    }

    /// Swaps in a new, already validated configuration.
    ///
    /// # Errors
    /// [`ReloadError`] if its JWKS or upstream client cannot be built, or a pool that
    /// had no keys before cannot load any; the old configuration then stays in force.
    pub async fn reload(&self, new: Config) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let old = self.load();
        let mut report = ReloadReport::default();
        let o = &old.config;
        for (key, differs) in [
            ("listen", o.listen != new.listen),
            ("admin_listen", o.admin_listen != new.admin_listen),
            ("tls", o.tls != new.tls),
            ("shutdown", o.shutdown != new.shutdown),
            (
                "limits (connection-level: header sizes and timeouts, max_connections, max_in_flight_requests, idle, send and h2 limits)",
                o.limits.max_header_bytes != new.limits.max_header_bytes
                    || o.limits.max_headers != new.limits.max_headers
                    || o.limits.header_read_timeout != new.limits.header_read_timeout
                    || o.limits.max_connections != new.limits.max_connections
                    || o.limits.max_in_flight_requests != new.limits.max_in_flight_requests
                    || o.limits.send_timeout != new.limits.send_timeout
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
        let same_keys = pools_signature(o) == pools_signature(&new) && o.jwks == new.jwks;
        let (jwks, stop) = if same_keys {
            (Arc::clone(&old.jwks), None)
        } else {
            for p in &new.pools {
                self.metrics.init_pool(&p.name);
            }
            let jwks = Jwks::new(&new.pools, new.jwks.clone(), Arc::clone(&self.metrics))
                .map_err(StartError::from)?;
            let (tx, rx) = watch::channel(false);
            jwks.spawn_refreshers(rx);
            // Give the new pools time to load keys so the swap does not turn verifiable
            // traffic into 503s.
            let mut ready = jwks.ready();
            let _ = tokio::time::timeout(new.jwks.fetch_timeout, ready.wait_for(|r| *r)).await;
            // A pool whose issuers are unchanged keeps its previous keys until the new
            // JWKS URL answers; a pool that never had keys stops the reload.
            let before = old.jwks.snapshot();
            let mut unloaded = Vec::new();
            for (i, p) in new.pools.iter().enumerate() {
                if jwks
                    .snapshot()
                    .pools
                    .get(i)
                    .is_some_and(|k| k.keys.is_some())
                {
                    continue;
                }
                let previous = o
                    .pools
                    .iter()
                    .position(|q| q.issuers == p.issuers)
                    .and_then(|j| before.pools.get(j))
                    .filter(|k| k.keys.is_some());
                match previous {
                    Some(keys) => {
                        jwks.carry_over(i, keys);
                        report.keys_carried_over.push(p.name.clone());
                    }
                    None => unloaded.push(p.name.clone()),
                }
            }
            if !unloaded.is_empty() {
                let _ = tx.send(true);
                return Err(ReloadError::KeysUnavailable(unloaded));
            }
            report.keys_rebuilt = true;
            (jwks, Some(tx))
        };
        // Same `[deny_list]` file and limits: the list in force and its watcher carry on.
        let deny_list = DenyListHandle::for_config(
            old.deny_list.as_ref(),
            new.deny_list.as_ref(),
            &self.metrics,
            recheck(&self.websockets),
        );
        let shared = Shared::new(
            Arc::clone(&new),
            jwks,
            Arc::clone(&self.metrics),
            Arc::clone(&self.websockets),
            &self.assertion_keys,
            deny_list,
        )
        .map_err(StartError::from)?;
        let shared = Arc::new(shared);
        self.current.store(Arc::clone(&shared));
        // Bridged WebSockets re-check their admission under the new rules.
        self.websockets.config_changed(&shared);
        DenyListHandle::installed(
            old.deny_list.as_ref(),
            shared.deny_list.as_ref(),
            &self.metrics,
        );
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
        let now = crate::clock::unix_now() as f64;
        self.metrics.config_last_reload.set(now);
        Ok(report)
    }
}

/// What a deny-list change does besides swapping the list: open WebSocket sessions
/// re-check their token.
fn recheck(sessions: &Arc<Sessions>) -> impl Fn() + Send + Sync + 'static {
    let sessions = Arc::clone(sessions);
    move || sessions.recheck()
}

/// How [`watch()`] follows the configuration.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// The configuration file (`None`: environment only; SIGHUP still reloads).
    pub path: Option<PathBuf>,
    /// How often the file is read for changes.
    pub poll: Duration,
    /// A changed file must read the same across this interval before it is loaded.
    pub settle: Duration,
    /// Reload on SIGHUP too.
    pub sighup: bool,
}

impl WatchSettings {
    /// The production settings: poll every 2 s, settle 1 s, SIGHUP on.
    #[must_use]
    pub fn for_file(path: Option<PathBuf>) -> Self {
        Self {
            path,
            poll: Duration::from_secs(2),
            settle: Duration::from_secs(1),
            sighup: true,
        }
    }
}

/// The file's bytes once they read the same across `settle` (a writer that is still
/// writing changes them); `None` if it cannot be read or never settles.
async fn read_settled(path: &std::path::Path, settle: Duration) -> Option<Vec<u8>> {
    let mut seen = std::fs::read(path).ok()?;
    for _ in 0..30 {
        tokio::time::sleep(settle).await;
        let now = std::fs::read(path).ok()?;
        if now == seen {
            return Some(now);
        }
        seen = now;
    }
    None
}

/// Reloads on SIGHUP and when the file's content changes and settles; runs until the
/// task is dropped. Every outcome is counted in `config_reloads_total` and logged.
pub async fn watch(live: Arc<Live>, settings: WatchSettings) {
    #[cfg(unix)]
    let mut hup = settings
        .sighup
        .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
        .flatten();
    let path = settings.path.clone();
    let mut last = path.as_ref().and_then(|p| std::fs::read(p).ok());
    loop {
        let hup_fired = async {
            #[cfg(unix)]
            if let Some(h) = hup.as_mut() {
                h.recv().await;
                return;
            }
            std::future::pending::<()>().await;
        };
        let trigger = tokio::select! {
            () = hup_fired => "SIGHUP",
            () = tokio::time::sleep(settings.poll) => {
                let now = path.as_ref().and_then(|p| std::fs::read(p).ok());
                if now == last { continue; }
                "file change"
            }
        };
        // SIGHUP re-reads the deny-list too, whatever becomes of the configuration.
        if trigger == "SIGHUP" {
            live.reread_deny_list().await;
        }
        let metrics = Arc::clone(&live.load().metrics);
        let loaded = match &path {
            None => Config::load(None).map_err(|e| format!("environment: {e}")),
            Some(p) => match read_settled(p, settings.settle).await {
                None => Err(format!("{}: unreadable or still changing", p.display())),
                Some(bytes) => {
                    last = Some(bytes.clone());
                    String::from_utf8(bytes)
                        .map_err(|_| format!("{}: not UTF-8", p.display()))
                        .and_then(|text| {
                            Config::load_text(&text).map_err(|e| format!("{}: {e}", p.display()))
                        })
                }
            },
        };
        match loaded {
            Err(e) => {
                metrics.config_reloads.with_label_values(&["invalid"]).inc();
                tracing::error!(trigger, error = %e, "new configuration rejected; the previous one keeps serving");
            }
            Ok(cfg) => match live.reload(cfg).await {
                Ok(report) => {
                    metrics.config_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(
                        trigger,
                        keys_rebuilt = report.keys_rebuilt,
                        "configuration reloaded"
                    );
                    for pool in report.keys_carried_over {
                        tracing::warn!(
                            pool,
                            "new JWKS not reachable yet; verifying with the previous keys"
                        );
                    }
                    for key in report.restart_required {
                        tracing::warn!(key, "changed, but only takes effect after a restart");
                    }
                }
                Err(e) => {
                    metrics.config_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(trigger, error = %e, "configuration reload failed; the previous one keeps serving");
                }
            },
        }
    }
}
