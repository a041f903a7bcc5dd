//! Prometheus metrics, owned by a [`Metrics`] value with its own registry (no globals,
//! so tests run side by side). Every label value comes from a fixed set or from the
//! configuration; nothing a client sends ever becomes a label.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metrics of one sidecar.
pub struct Metrics {
    registry: Registry,
    /// Requests by outcome (`allowed`, `denied`, `public`, `anonymous`, `unavailable`,
    /// `bad_request`, `upstream_error`) and status class.
    pub requests: IntCounterVec,
    /// Denials by reason (requests actually refused; report mode's would-be denials
    /// are in [`Metrics::decisions`]).
    pub denied: IntCounterVec,
    /// Every decision, by `mode` (`enforce`, `report`), `outcome` (`allow`, `deny`,
    /// `would_deny`), `reason` (`ok` or the denial's) and `route` (the rule's `path`, or
    /// `default`, or `none` when the path cannot be read).
    pub decisions: IntCounterVec,
    /// Route rules in report mode, the default rule included (set at each scrape from the
    /// configuration in force).
    pub report_mode_routes: IntGauge,
    /// Time spent deciding (parse, verify, policy).
    pub auth_duration: Histogram,
    /// Time from sending upstream to upstream response headers.
    pub upstream_duration: Histogram,
    /// Whole request time in the proxy until response headers.
    pub request_duration: Histogram,
    /// Upstream failures by kind (`connect`, `timeout`, `other`).
    pub upstream_errors: IntCounterVec,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// Open client connections.
    pub connections: IntGauge,
    /// Client connections closed at accept, by reason (`per_ip_limit`).
    pub connections_rejected: IntCounterVec,
    /// JWKS fetch attempts by pool and result.
    pub jwks_fetches: IntCounterVec,
    /// Fetches triggered by unknown kids.
    pub jwks_kid_miss_refreshes: IntCounterVec,
    /// Unix time of the last successful JWKS fetch.
    pub jwks_last_success: GaugeVec,
    /// Usable keys per pool.
    pub jwks_keys: IntGaugeVec,
    /// JWKS entries dropped as unusable.
    pub jwks_keys_rejected: IntCounterVec,
    /// JWKS fetch duration per pool.
    pub jwks_fetch_duration: HistogramVec,
    /// 1 when every pool has keys and the process is not draining.
    pub ready: Gauge,
    /// Bridged WebSocket sessions open now.
    pub websocket_sessions: IntGauge,
    /// TLS reloads (certificate and key, client CA bundle) by result.
    pub tls_reloads: IntCounterVec,
    /// Failed or timed-out TLS handshakes.
    pub tls_handshake_failures: prometheus::IntCounter,
    /// Configuration reloads by result (`success`, `invalid`, `error`).
    pub config_reloads: IntCounterVec,
    /// Unix time of the last successful configuration reload.
    pub config_last_reload: Gauge,
    /// Admitted tokens whose verification came from the cache.
    pub token_cache_hits: prometheus::IntCounter,
    /// Admitted tokens verified in full (then cached).
    pub token_cache_misses: prometheus::IntCounter,
    /// Browser sign-in events (`sign_in_started`, `sign_in`, `refresh`, `sign_out`,
    /// `session_ended`, `refused`) by outcome (`ok` or a failure reason).
    pub login_events: IntCounterVec,
    /// Online revocation checks of admitted access tokens, by pool and result (see
    /// [`Metrics::REVOCATION_RESULTS`]).
    pub revocation_checks: IntCounterVec,
    /// Duration of each `GetUser` call made by the revocation check (cache hits make
    /// none).
    pub revocation_check_duration: Histogram,
    /// Distinct entries of the deny-list in force.
    pub deny_list_entries: IntGauge,
    /// Deny-list file reads by result (`success`, `invalid`, `error`).
    pub deny_list_reloads: IntCounterVec,
    /// Tokens refused because the deny-list names them, by the kind of entry that did.
    pub deny_list_hits: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Errors
    /// Only if two metrics were given the same name (a programming error).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram = |name: &str, help: &str| -> Result<Histogram, prometheus::Error> {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let m = Self {
            login_events: counter(
                "cognito_sidecar_login_events_total",
                "Browser sign-in events (sign-in starts and completions, refreshes, sign-outs, ended sessions, refusals), by event and outcome.",
                &["event", "outcome"],
            )?,
            requests: counter(
                "cognito_sidecar_requests_total",
                "Requests handled, by outcome and response status class.",
                &["outcome", "status_class"],
            )?,
            denied: counter(
                "cognito_sidecar_auth_denied_total",
                "Requests refused by the proxy, by reason.",
                &["reason"],
            )?,
            decisions: counter(
                "cognito_sidecar_decisions_total",
                "Authorization decisions in both modes, by mode, outcome (allow, deny, would_deny: refused in enforce mode, forwarded in report mode), reason and route.",
                &["mode", "outcome", "reason", "route"],
            )?,
            report_mode_routes: {
                let g = IntGauge::new(
                    "cognito_sidecar_report_mode_routes",
                    "Route rules in report mode (the default rule included): their would-be denials are forwarded.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            auth_duration: histogram(
                "cognito_sidecar_auth_duration_seconds",
                "Time spent deciding whether to admit a request.",
            )?,
            upstream_duration: histogram(
                "cognito_sidecar_upstream_duration_seconds",
                "Time from forwarding a request until the upstream's response headers.",
            )?,
            request_duration: histogram(
                "cognito_sidecar_request_duration_seconds",
                "Time from receiving a request until response headers are sent.",
            )?,
            upstream_errors: counter(
                "cognito_sidecar_upstream_errors_total",
                "Upstream failures answered with 502 or 504, by kind.",
                &["kind"],
            )?,
            in_flight: {
                let g = IntGauge::new(
                    "cognito_sidecar_requests_in_flight",
                    "Requests being handled.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            connections: {
                let g = IntGauge::new(
                    "cognito_sidecar_open_connections",
                    "Open client connections.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            connections_rejected: counter(
                "cognito_sidecar_connections_rejected_total",
                "Client connections closed as soon as they were accepted, by reason.",
                &["reason"],
            )?,
            jwks_fetches: counter(
                "cognito_sidecar_jwks_fetches_total",
                "JWKS fetch attempts, by pool and result.",
                &["pool", "result"],
            )?,
            jwks_kid_miss_refreshes: counter(
                "cognito_sidecar_jwks_kid_miss_refreshes_total",
                "JWKS fetches triggered by tokens naming an unknown kid.",
                &["pool"],
            )?,
            jwks_last_success: {
                let g = GaugeVec::new(
                    Opts::new(
                        "cognito_sidecar_jwks_last_success_timestamp_seconds",
                        "Unix time of the last successful JWKS fetch.",
                    ),
                    &["pool"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            jwks_keys: {
                let g = IntGaugeVec::new(
                    Opts::new("cognito_sidecar_jwks_keys", "Usable signing keys."),
                    &["pool"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            jwks_keys_rejected: counter(
                "cognito_sidecar_jwks_keys_rejected_total",
                "JWKS entries dropped as unusable (weak, wrong type, duplicate kid).",
                &["pool"],
            )?,
            jwks_fetch_duration: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "cognito_sidecar_jwks_fetch_duration_seconds",
                        "JWKS fetch duration.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["pool"],
                )?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            ready: {
                let g = Gauge::new(
                    "cognito_sidecar_ready",
                    "1 when the sidecar is ready to serve.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            websocket_sessions: {
                let g = IntGauge::new(
                    "cognito_sidecar_websocket_sessions",
                    "Bridged WebSocket sessions open now.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            tls_reloads: counter(
                "cognito_sidecar_tls_reloads_total",
                "TLS file reloads (certificate and key, client CA bundle) after they changed, by result.",
                &["result"],
            )?,
            tls_handshake_failures: {
                let c = prometheus::IntCounter::new(
                    "cognito_sidecar_tls_handshake_failures_total",
                    "TLS handshakes that failed or timed out.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            config_reloads: counter(
                "cognito_sidecar_config_reloads_total",
                "Configuration reloads (SIGHUP or file change), by result.",
                &["result"],
            )?,
            config_last_reload: {
                let g = Gauge::new(
                    "cognito_sidecar_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration reload (0: none since start).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            token_cache_hits: {
                let c = prometheus::IntCounter::new(
                    "cognito_sidecar_token_cache_hits_total",
                    "Admitted tokens whose signature check was served from the verified-token cache.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            token_cache_misses: {
                let c = prometheus::IntCounter::new(
                    "cognito_sidecar_token_cache_misses_total",
                    "Admitted tokens verified in full (and then cached).",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            revocation_checks: counter(
                "cognito_sidecar_revocation_checks_total",
                "Online revocation checks of admitted access tokens, by pool and result.",
                &["pool", "result"],
            )?,
            revocation_check_duration: histogram(
                "cognito_sidecar_revocation_check_duration_seconds",
                "Duration of the GetUser calls made by the online revocation check.",
            )?,
            deny_list_entries: {
                let g = IntGauge::new(
                    "cognito_sidecar_deny_list_entries",
                    "Distinct entries of the deny-list in force (0 without one).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            deny_list_reloads: counter(
                "cognito_sidecar_deny_list_reloads_total",
                "Deny-list file reads after a change or SIGHUP, by result (invalid and error keep the last good list).",
                &["result"],
            )?,
            deny_list_hits: counter(
                "cognito_sidecar_deny_list_hits_total",
                "Verified tokens refused because the deny-list names them, by the kind of entry that matched.",
                &["kind"],
            )?,
            registry,
        };
        for result in ["success", "invalid", "error"] {
            m.config_reloads.with_label_values(&[result]);
            m.deny_list_reloads.with_label_values(&[result]);
        }
        for kind in ["sub", "username", "jti", "origin_jti", "client_id"] {
            m.deny_list_hits.with_label_values(&[kind]);
        }
        m.connections_rejected.with_label_values(&["per_ip_limit"]);
        for event in ["sign_in_started", "sign_in", "refresh", "sign_out"] {
            m.login_events.with_label_values(&[event, "ok"]);
        }
        for kind in ["connect", "timeout", "reset", "other"] {
            m.upstream_errors.with_label_values(&[kind]);
        }
        let build = IntGaugeVec::new(
            Opts::new("cognito_sidecar_build_info", "Build information; always 1."),
            &["version", "commit"],
        )?;
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("SIDECAR_BUILD_COMMIT").unwrap_or("unknown"),
            ])
            .set(1);
        m.registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// The `result` labels of `cognito_sidecar_revocation_checks_total`: a call's
    /// answer (`valid`, `revoked`), a call that failed (`error`, `timeout`), a check
    /// not made because `max_concurrent` calls were in flight (`overloaded`), an answer
    /// remembered (`cache_hit`) or shared with a concurrent request's call (`shared`).
    pub const REVOCATION_RESULTS: [&'static str; 7] = [
        "valid",
        "revoked",
        "error",
        "timeout",
        "overloaded",
        "cache_hit",
        "shared",
    ];

    /// Pre-creates the revocation-check series of a pool that has the check on.
    pub fn init_revocation_pool(&self, pool: &str) {
        for result in Self::REVOCATION_RESULTS {
            self.revocation_checks.with_label_values(&[pool, result]);
        }
    }

    /// Pre-creates per-pool series so dashboards see zeros, not gaps.
    pub fn init_pool(&self, pool: &str) {
        self.jwks_keys.with_label_values(&[pool]).set(0);
        self.jwks_kid_miss_refreshes.with_label_values(&[pool]);
        self.jwks_keys_rejected.with_label_values(&[pool]);
        for result in [
            "success",
            "fetch_error",
            "bad_status",
            "too_large",
            "invalid",
            "no_usable_keys",
        ] {
            self.jwks_fetches.with_label_values(&[pool, result]);
        }
    }

    /// The registry in Prometheus text format.
    #[must_use]
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding our own well-formed families cannot fail; an empty body is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
