//! Signing keys: [`parse_jwks`] (PURE: JWKS JSON -> [`KeySet`], weak or odd keys
//! dropped; `keys.rs`) and [`Jwks`], the per-pool refresher (I/O) that fetches on a schedule and on
//! unknown `kid`s, and publishes immutable snapshots the request path reads lock-free.
//!
//! Lifecycle guarantees: a failed, garbage, redirected or oversized fetch keeps the last
//! good keys; fetches triggered by unknown `kid`s are single-flight and at most one per
//! `kid_miss_min_interval` per pool; a key removed from the JWKS stops verifying as soon
//! as the next successful fetch is published.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Instant, unix_now};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use crate::config::{JwksSettings, PoolConfig};
use crate::metrics::Metrics;

mod keys;
pub use keys::*;

/// The state of one pool's keys as the request path sees it.
#[derive(Clone, Debug, Default)]
pub struct PoolKeys {
    /// Last good key set; `None` until the first successful fetch.
    pub keys: Option<Arc<KeySet>>,
    /// Unix time of the last successful fetch.
    pub fetched_at: i64,
}

/// Immutable snapshot of every pool's keys, indexed like `Config::pools`.
#[derive(Clone, Debug, Default)]
pub struct KeysSnapshot {
    /// One entry per configured pool.
    pub pools: Vec<PoolKeys>,
    /// The load balancer's keys (`[alb] verify_data`), by kid; set by the caller that
    /// owns the ALB key store, `None` without one.
    pub alb: Option<Arc<crate::alb::AlbKeySet>>,
}

#[derive(Default)]
struct Gate {
    in_flight: bool,
    last_kid_miss: Option<Instant>,
}

struct PoolSlot {
    name: String,
    url: String,
    kick: Notify,
    gate: Mutex<Gate>,
    /// Number of completed fetch attempts; waiters watch it.
    done: watch::Sender<u64>,
}

/// Owner of every pool's keys and refresher tasks.
pub struct Jwks {
    snapshot: ArcSwap<KeysSnapshot>,
    write: Mutex<()>,
    slots: Vec<PoolSlot>,
    settings: JwksSettings,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Flips to true once every pool has loaded keys at least once.
    ready: watch::Sender<bool>,
}

impl Jwks {
    /// Creates the key store for these pools (nothing fetched yet).
    ///
    /// # Errors
    /// If the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(
        pools: &[PoolConfig],
        settings: JwksSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, JwksError> {
        let client = crate::outbound::client(settings.fetch_timeout).map_err(JwksError::Fetch)?;
        let slots = pools
            .iter()
            .map(|p| PoolSlot {
                name: p.name.clone(),
                url: p.jwks_url.clone(),
                kick: Notify::new(),
                gate: Mutex::new(Gate::default()),
                done: watch::Sender::new(0),
            })
            .collect();
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(KeysSnapshot {
                pools: vec![PoolKeys::default(); pools.len()],
                alb: None,
            }),
            write: Mutex::new(()),
            slots,
            settings,
            client,
            metrics,
            ready: watch::Sender::new(pools.is_empty()),
        }))
    }

    /// The current snapshot (an atomic pointer load, no lock).
    #[must_use]
    pub fn snapshot(&self) -> Arc<KeysSnapshot> {
        self.snapshot.load_full()
    }

    /// Receives `true` once every pool has had keys.
    #[must_use]
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Names of pools that have no keys yet.
    #[must_use]
    pub fn pools_without_keys(&self) -> Vec<String> {
        let snap = self.snapshot();
        self.slots
            .iter()
            .zip(&snap.pools)
            .filter(|(_, k)| k.keys.is_none())
            .map(|(s, _)| s.name.clone())
            .collect()
    }

    /// Starts one refresher task per pool; they stop when `shutdown` fires.
    pub fn spawn_refreshers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        for i in 0..self.slots.len() {
            let this = Arc::clone(self);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { this.refresh_loop(i, shutdown).await });
        }
    }

    /// Called when a token names a `kid` the pool does not have. Triggers (or joins) a
    /// single-flight refetch unless one was triggered less than `kid_miss_min_interval`
    /// ago. Returns true once a fetch has completed, so the caller may decide again.
    pub async fn refresh_after_kid_miss(&self, pool: usize) -> bool {
        let Some(slot) = self.slots.get(pool) else {
            return false;
        };
        let mut done = slot.done.subscribe();
        let target = *done.borrow_and_update() + 1;
        {
            let Ok(mut gate) = slot.gate.lock() else {
                return false;
            };
            if !gate.in_flight {
                let recent = gate
                    .last_kid_miss
                    .is_some_and(|t| t.elapsed() < self.settings.kid_miss_min_interval);
                if recent {
                    return false;
                }
                gate.in_flight = true;
                gate.last_kid_miss = Some(Instant::now());
                self.metrics
                    .jwks_kid_miss_refreshes
                    .with_label_values(&[&slot.name])
                    .inc();
                slot.kick.notify_one();
            }
        }
        let wait = self.settings.fetch_timeout + Duration::from_secs(1);
        matches!(
            tokio::time::timeout(wait, done.wait_for(|n| *n >= target)).await,
            Ok(Ok(_))
        )
    }

    async fn refresh_loop(self: Arc<Self>, i: usize, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if let Ok(mut gate) = self.slots[i].gate.lock() {
                gate.in_flight = true;
            }
            let ok = self.fetch_and_publish(i).await;
            if let Ok(mut gate) = self.slots[i].gate.lock() {
                gate.in_flight = false;
            }
            self.slots[i].done.send_modify(|n| *n += 1);
            failures = if ok { 0 } else { failures.saturating_add(1) };
            let delay = if ok {
                jitter(self.settings.refresh_interval)
            } else {
                // Retry quickly (1 s doubling to 30 s) so an outage ends as soon as the IdP is back.
                Duration::from_secs(1u64 << failures.min(5).saturating_sub(1))
                    .min(Duration::from_secs(30))
            }
            .min(self.settings.refresh_interval);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.slots[i].kick.notified() => {}
                () = crate::flag::until_true(&mut shutdown) => return,
            }
        }
    }

    /// Fetches one pool's JWKS and, if usable, publishes it. Returns success.
    async fn fetch_and_publish(&self, i: usize) -> bool {
        self.refresh_now(i).await.is_ok()
    }

    /// Fetches pool `i`'s JWKS now and publishes it if usable; returns the key count.
    ///
    /// # Errors
    /// [`JwksError`] when the fetch or parse fails (the previous keys stay).
    pub async fn refresh_now(&self, i: usize) -> Result<usize, JwksError> {
        let Some(slot) = self.slots.get(i) else {
            return Err(JwksError::NotJwks);
        };
        let started = Instant::now();
        let result = self
            .fetch(&slot.url)
            .await
            .and_then(|body| parse_jwks(&body));
        self.metrics
            .jwks_fetch_duration
            .with_label_values(&[&slot.name])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(parsed) => {
                let count = parsed.keys.len();
                self.publish(i, Arc::new(parsed.keys));
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[&slot.name, "success"])
                    .inc();
                self.metrics
                    .jwks_keys
                    .with_label_values(&[&slot.name])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                #[allow(
                    clippy::cast_precision_loss,
                    reason = "unix seconds fit an f64 exactly"
                )]
                self.metrics
                    .jwks_last_success
                    .with_label_values(&[&slot.name])
                    .set(unix_now() as f64);
                if parsed.skipped > 0 {
                    self.metrics
                        .jwks_keys_rejected
                        .with_label_values(&[&slot.name])
                        .inc_by(parsed.skipped as u64);
                    tracing::warn!(pool = %slot.name, skipped = parsed.skipped, "JWKS entries skipped (not RS256 RSA signing keys of 2048+ bits, or duplicate kid)");
                }
                tracing::debug!(pool = %slot.name, keys = count, "JWKS refreshed");
                Ok(count)
            }
            Err(e) => {
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[&slot.name, e.label()])
                    .inc();
                tracing::warn!(pool = %slot.name, url = %slot.url, error = %e, "JWKS refresh failed; keeping previous keys");
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, JwksError> {
        let mut resp = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(JwksError::Status(resp.status().as_u16()));
        }
        let max = self.settings.max_bytes;
        if resp.content_length().is_some_and(|l| l > max as u64) {
            return Err(JwksError::TooLarge(max));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url()))?
        {
            if body.len() + chunk.len() > max {
                return Err(JwksError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Gives pool `i`, if it has no keys yet, keys fetched by an earlier key store for
    /// the same issuers (a reload keeps verifying while the new JWKS URL is unreachable).
    /// They keep their fetch time, so `max_stale_seconds` still ends their use.
    pub fn carry_over(&self, i: usize, keys: &PoolKeys) {
        let Ok(_guard) = self.write.lock() else {
            return;
        };
        let mut next = (*self.snapshot.load_full()).clone();
        if let Some(p) = next.pools.get_mut(i)
            && p.keys.is_none()
            && keys.keys.is_some()
        {
            *p = keys.clone();
        }
        let all = next.pools.iter().all(|p| p.keys.is_some());
        self.snapshot.store(Arc::new(next));
        if all {
            self.ready.send_if_modified(|r| !std::mem::replace(r, true));
        }
    }

    /// Replaces pool `i`'s keys (also used by the demo's embedded issuer and tests).
    pub fn publish(&self, i: usize, keys: Arc<KeySet>) {
        let Ok(_guard) = self.write.lock() else {
            return;
        };
        let mut next = (*self.snapshot.load_full()).clone();
        if let Some(p) = next.pools.get_mut(i) {
            p.keys = Some(keys);
            p.fetched_at = unix_now();
        }
        let all = next.pools.iter().all(|p| p.keys.is_some());
        self.snapshot.store(Arc::new(next));
        if all {
            self.ready.send_if_modified(|r| !std::mem::replace(r, true));
        }
    }
}

fn jitter(base: Duration) -> Duration {
    // Up to 10% early, so a fleet started together does not refresh in lockstep.
    base.mul_f64(1.0 - crate::clock::random_fraction() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xC5; bits / 8];
        n[bits / 8 - 1] |= 1;
        n
    }

    fn jwk(kid: &str, bits: usize, extra: &str) -> String {
        format!(
            r#"{{"kty":"RSA","kid":"{kid}","n":"{}","e":"AQAB"{extra}}}"#,
            b64(&modulus(bits))
        )
    }

    #[test]
    fn strong_rsa_signing_keys_are_kept() {
        let doc = format!(
            r#"{{"keys":[{},{}]}}"#,
            jwk("a", 2048, r#","use":"sig","alg":"RS256""#),
            jwk("b", 4096, "")
        );
        let parsed = parse_jwks(doc.as_bytes()).expect("usable");
        assert_eq!(parsed.keys.len(), 2);
        assert_eq!(parsed.skipped, 0);
    }

    #[test]
    fn weak_foreign_and_encryption_keys_are_dropped() {
        let doc = format!(
            r#"{{"keys":[{},{},{},{},{{"kty":"EC","kid":"e"}},{}]}}"#,
            jwk("weak", 1024, ""),
            jwk("enc", 2048, r#","use":"enc""#),
            jwk("ps", 2048, r#","alg":"PS256""#),
            r#"{"kty":"RSA","kid":"e3","n":"AQAB","e":"Aw"}"#,
            jwk("good", 2048, "")
        );
        let parsed = parse_jwks(doc.as_bytes()).expect("one usable");
        assert!(parsed.keys.get("good").is_some());
        assert!(parsed.keys.get("weak").is_none());
        assert_eq!(parsed.skipped, 5);
    }

    #[test]
    fn duplicate_kids_are_all_dropped() {
        let doc = format!(
            r#"{{"keys":[{},{},{}]}}"#,
            jwk("a", 2048, ""),
            jwk("a", 2048, ""),
            jwk("b", 2048, "")
        );
        let parsed = parse_jwks(doc.as_bytes()).expect("b usable");
        assert!(parsed.keys.get("a").is_none());
        assert_eq!(parsed.keys.len(), 1);
    }

    #[test]
    fn garbage_and_keyless_documents_are_errors() {
        assert!(matches!(parse_jwks(b"<html>"), Err(JwksError::NotJwks)));
        assert!(matches!(
            parse_jwks(b"{\"keys\":{}}"),
            Err(JwksError::NotJwks)
        ));
        assert!(matches!(
            parse_jwks(b"{\"keys\":[]}"),
            Err(JwksError::NoUsableKeys { .. })
        ));
    }
}
