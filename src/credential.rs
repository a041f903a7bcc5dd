//! PURE: the one reader of the places a bearer credential can travel besides the
//! `Authorization` header: query parameters and cookies. Credential extraction (the
//! decision, in `auth`) and credential stripping before forwarding (`proxy`, `headers`)
//! both use these functions, so what is checked and what is removed can never
//! disagree. This module sits below all three and imports none of them.
//!
//! Query parameter names are compared after `application/x-www-form-urlencoded`
//! decoding (`access%5Ftoken` and `access_token` are the same parameter to every
//! backend framework); cookie names are compared exactly, as browsers and servers do.

use http::HeaderMap;
use http::header;

/// Whether one raw `key=value` pair of a query string names the parameter `name`.
#[must_use]
pub fn is_query_param(pair: &str, name: &str) -> bool {
    let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
    if !raw_key.contains(['%', '+']) {
        return raw_key == name;
    }
    form_urlencoded::parse(raw_key.as_bytes())
        .next()
        .is_some_and(|(k, _)| k == name)
}

/// The raw values of every occurrence of the parameter `name` in a query string.
pub fn query_values<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query
        .split('&')
        .filter(move |pair| is_query_param(pair, name))
        .map(|pair| pair.split_once('=').map_or("", |(_, v)| v))
}

/// The query string without any occurrence of the parameter `name` (`None` when
/// nothing is left).
#[must_use]
pub fn query_without(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !is_query_param(pair, name))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The name of one `name=value` cookie pair (surrounding spaces removed).
fn cookie_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(k, _)| k).trim()
}

/// Every cookie of a request as (name, value), across all `Cookie` headers (spaces
/// around names and values removed).
pub fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim(), v.trim()))
        })
}

/// The values of every cookie called `name`, across all `Cookie` headers (quotes
/// around a value removed).
pub fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    cookie_pairs(headers)
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// One `Cookie` header value without the cookie called `name` (`None` when nothing is
/// left).
#[must_use]
pub fn cookie_header_without(value: &str, name: &str) -> Option<String> {
    cookie_header_retain(value, |n| n != name)
}

/// One `Cookie` header value with only the cookies whose name `keep` accepts (`None`
/// when nothing is left).
#[must_use]
pub fn cookie_header_retain(value: &str, keep: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && keep(cookie_name(pair)))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn encoded_parameter_names_are_the_same_parameter() {
        assert!(is_query_param("access_token=a", "access_token"));
        assert!(is_query_param("access%5Ftoken=a", "access_token"));
        assert!(is_query_param("access%5ftoken", "access_token"));
        assert!(!is_query_param("access_tokens=a", "access_token"));
        let q = "a=1&access_token=A&access%5Ftoken=B";
        assert_eq!(
            query_values(q, "access_token").collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(query_without(q, "access_token").as_deref(), Some("a=1"));
        assert_eq!(query_without("access_token=A", "access_token"), None);
    }

    #[test]
    fn cookies_are_read_and_removed_by_the_same_name_rule() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tok=\"A\""));
        h.append(header::COOKIE, HeaderValue::from_static(" tok=B;b=2"));
        assert_eq!(cookie_values(&h, "tok").collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(
            cookie_header_without("a=1; tok=A", "tok").as_deref(),
            Some("a=1")
        );
        assert_eq!(
            cookie_header_without(" tok=B;b=2", "tok").as_deref(),
            Some("b=2")
        );
        assert_eq!(cookie_header_without("tok=B", "tok"), None);
    }
}
