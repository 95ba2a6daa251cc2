//! Tests of the TLS fixtures: certificates are checked with x509-parser, and servers with
//! real rustls client handshakes over loopback.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mpic_testkit::alpn::{ACME_TLS_1, AlpnPolicy, AlpnServer};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_testkit::tls::{
    AcmeIdentifier, AcmeTlsAlpnCertificate, CertificateUsage, Criticality, ServerCertificate,
    TestCa, key_authorization_digest,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const KEY_AUTHORIZATION: &str = "token.thumbprint";
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

#[tokio::test]
async fn https_server_trusted_through_test_ca() {
    let ca = TestCa::new();
    let certificate = ca.issue(&["example.com"]);
    let routes = Routes::new().route("/token", Reply::ok("secret"));
    let server = ChallengeServer::start_https(routes, &certificate).await;

    let mut stream = connect(server.addr(), "example.com", ca.client_config())
        .await
        .expect("handshake with a certificate from the test CA");
    stream
        .write_all(b"GET /token HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();

    assert_eq!(
        server.url("/token"),
        format!("https://{}/token", server.addr())
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nsecret"), "{response}");
    assert_eq!(server.requests()[0].host.as_deref(), Some("example.com"));
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn https_server_with_ip_certificate_on_ipv6() {
    let ca = TestCa::new();
    let certificate = ca.issue(&["::1"]);
    let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let server = ChallengeServer::start_https_on(addr, Routes::new(), &certificate).await;

    let stream = connect(server.addr(), "::1", ca.client_config()).await;

    assert!(stream.is_ok(), "handshake failed: {:?}", stream.err());
    assert_eq!(
        server.url("/a"),
        format!("https://[::1]:{}/a", server.port())
    );
}

#[tokio::test]
async fn wrong_name_certificate_fails_verification() {
    let ca = TestCa::new();
    let certificate = ca.issue(&["other.example"]);
    let server = ChallengeServer::start_https(Routes::new(), &certificate).await;

    let error = connect(server.addr(), "example.com", ca.client_config())
        .await
        .expect_err("a certificate for another name was accepted");

    assert!(error.to_string().contains("not valid for name"), "{error}");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn self_signed_certificate_fails_verification() {
    let ca = TestCa::new();
    let certificate = ServerCertificate::self_signed(&["example.com"]);
    let server = ChallengeServer::start_https(Routes::new(), &certificate).await;

    let error = connect(server.addr(), "example.com", ca.client_config())
        .await
        .expect_err("a self-signed certificate was accepted");

    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[test]
fn pem_forms_have_their_labels() {
    let ca = TestCa::new();
    let certificate = ca.issue(&["example.com"]);

    assert!(
        ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"),
        "CA PEM"
    );
    assert!(
        certificate
            .chain_pem()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "chain PEM"
    );
    assert!(
        certificate
            .key_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----"),
        "key PEM"
    );
    assert_eq!(certificate.chain().len(), 1);
}

#[test]
fn issued_certificate_names_issuer_and_sans() {
    let ca = TestCa::new();
    let certificate = ca.issue(&["*.example.com", "192.0.2.1"]);

    let (_, parsed) = X509Certificate::from_der(certificate.cert_der()).unwrap();
    let (_, ca_parsed) = X509Certificate::from_der(ca.cert_der()).unwrap();

    assert_eq!(parsed.issuer(), ca_parsed.subject());
    assert!(ca_parsed.is_ca(), "test CA certificate is not a CA");
    assert_eq!(
        subject_alt_names(&parsed),
        ["dns:*.example.com", "ip:192.0.2.1"]
    );
}

#[test]
fn issued_certificate_carries_requested_usage() {
    let ca = TestCa::new();
    let cases = [
        (CertificateUsage::Server, (true, false)),
        (CertificateUsage::Client, (false, true)),
        (CertificateUsage::ServerAndClient, (true, true)),
    ];

    for (usage, (server_auth, client_auth)) in cases {
        let certificate = ca.issue_with_usage(&["localhost"], usage);

        let (_, parsed) = X509Certificate::from_der(certificate.cert_der()).unwrap();
        let extended = parsed
            .extended_key_usage()
            .unwrap()
            .expect("no extended key usage extension")
            .value;
        assert_eq!(extended.server_auth, server_auth, "{usage:?}: serverAuth");
        assert_eq!(extended.client_auth, client_auth, "{usage:?}: clientAuth");
    }
}

#[test]
fn acme_certificate_follows_rfc_8737() {
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"]).build();

    let (_, parsed) = X509Certificate::from_der(certificate.cert_der()).unwrap();

    assert_eq!(parsed.issuer(), parsed.subject(), "not self-signed");
    assert_eq!(parsed.subject().iter_common_name().count(), 0, "has a CN");
    assert_eq!(subject_alt_names(&parsed), ["dns:example.com"]);
    let (critical, value) = acme_identifier(&parsed).expect("no acmeIdentifier");
    assert!(critical, "acmeIdentifier is not critical");
    let expected = [
        &[0x04, 0x20][..],
        &key_authorization_digest(KEY_AUTHORIZATION),
    ]
    .concat();
    assert_eq!(value, expected);
}

#[test]
fn acme_identifier_variants() {
    let digest = key_authorization_digest(KEY_AUTHORIZATION);
    let cases = [
        ("absent", AcmeIdentifier::Absent, None),
        (
            "not critical",
            AcmeIdentifier::KeyAuthorization {
                key_authorization: KEY_AUTHORIZATION.to_owned(),
                criticality: Criticality::NonCritical,
            },
            Some((false, [&[0x04, 0x20][..], &digest].concat())),
        ),
        (
            "short digest",
            AcmeIdentifier::Digest {
                digest: vec![1, 2, 3],
                criticality: Criticality::Critical,
            },
            Some((true, vec![0x04, 3, 1, 2, 3])),
        ),
        (
            "digest without octet string",
            AcmeIdentifier::RawValue {
                value: digest.to_vec(),
                criticality: Criticality::Critical,
            },
            Some((true, digest.to_vec())),
        ),
    ];
    for (name, identifier, expected) in cases {
        let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"])
            .with_identifier(identifier)
            .build();

        let (_, parsed) = X509Certificate::from_der(certificate.cert_der()).unwrap();

        assert_eq!(acme_identifier(&parsed), expected, "{name}");
    }
}

#[test]
fn acme_certificate_names_and_common_name() {
    let certificate =
        AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com", "192.0.2.1", "::1"])
            .with_common_name("example.com")
            .build();

    let (_, parsed) = X509Certificate::from_der(certificate.cert_der()).unwrap();

    assert_eq!(
        subject_alt_names(&parsed),
        ["dns:example.com", "ip:192.0.2.1", "ip:::1"]
    );
    let common_names: Vec<&str> = parsed
        .subject()
        .iter_common_name()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_eq!(common_names, ["example.com"]);
}

#[tokio::test]
async fn alpn_server_negotiates_acme_tls_1() {
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"]).build();
    let server = AlpnServer::start(certificate.clone(), AlpnPolicy::NegotiateAcmeTls1).await;

    let stream = connect(
        server.addr(),
        "example.com",
        any_certificate_config(ACME_TLS_1),
    )
    .await
    .expect("handshake offering acme-tls/1");

    let (_, connection) = stream.get_ref();
    assert_eq!(connection.alpn_protocol(), Some(ACME_TLS_1));
    let presented = connection.peer_certificates().unwrap();
    assert_eq!(presented, [certificate.cert_der().clone()]);
    let hellos = server.client_hellos();
    assert_eq!(hellos.len(), 1);
    assert_eq!(hellos[0].server_name.as_deref(), Some("example.com"));
    assert_eq!(hellos[0].alpn_protocols, [ACME_TLS_1.to_vec()]);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn alpn_server_records_reverse_name_sni() {
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["127.0.0.1"]).build();
    let server = AlpnServer::start(certificate, AlpnPolicy::NegotiateAcmeTls1).await;
    let reverse_name = "1.0.0.127.in-addr.arpa";

    let stream = connect(
        server.addr(),
        reverse_name,
        any_certificate_config(ACME_TLS_1),
    )
    .await;

    assert!(stream.is_ok(), "handshake failed: {:?}", stream.err());
    assert_eq!(
        server.client_hellos()[0].server_name.as_deref(),
        Some(reverse_name)
    );
}

#[tokio::test]
async fn alpn_server_can_negotiate_nothing() {
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"]).build();
    let server = AlpnServer::start(certificate, AlpnPolicy::NegotiateNothing).await;

    let stream = connect(
        server.addr(),
        "example.com",
        any_certificate_config(ACME_TLS_1),
    )
    .await
    .expect("handshake with a server without ALPN");

    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
}

#[tokio::test]
async fn alpn_server_can_reject_acme_tls_1() {
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"]).build();
    let server = AlpnServer::start(certificate, AlpnPolicy::RejectAcmeTls1).await;

    let error = connect(
        server.addr(),
        "example.com",
        any_certificate_config(ACME_TLS_1),
    )
    .await
    .expect_err("server negotiated a protocol it does not support");

    let alert = format!("{:?}", AlertDescription::NoApplicationProtocol);
    assert!(error.to_string().contains(&alert), "{error}");
    assert_eq!(server.client_hellos().len(), 1);
}

#[tokio::test]
async fn alpn_server_certificate_replaced() {
    let first = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["example.com"]).build();
    let second = AcmeTlsAlpnCertificate::new("other.thumbprint", &["example.com"]).build();
    let server = AlpnServer::start(first, AlpnPolicy::NegotiateAcmeTls1).await;

    server.set_certificate(second.clone(), AlpnPolicy::NegotiateAcmeTls1);
    let stream = connect(
        server.addr(),
        "example.com",
        any_certificate_config(ACME_TLS_1),
    )
    .await
    .expect("handshake after the certificate changed");

    let presented = stream.get_ref().1.peer_certificates().unwrap();
    assert_eq!(presented, [second.cert_der().clone()]);
}

/// Connects to `addr` with `server_name` as SNI (or as the IP address to verify) and
/// completes a TLS handshake.
async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let server_name = ServerName::try_from(server_name.to_owned()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(Arc::new(config));
    tokio::time::timeout(Duration::from_secs(5), connector.connect(server_name, tcp))
        .await
        .expect("TLS handshake timed out")
}

/// Builds a TLS 1.3 client configuration that offers `protocol` and accepts any
/// certificate, as a tls-alpn-01 validator does before it checks the certificate itself
/// (RFC 8737 §3).
fn any_certificate_config(protocol: &[u8]) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![protocol.to_vec()];
    config
}

/// A verifier that accepts every certificate but still checks the handshake signature.
///
/// The signature is checked against the certificate's public key taken out with
/// x509-parser, because webpki, which `verify_tls13_signature` uses, rejects a certificate
/// with the critical acmeIdentifier extension as an unsupported critical extension.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "this client offers only TLS 1.3".to_owned(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let (_, parsed) = X509Certificate::from_der(cert)
            .map_err(|error| rustls::Error::General(format!("unparsable certificate: {error}")))?;
        let public_key = SubjectPublicKeyInfoDer::from(parsed.tbs_certificate.subject_pki.raw);
        verify_tls13_signature_with_raw_key(
            message,
            &public_key,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Returns the SANs as `dns:NAME` or `ip:ADDRESS`, in certificate order.
fn subject_alt_names(certificate: &X509Certificate<'_>) -> Vec<String> {
    let extension = certificate
        .subject_alternative_name()
        .unwrap()
        .expect("no subjectAltName extension");
    extension
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns_name) => format!("dns:{dns_name}"),
            GeneralName::IPAddress(bytes) => {
                let address = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap()),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap()),
                    length => panic!("IP SAN of {length} bytes"),
                };
                format!("ip:{address}")
            }
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

/// Returns the criticality and raw value of the acmeIdentifier extension, if present.
fn acme_identifier(certificate: &X509Certificate<'_>) -> Option<(bool, Vec<u8>)> {
    certificate
        .extensions()
        .iter()
        .find(|extension| extension.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .map(|extension| (extension.critical, extension.value.to_vec()))
}
