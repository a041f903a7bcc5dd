//! The one canonical test configuration (SECURITY.md test conventions) and the helpers
//! that edit it or ask why a variant of it is refused.

use std::net::SocketAddr;

use super::claims::{CLIENT, POOL};

/// The standard test configuration (SECURITY.md test conventions), with `extra` TOML
/// appended at top level before the tables.
pub fn config_text(jwks_url: &str, upstream: SocketAddr, top: &str, tables: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://{upstream}"
log_level = "warn"
{top}
[[pools]]
name = "test"
id = "{POOL}"
client_ids = ["{CLIENT}"]
token_use = ["id", "access"]
jwks_url = "{jwks_url}"

[[routes]]
path = "/public/"
auth = "public"
[[routes]]
path = "/opt/"
auth = "optional"
[[routes]]
path = "/admin/"
groups = ["admins"]
[[routes]]
path = "/write/"
scopes = ["api/write"]
token_use = ["access"]
[[routes]]
path = "/ids/"
token_use = ["id"]
{tables}
"#
    )
}

/// Replaces the value of every top-level `key = ...` line of `text` (panics when there is
/// none), e.g. `set_line(text, "listen", "\"127.0.0.1:8080\"")`.
pub fn set_line(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    assert!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "no `{key}` line in the configuration"
    );
    text.lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The problems the standard configuration with these additions is refused for (the
/// JWKS URL and upstream are never contacted).
pub fn config_problems(top: &str, tables: &str) -> String {
    let text = config_text(
        "http://127.0.0.1:1/jwks",
        "127.0.0.1:2".parse().unwrap(),
        top,
        tables,
    );
    cognito_sidecar::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string()
}
