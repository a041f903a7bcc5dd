//! Downstream TLS termination with rustls: certificate and key from PEM files, TLS 1.2
//! and 1.3, ALPN `h2` and `http/1.1`, optional client-certificate verification (mTLS).
//! The files are re-read on an interval and swapped in when their content changes
//! (Kubernetes rotates mounted Secrets by swapping symlinks): new handshakes use the new
//! certificate, established connections are untouched, and a broken new pair is
//! reported and ignored while the old one keeps serving.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::TlsSettings;
use crate::metrics::Metrics;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (key does not match, unsupported key type...).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA bundle is unusable.
    #[error("client CA bundle: {0}")]
    ClientCa(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Loads a certificate chain and private key into a [`CertifiedKey`].
///
/// # Errors
/// [`TlsError`] if either file is unreadable, empty, or they do not match.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate found"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match()?;
    Ok(certified)
}

/// Serves whatever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Builds the server configuration and the resolver the reloader updates.
///
/// # Errors
/// [`TlsError`] if the files are unusable.
pub fn server_config(
    settings: &TlsSettings,
) -> Result<(Arc<ServerConfig>, Arc<ReloadingResolver>), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Arc::new(ReloadingResolver {
        current: ArcSwap::from_pointee(load_certified_key(
            &settings.cert_file,
            &settings.key_file,
        )?),
    });
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &settings.client_ca_file {
        Some(ca) => {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| file_err(ca, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_err(ca, e))?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::ClientCa(format!(
                    "{}: no usable CA certificate",
                    ca.display()
                )));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

/// Re-reads the certificate and key every `reload_interval`; swaps them in when the
/// content changed and the new pair loads. Stops when `shutdown` turns true.
pub fn spawn_reloader(
    resolver: Arc<ReloadingResolver>,
    settings: TlsSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let read = |s: &TlsSettings| {
            (
                std::fs::read(&s.cert_file).ok(),
                std::fs::read(&s.key_file).ok(),
            )
        };
        let mut last = read(&settings);
        loop {
            tokio::select! {
                () = tokio::time::sleep(settings.reload_interval) => {}
                () = crate::server::until_true(&mut shutdown) => return,
            }
            let now = read(&settings);
            if now == last {
                continue;
            }
            match load_certified_key(&settings.cert_file, &settings.key_file) {
                Ok(key) => {
                    resolver.current.store(Arc::new(key));
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(cert = %settings.cert_file.display(), "TLS certificate reloaded");
                    last = now;
                }
                Err(e) => {
                    // Often a half-written rotation: try again next interval, keep serving.
                    metrics.tls_reloads.with_label_values(&["error"]).inc();
                    tracing::warn!(error = %e, "TLS certificate changed but could not be loaded; keeping the previous one");
                }
            }
        }
    });
}
