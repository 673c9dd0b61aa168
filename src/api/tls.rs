//! TLS for the server: the certificate chain and key come from PEM files,
//! and are read again when either file changes (looked at no more than
//! once a second, at a handshake), so that a renewed certificate (cert-manager
//! rewriting a Secret's mount) is served without a restart. A changed pair
//! that does not load (half-written, or a key that does not match) keeps the
//! pair served before, and says why in the service log. ALPN offers HTTP/2
//! and HTTP/1.1, as gRPC and REST share the port.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;
use crate::watched::Watched;

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    cert_file: Watched,
    key_file: Watched,
}

/// Serves the pair of files, reading them again when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: Mutex<Current>,
}

/// Reads a certificate chain and its key.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| format!("the private key {}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        format!(
            "the private key {} does not match the certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

impl ReloadingCert {
    /// Reads `files` now.
    ///
    /// # Errors
    ///
    /// A message naming the file that does not load.
    pub fn new(files: &TlsFiles) -> Result<Self, String> {
        let cert_file = Watched::new(&files.cert);
        let key_file = Watched::new(&files.key);
        let key = load(&files.cert, &files.key)?;
        Ok(Self {
            current: Mutex::new(Current {
                key,
                cert_file,
                key_file,
            }),
        })
    }

    /// The pair to serve, read again first if the files changed.
    fn key(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        // Both looked at (`|`, not `||`), so each remembers its new stamp.
        if current.cert_file.changed() | current.key_file.changed() {
            match load(current.cert_file.path(), current.key_file.path()) {
                Ok(key) => {
                    tracing::info!(cert = %current.cert_file.path().display(), "TLS certificate read again");
                    current.key = key;
                }
                Err(error) => tracing::warn!(
                    %error,
                    "the TLS files changed but do not load; serving the certificate read before"
                ),
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

/// The server's TLS configuration for `files`.
///
/// # Errors
///
/// A message naming the file that does not load.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let resolver = ReloadingCert::new(files)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS set-up: {e}"))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
