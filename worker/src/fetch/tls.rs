//! The rustls client configuration of the fetcher, built on the *ring* crypto provider.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Whether the fetcher verifies the certificate of an HTTPS server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVerification {
    /// Verify the certificate chain against the operating system's root store and check that it
    /// names the host. The default.
    #[default]
    VerifyCertificates,
    /// Accept any certificate. The handshake signatures are still checked, so the server must
    /// hold the key of the certificate it sends, but nothing ties that certificate to the host.
    /// This is the seed deployment's `verify_ssl=False`.
    AcceptAnyCertificate,
}

/// Builds the client configuration for `verification`.
///
/// ALPN offers only `http/1.1`, matching the HTTP/1-only client.
///
/// # Errors
///
/// Returns the rustls error when no root certificate can be loaded from the operating system
/// (only with [`TlsVerification::VerifyCertificates`]).
pub(crate) fn client_config(verification: TlsVerification) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;

    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        TlsVerification::VerifyCertificates => {
            Arc::new(rustls_platform_verifier::Verifier::new(provider)?)
        }
        TlsVerification::AcceptAnyCertificate => Arc::new(AnyCertificate { provider }),
    };

    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A verifier that accepts every certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
