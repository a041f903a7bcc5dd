//! Header-name facts every layer needs, with no dependency on the rest of the crate:
//! the hop-by-hop and framing headers a proxy never forwards, and the normal form
//! (lower case, `_` read as `-`) in which header names are compared, and the
//! non-standard names the request path uses, as constants (a `&str` name is parsed on
//! every map access).

use http::header::{self, HeaderName};

/// Hop-by-hop and framing headers a proxy never forwards (RFC 9110 7.6.1, plus the
/// legacy and proxy-credential ones).
pub(crate) const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
    "http2-settings",
];

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// True for hop-by-hop and framing header names.
#[must_use]
pub fn is_hop_by_hop_or_framing(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name == header::CONTENT_LENGTH
}

/// Lower-cases a header name and maps `_` to `-`, the form backends (CGI, WSGI, PHP)
/// collapse names to.
#[must_use]
pub fn normalize_header_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                char::from(b.to_ascii_lowercase())
            }
        })
        .collect()
}

/// Whether two header names are equal in normal form (ASCII case-insensitive, `_` read
/// as `-`), without building the normal form.
#[must_use]
pub fn same_header_name(a: &str, b: &str) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}
