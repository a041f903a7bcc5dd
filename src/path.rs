//! PURE: request-path canonicalisation and whole-segment rule matching (SECURITY.md 5.7).
//!
//! The path is canonicalised once; the canonical form is both what route rules are
//! matched against and what is forwarded upstream, so the backend serves exactly the
//! resource that was authorised. The query string never takes part.

/// Why a request path is refused outright (answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%2F`, `%5C`, `\`, `%00`, a control byte or bad percent-encoding.
    #[error("path contains a forbidden or ambiguous encoding")]
    ForbiddenEncoding,
    /// `..` climbing above `/`.
    #[error("path climbs above the root")]
    AboveRoot,
    /// Not an origin-form path.
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// Double encoding (`%25` + two hex digits), an encoded `;`, whitespace encoded at
    /// the edge of a segment, or invalid / overlong UTF-8: encodings that backends which
    /// decode twice, decode `;` or trim segments read as a different path.
    #[error("path contains an encoding that backends read differently")]
    AmbiguousEncoding,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Canonicalises an origin-form path.
///
/// Decodes percent-encoded unreserved characters, upper-cases the remaining escapes,
/// merges `//`, removes `.` and `..` segments.
///
/// # Errors
/// [`PathError`] for encodings that different servers read differently.
pub fn canonicalize(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // 1. Decode unreserved escapes, normalise the others, refuse ambiguous ones.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(PathError::ForbiddenEncoding);
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
                    return Err(PathError::ForbiddenEncoding);
                }
                if is_unreserved(v) {
                    decoded.push(char::from(v));
                } else {
                    decoded.push('%');
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::ForbiddenEncoding),
            b if !(0x21..0x7f).contains(&b) => return Err(PathError::ForbiddenEncoding),
            b'#' => break,
            _ => {
                decoded.push(char::from(b));
                i += 1;
            }
        }
    }
    // 2-4. Merge empty segments, remove dot segments.
    let trailing_slash =
        decoded.len() > 1 && (decoded.ends_with('/') || ends_with_dot_segment(&decoded));
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => out.push(s),
        }
    }
    let mut canon = String::with_capacity(decoded.len());
    for seg in &out {
        canon.push('/');
        canon.push_str(seg);
    }
    if canon.is_empty() || trailing_slash {
        canon.push('/');
    }
    Ok(canon)
}

/// Refuses, in a raw request path, the encodings that `strict_path_encoding` forbids:
/// `%25` followed by two hex digits (a backend that decodes twice sees another path),
/// `%3B` (a backend that decodes before splitting `;params` sees a parameter), whitespace
/// encoded at the start or end of a segment (backends that trim see another segment),
/// and percent-decoded bytes that are not valid UTF-8 (overlong forms such as `%C0%AE`
/// are read as `.` by lenient decoders).
///
/// # Errors
/// [`PathError::AmbiguousEncoding`], or [`PathError::ForbiddenEncoding`] for a broken
/// escape.
pub fn check_strict(raw: &str) -> Result<(), PathError> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        // Raw bytes outside printable ASCII are refused by `canonicalize`; nothing here
        // can be ambiguous without an escape.
        return Ok(());
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(PathError::ForbiddenEncoding);
            };
            let v = h * 16 + l;
            let doubled = v == b'%'
                && bytes.get(i + 3).copied().and_then(hex_val).is_some()
                && bytes.get(i + 4).copied().and_then(hex_val).is_some();
            if doubled || v == b';' {
                return Err(PathError::AmbiguousEncoding);
            }
            decoded.push(v);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::AmbiguousEncoding)?;
    let edge_space = text
        .split('/')
        .any(|seg| seg.starts_with(char::is_whitespace) || seg.ends_with(char::is_whitespace));
    if edge_space {
        return Err(PathError::AmbiguousEncoding);
    }
    Ok(())
}

fn percent_decode_once(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Folds two-byte overlong UTF-8 forms of ASCII (`C0 AE` -> `.`), as lenient decoders do.
fn fold_overlong(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b0 @ (0xC0 | 0xC1), Some(&b1)) if (0x80..0xC0).contains(&b1) => {
                out.push(((b0 & 0x1F) << 6) | (b1 & 0x3F));
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// How the most generous backend could read a canonical path: percent-decoded until
/// stable (at most three rounds), overlong UTF-8 folded, `\` taken as `/`, `;params`
/// dropped, whitespace and trailing dots trimmed from every segment, dot segments
/// resolved again. Rules that require a token also match this reading, and public rules
/// must match it too, so no spelling a backend folds can reach a restricted path through
/// a weaker rule.
///
/// Returns `None` when that reading climbs above the root (never public).
#[must_use]
pub fn backend_reading(canonical: &str) -> Option<std::borrow::Cow<'_, str>> {
    let plain = !canonical
        .bytes()
        .any(|b| matches!(b, b'%' | b';' | b'.' | b'\\'));
    if plain {
        return Some(std::borrow::Cow::Borrowed(canonical));
    }
    let mut bytes = canonical.as_bytes().to_vec();
    for _ in 0..3 {
        let next = percent_decode_once(&bytes);
        if next == bytes {
            break;
        }
        bytes = next;
    }
    let bytes = fold_overlong(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split(['/', '\\']) {
        let seg = seg.split(';').next().unwrap_or("").trim();
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => {
                let s = s.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
                if !s.is_empty() {
                    out.push(s);
                }
            }
        }
    }
    let mut reading = String::with_capacity(canonical.len());
    for seg in &out {
        reading.push('/');
        reading.push_str(seg);
    }
    if reading.is_empty() || (canonical.len() > 1 && canonical.ends_with('/')) {
        reading.push('/');
    }
    Some(std::borrow::Cow::Owned(reading))
}

fn ends_with_dot_segment(p: &str) -> bool {
    p.ends_with("/.") || p.ends_with("/..")
}

/// The canonical path with `;params` removed from every segment and dot segments
/// resolved again (Tomcat-style servers read `/public/..;/admin` as `/admin`).
///
/// Returns `None` when the stripped form climbs above the root, which a caller treats
/// as "does not match any public rule".
#[must_use]
pub fn strip_params(canonical: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !canonical.contains(';') {
        return Some(std::borrow::Cow::Borrowed(canonical));
    }
    let stripped: Vec<&str> = canonical
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect();
    canonicalize(&stripped.join("/"))
        .ok()
        .map(std::borrow::Cow::Owned)
}

/// Whole-segment prefix or exact match, case-sensitively (used for public rules).
#[must_use]
pub fn matches_strict(rule: &str, exact: bool, path: &str) -> bool {
    let rule = rule.strip_suffix('/').unwrap_or(rule);
    if rule.is_empty() {
        return !exact || path == "/";
    }
    if exact {
        return path == rule || path.strip_suffix('/') == Some(rule);
    }
    match path.strip_prefix(rule) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Lenient whole-segment match used for restrictive rules: case-insensitive, each
/// request segment compared without `;params` and trailing dots (`/ADMIN`, `/admin.`
/// and `/admin;v=1` all reach a rule for `/admin`).
#[must_use]
pub fn matches_lenient(rule: &str, exact: bool, path: &str) -> bool {
    let rule = rule.strip_suffix('/').unwrap_or(rule);
    let mut path_segs = path.split('/').skip(1).filter(|s| !s.is_empty());
    if rule.is_empty() {
        return !exact || path_segs.next().is_none();
    }
    // Segment by segment, without allocating: this runs for every rule on every request.
    for r in rule.split('/').skip(1) {
        let Some(p) = path_segs.next() else {
            return false;
        };
        let p = p.split(';').next().unwrap_or("").trim_end_matches('.');
        if !r.eq_ignore_ascii_case(p) {
            return false;
        }
    }
    !exact || path_segs.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_double_slashes_are_resolved() {
        assert_eq!(canonicalize("/public/../api/x").as_deref(), Ok("/api/x"));
        assert_eq!(canonicalize("//api/x").as_deref(), Ok("/api/x"));
        assert_eq!(canonicalize("/./api/x").as_deref(), Ok("/api/x"));
        assert_eq!(
            canonicalize("/public/a/./b/../c").as_deref(),
            Ok("/public/a/c")
        );
        assert_eq!(canonicalize("/").as_deref(), Ok("/"));
        assert_eq!(canonicalize("/a/").as_deref(), Ok("/a/"));
        assert_eq!(canonicalize("/a/b/..").as_deref(), Ok("/a/"));
    }

    #[test]
    fn encoded_dots_are_decoded_before_dot_segment_removal() {
        for p in [
            "/public/%2e%2e/api/x",
            "/public/%2E%2E/api/x",
            "/public/.%2e/api/x",
        ] {
            assert_eq!(canonicalize(p).as_deref(), Ok("/api/x"), "{p}");
        }
    }

    #[test]
    fn encoded_slashes_backslashes_and_nul_are_refused() {
        for p in [
            "/public%2f..%2fapi/x",
            "/public%5c..%5capi",
            "/public\\..\\api\\x",
            "/public/%00/x",
            "/a%zz",
            "/a%4",
        ] {
            assert_eq!(canonicalize(p), Err(PathError::ForbiddenEncoding), "{p}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        assert_eq!(canonicalize("/../etc/passwd"), Err(PathError::AboveRoot));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_uppercased() {
        assert_eq!(canonicalize("/%61pi/%3b%20").as_deref(), Ok("/api/%3B%20"));
    }

    #[test]
    fn params_are_stripped_per_segment_and_dots_resolved_again() {
        assert_eq!(strip_params("/public/..;/api/x").as_deref(), Some("/api/x"));
        assert_eq!(
            strip_params("/public;x/../api/x").as_deref(),
            Some("/api/x")
        );
        assert_eq!(strip_params("/admin;v=1/x").as_deref(), Some("/admin/x"));
    }

    #[test]
    fn strict_mode_refuses_encodings_backends_read_differently() {
        for p in [
            "/public/%252e%252e/admin",
            "/admin%253B/x",
            "/admin%3B/x",
            "/admin%3b/x",
            "/admin%20/x",
            "/%20admin/x",
            "/admin/x%C2%A0",
            "/public/%C0%AE%C0%AE/admin",
            "/a%FF",
            "/a%E2%82",
        ] {
            assert_eq!(check_strict(p), Err(PathError::AmbiguousEncoding), "{p}");
        }
        for p in [
            "/public/My%20File.pdf",
            "/api/caf%C3%A9",
            "/a%25",
            "/a%25zz",
            "/plain/path",
            "/a;b=c/x",
        ] {
            assert_eq!(check_strict(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn the_backend_reading_sees_through_decoding_trimming_and_params() {
        let read = |p: &str| backend_reading(&canonicalize(p).expect(p)).map(|c| c.into_owned());
        assert_eq!(read("/admin%20/x").as_deref(), Some("/admin/x"));
        assert_eq!(read("/admin%3B/x").as_deref(), Some("/admin/x"));
        assert_eq!(read("/admin%3Bv=1/x").as_deref(), Some("/admin/x"));
        assert_eq!(
            read("/public/%252e%252e/admin/x").as_deref(),
            Some("/admin/x")
        );
        assert_eq!(read("/public/..%3B/admin/x").as_deref(), Some("/admin/x"));
        assert_eq!(
            read("/public/%C0%AE%C0%AE/admin/x").as_deref(),
            Some("/admin/x")
        );
        assert_eq!(read("/public/%255c..%255cadmin").as_deref(), Some("/admin"));
        assert_eq!(read("/admin./x").as_deref(), Some("/admin/x"));
        assert_eq!(read("/public/x/").as_deref(), Some("/public/x/"));
        assert_eq!(read("/public/x").as_deref(), Some("/public/x"));
        assert_eq!(read("/%252e%252e/etc"), None, "climbs above the root");
    }

    #[test]
    fn strict_prefix_matching_is_by_whole_segment_and_case_sensitive() {
        assert!(matches_strict("/public/", false, "/public/x"));
        assert!(matches_strict("/public", false, "/public"));
        assert!(!matches_strict("/public/", false, "/publicity"));
        assert!(!matches_strict("/public/", false, "/PUBLIC/x"));
        assert!(matches_strict("/", false, "/anything"));
        assert!(matches_strict("/healthz", true, "/healthz"));
        assert!(!matches_strict("/healthz", true, "/healthz/x"));
    }

    #[test]
    fn lenient_matching_sees_through_case_dots_and_params() {
        for p in ["/ADMIN/x", "/admin./x", "/admin;v=1/x", "/admin/", "/admin"] {
            assert!(matches_lenient("/admin/", false, p), "{p}");
        }
        assert!(!matches_lenient("/admin/", false, "/administrator"));
    }
}
