//! TLS for `run`, with optional client certificates (RFC 8705).
//!
//! With a client CA (`tls_client_ca`), the server asks every connection for a certificate and
//! accepts connections without one, so secret-based clients keep working on the same listener.
//! A presented certificate is not refused at the handshake even when it does not chain to the
//! CA: `self_signed_tls_client_auth` (RFC 8705 §2.2) and certificate-bound tokens work with any
//! certificate whose private key the client proved it holds, and rustls checks that proof (the
//! handshake signature) as always. Whether the certificate chained is worked out per request
//! with rustls' own `WebPkiClientVerifier` over the CA bundle ([`ClientCa::chained`]), and only
//! `tls_client_auth` asks for it.
//!
//! axum-server puts the peer's certificates (DER, leaf first) into every request of the
//! connection as `Arc<axum_server::tls::TlsInfo>`; `extract::client_certificate` reads them.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

pub use axum_server::tls::TlsInfo;

/// TLS for `run`: a certificate chain and key loaded from PEM files.
pub use axum_server::tls_rustls::RustlsConfig as TlsConfig;

/// The CA bundle client certificates must chain to for `tls_client_auth`.
#[derive(Debug, Clone)]
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCa {
    /// Reads a PEM bundle of CA certificates (at least one).
    pub fn from_pem_file(path: &Path) -> std::io::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(invalid)? {
            roots.add(cert.map_err(invalid)?).map_err(invalid)?;
        }
        if roots.is_empty() {
            return Err(invalid("no CA certificate in the client CA file"));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(invalid)?;
        Ok(Self { verifier })
    }

    /// Whether the chain (DER, leaf first) chains to the CA now (validity, key usage and
    /// signatures as rustls checks them for client certificates).
    pub fn chained(&self, chain: &[Vec<u8>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let intermediates: Vec<CertificateDer<'_>> =
            intermediates.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
        self.verifier
            .verify_client_cert(&CertificateDer::from(leaf.as_slice()), &intermediates, UnixTime::now())
            .is_ok()
    }
}

/// Asks for a client certificate, accepts any (or none) at the handshake, and checks the
/// handshake signature with it like the CA verifier does.
#[derive(Debug)]
struct AnyClientCertificate {
    ca: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chaining is checked per request, for the methods that need it (see the module doc).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

/// Loads the server's certificate chain and key, and with `client_ca` asks connections for a
/// client certificate. Returns the TLS config and the CA to check chains against.
pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> std::io::Result<(TlsConfig, Option<ClientCa>)> {
    let chain =
        CertificateDer::pem_file_iter(cert).map_err(invalid)?.collect::<Result<Vec<_>, _>>().map_err(invalid)?;
    if chain.is_empty() {
        return Err(invalid("no certificate in the TLS certificate file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(invalid)?;
    let ca = client_ca.map(ClientCa::from_pem_file).transpose()?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?;
    let builder = match &ca {
        Some(ca) => builder.with_client_cert_verifier(Arc::new(AnyClientCertificate { ca: ca.verifier.clone() })),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(invalid)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsConfig::from_config(Arc::new(config)), ca))
}

/// A header name as configured, in the lower-case form requests are read with; `None` when it
/// is not a valid name.
pub fn header_name(name: &str) -> Option<String> {
    axum::http::HeaderName::from_bytes(name.as_bytes()).ok().map(|n| n.as_str().to_owned())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn invalid(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}
