//! `token_sources` (top level, and per route): where a credential may come from. One
//! model for every source: `"bearer"` (`Authorization: Bearer <jwt>`, the default),
//! `"raw"` (`Authorization: <jwt>`, as API Gateway's Cognito authorizer and Amplify
//! send it), `"header:NAME"`, `"query:NAME"` and `"cookie:NAME"`. The older route keys
//! `token_query_param` and `token_cookie` add a query or cookie source.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;

use super::validate::{Root, Validator};

/// One place a credential may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// `Authorization: <jwt>` with no scheme; only a compact JWS counts.
    Raw,
    /// The whole value of a header (a leading `Bearer ` is allowed).
    Header(HeaderName),
    /// A query parameter; removed before forwarding.
    Query(String),
    /// A cookie; removed before forwarding.
    Cookie(String),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer => f.write_str("bearer"),
            Self::Raw => f.write_str("raw"),
            Self::Header(h) => write!(f, "header:{h}"),
            Self::Query(q) => write!(f, "query:{q}"),
            Self::Cookie(c) => write!(f, "cookie:{c}"),
        }
    }
}

/// Query parameter and cookie names: letters, digits, `-`, `_`, `.`.
pub(super) fn is_token_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Headers that cannot carry a credential of their own: `Authorization` (use `bearer`
/// or `raw`) and the ones the proxy or HTTP itself owns.
const NOT_A_SOURCE: &[&str] = &[
    "authorization",
    "host",
    "cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "x-forwarded-for",
    "x-request-id",
];

impl TokenSource {
    /// Parses one source as written in the configuration.
    ///
    /// # Errors
    /// What is wrong with it, for the problem list.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "bearer" => Ok(Self::Bearer),
            None if s == "raw" => Ok(Self::Raw),
            Some(("header", name)) => {
                let h = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a header name"))?;
                if NOT_A_SOURCE.contains(&h.as_str()) {
                    return Err(format!(
                        "{name:?} cannot be a token source header (Authorization is \"bearer\" or \"raw\")"
                    ));
                }
                Ok(Self::Header(h))
            }
            Some(("query", name)) if is_token_name(name) => Ok(Self::Query(name.to_owned())),
            Some(("cookie", name)) if is_token_name(name) => Ok(Self::Cookie(name.to_owned())),
            Some(("query" | "cookie", name)) => Err(format!(
                "{name:?}: query parameter and cookie names are letters, digits, '-', '_', '.'"
            )),
            _ => Err(format!(
                "{s:?} is not a token source: \"bearer\", \"raw\", \"header:NAME\", \"query:NAME\" or \"cookie:NAME\""
            )),
        }
    }
}

/// The default: `Authorization: Bearer` only.
#[must_use]
pub fn default_sources() -> Arc<[TokenSource]> {
    Arc::from([TokenSource::Bearer])
}

impl Validator {
    /// A list of sources under `key`: each valid, no duplicates, not empty.
    pub(super) fn source_list(&mut self, key: &str, raw: &[String]) -> Option<Vec<TokenSource>> {
        if raw.is_empty() {
            self.problem(key, "name at least one source (\"bearer\" is the default)");
            return None;
        }
        let before = self.problems.len();
        let mut out: Vec<TokenSource> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            match TokenSource::parse(s) {
                Ok(src) if out.contains(&src) => {
                    self.problem(&format!("{key}[{i}]"), format!("{s:?} is listed twice"));
                }
                Ok(src) => out.push(src),
                Err(e) => self.problem(&format!("{key}[{i}]"), e),
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    /// Top-level `token_sources` (default `["bearer"]`).
    pub(super) fn token_sources(&mut self, root: &Root) -> Option<Arc<[TokenSource]>> {
        let raw = self.optional::<Option<Vec<String>>>(root, "token_sources", None)?;
        match raw {
            None => Some(default_sources()),
            Some(list) => self.source_list("token_sources", &list).map(Arc::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    #[test]
    fn sources_parse_in_their_documented_spellings_only() {
        assert_eq!(TokenSource::parse("bearer"), Ok(TokenSource::Bearer));
        assert_eq!(TokenSource::parse("raw"), Ok(TokenSource::Raw));
        assert_eq!(
            TokenSource::parse("header:X-Id-Token"),
            Ok(TokenSource::Header(HeaderName::from_static("x-id-token")))
        );
        assert_eq!(
            TokenSource::parse("cookie:id_token"),
            Ok(TokenSource::Cookie("id_token".into()))
        );
        for bad in [
            "Bearer",
            "header:Authorization",
            "header:",
            "query:a b",
            "jwt",
            "cookie",
        ] {
            assert!(TokenSource::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TokenSource::parse("header:X-Id-Token")
                .map(|s| s.to_string())
                .as_deref(),
            Ok("header:x-id-token")
        );
    }

    #[test]
    fn routes_inherit_the_top_level_sources_and_the_old_keys_add_to_them() {
        let cfg = Config::from_toml(&format!(
            "token_sources = [\"bearer\", \"raw\"]\n{MIN}\n[[routes]]\npath = \"/ws\"\ntoken_query_param = \"t\"\n[[routes]]\npath = \"/gw\"\ntoken_sources = [\"header:X-Id-Token\"]\ntoken_cookie = \"c\""
        ))
        .expect("valid");
        let names = |i: usize| {
            cfg.routes[i]
                .token_sources
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["bearer", "raw", "query:t"]);
        assert_eq!(names(1), ["header:x-id-token", "cookie:c"]);
        let p = problems(&format!(
            "token_sources = []\n{MIN}\n[[routes]]\npath = \"/a\"\ntoken_sources = [\"raw\", \"raw\", \"header:host\"]"
        ));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("token_sources:"), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("routes[0].token_sources[1]:")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("routes[0].token_sources[2]:")),
            "{p:?}"
        );
    }
}
