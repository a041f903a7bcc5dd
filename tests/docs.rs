//! The README, `config.example.toml` and `deploy/` checked against the code, so that
//! none of them can silently rot:
//!
//! - every configuration key the code accepts (read from the code's own deserializers,
//!   not from a hand-kept list) is in the README's reference and in the example config,
//!   and every key they document is accepted;
//! - every `cargo` / `cognito-sidecar` command in the README's `sh` blocks is run here or
//!   listed in [`README_COMMANDS`] with where else it runs;
//! - every metric the dashboards, alert rules and README name exists in a live scrape;
//! - every configuration file shipped under `deploy/` loads, the Kubernetes ones with
//!   the ports and bind addresses the manifests assume, and the pods' grace periods
//!   cover each config's pre-stop delay and drain;
//! - the compose setup script provisions moto and its config admits moto's tokens, and
//!   the same for cognito-local with the compose override's config and template.
//!
//! `.ci/deploy-checks` validates the YAML, Dockerfiles and rules with external tools.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::config::Config;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use support::{
    ChildGuard, Env, JwksAnswer, JwksServer, Upstream, cognito_local, free_port, moto_server,
    set_line, sidecar_command, start_cognito_local, wait_until_within,
};

/// A key no version of the configuration will ever accept.
const BOGUS: &str = "zzz_not_a_key";

/// How each `cargo` / `cognito-sidecar` command in the README's `sh` blocks is exercised.
#[derive(Debug)]
enum Covered {
    /// Run by `readme_commands_marked_here_succeed_with_the_readme_minimal_config`.
    Here,
    /// `.ci/run` runs it: the script must contain the command.
    CiRun,
    /// The Dockerfile runs exactly this command: the file must contain it.
    Dockerfile,
    /// Another suite runs it; `file` must contain `marker`.
    Test {
        file: &'static str,
        marker: &'static str,
        why: &'static str,
    },
}

/// Every `cargo` / `cognito-sidecar` command the README shows (program paths such as
/// `./target/release/cognito-sidecar` are written as `cognito-sidecar`).
const README_COMMANDS: &[(&str, Covered)] = &[
    (
        "cargo run --release -- demo",
        Covered::Test {
            file: "tests/cli.rs",
            marker: "fn the_demo_prints_commands_that_show_each_answer",
            why: "runs until Ctrl-C on fixed ports; tests/cli.rs runs `demo` on port 0 \
                  and replays the curl commands it prints",
        },
    ),
    ("cargo test", Covered::CiRun),
    (
        "cargo build --release --locked --bin cognito-sidecar",
        Covered::Dockerfile,
    ),
    (
        "cognito-sidecar check-config --config config.toml",
        Covered::Here,
    ),
    (
        "cognito-sidecar verify-token --config config.toml --path /admin/reports - <token.txt",
        Covered::Here,
    ),
    (
        "cargo bench --bench decision",
        Covered::Test {
            file: "bench/driver.py",
            marker: "\"bench\", \"--locked\", \"--bench\", \"decision\"",
            why: "micro-benchmarks take minutes and assert nothing; bench/run.sh runs \
                  them and records the results in BENCHMARKS.md",
        },
    ),
    (
        "cognito-sidecar --config config.toml",
        Covered::Test {
            file: "tests/moto_e2e.rs",
            marker: "\"--config\"",
            why: "serves until stopped; tests/moto_e2e.rs starts the binary with \
                  --config FILE and sends it traffic",
        },
    ),
];

/// Labelled metrics whose series appear only after an event the live-scrape test does
/// not cause; their names are checked against src/metrics.rs instead.
const EVENT_ONLY_METRICS: &[(&str, &str)] = &[
    (
        "cognito_sidecar_tls_reloads_total",
        "a series per result once a TLS certificate file has changed",
    ),
    (
        "cognito_sidecar_revocation_checks_total",
        "series only for pools with revocation_check (tests/revocation.rs scrapes them)",
    ),
];

// ---------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every file under `rel` (recursively) whose name ends with one of `suffixes`.
fn files_under(rel: &str, suffixes: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, suffixes, out);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(rel), suffixes, &mut out);
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The text of the level-2 section `## {title}`, up to the next level-2 heading.
fn section<'a>(md: &'a str, title: &str) -> &'a str {
    let start = md
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has no `## {title}` section"));
    let body = &md[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// The contents of the fenced code blocks whose info string is `lang`.
fn fenced(md: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(bool, String)> = None;
    for line in md.lines() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    current = Some((info.trim() == lang, String::new()));
                }
            }
            Some((wanted, text)) => {
                if line.trim_end() == "```" {
                    if *wanted {
                        blocks.push(std::mem::take(text));
                    }
                    current = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    blocks
}

fn readme() -> String {
    read("README.md")
}

/// The README's "minimal `config.toml`" (the first TOML block after that phrase).
fn readme_minimal_config() -> String {
    let md = readme();
    let at = md
        .find("A minimal `config.toml`")
        .expect("README shows no \"A minimal `config.toml`\"");
    fenced(&md[at..], "toml")
        .into_iter()
        .next()
        .expect("no TOML block after \"A minimal `config.toml`\"")
}

// ---------------------------------------------------------------------------
// Configuration keys, from the code
// ---------------------------------------------------------------------------

/// Whether a section is `[[name]]` (array of tables) or `[name]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Array,
    Table,
}

/// How the README's reference spells a key.
fn display_key(section: &str, key: &str, shapes: &BTreeMap<String, Shape>) -> String {
    match shapes.get(section) {
        _ if section.is_empty() => key.to_owned(),
        Some(Shape::Array) => format!("{section}[].{key}"),
        _ => format!("{section}.{key}"),
    }
}

fn problems_of(text: &str) -> Vec<String> {
    Config::from_toml(text)
        .err()
        .map(|e| e.problems)
        .unwrap_or_default()
}

/// The keys serde lists in its "unknown field `BOGUS`, expected one of `a`, `b`"
/// message for `key`, if a problem line for `key` carries one.
fn expected_fields(problems: &[String], key: &str) -> Option<BTreeSet<String>> {
    problems.iter().find_map(|p| {
        let (at, msg) = p.split_once(": ")?;
        if at.split('[').next()? != key {
            return None;
        }
        let expected = msg.strip_prefix(&format!("unknown field: found `{BOGUS}`, expected "))?;
        Some(
            expected
                .split('`')
                .filter(|w| {
                    !w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                })
                .map(str::to_owned)
                .collect(),
        )
    })
}

/// Every key the code accepts: section ("" for the top level) -> keys, and the shape of
/// each section.
///
/// Top-level keys: candidates are the fields of the validated `Config` (its `Debug`
/// form) plus every top-level name the README or the example documents; a candidate is
/// a key if the code does not answer `KEY: unknown key` for it. (`TOP_LEVEL_KEYS` in
/// src/config.rs is private; with it public this would read it directly.)
///
/// Section keys come from serde itself: a bogus key in `[name]` or `[[name]]` is
/// answered with "unknown field, expected one of ..." by the `deny_unknown_fields`
/// struct, which lists every key it accepts.
fn accepted_keys() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, Shape>) {
    let cfg = Config::from_toml(&readme_minimal_config()).expect("README minimal config");
    let debug = format!("{cfg:#?}");
    let mut candidates: BTreeSet<String> = debug
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, _)| k.to_owned())
        .collect();
    assert!(
        candidates.contains("listen") && candidates.contains("pools"),
        "could not read Config's fields from its Debug form:\n{debug}"
    );
    for (section, key) in readme_documented_keys()
        .into_iter()
        .chain(example_documented_keys())
    {
        candidates.insert(if section.is_empty() { key } else { section });
    }
    candidates.retain(|k| !k.contains('.'));

    let text: String = candidates
        .iter()
        .chain(std::iter::once(&BOGUS.to_owned()))
        .map(|k| format!("{k} = 1\n"))
        .collect();
    let problems = problems_of(&text);
    assert!(
        problems.contains(&format!("{BOGUS}: unknown key")),
        "unknown top-level keys are no longer reported as `KEY: unknown key`: {problems:#?}"
    );
    let top: BTreeSet<String> = candidates
        .into_iter()
        .filter(|k| !problems.contains(&format!("{k}: unknown key")))
        .collect();

    let mut keys = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    for k in &top {
        for (shape, header) in [
            (Shape::Array, format!("[[{k}]]")),
            (Shape::Table, format!("[{k}]")),
        ] {
            let problems = problems_of(&format!("{header}\n{BOGUS} = 1\n"));
            if let Some(fields) = expected_fields(&problems, k) {
                keys.insert(k.clone(), fields);
                shapes.insert(k.clone(), shape);
                break;
            }
        }
    }
    for s in ["pools", "routes", "limits", "jwks", "identity"] {
        assert!(
            keys.contains_key(s),
            "no unknown-field message listing the keys of {s}; the way this test reads the \
             code's keys broke"
        );
    }
    keys.insert(String::new(), top);
    (keys, shapes)
}

/// (section, key) pairs of the README's configuration reference table: the first
/// cell of each row, one backticked key.
fn readme_documented_keys() -> BTreeSet<(String, String)> {
    let md = readme();
    let reference = section(&md, "Configuration reference");
    let mut out = BTreeSet::new();
    for line in reference.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap().trim();
        let key = cell.trim_matches('`');
        assert!(
            !key.contains('`') && !key.contains(' '),
            "one key per row in the configuration reference, got {cell:?}"
        );
        let (section, name) = match key.split_once('.') {
            Some((s, k)) => (s.trim_end_matches("[]").to_owned(), k.to_owned()),
            None => (String::new(), key.to_owned()),
        };
        out.insert((section, name));
    }
    out
}

/// (section, key) pairs of `config.example.toml`, commented-out keys and tables
/// (`# [tls]`) included.
fn example_documented_keys() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut section = String::new();
    for line in read("config.example.toml").lines() {
        let line = line.trim();
        let uncommented = line.strip_prefix('#').map_or(line, str::trim_start);
        if uncommented.starts_with('[') && uncommented.ends_with(']') {
            let name = uncommented.trim_matches(|c| c == '[' || c == ']');
            match name.split_once('.') {
                // [identity.claims] documents `claims` of [identity].
                Some((s, k)) => {
                    out.insert((s.to_owned(), k.to_owned()));
                    section = format!("{s}.{k}");
                }
                None => {
                    out.insert((String::new(), name.to_owned()));
                    section = name.to_owned();
                }
            }
            continue;
        }
        let body = line.strip_prefix('#').map_or(line, str::trim_start);
        if let Some((key, _)) = body.split_once('=') {
            let key = key.trim();
            if !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.insert((section.clone(), key.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_configuration_key_the_code_accepts_is_documented_in_the_readme_and_the_example() {
    let (accepted, shapes) = accepted_keys();
    let readme = readme_documented_keys();
    let example = example_documented_keys();
    let readme_sections: BTreeSet<&str> = readme.iter().map(|(s, _)| s.as_str()).collect();
    let mut missing = Vec::new();
    for (section, keys) in &accepted {
        for key in keys {
            let pair = (section.clone(), key.clone());
            let in_readme = readme.contains(&pair)
                || (section.is_empty() && readme_sections.contains(key.as_str()));
            if !in_readme {
                missing.push(format!(
                    "README.md configuration reference lacks `{}`",
                    display_key(section, key, &shapes)
                ));
            }
            if !example.contains(&pair) {
                missing.push(format!(
                    "config.example.toml lacks `{}` (commented out is fine)",
                    display_key(section, key, &shapes)
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_documented_configuration_key_is_one_the_code_accepts() {
    let (accepted, shapes) = accepted_keys();
    let is_accepted = |(section, key): &(String, String)| {
        accepted.get(section).is_some_and(|k| k.contains(key)) || (section == "identity.claims")
    };
    let mut stale: Vec<String> = readme_documented_keys()
        .iter()
        .filter(|p| !is_accepted(p))
        .map(|(s, k)| format!("README.md documents `{}`", display_key(s, k, &shapes)))
        .collect();
    stale.extend(
        example_documented_keys()
            .iter()
            .filter(|p| !is_accepted(p))
            .map(|(s, k)| {
                format!(
                    "config.example.toml documents `{}`",
                    display_key(s, k, &shapes)
                )
            }),
    );
    assert!(
        stale.is_empty(),
        "documented keys the code rejects:\n{}",
        stale.join("\n")
    );
}

// ---------------------------------------------------------------------------
// README commands and snippets
// ---------------------------------------------------------------------------

/// The `cargo` and `cognito-sidecar` commands of the README's `sh` blocks, with the
/// program path reduced to `cognito-sidecar` and comments removed.
fn readme_commands() -> Vec<String> {
    let mut out = Vec::new();
    for block in fenced(&readme(), "sh") {
        let joined = block.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line
                .split_whitespace()
                .skip_while(|w| {
                    w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                })
                .peekable();
            let Some(program) = words.next() else {
                continue;
            };
            let rest: Vec<&str> = words.collect();
            let program = if program == "cargo" {
                "cargo"
            } else if program == "cognito-sidecar" || program.ends_with("/cognito-sidecar") {
                "cognito-sidecar"
            } else {
                continue;
            };
            out.push(
                std::iter::once(program)
                    .chain(rest)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    out
}

#[test]
fn every_readme_command_is_run_by_a_test_or_ci_or_listed_with_a_reason() {
    let commands = readme_commands();
    let known: BTreeMap<&str, &Covered> = README_COMMANDS.iter().map(|(c, k)| (*c, k)).collect();
    let mut problems = Vec::new();
    for cmd in &commands {
        if !known.contains_key(cmd.as_str()) {
            problems.push(format!(
                "README command `{cmd}` is neither run by a test nor in README_COMMANDS"
            ));
        }
    }
    for (cmd, how) in README_COMMANDS {
        if !commands.iter().any(|c| c == cmd) {
            problems.push(format!(
                "README_COMMANDS lists `{cmd}`, which the README no longer shows"
            ));
        }
        let (file, needle, what) = match how {
            Covered::Here => continue,
            Covered::CiRun => (".ci/run", *cmd, "run it"),
            Covered::Dockerfile => ("Dockerfile", *cmd, "run it"),
            Covered::Test { file, marker, why } => (*file, *marker, *why),
        };
        if !read(file).contains(needle) {
            problems.push(format!(
                "`{cmd}`: {file} no longer contains {needle:?} ({what})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs each README command marked [`Covered::Here`] as written, in a directory holding
/// the README's minimal `config.toml` (its pool's keys served by a local JWKS server
/// instead of Cognito) and `token.txt`, a token that config accepts on any route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_commands_marked_here_succeed_with_the_readme_minimal_config() {
    let jwks = JwksServer::start(JwksAnswer::Json(support::jwks_of(&["k1"]))).await;
    let minimal = readme_minimal_config();
    let cfg = Config::from_toml(&minimal).expect("README minimal config");
    let pool = &cfg.pools[0];
    let pool_line = format!("id = \"{}\"\n", pool.id);
    assert!(minimal.contains(&pool_line), "{minimal}");
    let config = minimal.replacen(
        &pool_line,
        &format!("{pool_line}jwks_url = \"{}\"\n", jwks.url()),
        1,
    );
    let mut claims = support::id_claims();
    claims["iss"] = json!(pool.issuers[0]);
    claims["aud"] = json!(pool.client_ids[0]);
    claims["cognito:groups"] = json!(["admins"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::write(dir.path().join("token.txt"), support::mint(&claims)).unwrap();

    let mut ran = 0;
    for (cmd, how) in README_COMMANDS {
        if !matches!(how, Covered::Here) {
            continue;
        }
        let mut args: Vec<String> = cmd.split_whitespace().skip(1).map(str::to_owned).collect();
        let stdin = match args.last().and_then(|a| a.strip_prefix('<')) {
            Some(file) => {
                let f = std::fs::File::open(dir.path().join(file)).unwrap();
                args.pop();
                Stdio::from(f)
            }
            None => Stdio::null(),
        };
        let mut command = sidecar_command();
        command.args(&args).current_dir(dir.path()).stdin(stdin);
        // Blocking is fine on a worker thread; the JWKS server runs on the others.
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "`{cmd}` (README) failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 2, "expected check-config and verify-token to run");
}

#[test]
fn every_toml_snippet_in_the_readme_is_a_valid_configuration() {
    let blocks = fenced(&readme(), "toml");
    assert!(!blocks.is_empty(), "README has no TOML blocks");
    // Secret and deny-list files are the deployment's: a snippet naming one loads with a
    // real file of the right shape in its place.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session-keys");
    std::fs::write(&keys, "ab".repeat(32)).unwrap();
    let deny_list = dir.path().join("deny-list.txt");
    std::fs::write(&deny_list, "sub:7f3a1c2e-0b5d-4e8f-9a61-2c4d5e6f7a8b\n").unwrap();
    for block in blocks {
        let block = block
            .replace("/run/secrets/session-keys", &keys.display().to_string())
            .replace(
                "/etc/cognito-sidecar/deny-list.txt",
                &deny_list.display().to_string(),
            );
        if let Err(e) = Config::from_toml(&block) {
            panic!("README TOML block does not load:\n{block}\n{e}");
        }
    }
}

#[test]
fn every_repository_path_the_readme_mentions_exists() {
    let md = readme();
    let mut missing = BTreeSet::new();
    for prefix in ["deploy/", "tests/", "src/", ".ci/"] {
        for (at, _) in md.match_indices(prefix) {
            if at > 0 {
                let before = md.as_bytes()[at - 1];
                if before.is_ascii_alphanumeric() || before == b'/' || before == b'.' {
                    continue;
                }
            }
            let path: String = md[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_./-".contains(*c))
                .collect();
            let path = path.trim_end_matches(['.', ',']);
            if !root().join(path).exists() {
                missing.insert(path.to_owned());
            }
        }
    }
    for file in [
        "Dockerfile",
        ".dockerignore",
        "config.example.toml",
        "CHANGELOG.md",
    ] {
        if md.contains(file) && !root().join(file).exists() {
            missing.insert(file.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "README mentions paths that do not exist: {missing:?}"
    );
}

/// The leading number of `line` after `key` (`terminationGracePeriodSeconds: 45`,
/// `stop_grace_period: 35s`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix(key)?.trim().trim_matches('"');
    rest.trim_end_matches('s').parse().ok()
}

#[test]
fn grace_periods_in_deploy_cover_the_configured_pre_stop_delay_and_drain() {
    let default = Config::from_toml(&readme_minimal_config()).unwrap();
    let drain = default.shutdown.drain_timeout.as_secs();
    assert!(
        readme().contains(&format!("up to {drain} s")),
        "README should say in-flight requests get up to {drain} s by default"
    );
    // Each Kubernetes layout with its own config.toml: the pod's grace period must
    // outlast the sidecar's pre-stop delay plus its drain (plus any preStop sleep).
    let mut checked = 0;
    for config in files_under("deploy/kubernetes", &["config.toml"]) {
        let dir = config.parent().unwrap();
        let cfg = Config::from_toml(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let needed = cfg.shutdown.pre_stop_delay.as_secs() + cfg.shutdown.drain_timeout.as_secs();
        let manifests: String = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let grace = manifests
            .lines()
            .find_map(|l| number_after(l, "terminationGracePeriodSeconds:"))
            .unwrap_or_else(|| panic!("{}: no terminationGracePeriodSeconds", rel(dir)));
        let sleep = manifests
            .lines()
            .filter_map(|l| number_after(l, "seconds:"))
            .max()
            .unwrap_or(0);
        assert!(
            grace >= needed + sleep,
            "{}: terminationGracePeriodSeconds {grace} < pre-stop delay + drain {needed} s \
             + preStop sleep {sleep} s",
            rel(dir)
        );
        assert!(
            cfg.shutdown.pre_stop_delay.as_secs() > 0 || sleep > 0,
            "{}: nothing keeps the pod serving while endpoints are removed",
            rel(dir)
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected configs in base and the inject overlay"
    );
    let compose = read("deploy/compose/compose.yaml");
    let stop = compose
        .lines()
        .find_map(|l| number_after(l, "stop_grace_period:"))
        .expect("compose.yaml sets no stop_grace_period for the sidecar");
    let cfg = Config::from_toml(&read("deploy/compose/sidecar.toml")).unwrap();
    let needed = cfg.shutdown.pre_stop_delay.as_secs() + cfg.shutdown.drain_timeout.as_secs();
    assert!(
        stop >= needed,
        "compose stop_grace_period {stop}s < pre-stop delay + drain {needed}s"
    );
}

// ---------------------------------------------------------------------------
// Shipped configuration files
// ---------------------------------------------------------------------------

#[test]
fn every_configuration_file_shipped_under_deploy_loads() {
    let files = files_under("deploy", &[".toml"]);
    assert!(
        files.len() >= 3,
        "expected the Kubernetes and compose configs, found {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        match Config::from_toml(&text) {
            Err(e) => problems.push(format!("{}: {e}", rel(file))),
            Ok(cfg) if rel(file).starts_with("deploy/kubernetes") => {
                // What the manifests assume: Service -> 8080, probes -> 9901 from the
                // kubelet (so not loopback), app on the pod's loopback.
                if cfg.listen.to_string() != "0.0.0.0:8080" {
                    problems.push(format!("{}: listen must be 0.0.0.0:8080", rel(file)));
                }
                if cfg.admin_listen.to_string() != "0.0.0.0:9901" {
                    problems.push(format!(
                        "{}: admin_listen must be 0.0.0.0:9901 for probes and scrapes",
                        rel(file)
                    ));
                }
                if cfg.upstream.host() != Some("127.0.0.1") {
                    problems.push(format!(
                        "{}: upstream must be the pod's loopback",
                        rel(file)
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Metric names against a live scrape
// ---------------------------------------------------------------------------

/// An upstream that answers at once, except `/slow...` after 3 s.
async fn start_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    cognito_sidecar::demo::spawn_server(listener, |req: Request<Incoming>| async move {
        if req.uri().path().starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Response::new(Full::new(Bytes::from_static(b"ok")))
    });
    addr
}

/// Every `cognito_sidecar_*` name in `text`.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    text.match_indices("cognito_sidecar_")
        .filter(|(at, _)| {
            *at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_')
        })
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// Series names and metric family names (`# TYPE`) of a Prometheus text scrape.
fn scraped_names(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut series = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split_whitespace().next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_owned());
        }
    }
    (series, families)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_named_in_dashboards_alerts_and_readme_exists_in_a_live_scrape() {
    let backend = start_backend().await;
    let env = Env::behind(backend, "", "[limits]\nupstream_timeout_seconds = 1\n").await;

    // Drive one request per outcome so that every labelled series exists.
    let valid = support::mint(&support::access_claims());
    let mut expired = support::access_claims();
    expired["iat"] = json!(support::now() - 1200);
    expired["exp"] = json!(support::now() - 600);
    let expired = support::mint(&expired);
    let unknown_kid = support::keys().mint("k3", &support::access_claims());
    for (path, token, want) in [
        ("/hello", Some(valid.as_str()), StatusCode::OK),
        ("/hello", None, StatusCode::UNAUTHORIZED),
        ("/hello", Some(expired.as_str()), StatusCode::UNAUTHORIZED),
        (
            "/hello",
            Some(unknown_kid.as_str()),
            StatusCode::UNAUTHORIZED,
        ),
        ("/admin/x", Some(valid.as_str()), StatusCode::FORBIDDEN),
        ("/public/x", None, StatusCode::OK),
        ("/slow", Some(valid.as_str()), StatusCode::GATEWAY_TIMEOUT),
    ] {
        let status = env.get(path, token).await.status();
        assert_eq!(status, want, "GET {path}");
    }
    let scrape = env.metrics().await;
    let (series, families) = scraped_names(&scrape);

    let mut sources: Vec<PathBuf> = files_under("deploy", &[".json", ".yml", ".yaml"]);
    sources.push(root().join("README.md"));
    let mut missing = Vec::new();
    let mut referenced = 0;
    for file in &sources {
        let text = std::fs::read_to_string(file).unwrap();
        for name in metric_names_in(&text) {
            referenced += 1;
            let event_only = EVENT_ONLY_METRICS.iter().any(|(n, _)| *n == name);
            if !series.contains(&name) && !families.contains(&name) && !event_only {
                missing.push(format!("{}: {name}", rel(file)));
            }
        }
    }
    assert!(
        referenced > 20,
        "found only {referenced} metric references in {sources:?}"
    );
    assert!(
        missing.is_empty(),
        "metrics named in docs or deploy/ but not exported:\n{}\n\nscrape:\n{scrape}",
        missing.join("\n")
    );

    let metrics_rs = read("src/metrics.rs");
    for (name, why) in EVENT_ONLY_METRICS {
        assert!(
            metrics_rs.contains(&format!("\"{name}\"")),
            "{name} ({why}) is no longer registered in src/metrics.rs"
        );
    }
    let readme_names = metric_names_in(&readme());
    let undocumented: Vec<&String> = families
        .iter()
        .filter(|f| f.starts_with("cognito_sidecar_") && !readme_names.contains(*f))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but missing from the README's metrics table: {undocumented:?}"
    );
    env.stop().await;
}

// ---------------------------------------------------------------------------
// The compose topology, natively: moto + setup script + sidecar + backend
// ---------------------------------------------------------------------------

fn setup_script(state: &Path, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(root().join("deploy/compose/setup/cognito_setup.py"))
        .arg("--state-file")
        .arg(state)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "cognito_setup.py {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_setup_script_provisions_moto_and_its_config_admits_moto_tokens() {
    let Some(moto_server) = moto_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(moto_server);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let _moto = ChildGuard::spawn("moto_server", cmd, dir.path()).unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let probe = format!("{endpoint}/us-east-1_probe/.well-known/jwks.json");
    wait_until_within(
        Duration::from_secs(30),
        "moto_server to start",
        async || {
            client
                .get(&probe)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;

    // What the compose `setup` service runs, with the emulator on loopback.
    let state = dir.path().join("cognito.json");
    let config_out = dir.path().join("config.toml");
    let template = root().join("deploy/compose/sidecar.toml");
    let provision = || {
        setup_script(
            &state,
            &[
                "provision",
                "--endpoint",
                &endpoint,
                "--template",
                template.to_str().unwrap(),
                "--config-out",
                config_out.to_str().unwrap(),
            ],
        )
    };
    provision();
    // Idempotent: a second run (compose restarts, `up` again) reuses everything.
    let first = std::fs::read_to_string(&config_out).unwrap();
    provision();
    let written = std::fs::read_to_string(&config_out).unwrap();
    assert_eq!(first, written, "a second provision changed the config");
    assert!(
        written.contains(&format!("jwks_url = \"{endpoint}/us-east-1_")),
        "{written}"
    );

    // The sidecar with that config; only the addresses differ from compose.
    let upstream = Upstream::start().await;
    let mut text = set_line(&written, "listen", "\"127.0.0.1:0\"");
    text = set_line(&text, "admin_listen", "\"127.0.0.1:0\"");
    text = set_line(&text, "upstream", &format!("\"http://{}\"", upstream.addr));
    let jwks = JwksServer::start(JwksAnswer::Status(404)).await;
    let env = Env::start_with_config(jwks, upstream, &text, true).await;

    let alice = setup_script(&state, &["token", "alice"]);
    let alice_id = setup_script(&state, &["token", "alice", "--id"]);
    let bob_id = setup_script(&state, &["token", "bob", "--id"]);

    let r = env.get("/hello", Some(alice.trim())).await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-groups").as_deref(), Some("admins"));
    assert_eq!(seen.header("x-auth-token-use").as_deref(), Some("access"));

    for (token, want) in [
        (alice.trim(), StatusCode::OK),
        (alice_id.trim(), StatusCode::OK),
        (bob_id.trim(), StatusCode::FORBIDDEN),
    ] {
        let r = env.get("/admin/reports", Some(token)).await;
        assert_eq!(r.status(), want, "GET /admin/reports");
    }
    assert_eq!(
        env.get("/hello", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let before = env.upstream.count();
    let r = env
        .client
        .get(env.url("/public/x"))
        .header("x-auth-sub", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    env.upstream.wait_count(before + 1).await;
    assert_eq!(env.upstream.last().header("x-auth-sub"), None);
    env.stop().await;
}

/// The compose override's cognito-local, natively: its `config.json`, the setup script
/// with `sidecar.cognito-local.toml`, and the sidecar on the config that writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_setup_script_provisions_cognito_local_and_its_config_admits_its_tokens() {
    let Some(bin) = cognito_local() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_emulator, endpoint) = start_cognito_local(
        &bin,
        dir.path(),
        &read("deploy/compose/cognito-local/config.json"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("cognito.json");
    let config_out = dir.path().join("config.toml");
    let template = root().join("deploy/compose/sidecar.cognito-local.toml");
    setup_script(
        &state,
        &[
            "provision",
            "--endpoint",
            &endpoint,
            "--template",
            template.to_str().unwrap(),
            "--config-out",
            config_out.to_str().unwrap(),
        ],
    );
    let written = std::fs::read_to_string(&config_out).unwrap();
    let pool = Config::from_toml(&written).unwrap().pools[0].id.clone();
    assert!(pool.starts_with("local_"), "{written}");
    assert!(
        written.contains(&format!("issuer = \"http://localhost:9229/{pool}\""))
            && written.contains(&format!("jwks_url = \"{endpoint}/{pool}/")),
        "{written}"
    );

    let upstream = Upstream::start().await;
    let mut text = set_line(&written, "listen", "\"127.0.0.1:0\"");
    text = set_line(&text, "admin_listen", "\"127.0.0.1:0\"");
    text = set_line(&text, "upstream", &format!("\"http://{}\"", upstream.addr));
    let jwks = JwksServer::start(JwksAnswer::Status(404)).await;
    let env = Env::start_with_config(jwks, upstream, &text, true).await;
    for (args, want) in [
        (&["token", "alice"][..], StatusCode::OK),
        (&["token", "alice", "--id"][..], StatusCode::OK),
        (&["token", "bob", "--id"][..], StatusCode::FORBIDDEN),
    ] {
        let token = setup_script(&state, args);
        let r = env.get("/admin/reports", Some(token.trim())).await;
        assert_eq!(r.status(), want, "GET /admin/reports with {args:?}");
    }
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-username").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-groups").as_deref(), Some("admins"));
    env.stop().await;
}
