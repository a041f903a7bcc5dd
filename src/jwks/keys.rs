//! PURE: JWKS documents to key sets. Only RSA signing keys of 2048 to 8192 bits with a
//! sane exponent and kid are kept; everything else is dropped and counted. A key set
//! remembers a fingerprint per kid, so a cached verification can tell whether the key
//! that made it is still the one published. Each key is parsed once, pinned to RS256
//! (PKCS#1 v1.5, SHA-256, 2048-8192 bits), so a verification does not rebuild it.

use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::token::MAX_KID_BYTES;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

/// Why a JWKS document was not used. The previous keys stay in force.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Transport failure or timeout (the URL left out: it may carry credentials).
    #[error("fetch failed: {0}")]
    Fetch(#[source] reqwest::Error),
    /// Non-200 status (redirects are never followed).
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// Body larger than `jwks.max_bytes`.
    #[error("JWKS larger than {0} bytes")]
    TooLarge(usize),
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document")]
    NotJwks,
    /// No key passed the checks.
    #[error("no usable RS256 signing key in JWKS ({skipped} skipped)")]
    NoUsableKeys {
        /// Keys that failed the checks.
        skipped: usize,
    },
}

impl JwksError {
    /// Metric label for this failure.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Fetch(_) => "fetch_error",
            Self::Status(_) => "bad_status",
            Self::TooLarge(_) => "too_large",
            Self::NotJwks => "invalid",
            Self::NoUsableKeys { .. } => "no_usable_keys",
        }
    }
}

/// The verification keys of one pool, by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, (ParsedPublicKey, u64)>,
}

/// A short fingerprint of an RSA public key (first 8 bytes of SHA-256 of n and e).
fn fingerprint(n: &[u8], e: &[u8]) -> u64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(n);
    ctx.update(b".");
    ctx.update(e);
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeySet {
    /// The key with this `kid`, if any (parsed once, for RS256 only).
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&ParsedPublicKey> {
        self.keys.get(kid).map(|(k, _)| k)
    }

    /// The fingerprint of the key with this `kid`, if any (detects a kid reused for a
    /// different key).
    #[must_use]
    pub fn fingerprint(&self, kid: &str) -> Option<u64> {
        self.keys.get(kid).map(|(_, fp)| *fp)
    }

    /// Number of usable keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Builds a key set from `(kid, modulus, exponent)` big-endian components
    /// (used by the demo issuer and tests); applies the same strength checks.
    #[must_use]
    pub fn from_components<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a [u8], &'a [u8])>,
    ) -> Self {
        let mut set = Self::default();
        for (kid, n, e) in keys {
            if let Some(key) = rs256_key(n, e) {
                set.keys.insert(kid.to_owned(), key);
            }
        }
        set
    }
}

/// A parsed JWKS: the usable keys and how many entries were dropped.
#[derive(Debug)]
pub struct ParsedJwks {
    /// Usable keys.
    pub keys: KeySet,
    /// Entries dropped (wrong type, weak, duplicate kid, malformed).
    pub skipped: usize,
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn rsa_strong_enough(n: &[u8], e: &[u8]) -> bool {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = match n.first() {
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) && e == [1, 0, 1]
}

/// The RS256 verification key and fingerprint for big-endian `(n, e)`, if the key is
/// strong enough and aws-lc accepts it.
fn rs256_key(n: &[u8], e: &[u8]) -> Option<(ParsedPublicKey, u64)> {
    if !rsa_strong_enough(n, e) {
        return None;
    }
    let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
    let parsed = RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    Some((parsed, fingerprint(n, e)))
}

/// Parses a JWKS document, keeping only RSA signing keys fit for RS256: `kty` RSA,
/// `use` absent or `sig`, `alg` absent or `RS256`, a `kid` of at most 256 bytes,
/// modulus of 2048-8192 bits, exponent 65537. Keys sharing a `kid` are all dropped.
///
/// # Errors
/// [`JwksError::NotJwks`] or [`JwksError::NoUsableKeys`].
pub fn parse_jwks(body: &[u8]) -> Result<ParsedJwks, JwksError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJwks)?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(JwksError::NotJwks);
    };
    let mut skipped = 0;
    let mut keys: HashMap<String, (ParsedPublicKey, u64)> = HashMap::new();
    let mut dup: Vec<String> = Vec::new();
    for entry in entries {
        match parse_jwk(entry) {
            Some((kid, key)) => {
                if keys.insert(kid.clone(), key).is_some() {
                    dup.push(kid);
                }
            }
            None => skipped += 1,
        }
    }
    for kid in dup {
        if keys.remove(&kid).is_some() {
            skipped += 2;
        } else {
            skipped += 1;
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys { skipped });
    }
    Ok(ParsedJwks {
        keys: KeySet { keys },
        skipped,
    })
}

fn parse_jwk(entry: &Value) -> Option<(String, (ParsedPublicKey, u64))> {
    let obj = entry.as_object()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str);
    if s("kty")? != "RSA" {
        return None;
    }
    if obj.contains_key("use") && s("use")? != "sig" {
        return None;
    }
    if obj.contains_key("alg") && s("alg")? != "RS256" {
        return None;
    }
    let kid = s("kid")?;
    if kid.is_empty() || kid.len() > MAX_KID_BYTES {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode(s("n")?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(s("e")?).ok()?;
    Some((kid.to_owned(), rs256_key(&n, &e)?))
}
