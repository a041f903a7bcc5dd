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
