//! Benchmark fixtures: one development RSA-2048 key (`DevIssuer`) and everything the
//! benchmark suite (`bench/run.sh`) needs to drive the sidecar and its peers with it.
//!
//! ```text
//! cargo run --release --example bench_fixtures -- --out DIR [--tokens N]
//!     [--listen ADDR] [--admin ADDR] [--upstream ADDR] [--jwks-url URL]
//! cargo run --release --example bench_fixtures -- --out DIR --config-only ...
//! ```
//!
//! Writes into `DIR`:
//! - `jwks.json`: the public key, shaped like a Cognito JWKS;
//! - `pubkey.pem`: the same key as a PEM SPKI public key (HAProxy's `jwt_verify`);
//! - `token.txt`: one realistic Cognito access token (about 1 KB of claims, 1-hour
//!   lifetime, member of `admins` among other groups);
//! - `token_nogroup.txt`: the same shape for a user outside `admins` (403 check);
//! - `token_tampered.txt`: `token.txt`'s header and payload with another token's
//!   signature (must be refused with 401 by every verifying proxy);
//! - `tokens.txt`: `N` distinct valid tokens (distinct `jti`, `iat`, `sub`), one per
//!   line, for the no-reuse scenario;
//! - `config.toml`: a sidecar configuration (see [`config_text`]);
//! - `meta.json`: creation time, earliest expiry, sizes.
//!
//! `--config-only` rewrites `config.toml` alone (the driver reuses fresh fixtures and
//! only needs new ports).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark tool"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cognito_sidecar::issuer::DevIssuer;
use serde_json::json;

#[path = "../bench/claims.rs"]
mod claims;
use claims::{CLIENT, GROUPS, KID, POOL, access_claims, issuer_url};

struct Args {
    out: PathBuf,
    tokens: usize,
    threads: usize,
    listen: String,
    admin: String,
    upstream: String,
    jwks_url: String,
    config_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        out: PathBuf::from("target/bench/fixtures"),
        tokens: 200_000,
        threads: std::thread::available_parallelism().map_or(2, usize::from),
        listen: "127.0.0.1:8080".into(),
        admin: "127.0.0.1:9901".into(),
        upstream: "127.0.0.1:3000".into(),
        jwks_url: "http://127.0.0.1:8000/jwks.json".into(),
        config_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(val()),
            "--tokens" => a.tokens = val().parse().expect("--tokens N"),
            "--threads" => a.threads = val().parse().expect("--threads N"),
            "--listen" => a.listen = val(),
            "--admin" => a.admin = val(),
            "--upstream" => a.upstream = val(),
            "--jwks-url" => a.jwks_url = val(),
            "--config-only" => a.config_only = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(u8::try_from(len).expect("short length"));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | u8::try_from(bytes.len() - skip).expect("length of length"));
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn der_uint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    der(0x02, &content)
}

/// SubjectPublicKeyInfo (RFC 5280) of an RSA public key, as PEM.
fn rsa_spki_pem(n: &[u8], e: &[u8]) -> String {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    let alg: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let rsa_key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let mut bits = vec![0u8];
    bits.extend_from_slice(&rsa_key);
    let spki = der(0x30, &[alg.to_vec(), der(0x03, &bits)].concat());
    let b64 = STANDARD.encode(spki);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The sidecar configuration the benchmark runs with.
///
/// - `log_level = "warn"`: the access log (target `access`, level info) is off, as in a
///   production sidecar that leaves request logs to the backend or the mesh; warnings
///   and errors still go to stderr, so the logging layer and its filter stay in the
///   path. The suite measures the access log's cost separately (`BENCH_ACCESS_LOG`).
/// - `limits.max_connections = 20000`: room for the 10,000 idle keep-alive
///   connections of the memory scenario (the default cap is exactly 10,000).
/// - `limits.max_connections_per_ip = 0` and `max_in_flight_requests_per_ip = 0`: every
///   load generator connects from 127.0.0.1, so the per-address caps (256 connections,
///   32 requests in flight) would refuse most of the scenarios' load with 503 or close
///   the idle connections; off, as for a sidecar behind a load balancer.
/// - `limits.max_in_flight_requests = 20000`: the memory scenario sends one request on
///   each of its 10,000 connections at once (the default cap, 128, answers 503).
/// - Everything else is the default: verified-token cache of 10,000 entries / 16 MiB,
///   60 s leeway, identity headers `X-Auth-*`.
fn config_text(a: &Args) -> String {
    format!(
        r#"# Written by examples/bench_fixtures.rs for bench/run.sh.
listen = "{listen}"
admin_listen = "{admin}"
upstream = "http://{upstream}"
# Access log (info) off: realistic but quiet. Warnings and errors still logged.
log_level = "warn"
log_format = "json"

[[pools]]
name = "bench"
id = "{POOL}"
client_ids = ["{CLIENT}"]
token_use = ["id", "access"]
jwks_url = "{jwks}"

[limits]
# The memory scenario holds 10,000 idle keep-alive connections.
max_connections = 20000
# All load comes from one address (127.0.0.1): no per-address caps.
max_connections_per_ip = 0
max_in_flight_requests_per_ip = 0
# The memory scenario's holder sends its 10,000 first requests at once.
max_in_flight_requests = 20000

[[routes]]
path = "/public/"
auth = "public"

[[routes]]
path = "/admin/"
groups = ["admins"]
"#,
        listen = a.listen,
        admin = a.admin,
        upstream = a.upstream,
        jwks = a.jwks_url,
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn main() {
    let a = parse_args();
    std::fs::create_dir_all(&a.out).expect("output directory");
    write(&a.out, "config.toml", &config_text(&a));
    if a.config_only {
        println!("wrote {}", a.out.join("config.toml").display());
        return;
    }
    let started = Instant::now();
    let issuer = DevIssuer::generate(&[KID]).expect("RSA key generation");
    let jwks = issuer.jwks();
    write(&a.out, "jwks.json", &jwks.to_string());
    let key = &jwks["keys"][0];
    let n = URL_SAFE_NO_PAD
        .decode(key["n"].as_str().expect("n"))
        .expect("n base64url");
    let e = URL_SAFE_NO_PAD
        .decode(key["e"].as_str().expect("e"))
        .expect("e base64url");
    write(&a.out, "pubkey.pem", &rsa_spki_pem(&n, &e));

    let t = now();
    let claims = access_claims("alice", 0, &GROUPS, t - 60);
    let claims_bytes = claims.to_string().len();
    let token = issuer.mint(KID, &claims);
    assert!(!token.is_empty(), "signing failed");
    write(&a.out, "token.txt", &token);
    let nogroup = issuer.mint(
        KID,
        &access_claims("bob", 1, &GROUPS[..GROUPS.len() - 1], t - 60),
    );
    write(&a.out, "token_nogroup.txt", &nogroup);
    let (signed, _) = token.rsplit_once('.').expect("three segments");
    let (_, other_sig) = nogroup.rsplit_once('.').expect("three segments");
    write(
        &a.out,
        "token_tampered.txt",
        &format!("{signed}.{other_sig}"),
    );

    // Distinct tokens: each has its own sub, jti, origin_jti, event_id and an iat
    // spread over the last five minutes (so all stay valid for 55 minutes).
    let threads = a.threads.max(1);
    let per = a.tokens.div_ceil(threads);
    let issuer = &issuer;
    let chunks: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let mut out = String::new();
                    let lo = k * per;
                    let hi = ((k + 1) * per).min(a.tokens);
                    for i in lo..hi {
                        let seq = 1000 + i as u64;
                        let iat = t - i64::try_from(i % 300).expect("small");
                        let tok = issuer.mint(KID, &access_claims("user", seq, &GROUPS, iat));
                        assert!(!tok.is_empty(), "signing failed");
                        out.push_str(&tok);
                        out.push('\n');
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signer thread"))
            .collect()
    });
    let mut all = String::with_capacity(chunks.iter().map(String::len).sum());
    for c in &chunks {
        all.push_str(c);
    }
    write(&a.out, "tokens.txt", &all);

    let meta = json!({
        "created_at": t,
        "earliest_exp": t - 300 + 3600,
        "tokens": a.tokens,
        "token_bytes": token.len(),
        "claims_bytes": claims_bytes,
        "groups": GROUPS.len(),
        "pool": POOL,
        "issuer": issuer_url(),
        "client_id": CLIENT,
        "kid": KID,
        "seconds_to_generate": started.elapsed().as_secs_f64(),
    });
    write(&a.out, "meta.json", &format!("{meta:#}\n"));
    let mut msg = String::new();
    let _ = write!(
        msg,
        "wrote fixtures to {} ({} tokens, token {} bytes, claims {} bytes) in {:.1}s",
        a.out.display(),
        a.tokens,
        token.len(),
        claims_bytes,
        started.elapsed().as_secs_f64()
    );
    println!("{msg}");
}
