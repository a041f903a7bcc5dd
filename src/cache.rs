//! The verified-token cache: a bounded (entries and bytes) concurrent map from a cheap
//! keyed digest of a token to the identity its verification produced and the token
//! itself. A lookup is confirmed by comparing the whole presented token with the stored
//! one, so a digest collision is only a miss. It only saves the scan, the parse and the
//! RSA check: on every hit the caller re-checks that the signing key is still in the
//! issuing pool's current key set (same kid, same key) and re-runs the time and pool
//! checks against `now`, so a hit never admits what a miss would refuse. A
//! configuration reload builds a new, empty cache.
//!
//! The digest is SipHash-1-3 (std's `RandomState`, keys drawn at random per cache) of
//! the token's length and its last [`DIGEST_TAIL`] bytes: the tail of an RSA signature,
//! which the holder of a token cannot choose, and only verified tokens are inserted.
//! Being keyed with secret random keys, collisions cannot be aimed at (no hash
//! flooding), and hashing 64 bytes costs a fraction of SHA-256 over a whole token.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use http::request::Parts;

use crate::auth::{self, Decision, Policy, Remembered};
use crate::jwks::KeysSnapshot;

/// A cached verification.
pub type Entry = Remembered;

/// Cache key: a keyed digest of the token (see the module documentation).
pub type TokenDigest = u64;

/// Bytes at the end of a token that its digest covers (with its length).
pub const DIGEST_TAIL: usize = 64;

/// Weighs an entry by the bytes it holds, at least `min` so that `max_bytes` also
/// enforces `max_entries` (quick_cache bounds by weight; its item count is a hint).
#[derive(Clone)]
struct ByMemory {
    min: u64,
}

impl Weighter<TokenDigest, Arc<Entry>> for ByMemory {
    fn weight(&self, _key: &TokenDigest, entry: &Arc<Entry>) -> u64 {
        entry.weight.max(self.min)
    }
}

/// Bounded verified-token cache.
pub struct TokenCache {
    inner: Cache<TokenDigest, Arc<Entry>, ByMemory>,
    keys: RandomState,
}

impl TokenCache {
    /// A cache holding at most `max_entries` tokens and about `max_bytes` of claims.
    #[must_use]
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let max_bytes = max_bytes.max(1);
        let min = (max_bytes / max_entries as u64).max(1);
        Self {
            inner: Cache::with_weighter(max_entries, max_bytes, ByMemory { min }),
            keys: RandomState::new(),
        }
    }

    /// The cache key of a token (keyed by this cache's secret keys).
    #[must_use]
    pub fn digest(&self, token: &str) -> TokenDigest {
        let bytes = token.as_bytes();
        let tail = bytes
            .get(bytes.len().saturating_sub(DIGEST_TAIL)..)
            .unwrap_or(bytes);
        self.keys.hash_one((bytes.len(), tail))
    }

    /// The verification of exactly `token`, if cached.
    #[must_use]
    pub fn get(&self, token: &str) -> Option<Arc<Entry>> {
        self.inner
            .get(&self.digest(token))
            .filter(|e| *e.token == *token)
    }

    /// Caches a successful verification (under the digest of its token).
    pub fn insert(&self, entry: Arc<Entry>) {
        self.inner.insert(self.digest(&entry.token), entry);
    }

    /// [`auth::authorize_with`] over this cache: the decision reuses a cached
    /// verification, then the cache remembers a fresh one and forgets one that no
    /// longer verifies (expired, key gone). Same decisions as [`auth::authorize`].
    #[must_use]
    pub fn authorize(
        &self,
        parts: &Parts,
        now: i64,
        keys: &KeysSnapshot,
        policy: &Policy,
    ) -> Decision {
        let looked_up = std::cell::Cell::new(None);
        let earlier = |token: &str| {
            let digest = self.digest(token);
            let entry = self.inner.get(&digest).filter(|e| *e.token == *token);
            looked_up.set(Some((digest, entry.is_some())));
            entry
        };
        let decision = auth::authorize_with(parts, now, keys, policy, &earlier);
        if let Some((digest, was_cached)) = looked_up.get() {
            match &decision {
                Decision::Allow(a) => {
                    if let Some(learned) = &a.learned {
                        self.inner.insert(digest, Arc::clone(learned));
                    }
                }
                Decision::Deny(d) if was_cached && !d.is_route_refusal() => {
                    self.inner.remove(&digest);
                }
                Decision::Deny(_) => {}
            }
        }
        decision
    }

    /// Drops the entry of `token` (its key left the JWKS, or the token expired).
    pub fn remove(&self, token: &str) {
        let digest = self.digest(token);
        self.inner.remove_if(&digest, |e| *e.token == *token);
    }

    /// Entries held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::auth::tests::{
        ISS_B, NOW, access, id_token, issuer, keys, other_issuer, policy, request, summary,
    };
    use crate::issuer::DevIssuer;
    use crate::jwks::PoolKeys;
    use serde_json::json;

    fn entry(token: &str, weight: u64) -> Arc<Entry> {
        let claims = crate::token::Claims::from_payload(
            serde_json::from_str(
                r#"{"iss":"i","sub":"s","exp":10,"iat":1,"token_use":"access","client_id":"c"}"#,
            )
            .expect("json"),
        )
        .expect("claims");
        Arc::new(Entry {
            pool: 0,
            kid: "k".into(),
            key_fingerprint: 1,
            identity: Arc::new(Identity {
                pool: "p".into(),
                claims,
                rendered: std::sync::OnceLock::new(),
            }),
            token: token.into(),
            weight,
        })
    }

    #[test]
    fn the_entry_limit_holds_even_for_small_tokens() {
        let cache = TokenCache::new(16, 1 << 20);
        for i in 0..1000u32 {
            cache.insert(entry(&i.to_string(), 10));
        }
        assert!(cache.len() <= 16, "{} entries", cache.len());
    }

    #[test]
    fn the_byte_limit_holds_for_large_tokens() {
        let cache = TokenCache::new(10_000, 64 * 1024);
        for i in 0..1000u32 {
            cache.insert(entry(&i.to_string(), 8 * 1024));
        }
        assert!(cache.len() <= 8, "{} entries", cache.len());
    }

    #[test]
    fn a_token_sharing_another_tokens_digest_is_verified_not_served_the_other_identity() {
        let cache = TokenCache::new(64, 1 << 20);
        let (keys, p) = (keys(), policy());
        let good = issuer().mint("k1", &access());
        let allowed = cache.authorize(
            &request("GET", "/api/x", &[&format!("Bearer {good}")], &[]),
            NOW,
            &keys,
            &p,
        );
        assert!(
            matches!(allowed, Decision::Allow(_)),
            "{}",
            summary(&allowed)
        );
        // Same length, same tail (so the same digest), different payload byte.
        let mut forged = good.clone().into_bytes();
        let i = good.find('.').expect("dot") + 3;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(cache.digest(&forged), cache.digest(&good));
        let req = request("GET", "/api/x", &[&format!("Bearer {forged}")], &[]);
        let decision = cache.authorize(&req, NOW, &keys, &p);
        assert!(
            matches!(&decision, Decision::Deny(d) if *d != crate::auth::Denial::InvalidRequest),
            "{}",
            summary(&decision)
        );
        assert!(cache.get(&forged).is_none());
        assert!(cache.get(&good).is_some(), "the genuine entry stays");
    }

    /// Property: over random tokens, times, paths and key sets, the cached decision is
    /// always the uncached one, including when a cached token is replayed later, after
    /// its key left the JWKS, or on a stricter route.
    #[test]
    fn a_cache_hit_never_decides_differently_from_a_miss() {
        let cache = TokenCache::new(64, 1 << 20);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let full = keys();
        let without_k1 = KeysSnapshot {
            pools: vec![
                PoolKeys {
                    keys: Some(Arc::new(DevIssuer::generate(&[]).expect("empty").key_set())),
                    fetched_at: NOW,
                },
                full.pools[1].clone(),
            ],
            alb: None,
        };
        let tokens: Vec<String> = (0..40)
            .map(|_| {
                let mut c = if rnd(2) == 0 { access() } else { id_token() };
                let exp = NOW + i64::try_from(rnd(2000)).unwrap_or(0) - 500;
                c["exp"] = json!(exp);
                c["iat"] = json!(exp - 600);
                if rnd(5) == 0 {
                    c["nbf"] = json!(NOW + i64::try_from(rnd(200)).unwrap_or(0));
                }
                if rnd(6) == 0 {
                    c["iss"] = json!(ISS_B);
                }
                if rnd(6) == 0 {
                    c["client_id"] = json!("c2");
                    c["aud"] = json!("c2");
                }
                if rnd(3) == 0 {
                    c["cognito:groups"] = json!(["admins"]);
                }
                if rnd(4) == 0 {
                    c["scope"] = json!("api/write");
                }
                match rnd(5) {
                    0 => issuer().mint("k2", &c),
                    1 => issuer().mint_as("k1", "k2", &c),
                    2 => other_issuer().mint("b1", &c),
                    _ => issuer().mint("k1", &c),
                }
            })
            .collect();
        let paths = ["/api/x", "/admin/x", "/write/x", "/ids/x", "/opt/x"];
        let p = policy();
        for _ in 0..600 {
            let token = &tokens[usize::try_from(rnd(tokens.len() as u64)).unwrap_or(0)];
            let path = paths[usize::try_from(rnd(paths.len() as u64)).unwrap_or(0)];
            let now = NOW + i64::try_from(rnd(1400)).unwrap_or(0) - 700;
            let snapshot = if rnd(4) == 0 { &without_k1 } else { &full };
            let req = request("GET", path, &[&format!("Bearer {token}")], &[]);
            let plain = auth::authorize(&req, now, snapshot, &p);
            let cached = cache.authorize(&req, now, snapshot, &p);
            assert_eq!(summary(&plain), summary(&cached), "{path} at {now}");
        }
        assert!(!cache.is_empty(), "the cache was never used");
    }
}
