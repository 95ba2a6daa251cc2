//! The acme-tls-alpn-01 check: a TLS handshake with the target that must present the
//! applicant's validation certificate ([RFC 8737], [RFC 8738 §6] for IP addresses,
//! BR §3.2.2.4.20).
//!
//! # What the check does
//!
//! 1. Parses the request ([`request`]). A wildcard target is rejected, because the BR §3.2.2.4.20
//!    note states that the method "is NOT suitable for validating Wildcard Domain Names". The
//!    `key_authorization_hash` must be the SHA-256 digest as 64 hexadecimal digits, in upper or
//!    lower case.
//! 2. Finds the addresses to connect to. A domain name is resolved to its A and AAAA records
//!    with a fresh resolver from the [`ResolverFactory`], within its resolution lifetime. The
//!    name is queried fully qualified, so no search domain is appended. An IP address target is
//!    used as it is, without a lookup ([RFC 8738 §4]).
//! 3. Asks the [`AddressGuard`] about every address before connecting to any. One rejected
//!    address rejects the whole target, so a name cannot mix a public address with one the
//!    guard forbids.
//! 4. Connects over TCP to port [`ACME_TLS_ALPN_PORT`] (443, [RFC 8737 §3]), trying the
//!    addresses in the resolver's order until one accepts, at most [`MAX_ADDRESSES_TRIED`]. The
//!    first server that accepts the connection decides the check.
//! 5. Performs a TLS 1.2 or 1.3 handshake ([RFC 8737 §4]) that offers the single ALPN protocol
//!    `acme-tls/1` and sends the target as SNI. For an IP address the SNI is its reverse-mapping
//!    name in `in-addr.arpa` or `ip6.arpa` ([RFC 8738 §6]), without the trailing dot that
//!    RFC 6066 §3 forbids in a host name. Session resumption is off, so every check receives a
//!    full handshake with the server's certificate. The connection is closed right after the
//!    handshake, without application data ([RFC 8737 §4]).
//! 6. Decides ([`certificate`]). The server must have negotiated `acme-tls/1`, and the
//!    certificate must contain exactly one subjectAltName entry equal to the target and a critical
//!    id-pe-acmeIdentifier extension whose value is the DER OCTET STRING of the expected digest
//!    ([RFC 8737 §3]). The entry must be a dNSName, compared without regard to ASCII case, for a
//!    domain name ([RFC 8737 §3], RFC 4343), or an iPAddress of the same address family, compared
//!    as an address, for an IP address ([RFC 8738 §6]). The subject common name is reported as
//!    evidence. It does not take part in the decision.
//!
//! Every step runs within the check budget ([`TlsAlpnSettings::check_timeout`], the worker's
//! `http_client_timeout_seconds`). The lookup, each connection attempt and the handshake also
//! have their own limits.
//!
//! # Outcomes
//!
//! | [`Verdict`] | Wire reply | When |
//! |---|---|---|
//! | `Passed` | `check_completed: true, check_passed: true` | every rule above is met |
//! | `Failed` ([`Rejection`]) | `check_completed: true, check_passed: false` | the server responded to the handshake, and its response breaks a rule: no `acme-tls/1` (including a `no_application_protocol` alert), no certificate, a certificate that cannot be parsed, or a wrong SAN or acmeIdentifier |
//! | `NotCompleted` ([`ConnectionError`]) | `check_completed: false` | the check never received the server's response: lookup failure, blocked address, refused or failed connection, failed handshake (including a handshake signature that does not verify), timeout |
//! | `InvalidRequest` ([`InvalidRequest`]) | `check_completed: false` | the request cannot be checked with this method |
//!
//! A not-completed check is never a pass. Each error carries an `error_type` from
//! [`error_type`].
//!
//! # Why the certificate chain is not validated
//!
//! The certificate is self-signed by the applicant, so its authority does not come from a CA.
//! It proves control because the server reached through the target presents the digest of this
//! challenge's key authorization, which only someone who controls that server could have put
//! there. RFC 8737 §4 states that the protocol "does not use the authentication method
//! described in \[RFC5280\]". A trust-anchor check would also reject every valid response,
//! because no CA signed the certificate.
//!
//! The handshake signatures are still verified with the certificate's public key, so the server
//! must have the private key of the certificate it presents and the handshake must complete. RFC
//! 8737 §4 allows the validating side to withhold authorization when the handshake does not
//! complete.
//! rustls' own helpers for this (`verify_tls12_signature`, `verify_tls13_signature`) parse the
//! certificate with webpki, which rejects the critical acmeIdentifier extension as an unknown
//! critical extension. The [`handshake`] module therefore verifies against the certificate's
//! SubjectPublicKeyInfo with the same provider algorithms.
//!
//! # What the check does not do
//!
//! - It does not check the certificate's own signature, validity period, key usage or issuer.
//!   RFC 8737 requires none of them.
//! - It connects to one server per check: a failed TCP connection moves on to the next address,
//!   but the first server that accepts decides. RFC 8737 §3 allows validating one address.
//! - It does not convert internationalized names: [`mpic_shared::target::Target`] has already
//!   turned U-labels into A-labels, as RFC 8737 §3 requires for dNSName comparisons.
//!
//! [RFC 8737]: https://www.rfc-editor.org/rfc/rfc8737
//! [RFC 8737 §3]: https://www.rfc-editor.org/rfc/rfc8737#section-3
//! [RFC 8737 §4]: https://www.rfc-editor.org/rfc/rfc8737#section-4
//! [RFC 8738 §4]: https://www.rfc-editor.org/rfc/rfc8738#section-4
//! [RFC 8738 §6]: https://www.rfc-editor.org/rfc/rfc8738#section-6

pub mod certificate;
mod error;
pub mod handshake;
pub mod request;
mod settings;

use std::net::{IpAddr, SocketAddr};

use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{CheckDetails, CheckError, CheckResponse, TlsAlpnDetails};
use mpic_shared::request::CheckType;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::fetch::AddressGuard;
use crate::resolver::ResolverFactory;

pub use self::certificate::{AcmeIdentifierDefect, CertificateParseError, SanMismatch};
pub use self::error::{AlpnFailure, ConnectionError, InvalidRequest, Rejection, error_type};
pub use self::handshake::{ACME_TLS_1_PROTOCOL, HandshakeOutcome, TlsClient};
pub use self::request::{KeyAuthorizationDigest, TlsAlpnRequest, TlsAlpnTarget};
pub use self::settings::{
    ACME_TLS_ALPN_PORT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, MAX_ADDRESSES_TRIED,
    TlsAlpnSettings,
};

/// Runs acme-tls-alpn-01 checks for one perspective.
///
/// The checker keeps no per-check state. One instance can run any number of checks at once.
#[derive(Debug, Clone)]
pub struct TlsAlpnChecker {
    /// Builds a fresh, cache-free resolver for each check of a domain target.
    resolvers: ResolverFactory,
    /// Decides which resolved addresses the checker may connect to.
    guard: AddressGuard,
    /// Port and time limits.
    settings: TlsAlpnSettings,
    /// The TLS client configuration shared by all checks.
    tls: TlsClient,
}

/// The result of one check: the verdict and the evidence behind it.
#[derive(Debug)]
pub struct TlsAlpnOutcome {
    /// Passed, failed, not completed or invalid request.
    pub verdict: Verdict,
    /// The address of the server whose handshake the verdict is about. `None` when no TCP
    /// connection was made.
    pub server_address: Option<SocketAddr>,
    /// The subject common name of the certificate the server presented, when there was a
    /// parsable certificate with a common name.
    pub common_name: Option<String>,
}

/// The decision of a check.
#[derive(Debug)]
pub enum Verdict {
    /// The server proved control of the target.
    Passed,
    /// The server responded, and its response does not prove control.
    Failed(Rejection),
    /// The check could not obtain the server's response, so it did not decide.
    NotCompleted(ConnectionError),
    /// The request cannot be checked with this method.
    InvalidRequest(InvalidRequest),
}

impl TlsAlpnChecker {
    /// Creates a checker that resolves with resolvers from `resolvers`, connects only where
    /// `guard` allows, and applies `settings`.
    ///
    /// # Errors
    ///
    /// Returns the rustls error if the TLS client configuration cannot be built, which means
    /// the crypto provider lacks TLS 1.2 and TLS 1.3 cipher suites.
    pub fn new(
        resolvers: ResolverFactory,
        guard: AddressGuard,
        settings: TlsAlpnSettings,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            resolvers,
            guard,
            settings,
            tls: TlsClient::new()?,
        })
    }

    /// Returns the settings the checker applies.
    pub fn settings(&self) -> &TlsAlpnSettings {
        &self.settings
    }

    /// Checks that the TLS server for `target` (`domain_or_ip_target` as received) proves
    /// control with the key authorization whose SHA-256 digest is `key_authorization_hash`
    /// (hexadecimal).
    pub async fn check(&self, target: &str, key_authorization_hash: &str) -> TlsAlpnOutcome {
        let request = match TlsAlpnRequest::new(target, key_authorization_hash) {
            Ok(request) => request,
            Err(error) => {
                return TlsAlpnOutcome::without_connection(Verdict::InvalidRequest(error));
            }
        };

        let budget = self.settings.check_timeout;
        match timeout(budget, self.run(&request)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => TlsAlpnOutcome::without_connection(Verdict::NotCompleted(
                ConnectionError::CheckTimedOut { budget },
            )),
        }
    }

    async fn run(&self, request: &TlsAlpnRequest) -> TlsAlpnOutcome {
        let connected = match self.connect(request).await {
            Ok(connected) => connected,
            Err(error) => return TlsAlpnOutcome::without_connection(Verdict::NotCompleted(error)),
        };
        let (stream, server_address) = connected;

        let handshake_timeout = self.settings.handshake_timeout;
        let handshake = timeout(
            handshake_timeout,
            self.tls.handshake(stream, request.server_name()),
        )
        .await;
        let Ok(handshake) = handshake else {
            let error = ConnectionError::HandshakeTimedOut {
                address: server_address,
                timeout: handshake_timeout,
            };
            return TlsAlpnOutcome {
                verdict: Verdict::NotCompleted(error),
                server_address: Some(server_address),
                common_name: None,
            };
        };

        debug!(
            address = %server_address,
            sni = ?request.server_name(),
            handshake = ?handshake.summary(),
            "acme-tls-alpn-01 handshake finished"
        );
        decide(request, server_address, handshake)
    }

    /// Finds the target's addresses, has the guard approve all of them, then opens a TCP
    /// connection to the first one that accepts.
    async fn connect(
        &self,
        request: &TlsAlpnRequest,
    ) -> Result<(TcpStream, SocketAddr), ConnectionError> {
        let addresses = self.addresses(request.target()).await?;
        for address in &addresses {
            self.guard
                .check(*address)
                .map_err(|source| ConnectionError::BlockedAddress {
                    target: request.target().to_string(),
                    source,
                })?;
        }

        let mut last_error = None;
        let candidates = addresses.iter().take(MAX_ADDRESSES_TRIED);
        for (index, ip) in candidates.enumerate() {
            let address = SocketAddr::new(*ip, self.settings.port);
            let addresses_tried = index + 1;
            let connect_timeout = self.settings.connect_timeout;
            let error = match timeout(connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => return Ok((stream, address)),
                Ok(Err(source)) => ConnectionError::Connect {
                    address,
                    addresses_tried,
                    source,
                },
                Err(_elapsed) => ConnectionError::ConnectTimedOut {
                    address,
                    addresses_tried,
                    timeout: connect_timeout,
                },
            };
            // The error is returned only if no later address accepts, so record each one here.
            debug!(%address, %error, "acme-tls-alpn-01 connection attempt failed");
            last_error = Some(error);
        }

        Err(last_error.unwrap_or_else(|| ConnectionError::NoAddresses {
            name: request.target().to_string(),
        }))
    }

    /// Returns the addresses to try for `target`, in the resolver's order. The list is never
    /// empty.
    async fn addresses(&self, target: &TlsAlpnTarget) -> Result<Vec<IpAddr>, ConnectionError> {
        let (name, fqdn) = match target {
            TlsAlpnTarget::Ip(address) => return Ok(vec![*address]),
            TlsAlpnTarget::Domain { name, fqdn } => (name, fqdn),
        };

        let resolver = self
            .resolvers
            .resolver()
            .map_err(|source| ConnectionError::ResolverUnavailable { source })?;
        let lifetime = self.resolvers.resolution_lifetime();
        let lookup = timeout(lifetime, resolver.lookup_ip(fqdn.clone()))
            .await
            .map_err(|_elapsed| ConnectionError::LookupTimedOut {
                name: name.clone(),
                timeout: lifetime,
            })?
            .map_err(|source| ConnectionError::Lookup {
                name: name.clone(),
                source,
            })?;

        let addresses: Vec<IpAddr> = lookup.iter().collect();
        if addresses.is_empty() {
            return Err(ConnectionError::NoAddresses { name: name.clone() });
        }
        Ok(addresses)
    }
}

/// Turns a finished handshake into a verdict: first the ALPN protocol, then the certificate.
fn decide(
    request: &TlsAlpnRequest,
    server_address: SocketAddr,
    handshake: HandshakeOutcome,
) -> TlsAlpnOutcome {
    let common_name = handshake
        .certificate()
        .and_then(|der| certificate::common_name(der.as_ref()));
    let verdict = match handshake {
        HandshakeOutcome::Completed {
            alpn_protocol,
            certificate,
            ..
        } => decide_completed(request, alpn_protocol, certificate.as_deref()),
        HandshakeOutcome::Failed { error, certificate } => {
            decide_failed(server_address, error, certificate.as_deref())
        }
    };

    TlsAlpnOutcome {
        verdict,
        server_address: Some(server_address),
        common_name,
    }
}

fn decide_completed(
    request: &TlsAlpnRequest,
    alpn_protocol: Option<Vec<u8>>,
    certificate: Option<&[u8]>,
) -> Verdict {
    match alpn_protocol.as_deref() {
        Some(ACME_TLS_1_PROTOCOL) => {}
        Some(other) => {
            return Verdict::Failed(Rejection::AlpnNotNegotiated {
                failure: AlpnFailure::OtherProtocol {
                    protocol: String::from_utf8_lossy(other).into_owned(),
                },
            });
        }
        None => {
            return Verdict::Failed(Rejection::AlpnNotNegotiated {
                failure: AlpnFailure::NoProtocol,
            });
        }
    }

    let Some(der) = certificate else {
        return Verdict::Failed(Rejection::NoCertificate);
    };
    match certificate::check(der, request.target(), request.expected_digest()) {
        Ok(()) => Verdict::Passed,
        Err(rejection) => Verdict::Failed(rejection),
    }
}

/// Sorts a failed handshake into a rejection, when the server's response breaks a rule, and
/// not completed, when there is no usable response.
///
/// Three responses are decisions: a `no_application_protocol` alert or a protocol that was not
/// offered (the server does not speak `acme-tls/1`), an empty certificate list, and a
/// certificate that cannot be parsed. A certificate the verifier could not parse fails the
/// handshake at the signature step, so the parse is repeated here to report it as such.
fn decide_failed(
    server_address: SocketAddr,
    error: std::io::Error,
    certificate: Option<&[u8]>,
) -> Verdict {
    if let Some(Err(source)) = certificate.map(certificate::parse) {
        return Verdict::Failed(Rejection::CertificateUnparsable { source });
    }

    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => {
            Verdict::Failed(Rejection::AlpnNotNegotiated {
                failure: AlpnFailure::Refused,
            })
        }
        Some(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SelectedUnofferedApplicationProtocol,
        )) => Verdict::Failed(Rejection::AlpnNotNegotiated {
            failure: AlpnFailure::UnofferedProtocol,
        }),
        Some(rustls::Error::NoCertificatesPresented) => Verdict::Failed(Rejection::NoCertificate),
        _ => Verdict::NotCompleted(ConnectionError::Handshake {
            address: server_address,
            source: error,
        }),
    }
}

impl TlsAlpnOutcome {
    fn without_connection(verdict: Verdict) -> Self {
        Self {
            verdict,
            server_address: None,
            common_name: None,
        }
    }

    /// Returns the `error_type` of the outcome, or `None` when the check passed.
    pub fn error_type(&self) -> Option<&'static str> {
        match &self.verdict {
            Verdict::Passed => None,
            Verdict::Failed(rejection) => Some(rejection.error_type()),
            Verdict::NotCompleted(error) => Some(error.error_type()),
            Verdict::InvalidRequest(error) => Some(error.error_type()),
        }
    }

    /// Builds the perspective reply: `details` in the TLS-ALPN shape, and one `errors` entry
    /// unless the check passed.
    pub fn into_check_response(self) -> CheckResponse {
        let method = ValidationMethod::AcmeTlsAlpn01;
        let details = CheckDetails::TlsAlpn(TlsAlpnDetails {
            validation_method: method,
            common_name: self.common_name,
        });

        match &self.verdict {
            Verdict::Passed => CheckResponse::completed(CheckType::Dcv, true, details),
            Verdict::Failed(rejection) => CheckResponse::completed(CheckType::Dcv, false, details)
                .with_error(wire_error(rejection.error_type(), rejection)),
            Verdict::NotCompleted(error) => CheckResponse::not_completed(
                CheckType::Dcv,
                Some(method),
                wire_error(error.error_type(), error),
            ),
            Verdict::InvalidRequest(error) => CheckResponse::not_completed(
                CheckType::Dcv,
                Some(method),
                wire_error(error.error_type(), error),
            ),
        }
    }
}

/// Builds an `errors` entry whose message is the error followed by each of its causes.
fn wire_error(error_type: &str, error: &dyn std::error::Error) -> CheckError {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    CheckError::new(error_type, message)
}

#[cfg(test)]
mod tests;
