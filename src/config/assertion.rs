//! `[assertion]`: a signed identity for backends that verify (opt-in). Typed settings,
//! defaults and checks. A `key_file` is read and parsed when the configuration is
//! loaded, so a missing, unreadable or wrong-curve key is a configuration problem (the
//! old configuration keeps serving), never a failure at start-up or reload.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use http::HeaderName;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::IdentityConfig;
use super::raw::RawAssertion;
use super::validate::{Root, Validator};

/// A P-256 private key read from `assertion.key_file` (DER, PKCS#8 or SEC1, already
/// checked to parse): compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AssertionKey(Vec<u8>);

impl AssertionKey {
    /// The key's DER bytes (PKCS#8 `PrivateKeyInfo` or SEC1 `ECPrivateKey`).
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// A key from DER bytes, unchecked (unit tests elsewhere in the crate).
    #[cfg(test)]
    pub(crate) fn for_tests(der: &[u8]) -> Self {
        Self(der.to_vec())
    }
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionKey(<redacted>)")
    }
}

/// The signed identity the backend receives besides the plain identity headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSettings {
    /// Request header carrying the assertion (always stripped from clients).
    pub header: HeaderName,
    /// `iss` of every assertion: the sidecar's name.
    pub issuer: String,
    /// `aud` of every assertion: the backend's name.
    pub audience: String,
    /// Seconds from `iat` to `exp` (never past the verified token's own `exp`).
    pub lifetime_seconds: u64,
    /// Where the signing key was read from; `None`: a key is generated at start-up and
    /// on every reload.
    pub key_file: Option<PathBuf>,
    /// The key read from `key_file`.
    pub key: Option<AssertionKey>,
}

/// Defaults and bounds of the `[assertion]` keys.
impl AssertionSettings {
    /// `header`.
    pub const DEFAULT_HEADER: &'static str = "X-Auth-Assertion";
    /// `lifetime_seconds`.
    pub const DEFAULT_LIFETIME_SECONDS: u64 = 60;
    /// Largest `lifetime_seconds` (an hour: Cognito's shortest token lifetime is five
    /// minutes, an assertion is meant to be used at once).
    pub const MAX_LIFETIME_SECONDS: u64 = 3600;
}

/// Reads and checks a PEM P-256 private key.
fn read_key(path: &Path) -> Result<AssertionKey, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{shown} cannot be read: {e}"))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{shown} holds no PEM private key"))?;
    if matches!(der, PrivateKeyDer::Pkcs1(_)) {
        return Err(format!(
            "{shown} is an RSA key; ES256 needs a P-256 EC key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)"
        ));
    }
    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_der())
        .map_err(|_| format!("{shown} is not a P-256 (ES256) private key"))?;
    Ok(AssertionKey(der.secret_der().to_vec()))
}

/// A non-empty string of printable ASCII (a name both ends agree on, compared exactly).
fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Validator {
    /// `[assertion]` (absent: no assertion, `Some(None)`). `identity` is the parsed
    /// `[identity]`, whose header names the assertion's header may not reuse.
    pub(super) fn assertion(
        &mut self,
        root: &Root,
        identity: Option<&IdentityConfig>,
    ) -> Option<Option<AssertionSettings>> {
        let Some(value) = root.get("assertion") else {
            return Some(None);
        };
        let raw = self.get::<RawAssertion>("assertion", Some(value))?;
        let before = self.problems.len();
        let header = self.header_name(
            "assertion.header",
            raw.header,
            AssertionSettings::DEFAULT_HEADER,
        );
        if header.is_none() && before == self.problems.len() {
            self.problem("assertion.header", "must not be empty");
        }
        if let Some(h) = &header {
            if crate::header_names::is_hop_by_hop_or_framing(h) || *h == http::header::HOST {
                self.problem(
                    "assertion.header",
                    format!("{h} cannot carry the assertion"),
                );
            } else if identity.is_some_and(|id| id.managed_headers().contains(h)) {
                self.problem(
                    "assertion.header",
                    format!("{h} is already an identity header"),
                );
            }
        }
        let mut text = |key: &str, value: Option<String>| match value {
            None => {
                self.problem(key, "missing required key");
                None
            }
            Some(v) if !printable(&v) => {
                self.problem(key, "must be non-empty printable ASCII");
                None
            }
            Some(v) => Some(v),
        };
        let issuer = text("assertion.issuer", raw.issuer);
        let audience = text("assertion.audience", raw.audience);
        let lifetime_seconds = raw
            .lifetime_seconds
            .unwrap_or(AssertionSettings::DEFAULT_LIFETIME_SECONDS);
        if !(1..=AssertionSettings::MAX_LIFETIME_SECONDS).contains(&lifetime_seconds) {
            self.problem(
                "assertion.lifetime_seconds",
                format!("must be 1 to {}", AssertionSettings::MAX_LIFETIME_SECONDS),
            );
        }
        let key = match &raw.key_file {
            None => None,
            Some(path) => match read_key(path) {
                Ok(key) => Some(key),
                Err(e) => {
                    self.problem("assertion.key_file", e);
                    None
                }
            },
        };
        (self.problems.len() == before).then(|| {
            Some(AssertionSettings {
                header: header?,
                issuer: issuer?,
                audience: audience?,
                lifetime_seconds,
                key_file: raw.key_file,
                key,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};

    const OK: &str = "[assertion]\nissuer = \"sidecar\"\naudience = \"orders\"";

    #[test]
    fn defaults_apply_and_the_section_is_off_without_it() {
        assert_eq!(Config::from_toml(MIN).expect("valid").assertion, None);
        let cfg = Config::from_toml(&format!("{MIN}\n{OK}")).expect("valid");
        let a = cfg.assertion.expect("on");
        assert_eq!(a.header.as_str(), "x-auth-assertion");
        assert_eq!(a.lifetime_seconds, 60);
        assert_eq!((a.key_file, a.key), (None, None));
    }

    #[test]
    fn missing_names_bad_lifetime_and_header_are_reported_by_key() {
        let p = problems(&format!(
            "{MIN}\n[assertion]\nheader = \"Content-Length\"\naudience = \"\"\nlifetime_seconds = 0"
        ));
        assert_eq!(
            p,
            [
                "assertion.header: content-length cannot carry the assertion",
                "assertion.issuer: missing required key",
                "assertion.audience: must be non-empty printable ASCII",
                "assertion.lifetime_seconds: must be 1 to 3600",
            ]
        );
        let p = problems(&format!("{MIN}\n{OK}\nheader = \"X-Auth-Sub\""));
        assert_eq!(
            p,
            ["assertion.header: x-auth-sub is already an identity header"]
        );
    }

    #[test]
    fn a_key_file_that_is_missing_or_not_p256_is_reported() {
        let p = problems(&format!("{MIN}\n{OK}\nkey_file = \"/nonexistent/k.pem\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("assertion.key_file: /nonexistent/k.pem cannot be read"),
            "{p:?}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "not a key").expect("write");
        let p = problems(&format!("{MIN}\n{OK}\nkey_file = {:?}", path));
        assert_eq!(
            p,
            [format!(
                "assertion.key_file: {} holds no PEM private key",
                path.display()
            )]
        );
    }
}
