//! Domain control validation methods and their parameters (`dcv_check_parameters`).
//!
//! Requests are parsed with `validation_method` as the tag; unknown fields are ignored and
//! absent optional fields take the defaults of the Open MPIC API 3.5. When the parameters are
//! echoed in a response they are written the way the Python implementation writes them: every
//! method also shows the fixed `require_exact_case`, `dns_record_type` and `dns_name_prefix` it
//! implies, so clients written against that service see the same field set.
//!
//! `dns-account-01` (BR §3.2.2.4.21) is not in the API specification yet; it is accepted here
//! with `key_authorization_hash` and `account_uri`.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// A DCV method name as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationMethod {
    /// Agreed-upon change to website (BR §3.2.2.4.18).
    WebsiteChange,
    /// ACME http-01 (RFC 8555 §8.3, BR §3.2.2.4.19).
    #[serde(rename = "acme-http-01")]
    AcmeHttp01,
    /// ACME dns-01 (RFC 8555 §8.4, BR §3.2.2.4.7).
    #[serde(rename = "acme-dns-01")]
    AcmeDns01,
    /// ACME tls-alpn-01 (RFC 8737, BR §3.2.2.4.20).
    #[serde(rename = "acme-tls-alpn-01")]
    AcmeTlsAlpn01,
    /// DNS change (BR §3.2.2.4.7).
    DnsChange,
    /// Persistent DNS TXT record (BR §3.2.2.4.22).
    DnsPersistent,
    /// Email to a DNS TXT contact (BR §3.2.2.4.14).
    ContactEmailTxt,
    /// Email to a DNS CAA contact (BR §3.2.2.4.13).
    ContactEmailCaa,
    /// Phone contact from a DNS TXT record (BR §3.2.2.4.16).
    ContactPhoneTxt,
    /// Phone contact from a DNS CAA record (BR §3.2.2.4.17).
    ContactPhoneCaa,
    /// The A or AAAA records of a name contain the address (BR §3.2.2.5.x, IP address checks).
    IpAddress,
    /// Reverse lookup of an IP address (BR §3.2.2.5.3).
    ReverseAddressLookup,
    /// ACME dns-account-01 (BR §3.2.2.4.21, draft-ietf-acme-dns-account-label).
    #[serde(rename = "dns-account-01")]
    DnsAccount01,
}

impl ValidationMethod {
    /// Returns the wire name, e.g. `acme-dns-01`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebsiteChange => "website-change",
            Self::AcmeHttp01 => "acme-http-01",
            Self::AcmeDns01 => "acme-dns-01",
            Self::AcmeTlsAlpn01 => "acme-tls-alpn-01",
            Self::DnsChange => "dns-change",
            Self::DnsPersistent => "dns-persistent",
            Self::ContactEmailTxt => "contact-email-txt",
            Self::ContactEmailCaa => "contact-email-caa",
            Self::ContactPhoneTxt => "contact-phone-txt",
            Self::ContactPhoneCaa => "contact-phone-caa",
            Self::IpAddress => "ip-address",
            Self::ReverseAddressLookup => "reverse-address-lookup",
            Self::DnsAccount01 => "dns-account-01",
        }
    }

    /// Returns how the method gathers its evidence, which decides the shape of the reply details.
    pub fn family(self) -> MethodFamily {
        match self {
            Self::WebsiteChange | Self::AcmeHttp01 => MethodFamily::Http,
            Self::AcmeTlsAlpn01 => MethodFamily::TlsAlpn,
            _ => MethodFamily::Dns,
        }
    }
}

impl std::fmt::Display for ValidationMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a validation method gathers evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodFamily {
    /// DNS queries; details carry `records_seen`, `response_code`, `ad_flag`, `found_at`, `cname_chain`.
    Dns,
    /// HTTP fetches; details carry the response history, URL, status and page.
    Http,
    /// A TLS handshake with ALPN `acme-tls/1`; details carry the certificate's common name.
    TlsAlpn,
}

/// The method-specific fields of a DCV request, tagged by `validation_method`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "validation_method")]
pub enum DcvCheckParameters {
    /// `website-change`.
    #[serde(rename = "website-change")]
    WebsiteChange(WebsiteChangeParameters),
    /// `acme-http-01`.
    #[serde(rename = "acme-http-01")]
    AcmeHttp01(AcmeHttp01Parameters),
    /// `acme-dns-01`.
    #[serde(rename = "acme-dns-01")]
    AcmeDns01(KeyAuthorizationHashParameters),
    /// `acme-tls-alpn-01`; the hash is hex-encoded.
    #[serde(rename = "acme-tls-alpn-01")]
    AcmeTlsAlpn01(KeyAuthorizationHashParameters),
    /// `dns-change`.
    #[serde(rename = "dns-change")]
    DnsChange(DnsChangeParameters),
    /// `dns-persistent`.
    #[serde(rename = "dns-persistent")]
    DnsPersistent(DnsPersistentParameters),
    /// `contact-email-txt`.
    #[serde(rename = "contact-email-txt")]
    ContactEmailTxt(ChallengeValueParameters),
    /// `contact-email-caa`.
    #[serde(rename = "contact-email-caa")]
    ContactEmailCaa(ChallengeValueParameters),
    /// `contact-phone-txt`.
    #[serde(rename = "contact-phone-txt")]
    ContactPhoneTxt(ChallengeValueParameters),
    /// `contact-phone-caa`.
    #[serde(rename = "contact-phone-caa")]
    ContactPhoneCaa(ChallengeValueParameters),
    /// `ip-address`.
    #[serde(rename = "ip-address")]
    IpAddress(IpAddressParameters),
    /// `reverse-address-lookup`.
    #[serde(rename = "reverse-address-lookup")]
    ReverseAddressLookup(ChallengeValueParameters),
    /// `dns-account-01`.
    #[serde(rename = "dns-account-01")]
    DnsAccount01(DnsAccount01Parameters),
}

/// URL scheme for `website-change`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlScheme {
    /// `http`, port 80 (the default).
    #[default]
    Http,
    /// `https`, port 443.
    Https,
}

/// Extra HTTP request headers a caller asks the perspective to send.
pub type HttpHeaders = BTreeMap<String, String>;

/// `website-change` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebsiteChangeParameters {
    /// Text the page must contain.
    pub challenge_value: String,
    /// File name under `/.well-known/pki-validation/`.
    pub http_token_path: String,
    /// `http` when absent or null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub url_scheme: UrlScheme,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Option<HttpHeaders>,
    /// A regular expression that must also match the page, when given.
    #[serde(default)]
    pub match_regex: Option<String>,
    /// Compare `challenge_value` case-sensitively (the default).
    #[serde(default = "default_true")]
    pub require_exact_case: bool,
}

/// `acme-http-01` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AcmeHttp01Parameters {
    /// The token, the last path segment of `/.well-known/acme-challenge/<token>`.
    pub token: String,
    /// The key authorization the body must equal after trailing whitespace is trimmed.
    pub key_authorization: String,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Option<HttpHeaders>,
}

/// Fields of the methods that compare a key authorization digest (`acme-dns-01`: base64url;
/// `acme-tls-alpn-01`: hex).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyAuthorizationHashParameters {
    /// SHA-256 digest of the key authorization (RFC 8555 §8.1).
    pub key_authorization_hash: String,
}

/// Record types `dns-change` may query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsChangeRecordType {
    /// CNAME: the canonical name contains the challenge value.
    #[serde(rename = "CNAME")]
    Cname,
    /// TXT: a record's joined strings contain the challenge value.
    #[serde(rename = "TXT")]
    Txt,
    /// CAA: a property value contains the challenge value.
    #[serde(rename = "CAA")]
    Caa,
}

/// `dns-change` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnsChangeParameters {
    /// The value to find.
    pub challenge_value: String,
    /// The record type to query.
    pub dns_record_type: DnsChangeRecordType,
    /// A label put in front of the target (`<prefix>.<target>`); none or empty queries the target.
    #[serde(default)]
    pub dns_name_prefix: Option<String>,
    /// Require equality instead of a substring match.
    #[serde(default)]
    pub require_exact_match: bool,
    /// Compare case-sensitively (TXT only; the default).
    #[serde(default = "default_true")]
    pub require_exact_case: bool,
}

/// `dns-persistent` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnsPersistentParameters {
    /// Issuer domain names of the calling CA; a record must name one of them. Must not be empty.
    pub issuer_domain_names: Vec<String>,
    /// The `accounturi` the record must carry.
    pub expected_account_uri: String,
}

/// Fields of the methods that only compare one value (contact and reverse lookup methods).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChallengeValueParameters {
    /// The value to find.
    pub challenge_value: String,
}

/// Record types `ip-address` may query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpRecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    #[serde(rename = "AAAA")]
    Aaaa,
}

/// `ip-address` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpAddressParameters {
    /// The address to find, compared as an address (so `2001:db8::1` equals `2001:db8:0::1`).
    pub challenge_value: String,
    /// The record type to query.
    pub dns_record_type: IpRecordType,
}

/// `dns-account-01` fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnsAccount01Parameters {
    /// base64url SHA-256 digest of the key authorization, as for dns-01.
    pub key_authorization_hash: String,
    /// The ACME account URI from which the record name's account label is derived.
    pub account_uri: String,
}

impl DcvCheckParameters {
    /// Returns the method these parameters belong to.
    pub fn method(&self) -> ValidationMethod {
        match self {
            Self::WebsiteChange(_) => ValidationMethod::WebsiteChange,
            Self::AcmeHttp01(_) => ValidationMethod::AcmeHttp01,
            Self::AcmeDns01(_) => ValidationMethod::AcmeDns01,
            Self::AcmeTlsAlpn01(_) => ValidationMethod::AcmeTlsAlpn01,
            Self::DnsChange(_) => ValidationMethod::DnsChange,
            Self::DnsPersistent(_) => ValidationMethod::DnsPersistent,
            Self::ContactEmailTxt(_) => ValidationMethod::ContactEmailTxt,
            Self::ContactEmailCaa(_) => ValidationMethod::ContactEmailCaa,
            Self::ContactPhoneTxt(_) => ValidationMethod::ContactPhoneTxt,
            Self::ContactPhoneCaa(_) => ValidationMethod::ContactPhoneCaa,
            Self::IpAddress(_) => ValidationMethod::IpAddress,
            Self::ReverseAddressLookup(_) => ValidationMethod::ReverseAddressLookup,
            Self::DnsAccount01(_) => ValidationMethod::DnsAccount01,
        }
    }

    /// Returns the value that must not be empty, for the API's `empty-challenge-value` check.
    pub fn challenge_value(&self) -> Option<&str> {
        match self {
            Self::WebsiteChange(p) => Some(&p.challenge_value),
            Self::AcmeHttp01(p) => Some(&p.key_authorization),
            Self::AcmeDns01(p) | Self::AcmeTlsAlpn01(p) => Some(&p.key_authorization_hash),
            Self::DnsChange(p) => Some(&p.challenge_value),
            Self::DnsPersistent(_) => None,
            Self::ContactEmailTxt(p)
            | Self::ContactEmailCaa(p)
            | Self::ContactPhoneTxt(p)
            | Self::ContactPhoneCaa(p)
            | Self::ReverseAddressLookup(p) => Some(&p.challenge_value),
            Self::IpAddress(p) => Some(&p.challenge_value),
            Self::DnsAccount01(p) => Some(&p.key_authorization_hash),
        }
    }
}

/// The label prefixes fixed by the methods (BR §3.2.2.4.7, §3.2.2.4.14, §3.2.2.4.16,
/// §3.2.2.4.22; RFC 8555 §8.4).
pub mod prefix {
    /// `acme-dns-01` and `dns-account-01`.
    pub const ACME_CHALLENGE: &str = "_acme-challenge";
    /// `dns-persistent`.
    pub const VALIDATION_PERSIST: &str = "_validation-persist";
    /// `contact-email-txt`.
    pub const VALIDATION_CONTACT_EMAIL: &str = "_validation-contactemail";
    /// `contact-phone-txt`.
    pub const VALIDATION_CONTACT_PHONE: &str = "_validation-contactphone";
}

impl Serialize for DcvCheckParameters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("validation_method", self.method().as_str())?;
        match self {
            Self::WebsiteChange(p) => {
                map.serialize_entry("require_exact_case", &p.require_exact_case)?;
                map.serialize_entry("challenge_value", &p.challenge_value)?;
                map.serialize_entry("http_token_path", &p.http_token_path)?;
                map.serialize_entry("url_scheme", &p.url_scheme)?;
                map.serialize_entry("http_headers", &p.http_headers)?;
                map.serialize_entry("match_regex", &p.match_regex)?;
            }
            Self::AcmeHttp01(p) => {
                map.serialize_entry("require_exact_case", &true)?;
                map.serialize_entry("token", &p.token)?;
                map.serialize_entry("key_authorization", &p.key_authorization)?;
                map.serialize_entry("http_headers", &p.http_headers)?;
            }
            Self::AcmeDns01(p) => {
                map.serialize_entry("require_exact_case", &true)?;
                map.serialize_entry("key_authorization_hash", &p.key_authorization_hash)?;
                map.serialize_entry("dns_record_type", "TXT")?;
                map.serialize_entry("dns_name_prefix", prefix::ACME_CHALLENGE)?;
            }
            Self::AcmeTlsAlpn01(p) => {
                map.serialize_entry("require_exact_case", &false)?;
                map.serialize_entry("key_authorization_hash", &p.key_authorization_hash)?;
            }
            Self::DnsChange(p) => {
                map.serialize_entry("require_exact_case", &p.require_exact_case)?;
                map.serialize_entry("challenge_value", &p.challenge_value)?;
                map.serialize_entry("dns_name_prefix", &p.dns_name_prefix)?;
                map.serialize_entry("dns_record_type", &p.dns_record_type)?;
                map.serialize_entry("require_exact_match", &p.require_exact_match)?;
            }
            Self::DnsPersistent(p) => {
                map.serialize_entry("require_exact_case", &false)?;
                map.serialize_entry("dns_record_type", "TXT")?;
                map.serialize_entry("dns_name_prefix", prefix::VALIDATION_PERSIST)?;
                map.serialize_entry("issuer_domain_names", &p.issuer_domain_names)?;
                map.serialize_entry("expected_account_uri", &p.expected_account_uri)?;
            }
            Self::ContactEmailTxt(p) => {
                serialize_challenge(&mut map, p, Some(prefix::VALIDATION_CONTACT_EMAIL), "TXT")?
            }
            Self::ContactPhoneTxt(p) => {
                serialize_challenge(&mut map, p, Some(prefix::VALIDATION_CONTACT_PHONE), "TXT")?
            }
            Self::ContactEmailCaa(p) | Self::ContactPhoneCaa(p) => {
                serialize_challenge(&mut map, p, None, "CAA")?
            }
            Self::ReverseAddressLookup(p) => serialize_challenge(&mut map, p, None, "PTR")?,
            Self::IpAddress(p) => {
                map.serialize_entry("require_exact_case", &false)?;
                map.serialize_entry("challenge_value", &p.challenge_value)?;
                map.serialize_entry("dns_name_prefix", &None::<String>)?;
                map.serialize_entry("dns_record_type", &p.dns_record_type)?;
            }
            Self::DnsAccount01(p) => {
                map.serialize_entry("require_exact_case", &true)?;
                map.serialize_entry("key_authorization_hash", &p.key_authorization_hash)?;
                map.serialize_entry("account_uri", &p.account_uri)?;
                map.serialize_entry("dns_record_type", "TXT")?;
                map.serialize_entry("dns_name_prefix", prefix::ACME_CHALLENGE)?;
            }
        }
        map.end()
    }
}

fn serialize_challenge<M: SerializeMap>(
    map: &mut M,
    parameters: &ChallengeValueParameters,
    name_prefix: Option<&str>,
    record_type: &str,
) -> Result<(), M::Error> {
    map.serialize_entry("require_exact_case", &false)?;
    map.serialize_entry("challenge_value", &parameters.challenge_value)?;
    map.serialize_entry("dns_name_prefix", &name_prefix)?;
    map.serialize_entry("dns_record_type", record_type)
}

fn default_true() -> bool {
    true
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
