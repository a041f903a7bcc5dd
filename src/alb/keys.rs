//! The I/O edge of ALB verification: [`AlbKeys`], the load balancers' public keys by
//! `kid`, fetched from `<public_key_url><kid>` (the region's ELB public-key endpoint).
//!
//! ALB keys never change under a `kid`, so a key once fetched is kept (the oldest is
//! evicted past `max_keys`). The `kid` comes from an unauthenticated header, so every
//! path to the endpoint is bounded: concurrent requests for one `kid` share one fetch,
//! a failure is remembered for `negative_ttl` (a flood of one bogus `kid` costs one
//! fetch), and at most `max_fetches` fetches start per `window` (a flood of distinct
//! bogus `kid`s costs that many). Everything fails closed: no key, no admission.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::OnceCell;

use super::data::{AlbError, AlbKey, valid_kid};
use crate::clock::{Instant, now};
use crate::config::AlbDataSettings;

/// Bounds on fetching and keeping keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlbKeyLimits {
    /// Keys kept; the oldest is evicted past this.
    pub max_keys: usize,
    /// How long a failed fetch answers for its `kid` without another fetch.
    pub negative_ttl: Duration,
    /// Fetches started per `window`, all `kid`s together.
    pub max_fetches: usize,
    /// The window of `max_fetches`.
    pub window: Duration,
    /// Largest key document read, in bytes.
    pub max_body: usize,
}

impl Default for AlbKeyLimits {
    fn default() -> Self {
        Self {
            max_keys: 64,
            negative_ttl: Duration::from_secs(5),
            max_fetches: 10,
            window: Duration::from_secs(10),
            max_body: 8 * 1024,
        }
    }
}

/// An immutable set of fetched keys, as the request path reads it.
#[derive(Debug, Default, Clone)]
pub struct AlbKeySet {
    keys: HashMap<String, Arc<AlbKey>>,
    /// Insertion order, oldest first (for eviction).
    order: VecDeque<String>,
}

impl AlbKeySet {
    /// The key with this `kid`, if it has been fetched.
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&Arc<AlbKey>> {
        self.keys.get(kid)
    }

    /// Number of keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if no key has been fetched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The outcome every waiter of one fetch receives.
type Shared = Arc<OnceCell<Result<Arc<AlbKey>, AlbError>>>;

/// Mutable bookkeeping; its lock is never held across an `.await`.
#[derive(Default)]
struct State {
    /// The fetch under way (or abandoned by a cancelled leader) per `kid`.
    in_flight: HashMap<String, Shared>,
    /// Recent failures per `kid`, with when they happened.
    failures: HashMap<String, (Instant, AlbError)>,
    /// Start times of recent fetches (within `window`).
    started: VecDeque<Instant>,
}

/// Why the key client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("ALB key client: {0}")]
pub struct AlbClientError(#[source] reqwest::Error);

/// The public keys of the load balancers, fetched on demand and kept.
pub struct AlbKeys {
    base_url: String,
    client: reqwest::Client,
    limits: AlbKeyLimits,
    set: ArcSwap<AlbKeySet>,
    state: Mutex<State>,
}

impl std::fmt::Debug for AlbKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlbKeys")
            .field("base_url", &self.base_url)
            .field("keys", &self.set.load().len())
            .finish_non_exhaustive()
    }
}

impl AlbKeys {
    /// A key store for the configured endpoint, with the default limits.
    ///
    /// # Errors
    /// If the HTTP client cannot be built (TLS roots unavailable).
    pub fn from_settings(settings: &AlbDataSettings) -> Result<Self, AlbClientError> {
        Self::new(
            &settings.public_key_url,
            settings.key_fetch_timeout,
            AlbKeyLimits::default(),
        )
    }

    /// A key store fetching `<public_key_url><kid>` (`public_key_url` ends with `/`),
    /// each fetch bounded by `timeout`; nothing is fetched yet.
    ///
    /// # Errors
    /// If the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(
        public_key_url: &str,
        timeout: Duration,
        limits: AlbKeyLimits,
    ) -> Result<Self, AlbClientError> {
        let client = crate::outbound::client(timeout).map_err(AlbClientError)?;
        Ok(Self {
            base_url: public_key_url.to_owned(),
            client,
            limits,
            set: ArcSwap::from_pointee(AlbKeySet::default()),
            state: Mutex::new(State::default()),
        })
    }

    /// The keys fetched so far (an atomic pointer load, no lock): what the pure
    /// decision reads.
    #[must_use]
    pub fn snapshot(&self) -> Arc<AlbKeySet> {
        self.set.load_full()
    }

    /// The key with this `kid`, if it has been fetched (never fetches).
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<Arc<AlbKey>> {
        self.set.load().get(kid).cloned()
    }

    /// The key with this `kid`: from the cache, else from the endpoint. Concurrent
    /// callers for one `kid` share one fetch; a failure answers again for
    /// `negative_ttl` without a fetch.
    ///
    /// # Errors
    /// [`AlbError::Kid`] for a `kid` that cannot name a key, [`AlbError::UnknownKid`]
    /// (403/404), [`AlbError::BadKey`] (not a P-256 PEM), [`AlbError::Throttled`]
    /// (fetch budget spent), [`AlbError::KeyUnavailable`] (anything else).
    pub async fn fetch(&self, kid: &str) -> Result<Arc<AlbKey>, AlbError> {
        if !valid_kid(kid) {
            return Err(AlbError::Kid);
        }
        if let Some(key) = self.get(kid) {
            return Ok(key);
        }
        let shared = {
            let mut state = self.lock()?;
            if let Some((at, err)) = state.failures.get(kid)
                && at.elapsed() < self.limits.negative_ttl
            {
                return Err(*err);
            }
            Arc::clone(state.in_flight.entry(kid.to_owned()).or_default())
        };
        // If the waiter running the fetch is cancelled, another waiter takes over.
        shared
            .get_or_init(|| self.fetch_once(kid, &shared))
            .await
            .clone()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, AlbError> {
        self.state.lock().map_err(|_| AlbError::KeyUnavailable)
    }

    /// The one fetch of a `kid`'s key for the waiters of `shared`; records the
    /// outcome and retires `shared` before they all receive it.
    async fn fetch_once(&self, kid: &str, shared: &Shared) -> Result<Arc<AlbKey>, AlbError> {
        // Another fetch may have finished between our cache miss and joining `shared`.
        let result = match self.get(kid) {
            Some(key) => Ok(key),
            None if !self.take_budget()? => Err(AlbError::Throttled),
            None => {
                let result = self.download(kid).await.map(Arc::new);
                if let Err(e) = &result {
                    match e {
                        AlbError::UnknownKid => {
                            tracing::debug!(%kid, "ALB key id unknown to the key endpoint")
                        }
                        e => {
                            tracing::warn!(%kid, url = %self.base_url, error = %e, "ALB public key fetch failed")
                        }
                    }
                }
                result
            }
        };
        let mut state = self.lock()?;
        if state
            .in_flight
            .get(kid)
            .is_some_and(|s| Arc::ptr_eq(s, shared))
        {
            state.in_flight.remove(kid);
        }
        match &result {
            Ok(key) => self.insert(kid, key),
            // Not remembered: the budget frees up on its own, and a real key must then
            // be fetched at once.
            Err(AlbError::Throttled) => {}
            Err(e) => {
                let ttl = self.limits.negative_ttl;
                state.failures.retain(|_, (at, _)| at.elapsed() < ttl);
                state.failures.insert(kid.to_owned(), (now(), *e));
            }
        }
        result
    }

    /// Counts a fetch against the window; false if the window is full.
    fn take_budget(&self) -> Result<bool, AlbError> {
        let mut state = self.lock()?;
        let window = self.limits.window;
        while state.started.front().is_some_and(|t| t.elapsed() >= window) {
            state.started.pop_front();
        }
        if state.started.len() >= self.limits.max_fetches {
            return Ok(false);
        }
        state.started.push_back(now());
        Ok(true)
    }

    /// Publishes a key (the caller holds the state lock, so writers are serialized).
    fn insert(&self, kid: &str, key: &Arc<AlbKey>) {
        let mut next = (*self.set.load_full()).clone();
        if next.keys.contains_key(kid) {
            return;
        }
        while next.keys.len() >= self.limits.max_keys.max(1) {
            match next.order.pop_front() {
                Some(old) => {
                    next.keys.remove(&old);
                }
                None => break,
            }
        }
        next.keys.insert(kid.to_owned(), Arc::clone(key));
        next.order.push_back(kid.to_owned());
        self.set.store(Arc::new(next));
    }

    /// GETs `<base><kid>` and parses the body as a P-256 public key PEM.
    async fn download(&self, kid: &str) -> Result<AlbKey, AlbError> {
        let url = format!("{}{kid}", self.base_url);
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|_| AlbError::KeyUnavailable)?;
        match resp.status().as_u16() {
            200 => {}
            // S3-backed endpoints answer 403 for a missing object.
            403 | 404 => return Err(AlbError::UnknownKid),
            _ => return Err(AlbError::KeyUnavailable),
        }
        let max = self.limits.max_body;
        if resp.content_length().is_some_and(|l| l > max as u64) {
            return Err(AlbError::BadKey);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| AlbError::KeyUnavailable)? {
            if body.len() + chunk.len() > max {
                return Err(AlbError::BadKey);
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| AlbError::BadKey)?;
        AlbKey::from_pem(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(limits: AlbKeyLimits) -> AlbKeys {
        // Port 9 on loopback: nothing listens, every fetch fails fast.
        AlbKeys::new("http://127.0.0.1:9/", Duration::from_millis(500), limits).expect("client")
    }

    #[tokio::test]
    async fn kids_that_cannot_name_a_key_are_refused_before_any_fetch() {
        let k = keys(AlbKeyLimits::default());
        for bad in ["", "..", ".", "a/b", "a?b", "a%2f", &"k".repeat(257)] {
            assert_eq!(k.fetch(bad).await.err(), Some(AlbError::Kid), "{bad:?}");
        }
        assert!(k.lock().expect("lock").started.is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_closed_and_is_remembered() {
        let k = keys(AlbKeyLimits::default());
        assert_eq!(k.fetch("kid-1").await.err(), Some(AlbError::KeyUnavailable));
        assert!(k.get("kid-1").is_none());
        assert_eq!(k.fetch("kid-1").await.err(), Some(AlbError::KeyUnavailable));
        let state = k.lock().expect("lock");
        assert_eq!(
            state.started.len(),
            1,
            "the second answer came from the negative cache"
        );
        assert!(state.in_flight.is_empty());
    }

    #[tokio::test]
    async fn the_fetch_budget_throttles_distinct_kids_and_is_not_remembered() {
        let k = keys(AlbKeyLimits {
            max_fetches: 2,
            ..AlbKeyLimits::default()
        });
        assert_eq!(k.fetch("a").await.err(), Some(AlbError::KeyUnavailable));
        assert_eq!(k.fetch("b").await.err(), Some(AlbError::KeyUnavailable));
        assert_eq!(k.fetch("c").await.err(), Some(AlbError::Throttled));
        let state = k.lock().expect("lock");
        assert!(!state.failures.contains_key("c"));
        assert!(state.in_flight.is_empty());
    }

    #[test]
    fn the_key_set_evicts_the_oldest_key_past_its_bound() {
        let k = keys(AlbKeyLimits {
            max_keys: 2,
            ..AlbKeyLimits::default()
        });
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .expect("key");
        let mut der = super::super::data::P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref());
        let key = Arc::new(AlbKey::from_spki_der(&der).expect("key"));
        for kid in ["a", "b", "a", "c"] {
            k.insert(kid, &key);
        }
        let snap = k.snapshot();
        assert_eq!(snap.len(), 2);
        assert!(snap.get("a").is_none() && snap.get("b").is_some() && snap.get("c").is_some());
    }
}
