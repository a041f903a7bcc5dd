//! The online revocation check (I/O, after the pure decision): an admitted access token
//! of a pool with `revocation_check = true` is also presented to Cognito's `GetUser`
//! API, which refuses tokens that were revoked (`RevokeToken`), signed out
//! (`GlobalSignOut`, `AdminUserGlobalSignOut`) or whose user was disabled or deleted,
//! while their signatures stay valid until `exp`.
//!
//! Per token (keyed by the SHA-256 of its signature segment, see `key`) the answer
//! is remembered for
//! `revocation_check.cache_seconds`, never past the token's `exp`, in a bounded cache;
//! concurrent requests with one token share one call (single flight: the cache holds a
//! cell that the first request fills and the others await); at most `max_concurrent`
//! calls run at once (over it, a check fails at once instead of queueing); every call
//! ends after `timeout_ms`. A check that cannot be made follows `failure_mode`: closed
//! refuses (503), open admits. Failures are shared with the requests waiting on that
//! call but never remembered. ID tokens are never checked: `GetUser` takes access
//! tokens only. Built per configuration: a reload starts with an empty cache.
//!
//! Layout: this file holds the cache, the single flight and the hook
//! ([`Revocation::filter`]); `get_user.rs` the call and how its answers are read.

mod get_user;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use http::request::Parts;
use prometheus::{Histogram, IntCounter};
use quick_cache::sync::Cache;
use tokio::sync::{OnceCell, Semaphore};

pub use get_user::{Failure, Verdict};

use crate::auth::{self, Admit, Decision, Denial, Policy};
use crate::clock::{Instant, now, unix_now};
use crate::config::{Config, FailureMode, RevocationSettings, TokenUse};
use crate::metrics::Metrics;

/// Most tokens whose answers are remembered (about 160 bytes each, so about 3 MiB;
/// only admitted access tokens get here, so no client fills it with garbage).
pub const MAX_REMEMBERED: usize = 20_000;

/// A token's cache key: the SHA-256 of its signature segment.
type Digest = [u8; 32];

/// The cache key of an admitted token: the SHA-256 of its signature segment (a fifth of
/// the token). Only tokens whose signatures verified get here, and an RS256 signature
/// determines what it signs under a given key (PKCS#1 v1.5 is deterministic and the
/// signed SHA-256 is recovered from it), so two admitted tokens share a key only by a
/// SHA-256 collision, exactly as when the whole token was hashed.
fn key(token: &str) -> Digest {
    let signature = token.rsplit_once('.').map_or(token, |(_, s)| s);
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, signature.as_bytes()).as_ref());
    key
}

/// One token's answer: filled once by the request that calls, awaited by the others;
/// with the time it was had.
#[derive(Default)]
struct Slot {
    answer: OnceCell<(Verdict, Instant)>,
}

/// A pool with the check on: where it calls, and its counters (resolved once, so that
/// a cache hit does no label lookup).
struct PoolCheck {
    endpoint: String,
    /// By the index of the label in [`Metrics::REVOCATION_RESULTS`].
    counters: Vec<IntCounter>,
}

impl PoolCheck {
    fn count(&self, result: &str) {
        if let Some(i) = Metrics::REVOCATION_RESULTS
            .iter()
            .position(|r| *r == result)
            && let Some(c) = self.counters.get(i)
        {
            c.inc();
        }
    }
}

/// Why the check could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("revocation check HTTP client: {0}")]
pub struct RevocationError(#[source] reqwest::Error);

/// The revocation check of one configuration.
pub struct Revocation {
    settings: RevocationSettings,
    /// By pool name; only pools with the check on.
    pools: HashMap<String, PoolCheck>,
    answers: Cache<Digest, Arc<Slot>>,
    permits: Semaphore,
    client: get_user::GetUser,
    duration: Histogram,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation")
            .field("settings", &self.settings)
            .field("pools", &self.pools.keys().collect::<Vec<_>>())
            .field("remembered", &self.answers.len())
            .finish_non_exhaustive()
    }
}

impl Revocation {
    /// The check for `cfg`'s pools with `revocation_check = true`; `None` when no pool
    /// has it on.
    ///
    /// # Errors
    /// [`RevocationError`] if the HTTP client cannot be built.
    pub fn from_config(cfg: &Config, metrics: &Metrics) -> Result<Option<Self>, RevocationError> {
        let mut pools = HashMap::new();
        for p in cfg.pools.iter().filter(|p| p.revocation_check) {
            // Validation guarantees an endpoint for every pool with the check on.
            let Some(endpoint) = p.idp_endpoint.clone() else {
                continue;
            };
            metrics.init_revocation_pool(&p.name);
            let counters = Metrics::REVOCATION_RESULTS
                .iter()
                .map(|r| {
                    metrics
                        .revocation_checks
                        .with_label_values(&[p.name.as_str(), r])
                })
                .collect();
            pools.insert(p.name.clone(), PoolCheck { endpoint, counters });
        }
        if pools.is_empty() {
            return Ok(None);
        }
        let settings = cfg.revocation_check.clone();
        let client = get_user::GetUser::new(settings.timeout).map_err(RevocationError)?;
        Ok(Some(Self {
            permits: Semaphore::new(settings.max_concurrent),
            answers: Cache::new(MAX_REMEMBERED),
            settings,
            pools,
            client,
            duration: metrics.revocation_check_duration.clone(),
        }))
    }

    /// The hook after the decision: an admitted access token of a checked pool is
    /// refused if Cognito refuses it, and follows the failure mode if Cognito cannot
    /// say; every other decision passes unchanged.
    pub async fn filter(&self, parts: &Parts, policy: &Policy, decision: Decision) -> Decision {
        let Decision::Allow(admission) = &decision else {
            return decision;
        };
        let Some(identity) = admission.identity.as_deref() else {
            return decision;
        };
        if admission.admit != Admit::Authenticated || identity.claims.token_use != TokenUse::Access
        {
            return decision;
        }
        let Some(pool) = self.pools.get(identity.pool.as_str()) else {
            return decision;
        };
        let verdict = match auth::bearer_token(parts, policy, &admission.path) {
            Some(token) => self.check_pool(pool, token, identity.claims.exp).await,
            // Not reached: an admitted token was found by the same extraction.
            None => Verdict::Unavailable(Failure::Error),
        };
        match verdict {
            Verdict::Valid => decision,
            Verdict::Revoked => Decision::Deny(Denial::Revoked),
            Verdict::Expired => Decision::Deny(Denial::Expired),
            Verdict::Unavailable(_) => match self.settings.failure_mode {
                FailureMode::Closed => Decision::Deny(Denial::RevocationUnavailable),
                FailureMode::Open => decision,
            },
        }
    }

    /// What Cognito says of `token` (an access token of `pool`, expiring at `exp`),
    /// from the cache when it remembers; `None` if `pool` does not have the check on.
    pub async fn check(&self, pool: &str, token: &str, exp: i64) -> Option<Verdict> {
        let pool = self.pools.get(pool)?;
        Some(self.check_pool(pool, token, exp).await)
    }

    /// Answers remembered (or being fetched) now.
    #[must_use]
    pub fn remembered(&self) -> usize {
        self.answers.len()
    }

    async fn check_pool(&self, pool: &PoolCheck, token: &str, exp: i64) -> Verdict {
        let key = key(token);
        // A stale or failed answer is dropped and the lookup made again: at most twice,
        // since the second lookup finds a new slot (or another request's fresh one).
        for _ in 0..2 {
            let slot = match self
                .answers
                .get_or_insert_with(&key, || Ok::<_, Infallible>(Arc::default()))
            {
                Ok(slot) => slot,
                Err(never) => match never {},
            };
            if let Some(&(verdict, at)) = slot.answer.get() {
                if self.fresh(verdict, at, exp) {
                    pool.count("cache_hit");
                    return verdict;
                }
                self.answers.remove_if(&key, |s| Arc::ptr_eq(s, &slot));
                continue;
            }
            let mut called = false;
            let &(verdict, _) = slot
                .answer
                .get_or_init(|| async {
                    called = true;
                    (self.call(pool, token).await, now())
                })
                .await;
            if !called {
                pool.count("shared");
            }
            if let Verdict::Unavailable(_) = verdict {
                self.answers.remove_if(&key, |s| Arc::ptr_eq(s, &slot));
            }
            return verdict;
        }
        self.call(pool, token).await
    }

    /// Whether a remembered answer may still be used: an answer about the token (not
    /// a failure), younger than `cache_seconds`, for a token not yet expired.
    fn fresh(&self, verdict: Verdict, at: Instant, exp: i64) -> bool {
        !matches!(verdict, Verdict::Unavailable(_))
            && now().saturating_duration_since(at) < self.settings.cache
            && unix_now() < exp
    }

    /// One `GetUser` call under the concurrency bound and the timeout, counted.
    async fn call(&self, pool: &PoolCheck, token: &str) -> Verdict {
        let Ok(_permit) = self.permits.try_acquire() else {
            pool.count(Failure::Overloaded.label());
            return Verdict::Unavailable(Failure::Overloaded);
        };
        let started = now();
        let verdict = tokio::time::timeout(
            self.settings.timeout,
            self.client.call(&pool.endpoint, token),
        )
        .await
        .unwrap_or(Verdict::Unavailable(Failure::Timeout));
        self.duration.observe(started.elapsed().as_secs_f64());
        pool.count(match verdict {
            Verdict::Valid => "valid",
            Verdict::Revoked | Verdict::Expired => "revoked",
            Verdict::Unavailable(f) => f.label(),
        });
        verdict
    }
}
