//! Certificates generated at test time for the TLS fixtures.
//!
//! - [`TestCa`] is a certificate authority created in memory. It issues server
//!   certificates for DNS names and IP addresses, and a client that should trust it gets
//!   its certificate as DER or PEM, or a ready rustls [`ClientConfig`].
//! - [`ServerCertificate`] is a certificate chain with its private key, as a test server
//!   presents it. It can come from a [`TestCa`], be self-signed, or be an RFC 8737
//!   validation certificate built by [`AcmeTlsAlpnCertificate`].
//!
//! Every key is generated when the test runs (ECDSA P-256 through rcgen and ring), so no
//! key material is stored in the repository. The TLS servers that present these
//! certificates are [`crate::http::ChallengeServer::start_https`] and
//! [`crate::alpn::AlpnServer`].
//!
//! # Example
//!
//! ```no_run
//! use mpic_testkit::tls::{AcmeIdentifier, AcmeTlsAlpnCertificate, Criticality, TestCa};
//!
//! let ca = TestCa::new();
//! let trusted = ca.issue(&["example.com", "127.0.0.1"]);
//! let client_config = ca.client_config();
//!
//! // RFC 8737 §3: self-signed, one SAN, critical acmeIdentifier with SHA-256(key authorization).
//! let valid = AcmeTlsAlpnCertificate::new("token.thumbprint", &["example.com"]).build();
//! let not_critical = AcmeTlsAlpnCertificate::new("token.thumbprint", &["example.com"])
//!     .with_identifier(AcmeIdentifier::KeyAuthorization {
//!         key_authorization: "token.thumbprint".to_owned(),
//!         criticality: Criticality::NonCritical,
//!     })
//!     .build();
//! ```

use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

/// A certificate authority generated in memory, for servers a client under test should
/// trust.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// Generates a self-signed CA certificate with the common name `MPIC Test CA`.
    ///
    /// # Panics
    ///
    /// Panics if key generation or signing fails.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(Some("MPIC Test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, generate_key())
            .unwrap_or_else(|error| panic!("cannot sign the test CA certificate: {error}"));
        TestCa { issuer }
    }

    /// Returns the CA certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.issuer.der()
    }

    /// Returns the CA certificate in PEM form.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Returns a root store that contains only this CA.
    ///
    /// # Panics
    ///
    /// Panics if rustls rejects the CA certificate.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der().clone())
            .unwrap_or_else(|error| panic!("rustls rejects the test CA certificate: {error}"));
        roots
    }

    /// Returns a rustls client configuration with the ring provider that trusts only this
    /// CA and offers no ALPN protocol.
    ///
    /// # Panics
    ///
    /// Panics if rustls rejects the CA certificate.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|error| panic!("ring supports no default TLS version: {error}"))
            .with_root_certificates(self.root_store())
            .with_no_client_auth()
    }

    /// Issues a server certificate for `subject_alt_names`, each a DNS name (a wildcard
    /// such as `*.example.com` is allowed) or an IP address.
    ///
    /// The chain contains only the end-entity certificate, so a client needs the CA
    /// certificate as its root.
    ///
    /// # Panics
    ///
    /// Panics if a name is not a valid DNS name or IP address, or if signing fails.
    pub fn issue(&self, subject_alt_names: &[&str]) -> ServerCertificate {
        self.issue_with_usage(subject_alt_names, CertificateUsage::Server)
    }

    /// Issues a certificate for `subject_alt_names` (none for a client certificate) whose
    /// extended key usage is `usage`, for servers that require client certificates, such
    /// as nats-server with `verify: true`.
    ///
    /// # Panics
    ///
    /// Panics if a name is not a valid DNS name or IP address, or if signing fails.
    pub fn issue_with_usage(
        &self,
        subject_alt_names: &[&str],
        usage: CertificateUsage,
    ) -> ServerCertificate {
        let mut params = end_entity_params(subject_alt_names);
        params.extended_key_usages = usage.purposes();
        let key = generate_key();
        let certificate = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|error| panic!("cannot issue {subject_alt_names:?}: {error}"));
        ServerCertificate::new(&certificate, &key)
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}

/// The extended key usage of a certificate from [`TestCa::issue_with_usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateUsage {
    /// TLS server authentication (id-kp-serverAuth).
    Server,
    /// TLS client authentication (id-kp-clientAuth).
    Client,
    /// Both, for a process that accepts TLS connections and also connects to another server
    /// with the same certificate, such as a NATS leaf node.
    ServerAndClient,
}

impl CertificateUsage {
    fn purposes(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            CertificateUsage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            CertificateUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            CertificateUsage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// A certificate chain and its private key, as a test server presents them (or a client,
/// for a certificate from [`TestCa::issue_with_usage`]).
pub struct ServerCertificate {
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
}

impl ServerCertificate {
    /// Generates a self-signed certificate for `subject_alt_names`, each a DNS name or an
    /// IP address, which no client trusts unless it disables verification.
    ///
    /// # Panics
    ///
    /// Panics if a name is not a valid DNS name or IP address, or if signing fails.
    pub fn self_signed(subject_alt_names: &[&str]) -> ServerCertificate {
        let params = end_entity_params(subject_alt_names);
        let key = generate_key();
        let certificate = params
            .self_signed(&key)
            .unwrap_or_else(|error| panic!("cannot self-sign {subject_alt_names:?}: {error}"));
        ServerCertificate::new(&certificate, &key)
    }

    /// Returns the end-entity certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        // ServerCertificate::new, the only constructor, builds a chain of one certificate.
        &self.chain[0]
    }

    /// Returns the chain in DER form, end-entity certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Returns the chain in PEM form, end-entity certificate first.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Returns the private key in PKCS #8 DER form.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// Returns the private key in PKCS #8 PEM form, for servers configured through files,
    /// such as nats-server.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Builds a rustls server configuration with the ring provider that presents this
    /// certificate and negotiates ALPN from `alpn_protocols` (none if empty).
    ///
    /// The certificate is presented without being parsed, because rustls would reject
    /// an end-entity certificate with an extension it does not know marked critical,
    /// which is what an RFC 8737 certificate carries.
    ///
    /// # Panics
    ///
    /// Panics if the ring provider cannot load the private key.
    pub fn server_config(&self, alpn_protocols: Vec<Vec<u8>>) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing_key = provider
            .key_provider
            .load_private_key(self.key_der())
            .unwrap_or_else(|error| panic!("rustls rejects the private key: {error}"));
        let certified_key = CertifiedKey::new(self.chain.clone(), signing_key);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|error| panic!("ring supports no default TLS version: {error}"))
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));
        config.alpn_protocols = alpn_protocols;
        config
    }

    /// Wraps an end-entity certificate without intermediates and its key.
    fn new(certificate: &Certificate, key: &KeyPair) -> ServerCertificate {
        ServerCertificate {
            chain: vec![certificate.der().clone()],
            chain_pem: certificate.pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Clone for ServerCertificate {
    fn clone(&self) -> ServerCertificate {
        ServerCertificate {
            chain: self.chain.clone(),
            chain_pem: self.chain_pem.clone(),
            key: self.key.clone_key(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// A builder for RFC 8737 tls-alpn-01 validation certificates.
///
/// RFC 8737 §3 requires a self-signed certificate whose subjectAltName extension contains
/// exactly one dNSName. For an IP target it contains one iPAddress instead (RFC 8738 §6).
/// The certificate also needs a critical id-pe-acmeIdentifier extension (OID
/// 1.3.6.1.5.5.7.1.31) whose value is the DER OCTET STRING of the SHA-256 digest of the key
/// authorization. [`AcmeTlsAlpnCertificate::new`] builds that certificate when given one
/// SAN. More SANs, [`AcmeTlsAlpnCertificate::with_identifier`] and
/// [`AcmeTlsAlpnCertificate::with_common_name`] change one property at a time, so a test
/// can check how the validator treats it.
#[derive(Clone, Debug)]
pub struct AcmeTlsAlpnCertificate {
    subject_alt_names: Vec<String>,
    common_name: Option<String>,
    identifier: AcmeIdentifier,
}

impl AcmeTlsAlpnCertificate {
    /// Creates a builder for a valid certificate for `key_authorization` with the given SANs, each a DNS
    /// name or an IP address, a critical acmeIdentifier and no subject common name.
    pub fn new(key_authorization: &str, subject_alt_names: &[&str]) -> AcmeTlsAlpnCertificate {
        AcmeTlsAlpnCertificate {
            subject_alt_names: subject_alt_names
                .iter()
                .map(|name| name.to_string())
                .collect(),
            common_name: None,
            identifier: AcmeIdentifier::KeyAuthorization {
                key_authorization: key_authorization.to_owned(),
                criticality: Criticality::Critical,
            },
        }
    }

    /// Replaces the acmeIdentifier extension.
    pub fn with_identifier(mut self, identifier: AcmeIdentifier) -> AcmeTlsAlpnCertificate {
        self.identifier = identifier;
        self
    }

    /// Sets the subject common name.
    pub fn with_common_name(mut self, common_name: &str) -> AcmeTlsAlpnCertificate {
        self.common_name = Some(common_name.to_owned());
        self
    }

    /// Generates a key and signs the certificate with it.
    ///
    /// # Panics
    ///
    /// Panics if a SAN is not a valid DNS name or IP address, or if signing fails.
    pub fn build(&self) -> ServerCertificate {
        let names: Vec<&str> = self.subject_alt_names.iter().map(String::as_str).collect();
        let mut params = end_entity_params(&names);
        params.distinguished_name = distinguished_name(self.common_name.as_deref());
        if let Some(extension) = self.identifier.extension() {
            params.custom_extensions.push(extension);
        }

        let key = generate_key();
        let certificate = params
            .self_signed(&key)
            .unwrap_or_else(|error| panic!("cannot self-sign {names:?}: {error}"));
        ServerCertificate::new(&certificate, &key)
    }
}

/// The id-pe-acmeIdentifier extension of an [`AcmeTlsAlpnCertificate`] (RFC 8737 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcmeIdentifier {
    /// No acmeIdentifier extension.
    Absent,
    /// The DER OCTET STRING of SHA-256(`key_authorization`), as RFC 8737 §3 requires when
    /// critical.
    KeyAuthorization {
        /// The key authorization whose digest the extension contains.
        key_authorization: String,
        /// Whether the extension is marked critical.
        criticality: Criticality,
    },
    /// The DER OCTET STRING of `digest`, which may have any length, such as a digest of
    /// the wrong key authorization or a truncated one.
    Digest {
        /// The bytes inside the OCTET STRING.
        digest: Vec<u8>,
        /// Whether the extension is marked critical.
        criticality: Criticality,
    },
    /// An extension value of the given bytes, as they are, such as a digest without the
    /// OCTET STRING wrapping.
    RawValue {
        /// The bytes of the extension's extnValue.
        value: Vec<u8>,
        /// Whether the extension is marked critical.
        criticality: Criticality,
    },
}

impl AcmeIdentifier {
    fn extension(&self) -> Option<CustomExtension> {
        let (value, criticality) = match self {
            AcmeIdentifier::Absent => return None,
            AcmeIdentifier::KeyAuthorization {
                key_authorization,
                criticality,
            } => (
                der_octet_string(&key_authorization_digest(key_authorization)),
                criticality,
            ),
            AcmeIdentifier::Digest {
                digest,
                criticality,
            } => (der_octet_string(digest), criticality),
            AcmeIdentifier::RawValue { value, criticality } => (value.clone(), criticality),
        };
        let mut extension = CustomExtension::from_oid_content(ACME_IDENTIFIER_OID, value);
        extension.set_criticality(*criticality == Criticality::Critical);
        Some(extension)
    }
}

/// Whether a certificate extension is marked critical (RFC 5280 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criticality {
    /// The extension is marked critical.
    Critical,
    /// The extension is not marked critical.
    NonCritical,
}

/// Returns SHA-256 of `key_authorization`, the value an acmeIdentifier extension carries
/// (RFC 8737 §3).
pub fn key_authorization_digest(key_authorization: &str) -> [u8; 32] {
    Sha256::digest(key_authorization.as_bytes()).into()
}

fn end_entity_params(subject_alt_names: &[&str]) -> CertificateParams {
    let names: Vec<String> = subject_alt_names
        .iter()
        .map(|name| name.to_string())
        .collect();
    let mut params = CertificateParams::new(names)
        .unwrap_or_else(|error| panic!("invalid SAN in {subject_alt_names:?}: {error}"));
    params.distinguished_name = distinguished_name(None);
    params
}

/// Builds a subject with only a common name, or an empty subject.
fn distinguished_name(common_name: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    if let Some(common_name) = common_name {
        name.push(DnType::CommonName, common_name);
    }
    name
}

fn generate_key() -> KeyPair {
    KeyPair::generate().unwrap_or_else(|error| panic!("cannot generate a key pair: {error}"))
}

/// Encodes `content` as a DER OCTET STRING (X.690 §8.7, with the definite length form of
/// §8.1.3).
fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let mut encoded = vec![0x04];
    let length = content.len();
    if length < 0x80 {
        // The short form: one byte below 128.
        encoded.push(length as u8);
    } else {
        let length_bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        // A usize has at most 8 bytes, so the count fits in the low 7 bits.
        encoded.push(0x80 | length_bytes.len() as u8);
        encoded.extend_from_slice(&length_bytes);
    }
    encoded.extend_from_slice(content);
    encoded
}

/// id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 (RFC 8737 §6.1).
const ACME_IDENTIFIER_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 31];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_string_lengths() {
        let cases: [(&str, usize, &[u8]); 3] = [
            ("short form", 32, &[0x04, 0x20]),
            ("one length byte", 200, &[0x04, 0x81, 200]),
            ("two length bytes", 300, &[0x04, 0x82, 0x01, 0x2c]),
        ];
        for (name, length, header) in cases {
            let encoded = der_octet_string(&vec![0xab; length]);

            assert_eq!(&encoded[..header.len()], header, "{name}: header");
            assert_eq!(encoded.len(), header.len() + length, "{name}: length");
        }
    }
}
