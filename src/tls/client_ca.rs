//! The mTLS client verifier that the reloader can point at a new CA bundle: it delegates
//! to the verifier built from the bundle loaded last, and keeps the CA subjects it hints
//! to clients in an append-only list so that the borrow rustls takes of them stays valid
//! across swaps.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::{TlsError, client_verifier};

/// The hint lists (CA subjects sent in the `CertificateRequest`) of every distinct bundle
/// loaded so far, as an append-only list.
///
/// `root_hint_subjects` must lend a slice borrowed from the verifier, while the inner
/// verifier holding the current hints can be swapped out and dropped during that borrow.
/// A node of this list is never changed or unlinked once set (`OnceLock`), so a borrow
/// of any node lives as long as the [`ReloadingClientVerifier`]. A bundle whose hints
/// equal those of an earlier one reuses its node, so the list grows only with the
/// distinct subject sets ever loaded (one per real CA rotation), never per poll or per
/// reload of the same CAs. Sending no hints at all would be sound too, but clients
/// holding several certificates use them to pick the one to present.
#[derive(Debug)]
struct HintLog {
    hints: Vec<DistinguishedName>,
    next: OnceLock<Box<HintLog>>,
}

impl HintLog {
    fn new(hints: Vec<DistinguishedName>) -> Self {
        Self {
            hints,
            next: OnceLock::new(),
        }
    }

    /// The position of `hints` in the list, appended if new.
    fn intern(&self, hints: &[DistinguishedName]) -> usize {
        let same = |a: &[DistinguishedName]| {
            a.len() == hints.len() && a.iter().zip(hints).all(|(x, y)| x.as_ref() == y.as_ref())
        };
        let mut node = self;
        let mut index = 0;
        while !same(&node.hints) {
            node = node
                .next
                .get_or_init(|| Box::new(Self::new(hints.to_vec())));
            index += 1;
        }
        index
    }

    fn get(&self, index: usize) -> &[DistinguishedName] {
        let mut node = self;
        for _ in 0..index {
            match node.next.get() {
                Some(next) => node = next,
                // Unreachable: indexes come from `intern`. No hints is a safe answer.
                None => return &[],
            }
        }
        &node.hints
    }
}

/// The verifier in force and the position of its hints in the [`HintLog`].
#[derive(Debug)]
struct Generation {
    verifier: Arc<dyn ClientCertVerifier>,
    hints: usize,
}

/// Verifies client certificates against whichever CA bundle was loaded last.
#[derive(Debug)]
pub struct ReloadingClientVerifier {
    current: ArcSwap<Generation>,
    hints: HintLog,
    provider: Arc<CryptoProvider>,
}

impl ReloadingClientVerifier {
    pub(super) fn new(
        verifier: Arc<dyn ClientCertVerifier>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            hints: HintLog::new(verifier.root_hint_subjects().to_vec()),
            current: ArcSwap::from_pointee(Generation { verifier, hints: 0 }),
            provider,
        }
    }

    /// Builds a verifier from `pem` (the bundle at `path`) and puts it in force.
    ///
    /// # Errors
    /// [`TlsError`] if the bundle is unusable; the previous one stays in force.
    pub(super) fn reload(&self, path: &Path, pem: &[u8]) -> Result<(), TlsError> {
        let verifier = client_verifier(path, pem, &self.provider)?;
        let hints = self.hints.intern(verifier.root_hint_subjects());
        self.current.store(Arc::new(Generation { verifier, hints }));
        Ok(())
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.current.load().verifier)
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.verifier().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.verifier().client_auth_mandatory()
    }

    /// A handshake racing a reload may get the hints of the other bundle: they are only
    /// hints, the certificate is verified against the bundle in force when it arrives.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        let index = self.current.load().hints;
        self.hints.get(index)
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.verifier().requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().pem()
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn verifier(pem: &str) -> ReloadingClientVerifier {
        let path = Path::new("initial.pem");
        let inner = client_verifier(path, pem.as_bytes(), &provider()).unwrap();
        ReloadingClientVerifier::new(inner, provider())
    }

    fn subjects(v: &ReloadingClientVerifier) -> Vec<Vec<u8>> {
        v.root_hint_subjects()
            .iter()
            .map(|d| d.as_ref().to_vec())
            .collect()
    }

    #[test]
    fn unusable_bundles_are_refused_with_typed_errors_and_keep_the_previous_one() {
        let v = verifier(&ca_pem("A"));
        let before = subjects(&v);
        let path = Path::new("clients.pem");
        let half = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(matches!(
            v.reload(path, half.as_bytes()),
            Err(TlsError::File { .. })
        ));
        assert!(matches!(
            v.reload(path, b""),
            Err(TlsError::NoClientCa { .. })
        ));
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            v.reload(path, not_der.as_bytes()),
            Err(TlsError::NoClientCa { .. })
        ));
        assert_eq!(subjects(&v), before);
        assert_eq!(v.current.load().hints, 0);
    }

    #[test]
    fn hints_follow_the_bundle_and_the_log_grows_only_with_distinct_subject_sets() {
        let (a, b) = (ca_pem("A"), ca_pem("B"));
        let v = verifier(&a);
        let hints_a = subjects(&v);
        let path = Path::new("clients.pem");
        v.reload(path, b.as_bytes()).unwrap();
        let hints_b = subjects(&v);
        assert_ne!(hints_a, hints_b);
        assert_eq!(v.current.load().hints, 1);
        // Back to A (even a re-issued A certificate, same subject): the first node again.
        for _ in 0..3 {
            v.reload(path, ca_pem("A").as_bytes()).unwrap();
            assert_eq!(subjects(&v), hints_a);
            assert_eq!(v.current.load().hints, 0);
            v.reload(path, b.as_bytes()).unwrap();
            assert_eq!(v.current.load().hints, 1);
        }
        let both = format!("{a}{b}");
        v.reload(path, both.as_bytes()).unwrap();
        assert_eq!(v.current.load().hints, 2);
        assert_eq!(subjects(&v).len(), 2);
        // A borrow taken before a swap stays valid after it.
        let borrowed = v.root_hint_subjects();
        v.reload(path, a.as_bytes()).unwrap();
        assert_eq!(borrowed.len(), 2);
        assert!(v.hints.get(3).is_empty());
    }
}
