//! The browser session without server-side state: the tokens a sign-in obtained,
//! sealed (AES-256-GCM, `crate::seal`) into `HttpOnly`, `Secure`, `SameSite=Lax`
//! cookies, split over numbered cookies when longer than one cookie may be, with the
//! time the session began so a maximum age holds however often it is refreshed. A
//! cookie that does not open, does not parse or is too old is no session at all.

use serde::{Deserialize, Serialize};

use crate::seal::{self, SealKeys};

/// Longest value put in one cookie: browsers accept about 4096 bytes per cookie,
/// name and attributes included.
pub const MAX_COOKIE_VALUE: usize = 3800;

/// Purpose the session is sealed for (associated data): a sealed sign-in state or any
/// other sealed value never opens as a session.
const PURPOSE: &str = "cognito-sidecar session v1";

/// What a session holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The ID token (verified on every request like a bearer token).
    pub id_token: String,
    /// The refresh token, when the provider issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix time the browser signed in (kept across refreshes).
    pub signed_in_at: i64,
}

/// How session cookies are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieRules {
    /// Base name (`__Host-...` when `secure`).
    pub name: String,
    /// Add `Secure` (off only for plain-HTTP development).
    pub secure: bool,
    /// Longest session, in seconds, from sign-in.
    pub max_age: i64,
}

impl Session {
    /// The session's cookies as `Set-Cookie` values: the numbered pieces, then
    /// expired ones for pieces a longer earlier session may have left
    /// (`previous_pieces`: how many the request carried).
    #[must_use]
    pub fn set_cookies(
        &self,
        keys: &SealKeys,
        rules: &CookieRules,
        now: i64,
        previous_pieces: usize,
    ) -> Option<Vec<String>> {
        let json = serde_json::to_vec(self).ok()?;
        let sealed = keys.seal(PURPOSE, &json)?;
        let left = (self.signed_in_at + rules.max_age - now).max(0);
        let pieces = seal::split(&rules.name, &sealed, MAX_COOKIE_VALUE);
        let count = pieces.len();
        let mut out: Vec<String> = pieces
            .into_iter()
            .map(|(name, value)| cookie(&name, &value, left, rules.secure))
            .collect();
        for i in count..previous_pieces {
            out.push(cookie(&format!("{}.{i}", rules.name), "", 0, rules.secure));
        }
        Some(out)
    }

    /// The session the request's cookies carry, if any opens, parses and is younger
    /// than the maximum age.
    #[must_use]
    pub fn from_cookies<'a>(
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
        keys: &SealKeys,
        rules: &CookieRules,
        now: i64,
    ) -> Option<Self> {
        let sealed = seal::join(&rules.name, cookies)?;
        let json = keys.open(PURPOSE, &sealed)?;
        let session: Self = serde_json::from_slice(&json).ok()?;
        (now >= session.signed_in_at && now < session.signed_in_at + rules.max_age)
            .then_some(session)
    }
}

/// `Set-Cookie` values that end a session of `pieces` cookies.
#[must_use]
pub fn clear_cookies(rules: &CookieRules, pieces: usize) -> Vec<String> {
    (0..pieces.max(1))
        .map(|i| {
            let name = if i == 0 {
                rules.name.clone()
            } else {
                format!("{}.{i}", rules.name)
            };
            cookie(&name, "", 0, rules.secure)
        })
        .collect()
}

/// One `Set-Cookie` value: host-only (no `Domain`), `Path=/` (required by `__Host-`),
/// never readable by scripts, not sent on cross-site subrequests or POSTs.
/// One `Set-Cookie` value with the session attributes (`Path=/; HttpOnly; SameSite=Lax`,
/// `Secure` when asked).
#[must_use]
pub fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SealKeys {
        SealKeys::from_text(&"42".repeat(32)).unwrap()
    }

    fn rules() -> CookieRules {
        CookieRules {
            name: "__Host-s".into(),
            secure: true,
            max_age: 3600,
        }
    }

    fn session(size: usize) -> Session {
        Session {
            id_token: "i".repeat(2 * size),
            refresh_token: Some("r".repeat(1800)),
            signed_in_at: 1000,
        }
    }

    /// The (name, value) pairs a browser would send back.
    fn sent_back(set: &[String]) -> Vec<(String, String)> {
        set.iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| {
                let pair = c.split(';').next().unwrap();
                let (n, v) = pair.split_once('=').unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn a_session_round_trips_through_its_cookies_with_safe_attributes() {
        let s = session(1200);
        let set = s.set_cookies(&keys(), &rules(), 1100, 0).unwrap();
        for c in &set {
            assert!(
                c.contains("; Path=/; Max-Age=3500; HttpOnly; SameSite=Lax; Secure"),
                "{c}"
            );
            assert!(c.len() < 4096, "{} bytes", c.len());
            assert!(!c.contains("Domain"), "host-only");
        }
        let back = sent_back(&set);
        let pairs = back.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        assert_eq!(
            Session::from_cookies(pairs, &keys(), &rules(), 1100).unwrap(),
            s
        );
    }

    #[test]
    fn big_sessions_split_and_stale_pieces_are_expired() {
        let s = session(6000);
        let set = s.set_cookies(&keys(), &rules(), 1100, 0).unwrap();
        assert!(set.len() >= 4, "{} cookies", set.len());
        let back = sent_back(&set);
        let pairs = back.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        assert_eq!(
            Session::from_cookies(pairs, &keys(), &rules(), 1100).unwrap(),
            s
        );
        // A smaller session later clears the pieces it no longer needs.
        let small = session(100)
            .set_cookies(&keys(), &rules(), 1100, set.len())
            .unwrap();
        assert!(
            small
                .iter()
                .any(|c| c.starts_with("__Host-s.3=;") && c.contains("Max-Age=0"))
        );
    }

    #[test]
    fn tampered_foreign_or_old_sessions_are_no_session() {
        let set = session(100)
            .set_cookies(&keys(), &rules(), 1100, 0)
            .unwrap();
        let back = sent_back(&set);
        let value = &back[0].1;
        let mut flipped = value.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let open = |v: &str, now: i64, k: &SealKeys| {
            Session::from_cookies([("__Host-s", v)], k, &rules(), now)
        };
        assert!(open(value, 1100, &keys()).is_some());
        assert!(open(&flipped, 1100, &keys()).is_none(), "tampered");
        let foreign = SealKeys::from_text(&"17".repeat(32)).unwrap();
        assert!(
            open(value, 1100, &foreign).is_none(),
            "another deployment's key"
        );
        assert!(
            open(value, 1000 + 3600, &keys()).is_none(),
            "past the maximum age"
        );
        assert!(open("garbage", 1100, &keys()).is_none());
    }

    #[test]
    fn signing_out_expires_every_piece() {
        let cleared = clear_cookies(&rules(), 3);
        assert_eq!(cleared.len(), 3);
        assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
        assert!(cleared[2].starts_with("__Host-s.2=;"));
    }
}
