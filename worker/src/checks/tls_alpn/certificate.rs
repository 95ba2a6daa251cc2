//! The decision over the certificate a server presented ([RFC 8737 §3], [RFC 8738 §6]). Pure
//! functions over DER, without I/O.
//!
//! [`check`] applies the rules in this order and reports the first one broken:
//!
//! 1. the DER is one X.509 certificate with no trailing bytes;
//! 2. the subjectAltName extension is present once and contains exactly one entry;
//! 3. that entry names the target: a dNSName equal to the domain name without regard to ASCII
//!    case (RFC 4343), or an iPAddress equal to the IP address. An IPv4 target needs a 4-byte
//!    entry and an IPv6 target a 16-byte one, so `::ffff:192.0.2.1` does not match `192.0.2.1`;
//! 4. the id-pe-acmeIdentifier extension is present once and marked critical;
//! 5. its value is the DER encoding of `Authorization ::= OCTET STRING (SIZE (32))`, which is
//!    exactly the 34 bytes `04 20 <digest>`;
//! 6. the digest equals the expected SHA-256 digest of the key authorization.
//!
//! [RFC 8737 §3]: https://www.rfc-editor.org/rfc/rfc8737#section-3
//! [RFC 8738 §6]: https://www.rfc-editor.org/rfc/rfc8738#section-6

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::nom;
use x509_parser::prelude::FromDer;

use super::error::Rejection;
use super::request::{KEY_AUTHORIZATION_DIGEST_LEN, KeyAuthorizationDigest, TlsAlpnTarget};

/// A parse failure: the DER is not exactly one X.509 certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateParseError {
    /// x509-parser rejected the structure.
    #[error("invalid X.509 structure")]
    X509(#[source] X509Error),
    /// The DER ends in the middle of the certificate.
    #[error("the certificate is truncated")]
    Truncated,
    /// Bytes follow the certificate inside the TLS certificate entry.
    #[error("{length} bytes follow the certificate")]
    TrailingData {
        /// Number of extra bytes.
        length: usize,
    },
}

/// The expected and the presented subjectAltName entry, described for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanMismatch {
    /// The entry the target calls for, e.g. `dNSName "example.com"`.
    pub expected: String,
    /// The entry in the certificate, e.g. `iPAddress 192.0.2.1`.
    pub presented: String,
}

/// A defect of the id-pe-acmeIdentifier extension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeIdentifierDefect {
    /// The extension appears more than once (RFC 5280 §4.2 forbids repeating an extension).
    #[error("the extension appears {count} times")]
    Repeated {
        /// Number of occurrences.
        count: usize,
    },
    /// The value does not start with the OCTET STRING tag.
    #[error("the value is not an OCTET STRING (first byte {first_byte:?})")]
    NotOctetString {
        /// The first byte of the value, `None` when the value is empty.
        first_byte: Option<u8>,
    },
    /// The length is not in DER form or does not match the rest of the value.
    #[error("the OCTET STRING length is not DER-encoded or does not match the value")]
    BadLength,
    /// The OCTET STRING does not contain 32 bytes.
    #[error("the OCTET STRING holds {length} bytes instead of a 32-byte SHA-256 digest")]
    WrongDigestLength {
        /// The number of bytes it contains.
        length: usize,
    },
}

/// DER content octets of the OID id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 (RFC 8737 §6.1).
/// The first two arcs encode as one octet, 40 * 1 + 3 = 0x2b, and every later arc is below 128,
/// so each takes one octet.
pub const ACME_IDENTIFIER_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];

/// The universal tag of a primitive OCTET STRING (X.690 §8.7).
const OCTET_STRING_TAG: u8 = 0x04;

/// Checks the certificate `der` against the target and the expected digest.
///
/// # Errors
///
/// Returns the first [`Rejection`] in the order listed in the module documentation.
pub fn check(
    der: &[u8],
    target: &TlsAlpnTarget,
    expected: &KeyAuthorizationDigest,
) -> Result<(), Rejection> {
    let certificate = parse(der).map_err(|source| Rejection::CertificateUnparsable { source })?;
    check_subject_alt_name(&certificate, target)?;

    let presented = acme_identifier_digest(&certificate)?;
    if presented != expected.as_bytes() {
        return Err(Rejection::DigestMismatch {
            expected: expected.to_string(),
            presented: hex::encode(presented),
        });
    }
    Ok(())
}

/// Parses `der` as exactly one X.509 certificate.
///
/// # Errors
///
/// Returns [`CertificateParseError`] for invalid DER, a truncated certificate or trailing bytes.
pub fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertificateParseError> {
    match X509Certificate::from_der(der) {
        Ok(([], certificate)) => Ok(certificate),
        Ok((rest, _)) => Err(CertificateParseError::TrailingData { length: rest.len() }),
        Err(nom::Err::Incomplete(_)) => Err(CertificateParseError::Truncated),
        Err(nom::Err::Error(error) | nom::Err::Failure(error)) => {
            Err(CertificateParseError::X509(error))
        }
    }
}

/// Returns the first common name of the certificate's subject, or `None` when the certificate
/// cannot be parsed, has no common name, or its common name is not a string type.
pub fn common_name(der: &[u8]) -> Option<String> {
    let certificate = parse(der).ok()?;
    let attribute = certificate.subject().iter_common_name().next()?;
    attribute.as_str().ok().map(str::to_owned)
}

fn check_subject_alt_name(
    certificate: &X509Certificate<'_>,
    target: &TlsAlpnTarget,
) -> Result<(), Rejection> {
    let extension = certificate
        .subject_alternative_name()
        .map_err(|source| Rejection::SubjectAltNameInvalid { source })?;
    let entries = extension.map_or(&[][..], |extension| &extension.value.general_names);

    let [entry] = entries else {
        return Err(Rejection::WrongSanCount {
            count: entries.len(),
        });
    };
    if names_target(entry, target) {
        return Ok(());
    }
    Err(Rejection::SanMismatch {
        mismatch: SanMismatch {
            expected: describe_target(target),
            presented: describe_entry(entry),
        },
    })
}

fn names_target(entry: &GeneralName<'_>, target: &TlsAlpnTarget) -> bool {
    match (entry, target) {
        (GeneralName::DNSName(presented), TlsAlpnTarget::Domain { name, .. }) => {
            presented.eq_ignore_ascii_case(name)
        }
        (GeneralName::IPAddress(octets), TlsAlpnTarget::Ip(address)) => {
            ip_address(octets) == Some(*address)
        }
        _ => false,
    }
}

/// Reads an iPAddress entry: 4 octets for IPv4, 16 for IPv6 (RFC 5280 §4.2.1.6).
fn ip_address(octets: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(octets) {
        return Some(IpAddr::V6(Ipv6Addr::from(v6)));
    }
    None
}

fn describe_target(target: &TlsAlpnTarget) -> String {
    match target {
        TlsAlpnTarget::Domain { name, .. } => format!("dNSName {name:?}"),
        TlsAlpnTarget::Ip(address) => format!("iPAddress {address}"),
    }
}

fn describe_entry(entry: &GeneralName<'_>) -> String {
    match entry {
        GeneralName::DNSName(name) => format!("dNSName {name:?}"),
        GeneralName::IPAddress(octets) => match ip_address(octets) {
            Some(address) => format!("iPAddress {address}"),
            None => format!("iPAddress of {} bytes", octets.len()),
        },
        GeneralName::RFC822Name(name) => format!("rfc822Name {name:?}"),
        GeneralName::URI(uri) => format!("uniformResourceIdentifier {uri:?}"),
        GeneralName::OtherName(oid, _) => format!("otherName {oid}"),
        GeneralName::DirectoryName(name) => format!("directoryName {name}"),
        GeneralName::RegisteredID(oid) => format!("registeredID {oid}"),
        GeneralName::X400Address(_) => "x400Address".to_owned(),
        GeneralName::EDIPartyName(_) => "ediPartyName".to_owned(),
        GeneralName::Invalid(tag, _) => format!("an entry that cannot be decoded ({tag})"),
    }
}

/// Returns the digest in the id-pe-acmeIdentifier extension after checking that the extension
/// appears once, is critical and contains a 32-byte DER OCTET STRING.
fn acme_identifier_digest<'a>(certificate: &X509Certificate<'a>) -> Result<&'a [u8], Rejection> {
    let mut extensions = certificate
        .extensions()
        .iter()
        .filter(|extension| extension.oid.as_bytes() == ACME_IDENTIFIER_OID);
    let Some(extension) = extensions.next() else {
        return Err(Rejection::AcmeIdentifierMissing);
    };
    let repeats = extensions.count();
    if repeats > 0 {
        return Err(Rejection::AcmeIdentifierMalformed {
            defect: AcmeIdentifierDefect::Repeated { count: repeats + 1 },
        });
    }
    if !extension.critical {
        return Err(Rejection::AcmeIdentifierNotCritical);
    }

    let digest = der_octet_string(extension.value)
        .map_err(|defect| Rejection::AcmeIdentifierMalformed { defect })?;
    if digest.len() != KEY_AUTHORIZATION_DIGEST_LEN {
        return Err(Rejection::AcmeIdentifierMalformed {
            defect: AcmeIdentifierDefect::WrongDigestLength {
                length: digest.len(),
            },
        });
    }
    Ok(digest)
}

/// Returns the contents of `value` if it is exactly one primitive OCTET STRING in DER.
fn der_octet_string(value: &[u8]) -> Result<&[u8], AcmeIdentifierDefect> {
    let Some((&tag, rest)) = value.split_first() else {
        return Err(AcmeIdentifierDefect::NotOctetString { first_byte: None });
    };
    if tag != OCTET_STRING_TAG {
        return Err(AcmeIdentifierDefect::NotOctetString {
            first_byte: Some(tag),
        });
    }

    let (length, contents) = der_length(rest).ok_or(AcmeIdentifierDefect::BadLength)?;
    if contents.len() != length {
        return Err(AcmeIdentifierDefect::BadLength);
    }
    Ok(contents)
}

/// Reads a DER length (X.690 §8.1.3 and §10.1: definite, in the fewest octets) and returns it
/// with the bytes after it.
///
/// Lengths of more than two octets (64 KiB and up) are rejected as well: such a value cannot
/// hold a 32-byte digest anyway.
fn der_length(input: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }

    // 0x80 alone is the indefinite form, which DER forbids.
    let octet_count = usize::from(first & 0x7f);
    if octet_count == 0 || octet_count > 2 || rest.len() < octet_count {
        return None;
    }
    let (octets, rest) = rest.split_at(octet_count);
    if octets[0] == 0 {
        return None;
    }
    let length = octets
        .iter()
        .fold(0usize, |length, &octet| (length << 8) | usize::from(octet));
    if length < 0x80 {
        return None;
    }
    Some((length, rest))
}

impl fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, the certificate holds {}",
            self.expected, self.presented
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use rcgen::SanType;

    use super::*;
    use crate::checks::tls_alpn::tests::fixtures::{
        CertificateSpec, dns_san, key_authorization_digest,
    };

    fn domain(name: &str) -> TlsAlpnTarget {
        TlsAlpnTarget::Domain {
            name: name.to_owned(),
            fqdn: hickory_resolver::proto::rr::Name::from_ascii(format!("{name}."))
                .expect("test names are valid"),
        }
    }

    fn expected_digest() -> KeyAuthorizationDigest {
        KeyAuthorizationDigest::new(key_authorization_digest())
    }

    #[test]
    fn der_octet_string_accepts_only_der() {
        let digest = [0xab; 32];
        let mut valid = vec![0x04, 0x20];
        valid.extend_from_slice(&digest);
        let mut long_form_for_short = vec![0x04, 0x81, 0x20];
        long_form_for_short.extend_from_slice(&digest);
        let mut trailing = valid.clone();
        trailing.push(0x00);
        let mut constructed = valid.clone();
        constructed[0] = 0x24;
        let mut long_value = vec![0x04, 0x81, 0x80];
        long_value.extend_from_slice(&[0x11; 0x80]);

        type Case<'a> = (&'a str, &'a [u8], Result<&'a [u8], AcmeIdentifierDefect>);
        let cases: [Case<'_>; 8] = [
            ("32-byte OCTET STRING", &valid, Ok(&digest)),
            (
                "long-form length for a short value",
                &long_form_for_short,
                Err(AcmeIdentifierDefect::BadLength),
            ),
            (
                "trailing byte",
                &trailing,
                Err(AcmeIdentifierDefect::BadLength),
            ),
            (
                "truncated",
                &valid[..20],
                Err(AcmeIdentifierDefect::BadLength),
            ),
            (
                "indefinite length",
                &[0x04, 0x80, 0x00, 0x00],
                Err(AcmeIdentifierDefect::BadLength),
            ),
            (
                "constructed OCTET STRING",
                &constructed,
                Err(AcmeIdentifierDefect::NotOctetString {
                    first_byte: Some(0x24),
                }),
            ),
            (
                "empty value",
                &[],
                Err(AcmeIdentifierDefect::NotOctetString { first_byte: None }),
            ),
            (
                "128-byte value in long form",
                &long_value,
                Ok(&[0x11; 0x80]),
            ),
        ];
        for (name, value, expected) in cases {
            assert_eq!(der_octet_string(value), expected, "case {name:?}");
        }
    }

    #[test]
    fn acme_identifier_oid_value() {
        let oid = x509_parser::der_parser::oid::Oid::new(ACME_IDENTIFIER_OID.into());
        assert_eq!(oid.to_id_string(), "1.3.6.1.5.5.7.1.31");
    }

    #[test]
    fn check_decides_on_the_certificate() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let cases = [
            (
                "mixed-case dNSName: passed",
                domain("example.com"),
                CertificateSpec::valid_dns("Example.COM"),
                None,
            ),
            (
                "IPv6 iPAddress: passed",
                TlsAlpnTarget::Ip(v6),
                CertificateSpec::valid_ip(v6),
                None,
            ),
            (
                "IPv4 target, IPv4-mapped IPv6 entry: failed",
                TlsAlpnTarget::Ip(v4),
                CertificateSpec::valid_ip(mapped),
                Some(super::super::error_type::SAN_MISMATCH),
            ),
            (
                "dNSName with a trailing dot: failed",
                domain("example.com"),
                CertificateSpec::valid_dns("example.com."),
                Some(super::super::error_type::SAN_MISMATCH),
            ),
            (
                "rfc822Name entry: failed",
                domain("example.com"),
                CertificateSpec::valid_dns("example.com").with_sans(vec![SanType::Rfc822Name(
                    "admin@example.com".try_into().expect("IA5 string"),
                )]),
                Some(super::super::error_type::SAN_MISMATCH),
            ),
            (
                "target name in an extra entry: failed",
                domain("example.com"),
                CertificateSpec::valid_dns("example.com")
                    .with_sans(vec![dns_san("www.example.com"), dns_san("example.com")]),
                Some(super::super::error_type::WRONG_SAN_COUNT),
            ),
        ];

        for (name, target, spec, expected) in cases {
            let (der, _key) = spec.build();
            let result = check(der.as_ref(), &target, &expected_digest());
            assert_eq!(
                result.as_ref().err().map(Rejection::error_type),
                expected,
                "case {name:?}: {result:?}"
            );
        }
    }

    #[test]
    fn san_mismatch_names_both_entries() {
        let (der, _key) = CertificateSpec::valid_dns("other.example").build();
        let error = check(der.as_ref(), &domain("example.com"), &expected_digest())
            .expect_err("another name must not match");
        assert_eq!(
            error.to_string(),
            "the certificate's subjectAltName entry does not match the target: expected \
             dNSName \"example.com\", the certificate holds dNSName \"other.example\""
        );
    }

    #[test]
    fn parse_rejects_what_is_not_one_certificate() {
        let (der, _key) = CertificateSpec::valid_dns("example.com").build();
        let mut trailing = der.to_vec();
        trailing.extend_from_slice(&[0, 0]);

        assert!(parse(der.as_ref()).is_ok(), "the certificate parses");
        assert!(
            matches!(
                parse(&trailing),
                Err(CertificateParseError::TrailingData { length: 2 })
            ),
            "trailing bytes"
        );
        assert!(
            parse(&der[..der.len() / 2]).is_err(),
            "truncated certificate"
        );
        assert!(parse(b"not DER at all").is_err(), "garbage");

        let result = check(&trailing, &domain("example.com"), &expected_digest());
        assert_eq!(
            result.as_ref().err().map(Rejection::error_type),
            Some(super::super::error_type::CERTIFICATE_UNPARSABLE),
            "check reports the parse failure: {result:?}"
        );
    }

    #[test]
    fn common_name_is_reported_when_present() {
        let (with_name, _key) = CertificateSpec::valid_dns("example.com").build();
        let (without_name, _key) = CertificateSpec::valid_dns("example.com")
            .without_common_name()
            .build();

        assert_eq!(
            common_name(with_name.as_ref()).as_deref(),
            Some("example.com")
        );
        assert_eq!(common_name(without_name.as_ref()), None);
        assert_eq!(common_name(b"not DER"), None);
    }
}
