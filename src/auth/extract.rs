//! Finding the bearer credential (RFC 6750): the `Authorization` header, or the query
//! parameter or cookie a route opted in to, read through the one credential parser
//! (`crate::credential`); more than one is an invalid request.

use http::request::Parts;
use http::{Method, header};

use super::Denial;
use crate::config::{RouteConfig, TokenSource};
use crate::credential;

/// RFC 6750 b64token characters: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`
/// and `=`. A credential with anything else (space, quotes, braces: a JSON-serialized
/// JWS) is a malformed *request*; `=` in the wrong place only makes a malformed *token*.
pub(super) fn is_b64token(s: &str) -> bool {
    // Branch-free fold over every byte: the compiler vectorises it (a 1.6 KB token is
    // scanned on every request).
    fn ok(b: u8) -> bool {
        b.is_ascii_alphanumeric()
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
            | (b == b'=')
    }
    !s.is_empty() && s.bytes().fold(true, |all, b| all & ok(b))
}

pub(super) enum Credential<'a> {
    None,
    Bearer(&'a str),
}

/// The only value of a credential source, or `Err` when it occurs more than once (two
/// credentials, even of one kind, are an invalid request).
pub(super) fn single<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Result<Option<&'a str>, Denial> {
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(Denial::InvalidRequest),
        (first, None) => Ok(first),
        (None, Some(_)) => Ok(None),
    }
}

/// Whether `s` is a compact JWS: three non-empty base64url segments. The only thing a
/// scheme-less `Authorization` value may be to count as a raw token.
pub(super) fn is_compact_jws(s: &str) -> bool {
    let mut segments = 0;
    for seg in s.split('.') {
        segments += 1;
        if seg.is_empty()
            || !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}

/// The credential, from the sources the route accepts (`token_sources`: the
/// `Authorization` header as `Bearer` or raw, named headers, query parameters,
/// cookies). Offering more than one is an invalid request (RFC 6750 section 2), and so
/// is an RFC 6750 `access_token` query parameter beside another credential even where
/// the route does not take tokens from the query.
pub(super) fn extract<'a>(
    parts: &'a Parts,
    route: &'a RouteConfig,
) -> Result<Credential<'a>, Denial> {
    let sources = &*route.token_sources;
    let mut offered = 0usize;
    let mut token = None;
    let mut offer = |t: Option<&'a str>| {
        if let Some(t) = t {
            offered += 1;
            token = Some(t);
        }
    };
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(Denial::InvalidRequest),
        (Some(value), None) => {
            let value = value.to_str().map_err(|_| Denial::InvalidRequest)?;
            // `Bearer` with nothing after it (trailing space trimmed) is an empty token.
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            let has_scheme = value.contains(' ') || scheme.eq_ignore_ascii_case("bearer");
            offer(match has_scheme.then_some((scheme, rest)) {
                Some((scheme, rest))
                    if scheme.eq_ignore_ascii_case("bearer")
                        && sources.contains(&TokenSource::Bearer) =>
                {
                    Some(rest.trim_start_matches(' '))
                }
                None if sources.contains(&TokenSource::Raw) && is_compact_jws(value) => Some(value),
                // Basic, Digest, a scheme this route does not take, or an opaque
                // string: no credential was offered.
                _ => None,
            });
        }
        (None, _) => {}
    }
    let mut takes_rfc_query = false;
    for source in sources {
        match source {
            TokenSource::Bearer | TokenSource::Raw => {}
            TokenSource::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let value = match (values.next(), values.next()) {
                    (Some(_), Some(_)) => return Err(Denial::InvalidRequest),
                    (v, _) => v,
                };
                if let Some(v) = value {
                    let v = v.to_str().map_err(|_| Denial::InvalidRequest)?;
                    let v = match v.split_once(' ') {
                        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                            rest.trim_start_matches(' ')
                        }
                        _ => v,
                    };
                    offer(Some(v));
                }
            }
            TokenSource::Query(name) => {
                takes_rfc_query |= name == "access_token";
                if let Some(q) = parts.uri.query() {
                    offer(single(credential::query_values(q, name))?);
                }
            }
            TokenSource::Cookie(name) => {
                offer(single(credential::cookie_values(&parts.headers, name))?);
            }
        }
    }
    if !takes_rfc_query
        && let Some(q) = parts.uri.query()
        && single(credential::query_values(q, "access_token"))?.is_some()
    {
        // Counted, never accepted: this route does not take tokens from the query.
        offered += 1;
    }
    if offered > 1 {
        return Err(Denial::InvalidRequest);
    }
    Ok(match token {
        Some(t) if offered == 1 => Credential::Bearer(t),
        _ => Credential::None,
    })
}

pub(super) fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
