//! Header-name facts every layer needs, with no dependency on the rest of the crate:
//! the hop-by-hop and framing headers a proxy never forwards, and the normal form
//! (lower case, `_` read as `-`) in which header names are compared.

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
