//! Micro-benchmarks of the online revocation check's cache hit, through the public API:
//!
//! - `revocation/check_hit`: `Revocation::check` on a remembered answer (SHA-256 of the
//!   token, cache lookup, freshness check, counter);
//! - `revocation/filter_hit`: the whole hook after the decision
//!   (`Revocation::filter`: the token found again from the request head, then the
//!   same hit).
//!
//! `cargo bench --bench revocation` (a few seconds). The answer is seeded by one call to
//! a local stand-in for `GetUser`; a hit completes on its first poll, so it is driven
//! with `now_or_never` (no executor in the measurement).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark tool"
)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::auth::{self, Decision, Policy};
use cognito_sidecar::config::Config;
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::metrics::Metrics;
use cognito_sidecar::revocation::{Revocation, Verdict};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::Response;
use http_body_util::Full;

#[path = "../bench/claims.rs"]
mod claims;
mod common;
use claims::{CLIENT, GROUPS, KID, POOL, access_claims};
use common::{allowed, now, request, snapshot};

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        cognito_sidecar::demo::spawn_server(listener, |_req| async {
            Response::new(Full::new(Bytes::from_static(br#"{"Username":"alice"}"#)))
        });
        addr
    });
    let cfg = Config::from_toml(&format!(
        r#"
        listen = "127.0.0.1:1"
        upstream = "http://127.0.0.1:2"
        [[pools]]
        name = "bench"
        id = "{POOL}"
        client_ids = ["{CLIENT}"]
        token_use = ["id", "access"]
        jwks_url = "http://127.0.0.1:3/jwks.json"
        revocation_check = true
        idp_endpoint = "http://{idp}/"
        [revocation_check]
        cache_seconds = 3600
        "#
    ))
    .unwrap();
    let metrics = Metrics::new().unwrap();
    let revocation = Revocation::from_config(&cfg, &metrics).unwrap().unwrap();
    let issuer = DevIssuer::generate(&[KID]).unwrap();
    let keys = snapshot(&issuer);
    let policy = Policy::from_config(&cfg);
    let token = issuer.mint(KID, &access_claims("alice", 0, &GROUPS, now() - 60));
    let parts = request("/api/orders?limit=10", Some(&token));
    let decision = auth::authorize(&parts, now(), &keys, &policy);
    let admission = allowed(decision.clone());
    let exp = admission.identity.as_ref().unwrap().claims.exp;
    // Seed: the one call.
    let seeded = rt.block_on(revocation.check("bench", &token, exp));
    assert_eq!(seeded, Some(Verdict::Valid));

    let mut g = c.benchmark_group("revocation");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("check_hit", |b| {
        b.iter(|| {
            let v = revocation
                .check("bench", black_box(&token), exp)
                .now_or_never()
                .expect("a hit never waits");
            black_box(v)
        });
    });
    g.bench_function("filter_hit", |b| {
        b.iter_batched(
            || decision.clone(),
            |d| {
                let d = revocation
                    .filter(black_box(&parts), &policy, d)
                    .now_or_never()
                    .expect("a hit never waits");
                assert!(matches!(d, Decision::Allow(_)));
                d
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(revocation, benches);
criterion_main!(revocation);
