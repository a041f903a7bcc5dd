//! PURE pieces of the OAuth 2.0 authorization code flow with PKCE (RFC 7636) that
//! browser sign-in uses: the one-time values (state, nonce, code verifier), the S256
//! challenge, the authorize URL, the sign-in state a sealed cookie carries between the
//! redirect and the callback, the callback's query, and the return path (a same-origin
//! path only: never an open redirect).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A fresh random value: 32 bytes from the CSPRNG, base64url (43 characters, a valid
/// PKCE code verifier). `None` only if the random source fails.
#[must_use]
pub fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

/// The PKCE S256 challenge of a code verifier.
#[must_use]
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// What the sign-in state cookie carries from the redirect to the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The `state` parameter; the callback's must equal it.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where the browser returns after signing in (a same-origin path).
    pub return_to: String,
    /// Unix time after which the state is refused.
    pub expires: i64,
}

impl SignIn {
    /// Starts a sign-in that returns to `return_to` (sanitized) and is valid until
    /// `expires`. `None` only if the random source fails.
    #[must_use]
    pub fn start(return_to: &str, expires: i64) -> Option<Self> {
        Some(Self {
            state: random_token()?,
            nonce: random_token()?,
            verifier: random_token()?,
            return_to: safe_return_path(return_to),
            expires,
        })
    }
}

/// The pool's authorize endpoint with this sign-in's parameters.
#[must_use]
pub fn authorize_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    sign_in: &SignIn,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &sign_in.state)
        .append_pair("nonce", &sign_in.nonce)
        .append_pair("code_challenge", &s256_challenge(&sign_in.verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// What the identity provider sent back to the callback path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// A code to exchange, with the state it came with.
    Code {
        /// The authorization code.
        code: String,
        /// The `state` parameter.
        state: String,
    },
    /// The provider refused (`error=access_denied`, ...): the error code only, never
    /// its free-text description.
    Error {
        /// The OAuth error code, if it is a plain token.
        error: String,
    },
    /// Neither, or a parameter given twice.
    Invalid,
}

/// Reads the callback's query string.
#[must_use]
pub fn parse_callback(query: Option<&str>) -> Callback {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "error" => &mut error,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Callback::Invalid;
        }
    }
    match (code, state, error) {
        (_, _, Some(e)) => {
            let plain = !e.is_empty()
                && e.len() <= 64
                && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            Callback::Error {
                error: if plain { e } else { "invalid".to_owned() },
            }
        }
        (Some(code), Some(state), None) if !code.is_empty() && !state.is_empty() => {
            Callback::Code { code, state }
        }
        _ => Callback::Invalid,
    }
}

/// A return path that stays on this origin: an absolute path (`/...`) that is not
/// scheme-relative (`//host`, `/\host`) and holds no control characters or
/// backslashes; anything else returns to `/`.
#[must_use]
pub fn safe_return_path(candidate: &str) -> String {
    let ok = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.contains('\\')
        && !candidate.bytes().any(|b| b.is_ascii_control() || b == b' ')
        && candidate.len() <= 2048;
    if ok {
        candidate.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Constant-time string comparison (for `state`).
#[must_use]
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636_s256() {
        // base64url(SHA-256("abc")) without padding, computed independently.
        assert_eq!(
            s256_challenge("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        let v = random_token().unwrap();
        assert_eq!(v.len(), 43);
        assert_ne!(v, random_token().unwrap());
    }

    #[test]
    fn the_authorize_url_carries_state_nonce_and_the_s256_challenge() {
        let s = SignIn::start("/app?x=1", 100).unwrap();
        let url = authorize_url(
            "https://d.auth.us-east-1.amazoncognito.com/oauth2/authorize",
            "client1",
            "https://app.example.com/_auth/callback",
            &["openid".to_owned(), "email".to_owned()],
            &s,
        );
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(
            base,
            "https://d.auth.us-east-1.amazoncognito.com/oauth2/authorize"
        );
        let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "client1");
        assert_eq!(q["redirect_uri"], "https://app.example.com/_auth/callback");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["state"], s.state);
        assert_eq!(q["nonce"], s.nonce);
        assert_eq!(q["code_challenge"], s256_challenge(&s.verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(
            !url.contains(&s.verifier),
            "the verifier never leaves the sidecar"
        );
    }

    #[test]
    fn callbacks_are_read_strictly() {
        assert_eq!(
            parse_callback(Some("code=abc&state=xyz")),
            Callback::Code {
                code: "abc".into(),
                state: "xyz".into()
            }
        );
        assert_eq!(
            parse_callback(Some("error=access_denied&error_description=<script>")),
            Callback::Error {
                error: "access_denied".into()
            }
        );
        assert_eq!(
            parse_callback(Some("error=%3Cb%3E")),
            Callback::Error {
                error: "invalid".into()
            }
        );
        assert_eq!(
            parse_callback(Some("code=a&code=b&state=s")),
            Callback::Invalid
        );
        assert_eq!(parse_callback(Some("code=a")), Callback::Invalid);
        assert_eq!(parse_callback(None), Callback::Invalid);
    }

    #[test]
    fn return_paths_never_leave_the_origin() {
        for ok in ["/", "/app", "/app/x?y=1#z", "/%2F%2Fevil"] {
            assert_eq!(safe_return_path(ok), ok);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "/a\r\nSet-Cookie: x",
            "",
            "app",
        ] {
            assert_eq!(safe_return_path(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
