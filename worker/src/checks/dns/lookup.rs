//! Sends one DNS query and keeps the evidence of the answer.
//!
//! hickory's `Resolver::lookup` returns the whole response message, so the RCODE and the AD
//! flag come from the real answer header. The worker's resolver keeps the CNAME records of a
//! chain in the answer (`preserve_intermediates`), so the chain is read from the answer too:
//! starting at the queried name, each CNAME owned by the current name leads to the next, and
//! only records of the queried type owned by the end of the chain count.
//!
//! When the chain crosses zones that one server cannot answer together, hickory asks again
//! for the next name and returns the header of the last response. `response_code` and
//! `ad_flag` then describe that last response only.
//!
//! NXDOMAIN and an empty answer (NOERROR, no data) are statements about the name, so they
//! complete the check as failed ([`LookupError::completes_check`]). Every other failure
//! (SERVFAIL, REFUSED, a timeout, an unreachable server, an answer that cannot be used) leaves
//! it not completed.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, PTR};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::evaluate::RecordValue;

/// The evidence of a successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The queried name, without trailing dot.
    pub queried_name: String,
    /// The RCODE of the answer.
    pub response_code: u16,
    /// The AD (authenticated data) bit of the answer header.
    pub authentic_data: bool,
    /// The CNAME targets followed from the queried name, in order, with trailing dots.
    pub cname_chain: Vec<String>,
    /// The records of the queried type owned by the end of the chain, in answer order.
    pub records: Vec<RecordValue>,
}

/// The reason a lookup gave no usable records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The name does not exist.
    #[error("{name} does not exist (NXDOMAIN)")]
    NxDomain {
        /// The name that does not exist, without trailing dot (the end of a CNAME chain when
        /// the chain leads there).
        name: String,
    },
    /// The name exists but has no records of the type.
    #[error("{name} has no {record_type} records (NOERROR, empty answer)")]
    NoData {
        /// The name queried last, without trailing dot.
        name: String,
        /// The record type queried.
        record_type: RecordType,
    },
    /// The resolver answered with an error RCODE.
    #[error("the resolver answered {code} for {name} {record_type}")]
    ResponseCode {
        /// The queried name, without trailing dot.
        name: String,
        /// The record type queried.
        record_type: RecordType,
        /// The RCODE mnemonic, e.g. `SERVFAIL`.
        code: String,
    },
    /// No answer came within the query timeout, retries included.
    #[error("no answer for {name} {record_type} within the DNS query timeout, retries included")]
    TimedOut {
        /// The queried name, without trailing dot.
        name: String,
        /// The record type queried.
        record_type: RecordType,
    },
    /// The check's resolution lifetime ran out.
    #[error(
        "the DNS lookup of {name} did not finish within the resolution lifetime of {lifetime:?}"
    )]
    LifetimeExceeded {
        /// The name being looked up, without trailing dot.
        name: String,
        /// The configured lifetime.
        lifetime: Duration,
    },
    /// The server sent a referral, so it is not acting as a recursive resolver.
    #[error(
        "the name server sent a referral for {name} instead of an answer; \
         it must be a recursive resolver"
    )]
    Referral {
        /// The queried name, without trailing dot.
        name: String,
    },
    /// The answer holds no record of the queried type owned by the end of the CNAME chain.
    #[error(
        "the answer for {name} {record_type} holds no {record_type} records owned by the name \
         or the end of its CNAME chain"
    )]
    UnusableAnswer {
        /// The queried name, without trailing dot.
        name: String,
        /// The record type queried.
        record_type: RecordType,
    },
    /// Any other failure: the server could not be reached, the answer could not be decoded.
    #[error("the DNS lookup of {name} {record_type} failed: {reason}")]
    Failed {
        /// The queried name, without trailing dot.
        name: String,
        /// The record type queried.
        record_type: RecordType,
        /// The resolver's error message.
        reason: String,
    },
}

impl LookupError {
    /// Returns true when the failure is a statement about the name (NXDOMAIN, no data), so
    /// the check completes as failed. Returns false when the check could not decide.
    pub fn completes_check(&self) -> bool {
        matches!(self, Self::NxDomain { .. } | Self::NoData { .. })
    }
}

/// Queries `name` for `record_type` and collects the evidence.
pub async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    record_type: RecordType,
) -> Result<DnsAnswer, LookupError> {
    match resolver.lookup(name.clone(), record_type).await {
        Ok(lookup) => answer_from_message(name, record_type, lookup.message()),
        Err(error) => Err(classify(name, record_type, error)),
    }
}

/// Reads the evidence from a response message.
fn answer_from_message(
    query: &Name,
    record_type: RecordType,
    message: &Message,
) -> Result<DnsAnswer, LookupError> {
    // A CNAME query requests the alias record itself, so there is no chain to follow.
    let (owner, chain) = if record_type == RecordType::CNAME {
        (query.clone(), Vec::new())
    } else {
        follow_cname_chain(query, &message.answers)
    };
    let records: Vec<RecordValue> = message
        .answers
        .iter()
        .filter(|record| record.dns_class == DNSClass::IN && record.name == owner)
        .filter_map(|record| record_value(record_type, &record.data))
        .collect();
    if records.is_empty() {
        return Err(LookupError::UnusableAnswer {
            name: without_root(query),
            record_type,
        });
    }
    Ok(DnsAnswer {
        queried_name: without_root(query),
        response_code: u16::from(message.metadata.response_code),
        authentic_data: message.metadata.authentic_data,
        cname_chain: chain.iter().map(Name::to_ascii).collect(),
        records,
    })
}

/// Follows the CNAME records of `answers` from `query`; returns the end of the chain and the
/// targets passed through.
fn follow_cname_chain(query: &Name, answers: &[Record]) -> (Name, Vec<Name>) {
    let mut owner = query.clone();
    let mut chain = Vec::new();
    // Each hop uses a distinct CNAME record, so a chain has at most `answers.len()` hops; the
    // bound also ends a CNAME loop.
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(CNAME(target)) if record.name == owner => Some(target.clone()),
            _ => None,
        });
        let Some(target) = next else {
            break;
        };
        chain.push(target.clone());
        owner = target;
    }
    (owner, chain)
}

/// Converts the RDATA of a record of the queried type; other types give `None`.
fn record_value(record_type: RecordType, data: &RData) -> Option<RecordValue> {
    match (record_type, data) {
        (RecordType::TXT, RData::TXT(txt)) => Some(RecordValue::Text(
            txt.txt_data
                .iter()
                .flat_map(|part| part.iter())
                .copied()
                .collect(),
        )),
        (RecordType::CNAME, RData::CNAME(CNAME(name)))
        | (RecordType::PTR, RData::PTR(PTR(name))) => Some(RecordValue::Name(name.to_ascii())),
        (RecordType::CAA, RData::CAA(caa)) => Some(RecordValue::Caa {
            tag: caa.tag.clone(),
            value: caa.value.clone(),
        }),
        (RecordType::A, RData::A(A(address))) => Some(RecordValue::Address((*address).into())),
        (RecordType::AAAA, RData::AAAA(AAAA(address))) => {
            Some(RecordValue::Address((*address).into()))
        }
        _ => None,
    }
}

fn classify(name: &Name, record_type: RecordType, error: NetError) -> LookupError {
    let queried = without_root(name);
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            classify_no_records(queried, record_type, &no_records)
        }
        NetError::Dns(DnsError::ResponseCode(code)) => LookupError::ResponseCode {
            name: queried,
            record_type,
            code: response_code_mnemonic(code),
        },
        NetError::Timeout => LookupError::TimedOut {
            name: queried,
            record_type,
        },
        other => LookupError::Failed {
            name: queried,
            record_type,
            reason: other.to_string(),
        },
    }
}

fn classify_no_records(
    queried: String,
    record_type: RecordType,
    no_records: &NoRecords,
) -> LookupError {
    // hickory reports the name of the last query, the end of the CNAME chain it followed.
    let name = without_root(no_records.query.name());
    match no_records.response_code {
        ResponseCode::NXDomain => LookupError::NxDomain { name },
        // NOERROR with NS records and no SOA is a referral from an authoritative server, not a
        // statement that the name has no data.
        ResponseCode::NoError if no_records.soa.is_none() && no_records.ns.is_some() => {
            LookupError::Referral { name: queried }
        }
        ResponseCode::NoError => LookupError::NoData { name, record_type },
        code => LookupError::ResponseCode {
            name: queried,
            record_type,
            code: response_code_mnemonic(code),
        },
    }
}

/// Returns the RFC 1035 / RFC 6895 mnemonic of a response code.
fn response_code_mnemonic(code: ResponseCode) -> String {
    let mnemonic = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        other => return format!("RCODE {}", u16::from(other)),
    };
    mnemonic.to_owned()
}

/// Returns the name in A-labels without the trailing dot, the form of `found_at`.
pub fn without_root(name: &Name) -> String {
    let text = name.to_ascii();
    match text.strip_suffix('.') {
        Some(relative) if !relative.is_empty() => relative.to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use hickory_resolver::proto::op::{MessageType, OpCode};
    use hickory_resolver::proto::rr::rdata::TXT;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn txt(owner: &str, parts: &[&str]) -> Record {
        let parts = parts.iter().map(|part| (*part).to_owned()).collect();
        Record::from_rdata(name(owner), 300, RData::TXT(TXT::new(parts)))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    fn message(answers: Vec<Record>, authentic_data: bool) -> Message {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        message.metadata.authentic_data = authentic_data;
        message.add_answers(answers);
        message
    }

    fn texts(answer: &DnsAnswer) -> Vec<String> {
        answer
            .records
            .iter()
            .map(|record| match record {
                RecordValue::Text(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn answers_follow_the_cname_chain() {
        let cases = [
            (
                "direct answer, strings joined",
                vec![txt("_a.example.com.", &["first ", "second"])],
                Ok((vec!["first second"], vec![])),
            ),
            (
                "name in other case",
                vec![txt("_A.Example.COM.", &["token"])],
                Ok((vec!["token"], vec![])),
            ),
            (
                "two-hop chain",
                vec![
                    cname("_a.example.com.", "b.example.net."),
                    cname("b.example.net.", "c.example.org."),
                    txt("c.example.org.", &["token"]),
                ],
                Ok((vec!["token"], vec!["b.example.net.", "c.example.org."])),
            ),
            (
                "records of an intermediate name are ignored",
                vec![
                    cname("_a.example.com.", "b.example.net."),
                    cname("b.example.net.", "c.example.org."),
                    txt("b.example.net.", &["stale"]),
                    txt("other.example.", &["other"]),
                ],
                Err(()),
            ),
            (
                "CNAME loop ends",
                vec![
                    cname("_a.example.com.", "b.example.net."),
                    cname("b.example.net.", "_a.example.com."),
                ],
                Err(()),
            ),
        ];
        for (case, answers, expected) in cases {
            let result = answer_from_message(
                &name("_a.example.com."),
                RecordType::TXT,
                &message(answers, false),
            );
            match (result, expected) {
                (Ok(answer), Ok((records, chain))) => {
                    assert_eq!(texts(&answer), records, "case {case:?}: records");
                    assert_eq!(answer.cname_chain, chain, "case {case:?}: cname_chain");
                    assert_eq!(
                        answer.queried_name, "_a.example.com",
                        "case {case:?}: queried_name"
                    );
                }
                (Err(error), Err(())) => assert!(
                    matches!(error, LookupError::UnusableAnswer { .. }),
                    "case {case:?}: got {error:?}"
                ),
                (result, expected) => {
                    panic!("case {case:?}: got {result:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn header_fields_come_from_the_message() {
        let answers = vec![txt("_a.example.com.", &["token"])];
        for authentic_data in [false, true] {
            let answer = answer_from_message(
                &name("_a.example.com."),
                RecordType::TXT,
                &message(answers.clone(), authentic_data),
            )
            .unwrap();
            assert_eq!(
                answer.authentic_data, authentic_data,
                "AD bit {authentic_data}"
            );
            assert_eq!(
                answer.response_code, 0,
                "RCODE with AD bit {authentic_data}"
            );
        }
    }

    #[test]
    fn cname_query_does_not_follow_the_chain() {
        let answers = vec![
            cname("_a.example.com.", "b.example.net."),
            cname("b.example.net.", "c.example.org."),
        ];
        let answer = answer_from_message(
            &name("_a.example.com."),
            RecordType::CNAME,
            &message(answers, false),
        )
        .unwrap();
        assert_eq!(
            answer.records,
            vec![RecordValue::Name("b.example.net.".to_owned())],
            "only the alias of the queried name"
        );
        assert!(answer.cname_chain.is_empty(), "no chain for a CNAME query");
    }

    #[test]
    fn completion_of_lookup_errors() {
        let name = || "x.example".to_owned();
        let cases = [
            (
                "NXDOMAIN completes",
                LookupError::NxDomain { name: name() },
                true,
            ),
            (
                "no data completes",
                LookupError::NoData {
                    name: name(),
                    record_type: RecordType::TXT,
                },
                true,
            ),
            (
                "SERVFAIL does not complete",
                LookupError::ResponseCode {
                    name: name(),
                    record_type: RecordType::TXT,
                    code: "SERVFAIL".to_owned(),
                },
                false,
            ),
            (
                "timeout does not complete",
                LookupError::TimedOut {
                    name: name(),
                    record_type: RecordType::TXT,
                },
                false,
            ),
            (
                "referral does not complete",
                LookupError::Referral { name: name() },
                false,
            ),
            (
                "unusable answer does not complete",
                LookupError::UnusableAnswer {
                    name: name(),
                    record_type: RecordType::TXT,
                },
                false,
            ),
        ];
        for (case, error, completes) in cases {
            assert_eq!(error.completes_check(), completes, "case {case:?}");
        }
    }

    #[test]
    fn names_lose_only_the_root_dot() {
        let cases = [
            (
                "absolute name",
                "_acme-challenge.example.com.",
                "_acme-challenge.example.com",
            ),
            (
                "IDN stays in A-labels",
                "xn--bcher-kva.example.",
                "xn--bcher-kva.example",
            ),
            ("root", ".", "."),
        ];
        for (case, input, expected) in cases {
            assert_eq!(without_root(&name(input)), expected, "case {case:?}");
        }
    }

    #[test]
    fn response_codes_are_named() {
        let cases = [
            ("SERVFAIL", ResponseCode::ServFail, "SERVFAIL"),
            ("REFUSED", ResponseCode::Refused, "REFUSED"),
            ("unassigned code", ResponseCode::Unknown(3841), "RCODE 3841"),
        ];
        for (case, code, expected) in cases {
            assert_eq!(response_code_mnemonic(code), expected, "case {case:?}");
        }
    }
}
