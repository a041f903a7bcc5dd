//! The verified identity as upstream headers: each configured claim header, values
//! percent-encoded to one safe ASCII line, rendered once per cached identity.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::auth::Identity;
use crate::config::IdentityConfig;

/// Percent-encodes a claim value for a header: every byte outside `!`..`~`, and `%`
/// and `,`, becomes `%XX` (upper-case hex, UTF-8 bytes). The result is always a valid,
/// single-line, ASCII header value.
#[must_use]
pub fn encode_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s);
    out
}

/// Appends `s` percent-encoded (see [`encode_value`]), copying runs of plain bytes whole.
fn push_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' {
            continue;
        }
        // Plain bytes are ASCII, so a non-empty run starts and ends on character
        // boundaries; `get` fails only on an empty range inside a character.
        out.push_str(s.get(plain..i).unwrap_or_default());
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        plain = i + 1;
    }
    out.push_str(s.get(plain..).unwrap_or_default());
}

/// Percent-encodes each item and joins them with `,`, into one `String`.
pub(super) fn encode_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_encoded(&mut out, item);
    }
    out
}

fn put(headers: &mut HeaderMap, name: Option<&HeaderName>, value: Option<String>) {
    if let (Some(name), Some(value)) = (name, value) {
        // Absent and empty claims are omitted, never sent as an empty header.
        if value.is_empty() {
            return;
        }
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(name.clone(), v);
        }
    }
}

fn render_claim(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(encode_value(s)),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Some(encode_list(items.iter().filter_map(Value::as_str)))
        }
        other => Some(encode_value(&other.to_string())),
    }
}

/// Sets the identity headers for a verified caller (one value each).
pub fn inject_identity(headers: &mut HeaderMap, id: &Identity, cfg: &IdentityConfig) {
    let rendered = id.rendered.get_or_init(|| {
        let mut h = HeaderMap::new();
        render_identity(&mut h, id, cfg);
        h.into_iter()
            .filter_map(|(k, v)| k.map(|k| (k, v)))
            .collect()
    });
    for (name, value) in rendered {
        headers.insert(name.clone(), value.clone());
    }
}

fn render_identity(headers: &mut HeaderMap, id: &Identity, cfg: &IdentityConfig) {
    let c = &id.claims;
    put(headers, cfg.sub_header.as_ref(), Some(encode_value(&c.sub)));
    put(
        headers,
        cfg.username_header.as_ref(),
        c.username.as_deref().map(encode_value),
    );
    put(
        headers,
        cfg.email_header.as_ref(),
        c.verified_email.as_deref().map(encode_value),
    );
    put(
        headers,
        cfg.groups_header.as_ref(),
        Some(encode_list(c.groups.iter().map(String::as_str))),
    );
    put(
        headers,
        cfg.scope_header.as_ref(),
        Some(encode_list(c.scopes.iter().map(String::as_str))),
    );
    put(
        headers,
        cfg.token_use_header.as_ref(),
        Some(c.token_use.as_str().to_owned()),
    );
    put(
        headers,
        cfg.client_id_header.as_ref(),
        Some(encode_value(&c.client_id)),
    );
    put(
        headers,
        cfg.pool_header.as_ref(),
        Some(encode_value(&id.pool)),
    );
    for (claim, name) in &cfg.claims {
        put(headers, Some(name), c.raw.get(claim).and_then(render_claim));
    }
    if cfg.claims_header.is_some() {
        let json = serde_json::to_vec(&c.raw).unwrap_or_default();
        put(
            headers,
            cfg.claims_header.as_ref(),
            Some(URL_SAFE_NO_PAD.encode(json)),
        );
    }
}
