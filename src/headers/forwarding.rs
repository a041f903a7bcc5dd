//! The computed forwarding headers: `X-Forwarded-For`/`-Proto`/`-Host`/`-Port`,
//! `Forwarded` and `Via`, extended from a trusted proxy's hops or replaced.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;

use http::Version;
use http::header::{self, HeaderMap, HeaderValue};

use crate::header_names::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PORT, X_FORWARDED_PROTO};

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// TCP peer (`None` on a unix socket).
    pub peer: Option<IpAddr>,
    /// Whether the peer is a trusted proxy whose `X-Forwarded-For` is extended.
    pub trusted_peer: bool,
    /// The listener terminated TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The validated host.
    pub host: &'a str,
    /// Listener port.
    pub port: u16,
    /// Inbound protocol version (for `Via`).
    pub version: Version,
    /// The values that are the same for every request of this configuration.
    pub values: &'a ForwardingValues,
}

/// The forwarding header values that do not change from request to request (`Via` for
/// each protocol version, `X-Forwarded-Port` of the listener): built once per
/// configuration and cloned per request, which shares their bytes.
#[derive(Debug)]
pub struct ForwardingValues {
    /// `Via` for HTTP/1.0, HTTP/1.1 and HTTP/2 (`None` if the pseudonym cannot be a
    /// header value: no `Via` is sent, as before).
    via: [Option<HeaderValue>; 3],
    /// `X-Forwarded-Port` of the first listener port seen.
    port: OnceLock<(u16, HeaderValue)>,
}

impl ForwardingValues {
    /// The values for a `Via` pseudonym.
    #[must_use]
    pub fn new(via: &str) -> Self {
        let value = |proto: &str| HeaderValue::try_from(format!("{proto} {via}")).ok();
        Self {
            via: [value("1.0"), value("1.1"), value("2")],
            port: OnceLock::new(),
        }
    }

    fn via(&self, version: Version) -> Option<&HeaderValue> {
        let i = match version {
            Version::HTTP_10 => 0,
            Version::HTTP_2 => 2,
            _ => 1,
        };
        self.via[i].as_ref()
    }

    fn port(&self, port: u16) -> HeaderValue {
        let (cached, value) = self.port.get_or_init(|| (port, HeaderValue::from(port)));
        if *cached == port {
            value.clone()
        } else {
            HeaderValue::from(port)
        }
    }
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
    let one = |name: header::HeaderName| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim).map(str::to_owned),
            _ => None,
        }
    };
    let parts: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    PriorHops {
        xff: (!parts.is_empty()).then(|| parts.join(", ")),
        proto: one(X_FORWARDED_PROTO)
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https"),
        host: one(X_FORWARDED_HOST).filter(|h| {
            h.parse::<http::uri::Authority>()
                .is_ok_and(|a| !a.as_str().contains('@'))
        }),
        port: one(X_FORWARDED_PORT).filter(|p| p.parse::<u16>().is_ok()),
    }
}

/// `X-Forwarded-Proto` for a scheme (`http` or `https`, the only ones kept).
fn proto_value(proto: &str) -> HeaderValue {
    if proto == "https" {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    }
}

/// An address as a header value, formatted on the stack and copied once.
fn address_value(ip: IpAddr) -> Option<HeaderValue> {
    // The longest address (an IPv4-mapped IPv6 one) is 45 characters.
    let mut buf = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(buf.get(..len)?).ok()
}

/// Sets `X-Forwarded-For/-Proto/-Host/-Port` and appends to `Via`: computed from the
/// connection, except that a trusted proxy's well-formed values are kept (its XFF chain
/// extended with its own address). Values that do not change per request are clones
/// of [`ForwardingValues`]; a `Host` header spelled exactly like the validated host is
/// reused as `X-Forwarded-Host`.
pub fn set_forwarding(headers: &mut HeaderMap, f: &Forwarding<'_>, prior: PriorHops) {
    // A unix-socket peer is local: there is no address to add, only a trusted chain.
    let peer = f.peer.map(|p| p.to_canonical());
    let prior = if f.trusted_peer {
        prior
    } else {
        PriorHops::default()
    };
    let xff = match (prior.xff, peer) {
        (Some(prev), Some(peer)) => {
            let peer = peer.to_string();
            let mut chain = String::with_capacity(prev.len() + 2 + peer.len());
            chain.push_str(&prev);
            chain.push_str(", ");
            chain.push_str(&peer);
            HeaderValue::try_from(chain).ok()
        }
        (Some(prev), None) => HeaderValue::try_from(prev).ok(),
        (None, Some(peer)) => address_value(peer),
        (None, None) => None,
    };
    if let Some(xff) = xff {
        headers.insert(X_FORWARDED_FOR, xff);
    }
    let proto = match prior.proto {
        Some(p) => proto_value(&p),
        None => proto_value(if f.tls { "https" } else { "http" }),
    };
    headers.insert(X_FORWARDED_PROTO, proto);
    let host = match prior.host {
        Some(h) => HeaderValue::try_from(h).ok(),
        None if !f.host.is_empty() => match headers.get(header::HOST) {
            Some(v) if v.as_bytes() == f.host.as_bytes() => Some(v.clone()),
            _ => HeaderValue::from_str(f.host).ok(),
        },
        None => None,
    };
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    // A unix-socket listener has no port to report.
    let port = match prior.port {
        Some(p) => HeaderValue::try_from(p).ok(),
        None if f.port != 0 => Some(f.values.port(f.port)),
        None => None,
    };
    if let Some(port) = port {
        headers.insert(X_FORWARDED_PORT, port);
    }
    if let Some(via) = f.values.via(f.version) {
        headers.append(header::VIA, via.clone());
    }
}
