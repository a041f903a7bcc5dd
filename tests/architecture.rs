//! The crate's shape, checked on every `cargo test`: top-level modules form layers that
//! import only downward (so there is no import cycle), every source file says what it
//! owns in a `//!` header, and no file grows past the size one concern needs. Read from
//! the source text: a module's imports are the `crate::<module>` paths in its non-test
//! code (doc links included: a doc that points upward is a dependency too).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use modules of lower layers, and of its own
/// layer as long as no cycle forms. A new module must be placed here.
const LAYERS: &[&[&str]] = &[
    // Facts and pure helpers with no dependency inside the crate.
    &[
        "clock",
        "flag",
        "header_names",
        "path",
        "metrics",
        "token",
        "credential",
        "seal",
        "outbound",
    ],
    // Typed, validated configuration.
    &["config"],
    // Keys: JWKS sets and their refresher; the development issuer; ALB keys and data.
    &["jwks", "issuer", "alb"],
    // The pure decision.
    &["auth"],
    // Around the decision: the verified-token cache, header hygiene, the signed
    // identity assertion, the online revocation check, the deny-list.
    &[
        "cache",
        "deny_list",
        "headers",
        "login",
        "assertion",
        "revocation",
    ],
    // The request path: handler phases, upstream client, uploads, WebSockets.
    &["proxy"],
    // Operations over a running proxy.
    &["reload", "diagnose"],
    // Listeners and transport.
    &["tls", "server"],
    // Edges: admin endpoints, the demo.
    &["admin", "demo"],
];

/// Largest number of non-test lines in one source file.
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file that is not test code: nothing in a file named `tests.rs`, and
/// nothing from a line starting with `#[cfg(test)]` on.
fn non_test(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level modules (file or directory) and the files each is made of.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else {
            vec![path]
        };
        mods.entry(name).or_insert_with(Vec::new).extend(files);
    }
    mods
}

/// The other top-level modules `code` names through `crate::`.
fn uses(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').collect()
        } else {
            vec![rest]
        };
        for name in names {
            let ident: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&ident) {
                out.insert(ident);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(name, files)| {
            let mut deps = BTreeSet::new();
            for f in files {
                deps.extend(uses(&non_test(f), &known));
            }
            deps.remove(name);
            (name.clone(), deps)
        })
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn every_module_has_a_layer_and_imports_only_downward() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        let Some(mine) = layer_of(&module) else {
            wrong.push(format!("{module} is in no layer of tests/architecture.rs"));
            continue;
        };
        for dep in deps {
            match layer_of(&dep) {
                Some(theirs) if theirs <= mine => {}
                _ => wrong.push(format!(
                    "{module} (layer {mine}) uses {dep}, a higher layer"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_modules_form_no_import_cycle() {
    let graph = graph();
    // Depth-first search; a back edge is a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for d in graph.get(m).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == d).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(m, &graph, &mut state, &mut Vec::new())
        {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn every_source_file_opens_with_what_it_owns_and_stays_small() {
    let mut wrong = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        if !text.starts_with("//!") {
            wrong.push(format!("{name}: does not open with a //! header"));
        }
        let lines = non_test(&file).lines().count();
        if lines > MAX_LINES {
            wrong.push(format!(
                "{name}: {lines} non-test lines (at most {MAX_LINES})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_doc_imports() {
    let known: BTreeSet<String> = ["auth", "proxy", "config"].map(String::from).into();
    let code = "use crate::{auth::Decision, config};\n/// See [`crate::proxy::handle`].";
    let found = uses(code, &known);
    assert_eq!(found, known);
}
