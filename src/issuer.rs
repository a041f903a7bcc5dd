//! Development issuer: RSA keys generated at start-up that sign Cognito-shaped tokens
//! and publish a JWKS. Used by the `demo` command and by tests; nothing in a normal
//! `run` creates one, so it can never mint tokens a production sidecar accepts.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::jwks::KeySet;

/// Key generation or signing failed.
#[derive(Debug, thiserror::Error)]
#[error("development issuer key operation failed")]
pub struct IssuerError;

/// A set of freshly generated RS256 keys that can sign tokens.
pub struct DevIssuer {
    keys: Vec<(String, KeyPair)>,
    rng: SystemRandom,
}

impl DevIssuer {
    /// Generates one RSA-2048 key per `kid`.
    ///
    /// # Errors
    /// [`IssuerError`] if key generation fails.
    pub fn generate(kids: &[&str]) -> Result<Self, IssuerError> {
        let keys = kids
            .iter()
            .map(|k| {
                Ok((
                    (*k).to_owned(),
                    KeyPair::generate(KeySize::Rsa2048).map_err(|_| IssuerError)?,
                ))
            })
            .collect::<Result<_, IssuerError>>()?;
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    fn key(&self, kid: &str) -> Option<&KeyPair> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, kp)| kp)
    }

    /// The public keys as a JWKS document, shaped like Cognito's.
    #[must_use]
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(kid, kp)| {
                let pk = kp.public_key();
                json!({
                    "alg": "RS256",
                    "e": URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero()),
                    "kid": kid,
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero()),
                    "use": "sig",
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The public keys as a [`KeySet`].
    #[must_use]
    pub fn key_set(&self) -> KeySet {
        let comps: Vec<(String, Vec<u8>, Vec<u8>)> = self
            .keys
            .iter()
            .map(|(kid, kp)| {
                let pk = kp.public_key();
                (
                    kid.clone(),
                    pk.modulus().big_endian_without_leading_zero().to_vec(),
                    pk.exponent().big_endian_without_leading_zero().to_vec(),
                )
            })
            .collect();
        KeySet::from_components(
            comps
                .iter()
                .map(|(k, n, e)| (k.as_str(), n.as_slice(), e.as_slice())),
        )
    }

    /// Signs `claims` with key `kid` under a `{"alg":"RS256","kid":kid}` header.
    /// Returns an empty string if `kid` is unknown (tests treat that as a bug).
    #[must_use]
    pub fn mint(&self, kid: &str, claims: &Value) -> String {
        self.mint_as(kid, kid, claims)
    }

    /// Signs with key `signing_kid` but names `header_kid` in the header.
    #[must_use]
    pub fn mint_as(&self, header_kid: &str, signing_kid: &str, claims: &Value) -> String {
        self.sign_parts(
            signing_kid,
            &json!({"alg": "RS256", "kid": header_kid}),
            claims,
        )
    }

    /// Signs with the first key under an arbitrary header (for attack tests).
    #[must_use]
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let Some((kid, _)) = self.keys.first() else {
            return String::new();
        };
        self.sign_parts(kid, header, claims)
    }

    /// Signs raw header and payload JSON text (for duplicate-member tests).
    #[must_use]
    pub fn mint_raw(&self, kid: &str, header_json: &str, payload_json: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(payload_json)
        );
        let Some(kp) = self.key(kid) else {
            return String::new();
        };
        let mut sig = vec![0; kp.public_modulus_len()];
        if kp
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .is_err()
        {
            return String::new();
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn sign_parts(&self, kid: &str, header: &Value, claims: &Value) -> String {
        self.mint_raw(kid, &header.to_string(), &claims.to_string())
    }
}
