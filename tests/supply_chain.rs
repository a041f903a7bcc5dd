//! Supply chain, checked offline against Cargo.lock (the advisory database cannot be
//! fetched on our build machines): version floors for the crates SECURITY.md names,
//! and crates that must not be in the tree at all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

fn locked() -> Vec<(String, Vec<u64>)> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            let v = v.trim_matches('"');
            let nums = v
                .split(['.', '-', '+'])
                .take(3)
                .map(|p| p.parse().unwrap_or(0))
                .collect();
            out.push((n, nums));
        }
    }
    out
}

#[test]
fn crates_with_known_advisories_are_at_or_above_their_fixed_versions() {
    let locked = locked();
    // (crate, minimum version, why)
    let floors: [(&str, [u64; 3], &str); 6] = [
        (
            "jsonwebtoken",
            [10, 3, 0],
            "CVE-2026-25537: wrong-typed exp/nbf skipped",
        ),
        (
            "h2",
            [0, 4, 18],
            "RUSTSEC-2024-0332 / RUSTSEC-2026-0258: CONTINUATION and reset floods",
        ),
        (
            "hyper",
            [1, 4, 0],
            "header read timeout needs a Timer; older 1.x lacked fixes",
        ),
        (
            "rustls",
            [0, 23, 18],
            "RUSTSEC-2024-0399: panic on fragmented ClientHello",
        ),
        (
            "tokio",
            [1, 38, 2],
            "RUSTSEC-2025-0023: broadcast channel unsoundness",
        ),
        ("ring", [0, 17, 12], "RUSTSEC-2025-0009: AES overflow panic"),
    ];
    for (name, floor, why) in floors {
        for (_, v) in locked.iter().filter(|(n, _)| n == name) {
            assert!(
                v.as_slice() >= floor.as_slice(),
                "{name} {v:?} is below {floor:?}: {why}"
            );
        }
    }
    assert!(
        locked.iter().any(|(n, _)| n == "jsonwebtoken"),
        "jsonwebtoken not found in Cargo.lock"
    );
}

#[test]
fn crates_the_design_forbids_are_not_in_the_tree() {
    let locked = locked();
    // `rsa` (RUSTSEC-2023-0071, Marvin) comes with jsonwebtoken's rust_crypto backend;
    // `openssl` would add a second TLS stack.
    for banned in ["rsa", "openssl", "native-tls"] {
        assert!(
            !locked.iter().any(|(n, _)| n == banned),
            "{banned} is in Cargo.lock"
        );
    }
}
