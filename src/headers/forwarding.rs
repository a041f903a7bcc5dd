//! The computed forwarding headers: `X-Forwarded-For`/`-Proto`/`-Host`/`-Port`,
//! `Forwarded` and `Via`, extended from a trusted proxy's hops or replaced.

use std::net::IpAddr;

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// TCP peer (`None` on a unix socket).
    pub peer: Option<IpAddr>,
    /// Whether the peer is a trusted proxy whose `X-Forwarded-For` is extended.
    pub trusted_peer: bool,
    /// `https` when the listener terminated TLS.
    pub proto: &'a str,
    /// The validated host.
    pub host: &'a str,
    /// Listener port.
    pub port: u16,
    /// Inbound protocol version (for `Via`).
    pub version: Version,
    /// `Via` pseudonym.
    pub via: &'a str,
}

/// What a client said about earlier hops; honoured only from trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct PriorHops {
    /// `X-Forwarded-For` values, joined.
    pub xff: Option<String>,
    /// `X-Forwarded-Proto`, if `http` or `https`.
    pub proto: Option<String>,
    /// `X-Forwarded-Host`, if a valid authority.
    pub host: Option<String>,
    /// `X-Forwarded-Port`, if a port number.
    pub port: Option<String>,
}

/// Reads the client's `X-Forwarded-*` (call before [`super::strip_inbound`]), keeping only
/// well-formed values; used only when the peer is a trusted proxy.
#[must_use]
pub fn prior_hops(headers: &HeaderMap) -> PriorHops {
    let one = |name: &str| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim).map(str::to_owned),
            _ => None,
        }
    };
    let parts: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    PriorHops {
        xff: (!parts.is_empty()).then(|| parts.join(", ")),
        proto: one("x-forwarded-proto")
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https"),
        host: one("x-forwarded-host").filter(|h| {
            h.parse::<http::uri::Authority>()
                .is_ok_and(|a| !a.as_str().contains('@'))
        }),
        port: one("x-forwarded-port").filter(|p| p.parse::<u16>().is_ok()),
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host/-Port` and appends to `Via`: computed from the
/// connection, except that a trusted proxy's well-formed values are kept (its XFF chain
/// extended with its own address).
pub fn set_forwarding(headers: &mut HeaderMap, f: &Forwarding<'_>, prior: PriorHops) {
    // A unix-socket peer is local: there is no address to add, only a trusted chain.
    let peer = f.peer.map(|p| p.to_canonical().to_string());
    let prior = if f.trusted_peer {
        prior
    } else {
        PriorHops::default()
    };
    let xff = match (prior.xff, peer) {
        (Some(prev), Some(peer)) => Some(format!("{prev}, {peer}")),
        (prev, None) => prev,
        (None, peer) => peer,
    };
    let set = |h: &mut HeaderMap, name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::try_from(v) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    if let Some(xff) = xff {
        set(headers, "x-forwarded-for", xff);
    }
    set(
        headers,
        "x-forwarded-proto",
        prior.proto.unwrap_or_else(|| f.proto.to_owned()),
    );
    match prior.host {
        Some(h) => set(headers, "x-forwarded-host", h),
        None if !f.host.is_empty() => set(headers, "x-forwarded-host", f.host.to_owned()),
        None => {}
    }
    // A unix-socket listener has no port to report.
    match prior.port {
        Some(p) => set(headers, "x-forwarded-port", p),
        None if f.port != 0 => set(headers, "x-forwarded-port", f.port.to_string()),
        None => {}
    }
    let proto = match f.version {
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        _ => "1.1",
    };
    if let Ok(v) = HeaderValue::try_from(format!("{proto} {}", f.via)) {
        headers.append(header::VIA, v);
    }
}
