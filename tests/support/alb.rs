//! An Application Load Balancer stand-in: [`AlbSigner`] holds a P-256 key generated at
//! test time and signs `x-amzn-oidc-data` values the way ALB does (claims in the JWS
//! header, optional `=` padding); [`AlbKeyServer`] serves its public key as a PEM at
//! `/<kid>` like the ELB public-key endpoint, can be told to fail, to be slow, and
//! counts the fetches it answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The load balancer the tests trust.
pub const ALB_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/test-alb/50dc6c495c0c9188";

/// Another load balancer (same account and region).
pub const OTHER_ALB_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/other-alb/0123456789abcdef";

/// The IdP issuer ALB names in its header.
pub const ALB_ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123";

/// The app client ALB names in its header.
pub const ALB_CLIENT: &str = "albclient123";

/// The fixed DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A load balancer's signing key and the `kid` it publishes it under.
pub struct AlbSigner {
    pub kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl AlbSigner {
    /// A fresh P-256 key under `kid`.
    pub fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            rng: SystemRandom::new(),
        }
    }

    /// The public key as the ELB endpoint serves it: a `PUBLIC KEY` PEM (SPKI DER).
    pub fn public_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The JWS header ALB writes: `alg`, `kid`, `signer`, `iss`, `client`, `exp`.
    pub fn header(&self, signer: &str, exp: i64) -> Value {
        json!({
            "typ": "JWT",
            "kid": self.kid,
            "alg": "ES256",
            "iss": ALB_ISS,
            "client": ALB_CLIENT,
            "signer": signer,
            "exp": exp,
        })
    }

    /// Signs `header.payload` (both JSON, any members) and encodes the three
    /// segments, with `=` padding when `padded`.
    pub fn sign(&self, header: &Value, payload: &Value, padded: bool) -> String {
        let enc = |b: &[u8]| {
            if padded {
                URL_SAFE.encode(b)
            } else {
                URL_SAFE_NO_PAD.encode(b)
            }
        };
        let input = format!(
            "{}.{}",
            enc(header.to_string().as_bytes()),
            enc(payload.to_string().as_bytes())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", enc(sig.as_ref()))
    }

    /// An `x-amzn-oidc-data` value for `signer`, expiring at `exp`, carrying `payload`.
    pub fn data(&self, signer: &str, exp: i64, payload: &Value) -> String {
        self.sign(&self.header(signer, exp), payload, false)
    }
}

/// Cognito user-info claims as ALB forwards them (`email_verified` as a string).
pub fn alb_userinfo(sub: &str, username: &str, email: &str, exp: i64) -> Value {
    json!({
        "sub": sub,
        "email_verified": "true",
        "email": email,
        "username": username,
        "exp": exp,
        "iss": ALB_ISS,
    })
}

/// An ELB public-key endpoint: `/<kid>` -> PEM (404 for other kids).
pub struct AlbKeyServer {
    pub addr: SocketAddr,
    pems: Arc<Mutex<HashMap<String, String>>>,
    failing: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    hits: Arc<AtomicUsize>,
}

impl AlbKeyServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pems: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let hits = Arc::new(AtomicUsize::new(0));
        let (p, f, d, h) = (
            pems.clone(),
            failing.clone(),
            delay_ms.clone(),
            hits.clone(),
        );
        cognito_sidecar::demo::spawn_server(listener, move |req| {
            let (p, f, d, h) = (p.clone(), f.clone(), d.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let delay = d.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                let kid = req.uri().path().trim_start_matches('/').to_owned();
                let (status, body) = if f.load(Ordering::SeqCst) {
                    (StatusCode::INTERNAL_SERVER_ERROR, "oops".to_owned())
                } else {
                    match p.lock().unwrap().get(&kid) {
                        Some(pem) => (StatusCode::OK, pem.clone()),
                        None => (StatusCode::NOT_FOUND, "no such key".to_owned()),
                    }
                };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = status;
                r
            }
        });
        Self {
            addr,
            pems,
            failing,
            delay_ms,
            hits,
        }
    }

    /// The `public_key_url` to configure (ends with `/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves `signer`'s public key under its `kid`.
    pub fn publish(&self, signer: &AlbSigner) {
        self.publish_pem(&signer.kid, &signer.public_pem());
    }

    /// Serves `body` under `kid`.
    pub fn publish_pem(&self, kid: &str, body: &str) {
        self.pems
            .lock()
            .unwrap()
            .insert(kid.to_owned(), body.to_owned());
    }

    /// Answers every request with 500 while `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
