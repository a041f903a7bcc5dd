//! PURE browser-facing rules of sign-in: which requests are top-level navigations (only
//! those are redirected to sign in; scripts and API clients get the normal 401), the
//! same-origin check that guards unsafe methods on session-authenticated routes
//! (CSRF), the sealed sign-in state cookie, the ID token's `nonce`, and the pool's
//! logout URL.

use http::request::Parts;
use http::{Method, header};

use super::flow::{SignIn, same_secret};
use crate::seal::SealKeys;
use crate::token::Claims;

/// Purpose the sign-in state is sealed for: it never opens as a session.
const SIGN_IN_PURPOSE: &str = "cognito-sidecar sign-in v1";

/// A top-level browser navigation: `GET`/`HEAD`, not marked as a script request, and
/// either `Sec-Fetch-Mode: navigate` or (older browsers) an `Accept` naming HTML.
#[must_use]
pub fn is_navigation(parts: &Parts) -> bool {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return false;
    }
    let h = &parts.headers;
    let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    if value("x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest")) {
        return false;
    }
    if let Some(mode) = value("sec-fetch-mode") {
        return mode.eq_ignore_ascii_case("navigate");
    }
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// Whether a request may act on a session: safe methods always; unsafe ones only when
/// the browser says it comes from `origin` itself (`Origin` equal to it, or, without
/// `Origin`, `Sec-Fetch-Site: same-origin`). A request saying neither is refused.
#[must_use]
pub fn may_use_session(parts: &Parts, origin: &str) -> bool {
    if matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return true;
    }
    let h = &parts.headers;
    if let Some(o) = h.get(header::ORIGIN) {
        return o
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')));
    }
    h.get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.eq_ignore_ascii_case("same-origin"))
}

/// The sign-in state as a cookie value, sealed.
#[must_use]
pub fn seal_sign_in(keys: &SealKeys, sign_in: &SignIn) -> Option<String> {
    keys.seal(SIGN_IN_PURPOSE, &serde_json::to_vec(sign_in).ok()?)
}

/// The sign-in state a cookie carries, if it opens and has not expired at `now`.
#[must_use]
pub fn open_sign_in(keys: &SealKeys, sealed: &str, now: i64) -> Option<SignIn> {
    let s: SignIn = serde_json::from_slice(&keys.open(SIGN_IN_PURPOSE, sealed)?).ok()?;
    (now < s.expires).then_some(s)
}

/// Whether a verified ID token carries the sign-in's `nonce`.
#[must_use]
pub fn nonce_matches(claims: &Claims, nonce: &str) -> bool {
    claims
        .raw
        .get("nonce")
        .and_then(|v| v.as_str())
        .is_some_and(|n| same_secret(n, nonce))
}

/// The pool's logout endpoint (Cognito: `client_id` and `logout_uri`, which must be one
/// of the app client's sign-out URLs).
#[must_use]
pub fn logout_url(endpoint: &str, client_id: &str, logout_uri: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("logout_uri", logout_uri)
        .finish();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri("/app");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_top_level_navigations_are_sent_to_sign_in() {
        assert!(is_navigation(&parts(
            "GET",
            &[("sec-fetch-mode", "navigate")]
        )));
        assert!(is_navigation(&parts(
            "GET",
            &[("accept", "text/html,application/xhtml+xml")]
        )));
        assert!(!is_navigation(&parts(
            "GET",
            &[("sec-fetch-mode", "cors"), ("accept", "text/html")]
        )));
        assert!(!is_navigation(&parts(
            "GET",
            &[("accept", "application/json")]
        )));
        assert!(!is_navigation(&parts(
            "GET",
            &[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest")
            ]
        )));
        assert!(!is_navigation(&parts(
            "POST",
            &[("sec-fetch-mode", "navigate")]
        )));
        assert!(!is_navigation(&parts("GET", &[])), "an API client");
    }

    #[test]
    fn unsafe_methods_need_the_same_origin_to_use_a_session() {
        let o = "https://app.example.com";
        assert!(may_use_session(&parts("GET", &[]), o));
        assert!(may_use_session(
            &parts("POST", &[("origin", "https://app.example.com")]),
            o
        ));
        assert!(!may_use_session(
            &parts("POST", &[("origin", "https://evil.example")]),
            o
        ));
        assert!(!may_use_session(&parts("POST", &[("origin", "null")]), o));
        assert!(may_use_session(
            &parts("DELETE", &[("sec-fetch-site", "same-origin")]),
            o
        ));
        assert!(!may_use_session(
            &parts("DELETE", &[("sec-fetch-site", "same-site")]),
            o
        ));
        assert!(
            !may_use_session(&parts("PUT", &[]), o),
            "no evidence is a refusal"
        );
    }

    #[test]
    fn the_sign_in_state_opens_only_before_it_expires_and_never_as_a_session() {
        let keys = SealKeys::from_text(&"5a".repeat(32)).unwrap();
        let s = SignIn::start("/back", 1000).unwrap();
        let sealed = seal_sign_in(&keys, &s).unwrap();
        assert_eq!(open_sign_in(&keys, &sealed, 999).unwrap(), s);
        assert!(open_sign_in(&keys, &sealed, 1000).is_none(), "expired");
        assert!(keys.open("cognito-sidecar session v1", &sealed).is_none());
    }

    #[test]
    fn the_logout_url_names_the_client_and_where_to_return() {
        assert_eq!(
            logout_url(
                "https://d.auth.example/logout",
                "c1",
                "https://app.example.com/"
            ),
            "https://d.auth.example/logout?client_id=c1&logout_uri=https%3A%2F%2Fapp.example.com%2F"
        );
    }
}
