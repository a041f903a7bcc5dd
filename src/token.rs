//! PURE: strict parsing of a compact JWS into header and claims, and RS256 signature
//! verification with a key chosen by the caller.
//!
//! The signature is checked by aws-lc with a key parsed once for RS256 only
//! (`ParsedPublicKey` for `RSA_PKCS1_2048_8192_SHA256`, held by the key set), after
//! decoding the base64url signature into a stack buffer. No JWT library decodes the
//! token: their claim checks read the system clock and treat wrong-typed claims as
//! absent (CVE-2026-25537 class); every claim here is typed strictly by
//! [`Claims::from_payload`] and time is checked by the caller against an injected `now`.

use std::collections::BTreeSet;
use std::fmt;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Which token kinds a pool or route accepts (Cognito's `token_use` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// ID token: `token_use = "id"`, client in `aud`.
    Id,
    /// Access token: `token_use = "access"`, client in `client_id`.
    Access,
}

impl TokenUse {
    /// The claim value as Cognito writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Access => "access",
        }
    }
}

/// Why a token could not be parsed or verified. Never shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON objects.
    #[error("malformed token")]
    Malformed,
    /// `alg` other than exactly `RS256`.
    #[error("algorithm not allowed")]
    Algorithm,
    /// A header parameter that is never accepted (`crit`, `jku`, `jwk`, `x5u`, ...).
    #[error("header parameter not allowed")]
    ForbiddenHeader,
    /// No usable `kid`.
    #[error("missing or oversized kid")]
    Kid,
    /// A claim of the wrong JSON type, duplicated or out of range.
    #[error("invalid claims")]
    Claims,
    /// Signature does not verify.
    #[error("bad signature")]
    Signature,
}

/// A JSON object whose members must be unique (RFC 8259 leaves duplicates undefined;
/// two parsers reading different values is an authorization bypass).
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| TokenError::Malformed)
}

/// Parses JSON bytes as one object whose members are unique (nested values as
/// `serde_json` reads them); `None` for anything else. Shared with other strict JWS
/// readers (the ALB data header).
#[must_use]
pub fn unique_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<UniqueObject>(bytes)
        .ok()
        .map(|o| o.0)
}

/// True if `token` has the compact JWS shape: three non-empty base64url segments,
/// no padding, nothing else (rejects JWE and JSON serialization).
#[must_use]
pub fn is_compact_jws(token: &str) -> bool {
    // Branch-free over the bytes (vectorised), then the segment structure.
    fn ok(b: u8) -> bool {
        b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.')
    }
    if !token.bytes().fold(true, |all, b| all & ok(b)) {
        return false;
    }
    let mut segments = token.split('.');
    let three = [segments.next(), segments.next(), segments.next()];
    segments.next().is_none() && three.iter().all(|s| s.is_some_and(|s| !s.is_empty()))
}

/// Header parameters accepted; anything else (notably `crit`, `cty`, `enc`, `zip`,
/// `jku`, `jwk`, `x5u`, `x5c`, `b64`) rejects the token. Cognito sends only `kid`, `alg`.
const ALLOWED_HEADER_PARAMS: [&str; 3] = ["alg", "kid", "typ"];

/// Longest signature: RSA-8192, the largest key a key set holds.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Longest accepted `kid`.
pub const MAX_KID_BYTES: usize = 256;

/// A token whose structure and header are acceptable, signature not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The `kid` header.
    pub kid: String,
    /// The decoded payload (unique members).
    pub payload: Map<String, Value>,
    signing_input: &'a str,
    signature: &'a str,
}

/// Parses a compact JWS strictly.
///
/// # Errors
/// [`TokenError`] naming the first problem found.
pub fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
    if !is_compact_jws(token) {
        return Err(TokenError::Malformed);
    }
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return Err(TokenError::Malformed);
    };
    let Some((header_b64, payload_b64)) = signing_input.split_once('.') else {
        return Err(TokenError::Malformed);
    };
    let header = decode_object(header_b64)?;
    if header
        .keys()
        .any(|k| !ALLOWED_HEADER_PARAMS.contains(&k.as_str()))
    {
        return Err(TokenError::ForbiddenHeader);
    }
    match header.get("alg") {
        Some(Value::String(a)) if a == "RS256" => {}
        _ => return Err(TokenError::Algorithm),
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" => {}
        Some(_) => return Err(TokenError::ForbiddenHeader),
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_BYTES => k.clone(),
        _ => return Err(TokenError::Kid),
    };
    let payload = decode_object(payload_b64)?;
    Ok(Unverified {
        kid,
        payload,
        signing_input,
        signature,
    })
}

impl Unverified<'_> {
    /// The `iss` claim, if it is a string.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Value::as_str)
    }

    /// Verifies the RS256 signature with `key` (an RS256 key: the algorithm is the
    /// key's, fixed when the key set parsed it).
    ///
    /// # Errors
    /// [`TokenError::Signature`] if it does not verify (or is longer than an RSA-8192
    /// signature).
    pub fn verify(&self, key: &ParsedPublicKey) -> Result<(), TokenError> {
        // Room for base64's conservative length estimate (up to 2 bytes over).
        let mut buf = [0u8; MAX_SIGNATURE_BYTES + 3];
        let len = URL_SAFE_NO_PAD
            .decode_slice(self.signature, &mut buf)
            .map_err(|_| TokenError::Signature)?;
        let signature = buf.get(..len).ok_or(TokenError::Signature)?;
        key.verify_sig(self.signing_input.as_bytes(), signature)
            .map_err(|_| TokenError::Signature)
    }
}

/// Claims of a verified token, typed strictly.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `sub`.
    pub sub: String,
    /// `iss`.
    pub iss: String,
    /// `token_use`.
    pub token_use: TokenUse,
    /// `aud` for ID tokens, `client_id` for access tokens.
    pub client_id: String,
    /// `exp`.
    pub exp: i64,
    /// `iat`.
    pub iat: i64,
    /// `nbf`, if present.
    pub nbf: Option<i64>,
    /// `username` (access) or `cognito:username` (ID).
    pub username: Option<String>,
    /// `email`, only when `email_verified` is true.
    pub verified_email: Option<String>,
    /// `cognito:groups`.
    pub groups: Vec<String>,
    /// `scope`, split on spaces (access tokens only; always empty for ID tokens).
    pub scopes: BTreeSet<String>,
    /// The whole payload, for configured claim mappings and the claims header.
    pub raw: Map<String, Value>,
}

fn int_claim(payload: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        // Integers only: no strings, floats, or negative times.
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 0 => Ok(Some(v)),
            _ => Err(TokenError::Claims),
        },
        Some(_) => Err(TokenError::Claims),
    }
}

fn str_claim<'a>(
    payload: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::Claims),
    }
}

impl Claims {
    /// Types the payload. Requires `iss`, `sub`, `exp`, `iat`, `token_use` and the client
    /// claim for the token kind; rejects wrong JSON types of every claim it reads.
    ///
    /// # Errors
    /// [`TokenError::Claims`].
    pub fn from_payload(mut payload: Map<String, Value>) -> Result<Self, TokenError> {
        let iss = str_claim(&payload, "iss")?
            .ok_or(TokenError::Claims)?
            .to_owned();
        let sub = str_claim(&payload, "sub")?
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claims)?
            .to_owned();
        let exp = int_claim(&payload, "exp")?.ok_or(TokenError::Claims)?;
        let iat = int_claim(&payload, "iat")?.ok_or(TokenError::Claims)?;
        let nbf = int_claim(&payload, "nbf")?;
        int_claim(&payload, "auth_time")?;
        let token_use = match str_claim(&payload, "token_use")? {
            Some("id") => TokenUse::Id,
            Some("access") => TokenUse::Access,
            _ => return Err(TokenError::Claims),
        };
        let client_id = match token_use {
            TokenUse::Id => str_claim(&payload, "aud")?,
            TokenUse::Access => str_claim(&payload, "client_id")?,
        }
        .ok_or(TokenError::Claims)?
        .to_owned();
        let username = match token_use {
            TokenUse::Id => str_claim(&payload, "cognito:username")?,
            TokenUse::Access => str_claim(&payload, "username")?,
        }
        .map(str::to_owned);
        let email_verified = match payload.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Older pools and some SDK paths serialize it as a string.
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let verified_email = str_claim(&payload, "email")?
            .filter(|_| email_verified)
            .map(str::to_owned);
        let groups = match payload.get("cognito:groups") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(TokenError::Claims))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::Claims),
        };
        // Scopes belong to access tokens only: an ID token's `scope` claim (a
        // pre-token-generation trigger can add one) is never read.
        let scope = match token_use {
            TokenUse::Access => str_claim(&payload, "scope")?,
            TokenUse::Id => None,
        };
        let scopes = scope
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if token_use == TokenUse::Id {
            // Not even the all-claims header or a claim mapping may carry it onwards.
            payload.remove("scope");
        }
        Ok(Self {
            sub,
            iss,
            token_use,
            client_id,
            exp,
            iat,
            nbf,
            username,
            verified_email,
            groups,
            scopes,
            raw: payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn tok(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn compact_shape_rejects_jwe_padding_and_json_serialization() {
        assert!(is_compact_jws("a.b.c"));
        assert!(!is_compact_jws("a.b.c.d.e"));
        assert!(!is_compact_jws("a.b=.c"));
        assert!(!is_compact_jws("a..c"));
        assert!(!is_compact_jws("{\"payload\":\"x\"}"));
    }

    #[test]
    fn only_exact_rs256_is_accepted() {
        for alg in [
            "none", "None", "NONE", "HS256", "RS384", "PS256", "ES256", "rs256",
        ] {
            let t = tok(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#), "{}");
            assert_eq!(parse(&t).err(), Some(TokenError::Algorithm), "{alg}");
        }
    }

    #[test]
    fn dangerous_header_parameters_reject_the_token() {
        for extra in [
            r#""jku":"http://evil/k""#,
            r#""x5u":"http://evil/c""#,
            r#""jwk":{}"#,
            r#""x5c":[]"#,
            r#""crit":["exp"]"#,
            r#""cty":"JWT""#,
            r#""enc":"A128GCM""#,
            r#""zip":"DEF""#,
        ] {
            let t = tok(&format!(r#"{{"alg":"RS256","kid":"k",{extra}}}"#), "{}");
            assert_eq!(
                parse(&t).err(),
                Some(TokenError::ForbiddenHeader),
                "{extra}"
            );
        }
    }

    #[test]
    fn missing_or_oversized_kid_is_rejected() {
        assert_eq!(
            parse(&tok(r#"{"alg":"RS256"}"#, "{}")).err(),
            Some(TokenError::Kid)
        );
        let long = "k".repeat(MAX_KID_BYTES + 1);
        assert_eq!(
            parse(&tok(&format!(r#"{{"alg":"RS256","kid":"{long}"}}"#), "{}")).err(),
            Some(TokenError::Kid)
        );
    }

    #[test]
    fn duplicate_members_in_header_or_payload_are_rejected() {
        assert_eq!(
            parse(&tok(r#"{"alg":"RS256","alg":"RS256","kid":"k"}"#, "{}")).err(),
            Some(TokenError::Malformed)
        );
        assert_eq!(
            parse(&tok(
                r#"{"alg":"RS256","kid":"k"}"#,
                r#"{"token_use":"id","token_use":"access"}"#
            ))
            .err(),
            Some(TokenError::Malformed)
        );
    }

    #[test]
    fn an_oversized_or_garbled_signature_is_refused_without_panicking() {
        let jwk = crate::issuer::DevIssuer::generate(&["k"])
            .expect("issuer")
            .key_set();
        let key = jwk.get("k").expect("key");
        let header = r#"{"alg":"RS256","kid":"k"}"#;
        for sig in [
            "A".repeat(2000),
            "A".repeat(1366),
            "c2ln".into(),
            "A".into(),
        ] {
            let t = format!("{}.{}.{sig}", b64(header), b64("{}"));
            let parsed = parse(&t).expect("shape");
            assert_eq!(parsed.verify(key).err(), Some(TokenError::Signature));
        }
    }

    fn claims(json: &str) -> Result<Claims, TokenError> {
        let v: Map<String, Value> = serde_json::from_str(json).expect("test json");
        Claims::from_payload(v)
    }

    const OK: &str =
        r#"{"iss":"i","sub":"s","exp":10,"iat":1,"token_use":"access","client_id":"c"}"#;

    #[test]
    fn well_typed_access_claims_parse() {
        let c = claims(OK).expect("valid");
        assert_eq!(c.client_id, "c");
        assert_eq!(c.token_use, TokenUse::Access);
    }

    #[test]
    fn wrong_json_types_are_rejected_not_ignored() {
        for (from, to) in [
            (r#""exp":10"#, r#""exp":"10""#),
            (r#""exp":10"#, r#""exp":-1"#),
            (r#""exp":10"#, r#""exp":10.5"#),
            (r#""iat":1"#, r#""iat":"1""#),
            (r#""iss":"i""#, r#""iss":["i"]"#),
            (r#""client_id":"c""#, r#""client_id":["c"]"#),
            (r#""token_use":"access""#, r#""token_use":"ACCESS""#),
            (r#""sub":"s""#, r#""sub":"""#),
            (r#""exp":10,"#, ""),
            (r#""iat":1,"#, ""),
        ] {
            let json = OK.replace(from, to);
            assert_eq!(claims(&json).err(), Some(TokenError::Claims), "{json}");
        }
        let groups = OK.replace(r#""sub":"s""#, r#""sub":"s","cognito:groups":"admins""#);
        assert_eq!(claims(&groups).err(), Some(TokenError::Claims));
    }

    #[test]
    fn id_tokens_take_the_client_from_aud_and_access_tokens_from_client_id() {
        let id = OK.replace(
            r#""token_use":"access","client_id":"c""#,
            r#""token_use":"id","aud":"c2""#,
        );
        assert_eq!(claims(&id).expect("valid").client_id, "c2");
        let access_with_aud_only = OK.replace(r#","client_id":"c""#, r#","aud":"c""#);
        assert_eq!(
            claims(&access_with_aud_only).err(),
            Some(TokenError::Claims)
        );
    }

    #[test]
    fn email_is_kept_only_when_verified() {
        let c = claims(&OK.replace(
            r#""sub":"s""#,
            r#""sub":"s","email":"a@b","email_verified":false"#,
        ))
        .expect("valid");
        assert_eq!(c.verified_email, None);
        let c = claims(&OK.replace(
            r#""sub":"s""#,
            r#""sub":"s","email":"a@b","email_verified":true"#,
        ))
        .expect("valid");
        assert_eq!(c.verified_email.as_deref(), Some("a@b"));
    }
}
