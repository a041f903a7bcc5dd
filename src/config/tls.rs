//! `[tls]`: downstream TLS termination. Typed settings, defaults and checks (the
//! files must exist when the configuration is loaded; the `tls` module reads them).

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawTls;
use super::validate::{Root, Validator};

/// Downstream TLS termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// If set, clients must present a certificate signed by a CA in this PEM bundle.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
}

/// Defaults of the optional `[tls]` keys, in seconds.
impl TlsSettings {
    /// `reload_interval_seconds`.
    pub const DEFAULT_RELOAD_INTERVAL_SECONDS: u64 = 10;
    /// `handshake_timeout_seconds`.
    pub const DEFAULT_HANDSHAKE_TIMEOUT_SECONDS: u64 = 10;
}

impl Validator {
    /// `[tls]` (absent: plain HTTP, `Some(None)`).
    pub(super) fn tls(&mut self, root: &Root) -> Option<Option<TlsSettings>> {
        let Some(value) = root.get("tls") else {
            return Some(None);
        };
        let raw = self.get::<RawTls>("tls", Some(value))?;
        let before = self.problems.len();
        for (key, path) in [
            ("tls.cert_file", Some(&raw.cert_file)),
            ("tls.key_file", Some(&raw.key_file)),
            ("tls.client_ca_file", raw.client_ca_file.as_ref()),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                self.problem(key, format!("{} is not a readable file", path.display()));
            }
        }
        let reload = raw
            .reload_interval_seconds
            .unwrap_or(TlsSettings::DEFAULT_RELOAD_INTERVAL_SECONDS);
        if reload == 0 {
            self.problem("tls.reload_interval_seconds", "must be positive");
        }
        let handshake = raw
            .handshake_timeout_seconds
            .unwrap_or(TlsSettings::DEFAULT_HANDSHAKE_TIMEOUT_SECONDS);
        if handshake == 0 {
            self.problem("tls.handshake_timeout_seconds", "must be positive");
        }
        (self.problems.len() == before).then(|| {
            Some(TlsSettings {
                cert_file: raw.cert_file,
                key_file: raw.key_file,
                client_ca_file: raw.client_ca_file,
                reload_interval: Duration::from_secs(reload),
                handshake_timeout: Duration::from_secs(handshake),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MIN, problems};

    #[test]
    fn missing_tls_files_and_zero_intervals_are_reported_by_key() {
        let p = problems(&format!(
            "{MIN}\n[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\nreload_interval_seconds = 0"
        ));
        assert_eq!(
            p,
            [
                "tls.cert_file: /nonexistent/c.pem is not a readable file",
                "tls.key_file: /nonexistent/k.pem is not a readable file",
                "tls.reload_interval_seconds: must be positive",
            ]
        );
    }
}
