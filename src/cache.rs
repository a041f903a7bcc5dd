//! The verified-token cache: a bounded (entries and bytes) concurrent map from the
//! SHA-256 of a whole token to the identity its verification produced. It only saves
//! the parse and the RSA check: on every hit the caller re-checks that the signing key
//! is still in the issuing pool's current key set (same kid, same key) and re-runs the
//! time and pool checks against `now`, so a hit never admits what a miss would refuse.
//! A configuration reload builds a new, empty cache.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use http::request::Parts;

use crate::auth::{self, Decision, Policy, Remembered};
use crate::jwks::KeysSnapshot;

/// A cached verification.
pub type Entry = Remembered;

/// Cache key: SHA-256 of the token.
pub type TokenDigest = [u8; 32];

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
        }
    }

    /// The cache key of a token.
    #[must_use]
    pub fn digest(token: &str) -> TokenDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        out
    }

    /// The entry for a token digest, if cached.
    #[must_use]
    pub fn get(&self, key: &TokenDigest) -> Option<Arc<Entry>> {
        self.inner.get(key)
    }

    /// Caches a successful verification.
    pub fn insert(&self, key: TokenDigest, entry: Arc<Entry>) {
        self.inner.insert(key, entry);
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
            let digest = Self::digest(token);
            let entry = self.get(&digest);
            looked_up.set(Some((digest, entry.is_some())));
            entry
        };
        let decision = auth::authorize_with(parts, now, keys, policy, &earlier);
        if let Some((digest, was_cached)) = looked_up.get() {
            match &decision {
                Decision::Allow(a) => {
                    if let Some(learned) = &a.learned {
                        self.insert(digest, Arc::clone(learned));
                    }
                }
                Decision::Deny(d) if was_cached && !d.is_route_refusal() => self.remove(&digest),
                Decision::Deny(_) => {}
            }
        }
        decision
    }

    /// Drops an entry (its key left the JWKS, or the token expired).
    pub fn remove(&self, key: &TokenDigest) {
        self.inner.remove(key);
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

    fn entry(weight: u64) -> Arc<Entry> {
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
            weight,
        })
    }

    #[test]
    fn the_entry_limit_holds_even_for_small_tokens() {
        let cache = TokenCache::new(16, 1 << 20);
        for i in 0..1000u32 {
            cache.insert(TokenCache::digest(&i.to_string()), entry(10));
        }
        assert!(cache.len() <= 16, "{} entries", cache.len());
    }

    #[test]
    fn the_byte_limit_holds_for_large_tokens() {
        let cache = TokenCache::new(10_000, 64 * 1024);
        for i in 0..1000u32 {
            cache.insert(TokenCache::digest(&i.to_string()), entry(8 * 1024));
        }
        assert!(cache.len() <= 8, "{} entries", cache.len());
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
