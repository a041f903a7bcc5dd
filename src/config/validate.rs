//! The validator: turns the top-level tree of values into a [`Config`], collecting
//! every problem (`key: what is wrong`) instead of stopping at the first.
//!
//! This file holds the problem collector, the generic "decode this key" helpers, the
//! top-level keys and the checks that span sections; each section's own checks are in
//! its file (`impl Validator` blocks in `pools.rs`, `routes.rs`, `limits.rs`,
//! `identity.rs`, `tls.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::value::Value;
use http::HeaderName;
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::{
    Config, ListenAddr, LogFormat, PreflightMode, TOP_LEVEL_KEYS, UpstreamProtocol, UpstreamTarget,
    normalize_header_name,
};

/// The configuration as figment hands it over: top-level key -> undecoded value.
pub(super) type Root = BTreeMap<String, Value>;

/// Validates a whole configuration: `Ok` if it has no problem, else every problem.
pub(super) fn validate(root: &Root) -> Result<Config, Vec<String>> {
    let mut v = Validator::default();
    for key in root.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            v.problem(key, "unknown key");
        }
    }
    match v.build(root) {
        Some(cfg) if v.problems.is_empty() => Ok(cfg),
        _ => Err(v.problems),
    }
}

/// Collects problems while decoding; every check records and carries on.
#[derive(Default)]
pub(super) struct Validator {
    /// One line per problem: `key: what is wrong`.
    pub(super) problems: Vec<String>,
}

impl Validator {
    /// Records that `key` is wrong.
    pub(super) fn problem(&mut self, key: &str, msg: impl fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }

    /// Deserializes one value, recording a problem on failure.
    pub(super) fn get<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: Option<&Value>,
    ) -> Option<T> {
        let value = value?;
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e.kind);
                None
            }
        }
    }

    /// Decodes the top-level `key`, which must be present.
    pub(super) fn required<T: DeserializeOwned>(&mut self, root: &Root, key: &str) -> Option<T> {
        if root.get(key).is_none() {
            self.problem(key, "missing required key");
            return None;
        }
        self.get(key, root.get(key))
    }

    /// Decodes the top-level `key`, or gives `default` if it is absent.
    pub(super) fn optional<T: DeserializeOwned>(
        &mut self,
        root: &Root,
        key: &str,
        default: T,
    ) -> Option<T> {
        match root.get(key) {
            None => Some(default),
            Some(v) => self.get(key, Some(v)),
        }
    }

    /// Parses a header name given as `value` (else `default`); empty means "none".
    pub(super) fn header_name(
        &mut self,
        key: &str,
        value: Option<String>,
        default: &str,
    ) -> Option<HeaderName> {
        let name = value.unwrap_or_else(|| default.to_owned());
        if name.is_empty() {
            return None;
        }
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.problem(key, format!("{name:?} is not a valid header name"));
                None
            }
        }
    }

    /// Decodes every top-level key, then runs the checks that span keys.
    fn build(&mut self, root: &Root) -> Option<Config> {
        let listen = self
            .required::<String>(root, "listen")
            .and_then(|l| self.listen_addr(&l));
        let admin_listen =
            self.optional::<SocketAddr>(root, "admin_listen", Config::DEFAULT_ADMIN_LISTEN);
        let upstream = self
            .required::<String>(root, "upstream")
            .and_then(|u| self.upstream(&u));
        let upstream_protocol =
            self.optional(root, "upstream_protocol", UpstreamProtocol::default());
        let upstream_ca_file = self.optional::<Option<PathBuf>>(root, "upstream_ca_file", None);
        let tls = self.tls(root);
        let deny_list = self.deny_list(root);
        let shutdown = self.shutdown(root);
        let cache = self.cache(root);
        let realm = self
            .optional(root, "realm", Config::DEFAULT_REALM.to_owned())
            .and_then(|r| self.quoted_safe("realm", r));
        let via = self
            .optional(root, "via", Config::DEFAULT_VIA.to_owned())
            .and_then(|v| self.via(v));
        let trusted_proxies = self
            .optional::<Vec<String>>(root, "trusted_proxies", Vec::new())
            .map(|list| self.cidrs(&list));
        let allowed_hosts = self
            .optional::<Vec<String>>(root, "allowed_hosts", Vec::new())
            .map(|hs| hs.into_iter().map(|h| h.to_ascii_lowercase()).collect());
        let strip_headers = self
            .optional::<Vec<String>>(root, "strip_headers", Vec::new())
            .map(|names| self.strip_headers(&names));
        let strict_path_encoding = self.optional(
            root,
            "strict_path_encoding",
            Config::DEFAULT_STRICT_PATH_ENCODING,
        );
        let trust_client_request_id = self.optional(
            root,
            "trust_client_request_id",
            Config::DEFAULT_TRUST_CLIENT_REQUEST_ID,
        );
        let preserve_host = self.optional(root, "preserve_host", Config::DEFAULT_PRESERVE_HOST);
        let cors_preflight = self.optional(root, "cors_preflight", PreflightMode::default());
        let log_format = self.optional(root, "log_format", LogFormat::default());
        let log_level = self.optional(root, "log_level", Config::DEFAULT_LOG_LEVEL.to_owned());
        let pools = self.pools(root);
        let token_sources = self.token_sources(root);
        let mode = self.optional(root, "mode", super::RolloutMode::default());
        let routes = self.routes(root, token_sources.as_ref(), mode.unwrap_or_default());
        let limits = self.limits(root);
        let jwks = self.jwks(root);
        let identity = self.identity(root);
        let login = self.login(root, pools.as_deref());
        let alb = self.alb(root, pools.as_deref());
        let assertion = self.assertion(root, identity.as_ref());
        let revocation_check = self.revocation(root);
        if login.as_ref().is_some_and(Option::is_none)
            && let Some(rs) = &routes
        {
            for (i, r) in rs.iter().enumerate() {
                if r.auth == super::AuthMode::Login {
                    self.problem(
                        &format!("routes[{i}].auth"),
                        "\"login\" needs a [login] section (browser sign-in settings)",
                    );
                }
            }
        }

        if let (Some(ListenAddr::Tcp(a)), Some(b)) = (&listen, admin_listen)
            && *a == b
            && a.port() != 0
        {
            self.problem("admin_listen", "must differ from listen");
        }

        if upstream_protocol == Some(UpstreamProtocol::Http2)
            && routes
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|r| r.websocket))
        {
            self.problem(
                "upstream_protocol",
                "WebSocket routes need upstream_protocol = \"http1\"",
            );
        }
        if upstream_ca_file.as_ref().is_some_and(Option::is_some)
            && !matches!(upstream, Some((_, UpstreamTarget::Https)))
        {
            self.problem("upstream_ca_file", "only applies to an https:// upstream");
        }
        Some(Config {
            listen: listen?,
            admin_listen: admin_listen?,
            upstream: upstream.as_ref()?.0.clone(),
            upstream_target: upstream?.1,
            upstream_protocol: upstream_protocol?,
            upstream_ca_file: upstream_ca_file?,
            tls: tls?,
            deny_list: deny_list?,
            shutdown: shutdown?,
            cache: cache?,
            realm: realm?,
            via: via?,
            trusted_proxies: trusted_proxies?,
            allowed_hosts: allowed_hosts?,
            strip_headers: strip_headers?,
            strict_path_encoding: strict_path_encoding?,
            trust_client_request_id: trust_client_request_id?,
            preserve_host: preserve_host?,
            cors_preflight: cors_preflight?,
            log_format: log_format?,
            log_level: log_level?,
            pools: pools?,
            routes: routes?,
            mode: mode?,
            limits: limits?,
            jwks: jwks?,
            identity: identity?,
            login: login?,
            token_sources: token_sources?,
            alb: alb?,
            assertion: assertion?,
            revocation_check: revocation_check?,
        })
    }

    /// `strip_headers`: valid header names, normalized.
    fn strip_headers(&mut self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.problem(
                    &format!("strip_headers[{i}]"),
                    format!("{name:?} is not a valid header name"),
                );
                continue;
            }
            out.push(normalize_header_name(name));
        }
        out
    }

    /// `realm`: fits in an RFC 6750 quoted string.
    fn quoted_safe(&mut self, key: &str, s: String) -> Option<String> {
        // RFC 6750 quoted-string content without '"' and '\'.
        if !s.is_empty()
            && s.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            Some(s)
        } else {
            self.problem(
                key,
                "must be non-empty printable ASCII without '\"' or '\\'",
            );
            None
        }
    }

    /// `via`: a pseudonym token.
    fn via(&mut self, v: String) -> Option<String> {
        if !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            Some(v)
        } else {
            self.problem(
                "via",
                "must be a non-empty token of letters, digits, '-', '.', '_'",
            );
            None
        }
    }

    /// `listen`: `host:port` or `unix:/absolute/path`.
    fn listen_addr(&mut self, l: &str) -> Option<ListenAddr> {
        if let Some(path) = l.strip_prefix("unix:") {
            let path = path.trim_start_matches("//");
            if path.starts_with('/') {
                return Some(ListenAddr::Unix(PathBuf::from(path)));
            }
            self.problem(
                "listen",
                "unix socket paths must be absolute: unix:/run/x.sock",
            );
            return None;
        }
        match l.parse::<SocketAddr>() {
            Ok(a) => Some(ListenAddr::Tcp(a)),
            Err(_) => {
                self.problem(
                    "listen",
                    format!("{l:?} is not an address like 0.0.0.0:8080 or unix:/path"),
                );
                None
            }
        }
    }

    /// `upstream`: `http(s)://host:port` or `unix:///absolute/path`.
    fn upstream(&mut self, u: &str) -> Option<(http::Uri, UpstreamTarget)> {
        if let Some(path) = u.strip_prefix("unix://") {
            if !path.starts_with('/') {
                self.problem(
                    "upstream",
                    "unix socket upstreams look like unix:///run/app.sock",
                );
                return None;
            }
            return Some((
                http::Uri::from_static("http://localhost"),
                UpstreamTarget::Unix(PathBuf::from(path)),
            ));
        }
        let Ok(uri) = u.parse::<http::Uri>() else {
            self.problem("upstream", format!("{u:?} is not a URL"));
            return None;
        };
        let target = match uri.scheme_str() {
            Some("http") => UpstreamTarget::Http,
            Some("https") => UpstreamTarget::Https,
            _ => {
                self.problem("upstream", "must be http://, https:// or unix:///path");
                return None;
            }
        };
        if uri.authority().is_none() {
            self.problem("upstream", "must name a host");
            return None;
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            self.problem(
                "upstream",
                "must not have a path or query (scheme://host:port only)",
            );
            return None;
        }
        Some((uri, target))
    }

    /// `trusted_proxies`: IPs or CIDRs.
    fn cidrs(&mut self, list: &[String]) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => out.push(n),
                Err(_) => self.problem(
                    &format!("trusted_proxies[{i}]"),
                    format!("{s:?} is not an IP or CIDR"),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::MIN;
    use super::*;

    #[test]
    fn the_validator_reads_every_listed_top_level_key() {
        // A value of the wrong shape for every key the list names: each must be
        // answered with a problem naming that key, and none with "unknown key" (a key
        // listed but never read would pass silently).
        let text: String = TOP_LEVEL_KEYS
            .iter()
            .map(|k| format!("{k} = {{ not_a_key = 1 }}\n"))
            .collect();
        let problems = super::super::tests::problems(&text);
        for key in TOP_LEVEL_KEYS {
            assert!(
                problems.iter().any(|p| p.starts_with(&format!("{key}: "))),
                "{key} is listed in TOP_LEVEL_KEYS but the validator does not read it: \
                 {problems:#?}"
            );
        }
        assert!(
            !problems.iter().any(|p| p.ends_with(": unknown key")),
            "{problems:#?}"
        );
    }

    #[test]
    fn top_level_keys_are_listed_once_and_unlisted_ones_are_unknown() {
        let mut seen = std::collections::BTreeSet::new();
        for key in TOP_LEVEL_KEYS {
            assert!(seen.insert(key), "{key} is listed twice");
        }
        let p = super::super::tests::problems(&format!("colour = 1\n{MIN}"));
        assert_eq!(p, ["colour: unknown key"]);
    }

    #[test]
    fn listen_and_upstream_forms() {
        let cfg = Config::from_toml(
            &MIN.replace("127.0.0.1:8080", "unix:/run/p.sock")
                .replace("http://127.0.0.1:3000", "unix:///run/app.sock"),
        )
        .expect("valid");
        assert_eq!(cfg.listen, ListenAddr::Unix(PathBuf::from("/run/p.sock")));
        assert_eq!(
            cfg.upstream_target,
            UpstreamTarget::Unix(PathBuf::from("/run/app.sock"))
        );
        let p =
            super::super::tests::problems(&MIN.replace("http://127.0.0.1:3000", "http://h:1/path"));
        assert_eq!(
            p,
            ["upstream: must not have a path or query (scheme://host:port only)"]
        );
    }
}
