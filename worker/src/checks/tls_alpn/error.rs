//! The errors of the check (failures, reasons for not completing, invalid requests) and the
//! `error_type` of each.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::net::NetError;
use hickory_resolver::proto::ProtoError;
use mpic_shared::target::TargetError;
use rustls::pki_types::InvalidDnsNameError;
use x509_parser::error::X509Error;

use super::certificate::{AcmeIdentifierDefect, CertificateParseError, SanMismatch};
use crate::fetch::BlockedAddress;
use crate::resolver::ResolverError;

/// The `error_type` values of this check, all in the `mpic_error:dcv_checker:tls_alpn` family.
pub mod error_type {
    /// The target is a wildcard domain name.
    pub const WILDCARD_TARGET: &str = "mpic_error:dcv_checker:tls_alpn:wildcard_target";
    /// The target cannot be looked up or sent as SNI.
    pub const INVALID_TARGET: &str = "mpic_error:dcv_checker:tls_alpn:invalid_target";
    /// `key_authorization_hash` is not 64 hexadecimal digits.
    pub const INVALID_KEY_AUTHORIZATION_HASH: &str =
        "mpic_error:dcv_checker:tls_alpn:invalid_key_authorization_hash";
    /// The A/AAAA lookup failed or returned no address.
    pub const LOOKUP: &str = "mpic_error:dcv_checker:tls_alpn:lookup";
    /// No resolver could be built for the lookup.
    pub const RESOLVER_UNAVAILABLE: &str = "mpic_error:dcv_checker:tls_alpn:resolver_unavailable";
    /// The address guard rejected an address of the target.
    pub const BLOCKED_ADDRESS: &str = "mpic_error:dcv_checker:tls_alpn:blocked_address";
    /// No TCP connection could be made.
    pub const CONNECTION: &str = "mpic_error:dcv_checker:tls_alpn:connection";
    /// The TLS handshake failed.
    pub const HANDSHAKE: &str = "mpic_error:dcv_checker:tls_alpn:handshake";
    /// The lookup, a connection attempt, the handshake or the whole check ran out of time.
    pub const TIMEOUT: &str = "mpic_error:dcv_checker:tls_alpn:timeout";
    /// The server did not negotiate `acme-tls/1`.
    pub const ALPN_NOT_NEGOTIATED: &str = "mpic_error:dcv_checker:tls_alpn:alpn_not_negotiated";
    /// The server presented no certificate.
    pub const NO_CERTIFICATE: &str = "mpic_error:dcv_checker:tls_alpn:no_certificate";
    /// The server's certificate is not a parsable X.509 certificate.
    pub const CERTIFICATE_UNPARSABLE: &str =
        "mpic_error:dcv_checker:tls_alpn:certificate_unparsable";
    /// The subjectAltName extension is malformed or repeated.
    pub const SAN_INVALID: &str = "mpic_error:dcv_checker:tls_alpn:san_invalid";
    /// The subjectAltName extension does not hold exactly one entry.
    pub const WRONG_SAN_COUNT: &str = "mpic_error:dcv_checker:tls_alpn:wrong_san_count";
    /// The single subjectAltName entry is not the target.
    pub const SAN_MISMATCH: &str = "mpic_error:dcv_checker:tls_alpn:san_mismatch";
    /// The certificate has no id-pe-acmeIdentifier extension.
    pub const ACME_IDENTIFIER_MISSING: &str =
        "mpic_error:dcv_checker:tls_alpn:acme_identifier_missing";
    /// The id-pe-acmeIdentifier extension is not marked critical.
    pub const ACME_IDENTIFIER_NOT_CRITICAL: &str =
        "mpic_error:dcv_checker:tls_alpn:acme_identifier_not_critical";
    /// The id-pe-acmeIdentifier extension is repeated or its value is not a 32-byte DER OCTET
    /// STRING.
    pub const ACME_IDENTIFIER_MALFORMED: &str =
        "mpic_error:dcv_checker:tls_alpn:acme_identifier_malformed";
    /// The id-pe-acmeIdentifier extension contains a different digest.
    pub const DIGEST_MISMATCH: &str = "mpic_error:dcv_checker:tls_alpn:digest_mismatch";
}

/// A reason a request cannot be checked with acme-tls-alpn-01. Reported as not completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The target is neither a domain name nor an IP address.
    #[error("the target {target:?} is not a valid domain name or IP address")]
    InvalidTarget {
        /// The target as received.
        target: String,
        /// The parse error.
        #[source]
        source: TargetError,
    },
    /// The target is a wildcard domain name (BR §3.2.2.4.20).
    #[error(
        "acme-tls-alpn-01 cannot validate the wildcard target {target}: the Baseline \
         Requirements (§3.2.2.4.20) do not allow this method for wildcard domain names; use a \
         DNS-based method"
    )]
    WildcardTarget {
        /// The target as the request gave it, e.g. `*.example.com`.
        target: String,
    },
    /// The domain name is not a valid DNS name for the lookup.
    #[error("the target {name:?} is not a valid DNS name")]
    InvalidDomainName {
        /// The domain name.
        name: String,
        /// The DNS library's parse error.
        #[source]
        source: ProtoError,
    },
    /// The SNI host name is not a DNS name rustls accepts.
    #[error("{name:?} cannot be sent as a TLS server name (SNI)")]
    InvalidServerName {
        /// The domain name, or the reverse-mapping name of an IP address.
        name: String,
        /// The rustls validation error.
        #[source]
        source: InvalidDnsNameError,
    },
    /// `key_authorization_hash` is not the hexadecimal SHA-256 digest.
    #[error(
        "key_authorization_hash is invalid: expected the SHA-256 digest of the key \
         authorization as 64 hexadecimal digits, got {length} characters"
    )]
    MalformedKeyAuthorizationHash {
        /// Length of the value in bytes.
        length: usize,
        /// The decoding error.
        #[source]
        source: hex::FromHexError,
    },
}

/// A reason the check could not obtain the server's response. Reported as not completed
/// (`check_completed: false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No resolver could be built, so the lookup did not start.
    #[error("no DNS resolver is available for the lookup")]
    ResolverUnavailable {
        /// The resolver setup error.
        #[source]
        source: ResolverError,
    },
    /// The resolver returned an error. hickory also reports NXDOMAIN and a response without
    /// A or AAAA records as errors.
    #[error("looking up the A and AAAA records of {name} failed")]
    Lookup {
        /// The domain name.
        name: String,
        /// The resolver error.
        #[source]
        source: NetError,
    },
    /// The lookup did not finish within the resolution lifetime.
    #[error("looking up the A and AAAA records of {name} timed out after {timeout:?}")]
    LookupTimedOut {
        /// The domain name.
        name: String,
        /// The resolution lifetime (`dns_resolution_lifetime_seconds`).
        timeout: Duration,
    },
    /// The lookup succeeded but returned no address. hickory reports this case as an error,
    /// so this variant only guards against a change in that behaviour.
    #[error("{name} has no A or AAAA records")]
    NoAddresses {
        /// The domain name.
        name: String,
    },
    /// The address guard rejected an address of the target, so nothing was contacted.
    #[error("the target {target} was not contacted")]
    BlockedAddress {
        /// The target.
        target: String,
        /// The rejected address and its range.
        #[source]
        source: BlockedAddress,
    },
    /// The TCP connection failed (refused, unreachable) on every address tried.
    #[error("the TCP connection to {address} failed ({addresses_tried} address(es) tried)")]
    Connect {
        /// The last address tried.
        address: SocketAddr,
        /// How many addresses were tried.
        addresses_tried: usize,
        /// The last connection error.
        #[source]
        source: io::Error,
    },
    /// The last TCP connection attempt did not finish in time.
    #[error(
        "the TCP connection to {address} timed out after {timeout:?} ({addresses_tried} \
         address(es) tried)"
    )]
    ConnectTimedOut {
        /// The last address tried.
        address: SocketAddr,
        /// How many addresses were tried.
        addresses_tried: usize,
        /// The limit for one attempt.
        timeout: Duration,
    },
    /// The TLS handshake failed, for example on an invalid handshake signature, an alert other
    /// than `no_application_protocol`, or a closed connection.
    #[error("the TLS handshake with {address} failed")]
    Handshake {
        /// The server address.
        address: SocketAddr,
        /// The I/O error from tokio-rustls, wrapping the [`rustls::Error`] when TLS failed.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake did not finish in time.
    #[error("the TLS handshake with {address} timed out after {timeout:?}")]
    HandshakeTimedOut {
        /// The server address.
        address: SocketAddr,
        /// The handshake limit.
        timeout: Duration,
    },
    /// The whole check did not finish within its budget.
    #[error("the check did not finish within its budget of {budget:?}")]
    CheckTimedOut {
        /// The check budget (`http_client_timeout_seconds`).
        budget: Duration,
    },
}

/// A reason the server's response does not prove control. Reported as completed and failed
/// (`check_completed: true, check_passed: false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The server did not negotiate `acme-tls/1` (RFC 8737 §3).
    #[error("the server did not negotiate the acme-tls/1 protocol: {failure}")]
    AlpnNotNegotiated {
        /// The server's behaviour instead.
        failure: AlpnFailure,
    },
    /// The server sent no certificate.
    #[error("the server presented no certificate")]
    NoCertificate,
    /// The certificate is not a parsable X.509 certificate.
    #[error("the server's certificate cannot be parsed")]
    CertificateUnparsable {
        /// The parse error.
        #[source]
        source: CertificateParseError,
    },
    /// The subjectAltName extension is malformed or appears more than once.
    #[error("the certificate's subjectAltName extension is invalid")]
    SubjectAltNameInvalid {
        /// The x509-parser error.
        #[source]
        source: X509Error,
    },
    /// The certificate does not hold exactly one subjectAltName entry (RFC 8737 §3).
    #[error(
        "the certificate must hold exactly one subjectAltName entry, the target, but holds \
         {count}"
    )]
    WrongSanCount {
        /// Number of entries; 0 when the extension is absent.
        count: usize,
    },
    /// The single subjectAltName entry is not the target.
    #[error("the certificate's subjectAltName entry does not match the target: {mismatch}")]
    SanMismatch {
        /// Expected and presented entries.
        mismatch: SanMismatch,
    },
    /// The id-pe-acmeIdentifier extension is absent (RFC 8737 §3).
    #[error("the certificate has no id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31)")]
    AcmeIdentifierMissing,
    /// The id-pe-acmeIdentifier extension is not critical (RFC 8737 §3).
    #[error("the certificate's id-pe-acmeIdentifier extension is not marked critical")]
    AcmeIdentifierNotCritical,
    /// The id-pe-acmeIdentifier extension is repeated or its value is not a 32-byte DER OCTET
    /// STRING.
    #[error("the certificate's id-pe-acmeIdentifier extension is malformed: {defect}")]
    AcmeIdentifierMalformed {
        /// The defect.
        defect: AcmeIdentifierDefect,
    },
    /// The id-pe-acmeIdentifier extension contains another digest than the expected one.
    #[error(
        "the certificate's id-pe-acmeIdentifier holds the digest {presented}, but the key \
         authorization hashes to {expected}"
    )]
    DigestMismatch {
        /// The expected digest, lower-case hexadecimal.
        expected: String,
        /// The digest in the certificate, lower-case hexadecimal.
        presented: String,
    },
}

/// A way a server fails to negotiate `acme-tls/1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlpnFailure {
    /// The handshake completed without any application protocol.
    #[error("the handshake completed without an ALPN protocol")]
    NoProtocol,
    /// The handshake completed with another protocol. rustls aborts the handshake in this
    /// case, so this variant only guards against a change in that behaviour.
    #[error("the server selected {protocol:?}")]
    OtherProtocol {
        /// The selected protocol, lossily decoded as UTF-8.
        protocol: String,
    },
    /// The server selected a protocol that was not offered, and rustls aborted the handshake.
    #[error("the server selected a protocol that was not offered")]
    UnofferedProtocol,
    /// The server sent a `no_application_protocol` alert (RFC 7301 §3.2).
    #[error("the server answered with a no_application_protocol alert")]
    Refused,
}

impl InvalidRequest {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::WildcardTarget { .. } => error_type::WILDCARD_TARGET,
            Self::InvalidTarget { .. }
            | Self::InvalidDomainName { .. }
            | Self::InvalidServerName { .. } => error_type::INVALID_TARGET,
            Self::MalformedKeyAuthorizationHash { .. } => {
                error_type::INVALID_KEY_AUTHORIZATION_HASH
            }
        }
    }
}

impl ConnectionError {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ResolverUnavailable { .. } => error_type::RESOLVER_UNAVAILABLE,
            Self::Lookup { .. } | Self::NoAddresses { .. } => error_type::LOOKUP,
            Self::BlockedAddress { .. } => error_type::BLOCKED_ADDRESS,
            Self::Connect { .. } => error_type::CONNECTION,
            Self::Handshake { .. } => error_type::HANDSHAKE,
            Self::LookupTimedOut { .. }
            | Self::ConnectTimedOut { .. }
            | Self::HandshakeTimedOut { .. }
            | Self::CheckTimedOut { .. } => error_type::TIMEOUT,
        }
    }
}

impl Rejection {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::AlpnNotNegotiated { .. } => error_type::ALPN_NOT_NEGOTIATED,
            Self::NoCertificate => error_type::NO_CERTIFICATE,
            Self::CertificateUnparsable { .. } => error_type::CERTIFICATE_UNPARSABLE,
            Self::SubjectAltNameInvalid { .. } => error_type::SAN_INVALID,
            Self::WrongSanCount { .. } => error_type::WRONG_SAN_COUNT,
            Self::SanMismatch { .. } => error_type::SAN_MISMATCH,
            Self::AcmeIdentifierMissing => error_type::ACME_IDENTIFIER_MISSING,
            Self::AcmeIdentifierNotCritical => error_type::ACME_IDENTIFIER_NOT_CRITICAL,
            Self::AcmeIdentifierMalformed { .. } => error_type::ACME_IDENTIFIER_MALFORMED,
            Self::DigestMismatch { .. } => error_type::DIGEST_MISMATCH,
        }
    }
}
