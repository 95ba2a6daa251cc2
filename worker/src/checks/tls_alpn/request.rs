//! The parsed request of one check: the target the certificate must name, the SNI value to
//! send, and the key authorization digest the acmeIdentifier extension must hold.

use std::fmt;
use std::net::IpAddr;

use hickory_resolver::proto::rr::Name;
use mpic_shared::target::{DomainTarget, Target};
use rustls::pki_types::{DnsName, ServerName};

use super::error::InvalidRequest;

/// A request that acme-tls-alpn-01 can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAlpnRequest {
    target: TlsAlpnTarget,
    /// The SNI host name: the domain name, or the reverse-mapping name of an IP address.
    server_name: DnsName<'static>,
    expected_digest: KeyAuthorizationDigest,
}

/// The target in the form the certificate's single subjectAltName entry must name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsAlpnTarget {
    /// A domain name. The SAN entry must be a dNSName.
    Domain {
        /// A-labels, lower case, without a trailing dot, e.g. `example.com`.
        name: String,
        /// The same name, fully qualified, for the DNS lookup.
        fqdn: Name,
    },
    /// An IP address. The SAN entry must be an iPAddress.
    Ip(IpAddr),
}

/// The SHA-256 digest of the key authorization (RFC 8555 §8.1), which the acmeIdentifier
/// extension must hold (RFC 8737 §3).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyAuthorizationDigest([u8; KEY_AUTHORIZATION_DIGEST_LEN]);

/// Length of a SHA-256 digest, the only size `Authorization ::= OCTET STRING (SIZE (32))` allows
/// (RFC 8737 §3).
pub const KEY_AUTHORIZATION_DIGEST_LEN: usize = 32;

impl TlsAlpnRequest {
    /// Validates `target` (`domain_or_ip_target` as received) and `key_authorization_hash` for
    /// this method.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest`] for a target that is not a domain name or IP address, a
    /// wildcard target, a name that cannot be sent as SNI or looked up, or a hash that is not
    /// 64 hexadecimal digits.
    pub fn new(target: &str, key_authorization_hash: &str) -> Result<Self, InvalidRequest> {
        let parsed = Target::parse(target).map_err(|source| InvalidRequest::InvalidTarget {
            target: target.to_owned(),
            source,
        })?;
        let target = TlsAlpnTarget::from_target(&parsed)?;
        let server_name = target.server_name()?;
        let expected_digest = KeyAuthorizationDigest::from_hex(key_authorization_hash)?;
        Ok(Self {
            target,
            server_name,
            expected_digest,
        })
    }

    /// Returns the target the certificate must name.
    pub fn target(&self) -> &TlsAlpnTarget {
        &self.target
    }

    /// Returns the value to send in the SNI extension.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::DnsName(self.server_name.clone())
    }

    /// Returns the digest the acmeIdentifier extension must hold.
    pub fn expected_digest(&self) -> &KeyAuthorizationDigest {
        &self.expected_digest
    }
}

impl TlsAlpnTarget {
    /// Converts a parsed API target, rejecting wildcards (BR §3.2.2.4.20: the method "is NOT
    /// suitable for validating Wildcard Domain Names").
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest::WildcardTarget`] or [`InvalidRequest::InvalidDomainName`].
    pub fn from_target(target: &Target) -> Result<Self, InvalidRequest> {
        match target {
            Target::Ip(address) => Ok(Self::Ip(*address)),
            Target::Domain(DomainTarget { wildcard: true, .. }) => {
                Err(InvalidRequest::WildcardTarget {
                    target: target.to_string(),
                })
            }
            Target::Domain(DomainTarget { name, .. }) => {
                let fqdn = Name::from_ascii(format!("{name}.")).map_err(|source| {
                    InvalidRequest::InvalidDomainName {
                        name: name.clone(),
                        source,
                    }
                })?;
                Ok(Self::Domain {
                    name: name.clone(),
                    fqdn,
                })
            }
        }
    }

    /// Returns the SNI host name: the domain name itself, or for an IP address its reverse
    /// mapping name (RFC 8738 §6).
    ///
    /// The value is always a DNS name. Building it as [`DnsName`] rather than through
    /// `ServerName::try_from(&str)` matters: that conversion turns a name that looks like an IP
    /// address into an address, and rustls sends no SNI for an address.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest::InvalidServerName`] when rustls does not accept the name as a
    /// DNS name, e.g. an all-numeric name such as `1.2.3.4`.
    pub fn server_name(&self) -> Result<DnsName<'static>, InvalidRequest> {
        let name = match self {
            Self::Domain { name, .. } => name.clone(),
            Self::Ip(address) => reverse_mapping_name(*address),
        };
        DnsName::try_from(name.clone())
            .map_err(|source| InvalidRequest::InvalidServerName { name, source })
    }
}

impl fmt::Display for TlsAlpnTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain { name, .. } => f.write_str(name),
            Self::Ip(address) => write!(f, "{address}"),
        }
    }
}

/// Returns the `in-addr.arpa` (RFC 1034 §5.2.1) or `ip6.arpa` (RFC 3596 §2.5) name of
/// `address`, without a trailing dot because RFC 6066 §3 forbids one in an SNI host name.
///
/// IPv4: the four octets in reverse order, e.g. `4.3.2.1.in-addr.arpa` for `1.2.3.4`.
/// IPv6: the 32 nibbles in reverse order as lower-case hexadecimal digits.
pub fn reverse_mapping_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(IPV6_REVERSE_NAME_LEN);
            for octet in v6.octets().iter().rev() {
                let low = octet & 0x0f;
                let high = octet >> 4;
                name.push_str(&format!("{low:x}.{high:x}."));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// 32 nibbles with a dot each, then `ip6.arpa`.
const IPV6_REVERSE_NAME_LEN: usize = 32 * 2 + "ip6.arpa".len();

impl KeyAuthorizationDigest {
    /// Wraps a digest computed elsewhere.
    pub fn new(digest: [u8; KEY_AUTHORIZATION_DIGEST_LEN]) -> Self {
        Self(digest)
    }

    /// Parses the hexadecimal form the Open MPIC API uses for `key_authorization_hash`.
    /// Upper- and lower-case digits are accepted.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest::MalformedKeyAuthorizationHash`] unless the value is exactly
    /// 64 hexadecimal digits.
    pub fn from_hex(value: &str) -> Result<Self, InvalidRequest> {
        let mut digest = [0u8; KEY_AUTHORIZATION_DIGEST_LEN];
        hex::decode_to_slice(value, &mut digest).map_err(|source| {
            InvalidRequest::MalformedKeyAuthorizationHash {
                length: value.len(),
                source,
            }
        })?;
        Ok(Self(digest))
    }

    /// Returns the digest bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_AUTHORIZATION_DIGEST_LEN] {
        &self.0
    }
}

/// Shows the digest as lower-case hexadecimal, the form error messages use.
impl fmt::Display for KeyAuthorizationDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyAuthorizationDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyAuthorizationDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_mapping_names() {
        let cases = [
            ("IPv4", "1.2.3.4", "4.3.2.1.in-addr.arpa"),
            ("IPv4 loopback", "127.0.0.1", "1.0.0.127.in-addr.arpa"),
            (
                "IPv6 example from RFC 8738 §6",
                "2001:db8::1",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
            ),
            (
                "IPv6 loopback",
                "::1",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            ),
            (
                "IPv4-mapped IPv6 stays in ip6.arpa",
                "::ffff:1.2.3.4",
                "4.0.3.0.2.0.1.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            ),
        ];
        for (name, address, expected) in cases {
            let address: IpAddr = address.parse().expect("test addresses are valid");
            let reverse = reverse_mapping_name(address);
            assert_eq!(reverse, expected, "case {name:?}");
            assert!(
                DnsName::try_from(reverse.as_str()).is_ok(),
                "case {name:?}: rustls must accept {reverse:?} as SNI"
            );
        }
    }

    #[test]
    fn request_server_names() {
        let digest = "00".repeat(KEY_AUTHORIZATION_DIGEST_LEN);
        let cases = [
            ("domain is sent as is", "www.example.com", "www.example.com"),
            (
                "upper case arrives lowered",
                "WWW.Example.COM",
                "www.example.com",
            ),
            (
                "IPv4 uses in-addr.arpa",
                "192.0.2.1",
                "1.2.0.192.in-addr.arpa",
            ),
            (
                "IPv6 uses ip6.arpa",
                "[2001:db8::2]",
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
            ),
        ];
        for (name, target, expected) in cases {
            let request = TlsAlpnRequest::new(target, &digest)
                .unwrap_or_else(|error| panic!("case {name:?}: rejected: {error}"));
            let expected = ServerName::DnsName(
                DnsName::try_from(expected.to_owned()).expect("expected names are valid"),
            );
            assert_eq!(request.server_name(), expected, "case {name:?}");
        }
    }

    #[test]
    fn request_rejects_invalid_input() {
        let digest = "ab".repeat(KEY_AUTHORIZATION_DIGEST_LEN);
        let cases = [
            (
                "wildcard",
                "*.example.com",
                digest.clone(),
                "wildcard_target",
            ),
            (
                "not a name",
                "exa mple.com",
                digest.clone(),
                "invalid_target",
            ),
            ("empty target", "", digest.clone(), "invalid_target"),
            (
                "name that rustls reads as an address",
                "1.2.3.4.",
                digest.clone(),
                "invalid_target",
            ),
            (
                "hash too short",
                "example.com",
                "ab".repeat(31),
                "invalid_key_authorization_hash",
            ),
            (
                "hash too long",
                "example.com",
                "ab".repeat(33),
                "invalid_key_authorization_hash",
            ),
            (
                "hash with a non-hex digit",
                "example.com",
                format!("{}zz", "ab".repeat(31)),
                "invalid_key_authorization_hash",
            ),
            (
                "base64url instead of hex",
                "example.com",
                "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo".to_owned(),
                "invalid_key_authorization_hash",
            ),
            (
                "empty hash",
                "example.com",
                String::new(),
                "invalid_key_authorization_hash",
            ),
        ];
        for (name, target, hash, reason) in cases {
            let error =
                TlsAlpnRequest::new(target, &hash).expect_err(&format!("case {name:?}: accepted"));
            assert_eq!(
                error.error_type(),
                format!("mpic_error:dcv_checker:tls_alpn:{reason}"),
                "case {name:?}: {error}"
            );
        }
    }

    #[test]
    fn digest_accepts_either_case() {
        let lower = "653471d42925d7eb4cd39a39cda8b34d3034c94cb90067ab78c8123560ba2e5f";
        let upper = lower.to_ascii_uppercase();
        let from_lower = KeyAuthorizationDigest::from_hex(lower).expect("lower case is valid");
        let from_upper = KeyAuthorizationDigest::from_hex(&upper).expect("upper case is valid");
        assert_eq!(from_lower, from_upper);
        assert_eq!(from_upper.to_string(), lower, "display is lower case");
    }
}
