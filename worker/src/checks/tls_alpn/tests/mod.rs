//! Tests of the whole check against real TLS servers on loopback, named by the rule they cover.

pub(crate) mod fixtures;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mpic_testkit::alpn::{ACME_TLS_1, AlpnPolicy, AlpnServer};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::silent::SilentServer;
use rustls::SupportedProtocolVersion;
use rustls::pki_types::CertificateDer;
use rustls::version::{TLS12, TLS13};
use tokio::net::TcpListener;

use self::fixtures::{
    AcmeIdentifierSpec, CertificateSpec, dns_san, key_authorization_digest, key_authorization_hash,
    server_config,
};
use super::{
    ConnectionError, TlsAlpnChecker, TlsAlpnOutcome, TlsAlpnSettings, Verdict, error_type,
};
use crate::fetch::{AddressGuard, AddressPolicy};
use crate::resolver::{NameServers, ResolverFactory, ResolverSettings};

/// The zone the DNS-name targets live in. Every name points at IPv4 loopback, where the test
/// server of each case listens.
const ZONE: &str = "tls-alpn.test.";
const VALID_NAME: &str = "valid.tls-alpn.test";
const OTHER_NAME: &str = "other.tls-alpn.test";
const MISSING_NAME: &str = "missing.tls-alpn.test";
const SILENT_NAME: &str = "silent.tls-alpn.test";

const BOTH_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
const ONLY_TLS12: &[&SupportedProtocolVersion] = &[&TLS12];
const ONLY_TLS13: &[&SupportedProtocolVersion] = &[&TLS13];

/// A check budget that no loopback case comes near.
const GENEROUS_BUDGET: Duration = Duration::from_secs(20);

/// Expected verdict, by `error_type` for the failing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Passed,
    Failed(&'static str),
    NotCompleted(&'static str),
}

/// What the test server sends in its Certificate message.
#[derive(Debug, Clone, Copy)]
enum Chain {
    /// The built certificate.
    Certificate,
    /// The built certificate, changed by the function.
    Mangled(fn(&mut Vec<u8>)),
    /// No certificate at all.
    Empty,
}

/// One check against a freshly started test server.
struct Case {
    name: &'static str,
    target: &'static str,
    certificate: CertificateSpec,
    chain: Chain,
    /// When set, the server signs its handshake with this certificate's key instead of the
    /// presented certificate's own key.
    signing_certificate: Option<CertificateSpec>,
    server_alpn: AlpnPolicy,
    server_versions: &'static [&'static SupportedProtocolVersion],
    key_authorization_hash: String,
    expected: Expected,
    expected_common_name: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, target: &'static str, certificate: CertificateSpec) -> Self {
        Self {
            name,
            target,
            certificate,
            chain: Chain::Certificate,
            signing_certificate: None,
            server_alpn: AlpnPolicy::NegotiateAcmeTls1,
            server_versions: BOTH_VERSIONS,
            key_authorization_hash: key_authorization_hash(),
            expected: Expected::Passed,
            expected_common_name: None,
        }
    }

    fn expect(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }

    fn common_name(mut self, common_name: &'static str) -> Self {
        self.expected_common_name = Some(common_name);
        self
    }
}

async fn start_dns() -> TestDns {
    TestDns::start([Zone::new(
        ZONE,
        "
        valid  A 127.0.0.1
        other  A 127.0.0.1
        ",
    )])
    .await
}

/// Builds resolvers that send every query to `server`, waiting at most `lifetime` for a
/// lookup.
fn resolvers_for(server: SocketAddr, lifetime: Duration) -> ResolverFactory {
    ResolverFactory::new(&ResolverSettings {
        name_servers: NameServers::Configured(vec![server]),
        query_timeout: lifetime,
        resolution_lifetime: lifetime,
        attempts: 1,
    })
    .expect("the test resolver settings are valid")
}

fn checker(dns: SocketAddr, policy: AddressPolicy, settings: TlsAlpnSettings) -> TlsAlpnChecker {
    let resolvers = resolvers_for(dns, Duration::from_secs(5));
    TlsAlpnChecker::new(resolvers, AddressGuard::new(policy), settings)
        .expect("the TLS client configuration builds")
}

fn settings(port: u16) -> TlsAlpnSettings {
    TlsAlpnSettings {
        port,
        ..TlsAlpnSettings::new(GENEROUS_BUDGET)
    }
}

/// Returns the verdict of `outcome` in the shape of [`Expected`].
fn observed(outcome: &TlsAlpnOutcome) -> Expected {
    match &outcome.verdict {
        Verdict::Passed => Expected::Passed,
        Verdict::Failed(rejection) => Expected::Failed(rejection.error_type()),
        Verdict::NotCompleted(error) => Expected::NotCompleted(error.error_type()),
        Verdict::InvalidRequest(error) => Expected::NotCompleted(error.error_type()),
    }
}

fn sni_for(target: &str) -> String {
    match target
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(address) => super::request::reverse_mapping_name(address),
        Err(_) => target.to_ascii_lowercase(),
    }
}

async fn run_case(dns: &TestDns, case: &Case) {
    let name = case.name;
    let (certificate, own_key) = case.certificate.build();
    let key = match &case.signing_certificate {
        Some(other) => other.build().1,
        None => own_key,
    };
    let chain = match case.chain {
        Chain::Certificate => vec![certificate],
        Chain::Mangled(mangle) => {
            let mut der = certificate.to_vec();
            mangle(&mut der);
            vec![CertificateDer::from(der)]
        }
        Chain::Empty => Vec::new(),
    };
    let config = server_config(chain, key, case.server_alpn, case.server_versions);
    let listen_on = if case.target.contains(':') {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let server = AlpnServer::start_with_config(SocketAddr::new(listen_on, 0), config).await;

    let checker = checker(
        dns.addr(),
        AddressPolicy::AllowNonPublic,
        settings(server.addr().port()),
    );
    let outcome = checker
        .check(case.target, &case.key_authorization_hash)
        .await;

    assert_eq!(
        observed(&outcome),
        case.expected,
        "case {name:?}: {outcome:?}"
    );
    assert_eq!(
        outcome.server_address,
        Some(server.addr()),
        "case {name:?}: the outcome names the server it talked to"
    );

    let hellos = server.client_hellos();
    assert_eq!(hellos.len(), 1, "case {name:?}: one ClientHello per check");
    let hello = &hellos[0];
    assert_eq!(
        hello.server_name.as_deref(),
        Some(sni_for(case.target).as_str()),
        "case {name:?}: SNI"
    );
    assert_eq!(
        hello.alpn_protocols,
        vec![ACME_TLS_1.to_vec()],
        "case {name:?}: the client offers acme-tls/1 and nothing else"
    );

    if let Some(common_name) = case.expected_common_name {
        assert_eq!(
            outcome.common_name.as_deref(),
            Some(common_name),
            "case {name:?}: common name"
        );
    }

    let response = outcome.into_check_response();
    let completed = !matches!(case.expected, Expected::NotCompleted(_));
    assert_eq!(
        response.check_completed, completed,
        "case {name:?}: check_completed"
    );
    assert_eq!(
        response.check_passed,
        case.expected == Expected::Passed,
        "case {name:?}: check_passed"
    );
}

async fn run_cases(cases: Vec<Case>) {
    let dns = start_dns().await;
    for case in &cases {
        run_case(&dns, case).await;
    }
}

/// RFC 8737 §3 and RFC 8738 §6: a correct validation certificate passes, for each kind of
/// target and each TLS version.
#[tokio::test]
async fn valid_certificates_pass() {
    let loopback_v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let loopback_v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let upper_case_hash = key_authorization_hash().to_ascii_uppercase();

    run_cases(vec![
        Case::new(
            "DNS target: passed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME),
        )
        .common_name(VALID_NAME),
        Case::new(
            "IPv4 target, SNI is the in-addr.arpa name: passed",
            "127.0.0.1",
            CertificateSpec::valid_ip(loopback_v4),
        )
        .common_name("127.0.0.1"),
        Case::new(
            "IPv6 target, SNI is the ip6.arpa name: passed",
            "::1",
            CertificateSpec::valid_ip(loopback_v6),
        )
        .common_name("::1"),
        Case {
            server_versions: ONLY_TLS12,
            ..Case::new(
                "TLS 1.2 server: passed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        },
        Case {
            server_versions: ONLY_TLS13,
            ..Case::new(
                "TLS 1.3 server: passed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        },
        Case::new(
            "SAN in upper case matches: passed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_sans(vec![dns_san(&VALID_NAME.to_ascii_uppercase())]),
        ),
        Case {
            key_authorization_hash: upper_case_hash,
            ..Case::new(
                "upper-case key_authorization_hash: passed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        },
        Case::new(
            "no common name is still a pass",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME).without_common_name(),
        ),
    ])
    .await;
}

/// RFC 8737 §3: "a subjectAltName extension containing the dNSName being validated and no
/// other entries"; RFC 8738 §6: "a single iPAddress".
#[tokio::test]
async fn subject_alt_name_rules() {
    let loopback_v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);

    run_cases(vec![
        Case::new(
            "two SANs: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_sans(vec![dns_san(VALID_NAME), dns_san(OTHER_NAME)]),
        )
        .expect(Expected::Failed(error_type::WRONG_SAN_COUNT)),
        Case::new(
            "no SAN extension: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME).with_sans(Vec::new()),
        )
        .expect(Expected::Failed(error_type::WRONG_SAN_COUNT)),
        Case::new(
            "SAN names another domain: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(OTHER_NAME),
        )
        .expect(Expected::Failed(error_type::SAN_MISMATCH))
        .common_name(OTHER_NAME),
        Case::new(
            "IP target with the address as a dNSName: failed",
            "127.0.0.1",
            CertificateSpec::valid_ip(loopback_v4).with_sans(vec![dns_san("127.0.0.1")]),
        )
        .expect(Expected::Failed(error_type::SAN_MISMATCH)),
        Case::new(
            "IPv4 target with another address: failed",
            "127.0.0.1",
            CertificateSpec::valid_ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        )
        .expect(Expected::Failed(error_type::SAN_MISMATCH)),
        Case::new(
            "DNS target with an iPAddress SAN: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_sans(vec![rcgen::SanType::IpAddress(loopback_v4)]),
        )
        .expect(Expected::Failed(error_type::SAN_MISMATCH)),
    ])
    .await;
}

/// RFC 8737 §3: "a critical acmeIdentifier extension containing the expected SHA-256 digest".
#[tokio::test]
async fn acme_identifier_rules() {
    let mut other_digest = key_authorization_digest();
    other_digest[0] ^= 0xff;
    let mut short_value = vec![0x04, 0x10];
    short_value.extend_from_slice(&key_authorization_digest()[..16]);

    run_cases(vec![
        Case::new(
            "missing extension: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME).with_acme_identifier(AcmeIdentifierSpec::Absent),
        )
        .expect(Expected::Failed(error_type::ACME_IDENTIFIER_MISSING)),
        Case::new(
            "non-critical extension: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_acme_identifier(AcmeIdentifierSpec::NonCritical(key_authorization_digest())),
        )
        .expect(Expected::Failed(error_type::ACME_IDENTIFIER_NOT_CRITICAL)),
        Case::new(
            "digest of another key authorization: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_acme_identifier(AcmeIdentifierSpec::Critical(other_digest)),
        )
        .expect(Expected::Failed(error_type::DIGEST_MISMATCH))
        .common_name(VALID_NAME),
        Case::new(
            "16-byte OCTET STRING: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_acme_identifier(AcmeIdentifierSpec::CriticalRaw(short_value)),
        )
        .expect(Expected::Failed(error_type::ACME_IDENTIFIER_MALFORMED)),
        Case::new(
            "digest without the OCTET STRING wrapper: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME).with_acme_identifier(
                AcmeIdentifierSpec::CriticalRaw(key_authorization_digest().to_vec()),
            ),
        )
        .expect(Expected::Failed(error_type::ACME_IDENTIFIER_MALFORMED)),
        Case::new(
            "extension twice: failed",
            VALID_NAME,
            CertificateSpec::valid_dns(VALID_NAME)
                .with_acme_identifier(AcmeIdentifierSpec::Repeated(key_authorization_digest())),
        )
        .expect(Expected::Failed(error_type::ACME_IDENTIFIER_MALFORMED)),
    ])
    .await;
}

/// RFC 8737 §3: the server must negotiate acme-tls/1. RFC 8737 §4 lets the check require a
/// complete handshake, whose signature proves possession of the certificate's key.
#[tokio::test]
async fn handshake_rules() {
    run_cases(vec![
        Case {
            server_alpn: AlpnPolicy::NegotiateNothing,
            ..Case::new(
                "server completes the handshake without ALPN: failed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::Failed(error_type::ALPN_NOT_NEGOTIATED))
        .common_name(VALID_NAME),
        Case {
            server_alpn: AlpnPolicy::RejectAcmeTls1,
            ..Case::new(
                "server refuses acme-tls/1 with an alert: failed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::Failed(error_type::ALPN_NOT_NEGOTIATED)),
        Case {
            signing_certificate: Some(CertificateSpec::valid_dns(VALID_NAME)),
            server_versions: ONLY_TLS13,
            ..Case::new(
                "TLS 1.3 signature by another key: not completed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::NotCompleted(error_type::HANDSHAKE)),
        Case {
            signing_certificate: Some(CertificateSpec::valid_dns(VALID_NAME)),
            server_versions: ONLY_TLS12,
            ..Case::new(
                "TLS 1.2 signature by another key: not completed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::NotCompleted(error_type::HANDSHAKE)),
        Case {
            chain: Chain::Mangled(|der| der.extend_from_slice(&[0, 0])),
            ..Case::new(
                "certificate with trailing bytes: failed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::Failed(error_type::CERTIFICATE_UNPARSABLE)),
        Case {
            chain: Chain::Mangled(|der| der.truncate(der.len() / 2)),
            ..Case::new(
                "truncated certificate: failed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::Failed(error_type::CERTIFICATE_UNPARSABLE)),
        Case {
            chain: Chain::Empty,
            ..Case::new(
                "server sends no certificate: failed",
                VALID_NAME,
                CertificateSpec::valid_dns(VALID_NAME),
            )
        }
        .expect(Expected::Failed(error_type::NO_CERTIFICATE)),
    ])
    .await;
}

/// The address guard is asked before any connection, and a rejected address means no
/// connection at all.
#[tokio::test]
async fn blocked_addresses_are_never_contacted() {
    let dns = start_dns().await;
    let cases = [
        (
            "name resolving to 127.0.0.1",
            VALID_NAME,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ),
        (
            "IPv4 loopback literal",
            "127.0.0.1",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ),
        (
            "IPv6 loopback literal",
            "::1",
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ),
    ];
    for (name, target_text, listen_on) in cases {
        let (certificate, key) = CertificateSpec::valid_dns(VALID_NAME).build();
        let config = server_config(
            vec![certificate],
            key,
            AlpnPolicy::NegotiateAcmeTls1,
            BOTH_VERSIONS,
        );
        let server = AlpnServer::start_with_config(SocketAddr::new(listen_on, 0), config).await;
        let checker = checker(
            dns.addr(),
            AddressPolicy::PublicOnly,
            settings(server.addr().port()),
        );

        let outcome = checker.check(target_text, &key_authorization_hash()).await;

        assert_eq!(
            observed(&outcome),
            Expected::NotCompleted(error_type::BLOCKED_ADDRESS),
            "case {name:?}: {outcome:?}"
        );
        assert!(
            matches!(
                &outcome.verdict,
                Verdict::NotCompleted(ConnectionError::BlockedAddress { source, .. })
                    if source.address == listen_on
            ),
            "case {name:?}: the error names the blocked address: {outcome:?}"
        );
        assert_eq!(
            outcome.server_address, None,
            "case {name:?}: no server address"
        );
        assert_eq!(
            server.connection_count(),
            0,
            "case {name:?}: the server saw a connection"
        );
    }
}

/// A server that accepts TCP and never sends anything is cut off by the check budget or by
/// the handshake limit, whichever is shorter.
#[tokio::test]
async fn silent_server_times_out() {
    let dns = start_dns().await;
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(10);
    let cases = [
        (
            "check budget shorter than the handshake limit",
            TlsAlpnSettings {
                handshake_timeout: long,
                check_timeout: short,
                ..TlsAlpnSettings::new(short)
            },
            "CheckTimedOut",
        ),
        (
            "handshake limit shorter than the check budget",
            TlsAlpnSettings {
                handshake_timeout: short,
                check_timeout: long,
                ..TlsAlpnSettings::new(long)
            },
            "HandshakeTimedOut",
        ),
    ];

    for (name, base_settings, expected_variant) in cases {
        let silent = SilentServer::start().await;
        let settings = TlsAlpnSettings {
            port: silent.addr().port(),
            ..base_settings
        };
        let checker = checker(dns.addr(), AddressPolicy::AllowNonPublic, settings);

        let started = Instant::now();
        let outcome = checker.check("127.0.0.1", &key_authorization_hash()).await;
        let elapsed = started.elapsed();

        assert_eq!(
            observed(&outcome),
            Expected::NotCompleted(error_type::TIMEOUT),
            "case {name:?}: {outcome:?}"
        );
        let variant = match &outcome.verdict {
            Verdict::NotCompleted(ConnectionError::CheckTimedOut { .. }) => "CheckTimedOut",
            Verdict::NotCompleted(ConnectionError::HandshakeTimedOut { .. }) => "HandshakeTimedOut",
            _ => "other",
        };
        assert_eq!(variant, expected_variant, "case {name:?}: {outcome:?}");
        assert!(
            elapsed >= short && elapsed < long,
            "case {name:?}: took {elapsed:?}, expected about {short:?}"
        );
        assert_eq!(
            silent.connection_count(),
            1,
            "case {name:?}: one TCP connection"
        );
    }
}

/// Failures before any TLS exchange leave the check not completed.
#[tokio::test]
async fn unreachable_targets_are_not_completed() {
    let dns = start_dns().await;
    let closed_port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a port to close");
        listener
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    };

    let cases = [
        ("name without records", MISSING_NAME, error_type::LOOKUP),
        (
            "closed port refuses the connection",
            "127.0.0.1",
            error_type::CONNECTION,
        ),
    ];
    for (name, target_text, expected_type) in cases {
        let checker = checker(
            dns.addr(),
            AddressPolicy::AllowNonPublic,
            settings(closed_port),
        );
        let outcome = checker.check(target_text, &key_authorization_hash()).await;
        assert_eq!(
            observed(&outcome),
            Expected::NotCompleted(expected_type),
            "case {name:?}: {outcome:?}"
        );
        let response = outcome.into_check_response();
        assert!(!response.check_completed, "case {name:?}: check_completed");
        assert!(!response.check_passed, "case {name:?}: check_passed");
    }
}

/// A DNS server that never responds is cut off by the resolution lifetime.
#[tokio::test]
async fn silent_dns_times_out() {
    let dns = start_dns().await;
    dns.set_behavior(SILENT_NAME, None, Behavior::Drop);
    let lifetime = Duration::from_millis(300);
    let checker = TlsAlpnChecker::new(
        resolvers_for(dns.addr(), lifetime),
        AddressGuard::new(AddressPolicy::AllowNonPublic),
        settings(9),
    )
    .expect("the TLS client configuration builds");

    let started = Instant::now();
    let outcome = checker.check(SILENT_NAME, &key_authorization_hash()).await;
    let elapsed = started.elapsed();

    assert!(
        matches!(
            outcome.verdict,
            Verdict::NotCompleted(ConnectionError::LookupTimedOut { .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(outcome.error_type(), Some(error_type::TIMEOUT));
    assert!(
        elapsed >= lifetime && elapsed < GENEROUS_BUDGET,
        "took {elapsed:?}, expected about {lifetime:?}"
    );
    assert!(
        dns.query_count(&format!("{SILENT_NAME}.")) > 0,
        "the lookup reached the server"
    );
}

/// Requests this method cannot check are rejected before any lookup or connection.
#[tokio::test]
async fn invalid_requests_contact_nobody() {
    let dns = start_dns().await;
    let (certificate, key) = CertificateSpec::valid_dns(VALID_NAME).build();
    let config = server_config(
        vec![certificate],
        key,
        AlpnPolicy::NegotiateAcmeTls1,
        BOTH_VERSIONS,
    );
    let server =
        AlpnServer::start_with_config(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await;

    let cases = [
        (
            "wildcard target",
            "*.tls-alpn.test",
            key_authorization_hash(),
            error_type::WILDCARD_TARGET,
        ),
        (
            "hash is not hexadecimal",
            VALID_NAME,
            "not a digest".to_owned(),
            error_type::INVALID_KEY_AUTHORIZATION_HASH,
        ),
    ];
    for (name, target_text, hash, expected_type) in cases {
        let checker = checker(
            dns.addr(),
            AddressPolicy::AllowNonPublic,
            settings(server.addr().port()),
        );
        let outcome = checker.check(target_text, &hash).await;
        assert!(
            matches!(outcome.verdict, Verdict::InvalidRequest(_)),
            "case {name:?}: {outcome:?}"
        );
        assert_eq!(outcome.error_type(), Some(expected_type), "case {name:?}");
        let response = outcome.into_check_response();
        assert!(!response.check_completed, "case {name:?}: check_completed");
    }
    assert_eq!(
        dns.queries().len(),
        0,
        "no DNS query for an invalid request"
    );
    assert_eq!(
        server.connection_count(),
        0,
        "no connection for an invalid request"
    );
}

/// The reply has the TLS-ALPN details shape of the Open MPIC API.
#[tokio::test]
async fn reply_details_have_the_api_shape() {
    let dns = start_dns().await;
    let (certificate, key) = CertificateSpec::valid_dns(VALID_NAME).build();
    let config = server_config(
        vec![certificate],
        key,
        AlpnPolicy::NegotiateAcmeTls1,
        BOTH_VERSIONS,
    );
    let server =
        AlpnServer::start_with_config(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await;
    let checker = checker(
        dns.addr(),
        AddressPolicy::AllowNonPublic,
        settings(server.addr().port()),
    );

    let passed = checker
        .check(VALID_NAME, &key_authorization_hash())
        .await
        .into_check_response();
    let json = serde_json::to_value(&passed).expect("the reply serializes");
    assert_eq!(json["check_type"], "dcv");
    assert_eq!(json["check_completed"], true);
    assert_eq!(json["check_passed"], true);
    assert_eq!(
        json["details"],
        serde_json::json!({"validation_method": "acme-tls-alpn-01", "common_name": VALID_NAME})
    );

    let failed = checker
        .check(VALID_NAME, &"00".repeat(32))
        .await
        .into_check_response();
    let json = serde_json::to_value(&failed).expect("the reply serializes");
    assert_eq!(json["check_completed"], true);
    assert_eq!(json["check_passed"], false);
    assert_eq!(json["errors"][0]["error_type"], error_type::DIGEST_MISMATCH);
    let message = json["errors"][0]["error_message"]
        .as_str()
        .expect("the message is a string");
    assert!(
        message.contains(&key_authorization_hash()) && message.contains(&"00".repeat(32)),
        "the message names both digests: {message}"
    );
}
