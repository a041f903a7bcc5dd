//! `[deny_list]`: incident response's emergency brake. Typed settings, defaults and
//! checks, and the list file's format ([`DenyList::parse`]). The file is read and
//! parsed when the configuration is loaded, so a missing, oversized or malformed list
//! is a configuration problem naming its line; the `deny_list` module re-reads it
//! while the sidecar runs.
//!
//! The format: UTF-8 lines `kind:value`, `kind` one of `sub`, `username`, `jti`,
//! `origin_jti`, `client_id`; the value is the exact claim value (surrounding
//! whitespace trimmed, split at the first `:`). Lines whose first non-blank character
//! is `#` and blank lines are ignored. One line that does not parse makes the whole
//! file invalid: a list half applied would be worse than the last good one.

use std::collections::HashSet;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};

use super::raw::RawDenyList;
use super::validate::{Root, Validator};

/// What a deny-list entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyKind {
    /// The `sub` claim: one user, every token.
    Sub,
    /// `username` (access tokens) or `cognito:username` (ID tokens).
    Username,
    /// The `jti` claim: one token.
    Jti,
    /// The `origin_jti` claim: every token of one sign-in (refreshes included).
    OriginJti,
    /// The app client (`client_id` of access tokens, `aud` of ID tokens).
    ClientId,
}

impl DenyKind {
    /// Every kind, in the order a token's claims are looked up.
    pub const ALL: [Self; 5] = [
        Self::Sub,
        Self::Username,
        Self::Jti,
        Self::OriginJti,
        Self::ClientId,
    ];

    /// The spelling in the file, and the `kind` metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Username => "username",
            Self::Jti => "jti",
            Self::OriginJti => "origin_jti",
            Self::ClientId => "client_id",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a deny-list file could not be used. Never quotes the file's content: a line that
/// does not parse may be a pasted token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyListError {
    /// The file could not be opened or read.
    #[error("cannot be read: {0}")]
    Unreadable(String),
    /// The file is larger than `max_bytes`.
    #[error("is larger than max_bytes ({max} bytes)")]
    TooLarge {
        /// `max_bytes`.
        max: u64,
    },
    /// The file has more entry lines than `max_entries`.
    #[error("has more than max_entries ({max}) entries")]
    TooManyEntries {
        /// `max_entries`.
        max: usize,
    },
    /// A line does not parse.
    #[error("line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: &'static str,
    },
}

impl DenyListError {
    /// The metric result of a reload that failed so: `error` when the file could not be
    /// read, `invalid` when its content is refused.
    #[must_use]
    pub fn result(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "error",
            _ => "invalid",
        }
    }
}

/// A parsed deny-list: exact values by kind, and the SHA-256 of the bytes it was parsed
/// from (a reader compares it to tell a changed file).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DenyList {
    values: [HashSet<Box<str>>; 5],
    entries: usize,
    digest: [u8; 32],
}

impl fmt::Debug for DenyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenyList")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl DenyList {
    /// Parses a whole file (the format is in the module docs).
    ///
    /// # Errors
    /// [`DenyListError::Line`] for the first line that does not parse;
    /// [`DenyListError::TooManyEntries`] past `max_entries` entry lines.
    pub fn parse(bytes: &[u8], max_entries: usize) -> Result<Self, DenyListError> {
        let mut list = Self {
            digest: Self::digest_of(bytes),
            ..Self::default()
        };
        let mut lines = 0;
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let bad = |what| DenyListError::Line { line: i + 1, what };
            let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
            let text = text.trim_start_matches('\u{feff}').trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let (kind, value) = text
                .split_once(':')
                .ok_or_else(|| bad("expected kind:value"))?;
            let kind = DenyKind::ALL
                .into_iter()
                .find(|k| k.label() == kind.trim())
                .ok_or_else(|| {
                    bad("unknown kind (expected sub, username, jti, origin_jti or client_id)")
                })?;
            let value = value.trim();
            if value.is_empty() {
                return Err(bad("empty value"));
            }
            lines += 1;
            if lines > max_entries {
                return Err(DenyListError::TooManyEntries { max: max_entries });
            }
            list.values[kind.index()].insert(value.into());
        }
        list.entries = list.values.iter().map(HashSet::len).sum();
        Ok(list)
    }

    /// Reads at most `max_bytes` of `path` (a larger file is refused unread).
    ///
    /// # Errors
    /// [`DenyListError::Unreadable`] or [`DenyListError::TooLarge`].
    pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, DenyListError> {
        let unreadable = |e: std::io::Error| DenyListError::Unreadable(e.to_string());
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > max_bytes {
            return Err(DenyListError::TooLarge { max: max_bytes });
        }
        Ok(bytes)
    }

    /// SHA-256 of a file's bytes.
    #[must_use]
    pub fn digest_of(bytes: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, bytes).as_ref());
        out
    }

    /// SHA-256 of the bytes this list was parsed from.
    #[must_use]
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Distinct entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when nothing is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether any entry is of `kind`.
    #[must_use]
    pub fn lists(&self, kind: DenyKind) -> bool {
        !self.values[kind.index()].is_empty()
    }

    /// Whether `value` is listed under `kind` (exact, case-sensitive).
    #[must_use]
    pub fn contains(&self, kind: DenyKind, value: &str) -> bool {
        self.values[kind.index()].contains(value)
    }
}

/// The deny-list file and how it is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyListSettings {
    /// The list file.
    pub file: PathBuf,
    /// How often the file's content is checked for changes.
    pub reload_interval: Duration,
    /// Most entry lines a file may have.
    pub max_entries: usize,
    /// Largest file accepted.
    pub max_bytes: u64,
    /// The list read when the configuration was loaded.
    pub list: Arc<DenyList>,
}

/// Defaults and bounds of the `[deny_list]` keys.
impl DenyListSettings {
    /// `reload_interval_seconds`.
    pub const DEFAULT_RELOAD_INTERVAL_SECONDS: u64 = 5;
    /// `max_entries`.
    pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
    /// `max_bytes` (4 MiB).
    pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;
    /// Largest `max_bytes` (64 MiB: the list is held in memory).
    pub const MAX_MAX_BYTES: u64 = 64 << 20;

    /// Same file, interval and limits (the list read may differ).
    #[must_use]
    pub fn same_source(&self, other: &Self) -> bool {
        self.file == other.file
            && self.reload_interval == other.reload_interval
            && self.max_entries == other.max_entries
            && self.max_bytes == other.max_bytes
    }
}

impl Validator {
    /// `[deny_list]` (absent: no deny-list, `Some(None)`).
    pub(super) fn deny_list(&mut self, root: &Root) -> Option<Option<DenyListSettings>> {
        type D = DenyListSettings;
        let Some(value) = root.get("deny_list") else {
            return Some(None);
        };
        let raw = self.get::<RawDenyList>("deny_list", Some(value))?;
        let before = self.problems.len();
        let reload = raw
            .reload_interval_seconds
            .unwrap_or(D::DEFAULT_RELOAD_INTERVAL_SECONDS);
        if reload == 0 {
            self.problem("deny_list.reload_interval_seconds", "must be positive");
        }
        let max_entries = raw.max_entries.unwrap_or(D::DEFAULT_MAX_ENTRIES);
        if max_entries == 0 {
            self.problem("deny_list.max_entries", "must be positive");
        }
        let max_bytes = raw.max_bytes.unwrap_or(D::DEFAULT_MAX_BYTES);
        if !(1..=D::MAX_MAX_BYTES).contains(&max_bytes) {
            self.problem(
                "deny_list.max_bytes",
                format!("must be 1 to {}", D::MAX_MAX_BYTES),
            );
        }
        let Some(file) = raw.file else {
            self.problem("deny_list.file", "missing required key");
            return None;
        };
        if self.problems.len() != before {
            return None;
        }
        let list = DenyList::read_file(&file, max_bytes)
            .and_then(|bytes| DenyList::parse(&bytes, max_entries));
        match list {
            Ok(list) => Some(Some(DenyListSettings {
                file,
                reload_interval: Duration::from_secs(reload),
                max_entries,
                max_bytes,
                list: Arc::new(list),
            })),
            Err(e) => {
                self.problem("deny_list.file", format!("{} {e}", file.display()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{MIN, problems};
    use super::*;

    fn parse(text: &str) -> Result<DenyList, DenyListError> {
        DenyList::parse(text.as_bytes(), 100)
    }

    #[test]
    fn every_kind_is_read_with_comments_blank_lines_and_whitespace_ignored() {
        let list = parse(
            "\u{feff}# incident 42\n\n  sub: 1111-2222 \r\nusername:alice\njti:j1\norigin_jti:o1\nclient_id:c1\n   # indented comment\nsub:1111-2222\nusername:a:b",
        )
        .expect("valid");
        assert_eq!(list.len(), 6, "duplicates count once");
        assert!(list.contains(DenyKind::Sub, "1111-2222"));
        assert!(list.contains(DenyKind::Username, "alice"));
        assert!(
            list.contains(DenyKind::Username, "a:b"),
            "split at the first ':'"
        );
        assert!(list.contains(DenyKind::Jti, "j1"));
        assert!(list.contains(DenyKind::OriginJti, "o1"));
        assert!(list.contains(DenyKind::ClientId, "c1"));
        assert!(!list.contains(DenyKind::Sub, "alice"), "kinds do not mix");
        assert!(!list.contains(DenyKind::Username, "Alice"), "exact match");
        assert!(parse("").expect("empty is valid").is_empty());
    }

    #[test]
    fn a_bad_line_invalidates_the_whole_file_naming_its_line_but_not_its_content() {
        for (text, line, what) in [
            ("sub:a\neyJhbGciOi.secret.sig\n", 2, "expected kind:value"),
            ("sub:a\n\nemail:x@y\n", 3, "unknown kind"),
            ("SUB:a\n", 1, "unknown kind"),
            ("sub:   \n", 1, "empty value"),
        ] {
            let e = parse(text).expect_err(text);
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
            assert!(shown.contains(what), "{shown}");
            assert!(
                !shown.contains("secret") && !shown.contains("x@y"),
                "{shown}"
            );
            assert_eq!(e.result(), "invalid");
        }
        let bytes = b"sub:a\nsub:\xff\n";
        assert_eq!(
            DenyList::parse(bytes, 10),
            Err(DenyListError::Line {
                line: 2,
                what: "not UTF-8"
            })
        );
    }

    #[test]
    fn entry_and_byte_limits_hold() {
        assert_eq!(
            DenyList::parse(b"sub:a\nsub:b\nsub:c\n", 2),
            Err(DenyListError::TooManyEntries { max: 2 })
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny");
        std::fs::write(&path, "sub:abcdef\n").expect("write");
        assert_eq!(
            DenyList::read_file(&path, 5),
            Err(DenyListError::TooLarge { max: 5 })
        );
        assert_eq!(DenyList::read_file(&path, 11).expect("fits").len(), 11);
        let missing = DenyList::read_file(&dir.path().join("nope"), 5).expect_err("missing");
        assert_eq!(missing.result(), "error");
    }

    #[test]
    fn the_section_is_read_with_defaults_and_the_file_parsed_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny");
        std::fs::write(&path, "sub:s1\njti:j1\n").expect("write");
        let cfg = Config::from_toml(&format!(
            "{MIN}\n[deny_list]\nfile = \"{}\"",
            path.display()
        ))
        .expect("valid");
        let d = cfg.deny_list.expect("section");
        assert_eq!(d.reload_interval, Duration::from_secs(5));
        assert_eq!((d.max_entries, d.max_bytes), (100_000, 4 << 20));
        assert_eq!(d.list.len(), 2);
        assert_eq!(format!("{:?}", d.list), "DenyList { entries: 2, .. }");
        assert!(Config::from_toml(MIN).expect("valid").deny_list.is_none());
    }

    #[test]
    fn deny_list_problems_are_reported_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "sub:a\nnonsense\n").expect("write");
        assert_eq!(
            problems(&format!(
                "{MIN}\n[deny_list]\nreload_interval_seconds = 0\nmax_entries = 0\nmax_bytes = 0"
            )),
            [
                "deny_list.reload_interval_seconds: must be positive",
                "deny_list.max_entries: must be positive",
                "deny_list.max_bytes: must be 1 to 67108864",
                "deny_list.file: missing required key",
            ]
        );
        let p = problems(&format!("{MIN}\n[deny_list]\nfile = \"{}\"", bad.display()));
        assert_eq!(
            p,
            [format!(
                "deny_list.file: {} line 2: expected kind:value",
                bad.display()
            )]
        );
        let p = problems(&format!("{MIN}\n[deny_list]\nfile = \"/nonexistent/deny\""));
        assert!(
            p.len() == 1 && p[0].starts_with("deny_list.file: /nonexistent/deny cannot be read"),
            "{p:?}"
        );
        let p = problems(&format!("{MIN}\n[deny_list]\nfile = \"x\"\nfiel = 1"));
        assert!(p[0].starts_with("deny_list: unknown field"), "{p:?}");
    }
}
