//! Finding the bearer credential (RFC 6750): the `Authorization` header, or the query
//! parameter or cookie a route opted in to, read through the one credential parser
//! (`crate::credential`); more than one is an invalid request.

use http::request::Parts;
use http::{Method, header};

use super::Denial;
use crate::config::RouteConfig;
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

/// The bearer credential, from the `Authorization` header, or from the query parameter
/// or cookie a route opted in to (browsers cannot set headers on WebSockets). Offering
/// more than one is an invalid request (RFC 6750 section 2).
pub(super) fn extract<'a>(
    parts: &'a Parts,
    route: &'a RouteConfig,
) -> Result<Credential<'a>, Denial> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let header_token = match values.next() {
        None => None,
        Some(_) if values.next().is_some() => return Err(Denial::InvalidRequest),
        Some(value) => {
            let value = value.to_str().map_err(|_| Denial::InvalidRequest)?;
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            // Basic, Digest, ...: no bearer credential was offered.
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim_start_matches(' '))
        }
    };
    let query_name = if route.token_query_param.is_empty() {
        "access_token"
    } else {
        route.token_query_param.as_str()
    };
    let query_token = match parts.uri.query() {
        Some(q) => single(credential::query_values(q, query_name))?,
        None => None,
    };
    let cookie_token = if route.token_cookie.is_empty() {
        None
    } else {
        single(credential::cookie_values(
            &parts.headers,
            &route.token_cookie,
        ))?
    };
    let accepted_query = query_token.filter(|_| !route.token_query_param.is_empty());
    let offered = [
        header_token.is_some(),
        query_token.is_some(),
        cookie_token.is_some(),
    ];
    if offered.iter().filter(|o| **o).count() > 1 {
        return Err(Denial::InvalidRequest);
    }
    Ok(match header_token.or(accepted_query).or(cookie_token) {
        Some(t) => Credential::Bearer(t),
        None => Credential::None,
    })
}

pub(super) fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
