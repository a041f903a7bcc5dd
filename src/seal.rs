//! Sealed values for browser cookies (sessions, sign-in state): AES-256-GCM with a
//! fresh random nonce per value, the value's purpose (e.g. the cookie name) bound as
//! associated data so a value sealed for one cookie never opens as another, and a key
//! list for rotation: the first key seals, every key opens. A sealed value is
//! `base64url(nonce || ciphertext || tag)`; anything that does not open (tampered,
//! foreign, truncated, sealed with a retired key) is simply `None`.
//!
//! Long values are split over numbered cookies (`name`, `name.1`, ...) so each stays
//! under the size browsers accept for one cookie.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a key list could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealKeyError {
    /// No key at all.
    #[error("no key: give one or more keys, one per line (32 bytes as 64 hex digits or base64)")]
    Empty,
    /// A line that is not 32 bytes in hex or base64.
    #[error("key {line}: not 32 bytes as 64 hex digits or base64")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
}

/// The keys that seal and open values: the first seals, all open.
pub struct SealKeys {
    keys: Vec<RandomizedNonceKey>,
}

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "SealKeys({} keys)", self.keys.len())
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect();
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .or_else(|| URL_SAFE_NO_PAD.decode(text).ok())
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .ok()
        })
        .filter(|k| k.len() == 32)
}

impl SealKeys {
    /// Reads keys, one per line (blank lines and `#` comments ignored), each 32 bytes
    /// as 64 hex digits or base64 (`openssl rand -base64 32`).
    ///
    /// # Errors
    /// [`SealKeyError`] naming the first bad line, or if there is no key.
    pub fn from_text(text: &str) -> Result<Self, SealKeyError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_key(line).ok_or(SealKeyError::Malformed { line: i + 1 })?;
            let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SealKeyError::Malformed { line: i + 1 })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(SealKeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// Seals `plaintext` for `purpose`. `None` only if the system's random source fails.
    #[must_use]
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        let mut in_out = plaintext.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut in_out)
            .ok()?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `purpose` with any of the keys.
    #[must_use]
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut in_out = body.to_vec();
            key.open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
                .ok()
                .map(|plain| plain.to_vec())
        })
    }
}

/// Splits a cookie value over `name`, `name.1`, `name.2`, ... so that no piece is longer
/// than `max` bytes.
#[must_use]
pub fn split(name: &str, value: &str, max: usize) -> Vec<(String, String)> {
    let max = max.max(1);
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    for (i, chunk) in bytes.chunks(max).enumerate() {
        let piece = String::from_utf8_lossy(chunk).into_owned();
        let n = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}.{i}")
        };
        out.push((n, piece));
    }
    if out.is_empty() {
        out.push((name.to_owned(), String::new()));
    }
    out
}

/// Joins the pieces [`split`] made, given every cookie of a request as (name, value);
/// `None` if the first piece is missing. Pieces stop at the first gap.
#[must_use]
pub fn join<'a>(
    name: &str,
    cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let mut pieces: Vec<(usize, &str)> = Vec::new();
    for (n, v) in cookies {
        if n == name {
            pieces.push((0, v));
        } else if let Some(i) = n
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i > 0)
        {
            pieces.push((i, v));
        }
    }
    pieces.sort_by_key(|(i, _)| *i);
    let mut out = String::new();
    for (expected, (i, v)) in pieces.iter().enumerate() {
        if *i != expected {
            // A duplicate or a gap: only a contiguous run from the first piece counts.
            if *i < expected {
                return None;
            }
            break;
        }
        out.push_str(v);
    }
    pieces.first().filter(|(i, _)| *i == 0).map(|_| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_and_with_a_listed_key() {
        let keys = SealKeys::from_text(K1).unwrap();
        let sealed = keys.seal("session", b"tokens").unwrap();
        assert_eq!(keys.open("session", &sealed).unwrap(), b"tokens");
        assert!(
            keys.open("state", &sealed).is_none(),
            "bound to its purpose"
        );
        let other = SealKeys::from_text(&"ab".repeat(32)).unwrap();
        assert!(other.open("session", &sealed).is_none(), "a foreign key");
        // Every bit flipped somewhere makes it not open.
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            assert!(
                keys.open("session", &URL_SAFE_NO_PAD.encode(&raw))
                    .is_none()
            );
            raw[i] ^= 1;
        }
        assert!(keys.open("session", "not base64 !").is_none());
        assert!(keys.open("session", "").is_none());
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = SealKeys::from_text(K2).unwrap();
        let sealed_before = old.seal("session", b"v").unwrap();
        let rotated = SealKeys::from_text(&format!("# new first\n{K1}\n\n{K2}\n")).unwrap();
        assert_eq!(rotated.open("session", &sealed_before).unwrap(), b"v");
        let sealed_after = rotated.seal("session", b"w").unwrap();
        assert!(old.open("session", &sealed_after).is_none());
        assert_ne!(
            rotated.seal("session", b"w").unwrap(),
            sealed_after,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn bad_key_lists_are_refused_naming_the_line() {
        assert_eq!(
            SealKeys::from_text("\n# only a comment\n").unwrap_err(),
            SealKeyError::Empty
        );
        assert_eq!(
            SealKeys::from_text(&format!("{K1}\nshort")).unwrap_err(),
            SealKeyError::Malformed { line: 2 }
        );
        assert!(format!("{:?}", SealKeys::from_text(K1).unwrap()).contains("1 keys"));
    }

    #[test]
    fn long_values_split_over_numbered_cookies_and_join_back() {
        let value = "x".repeat(9000);
        let parts = split("__Host-s", &value, 3800);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].0, "__Host-s.1");
        let cookies: Vec<(&str, &str)> = parts
            .iter()
            .rev()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain([("other", "1"), ("__Host-s.x", "junk")])
            .collect();
        assert_eq!(join("__Host-s", cookies).unwrap(), value);
        assert!(
            join("__Host-s", [("__Host-s.1", "a")]).is_none(),
            "no first piece"
        );
        assert!(
            join("__Host-s", [("__Host-s", "a"), ("__Host-s", "b")]).is_none(),
            "two first pieces"
        );
        assert_eq!(
            join("s", [("s", "a"), ("s.2", "c")]).unwrap(),
            "a",
            "a gap ends it"
        );
    }
}
