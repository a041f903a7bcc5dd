//! Downstream TLS termination with rustls: certificate and key from PEM files, TLS 1.2
//! and 1.3, ALPN `h2` and `http/1.1`, optional client-certificate verification (mTLS)
//! against a PEM CA bundle. This module loads the files and builds the `ServerConfig`.
//! [`spawn_reloader`] (`tls/reload.rs`) re-reads them on an interval (Kubernetes rotates
//! mounted Secrets by swapping symlinks) and, when their content changes, swaps in the
//! certificate (via [`ReloadingResolver`]) and the client CA bundle (via
//! [`ReloadingClientVerifier`], `tls/client_ca.rs`): new handshakes use the new ones,
//! established connections are untouched, sessions verified under the old bundle are no
//! longer resumed, and a broken new file is reported and ignored while the old one keeps
//! serving.

mod client_ca;
mod reload;

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use client_ca::ReloadingClientVerifier;
pub use reload::{Reloadable, ReloadingResolver, ResettableSessions, spawn_reloader};

use crate::config::TlsSettings;

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
    /// The client CA bundle holds no certificate usable as a trust anchor.
    #[error("{path}: no usable CA certificate in the client CA bundle")]
    NoClientCa {
        /// The bundle.
        path: String,
    },
    /// rustls could not build a client-certificate verifier from the bundle.
    #[error("{path}: client CA bundle refused: {source}")]
    ClientVerifier {
        /// The bundle.
        path: String,
        /// What rustls objected to.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
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

/// Builds a verifier requiring client certificates that chain to a CA in `pem`, the
/// content of the bundle at `path` (named in errors). Parsing the bytes already read, not
/// the file again, means the reloader loads exactly the content it compared.
///
/// # Errors
/// [`TlsError`] if the bundle does not parse, holds no usable CA, or rustls refuses it.
pub fn client_verifier(
    path: &Path,
    pem: &[u8],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoClientCa {
            path: path.display().to_string(),
        });
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|source| TlsError::ClientVerifier {
            path: path.display().to_string(),
            source,
        })
}

/// Builds the server configuration and what the reloader updates in it.
///
/// # Errors
/// [`TlsError`] if the files are unusable.
pub fn server_config(settings: &TlsSettings) -> Result<(Arc<ServerConfig>, Reloadable), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Arc::new(ReloadingResolver::new(load_certified_key(
        &settings.cert_file,
        &settings.key_file,
    )?));
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let (builder, client_ca) = match &settings.client_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| file_err(path, e))?;
            let verifier = Arc::new(ReloadingClientVerifier::new(
                client_verifier(path, &pem, &provider)?,
                provider,
            ));
            let builder = builder
                .with_client_cert_verifier(Arc::clone(&verifier) as Arc<dyn ClientCertVerifier>);
            (builder, Some((verifier, pem)))
        }
        None => (builder.with_no_client_auth(), None),
    };
    let mut config =
        builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption only through this store (the default ticketer makes no stateless
    // tickets), which the reloader empties when the client CA bundle changes: a resumed
    // session is not verified again.
    let sessions = Arc::new(ResettableSessions::new());
    config.session_storage = Arc::clone(&sessions) as _;
    Ok((
        Arc::new(config),
        Reloadable::new(resolver, client_ca, sessions),
    ))
}
