//! Micro-benchmarks of the per-request work, through the public API:
//!
//! - `decision/*`: `auth::authorize` with a full RS256 verification (cold), the same
//!   through the verified-token cache on a hit, on a miss (a new token every time,
//!   verify + insert), and a public route (no token);
//! - `verify_parts/*`: the pieces of a cold verification (strict parse, RSA check,
//!   typed claims), the cache key (a keyed digest of the token's tail) and, for
//!   comparison, SHA-256 of the whole token (the key before) and the RSA check through
//!   jsonwebtoken (key rebuilt per call, as before);
//! - `headers/*`: `headers::strip_inbound` + `headers::inject_identity` on a typical
//!   request head;
//! - `deny_list/*`: the deny-list check after every decision, against an empty list and
//!   a 100,000-entry one with every kind in use (the caller not listed, so every kind is
//!   looked up), and through a handle (lock-free snapshot, check).
//!
//! `cargo bench --bench decision` (about a minute). The token is the realistic Cognito
//! access token of the end-to-end suite (`bench/claims.rs`, about 1 KB of claims).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark tool"
)]

use std::hint::black_box;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;
use std::time::Duration;

use cognito_sidecar::auth::{self, Decision, Policy};
use cognito_sidecar::cache::TokenCache;
use cognito_sidecar::config::{
    Config, DenyKind, DenyList, DenyListSettings, normalize_header_name,
};
use cognito_sidecar::deny_list::{self, DenyListHandle};
use cognito_sidecar::headers;
use cognito_sidecar::issuer::DevIssuer;
use cognito_sidecar::token::{self, Claims};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::request::Parts;

#[path = "../bench/claims.rs"]
mod claims;
mod common;
use claims::{CLIENT, GROUPS, KID, POOL, access_claims};
use common::{allowed, now, request, snapshot};

fn config() -> Config {
    Config::from_toml(&format!(
        r#"
        listen = "127.0.0.1:1"
        upstream = "http://127.0.0.1:2"
        log_level = "warn"
        [[pools]]
        name = "bench"
        id = "{POOL}"
        client_ids = ["{CLIENT}"]
        token_use = ["id", "access"]
        jwks_url = "http://127.0.0.1:3/jwks.json"
        [[routes]]
        path = "/public/"
        auth = "public"
        [[routes]]
        path = "/admin/"
        groups = ["admins"]
        "#
    ))
    .expect("bench config")
}

fn benches(c: &mut Criterion) {
    let issuer = DevIssuer::generate(&[KID]).unwrap();
    let keys = snapshot(&issuer);
    let cfg = config();
    let policy = Policy::from_config(&cfg);
    let t = now();
    let token = issuer.mint(KID, &access_claims("alice", 0, &GROUPS, t - 60));
    let parts = request("/api/orders?limit=10", Some(&token));
    // Distinct tokens for the cache-miss case: 1024 of them cycled through a cache far
    // smaller than that, so every lookup misses and every verification is inserted.
    let fresh: Vec<Parts> = (0..1024)
        .map(|i| {
            let tok = issuer.mint(KID, &access_claims("user", 1000 + i, &GROUPS, t - 60));
            request("/api/orders?limit=10", Some(&tok))
        })
        .collect();

    // Sanity: the decisions benchmarked are the ones the proxy makes.
    let admission = allowed(auth::authorize(&parts, now(), &keys, &policy));
    allowed(auth::authorize(
        &request("/admin/x", Some(&token)),
        now(),
        &keys,
        &policy,
    ));
    allowed(auth::authorize(
        &request("/public/x", None),
        now(),
        &keys,
        &policy,
    ));

    let mut g = c.benchmark_group("decision");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("authorize_cold_rs256", |b| {
        b.iter(|| auth::authorize(black_box(&parts), now(), &keys, &policy));
    });
    let cache = TokenCache::new(10_000, 16 << 20);
    allowed(cache.authorize(&parts, now(), &keys, &policy));
    g.bench_function("authorize_cached_hit", |b| {
        b.iter(|| cache.authorize(black_box(&parts), now(), &keys, &policy));
    });
    // max_entries is enforced (each entry weighs at least max_bytes / max_entries):
    // shown once here. The miss benchmark bounds the cache by bytes (a few entries).
    let probe = TokenCache::new(16, 16 << 20);
    for p in &fresh {
        allowed(probe.authorize(p, now(), &keys, &policy));
    }
    eprintln!(
        "note: TokenCache::new(max_entries = 16, max_bytes = 16 MiB) holds {} entries after {} distinct tokens",
        probe.len(),
        fresh.len()
    );
    let small = TokenCache::new(16, 16 << 10);
    let mut i = 0usize;
    g.bench_function("authorize_cached_miss_insert", |b| {
        b.iter(|| {
            i = (i + 1) % fresh.len();
            small.authorize(black_box(&fresh[i]), now(), &keys, &policy)
        });
    });
    let public = request("/public/health", None);
    g.bench_function("authorize_public_route", |b| {
        b.iter(|| auth::authorize(black_box(&public), now(), &keys, &policy));
    });
    g.finish();

    let mut g = c.benchmark_group("verify_parts");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("token_cache_digest", |b| {
        b.iter(|| cache.digest(black_box(&token)));
    });
    g.bench_function("sha256_whole_token", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(&token).as_bytes())
        });
    });
    g.bench_function("token_parse_strict", |b| {
        b.iter(|| token::parse(black_box(&token)).unwrap());
    });
    let set = keys.pools[0].keys.as_ref().unwrap();
    let key = set.get(KID).unwrap();
    let unverified = token::parse(&token).unwrap();
    g.bench_function("rsa2048_verify", |b| {
        b.iter(|| black_box(&unverified).verify(key).unwrap());
    });
    // What jsonwebtoken's aws-lc backend does per call for a key given as (n, e): build
    // the RSA key (and its Montgomery context) again, then verify; versus a key parsed
    // once (aws_lc_rs::signature::ParsedPublicKey), as a key set could hold it.
    let jwk = &issuer.jwks()["keys"][0];
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let jwt_key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    g.bench_function("rsa2048_verify_jsonwebtoken", |b| {
        b.iter(|| {
            assert!(
                jsonwebtoken::crypto::verify(
                    sig_b64,
                    black_box(signing_input.as_bytes()),
                    &jwt_key,
                    jsonwebtoken::Algorithm::RS256,
                )
                .unwrap()
            );
        });
    });
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    let components = RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    };
    g.bench_function("rsa2048_verify_key_from_components_each_time", |b| {
        b.iter(|| {
            components
                .verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    black_box(signing_input.as_bytes()),
                    &sig,
                )
                .unwrap();
        });
    });
    let parsed = components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    g.bench_function("rsa2048_verify_parsed_key", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(signing_input.as_bytes()), &sig)
                .unwrap();
        });
    });
    g.bench_function("claims_from_payload", |b| {
        b.iter_batched(
            || token::parse(&token).unwrap().payload,
            |p| Claims::from_payload(p).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let managed: Vec<String> = cfg
        .identity
        .managed_headers()
        .iter()
        .map(|h| normalize_header_name(h.as_str()))
        .collect();
    let identity = admission.identity.expect("identity");
    let rules = headers::Inbound {
        identity: &cfg.identity,
        managed: &managed,
        extra: &[],
        trusted_peer: false,
        keep_authorization: false,
    };
    let mut g = c.benchmark_group("headers");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("strip_inbound_and_inject_identity", |b| {
        b.iter_batched_ref(
            || parts.headers.clone(),
            |h| {
                headers::strip_inbound(h, &rules);
                headers::inject_identity(h, &identity, &cfg.identity);
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("strip_inbound_only", |b| {
        b.iter_batched_ref(
            || parts.headers.clone(),
            |h| headers::strip_inbound(h, &rules),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn deny_list_benches(c: &mut Criterion) {
    let issuer = DevIssuer::generate(&[KID]).unwrap();
    let keys = snapshot(&issuer);
    let policy = Policy::from_config(&config());
    let token = issuer.mint(KID, &access_claims("alice", 0, &GROUPS, now() - 60));
    let parts = request("/api/orders?limit=10", Some(&token));
    let admission = allowed(auth::authorize(&parts, now(), &keys, &policy));
    let identity = admission.identity.clone().expect("identity");
    let mut text = String::new();
    for i in 0..100_000usize {
        let kind = DenyKind::ALL[i % DenyKind::ALL.len()].label();
        text.push_str(&format!("{kind}:{i:08x}-2222-3333-4444-555555555555\n"));
    }
    let big = Arc::new(DenyList::parse(text.as_bytes(), 100_000).unwrap());
    let subs: String = (0..100_000usize)
        .map(|i| format!("sub:{i:08x}-2222-3333-4444-555555555555\n"))
        .collect();
    let subs = DenyList::parse(subs.as_bytes(), 100_000).unwrap();
    let empty = DenyList::default();
    assert_eq!(deny_list::listed(&identity, &big), None);
    let settings = DenyListSettings {
        file: "/nonexistent".into(),
        reload_interval: Duration::from_secs(5),
        max_entries: 100_000,
        max_bytes: 4 << 20,
        list: Arc::clone(&big),
    };
    let metrics = Arc::new(cognito_sidecar::metrics::Metrics::new().unwrap());
    let handle = DenyListHandle::new(&settings, metrics, || {});

    let mut g = c.benchmark_group("deny_list");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("listed_empty_list", |b| {
        b.iter(|| deny_list::listed(black_box(&identity), &empty));
    });
    g.bench_function("listed_100k_entries_every_kind", |b| {
        b.iter(|| deny_list::listed(black_box(&identity), &big));
    });
    g.bench_function("listed_100k_subs_only", |b| {
        b.iter(|| deny_list::listed(black_box(&identity), &subs));
    });
    g.bench_function("apply_through_handle_100k_entries", |b| {
        b.iter_batched(
            || Decision::Allow(admission.clone()),
            |d| deny_list::apply(d, Some(&handle)),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(decision, benches, deny_list_benches);
criterion_main!(decision);
