//! PURE: the `x-amzn-oidc-data` header an Application Load Balancer adds after it has
//! authenticated a user: strict parsing ([`parse_data`]), the load balancer's P-256
//! public key ([`AlbKey::from_pem`]) and verification ([`UnverifiedData::verify`]).
//!
//! The header is an ES256 JWS whose *header* names the key (`kid`), the load balancer
//! that signed it (`signer`, its ARN), the IdP (`iss`), the app client (`client`) and an
//! expiry (`exp`); the payload is the IdP's user-info claims. ALB has been seen to pad
//! its base64url segments with `=`: both forms are read, and the signature covers the
//! segments exactly as sent. The algorithm is pinned to ES256 and the key location is
//! never taken from the header (the caller fetches by `kid` from a configured URL).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use serde_json::{Map, Value};

use crate::token::{MAX_KID_BYTES, unique_object};

/// Largest `x-amzn-oidc-data` value read, in bytes.
pub const MAX_DATA_BYTES: usize = 16 * 1024;

/// Largest PEM document read as a key (a P-256 key is about 180 bytes).
const MAX_PEM_BYTES: usize = 4 * 1024;

/// The DER prefix of every P-256 SubjectPublicKeyInfo with an uncompressed point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes, 0 unused) }.
/// DER is canonical, so comparing the prefix checks both algorithm OIDs at once.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Header parameters that are never accepted: they would ask the verifier to
/// understand extensions (`crit`, `b64`, `zip`, `enc`) or to take a key from the
/// token (`jku`, `jwk`, `x5u`, `x5c`). ALB sends none of them.
const FORBIDDEN_HEADER_PARAMS: [&str; 8] =
    ["crit", "b64", "zip", "enc", "jku", "jwk", "x5u", "x5c"];

/// base64url, `=` padding optional (ALB has sent both), trailing bits rejected.
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an ALB data header or key was not accepted. Messages are fixed: they never
/// echo the header or the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlbError {
    /// Not three base64url segments of JSON objects, oversized, or a forbidden header
    /// parameter.
    #[error("malformed ALB data header")]
    Malformed,
    /// `alg` other than exactly `ES256`.
    #[error("ALB data algorithm not allowed")]
    Algorithm,
    /// `kid` missing, oversized or outside `[A-Za-z0-9-_.]`.
    #[error("missing or invalid ALB key id")]
    Kid,
    /// A required claim missing, or a claim of the wrong JSON type.
    #[error("invalid ALB data claims")]
    Claims,
    /// The signature does not verify with the key of this `kid`.
    #[error("bad ALB data signature")]
    Signature,
    /// Signed by a load balancer other than the configured one.
    #[error("ALB data signed by another load balancer")]
    WrongSigner,
    /// `exp` (header or payload) has passed, leeway included.
    #[error("ALB data expired")]
    Expired,
    /// The key endpoint does not know this `kid` (403 or 404).
    #[error("no ALB public key with this key id")]
    UnknownKid,
    /// The key endpoint failed, timed out or redirected.
    #[error("ALB public key endpoint unavailable")]
    KeyUnavailable,
    /// Too many key fetches lately (bogus `kid`s); retried once the window passes.
    #[error("ALB public key fetches throttled")]
    Throttled,
    /// The key endpoint answered with something that is not a P-256 public key PEM.
    #[error("not a P-256 public key")]
    BadKey,
}

impl AlbError {
    /// Every [`AlbError::reason`], for pre-registering metric series.
    pub const REASONS: &'static [&'static str] = &[
        "alb_malformed",
        "alb_bad_algorithm",
        "alb_bad_kid",
        "alb_invalid_claims",
        "alb_bad_signature",
        "alb_wrong_signer",
        "alb_expired",
        "alb_unknown_kid",
        "alb_key_unavailable",
        "alb_key_fetch_throttled",
        "alb_bad_key",
    ];

    /// A short snake_case label for metrics and logs.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "alb_malformed",
            Self::Algorithm => "alb_bad_algorithm",
            Self::Kid => "alb_bad_kid",
            Self::Claims => "alb_invalid_claims",
            Self::Signature => "alb_bad_signature",
            Self::WrongSigner => "alb_wrong_signer",
            Self::Expired => "alb_expired",
            Self::UnknownKid => "alb_unknown_kid",
            Self::KeyUnavailable => "alb_key_unavailable",
            Self::Throttled => "alb_key_fetch_throttled",
            Self::BadKey => "alb_bad_key",
        }
    }

    /// True when the failure is on the key endpoint's side (unreachable, throttled,
    /// garbage), not the header's: the caller may answer 503 rather than 401.
    #[must_use]
    pub fn is_unavailable(self) -> bool {
        matches!(self, Self::KeyUnavailable | Self::Throttled | Self::BadKey)
    }
}

/// True if `kid` may name an ALB key: 1 to 256 bytes of `[A-Za-z0-9-_.]`, not starting
/// with `.` (it becomes the last segment of the key URL: `.` and `..` would move it).
#[must_use]
pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_BYTES
        && !kid.starts_with('.')
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A load balancer's P-256 public key, parsed and checked once.
#[derive(Clone)]
pub struct AlbKey {
    key: ParsedPublicKey,
}

impl std::fmt::Debug for AlbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlbKey(P-256)")
    }
}

impl AlbKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM holding a P-256 SubjectPublicKeyInfo
    /// (what the ELB public-key endpoint serves). Nothing but whitespace may surround
    /// the block.
    ///
    /// # Errors
    /// [`AlbError::BadKey`] for anything else, including a point not on the curve.
    pub fn from_pem(pem: &str) -> Result<Self, AlbError> {
        if pem.len() > MAX_PEM_BYTES {
            return Err(AlbError::BadKey);
        }
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(AlbError::BadKey)?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| AlbError::BadKey)?;
        Self::from_spki_der(&der)
    }

    /// Reads a DER P-256 SubjectPublicKeyInfo with an uncompressed point.
    ///
    /// # Errors
    /// [`AlbError::BadKey`] if it is anything else.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, AlbError> {
        let point = der
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .filter(|p| p.len() == 65 && p[0] == 0x04)
            .ok_or(AlbError::BadKey)?;
        // Parsing checks that the point is on the curve.
        let key =
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| AlbError::BadKey)?;
        Ok(Self { key })
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// An `x-amzn-oidc-data` value whose shape and header are acceptable; signature,
/// signer and expiry not yet checked. Owns its parts, so it can be held across the
/// fetch of an unknown key.
#[derive(Debug, Clone)]
pub struct UnverifiedData {
    kid: String,
    header: Map<String, Value>,
    payload: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, AlbError> {
    let bytes = URL_SAFE_ANY_PAD
        .decode(segment)
        .map_err(|_| AlbError::Malformed)?;
    unique_object(&bytes).ok_or(AlbError::Malformed)
}

/// Parses an `x-amzn-oidc-data` value strictly: at most [`MAX_DATA_BYTES`], three
/// non-empty base64url segments (`=` padding allowed), header and payload JSON objects
/// without duplicate members, `alg` exactly `ES256`, a `kid` accepted by [`valid_kid`],
/// no forbidden header parameter, a 64-byte signature.
///
/// # Errors
/// [`AlbError::Malformed`], [`AlbError::Algorithm`] or [`AlbError::Kid`].
pub fn parse_data(value: &str) -> Result<UnverifiedData, AlbError> {
    if value.len() > MAX_DATA_BYTES
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
    {
        return Err(AlbError::Malformed);
    }
    let mut segments = value.split('.');
    let (Some(h), Some(p), Some(s), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(AlbError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(AlbError::Malformed);
    }
    let header = decode_object(h)?;
    if FORBIDDEN_HEADER_PARAMS
        .iter()
        .any(|k| header.contains_key(*k))
    {
        return Err(AlbError::Malformed);
    }
    match header.get("alg") {
        Some(Value::String(a)) if a == "ES256" => {}
        _ => return Err(AlbError::Algorithm),
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" => {}
        Some(_) => return Err(AlbError::Malformed),
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) if valid_kid(k) => k.clone(),
        _ => return Err(AlbError::Kid),
    };
    let payload = decode_object(p)?;
    let signature = URL_SAFE_ANY_PAD
        .decode(s)
        .map_err(|_| AlbError::Malformed)?;
    if signature.len() != 64 {
        return Err(AlbError::Malformed);
    }
    Ok(UnverifiedData {
        kid,
        header,
        payload,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// The identity an ALB data header carries, once verified.
#[derive(Debug, Clone, PartialEq)]
pub struct AlbClaims {
    /// `sub` of the user-info claims.
    pub sub: String,
    /// `username`, if present.
    pub username: Option<String>,
    /// `email`, only when `email_verified` is `true` (or the string `"true"`, as
    /// Cognito's user-info endpoint writes it).
    pub email: Option<String>,
    /// The earlier of the header's and the payload's `exp`.
    pub exp: i64,
    /// The IdP's issuer, from the header.
    pub iss: String,
    /// The app client the load balancer signed in with, from the header.
    pub client: String,
    /// The whole payload, for configured claim mappings and the claims header.
    pub raw: Map<String, Value>,
}

/// An optional non-negative integer member; wrong types are errors.
fn int_member(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, AlbError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 0 => Ok(Some(v)),
            _ => Err(AlbError::Claims),
        },
        Some(_) => Err(AlbError::Claims),
    }
}

/// An optional string member; wrong types are errors.
fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, AlbError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AlbError::Claims),
    }
}

impl UnverifiedData {
    /// The `kid` header: which load balancer key to verify with.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies the signature with `key`, then that `signer` is exactly `signer_arn`
    /// and that neither `exp` (header, and payload if present) has passed at `now`
    /// with `leeway` seconds of grace, then types the claims.
    ///
    /// # Errors
    /// [`AlbError::Signature`], [`AlbError::WrongSigner`], [`AlbError::Expired`] or
    /// [`AlbError::Claims`], checked in that order.
    pub fn verify(
        &self,
        key: &AlbKey,
        signer_arn: &str,
        now: i64,
        leeway: i64,
    ) -> Result<AlbClaims, AlbError> {
        if !key.verifies(self.signing_input.as_bytes(), &self.signature) {
            return Err(AlbError::Signature);
        }
        if str_member(&self.header, "signer").ok().flatten() != Some(signer_arn) {
            return Err(AlbError::WrongSigner);
        }
        let header_exp = int_member(&self.header, "exp")?.ok_or(AlbError::Claims)?;
        let exp = match int_member(&self.payload, "exp")? {
            Some(p) => header_exp.min(p),
            None => header_exp,
        };
        if now >= exp.saturating_add(leeway) {
            return Err(AlbError::Expired);
        }
        let iss = str_member(&self.header, "iss")?.ok_or(AlbError::Claims)?;
        let client = str_member(&self.header, "client")?.ok_or(AlbError::Claims)?;
        let sub = str_member(&self.payload, "sub")?
            .filter(|s| !s.is_empty())
            .ok_or(AlbError::Claims)?;
        let username = str_member(&self.payload, "username")?;
        let verified = match self.payload.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let email = str_member(&self.payload, "email")?.filter(|_| verified);
        Ok(AlbClaims {
            sub: sub.to_owned(),
            username: username.map(str::to_owned),
            email: email.map(str::to_owned),
            exp,
            iss: iss.to_owned(),
            client: client.to_owned(),
            raw: self.payload.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use serde_json::json;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
    const NOW: i64 = 1_700_000_000;

    struct Signer(EcdsaKeyPair);

    impl Signer {
        fn new() -> Self {
            Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key"))
        }

        fn key(&self) -> AlbKey {
            let mut der = P256_SPKI_PREFIX.to_vec();
            der.extend_from_slice(self.0.public_key().as_ref());
            AlbKey::from_spki_der(&der).expect("own key")
        }

        fn pem(&self) -> String {
            let mut der = P256_SPKI_PREFIX.to_vec();
            der.extend_from_slice(self.0.public_key().as_ref());
            let b64 = STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                lines.join("\n")
            )
        }

        fn sign_raw(&self, header: &str, payload: &str, padded: bool) -> String {
            let enc = |b: &[u8]| {
                if padded {
                    URL_SAFE.encode(b)
                } else {
                    URL_SAFE_NO_PAD.encode(b)
                }
            };
            let input = format!("{}.{}", enc(header.as_bytes()), enc(payload.as_bytes()));
            let sig = self
                .0
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign");
            format!("{input}.{}", enc(sig.as_ref()))
        }

        fn sign(&self, header: &Value, payload: &Value) -> String {
            self.sign_raw(&header.to_string(), &payload.to_string(), false)
        }
    }

    fn header(exp: i64) -> Value {
        json!({
            "alg": "ES256",
            "kid": "4b2c1a1e-0000-4000-8000-000000000001",
            "signer": ARN,
            "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
            "client": "client123",
            "exp": exp,
        })
    }

    fn payload() -> Value {
        json!({
            "sub": "user-1",
            "email_verified": "true",
            "email": "a@example.com",
            "username": "alice",
            "exp": NOW + 120,
            "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
        })
    }

    fn verify(s: &Signer, token: &str) -> Result<AlbClaims, AlbError> {
        parse_data(token)?.verify(&s.key(), ARN, NOW, 0)
    }

    #[test]
    fn a_header_signed_by_the_configured_load_balancer_yields_its_claims() {
        let s = Signer::new();
        let claims = verify(&s, &s.sign(&header(NOW + 60), &payload())).expect("valid");
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.username.as_deref(), Some("alice"));
        assert_eq!(claims.email.as_deref(), Some("a@example.com"));
        assert_eq!(claims.exp, NOW + 60, "the earlier exp wins");
        assert_eq!(claims.client, "client123");
        assert!(claims.iss.starts_with("https://cognito-idp."));
        assert_eq!(claims.raw.get("sub"), Some(&json!("user-1")));
    }

    #[test]
    fn padded_segments_are_read_and_verified_as_sent() {
        let s = Signer::new();
        let token = s.sign_raw(&header(NOW + 60).to_string(), &payload().to_string(), true);
        assert!(
            token.contains('='),
            "the test must produce padding: {token}"
        );
        assert!(verify(&s, &token).is_ok());
    }

    #[test]
    fn a_pem_key_reads_like_its_der() {
        let s = Signer::new();
        let key = AlbKey::from_pem(&s.pem()).expect("pem");
        let token = s.sign(&header(NOW + 60), &payload());
        let data = parse_data(&token).expect("parse");
        assert!(data.verify(&key, ARN, NOW, 0).is_ok());
        let crlf = s.pem().replace('\n', "\r\n");
        assert!(AlbKey::from_pem(&format!("  {crlf}  ")).is_ok());
    }

    #[test]
    fn other_keys_and_garbage_are_not_p256_public_keys() {
        let s = Signer::new();
        let pem = s.pem();
        for bad in [
            String::new(),
            "not a pem".to_owned(),
            pem.replace("PUBLIC KEY", "EC PUBLIC KEY"),
            format!("junk\n{pem}"),
            format!("{pem}{pem}"),
            pem.replace("-----END", "!!\n-----END"),
        ] {
            assert_eq!(
                AlbKey::from_pem(&bad).err(),
                Some(AlbError::BadKey),
                "{bad}"
            );
        }
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(s.0.public_key().as_ref());
        // Another curve's OID (secp384r1 is 1.3.132.0.34): the prefix differs.
        let mut other = der.clone();
        other[15] = 0x2b;
        assert!(AlbKey::from_spki_der(&other).is_err());
        // A point off the curve.
        let mut off = der.clone();
        off[90] ^= 1;
        assert!(AlbKey::from_spki_der(&off).is_err());
        // Trailing bytes.
        let mut long = der;
        long.push(0);
        assert!(AlbKey::from_spki_der(&long).is_err());
    }

    #[test]
    fn a_header_forged_with_another_key_has_a_bad_signature() {
        let (s, forger) = (Signer::new(), Signer::new());
        let token = forger.sign(&header(NOW + 60), &payload());
        assert_eq!(verify(&s, &token).err(), Some(AlbError::Signature));
    }

    #[test]
    fn a_changed_payload_or_a_reencoded_segment_breaks_the_signature() {
        let s = Signer::new();
        let token = s.sign(&header(NOW + 60), &payload());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = payload();
        evil["sub"] = json!("admin");
        parts[1] = URL_SAFE_NO_PAD.encode(evil.to_string());
        assert_eq!(
            verify(&s, &parts.join(".")).err(),
            Some(AlbError::Signature)
        );
        // Same bytes, padded after signing: the signing input changed.
        let padded = s.sign_raw(&header(NOW + 60).to_string(), &payload().to_string(), false);
        let p: Vec<&str> = padded.split('.').collect();
        let repadded = format!("{}.{}=.{}", p[0], p[1], p[2]);
        if let Ok(d) = parse_data(&repadded) {
            assert_eq!(
                d.verify(&s.key(), ARN, NOW, 0).err(),
                Some(AlbError::Signature)
            );
        }
    }

    #[test]
    fn a_header_from_another_load_balancer_is_refused() {
        let s = Signer::new();
        let mut h = header(NOW + 60);
        h["signer"] = json!(ARN.replace("web", "other"));
        assert_eq!(
            verify(&s, &s.sign(&h, &payload())).err(),
            Some(AlbError::WrongSigner)
        );
        h.as_object_mut().expect("object").remove("signer");
        assert_eq!(
            verify(&s, &s.sign(&h, &payload())).err(),
            Some(AlbError::WrongSigner)
        );
        h["signer"] = json!(7);
        assert_eq!(
            verify(&s, &s.sign(&h, &payload())).err(),
            Some(AlbError::WrongSigner)
        );
    }

    #[test]
    fn expired_headers_are_refused_after_the_leeway() {
        let s = Signer::new();
        let token = s.sign(&header(NOW - 10), &payload());
        let data = parse_data(&token).expect("parse");
        assert_eq!(
            data.verify(&s.key(), ARN, NOW, 0).err(),
            Some(AlbError::Expired)
        );
        assert!(data.verify(&s.key(), ARN, NOW, 60).is_ok());
        // The payload's exp counts too.
        let mut p = payload();
        p["exp"] = json!(NOW);
        assert_eq!(
            verify(&s, &s.sign(&header(NOW + 60), &p)).err(),
            Some(AlbError::Expired)
        );
    }

    #[test]
    fn time_and_identity_claims_must_have_their_types() {
        let s = Signer::new();
        let with_header = |k: &str, v: Value| {
            let mut h = header(NOW + 60);
            if v.is_null() {
                h.as_object_mut().expect("object").remove(k);
            } else {
                h[k] = v;
            }
            verify(&s, &s.sign(&h, &payload())).err()
        };
        assert_eq!(
            with_header("exp", json!("9999999999")),
            Some(AlbError::Claims)
        );
        assert_eq!(with_header("exp", json!(1.5e12)), Some(AlbError::Claims));
        assert_eq!(with_header("exp", Value::Null), Some(AlbError::Claims));
        assert_eq!(with_header("iss", Value::Null), Some(AlbError::Claims));
        assert_eq!(with_header("client", json!(["a"])), Some(AlbError::Claims));
        let with_payload = |k: &str, v: Value| {
            let mut p = payload();
            if v.is_null() {
                p.as_object_mut().expect("object").remove(k);
            } else {
                p[k] = v;
            }
            verify(&s, &s.sign(&header(NOW + 60), &p))
        };
        assert_eq!(
            with_payload("sub", Value::Null).err(),
            Some(AlbError::Claims)
        );
        assert_eq!(with_payload("sub", json!("")).err(), Some(AlbError::Claims));
        assert_eq!(
            with_payload("username", json!(1)).err(),
            Some(AlbError::Claims)
        );
        assert_eq!(
            with_payload("exp", json!("soon")).err(),
            Some(AlbError::Claims)
        );
        assert!(
            with_payload("exp", Value::Null).is_ok(),
            "payload exp is optional"
        );
    }

    #[test]
    fn email_is_kept_only_when_verified() {
        let s = Signer::new();
        for (verified, kept) in [
            (json!(true), true),
            (json!("true"), true),
            (json!(false), false),
            (json!("false"), false),
            (json!("TRUE"), false),
            (Value::Null, false),
        ] {
            let mut p = payload();
            p["email_verified"] = verified.clone();
            let claims = verify(&s, &s.sign(&header(NOW + 60), &p)).expect("valid");
            assert_eq!(claims.email.is_some(), kept, "{verified}");
        }
    }

    #[test]
    fn only_es256_with_a_usable_kid_is_parsed() {
        let s = Signer::new();
        let parse = |h: Value| parse_data(&s.sign(&h, &payload())).err();
        let mut h = header(NOW + 60);
        for alg in [
            json!("RS256"),
            json!("es256"),
            json!("none"),
            json!(["ES256"]),
        ] {
            h["alg"] = alg;
            assert_eq!(parse(h.clone()), Some(AlbError::Algorithm));
        }
        h["alg"] = json!("ES256");
        for kid in [
            json!(""),
            json!("../x"),
            json!(".."),
            json!("a/b"),
            json!(1),
            json!("k".repeat(257)),
        ] {
            h["kid"] = kid;
            assert_eq!(parse(h.clone()), Some(AlbError::Kid));
        }
        h["kid"] = json!("k".repeat(256));
        assert!(parse(h.clone()).is_none());
        for forbidden in ["crit", "jku", "jwk", "x5u", "b64"] {
            let mut f = h.clone();
            f[forbidden] = json!("x");
            assert_eq!(parse(f), Some(AlbError::Malformed), "{forbidden}");
        }
    }

    #[test]
    fn malformed_values_are_refused_without_panicking() {
        let s = Signer::new();
        let good = s.sign(&header(NOW + 60), &payload());
        let (h, rest) = good.split_once('.').expect("dots");
        let dup = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","alg":"ES256","kid":"k"}"#);
        let big = format!("{good}{}", "A".repeat(MAX_DATA_BYTES));
        for bad in [
            String::new(),
            "..".to_owned(),
            "a.b".to_owned(),
            format!("{good}.x"),
            format!("{h}..{}", rest.split_once('.').expect("dot").1),
            good.replace('.', " . "),
            format!("{dup}.{rest}"),
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode("[1]")),
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{good}A"),
            format!("{h}.{}.AAAA", rest.split_once('.').expect("dot").0),
            big,
            format!("{h}+.{rest}"),
        ] {
            assert!(parse_data(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_reason_is_listed_and_snake_case() {
        let all = [
            AlbError::Malformed,
            AlbError::Algorithm,
            AlbError::Kid,
            AlbError::Claims,
            AlbError::Signature,
            AlbError::WrongSigner,
            AlbError::Expired,
            AlbError::UnknownKid,
            AlbError::KeyUnavailable,
            AlbError::Throttled,
            AlbError::BadKey,
        ];
        let reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, AlbError::REASONS);
        for r in reasons {
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
        }
    }
}
