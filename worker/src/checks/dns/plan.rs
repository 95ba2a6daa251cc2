//! The query and the expected records of each DNS-based method. Pure, no I/O.
//!
//! [`Plan::for_request`] applies the target rules of each method and builds the query name:
//!
//! - Every method but `reverse-address-lookup` validates a domain name and rejects an IP
//!   address target. `ip-address` too: it confirms control of a *domain* through the address
//!   its A or AAAA records point to (BR §3.2.2.4.8), so the target is the domain.
//! - `reverse-address-lookup` validates an IP address (BR §3.2.2.5.3) and rejects a domain.
//! - A wildcard target `*.<name>` is validated through `<name>`: BR §3.2.2.4 step 4 removes
//!   the `*.` to get the Authorization Domain Name, and RFC 8555 §8.4 ("dns-01") and the
//!   dns-account-01 draft do the same. `dns-persistent` additionally requires the record to
//!   carry `policy=wildcard`.
//! - `dns-change` takes an optional `dns_name_prefix`, which BR §3.2.2.4.7 limits to one Domain
//!   Label "that begins with an underscore character"; any other prefix is rejected.

use std::net::IpAddr;

use hickory_resolver::proto::rr::{Name, RecordType};
use mpic_shared::dcv::{
    DcvCheckParameters, DnsChangeParameters, DnsChangeRecordType, DnsPersistentParameters,
    IpRecordType, MethodFamily, ValidationMethod, prefix,
};
use mpic_shared::target::{DomainTarget, Target, TargetError};

use super::account_label::account_label;
use super::matching::{CaseRule, ChangeRule, MatchExtent};
use super::persistent::{PersistCriteria, PersistScope, normalize_issuer_domain_name};

/// The lookup and the expectation of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The DNS lookup to run.
    pub lookup: LookupPlan,
    /// The records the answer must contain.
    pub expectation: Expectation,
}

/// A DNS lookup to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupPlan {
    /// One query for one name and record type; the resolver follows CNAMEs.
    Record {
        /// The fully-qualified name to query.
        name: Name,
        /// The record type to query.
        record_type: RecordType,
    },
    /// The relevant CAA RRset of `domain` (RFC 8659 §3), found by climbing the tree.
    RelevantCaa {
        /// The domain whose relevant RRset is wanted, without trailing dot.
        domain: String,
    },
}

/// The records the answer must contain for the check to pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// A TXT record equal to the key authorization digest (`acme-dns-01`, `dns-account-01`).
    KeyAuthorization(String),
    /// A TXT record that matches `challenge_value` under `rule` (`dns-change` TXT).
    ChangeText {
        /// The challenge value.
        expected: String,
        /// The comparison rule.
        rule: ChangeRule,
    },
    /// A CNAME target that matches `challenge_value` (`dns-change` CNAME).
    ChangeName {
        /// The challenge value.
        expected: String,
        /// Whole name or substring.
        extent: MatchExtent,
    },
    /// A CAA property value that matches `challenge_value` without case (`dns-change` CAA).
    ChangeCaaValue {
        /// The challenge value.
        expected: String,
        /// Whole value or substring.
        extent: MatchExtent,
    },
    /// A TXT record or CAA `contactemail` property naming this address.
    ContactEmail(String),
    /// A TXT record or CAA `contactphone` property holding this number.
    ContactPhone(String),
    /// A persistent TXT record that authorizes this CA and account (`dns-persistent`).
    Persistent(PersistCriteria),
    /// An A or AAAA record holding this address (`ip-address`).
    Address(IpAddr),
    /// A PTR record naming this domain (`reverse-address-lookup`).
    ReverseName(String),
}

/// The reason a request cannot be run as a DNS-based check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The target is neither a domain name nor an IP address.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The method validates a domain name but the target is an IP address.
    #[error("{method} validates a domain name, but the target {address} is an IP address")]
    IpTarget {
        /// The validation method.
        method: ValidationMethod,
        /// The target.
        address: IpAddr,
    },
    /// The method validates an IP address but the target is a domain name.
    #[error("{method} validates an IP address, but the target {name:?} is a domain name")]
    DomainTarget {
        /// The validation method.
        method: ValidationMethod,
        /// The target.
        name: String,
    },
    /// The method is not DNS-based.
    #[error("{method} is not a DNS-based validation method")]
    NotDnsMethod {
        /// The validation method.
        method: ValidationMethod,
    },
    /// `dns_name_prefix` is not one label beginning with an underscore.
    #[error(
        "dns_name_prefix {prefix:?} must be one DNS label that begins with \"_\" \
         (BR §3.2.2.4.7), made of letters, digits, \"-\" and \"_\""
    )]
    NamePrefix {
        /// The prefix as received.
        prefix: String,
    },
    /// The query name is not a valid DNS name (too long, or an invalid label).
    #[error("the query name {name:?} is not a valid DNS name")]
    QueryName {
        /// The name that was built.
        name: String,
    },
    /// A required parameter is empty.
    #[error("{field} must not be empty")]
    EmptyParameter {
        /// The parameter's name.
        field: &'static str,
    },
    /// `challenge_value` of `ip-address` is not an IP address.
    #[error("challenge_value {value:?} is not an IP address")]
    ChallengeAddress {
        /// The value as received.
        value: String,
    },
    /// `challenge_value` of `ip-address` is of the other address family than the record type.
    #[error("challenge_value {value} cannot appear in {record_type} records")]
    AddressFamily {
        /// The address.
        value: IpAddr,
        /// The record type requested.
        record_type: RecordType,
    },
}

impl Plan {
    /// Builds the plan for `target` (`domain_or_ip_target` as received) and `parameters`.
    pub fn for_request(
        target: &str,
        parameters: &DcvCheckParameters,
    ) -> Result<Self, InvalidRequest> {
        let method = parameters.method();
        if method.family() != MethodFamily::Dns {
            return Err(InvalidRequest::NotDnsMethod { method });
        }
        match (Target::parse(target)?, parameters) {
            (Target::Ip(address), DcvCheckParameters::ReverseAddressLookup(p)) => Ok(Plan {
                lookup: LookupPlan::Record {
                    name: Name::from(address),
                    record_type: RecordType::PTR,
                },
                expectation: Expectation::ReverseName(p.challenge_value.clone()),
            }),
            (Target::Domain(domain), DcvCheckParameters::ReverseAddressLookup(_)) => {
                Err(InvalidRequest::DomainTarget {
                    method,
                    name: domain.name,
                })
            }
            (Target::Ip(address), _) => Err(InvalidRequest::IpTarget { method, address }),
            (Target::Domain(domain), parameters) => domain_plan(&domain, parameters),
        }
    }

    fn txt(name: Name, expectation: Expectation) -> Self {
        Plan {
            lookup: LookupPlan::Record {
                name,
                record_type: RecordType::TXT,
            },
            expectation,
        }
    }
}

/// Builds the plan of a method that validates the domain name `domain`.
fn domain_plan(
    domain: &DomainTarget,
    parameters: &DcvCheckParameters,
) -> Result<Plan, InvalidRequest> {
    let name = &domain.name;
    match parameters {
        DcvCheckParameters::AcmeDns01(p) => Ok(Plan::txt(
            query_name(&[prefix::ACME_CHALLENGE], name)?,
            Expectation::KeyAuthorization(p.key_authorization_hash.clone()),
        )),
        DcvCheckParameters::DnsAccount01(p) => {
            if p.account_uri.is_empty() {
                return Err(InvalidRequest::EmptyParameter {
                    field: "account_uri",
                });
            }
            let label = format!("_{}", account_label(&p.account_uri));
            Ok(Plan::txt(
                query_name(&[&label, prefix::ACME_CHALLENGE], name)?,
                Expectation::KeyAuthorization(p.key_authorization_hash.clone()),
            ))
        }
        DcvCheckParameters::DnsChange(p) => {
            let labels: Vec<&str> = change_prefix(p.dns_name_prefix.as_deref())?
                .into_iter()
                .collect();
            Ok(dns_change_plan(query_name(&labels, name)?, p))
        }
        DcvCheckParameters::DnsPersistent(p) => Ok(Plan::txt(
            query_name(&[prefix::VALIDATION_PERSIST], name)?,
            Expectation::Persistent(persist_criteria(domain, p)?),
        )),
        DcvCheckParameters::ContactEmailTxt(p) => Ok(Plan::txt(
            query_name(&[prefix::VALIDATION_CONTACT_EMAIL], name)?,
            Expectation::ContactEmail(p.challenge_value.clone()),
        )),
        DcvCheckParameters::ContactPhoneTxt(p) => Ok(Plan::txt(
            query_name(&[prefix::VALIDATION_CONTACT_PHONE], name)?,
            Expectation::ContactPhone(p.challenge_value.clone()),
        )),
        DcvCheckParameters::ContactEmailCaa(p) => Ok(Plan {
            lookup: LookupPlan::RelevantCaa {
                domain: name.clone(),
            },
            expectation: Expectation::ContactEmail(p.challenge_value.clone()),
        }),
        DcvCheckParameters::ContactPhoneCaa(p) => Ok(Plan {
            lookup: LookupPlan::RelevantCaa {
                domain: name.clone(),
            },
            expectation: Expectation::ContactPhone(p.challenge_value.clone()),
        }),
        DcvCheckParameters::IpAddress(p) => {
            let (address, record_type) = expected_address(&p.challenge_value, p.dns_record_type)?;
            Ok(Plan {
                lookup: LookupPlan::Record {
                    name: query_name(&[], name)?,
                    record_type,
                },
                expectation: Expectation::Address(address),
            })
        }
        DcvCheckParameters::ReverseAddressLookup(_)
        | DcvCheckParameters::WebsiteChange(_)
        | DcvCheckParameters::AcmeHttp01(_)
        | DcvCheckParameters::AcmeTlsAlpn01(_) => Err(InvalidRequest::NotDnsMethod {
            method: parameters.method(),
        }),
    }
}

/// Builds the fully-qualified name `<labels>.<domain>.`.
fn query_name(labels: &[&str], domain: &str) -> Result<Name, InvalidRequest> {
    let mut text = String::new();
    for label in labels {
        text.push_str(label);
        text.push('.');
    }
    text.push_str(domain);
    text.push('.');
    // hickory rejects labels over 63 octets and names over 255 octets (RFC 1035 §2.3.4).
    Name::from_ascii(&text).map_err(|_| InvalidRequest::QueryName { name: text })
}

/// Checks `dns_name_prefix`: absent or empty means none; otherwise one underscore label.
fn change_prefix(prefix: Option<&str>) -> Result<Option<&str>, InvalidRequest> {
    let Some(prefix) = prefix.filter(|prefix| !prefix.is_empty()) else {
        return Ok(None);
    };
    let valid = prefix.starts_with('_')
        && prefix.len() <= MAX_LABEL_OCTETS
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(Some(prefix))
    } else {
        Err(InvalidRequest::NamePrefix {
            prefix: prefix.to_owned(),
        })
    }
}

fn dns_change_plan(name: Name, parameters: &DnsChangeParameters) -> Plan {
    let extent = if parameters.require_exact_match {
        MatchExtent::Whole
    } else {
        MatchExtent::Substring
    };
    let expected = parameters.challenge_value.clone();
    let (record_type, expectation) = match parameters.dns_record_type {
        DnsChangeRecordType::Txt => {
            let case = if parameters.require_exact_case {
                CaseRule::Sensitive
            } else {
                CaseRule::Insensitive
            };
            let rule = ChangeRule { extent, case };
            (RecordType::TXT, Expectation::ChangeText { expected, rule })
        }
        DnsChangeRecordType::Cname => (
            RecordType::CNAME,
            Expectation::ChangeName { expected, extent },
        ),
        DnsChangeRecordType::Caa => (
            RecordType::CAA,
            Expectation::ChangeCaaValue { expected, extent },
        ),
    };
    Plan {
        lookup: LookupPlan::Record { name, record_type },
        expectation,
    }
}

fn persist_criteria(
    domain: &DomainTarget,
    parameters: &DnsPersistentParameters,
) -> Result<PersistCriteria, InvalidRequest> {
    let issuer_domain_names: Vec<String> = parameters
        .issuer_domain_names
        .iter()
        .map(|name| normalize_issuer_domain_name(name))
        .filter(|name| !name.is_empty())
        .collect();
    if issuer_domain_names.is_empty() {
        return Err(InvalidRequest::EmptyParameter {
            field: "issuer_domain_names",
        });
    }
    if parameters.expected_account_uri.is_empty() {
        return Err(InvalidRequest::EmptyParameter {
            field: "expected_account_uri",
        });
    }
    let scope = if domain.wildcard {
        PersistScope::Wildcard
    } else {
        PersistScope::ExactName
    };
    Ok(PersistCriteria {
        issuer_domain_names,
        account_uri: parameters.expected_account_uri.clone(),
        scope,
    })
}

fn expected_address(
    value: &str,
    record_type: IpRecordType,
) -> Result<(IpAddr, RecordType), InvalidRequest> {
    let address: IpAddr = value
        .parse()
        .map_err(|_| InvalidRequest::ChallengeAddress {
            value: value.to_owned(),
        })?;
    let record_type = match record_type {
        IpRecordType::A => RecordType::A,
        IpRecordType::Aaaa => RecordType::AAAA,
    };
    let family_fits = matches!(
        (address, record_type),
        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
    );
    if !family_fits {
        return Err(InvalidRequest::AddressFamily {
            value: address,
            record_type,
        });
    }
    Ok((address, record_type))
}

/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_OCTETS: usize = 63;

#[cfg(test)]
mod tests {
    use mpic_shared::dcv::{
        ChallengeValueParameters, DnsAccount01Parameters, IpAddressParameters,
        KeyAuthorizationHashParameters,
    };

    use super::*;

    fn hash(value: &str) -> KeyAuthorizationHashParameters {
        KeyAuthorizationHashParameters {
            key_authorization_hash: value.to_owned(),
        }
    }

    fn challenge(value: &str) -> ChallengeValueParameters {
        ChallengeValueParameters {
            challenge_value: value.to_owned(),
        }
    }

    fn change(prefix: Option<&str>, record_type: DnsChangeRecordType) -> DcvCheckParameters {
        DcvCheckParameters::DnsChange(DnsChangeParameters {
            challenge_value: "token".to_owned(),
            dns_record_type: record_type,
            dns_name_prefix: prefix.map(str::to_owned),
            require_exact_match: false,
            require_exact_case: true,
        })
    }

    fn persistent() -> DcvCheckParameters {
        DcvCheckParameters::DnsPersistent(DnsPersistentParameters {
            issuer_domain_names: vec!["CA.example.".to_owned()],
            expected_account_uri: "https://ca.example/acct/1".to_owned(),
        })
    }

    fn address(value: &str, record_type: IpRecordType) -> DcvCheckParameters {
        DcvCheckParameters::IpAddress(IpAddressParameters {
            challenge_value: value.to_owned(),
            dns_record_type: record_type,
        })
    }

    fn record(plan: &Plan) -> (String, RecordType) {
        match &plan.lookup {
            LookupPlan::Record { name, record_type } => (name.to_ascii(), *record_type),
            other => panic!("expected a record lookup, got {other:?}"),
        }
    }

    #[test]
    fn query_names_per_method() {
        let cases = [
            (
                "acme-dns-01",
                "www.example.com",
                DcvCheckParameters::AcmeDns01(hash("h")),
                "_acme-challenge.www.example.com.",
                RecordType::TXT,
            ),
            (
                "acme-dns-01 wildcard drops \"*.\"",
                "*.example.com",
                DcvCheckParameters::AcmeDns01(hash("h")),
                "_acme-challenge.example.com.",
                RecordType::TXT,
            ),
            (
                "acme-dns-01 IDN as A-labels",
                "Bücher.example",
                DcvCheckParameters::AcmeDns01(hash("h")),
                "_acme-challenge.xn--bcher-kva.example.",
                RecordType::TXT,
            ),
            (
                "dns-account-01 label from the draft example",
                "example.org",
                DcvCheckParameters::DnsAccount01(DnsAccount01Parameters {
                    key_authorization_hash: "h".to_owned(),
                    account_uri: "https://example.com/acme/acct/ExampleAccount".to_owned(),
                }),
                "_ujmmovf2vn55tgye._acme-challenge.example.org.",
                RecordType::TXT,
            ),
            (
                "dns-change without prefix",
                "example.com",
                change(None, DnsChangeRecordType::Txt),
                "example.com.",
                RecordType::TXT,
            ),
            (
                "dns-change empty prefix",
                "example.com",
                change(Some(""), DnsChangeRecordType::Cname),
                "example.com.",
                RecordType::CNAME,
            ),
            (
                "dns-change underscore prefix",
                "example.com",
                change(Some("_dcv"), DnsChangeRecordType::Caa),
                "_dcv.example.com.",
                RecordType::CAA,
            ),
            (
                "dns-persistent",
                "example.com",
                persistent(),
                "_validation-persist.example.com.",
                RecordType::TXT,
            ),
            (
                "contact-email-txt",
                "example.com",
                DcvCheckParameters::ContactEmailTxt(challenge("a@example.com")),
                "_validation-contactemail.example.com.",
                RecordType::TXT,
            ),
            (
                "contact-phone-txt",
                "example.com",
                DcvCheckParameters::ContactPhoneTxt(challenge("+1 555")),
                "_validation-contactphone.example.com.",
                RecordType::TXT,
            ),
            (
                "ip-address A",
                "example.com",
                address("192.0.2.1", IpRecordType::A),
                "example.com.",
                RecordType::A,
            ),
            (
                "ip-address AAAA",
                "example.com",
                address("2001:db8::1", IpRecordType::Aaaa),
                "example.com.",
                RecordType::AAAA,
            ),
            (
                "reverse IPv4",
                "192.0.2.1",
                DcvCheckParameters::ReverseAddressLookup(challenge("h.example")),
                "1.2.0.192.in-addr.arpa.",
                RecordType::PTR,
            ),
            (
                "reverse IPv6",
                "2001:db8::1",
                DcvCheckParameters::ReverseAddressLookup(challenge("h.example")),
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                RecordType::PTR,
            ),
            (
                "reverse bracketed IPv6",
                "[2001:db8::1]",
                DcvCheckParameters::ReverseAddressLookup(challenge("h.example")),
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                RecordType::PTR,
            ),
        ];
        for (name, target, parameters, expected_name, expected_type) in cases {
            let plan = Plan::for_request(target, &parameters)
                .unwrap_or_else(|error| panic!("case {name:?}: {error}"));
            assert_eq!(
                record(&plan),
                (expected_name.to_owned(), expected_type),
                "case {name:?}"
            );
        }
    }

    #[test]
    fn contact_caa_climbs_from_the_base_name() {
        let cases = [
            ("plain name", "sub.example.com", "sub.example.com"),
            (
                "wildcard drops \"*.\"",
                "*.sub.example.com",
                "sub.example.com",
            ),
        ];
        for (name, target, expected) in cases {
            let plan = Plan::for_request(
                target,
                &DcvCheckParameters::ContactEmailCaa(challenge("a@b.c")),
            )
            .unwrap();
            assert_eq!(
                plan.lookup,
                LookupPlan::RelevantCaa {
                    domain: expected.to_owned()
                },
                "case {name:?}"
            );
        }
    }

    #[test]
    fn persistent_scope_follows_the_wildcard() {
        let cases = [
            ("exact name", "example.com", PersistScope::ExactName),
            ("wildcard", "*.example.com", PersistScope::Wildcard),
        ];
        for (name, target, expected) in cases {
            let plan = Plan::for_request(target, &persistent()).unwrap();
            let Expectation::Persistent(criteria) = plan.expectation else {
                panic!("case {name:?}: not a persistent expectation");
            };
            assert_eq!(criteria.scope, expected, "case {name:?}: scope");
            assert_eq!(
                criteria.issuer_domain_names,
                ["ca.example"],
                "case {name:?}: issuer names normalized"
            );
        }
    }

    #[test]
    fn dns_change_rules() {
        let parameters = |record_type, exact_match, exact_case| {
            DcvCheckParameters::DnsChange(DnsChangeParameters {
                challenge_value: "token".to_owned(),
                dns_record_type: record_type,
                dns_name_prefix: None,
                require_exact_match: exact_match,
                require_exact_case: exact_case,
            })
        };
        let text = |extent, case| Expectation::ChangeText {
            expected: "token".to_owned(),
            rule: ChangeRule { extent, case },
        };
        let cases = [
            (
                "TXT defaults",
                parameters(DnsChangeRecordType::Txt, false, true),
                text(MatchExtent::Substring, CaseRule::Sensitive),
            ),
            (
                "TXT exact, any case",
                parameters(DnsChangeRecordType::Txt, true, false),
                text(MatchExtent::Whole, CaseRule::Insensitive),
            ),
            (
                "CNAME ignores require_exact_case",
                parameters(DnsChangeRecordType::Cname, true, true),
                Expectation::ChangeName {
                    expected: "token".to_owned(),
                    extent: MatchExtent::Whole,
                },
            ),
            (
                "CAA ignores require_exact_case",
                parameters(DnsChangeRecordType::Caa, false, true),
                Expectation::ChangeCaaValue {
                    expected: "token".to_owned(),
                    extent: MatchExtent::Substring,
                },
            ),
        ];
        for (name, parameters, expected) in cases {
            let plan = Plan::for_request("example.com", &parameters).unwrap();
            assert_eq!(plan.expectation, expected, "case {name:?}");
        }
    }

    #[test]
    fn invalid_requests_are_rejected() {
        let long_label = format!("_{}", "a".repeat(63));
        let cases = [
            (
                "acme-dns-01 IP target",
                "192.0.2.1",
                DcvCheckParameters::AcmeDns01(hash("h")),
            ),
            (
                "ip-address IP target",
                "192.0.2.1",
                address("192.0.2.1", IpRecordType::A),
            ),
            (
                "contact-email-caa IP target",
                "2001:db8::1",
                DcvCheckParameters::ContactEmailCaa(challenge("a@b.c")),
            ),
            (
                "reverse lookup domain target",
                "example.com",
                DcvCheckParameters::ReverseAddressLookup(challenge("h.example")),
            ),
            (
                "invalid target",
                "exa mple.com",
                DcvCheckParameters::AcmeDns01(hash("h")),
            ),
            (
                "prefix without underscore",
                "example.com",
                change(Some("dcv"), DnsChangeRecordType::Txt),
            ),
            (
                "prefix of two labels",
                "example.com",
                change(Some("_dcv.sub"), DnsChangeRecordType::Txt),
            ),
            (
                "prefix with trailing dot",
                "example.com",
                change(Some("_dcv."), DnsChangeRecordType::Txt),
            ),
            (
                "prefix over 63 octets",
                "example.com",
                change(Some(long_label.as_str()), DnsChangeRecordType::Txt),
            ),
            (
                "prefix with space",
                "example.com",
                change(Some("_d cv"), DnsChangeRecordType::Txt),
            ),
            (
                "dns-account-01 without account URI",
                "example.com",
                DcvCheckParameters::DnsAccount01(DnsAccount01Parameters {
                    key_authorization_hash: "h".to_owned(),
                    account_uri: String::new(),
                }),
            ),
            (
                "dns-persistent without issuer names",
                "example.com",
                DcvCheckParameters::DnsPersistent(DnsPersistentParameters {
                    issuer_domain_names: vec![String::new()],
                    expected_account_uri: "https://ca.example/acct/1".to_owned(),
                }),
            ),
            (
                "dns-persistent without account URI",
                "example.com",
                DcvCheckParameters::DnsPersistent(DnsPersistentParameters {
                    issuer_domain_names: vec!["ca.example".to_owned()],
                    expected_account_uri: String::new(),
                }),
            ),
            (
                "ip-address value is not an address",
                "example.com",
                address("example.net", IpRecordType::A),
            ),
            (
                "ip-address IPv6 value with A",
                "example.com",
                address("2001:db8::1", IpRecordType::A),
            ),
            (
                "ip-address IPv4 value with AAAA",
                "example.com",
                address("192.0.2.1", IpRecordType::Aaaa),
            ),
            (
                "HTTP method",
                "example.com",
                DcvCheckParameters::AcmeTlsAlpn01(hash("00")),
            ),
        ];
        for (name, target, parameters) in cases {
            let result = Plan::for_request(target, &parameters);
            assert!(result.is_err(), "case {name:?}: got {result:?}");
        }
    }

    #[test]
    fn query_name_length_is_bounded() {
        // 4 labels of 63 octets and the prefix make the name longer than 255 octets.
        let long_domain = [
            "a".repeat(60),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(60),
        ]
        .join(".");
        let result = query_name(&[prefix::VALIDATION_CONTACT_EMAIL], &long_domain);
        assert!(
            matches!(result, Err(InvalidRequest::QueryName { .. })),
            "got {result:?}"
        );
    }
}
