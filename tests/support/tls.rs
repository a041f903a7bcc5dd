//! TLS: certificates generated at test time, certificate files, HTTPS clients, and a
//! sidecar with a `[tls]` table.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};

use super::env::Env;

/// A certificate authority issuing server and client certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (cert PEM, key PEM) for `localhost` / 127.0.0.1.
    pub fn server_cert(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// (cert PEM, key PEM) for a client (extended key usage `clientAuth`).
    pub fn client_cert(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a server certificate of `ca` (and its key) into `dir`; returns the `[tls]`
/// table serving it, with `extra` lines appended, and the two files' paths.
pub fn tls_table(dir: &Path, ca: &Ca, extra: &str) -> (String, String, String) {
    let (cert, key) = ca.server_cert();
    let cert_path = write(dir, "tls.crt", &cert);
    let key_path = write(dir, "tls.key", &key);
    let table = format!("[tls]\ncert_file = \"{cert_path}\"\nkey_file = \"{key_path}\"\n{extra}");
    (table, cert_path, key_path)
}

/// Writes `text` to `dir/name`; returns the path as a string for TOML.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Replaces the file at `path` atomically, as a rotation does: write a sibling, rename it
/// over the original.
pub fn replace(path: &str, text: &str) {
    let tmp = format!("{path}.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTPS client trusting `ca_pem`, presenting `identity` (cert PEM, key PEM) if given.
pub fn tls_client_builder(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    match identity {
        Some((cert, key)) => {
            b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        }
        None => b,
    }
}

pub fn tls_client(ca_pem: &str, identity: Option<(&str, &str)>, http2: bool) -> reqwest::Client {
    let b = tls_client_builder(ca_pem, identity);
    if http2 { b } else { b.http1_only() }.build().unwrap()
}

/// A ready sidecar with the standard configuration plus `top` and `tls` (a `[tls]` table).
pub async fn start_tls_env(top: &str, tls: &str) -> Env {
    Env::configured(top, tls).await
}

pub fn https(env: &Env, path: &str) -> String {
    format!("https://localhost:{}{path}", env.sidecar.proxy_addr.port())
}
