//! TLS to the Results database, with libpq's `sslmode` meanings (rustls):
//!
//! | `DB_SSLMODE` | TLS | certificate check |
//! | --- | --- | --- |
//! | `disable` | never | – |
//! | `allow`, `prefer` | when the server offers it | none (encryption only), as libpq |
//! | `require` | always | chain to `DB_SSLROOTCERT` when set (libpq's rule), else none |
//! | `verify-ca` | always | chain to `DB_SSLROOTCERT` |
//! | `verify-full` | always | chain to `DB_SSLROOTCERT`, and the certificate names `DB_HOST` |
//!
//! `allow` means "plain first, TLS if the server insists" in libpq; the
//! client used here cannot fall back that way, so it is taken as `prefer`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DbConfig;

/// How far the database's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Not at all (the handshake's signatures still are).
    None,
    /// It chains to a trusted CA; any name.
    Chain,
    /// It chains to a trusted CA and names the host.
    Full,
}

/// The connector and the `sslmode` to give the client for `config`.
pub fn connector(config: &DbConfig) -> Result<(MakeRustlsConnect, SslMode), String> {
    let (mode, check) = match (config.sslmode.as_str(), &config.sslrootcert) {
        ("disable", _) => (SslMode::Disable, Check::None),
        ("allow" | "prefer", _) => (SslMode::Prefer, Check::None),
        ("require", None) => (SslMode::Require, Check::None),
        ("require" | "verify-ca", Some(_)) => (SslMode::Require, Check::Chain),
        ("verify-full", Some(_)) => (SslMode::Require, Check::Full),
        (other, None) => {
            return Err(format!(
                "DB_SSLMODE={other} needs DB_SSLROOTCERT, the CA certificates to check against"
            ))
        }
        (other, Some(_)) => return Err(format!("DB_SSLMODE={other} is not an sslmode")),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS to the database: {e}"))?;
    let roots = match &config.sslrootcert {
        Some(path) if check != Check::None => Some(Arc::new(root_store(path)?)),
        _ => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Some(roots) if check == Check::Full => {
            WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("DB_SSLROOTCERT: {e}"))?
        }
        Some(roots) => Arc::new(Lenient {
            chain: Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("DB_SSLROOTCERT: {e}"))?,
            ),
            provider,
        }),
        None => Arc::new(Lenient {
            chain: None,
            provider,
        }),
    };
    let tls = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((MakeRustlsConnect::new(tls), mode))
}

/// The CA certificates of a PEM file.
fn root_store(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("DB_SSLROOTCERT {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("DB_SSLROOTCERT {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("DB_SSLROOTCERT {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "DB_SSLROOTCERT {shown}: no PEM certificate in the file"
        ));
    }
    Ok(roots)
}

/// The checks short of `verify-full`: with `chain`, the certificate must
/// chain to a trusted CA but may name any host (`verify-ca`, and `require`
/// with CA certificates); without, any certificate is taken (`prefer`, and
/// `require` without CA certificates: encryption without authentication, as
/// libpq does). Either way the handshake must be signed by the
/// certificate's key.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
