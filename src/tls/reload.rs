//! Hot reload of the TLS files: the server certificate behind a [`ReloadingResolver`],
//! the mTLS client CA bundle behind a [`ReloadingClientVerifier`], both swapped by the
//! loop [`spawn_reloader`] starts, which polls the files every `reload_interval`.
//! Resumable sessions live in [`ResettableSessions`], forgotten when the CA bundle
//! changes: a resumed session skips client-certificate verification, so it would
//! otherwise admit a client of a CA just removed.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::client_ca::ReloadingClientVerifier;
use super::load_certified_key;
use crate::config::TlsSettings;
use crate::metrics::Metrics;

/// Serves whatever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadingResolver {
    pub(super) fn new(key: CertifiedKey) -> Self {
        Self {
            current: ArcSwap::from_pointee(key),
        }
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// How many sessions are kept for resumption (the rustls default).
const SESSIONS: usize = 256;

/// In-memory session store that can be emptied at once.
#[derive(Debug)]
pub struct ResettableSessions {
    current: ArcSwap<ServerSessionMemoryCache>,
}

impl ResettableSessions {
    pub(super) fn new() -> Self {
        Self {
            current: ArcSwap::new(ServerSessionMemoryCache::new(SESSIONS)),
        }
    }

    /// Forgets every stored session: clients make a full handshake next time.
    fn reset(&self) {
        self.current.store(ServerSessionMemoryCache::new(SESSIONS));
    }
}

impl StoresServerSessions for ResettableSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.current.load().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current.load().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current.load().take(key)
    }

    fn can_cache(&self) -> bool {
        self.current.load().can_cache()
    }
}

/// What the reloader swaps inside a server configuration.
#[derive(Debug)]
pub struct Reloadable {
    resolver: Arc<ReloadingResolver>,
    /// The client verifier and the bundle content it was built from.
    client_ca: Option<(Arc<ReloadingClientVerifier>, Vec<u8>)>,
    sessions: Arc<ResettableSessions>,
}

impl Reloadable {
    pub(super) fn new(
        resolver: Arc<ReloadingResolver>,
        client_ca: Option<(Arc<ReloadingClientVerifier>, Vec<u8>)>,
        sessions: Arc<ResettableSessions>,
    ) -> Self {
        Self {
            resolver,
            client_ca,
            sessions,
        }
    }
}

/// Re-reads the certificate, key and client CA bundle every `reload_interval`; swaps in
/// what changed and loads. A file that changed but does not load counts an error and is
/// tried again next interval (often a half-written rotation). Stops when `shutdown`
/// turns true.
pub fn spawn_reloader(
    targets: Reloadable,
    settings: TlsSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let read = |s: &TlsSettings| {
            (
                std::fs::read(&s.cert_file).ok(),
                std::fs::read(&s.key_file).ok(),
            )
        };
        let mut last = read(&settings);
        let mut client_ca = targets.client_ca.zip(settings.client_ca_file.clone());
        let count = |result: &str| metrics.tls_reloads.with_label_values(&[result]).inc();
        loop {
            tokio::select! {
                () = tokio::time::sleep(settings.reload_interval) => {}
                () = crate::flag::until_true(&mut shutdown) => return,
            }
            let now = read(&settings);
            if now != last {
                match load_certified_key(&settings.cert_file, &settings.key_file) {
                    Ok(key) => {
                        targets.resolver.current.store(Arc::new(key));
                        count("success");
                        tracing::info!(cert = %settings.cert_file.display(), "TLS certificate reloaded");
                        last = now;
                    }
                    Err(e) => {
                        count("error");
                        tracing::warn!(error = %e, "TLS certificate changed but could not be loaded; keeping the previous one");
                    }
                }
            }
            if let Some(((verifier, loaded), path)) = &mut client_ca {
                let Some(pem) = changed_client_ca(verifier, path, loaded, &count) else {
                    continue;
                };
                forget_sessions(&targets.sessions, settings.handshake_timeout);
                *loaded = pem;
            }
        }
    });
}

/// Re-reads the client CA bundle at `path`; when it differs from `loaded` and is usable,
/// puts it in force and returns it. Counts the outcome of a changed bundle.
fn changed_client_ca(
    verifier: &ReloadingClientVerifier,
    path: &Path,
    loaded: &[u8],
    count: &impl Fn(&str),
) -> Option<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|e| super::file_err(path, e));
    if pem.as_ref().is_ok_and(|pem| pem == loaded) {
        return None;
    }
    match pem.and_then(|pem| verifier.reload(path, &pem).map(|()| pem)) {
        Ok(pem) => {
            count("success");
            tracing::info!(ca = %path.display(), "client CA bundle reloaded");
            Some(pem)
        }
        Err(e) => {
            count("error");
            tracing::warn!(error = %e, "client CA bundle changed but could not be loaded; keeping the previous one");
            None
        }
    }
}

/// Forgets the resumable sessions, now and once more after `handshake_timeout`: a
/// handshake that verified its client certificate under the old bundle just before the
/// swap may store its session after the first reset, but it completes (or is cut off by
/// the handshake timeout) within `handshake_timeout`, so the second reset removes it.
fn forget_sessions(sessions: &Arc<ResettableSessions>, handshake_timeout: std::time::Duration) {
    sessions.reset();
    let sessions = Arc::clone(sessions);
    tokio::spawn(async move {
        tokio::time::sleep(handshake_timeout).await;
        sessions.reset();
    });
}
