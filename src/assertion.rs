//! The signed identity for backends that verify (`[assertion]`): besides the plain
//! identity headers, a short-lived ES256 JWT the sidecar signs itself, and the JWKS of
//! its public keys that the admin port serves at `/.well-known/jwks.json`. A backend, or
//! a mesh hop in between, can then check that an identity came through the sidecar even
//! when it cannot be bound to loopback.
//!
//! A [`Signer`] belongs to one configuration (one `Shared`); the [`KeyRing`] outlives
//! configurations (it lives in `reload::Live`). Each configuration with `[assertion]`
//! installs its key in the ring: a generated one (new at start-up and on every reload)
//! or the one read from `key_file` (the same `kid` across restarts). The key it replaces
//! stays published for `lifetime_seconds` after its last signature, so assertions
//! already in flight when a reload rotates the key keep verifying; the ring holds at
//! most [`MAX_KEYS`] keys.
//!
//! Claims (all signed by the sidecar; the original token is not included):
//!
//! | claim | value |
//! |---|---|
//! | `iss`, `aud` | `assertion.issuer`, `assertion.audience` |
//! | `sub` | the verified token's `sub` |
//! | `iat`, `nbf`, `exp` | now, now, now + `lifetime_seconds` (never past the token's own `exp`) |
//! | `jti` | fresh random, per assertion |
//! | `token_use`, `client_id`, `pool` | `id`/`access`, the app client, the verifying pool's name |
//! | `username` | `cognito:username` (ID) / `username` (access), when present |
//! | `groups` | `cognito:groups`, always an array (the generic name mesh RBAC reads) |
//! | `scope` | access tokens' scopes, space-separated, when there are any |
//! | `original_jti`, `origin_jti` | the verified token's `jti` / `origin_jti`, when present |

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::auth::Identity;
use crate::config::AssertionSettings;

/// Most keys a [`KeyRing`] publishes: the current one and three retired ones. More
/// reloads than that within `lifetime_seconds` drop the oldest retired key early.
pub const MAX_KEYS: usize = 4;

/// Why a signing key could not be set up (the configuration is not installed).
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The key from `key_file` was rejected (it was checked at load: changed since?).
    #[error("assertion key rejected: {0}")]
    Key(String),
    /// Key generation failed.
    #[error("assertion key could not be generated")]
    Generate,
}

/// A public key as the JWKS publishes it, with the facts that decide how long.
#[derive(Debug)]
struct Published {
    kid: String,
    jwk: Value,
    /// `lifetime_seconds` of the configuration that signs with it.
    lifetime: i64,
    /// Unix time of its latest signature (a request admitted under the previous
    /// configuration may still sign with it just after a reload).
    last_signed: AtomicI64,
}

#[derive(Debug)]
struct Slot {
    key: Arc<Published>,
    /// When a newer configuration replaced it; `None`: the current key.
    retired: Option<i64>,
}

impl Slot {
    /// Current, or retired and an assertion it signed may still be unexpired.
    fn live(&self, now: i64) -> bool {
        self.retired.is_none_or(|retired| {
            let last = retired.max(self.key.last_signed.load(Ordering::Relaxed));
            now <= last.saturating_add(self.key.lifetime)
        })
    }
}

/// The signing keys of the current and recent configurations, newest first. Kept
/// across reloads (in `reload::Live`); locked only briefly, never across an `.await`.
#[derive(Debug, Default)]
pub struct KeyRing {
    slots: Mutex<Vec<Slot>>,
}

impl KeyRing {
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `key` the current key: the previous current one is retired at `now`, a
    /// slot with the same `kid` (the same `key_file` again) is replaced, and keys past
    /// their time or beyond [`MAX_KEYS`] are dropped.
    fn install(&self, key: Arc<Published>, now: i64) {
        let mut slots = self.lock();
        slots.retain(|s| s.key.kid != key.kid);
        for s in slots.iter_mut() {
            s.retired.get_or_insert(now);
        }
        slots.retain(|s| s.live(now));
        slots.insert(0, Slot { key, retired: None });
        slots.truncate(MAX_KEYS);
    }

    /// Retires the current key (a configuration without `[assertion]` was installed).
    pub fn retire_current(&self, now: i64) {
        for s in self.lock().iter_mut() {
            s.retired.get_or_insert(now);
        }
    }

    /// The JWKS document (`{"keys":[...]}`): the current key, then retired keys whose
    /// assertions may still be unexpired at `now`.
    #[must_use]
    pub fn document(&self, now: i64) -> String {
        let keys: Vec<Value> = self
            .lock()
            .iter()
            .filter(|s| s.live(now))
            .map(|s| s.key.jwk.clone())
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// `kid`s published at `now`, newest first.
    #[must_use]
    pub fn kids(&self, now: i64) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|s| s.live(now))
            .map(|s| s.key.kid.clone())
            .collect()
    }
}

/// The RFC 7638 thumbprint of a P-256 public key: its `kid`, and its JWK.
fn public_jwk(pair: &EcdsaKeyPair) -> Result<(String, Value), AssertionError> {
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key().as_ref();
    let (Some(&4), Some(x), Some(y), 65) = (
        point.first(),
        point.get(1..33),
        point.get(33..65),
        point.len(),
    ) else {
        return Err(AssertionError::Key(
            "not an uncompressed P-256 point".into(),
        ));
    };
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    // RFC 7638: the required members only, in lexical order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": kid, "alg": "ES256", "use": "sig",
    });
    Ok((kid, jwk))
}

/// Signs assertions for one configuration.
#[derive(Debug)]
pub struct Signer {
    pair: EcdsaKeyPair,
    key: Arc<Published>,
    /// The encoded JOSE header (`alg`, `kid`, `typ`), the same for every assertion.
    jose_b64: String,
    header: HeaderName,
    issuer: String,
    audience: String,
    lifetime: i64,
    ring: Arc<KeyRing>,
}

impl Signer {
    /// Loads (from `settings.key`) or generates the signing key and installs it in
    /// `ring` as the current key.
    ///
    /// # Errors
    /// [`AssertionError`] if the key is rejected or cannot be generated; `ring` is then
    /// unchanged.
    pub fn install(
        settings: &AssertionSettings,
        ring: &Arc<KeyRing>,
        now: i64,
    ) -> Result<Self, AssertionError> {
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pair = match &settings.key {
            Some(key) => EcdsaKeyPair::from_private_key_der(alg, key.der())
                .map_err(|e| AssertionError::Key(e.to_string()))?,
            None => EcdsaKeyPair::generate(alg).map_err(|_| AssertionError::Generate)?,
        };
        let (kid, jwk) = public_jwk(&pair)?;
        let jose = json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string();
        let lifetime = i64::try_from(settings.lifetime_seconds).unwrap_or(i64::MAX);
        let key = Arc::new(Published {
            kid,
            jwk,
            lifetime,
            last_signed: AtomicI64::new(now),
        });
        ring.install(Arc::clone(&key), now);
        Ok(Self {
            pair,
            key,
            jose_b64: URL_SAFE_NO_PAD.encode(jose),
            header: settings.header.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            lifetime,
            ring: Arc::clone(ring),
        })
    }

    /// The `kid` this signer signs with.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.key.kid
    }

    /// The JWKS document of the ring this signer belongs to (see [`KeyRing::document`]).
    #[must_use]
    pub fn key_set(&self, now: i64) -> String {
        self.ring.document(now)
    }

    /// The claims of an assertion for `id` signed at `now`, with `jti`.
    fn claims(&self, id: &Identity, now: i64, jti: String) -> Map<String, Value> {
        let c = &id.claims;
        // Never outlive the token it vouches for (one second for a token admitted
        // within the pool's leeway).
        let exp = now
            .saturating_add(self.lifetime)
            .min(c.exp.max(now.saturating_add(1)));
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("iss", self.issuer.clone().into());
        put("aud", self.audience.clone().into());
        put("sub", c.sub.clone().into());
        put("iat", now.into());
        put("nbf", now.into());
        put("exp", exp.into());
        put("jti", jti.into());
        put("token_use", c.token_use.as_str().into());
        put("client_id", c.client_id.clone().into());
        put("pool", id.pool.clone().into());
        if let Some(u) = &c.username {
            put("username", u.clone().into());
        }
        put("groups", c.groups.clone().into());
        if !c.scopes.is_empty() {
            let scopes: Vec<&str> = c.scopes.iter().map(String::as_str).collect();
            put("scope", scopes.join(" ").into());
        }
        for (from, to) in [("jti", "original_jti"), ("origin_jti", "origin_jti")] {
            if let Some(Value::String(v)) = c.raw.get(from) {
                put(to, v.clone().into());
            }
        }
        m
    }

    /// A compact JWS asserting `id`, signed at `now`; `None` only if the system's
    /// random source or the signature fails.
    #[must_use]
    pub fn sign(&self, id: &Identity, now: i64) -> Option<String> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).ok()?;
        let claims = self.claims(id, now, URL_SAFE_NO_PAD.encode(jti));
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).ok()?);
        let signing_input = format!("{}.{payload}", self.jose_b64);
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .ok()?;
        self.key.last_signed.fetch_max(now, Ordering::Relaxed);
        Some(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Sets the assertion header for `id` (the client's copy was stripped before).
    pub fn inject(&self, headers: &mut HeaderMap, id: &Identity, now: i64) {
        if let Some(v) = self
            .sign(id, now)
            .and_then(|jws| HeaderValue::try_from(jws).ok())
        {
            headers.insert(self.header.clone(), v);
        }
    }

    /// The header the assertion travels in.
    #[must_use]
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Claims;

    const NOW: i64 = 1_700_000_000;

    fn settings(lifetime: u64) -> AssertionSettings {
        AssertionSettings {
            header: HeaderName::from_static("x-auth-assertion"),
            issuer: "sidecar".into(),
            audience: "orders".into(),
            lifetime_seconds: lifetime,
            key_file: None,
            key: None,
        }
    }

    fn identity(extra: Value) -> Identity {
        let mut payload = json!({
            "iss": "i", "sub": "s-1", "exp": NOW + 600, "iat": NOW - 10,
            "token_use": "access", "client_id": "c", "scope": "b a", "username": "alice",
            "cognito:groups": ["admins", "users"], "jti": "tok-1",
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            payload[k] = v.clone();
        }
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        Identity {
            pool: "main".into(),
            claims: Claims::from_payload(payload).expect("claims"),
            rendered: std::sync::OnceLock::new(),
        }
    }

    fn decode(jws: &str) -> (Value, Value) {
        let mut parts = jws.split('.');
        let mut next = || -> Value {
            let bytes = URL_SAFE_NO_PAD
                .decode(parts.next().expect("segment"))
                .expect("b64");
            serde_json::from_slice(&bytes).expect("json")
        };
        (next(), next())
    }

    #[test]
    fn an_assertion_carries_the_documented_claims_and_verifies_with_the_published_key() {
        let ring = Arc::new(KeyRing::default());
        let signer = Signer::install(&settings(60), &ring, NOW).expect("signer");
        let id = identity(json!({"origin_jti": "o-1"}));
        let jws = signer.sign(&id, NOW).expect("signed");
        let (header, claims) = decode(&jws);
        assert_eq!(
            header,
            json!({"alg": "ES256", "kid": signer.kid(), "typ": "JWT"})
        );
        assert_eq!(claims["iss"], "sidecar");
        assert_eq!(claims["aud"], "orders");
        assert_eq!(claims["sub"], "s-1");
        assert_eq!(claims["exp"], NOW + 60);
        assert_eq!((&claims["iat"], &claims["nbf"]), (&json!(NOW), &json!(NOW)));
        assert_eq!(claims["groups"], json!(["admins", "users"]));
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["original_jti"], "tok-1");
        assert_eq!(claims["origin_jti"], "o-1");
        assert_eq!(claims["pool"], "main");
        assert_eq!(claims["username"], "alice");
        assert_eq!(claims["jti"].as_str().map(str::len), Some(22));
        let doc: Value = serde_json::from_str(&signer.key_set(NOW)).expect("json");
        let jwk = &doc["keys"][0];
        assert_eq!(jwk["kid"], signer.kid());
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            jwk["x"].as_str().expect("x"),
            jwk["y"].as_str().expect("y"),
        )
        .expect("key");
        let (input, sig) = jws.rsplit_once('.').expect("jws");
        assert!(
            jsonwebtoken::crypto::verify(
                sig,
                input.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::ES256
            )
            .expect("verify")
        );
    }

    #[test]
    fn each_assertion_has_its_own_jti_and_never_outlives_the_token() {
        let ring = Arc::new(KeyRing::default());
        let signer = Signer::install(&settings(3600), &ring, NOW).expect("signer");
        let id = identity(json!({}));
        let (_, a) = decode(&signer.sign(&id, NOW).expect("a"));
        let (_, b) = decode(&signer.sign(&id, NOW).expect("b"));
        assert_ne!(a["jti"], b["jti"]);
        assert_eq!(a["exp"], NOW + 600);
        let (_, late) = decode(&signer.sign(&id, NOW + 605).expect("late"));
        assert_eq!(late["exp"], NOW + 606);
    }

    #[test]
    fn absent_claims_are_omitted_and_groups_is_always_an_array() {
        let ring = Arc::new(KeyRing::default());
        let signer = Signer::install(&settings(60), &ring, NOW).expect("signer");
        let mut id = identity(json!({}));
        id.claims.username = None;
        id.claims.groups.clear();
        id.claims.scopes.clear();
        id.claims.raw.remove("jti");
        let (_, c) = decode(&signer.sign(&id, NOW).expect("signed"));
        for absent in ["username", "scope", "original_jti", "origin_jti"] {
            assert!(c.get(absent).is_none(), "{absent}");
        }
        assert_eq!(c["groups"], json!([]));
    }

    #[test]
    fn a_rotated_key_stays_published_for_its_lifetime_after_its_last_signature() {
        let ring = Arc::new(KeyRing::default());
        let old = Signer::install(&settings(60), &ring, NOW).expect("old");
        let new = Signer::install(&settings(60), &ring, NOW + 10).expect("new");
        assert_ne!(old.kid(), new.kid());
        assert_eq!(ring.kids(NOW + 10), [new.kid(), old.kid()]);
        // A request admitted under the old configuration signs just after the reload.
        old.sign(&identity(json!({})), NOW + 12).expect("signed");
        assert_eq!(ring.kids(NOW + 72), [new.kid(), old.kid()]);
        assert_eq!(ring.kids(NOW + 73), [new.kid()]);
    }

    #[test]
    fn the_ring_is_bounded_and_the_same_key_is_not_listed_twice() {
        let ring = Arc::new(KeyRing::default());
        let signers: Vec<Signer> = (0..6)
            .map(|i| Signer::install(&settings(60), &ring, NOW + i).expect("signer"))
            .collect();
        let kids = ring.kids(NOW + 6);
        assert_eq!(kids.len(), MAX_KEYS);
        assert_eq!(kids[0], signers[5].kid());
        let mut file = settings(60);
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|p| p.to_pkcs8v1())
            .expect("pkcs8");
        file.key = Some(crate::config::AssertionKey::for_tests(pkcs8.as_ref()));
        let a = Signer::install(&file, &ring, NOW + 7).expect("a");
        let b = Signer::install(&file, &ring, NOW + 8).expect("b");
        assert_eq!(a.kid(), b.kid());
        let kids = ring.kids(NOW + 8);
        assert_eq!(kids.iter().filter(|k| *k == a.kid()).count(), 1);
        ring.retire_current(NOW + 9);
        assert_eq!(ring.kids(NOW + 9 + 61), Vec::<String>::new());
    }
}
