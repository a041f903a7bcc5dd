//! PURE: header hygiene. Validates `Host` and `Connection`, strips everything a client
//! must not be able to set (hop-by-hop, `Connection`-named, identity headers in every
//! case and `_`/`-` spelling, forwarding and path-override headers), then injects the
//! verified identity and computed `X-Forwarded-*` / `Via`. Strip always runs before set,
//! on every path, public routes and preflights included.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{StatusCode, Version};

use crate::config::{IdentityConfig, normalize_header_name};

mod forwarding;
mod identity;
pub use forwarding::{Forwarding, ForwardingValues, PriorHops, prior_hops, set_forwarding};
pub use identity::{encode_value, inject_identity};

/// A request refused for its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// HTTP/1.1 without `Host`, several `Host`s, an invalid one, or `:authority` and
    /// `Host` that disagree.
    #[error("missing, duplicate or invalid Host")]
    BadHost,
    /// `Host` not in `allowed_hosts`.
    #[error("host not served here")]
    MisdirectedHost,
    /// `Connection` names a header the proxy relies on.
    #[error("Connection names a protected header")]
    ProtectedConnectionOption,
}

impl HeaderError {
    /// Status to answer with.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadHost | Self::ProtectedConnectionOption => StatusCode::BAD_REQUEST,
            Self::MisdirectedHost => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// Metric label.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadHost => "bad_host",
            Self::MisdirectedHost => "misdirected_host",
            Self::ProtectedConnectionOption => "bad_connection_header",
        }
    }
}

/// Headers that tell a proxy or framework which client, scheme, host, path or method a
/// request came for; only the proxy may say that, so client copies are always removed.
/// The method-override family is here: frameworks run the handler the header names, so
/// a `POST` admitted by a rule could run as `DELETE`.
const FORWARDING: [&str; 10] = [
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-original-method",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-envoy-original-path",
];

/// Prefix of the identity headers an AWS Application Load Balancer sets after its own
/// Cognito/OIDC sign-in (`X-Amzn-Oidc-Data`, `-Identity`, `-Accesstoken`). Backends that
/// used to sit behind an ALB trust them; no client may send them, trusted proxy or not.
const ALB_IDENTITY_PREFIX: &str = "x-amzn-oidc-";

/// Client-address headers set by CDNs and load balancers. Backends use them for
/// allow-lists and audit logs, so they are kept only from `trusted_proxies` (a CDN in
/// front of the sidecar sets them) and removed from everyone else.
const CLIENT_ADDRESS: [&str; 5] = [
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
];

/// Headers a `Connection` option may not name: removing them would change framing,
/// routing or authentication.
const PROTECTED: [&str; 4] = [
    "host",
    "content-length",
    "transfer-encoding",
    "authorization",
];

use crate::header_names::{HOP_BY_HOP, same_header_name};

/// The options a `Connection` header names (trimmed, as sent), read once per map:
/// compared with names in normal form by [`ConnectionOptions::names`].
struct ConnectionOptions<'a> {
    /// The first options; most messages name one (`keep-alive`, `close`) or none.
    first: [&'a str; 4],
    len: usize,
    /// Every value, read again per name, when there are more options than `first` holds.
    more: Option<header::GetAll<'a, HeaderValue>>,
}

impl<'a> ConnectionOptions<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let all = headers.get_all(header::CONNECTION);
        let mut options = Self {
            first: [""; 4],
            len: 0,
            more: None,
        };
        let mut overflow = false;
        for option in tokens(&all) {
            match options.first.get_mut(options.len) {
                Some(slot) => *slot = option,
                None => {
                    overflow = true;
                    break;
                }
            }
            options.len += 1;
        }
        if overflow {
            options.more = Some(all);
        }
        options
    }

    /// Whether an option names `name` (ASCII case-insensitive, `_` read as `-`).
    fn names(&self, name: &str) -> bool {
        match &self.more {
            Some(all) => tokens(all).any(|t| same_header_name(t, name)),
            None => self
                .first
                .iter()
                .take(self.len)
                .any(|t| same_header_name(t, name)),
        }
    }
}

fn tokens<'a>(all: &header::GetAll<'a, HeaderValue>) -> impl Iterator<Item = &'a str> {
    all.iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Names to remove, collected before the map changes: up to four without allocating.
#[derive(Default)]
struct Doomed {
    first: [Option<HeaderName>; 4],
    more: Vec<HeaderName>,
}

impl Doomed {
    fn push(&mut self, name: HeaderName) {
        match self.first.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(name),
            None => self.more.push(name),
        }
    }

    fn remove_from(self, headers: &mut HeaderMap) {
        for name in self.first.into_iter().flatten().chain(self.more) {
            headers.remove(name);
        }
    }
}

/// Validates `Host` / `:authority` and `Connection`; returns the host the request is
/// for (lower-cased, port kept).
///
/// # Errors
/// [`HeaderError`].
pub fn check_request(parts: &Parts, allowed_hosts: &[String]) -> Result<String, HeaderError> {
    check_host(parts, allowed_hosts)
}

fn check_host(parts: &Parts, allowed_hosts: &[String]) -> Result<String, HeaderError> {
    let connection = ConnectionOptions::of(&parts.headers);
    if PROTECTED.iter().any(|p| connection.names(p)) {
        return Err(HeaderError::ProtectedConnectionOption);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HeaderError::BadHost);
    }
    let header_host = match first {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<http::uri::Authority>().ok())
                .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
                .ok_or(HeaderError::BadHost)?,
        ),
        None => None,
    };
    // Absolute-form (HTTP/1.1) or :authority (HTTP/2) wins over Host.
    let host = match (parts.uri.authority(), header_host) {
        (Some(a), Some(h))
            if parts.version == Version::HTTP_2 && !a.as_str().eq_ignore_ascii_case(h.as_str()) =>
        {
            return Err(HeaderError::BadHost);
        }
        (Some(a), _) => a.clone(),
        (None, Some(h)) => h,
        // HTTP/1.0 may omit Host, but an allow-list cannot admit a request for no host.
        (None, None) if parts.version == Version::HTTP_10 && allowed_hosts.is_empty() => {
            return Ok(String::new());
        }
        (None, None) if parts.version == Version::HTTP_10 => {
            return Err(HeaderError::MisdirectedHost);
        }
        (None, None) => return Err(HeaderError::BadHost),
    };
    if host.as_str().contains('@') {
        return Err(HeaderError::BadHost);
    }
    if !allowed_hosts.is_empty() {
        let bare = host.host().to_ascii_lowercase();
        let full = host.as_str().to_ascii_lowercase();
        if !allowed_hosts.iter().any(|h| *h == bare || *h == full) {
            return Err(HeaderError::MisdirectedHost);
        }
    }
    Ok(host.as_str().to_ascii_lowercase())
}

/// What [`strip_inbound`] removes besides the fixed lists.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Identity settings (the reserved prefix).
    pub identity: &'a IdentityConfig,
    /// The identity header names this proxy sets, normalized.
    pub managed: &'a [String],
    /// The operator's extra `strip_headers`, normalized.
    pub extra: &'a [String],
    /// The peer is a trusted proxy: its client-address headers are kept.
    pub trusted_peer: bool,
    /// Keep `Authorization`: `forward_authorization` is on *and* this request was
    /// admitted with the verified token it carries.
    pub keep_authorization: bool,
}

/// Removes from a client request everything only the proxy may set: hop-by-hop headers
/// and whatever `Connection` names, identity headers (configured names, the reserved
/// prefix and ALB's `X-Amzn-Oidc-*`, compared case-insensitively with `_` read as `-`),
/// forwarding, method- and path-override headers, client-address headers from untrusted
/// peers, the operator's `strip_headers`, `Expect` (already satisfied by the proxy) and
/// `Authorization` unless [`Inbound::keep_authorization`]. Also used on request trailers.
pub fn strip_inbound(headers: &mut HeaderMap, rules: &Inbound<'_>) {
    let Inbound {
        identity,
        managed,
        extra,
        trusted_peer,
        keep_authorization,
    } = *rules;
    let connection = ConnectionOptions::of(headers);
    let mut doomed = Doomed::default();
    for name in headers.keys() {
        let n = name.as_str();
        // Header names are already lower case; only `_` needs mapping, and rarely.
        let norm: std::borrow::Cow<'_, str> = if n.contains('_') {
            std::borrow::Cow::Owned(normalize_header_name(n))
        } else {
            std::borrow::Cow::Borrowed(n)
        };
        if HOP_BY_HOP.contains(&norm.as_ref())
            || FORWARDING.contains(&norm.as_ref())
            || norm.starts_with("x-forwarded-")
            || norm.starts_with(ALB_IDENTITY_PREFIX)
            || (!trusted_peer && CLIENT_ADDRESS.contains(&norm.as_ref()))
            || extra.iter().any(|m| m == norm.as_ref())
            || connection.names(&norm)
            || managed.iter().any(|m| m == norm.as_ref())
            || identity
                .header_prefix
                .as_deref()
                .is_some_and(|p| norm.starts_with(p))
            || *name == header::EXPECT
            || (*name == header::AUTHORIZATION && !keep_authorization)
        {
            doomed.push(name.clone());
        }
    }
    doomed.remove_from(headers);
}

/// Removes one cookie from every `Cookie` header, keeping the others.
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let values: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| crate::credential::cookie_header_without(v, name))
        .collect();
    headers.remove(header::COOKIE);
    for v in values {
        if let Ok(v) = HeaderValue::try_from(v) {
            headers.append(header::COOKIE, v);
        }
    }
}

/// Removes hop-by-hop headers, and whatever `Connection` names, from an upstream response.
pub fn strip_response(headers: &mut HeaderMap) {
    let connection = ConnectionOptions::of(headers);
    let mut doomed = Doomed::default();
    for name in headers.keys() {
        // Names are already lower case; `names` reads `_` as `-`.
        if HOP_BY_HOP.contains(&name.as_str()) || connection.names(name.as_str()) {
            doomed.push(name.clone());
        }
    }
    doomed.remove_from(headers);
}

#[cfg(test)]
mod tests {
    use super::identity::encode_list;
    use super::*;
    use crate::config::Config;
    #[allow(unused_imports, reason = "some tests decode")]
    use base64::Engine as _;

    fn identity_cfg() -> IdentityConfig {
        Config::from_toml(
            r#"
            listen = "127.0.0.1:1"
            upstream = "http://127.0.0.1:2"
            [[pools]]
            id = "us-east-1_X1"
            client_ids = ["c"]
            token_use = ["access"]
            [identity.claims]
            "custom:tenant" = "X-Tenant"
            "#,
        )
        .expect("config")
        .identity
    }

    fn managed(cfg: &IdentityConfig) -> Vec<String> {
        cfg.managed_headers()
            .iter()
            .map(|h| normalize_header_name(h.as_str()))
            .collect()
    }

    fn rules<'a>(cfg: &'a IdentityConfig, managed: &'a [String], trusted: bool) -> Inbound<'a> {
        Inbound {
            identity: cfg,
            managed,
            extra: &[],
            trusted_peer: trusted,
            keep_authorization: false,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let cfg = identity_cfg();
        let mut h = map(&[
            ("X-Auth-Sub", "admin"),
            ("x-auth-groups", "admins"),
            ("X_Auth_User_Id", "admin"),
            ("x_tenant", "t1"),
            ("X-Tenant", "t1"),
            ("accept", "*/*"),
        ]);
        strip_inbound(&mut h, &rules(&cfg, &managed(&cfg), false));
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let cfg = identity_cfg();
        let mut h = map(&[
            ("connection", "close, X-Custom"),
            ("x-custom", "1"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAA"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("x-forwarded-for", "1.2.3.4"),
            ("X-Forwarded-Uri", "/public/"),
            ("forwarded", "for=1.2.3.4"),
            ("x-original-url", "/public/"),
            ("authorization", "Bearer x"),
            ("expect", "100-continue"),
        ]);
        strip_inbound(&mut h, &rules(&cfg, &managed(&cfg), false));
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn method_override_alb_identity_and_client_address_headers_are_removed_from_clients() {
        let cfg = identity_cfg();
        let managed = managed(&cfg);
        let all = [
            ("X-HTTP-Method", "DELETE"),
            ("x_method_override", "DELETE"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Original-Method", "DELETE"),
            ("X-Amzn-Oidc-Data", "e30.e30.x"),
            ("x_amzn_oidc_identity", "admin"),
            ("X-Amzn-Oidc-Accesstoken", "t"),
            ("True-Client-IP", "10.0.0.1"),
            ("X-Client-IP", "10.0.0.1"),
            ("CF_Connecting_IP", "10.0.0.1"),
            ("X-Cluster-Client-IP", "10.0.0.1"),
            ("Fastly-Client-IP", "10.0.0.1"),
            ("x-legacy-user", "admin"),
        ];
        let extra = vec!["x-legacy-user".to_owned()];
        let mut h = map(&all);
        strip_inbound(
            &mut h,
            &Inbound {
                extra: &extra,
                ..rules(&cfg, &managed, false)
            },
        );
        assert!(h.is_empty(), "{h:?}");
        // A trusted proxy (a CDN in front) keeps its client-address headers, never the
        // ALB identity or method overrides.
        let mut h = map(&all);
        strip_inbound(&mut h, &rules(&cfg, &managed, true));
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            [
                "cf_connecting_ip",
                "fastly-client-ip",
                "true-client-ip",
                "x-client-ip",
                "x-cluster-client-ip",
                "x-legacy-user"
            ]
        );
    }

    #[test]
    fn authorization_is_kept_only_when_asked() {
        let cfg = identity_cfg();
        let managed = managed(&cfg);
        let mut h = map(&[("authorization", "Bearer x")]);
        strip_inbound(
            &mut h,
            &Inbound {
                keep_authorization: true,
                ..rules(&cfg, &managed, false)
            },
        );
        assert!(h.contains_key("authorization"));
    }

    #[test]
    fn upstream_response_hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "x-a"),
            ("x-a", "1"),
            ("keep-alive", "1"),
            ("content-type", "text/plain"),
        ]);
        strip_response(&mut h);
        assert_eq!(h.len(), 1);
    }

    fn parts(version: Version, uri: &str, hdrs: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().version(version).uri(uri);
        for (k, v) in hdrs {
            b = b.header(*k, *v);
        }
        b.body(()).expect("req").into_parts().0
    }

    #[test]
    fn host_is_required_once_on_http11() {
        assert_eq!(
            check_request(&parts(Version::HTTP_11, "/", &[]), &[]),
            Err(HeaderError::BadHost)
        );
        assert_eq!(
            check_request(
                &parts(Version::HTTP_11, "/", &[("host", "a"), ("host", "a")]),
                &[]
            ),
            Err(HeaderError::BadHost)
        );
        assert_eq!(
            check_request(&parts(Version::HTTP_11, "/", &[("host", "A:80")]), &[]).as_deref(),
            Ok("a:80")
        );
        assert!(check_request(&parts(Version::HTTP_10, "/", &[]), &[]).is_ok());
        assert_eq!(
            check_request(&parts(Version::HTTP_10, "/", &[]), &["api.example".into()]),
            Err(HeaderError::MisdirectedHost),
            "an allow-list never admits a request for no host"
        );
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let p = parts(
            Version::HTTP_11,
            "http://real.example/x",
            &[("host", "other")],
        );
        assert_eq!(check_request(&p, &[]).as_deref(), Ok("real.example"));
    }

    #[test]
    fn host_allow_list_answers_misdirected() {
        let p = parts(Version::HTTP_11, "/", &[("host", "evil.com")]);
        assert_eq!(
            check_request(&p, &["api.example".into()]),
            Err(HeaderError::MisdirectedHost)
        );
    }

    #[test]
    fn connection_may_not_name_framing_or_auth_headers() {
        for v in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "authorization",
        ] {
            let p = parts(Version::HTTP_11, "/", &[("host", "a"), ("connection", v)]);
            assert_eq!(
                check_request(&p, &[]),
                Err(HeaderError::ProtectedConnectionOption),
                "{v}"
            );
        }
    }

    #[test]
    fn claim_values_are_percent_encoded_and_lists_comma_joined() {
        assert_eq!(encode_value("José, 100%"), "Jos%C3%A9%2C%20100%25");
        assert_eq!(encode_value("a\r\nb\0"), "a%0D%0Ab%00");
        assert_eq!(encode_list(["a,b", "c"]), "a%2Cb,c");
        assert_eq!(encode_list([]), "");
        assert_eq!(encode_value("é%"), "%C3%A9%25");
        assert_eq!(encode_value("plain"), "plain");
    }

    #[test]
    fn forwarding_headers_are_computed_and_trusted_chains_extended() {
        let values = ForwardingValues::new("cognito-sidecar");
        let f = Forwarding {
            peer: Some("10.0.0.9".parse().expect("ip")),
            trusted_peer: false,
            tls: false,
            host: "api.example",
            port: 8080,
            version: Version::HTTP_11,
            values: &values,
        };
        let mut h = HeaderMap::new();
        let spoof = PriorHops {
            xff: Some("6.6.6.6".into()),
            proto: Some("https".into()),
            host: Some("evil".into()),
            port: Some("1".into()),
        };
        set_forwarding(&mut h, &f, spoof.clone());
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["via"], "1.1 cognito-sidecar");
        assert_eq!(h["x-forwarded-proto"], "http");
        let mut h = HeaderMap::new();
        set_forwarding(
            &mut h,
            &Forwarding {
                trusted_peer: true,
                ..f
            },
            spoof,
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil");
    }

    #[test]
    fn forwarding_values_match_every_version_port_and_address_kind() {
        let values = ForwardingValues::new("edge");
        let f = |version, port, peer: &str, host| Forwarding {
            peer: Some(peer.parse().expect("ip")),
            trusted_peer: false,
            tls: true,
            host,
            port,
            version,
            values: &values,
        };
        for (version, via) in [
            (Version::HTTP_10, "1.0 edge"),
            (Version::HTTP_11, "1.1 edge"),
            (Version::HTTP_2, "2 edge"),
        ] {
            let mut h = map(&[("via", "1.1 cdn"), ("host", "Api.Example")]);
            set_forwarding(
                &mut h,
                &f(version, 443, "::ffff:10.0.0.9", "api.example"),
                PriorHops::default(),
            );
            let vias: Vec<_> = h.get_all("via").iter().collect();
            assert_eq!(vias, ["1.1 cdn", via]);
            let names = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"];
            let got: Vec<_> = names.iter().map(|n| &h[*n]).collect();
            assert_eq!(got, ["10.0.0.9", "https", "443"]);
            assert_eq!(h["x-forwarded-host"], "api.example");
        }
        // Another port than the cached one, an IPv6 peer, and no port on a unix socket.
        let mut h = HeaderMap::new();
        set_forwarding(
            &mut h,
            &f(Version::HTTP_11, 8443, "2001:db8::1", ""),
            PriorHops::default(),
        );
        assert_eq!(h["x-forwarded-port"], "8443");
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
        assert!(!h.contains_key("x-forwarded-host"));
        let mut h = HeaderMap::new();
        set_forwarding(
            &mut h,
            &f(Version::HTTP_11, 0, "::1", "a"),
            PriorHops::default(),
        );
        assert!(!h.contains_key("x-forwarded-port"));
    }

    #[test]
    fn connection_options_match_names_in_any_case_and_spelling() {
        let few: &[(&str, &str)] = &[
            ("connection", "Keep-Alive, X_Upstream_Secret,,"),
            ("x-upstream-secret", "1"),
            ("x_upstream_secret", "2"),
            ("keep-alive", "timeout=5"),
        ];
        // More options than are read ahead, and more names to remove than held inline.
        let many: &[(&str, &str)] = &[
            ("connection", "a, b"),
            ("connection", "c, d, e, X_F"),
            ("a", "1"),
            ("c", "1"),
            ("e", "1"),
            ("x-f", "1"),
            ("keep-alive", "1"),
        ];
        for pairs in [few, many] {
            let mut h = map(pairs);
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            strip_response(&mut h);
            let kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            assert_eq!(kept, ["content-type"]);
        }
        let p = parts(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("connection", "close, Content_Length")],
        );
        assert_eq!(
            check_request(&p, &[]),
            Err(HeaderError::ProtectedConnectionOption)
        );
    }
}
