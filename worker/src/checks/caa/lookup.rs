//! Queries the CAA RRsets of a name and its parents.
//!
//! All names are queried in parallel, closest first, as fully-qualified names. The loop stops
//! as soon as [`select_relevant`] no longer depends on a running lookup, and at the latest at
//! the resolution lifetime: lookups still running then count as failed with
//! [`LookupError::LifetimeExceeded`].
//!
//! The resolver follows CNAMEs. The CAA records used for a name are the answer records owned by
//! the end of its CNAME chain, so the RRset found through an alias counts for the alias
//! (RFC 8659 §3).
//!
//! hickory 0.26 sends at most 8 follow-up queries for one chain and then reports an empty
//! answer, as it does for a CNAME loop. Read as "no CAA records", that would let the climb
//! continue to a parent and skip the RRset at the end of the chain. So when an empty answer
//! came without a negative proof (no SOA) or for another name than the one queried, this module
//! asks for a CNAME at the name where the resolver stopped: if there is one, the chain did not
//! end and the lookup fails.
//!
//! Known limit: hickory 0.26 rejects a CAA record whose tag is longer than 15 octets or holds
//! a character other than a letter or digit, and with it the whole DNS message. Such an answer
//! surfaces as [`LookupError::Undecodable`] (or as a timeout when it came over TCP), so the check
//! is not completed rather than evaluated. That fails closed.

use std::time::Duration;

use futures::StreamExt;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::time::Instant;

use super::property::CaaRecord;
use super::relevant::{FailurePolicy, NameLookup, Selection, select_relevant};

/// The cause of a failed CAA lookup of one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The resolver answered with an error response code such as SERVFAIL or REFUSED.
    #[error("the resolver answered {code}")]
    ResponseCode {
        /// The response code mnemonic, e.g. `SERVFAIL`.
        code: String,
    },
    /// No answer came within the query timeout, retries included.
    #[error("no answer within the DNS query timeout, retries included")]
    TimedOut,
    /// The check's resolution lifetime ran out before the lookup finished.
    #[error("the lookup did not finish within the DNS resolution lifetime of {lifetime:?}")]
    LifetimeExceeded {
        /// The configured lifetime.
        lifetime: Duration,
    },
    /// The name server sent a referral, so it is not acting as a recursive resolver.
    #[error(
        "the name server sent a referral instead of an answer; it must be a recursive resolver"
    )]
    Referral,
    /// The CNAME chain loops or is longer than the resolver follows, so its end is unknown.
    #[error("the CNAME chain does not end: {alias} is still an alias where the resolver stopped")]
    UnfinishedCnameChain {
        /// The last name the resolver queried, without trailing dot.
        alias: String,
    },
    /// The answer holds no CAA record owned by the name or by the end of its CNAME chain.
    #[error("the answer holds no CAA records for the name or the end of its CNAME chain")]
    UnusableAnswer,
    /// The name server could not be reached.
    #[error("failed to reach the name server: {reason}")]
    Network {
        /// The network layer's error message.
        reason: String,
    },
    /// The answer could not be decoded.
    #[error("the answer could not be decoded: {reason}")]
    Undecodable {
        /// The decoder's error message.
        reason: String,
    },
    /// The name is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Any other resolver error.
    #[error("{reason}")]
    Other {
        /// The resolver's error message.
        reason: String,
    },
}

/// Looks up the CAA RRsets of `names` (a name and its parents, from [`super::relevant::names_to_query`])
/// and selects the relevant one.
///
/// Returns the lookup result of each name (`None` for lookups that were no longer needed) and
/// the selection, which is never [`Selection::Pending`].
pub async fn lookup_relevant(
    resolver: &TokioResolver,
    names: &[String],
    policy: FailurePolicy,
    lifetime: Duration,
) -> (Vec<Option<NameLookup>>, Selection) {
    let deadline = Instant::now() + lifetime;
    let mut lookups: Vec<Option<NameLookup>> = vec![None; names.len()];
    // The stream yields owned names: with `&String` items the closure would be generic over
    // the item's lifetime, and rustc could not prove the check's future `Send`, so no
    // transport could spawn it.
    let mut queries = futures::stream::iter(names.iter().cloned().enumerate())
        .map(|(index, name)| async move { (index, query_caa(resolver, &name).await) })
        .buffer_unordered(MAX_PARALLEL_QUERIES);

    loop {
        match tokio::time::timeout_at(deadline, queries.next()).await {
            Ok(Some((index, lookup))) => {
                lookups[index] = Some(lookup);
                let selection = select_relevant(&lookups, policy);
                if selection != Selection::Pending {
                    return (lookups, selection);
                }
            }
            Ok(None) => break,
            Err(_elapsed) => {
                for slot in lookups.iter_mut().filter(|slot| slot.is_none()) {
                    *slot = Some(NameLookup::Failed(LookupError::LifetimeExceeded {
                        lifetime,
                    }));
                }
                break;
            }
        }
    }

    // Every slot is filled now, so the selection cannot be pending.
    let selection = select_relevant(&lookups, policy);
    (lookups, selection)
}

async fn query_caa(resolver: &TokioResolver, name: &str) -> NameLookup {
    // The trailing dot makes the name fully qualified, so no search domain is ever appended.
    let Ok(fqdn) = Name::from_ascii(format!("{name}.")) else {
        return NameLookup::Failed(LookupError::InvalidName {
            name: name.to_owned(),
        });
    };
    match resolver.lookup(fqdn.clone(), RecordType::CAA).await {
        Ok(lookup) => records_in_answer(&fqdn, lookup.answers()),
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records)))
            if may_have_stopped_in_chain(&fqdn, &no_records) =>
        {
            confirm_end_of_chain(resolver, &no_records).await
        }
        Err(error) => classify_error(error),
    }
}

/// Returns true when an empty answer may come from hickory giving up on a CNAME chain rather
/// than from the name server. That is the case when it names another query than `fqdn`,
/// because a CNAME was followed, or when it carries no SOA, which every negative answer of a
/// conforming server does (RFC 2308 §3).
fn may_have_stopped_in_chain(fqdn: &Name, no_records: &NoRecords) -> bool {
    no_records.query.name() != fqdn || no_records.soa.is_none()
}

/// Checks that the name where the resolver stopped is not an alias itself, and classifies the
/// empty answer only then.
async fn confirm_end_of_chain(resolver: &TokioResolver, no_records: &NoRecords) -> NameLookup {
    let stopped_at = no_records.query.name().clone();
    match resolver.lookup(stopped_at.clone(), RecordType::CNAME).await {
        Ok(lookup)
            if lookup.answers().iter().any(|record| {
                record.name == stopped_at && matches!(record.data, RData::CNAME(_))
            }) =>
        {
            let alias = stopped_at.to_ascii();
            NameLookup::Failed(LookupError::UnfinishedCnameChain {
                alias: alias.strip_suffix('.').unwrap_or(&alias).to_owned(),
            })
        }
        Ok(_) | Err(NetError::Dns(DnsError::NoRecordsFound(_))) => classify_no_records(no_records),
        Err(error) => classify_error(error),
    }
}

/// Collects the CAA records owned by the end of the CNAME chain that starts at `query`.
fn records_in_answer(query: &Name, answers: &[Record]) -> NameLookup {
    let owner = end_of_cname_chain(query, answers);
    let records: Vec<CaaRecord> = answers
        .iter()
        .filter(|record| record.dns_class == DNSClass::IN && record.name == owner)
        .filter_map(|record| match &record.data {
            RData::CAA(caa) => Some(CaaRecord::from_rdata(caa)),
            _ => None,
        })
        .collect();

    // hickory returns a lookup only when it found a record of the queried type somewhere in the
    // message. Finding none where it belongs is an inconsistent answer, not an empty one.
    if records.is_empty() {
        NameLookup::Failed(LookupError::UnusableAnswer)
    } else {
        NameLookup::Records(records)
    }
}

fn end_of_cname_chain(query: &Name, answers: &[Record]) -> Name {
    let mut owner = query.clone();
    // Each hop consumes a distinct CNAME record, so the chain has at most `answers.len()` hops;
    // the bound also stops a CNAME loop.
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(CNAME(target)) if record.name == owner => Some(target.clone()),
            _ => None,
        });
        match next {
            Some(target) => owner = target,
            None => break,
        }
    }
    owner
}

fn classify_error(error: NetError) -> NameLookup {
    let failure = match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            return classify_no_records(&no_records);
        }
        NetError::Dns(DnsError::ResponseCode(code)) => LookupError::ResponseCode {
            code: response_code_mnemonic(code),
        },
        NetError::Timeout => LookupError::TimedOut,
        NetError::Io(error) => LookupError::Network {
            reason: error.to_string(),
        },
        NetError::NoConnections => LookupError::Network {
            reason: "no connection to any name server".to_owned(),
        },
        NetError::Proto(error) => LookupError::Undecodable {
            reason: error.to_string(),
        },
        other => LookupError::Other {
            reason: other.to_string(),
        },
    };
    NameLookup::Failed(failure)
}

fn classify_no_records(no_records: &NoRecords) -> NameLookup {
    match no_records.response_code {
        ResponseCode::NXDomain => NameLookup::NonExistent,
        // A NOERROR answer with NS records and no SOA in the authority section is a referral
        // from an authoritative server, not a statement that the name has no CAA records.
        ResponseCode::NoError if no_records.soa.is_none() && no_records.ns.is_some() => {
            NameLookup::Failed(LookupError::Referral)
        }
        ResponseCode::NoError => NameLookup::NoRecords,
        code => NameLookup::Failed(LookupError::ResponseCode {
            code: response_code_mnemonic(code),
        }),
    }
}

/// Returns the RFC 1035 / RFC 6895 mnemonic of a response code.
fn response_code_mnemonic(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
        ResponseCode::YXRRSet => "YXRRSET".to_owned(),
        ResponseCode::NXRRSet => "NXRRSET".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        ResponseCode::NotZone => "NOTZONE".to_owned(),
        other => format!("RCODE {}", u16::from(other)),
    }
}

/// Upper bound on concurrent queries of one check. A name has at most 127 labels; 16 keeps
/// every query of a usual name in flight at once while staying under hickory's default of 32
/// active requests per connection, above which it answers "busy".
const MAX_PARALLEL_QUERIES: usize = 16;

#[cfg(test)]
mod tests {
    use hickory_resolver::proto::rr::rdata::CAA;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn caa(owner: &str, value: &str) -> Record {
        let rdata = CAA::new_issue(false, Some(name(value)), vec![]);
        Record::from_rdata(name(owner), 300, RData::CAA(rdata))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    fn issuers(lookup: &NameLookup) -> Vec<String> {
        match lookup {
            NameLookup::Records(records) => records
                .iter()
                .map(|record| String::from_utf8_lossy(record.value()).into_owned())
                .collect(),
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn records_in_answer_follows_the_cname_chain() {
        let cases = [
            (
                "direct answer",
                "a.example.",
                vec![caa("a.example.", "ca.example")],
                vec!["ca.example"],
            ),
            (
                "name differs in case",
                "A.Example.",
                vec![caa("a.example.", "ca.example")],
                vec!["ca.example"],
            ),
            (
                "two-hop chain",
                "a.example.",
                vec![
                    cname("a.example.", "b.example."),
                    cname("b.example.", "c.example."),
                    caa("c.example.", "ca.example"),
                ],
                vec!["ca.example"],
            ),
            (
                "records of an intermediate name are ignored",
                "a.example.",
                vec![
                    cname("a.example.", "b.example."),
                    cname("b.example.", "c.example."),
                    caa("b.example.", "stale.example"),
                    caa("other.example.", "other.example"),
                ],
                vec!["UnusableAnswer"],
            ),
            (
                "CNAME loop ends",
                "a.example.",
                vec![
                    cname("a.example.", "b.example."),
                    cname("b.example.", "a.example."),
                ],
                vec!["UnusableAnswer"],
            ),
        ];
        for (case, query, answers, expected) in cases {
            let lookup = records_in_answer(&name(query), &answers);
            let found = match &lookup {
                NameLookup::Failed(LookupError::UnusableAnswer) => {
                    vec!["UnusableAnswer".to_owned()]
                }
                other => issuers(other),
            };
            assert_eq!(found, expected, "case {case:?}");
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
