//! Resource bounds and timings: `[limits]` (sizes, timeouts, connection and request
//! caps), `[cache]` (verified-token cache) and `[shutdown]` (drain sequence). Typed
//! settings, their defaults and their checks.

use std::time::Duration;

use super::raw::{RawCache, RawLimits, RawShutdown};
use super::validate::{Root, Validator};

/// Limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest bearer token looked at; longer ones are rejected before parsing.
    pub max_token_bytes: usize,
    /// Largest request header section (hyper's read buffer).
    pub max_header_bytes: usize,
    /// Most request header lines.
    pub max_headers: usize,
    /// A client must finish sending headers within this time; it also bounds the time
    /// from connection start to the first complete request head (any protocol) and
    /// how long an HTTP/2 header block may stay open.
    pub header_read_timeout: Duration,
    /// Upstream TCP connect timeout (502 after it).
    pub upstream_connect_timeout: Duration,
    /// Time allowed for the upstream's response headers, counted from the end of the
    /// request body (504 after it).
    pub upstream_timeout: Duration,
    /// A request body that delivers nothing for this long is abandoned (408).
    pub request_body_timeout: Duration,
    /// Close a bridged WebSocket when the token that opened it expires (plus leeway).
    pub websocket_close_on_token_expiry: bool,
    /// How long idle pooled upstream connections are kept.
    pub upstream_idle_timeout: Duration,
    /// Largest request body; `None` = unlimited (bodies stream).
    pub max_request_body: Option<u64>,
    /// Most concurrent client connections, bridged WebSocket sessions included; more
    /// wait in the accept queue.
    pub max_connections: usize,
    /// Most requests (HTTP/1 requests and HTTP/2 streams) in flight at once across all
    /// connections; more get 503 at once.
    pub max_in_flight_requests: usize,
    /// A response the client takes nothing of for this long is abandoned (HTTP/2: its
    /// stream is reset; HTTP/1: the connection is closed) and its upstream released.
    pub send_timeout: Duration,
    /// Most idle pooled upstream connections kept.
    pub upstream_max_idle_connections: usize,
    /// Most concurrent connections from one client address (IPv6: one /64); more are
    /// closed at once. `None` = no cap. Peers in `trusted_proxies` are exempt.
    pub max_connections_per_ip: Option<usize>,
    /// Most requests in flight from one client address (IPv6: one /64), so one address
    /// cannot take every `max_in_flight_requests` slot; more get 503 at once. `None` =
    /// no cap. Peers in `trusted_proxies` are exempt.
    pub max_in_flight_requests_per_ip: Option<usize>,
    /// Idle client connections (no request progressing, i.e. none waiting on the
    /// upstream; no request bytes arriving; HTTP/2 control frames do not count) are
    /// closed after this.
    pub idle_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// A bridged WebSocket with no traffic either way is closed after this.
    pub websocket_idle_timeout: Duration,
}

/// Defaults of the `[limits]` keys, in the keys' units (`max_request_body_bytes` has
/// none: unlimited).
impl Limits {
    /// `max_token_bytes` (1 KiB to 1 MiB).
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
    /// `max_header_bytes` (at least 8 KiB).
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
    /// `max_headers`.
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// `header_read_timeout_seconds`.
    pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
    /// `upstream_connect_timeout_ms`.
    pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 5000;
    /// `upstream_timeout_seconds`.
    pub const DEFAULT_UPSTREAM_TIMEOUT_SECONDS: u64 = 60;
    /// `request_body_timeout_seconds`.
    pub const DEFAULT_REQUEST_BODY_TIMEOUT_SECONDS: u64 = 30;
    /// `websocket_close_on_token_expiry`.
    pub const DEFAULT_WEBSOCKET_CLOSE_ON_TOKEN_EXPIRY: bool = true;
    /// `upstream_idle_timeout_seconds`.
    pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS: u64 = 90;
    /// `max_connections` (at most 100000000).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    /// `max_in_flight_requests` (at most 100000000).
    pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 128;
    /// `send_timeout_seconds`.
    pub const DEFAULT_SEND_TIMEOUT_SECONDS: u64 = 30;
    /// `upstream_max_idle_connections`.
    pub const DEFAULT_UPSTREAM_MAX_IDLE_CONNECTIONS: usize = 128;
    /// `max_connections_per_ip` (at most 1000000; 0 turns the cap off).
    pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
    /// `max_in_flight_requests_per_ip` (at most 1000000; 0 turns the cap off).
    pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS_PER_IP: usize = 32;
    /// `idle_timeout_seconds`.
    pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;
    /// `h2_max_concurrent_streams`.
    pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
    /// `websocket_idle_timeout_seconds`.
    pub const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_SECONDS: u64 = 600;
}

/// Verified-token cache bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most cached tokens; 0 disables the cache.
    pub max_entries: usize,
    /// Approximate memory bound for cached claims, in bytes.
    pub max_bytes: u64,
}

/// Defaults of the `[cache]` keys.
impl CacheSettings {
    /// `max_entries`.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    /// `max_bytes` (8 MiB).
    pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;
}

/// Shutdown sequence timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// After SIGTERM, keep accepting (with `/readyz` failing) this long.
    pub pre_stop_delay: Duration,
    /// Then stop accepting and give in-flight requests this long.
    pub drain_timeout: Duration,
}

/// Defaults of the `[shutdown]` keys, in seconds.
impl ShutdownSettings {
    /// `pre_stop_delay_seconds`.
    pub const DEFAULT_PRE_STOP_DELAY_SECONDS: u64 = 0;
    /// `drain_timeout_seconds`.
    pub const DEFAULT_DRAIN_TIMEOUT_SECONDS: u64 = 30;
}

impl Validator {
    /// `[limits]`.
    pub(super) fn limits(&mut self, root: &Root) -> Option<Limits> {
        type D = Limits;
        let raw = self.optional::<RawLimits>(root, "limits", RawLimits::default())?;
        let positive = |v: &mut Self, key: &str, val: u64| {
            if val == 0 {
                v.problem(&format!("limits.{key}"), "must be positive");
            }
            val
        };
        // A count of 1 to 100,000,000 (tokio's semaphores hold at most usize::MAX >> 3
        // permits); a bad value is reported and replaced by 1.
        let count = |v: &mut Self, key: &str, val: usize| match val {
            0 => {
                v.problem(&format!("limits.{key}"), "must be positive");
                1
            }
            n if n > 100_000_000 => {
                v.problem(&format!("limits.{key}"), "must be at most 100000000");
                1
            }
            n => n,
        };
        // A per-address cap: 0 turns it off, at most 1,000,000.
        let per_ip = |v: &mut Self, key: &str, val: usize| match val {
            0 => None,
            n if n > 1_000_000 => {
                v.problem(
                    &format!("limits.{key}"),
                    "must be at most 1000000 (0 turns the cap off)",
                );
                None
            }
            n => Some(n),
        };
        let max_token_bytes = raw.max_token_bytes.unwrap_or(D::DEFAULT_MAX_TOKEN_BYTES);
        if !(1024..=1024 * 1024).contains(&max_token_bytes) {
            self.problem("limits.max_token_bytes", "must be between 1024 and 1048576");
        }
        let max_header_bytes = raw.max_header_bytes.unwrap_or(D::DEFAULT_MAX_HEADER_BYTES);
        if max_header_bytes < 8192 {
            self.problem("limits.max_header_bytes", "must be at least 8192");
        }
        let max_headers = raw.max_headers.unwrap_or(D::DEFAULT_MAX_HEADERS);
        if max_headers == 0 {
            self.problem("limits.max_headers", "must be positive");
        }
        Some(Limits {
            max_token_bytes,
            max_header_bytes,
            max_headers,
            header_read_timeout: Duration::from_secs(positive(
                self,
                "header_read_timeout_seconds",
                raw.header_read_timeout_seconds
                    .unwrap_or(D::DEFAULT_HEADER_READ_TIMEOUT_SECONDS),
            )),
            upstream_connect_timeout: Duration::from_millis(positive(
                self,
                "upstream_connect_timeout_ms",
                raw.upstream_connect_timeout_ms
                    .unwrap_or(D::DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS),
            )),
            upstream_timeout: Duration::from_secs(positive(
                self,
                "upstream_timeout_seconds",
                raw.upstream_timeout_seconds
                    .unwrap_or(D::DEFAULT_UPSTREAM_TIMEOUT_SECONDS),
            )),
            websocket_close_on_token_expiry: raw
                .websocket_close_on_token_expiry
                .unwrap_or(D::DEFAULT_WEBSOCKET_CLOSE_ON_TOKEN_EXPIRY),
            request_body_timeout: Duration::from_secs(positive(
                self,
                "request_body_timeout_seconds",
                raw.request_body_timeout_seconds
                    .unwrap_or(D::DEFAULT_REQUEST_BODY_TIMEOUT_SECONDS),
            )),
            upstream_idle_timeout: Duration::from_secs(
                raw.upstream_idle_timeout_seconds
                    .unwrap_or(D::DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS),
            ),
            max_request_body: raw.max_request_body_bytes.filter(|b| *b > 0),
            max_in_flight_requests: count(
                self,
                "max_in_flight_requests",
                raw.max_in_flight_requests
                    .unwrap_or(D::DEFAULT_MAX_IN_FLIGHT_REQUESTS),
            ),
            send_timeout: Duration::from_secs(positive(
                self,
                "send_timeout_seconds",
                raw.send_timeout_seconds
                    .unwrap_or(D::DEFAULT_SEND_TIMEOUT_SECONDS),
            )),
            upstream_max_idle_connections: raw
                .upstream_max_idle_connections
                .unwrap_or(D::DEFAULT_UPSTREAM_MAX_IDLE_CONNECTIONS),
            max_connections: count(
                self,
                "max_connections",
                raw.max_connections.unwrap_or(D::DEFAULT_MAX_CONNECTIONS),
            ),
            max_connections_per_ip: per_ip(
                self,
                "max_connections_per_ip",
                raw.max_connections_per_ip
                    .unwrap_or(D::DEFAULT_MAX_CONNECTIONS_PER_IP),
            ),
            max_in_flight_requests_per_ip: per_ip(
                self,
                "max_in_flight_requests_per_ip",
                raw.max_in_flight_requests_per_ip
                    .unwrap_or(D::DEFAULT_MAX_IN_FLIGHT_REQUESTS_PER_IP),
            ),
            idle_timeout: Duration::from_secs(positive(
                self,
                "idle_timeout_seconds",
                raw.idle_timeout_seconds
                    .unwrap_or(D::DEFAULT_IDLE_TIMEOUT_SECONDS),
            )),
            h2_max_concurrent_streams: match raw
                .h2_max_concurrent_streams
                .unwrap_or(D::DEFAULT_H2_MAX_CONCURRENT_STREAMS)
            {
                0 => {
                    self.problem("limits.h2_max_concurrent_streams", "must be positive");
                    1
                }
                n => n,
            },
            websocket_idle_timeout: Duration::from_secs(positive(
                self,
                "websocket_idle_timeout_seconds",
                raw.websocket_idle_timeout_seconds
                    .unwrap_or(D::DEFAULT_WEBSOCKET_IDLE_TIMEOUT_SECONDS),
            )),
        })
    }

    /// `[cache]`.
    pub(super) fn cache(&mut self, root: &Root) -> Option<CacheSettings> {
        let raw = self.optional::<RawCache>(root, "cache", RawCache::default())?;
        Some(CacheSettings {
            max_entries: raw
                .max_entries
                .unwrap_or(CacheSettings::DEFAULT_MAX_ENTRIES),
            max_bytes: raw.max_bytes.unwrap_or(CacheSettings::DEFAULT_MAX_BYTES),
        })
    }

    /// `[shutdown]`.
    pub(super) fn shutdown(&mut self, root: &Root) -> Option<ShutdownSettings> {
        type D = ShutdownSettings;
        let raw = self.optional::<RawShutdown>(root, "shutdown", RawShutdown::default())?;
        Some(ShutdownSettings {
            pre_stop_delay: Duration::from_secs(
                raw.pre_stop_delay_seconds
                    .unwrap_or(D::DEFAULT_PRE_STOP_DELAY_SECONDS),
            ),
            drain_timeout: Duration::from_secs(
                raw.drain_timeout_seconds
                    .unwrap_or(D::DEFAULT_DRAIN_TIMEOUT_SECONDS),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    #[test]
    fn the_per_ip_connection_cap_defaults_to_256_and_zero_turns_it_off() {
        let cfg = Config::from_toml(MIN).expect("valid");
        assert_eq!(cfg.limits.max_connections_per_ip, Some(256));
        let off = Config::from_toml(&format!("{MIN}\n[limits]\nmax_connections_per_ip = 0"))
            .expect("valid");
        assert_eq!(off.limits.max_connections_per_ip, None);
        let p = problems(&format!(
            "{MIN}\n[limits]\nmax_connections_per_ip = 2000000"
        ));
        assert!(
            p.iter()
                .any(|m| m.starts_with("limits.max_connections_per_ip:")),
            "{p:?}"
        );
    }

    #[test]
    fn the_documented_defaults_apply() {
        // The values README and config.example.toml promise, written out rather than
        // through the constants so that changing a constant fails here.
        let cfg = Config::from_toml(MIN).expect("valid");
        let secs = Duration::from_secs;
        let l = &cfg.limits;
        assert_eq!(
            (l.max_token_bytes, l.max_header_bytes, l.max_headers),
            (16 * 1024, 64 * 1024, 100)
        );
        assert_eq!(l.header_read_timeout, secs(10));
        assert_eq!(l.upstream_connect_timeout, Duration::from_millis(5000));
        assert_eq!(l.upstream_timeout, secs(60));
        assert_eq!(l.request_body_timeout, secs(30));
        assert!(l.websocket_close_on_token_expiry);
        assert_eq!(l.upstream_idle_timeout, secs(90));
        assert_eq!(l.max_request_body, None);
        assert_eq!((l.max_connections, l.max_in_flight_requests), (512, 128));
        assert_eq!(l.send_timeout, secs(30));
        assert_eq!(l.upstream_max_idle_connections, 128);
        assert_eq!(l.idle_timeout, secs(60));
        assert_eq!(l.h2_max_concurrent_streams, 100);
        assert_eq!(l.websocket_idle_timeout, secs(600));
        assert_eq!(
            cfg.cache,
            CacheSettings {
                max_entries: 10_000,
                max_bytes: 8 * 1024 * 1024
            }
        );
        assert_eq!(
            cfg.shutdown,
            ShutdownSettings {
                pre_stop_delay: secs(0),
                drain_timeout: secs(30)
            }
        );
    }

    #[test]
    fn zero_limits_are_reported_by_key() {
        let p = problems(&format!(
            "{MIN}\n[limits]\nsend_timeout_seconds = 0\nmax_connections = 0\nmax_request_body_bytes = 0"
        ));
        assert_eq!(
            p,
            [
                "limits.send_timeout_seconds: must be positive",
                "limits.max_connections: must be positive",
            ]
        );
    }
}
