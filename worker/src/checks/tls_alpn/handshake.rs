//! The TLS client of the check: one handshake that offers only `acme-tls/1`, accepts any
//! certificate, verifies the handshake signatures, and hands the end-entity certificate back.
//!
//! The client offers TLS 1.3 and 1.2 only (RFC 8737 §4) with the *ring* provider, disables
//! session resumption so that every handshake carries the server's certificate, and sends no
//! client certificate. The connection is dropped as soon as the handshake ends.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, PeerMisbehaved,
    ProtocolVersion, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::certificate;

/// The ALPN protocol ID of the validation handshake (RFC 8737 §6.2): the ASCII bytes of
/// `acme-tls/1`.
pub const ACME_TLS_1_PROTOCOL: &[u8] = b"acme-tls/1";

/// The TLS client configuration shared by all checks.
///
/// Each handshake runs on a copy with its own certificate-capturing verifier, so concurrent
/// checks never see each other's certificates.
#[derive(Debug, Clone)]
pub struct TlsClient {
    template: ClientConfig,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The end state of a handshake.
#[derive(Debug)]
pub enum HandshakeOutcome {
    /// The handshake completed, including the verification of the server's handshake signature.
    Completed {
        /// The negotiated ALPN protocol, if any.
        alpn_protocol: Option<Vec<u8>>,
        /// The negotiated TLS version.
        protocol_version: Option<ProtocolVersion>,
        /// The end-entity certificate the server presented.
        certificate: Option<CertificateDer<'static>>,
    },
    /// The handshake failed.
    Failed {
        /// The tokio-rustls error. For TLS errors it wraps a [`rustls::Error`].
        error: io::Error,
        /// The end-entity certificate, if the server got as far as presenting one.
        certificate: Option<CertificateDer<'static>>,
    },
}

impl TlsClient {
    /// Builds the configuration: TLS 1.3 and 1.2, ALPN `acme-tls/1` only, no resumption.
    ///
    /// # Errors
    ///
    /// Returns the rustls error when the *ring* provider offers no cipher suite for TLS 1.2 or
    /// 1.3.
    pub fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let mut template = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CapturingVerifier::new(algorithms)))
            .with_no_client_auth();

        // RFC 8737 §3: "a single protocol name" in the ClientHello.
        template.alpn_protocols = vec![ACME_TLS_1_PROTOCOL.to_vec()];
        // A resumed session carries no Certificate message, so there would be nothing to check.
        template.resumption = Resumption::disabled();
        template.enable_sni = true;

        Ok(Self {
            template,
            algorithms,
        })
    }

    /// Runs one handshake over `stream`, sending `server_name` as SNI.
    ///
    /// The function adds no time limit: the caller bounds it.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        server_name: ServerName<'static>,
    ) -> HandshakeOutcome {
        let verifier = Arc::new(CapturingVerifier::new(self.algorithms));
        let mut config = self.template.clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>);

        let connector = TlsConnector::from(Arc::new(config));
        let result = connector.connect(server_name, stream).await;
        let certificate = verifier.take_certificate();
        match result {
            Ok(tls) => {
                let (_, connection) = tls.get_ref();
                HandshakeOutcome::Completed {
                    alpn_protocol: connection.alpn_protocol().map(<[u8]>::to_vec),
                    protocol_version: connection.protocol_version(),
                    certificate,
                }
                // `tls` is dropped here, which closes the TCP connection, because RFC 8737 §4
                // requires that the client "MUST NOT exchange any further data with the server".
            }
            Err(error) => HandshakeOutcome::Failed { error, certificate },
        }
    }
}

impl HandshakeOutcome {
    /// Returns the end-entity certificate the server presented, if any.
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            Self::Completed { certificate, .. } | Self::Failed { certificate, .. } => {
                certificate.as_ref()
            }
        }
    }

    /// Returns a one-line description for debug logs.
    pub fn summary(&self) -> String {
        match self {
            Self::Completed {
                alpn_protocol,
                protocol_version,
                ..
            } => format!(
                "completed, version {:?}, ALPN {:?}",
                protocol_version,
                alpn_protocol.as_deref().map(String::from_utf8_lossy)
            ),
            Self::Failed { error, .. } => format!("failed: {error}"),
        }
    }
}

/// A certificate verifier that accepts any certificate, keeps the end-entity certificate for
/// the check, and verifies the handshake signatures with the certificate's public key.
///
/// Accepting any certificate is the point of the protocol: the certificate is self-signed and
/// is checked by [`certificate::check`] after the handshake, not against trust anchors.
#[derive(Debug)]
struct CapturingVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    end_entity: Mutex<Option<CertificateDer<'static>>>,
}

impl CapturingVerifier {
    fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self {
            algorithms,
            end_entity: Mutex::new(None),
        }
    }

    fn take_certificate(&self) -> Option<CertificateDer<'static>> {
        // A poisoned lock only means another thread panicked while holding it. The stored
        // value is a complete certificate or `None` either way.
        self.end_entity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self
            .end_entity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = subject_public_key_info(cert)?;
        verify_tls12_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = subject_public_key_info(cert)?;
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Extracts the SubjectPublicKeyInfo with x509-parser, which, unlike webpki, accepts the
/// critical id-pe-acmeIdentifier extension.
fn subject_public_key_info(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    let parsed = certificate::parse(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(SubjectPublicKeyInfoDer::from(
        parsed.public_key().raw.to_vec(),
    ))
}

/// Verifies a TLS 1.2 handshake signature against a raw public key.
///
/// rustls offers this only for TLS 1.3 (`verify_tls13_signature_with_raw_key`). TLS 1.2 needs
/// its own version because a TLS 1.2 signature scheme does not fix the curve of an ECDSA key,
/// so it maps to several algorithms. Each is tried in turn until one fits the key, the same
/// procedure rustls' `verify_tls12_signature` follows for a certificate.
fn verify_tls12_signature_with_raw_key(
    message: &[u8],
    spki: &SubjectPublicKeyInfoDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, candidates)| *candidates)
        .ok_or(rustls::Error::PeerMisbehaved(
            PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    let key = webpki::RawPublicKeyEntity::try_from(spki).map_err(webpki_error)?;

    let mut key_mismatch = None;
    for algorithm in candidates {
        match key.verify_signature(*algorithm, message, dss.signature()) {
            Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
            Err(error @ webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                key_mismatch = Some(error);
            }
            Err(error) => return Err(webpki_error(error)),
        }
    }
    Err(key_mismatch.map_or(
        rustls::Error::PeerMisbehaved(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme),
        webpki_error,
    ))
}

fn webpki_error(error: webpki::Error) -> rustls::Error {
    let certificate_error = match error {
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        webpki::Error::BadDer | webpki::Error::TrailingData(_) => CertificateError::BadEncoding,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(certificate_error)
}

#[cfg(test)]
mod tests {
    use crate::checks::tls_alpn::tests::fixtures::CertificateSpec;

    /// The check's design rests on this: webpki, and so rustls' own signature helpers, refuse
    /// the certificate every valid response carries.
    #[test]
    fn webpki_rejects_critical_acme_identifier() {
        let (certificate, _key) = CertificateSpec::valid_dns("a.example").build();
        let error = webpki::EndEntityCert::try_from(&certificate)
            .err()
            .expect("webpki accepted the critical acmeIdentifier extension");
        assert_eq!(error, webpki::Error::UnsupportedCriticalExtension);
    }
}
