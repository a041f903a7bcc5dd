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

use crate::auth::Identity;

/// A cached verification.
#[derive(Debug)]
pub struct Entry {
    /// Index of the issuing pool.
    pub pool: usize,
    /// `kid` of the signing key.
    pub kid: String,
    /// Fingerprint of the signing key at verification time.
    pub key_fingerprint: u64,
    /// The verified identity.
    pub identity: Arc<Identity>,
    /// Approximate bytes held (set from the token's length at insertion).
    pub weight: u64,
}

/// Cache key: SHA-256 of the token.
pub type TokenDigest = [u8; 32];

#[derive(Clone)]
struct ByMemory;

impl Weighter<TokenDigest, Arc<Entry>> for ByMemory {
    fn weight(&self, _key: &TokenDigest, entry: &Arc<Entry>) -> u64 {
        // Claims dominate; the decoded map takes about twice its JSON size.
        entry.weight
    }
}

/// Bounded verified-token cache.
pub struct TokenCache {
    inner: Cache<TokenDigest, Arc<Entry>, ByMemory>,
    /// Smallest weight an entry is given, so that `max_bytes` also enforces
    /// `max_entries` (quick_cache bounds by weight; its item count is only a hint).
    min_weight: u64,
}

impl TokenCache {
    /// A cache holding at most `max_entries` tokens and about `max_bytes` of claims.
    #[must_use]
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let max_bytes = max_bytes.max(1);
        Self {
            inner: Cache::with_weighter(max_entries, max_bytes, ByMemory),
            min_weight: (max_bytes / max_entries as u64).max(1),
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
    pub fn insert(&self, key: TokenDigest, mut entry: Entry) {
        entry.weight = entry.weight.max(self.min_weight);
        self.inner.insert(key, Arc::new(entry));
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

    fn entry(weight: u64) -> Entry {
        let claims = crate::token::Claims::from_payload(
            serde_json::from_str(
                r#"{"iss":"i","sub":"s","exp":10,"iat":1,"token_use":"access","client_id":"c"}"#,
            )
            .expect("json"),
        )
        .expect("claims");
        Entry {
            pool: 0,
            kid: "k".into(),
            key_fingerprint: 1,
            identity: Arc::new(Identity {
                pool: "p".into(),
                claims,
                rendered: std::sync::OnceLock::new(),
            }),
            weight,
        }
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
}
