//! Fixtures for the acme-tls-alpn-01 tests: validation certificates built with rcgen, and the
//! rustls configuration for the testkit's [`AlpnServer`](mpic_testkit::alpn::AlpnServer).
//!
//! The testkit's certificate builder takes SANs as strings and adds the acmeIdentifier at most
//! once, so this builder covers the shapes it cannot make: an IP address as a dNSName, other
//! SAN types and a repeated extension.

use std::net::IpAddr;
use std::sync::Arc;

use mpic_testkit::alpn::{ACME_TLS_1, AlpnPolicy};
use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ServerConfig, SupportedProtocolVersion};

/// The key authorization the test certificates prove, in the RFC 8555 §8.1 form
/// `token.thumbprint`.
pub(crate) const KEY_AUTHORIZATION: &str =
    "tls-alpn-test-token.tls-alpn-test-account-key-thumbprint";

/// The id-pe-acmeIdentifier OID as rcgen wants it.
const ACME_IDENTIFIER_ARCS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 31];

/// SHA-256 of [`KEY_AUTHORIZATION`].
pub(crate) fn key_authorization_digest() -> [u8; 32] {
    mpic_testkit::tls::key_authorization_digest(KEY_AUTHORIZATION)
}

/// SHA-256 of [`KEY_AUTHORIZATION`] as the API sends it: lower-case hexadecimal.
pub(crate) fn key_authorization_hash() -> String {
    hex::encode(key_authorization_digest())
}

/// How the test certificate carries the id-pe-acmeIdentifier extension.
#[derive(Debug, Clone)]
pub(crate) enum AcmeIdentifierSpec {
    /// Not at all.
    Absent,
    /// Critical, holding this digest, built by rcgen's `new_acme_identifier`.
    Critical([u8; 32]),
    /// Not critical, holding this digest, built by hand.
    NonCritical([u8; 32]),
    /// Critical, with this exact extension value.
    CriticalRaw(Vec<u8>),
    /// Twice, critical, holding this digest.
    Repeated([u8; 32]),
}

/// A validation certificate to build.
#[derive(Debug, Clone)]
pub(crate) struct CertificateSpec {
    /// Subject common name; `None` leaves the subject empty.
    pub(crate) common_name: Option<String>,
    /// The subjectAltName entries; empty leaves the extension out.
    pub(crate) subject_alt_names: Vec<SanType>,
    /// The id-pe-acmeIdentifier extension.
    pub(crate) acme_identifier: AcmeIdentifierSpec,
}

impl CertificateSpec {
    /// Returns the spec of a certificate that proves [`KEY_AUTHORIZATION`] for the domain
    /// `name`.
    pub(crate) fn valid_dns(name: &str) -> Self {
        Self {
            common_name: Some(name.to_owned()),
            subject_alt_names: vec![dns_san(name)],
            acme_identifier: AcmeIdentifierSpec::Critical(key_authorization_digest()),
        }
    }

    /// Returns the spec of a certificate that proves [`KEY_AUTHORIZATION`] for the IP
    /// address `address`.
    pub(crate) fn valid_ip(address: IpAddr) -> Self {
        Self {
            common_name: Some(address.to_string()),
            subject_alt_names: vec![SanType::IpAddress(address)],
            acme_identifier: AcmeIdentifierSpec::Critical(key_authorization_digest()),
        }
    }

    pub(crate) fn with_sans(mut self, subject_alt_names: Vec<SanType>) -> Self {
        self.subject_alt_names = subject_alt_names;
        self
    }

    pub(crate) fn with_acme_identifier(mut self, acme_identifier: AcmeIdentifierSpec) -> Self {
        self.acme_identifier = acme_identifier;
        self
    }

    pub(crate) fn without_common_name(mut self) -> Self {
        self.common_name = None;
        self
    }

    /// Builds the self-signed certificate with a fresh P-256 key.
    pub(crate) fn build(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("rcgen generates a P-256 key");
        let certificate = self
            .params()
            .self_signed(&key)
            .expect("rcgen signs the test certificate");
        let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (certificate.der().clone(), private_key)
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(common_name) = &self.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name.as_str());
        }
        params.subject_alt_names = self.subject_alt_names.clone();
        params.custom_extensions = match &self.acme_identifier {
            AcmeIdentifierSpec::Absent => Vec::new(),
            AcmeIdentifierSpec::Critical(digest) => {
                vec![CustomExtension::new_acme_identifier(digest)]
            }
            AcmeIdentifierSpec::NonCritical(digest) => {
                // DER of `Authorization ::= OCTET STRING (SIZE (32))`: tag 0x04, length 0x20.
                let mut value = vec![0x04, 0x20];
                value.extend_from_slice(digest);
                vec![CustomExtension::from_oid_content(
                    ACME_IDENTIFIER_ARCS,
                    value,
                )]
            }
            AcmeIdentifierSpec::CriticalRaw(value) => {
                let mut extension =
                    CustomExtension::from_oid_content(ACME_IDENTIFIER_ARCS, value.clone());
                extension.set_criticality(true);
                vec![extension]
            }
            AcmeIdentifierSpec::Repeated(digest) => vec![
                CustomExtension::new_acme_identifier(digest),
                CustomExtension::new_acme_identifier(digest),
            ],
        };
        params
    }
}

/// Returns a dNSName entry for `name`.
pub(crate) fn dns_san(name: &str) -> SanType {
    SanType::DnsName(
        name.to_owned()
            .try_into()
            .expect("test names are IA5 strings"),
    )
}

/// Builds a server configuration that presents `chain`, signs with `key`, handles ALPN
/// according to `policy` and speaks only `versions`.
///
/// The key is not checked against the certificate: rustls' check parses the certificate with
/// webpki, which rejects the critical id-pe-acmeIdentifier extension, and the key mismatch test
/// needs a server whose signature does not fit its certificate.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    policy: AlpnPolicy,
    versions: &[&'static SupportedProtocolVersion],
) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .expect("ring loads the rcgen key");
    let certified_key = CertifiedKey::new(chain, signing_key);

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports the test TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));
    config.alpn_protocols = match policy {
        AlpnPolicy::NegotiateAcmeTls1 => vec![ACME_TLS_1.to_vec()],
        AlpnPolicy::NegotiateNothing => Vec::new(),
        AlpnPolicy::RejectAcmeTls1 => vec![b"h2".to_vec()],
    };
    config
}
