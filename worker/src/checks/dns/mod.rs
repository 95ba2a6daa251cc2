//! DNS-based domain control validation: every DCV method that reads DNS records.
//!
//! [`check`] runs one check from one perspective and returns the perspective reply. It does not
//! depend on NATS or HTTP serving; the request handler calls it for the methods of the
//! DNS family.
//!
//! | method | looks at | passes when | rule |
//! |---|---|---|---|
//! | `acme-dns-01` | TXT `_acme-challenge.<ADN>` | a record is byte for byte `key_authorization_hash` | RFC 8555 §8.4, BR §3.2.2.4.7 |
//! | `dns-account-01` | TXT `_<account label>._acme-challenge.<ADN>` | the same | BR §3.2.2.4.21, draft-ietf-acme-dns-account-label |
//! | `dns-change` | TXT, CNAME or CAA at `[<underscore label>.]<ADN>` | a record contains (or, with `require_exact_match`, equals) `challenge_value` | BR §3.2.2.4.7 |
//! | `dns-persistent` | TXT `_validation-persist.<ADN>` | a record names our issuer, our account and has not expired | BR §3.2.2.4.22, draft-ietf-acme-dns-persist |
//! | `contact-email-txt` / `contact-phone-txt` | TXT `_validation-contactemail` / `_validation-contactphone.<ADN>` | a record is `challenge_value` | BR §3.2.2.4.14, §3.2.2.4.16, Appendix A.2 |
//! | `contact-email-caa` / `contact-phone-caa` | the relevant CAA RRset of the ADN | a `contactemail` / `contactphone` property is `challenge_value` | BR §3.2.2.4.13, §3.2.2.4.17, Appendix A.1, RFC 8659 §3 |
//! | `ip-address` | A or AAAA of the ADN | an address equals `challenge_value` as an address | BR §3.2.2.4.8 |
//! | `reverse-address-lookup` | PTR of the target IP address | the name equals `challenge_value` | BR §3.2.2.5.3 |
//!
//! The modules, from request to reply:
//!
//! 1. `plan`: target rules and query names. Only `reverse-address-lookup` accepts an IP
//!    address target; the others validate a domain name. A wildcard target is validated
//!    through its base name (the `*.` removed), and `dns-persistent` then requires
//!    `policy=wildcard`. The dns-account-01 label comes from [`account_label`].
//! 2. `lookup`: one query with a fresh, cache-free resolver ([`crate::resolver`]), bounded by
//!    the resolution lifetime. For the CAA contact methods, the CAA check's tree climb
//!    ([`crate::checks::caa`]) finds the name of the relevant RRset, and that name is then
//!    queried once more so that the records, RCODE, AD bit and CNAME chain all come from one
//!    answer.
//! 3. `evaluate`, `matching`, `persistent`: the decision, as pure functions.
//!
//! Comparison rules, beyond "equals" and "contains":
//!
//! - Multi-string TXT records are joined without separator before any comparison, and nothing
//!   is trimmed: white space around a value makes it a different value.
//! - Key authorization digests compare byte for byte. `dns-change` honours
//!   `require_exact_case` for TXT only; CNAME targets and CAA values compare without case.
//! - Contact email addresses compare the local part exactly (RFC 5321 §2.4 makes it
//!   case-sensitive) and the domain part without ASCII case. The Python implementation lowers
//!   the whole address; this one does not, so a record that differs from the request only in
//!   the case of the local part fails here. Contact phone numbers must be RFC 3966 Global
//!   Numbers and equal the request exactly.
//! - Names (CNAME targets, PTR names) compare without case and without one trailing dot.
//! - Addresses compare as `IpAddr`, so every textual form of an IPv6 address matches.
//!
//! Outcomes: a check that found records and compared them is completed, passed or failed.
//! NXDOMAIN and an empty answer complete it as failed, with a `mpic_error:dcv_checker:lookup`
//! error and null details, as the Python implementation reports them. SERVFAIL, REFUSED, a
//! timeout, an unreachable resolver or an unusable answer leave it not completed, never
//! passed. A request the method cannot run (an IP target for a domain method, a
//! `dns_name_prefix` without underscore) is not completed with an
//! `mpic_error:worker:invalid_request` error.
//!
//! Not done here: DNSSEC validation (the upstream recursive resolver is trusted to validate,
//! and its AD bit is reported as `ad_flag`), choosing the Authorization Domain Name by CNAME
//! or by pruning labels (BR §3.2.2.4: the CA sends the ADN as the target), sending the email or
//! placing the call of the contact methods, the IP address methods of BR §3.2.2.5 other than
//! reverse lookup, and `_ip-validation-persist` records (BR §3.2.2.5.8).

mod account_label;
mod evaluate;
mod lookup;
mod matching;
mod persistent;
mod plan;

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_resolver::proto::rr::{Name, RecordType};
use mpic_shared::dcv::{DcvCheckParameters, ValidationMethod};
use mpic_shared::reply::{
    CheckDetails, CheckError, CheckResponse, DcvCheckRequest, DnsDetails, error_type,
};
use mpic_shared::request::{CaaCheckParameters, CheckType};
use tracing::debug;

use crate::checks::caa::{CaaChecker, CaaOutcome};
use crate::resolver::ResolverFactory;

pub use account_label::account_label;

/// Returns why a DNS-based DCV request cannot be run (a target of the wrong kind, an invalid
/// prefix or expected address), found without any query, or `None` when it can.
pub fn request_problem(target: &str, parameters: &DcvCheckParameters) -> Option<String> {
    plan::Plan::for_request(target, parameters)
        .err()
        .map(|problem| problem.to_string())
}

use evaluate::evaluate;
use lookup::{DnsAnswer, LookupError, lookup, without_root};
use plan::{Expectation, LookupPlan, Plan};

/// Runs the DNS-based DCV check of `request` and returns the perspective reply.
///
/// Each call builds its own resolver from `resolvers`, so no answer is shared with another
/// check or perspective, and bounds its DNS work by the resolution lifetime.
pub async fn check(resolvers: &ResolverFactory, request: &DcvCheckRequest) -> CheckResponse {
    let parameters = &request.dcv_check_parameters;
    let method = parameters.method();
    let plan = match Plan::for_request(&request.domain_or_ip_target, parameters) {
        Ok(plan) => plan,
        Err(problem) => {
            debug!(
                trace_identifier = request.trace_identifier.as_deref(),
                target = request.domain_or_ip_target,
                validation_method = %method,
                %problem,
                "DCV request cannot be run"
            );
            let error = CheckError::new(error_type::INVALID_REQUEST, problem.to_string());
            return CheckResponse::not_completed(CheckType::Dcv, Some(method), error);
        }
    };

    let gathered = gather(resolvers, &plan.lookup).await;
    let response = respond(method, &plan.expectation, gathered, unix_seconds_now());
    debug!(
        trace_identifier = request.trace_identifier.as_deref(),
        target = request.domain_or_ip_target,
        validation_method = %method,
        completed = response.check_completed,
        passed = response.check_passed,
        details = ?response.details,
        errors = ?response.errors,
        "DNS DCV check finished"
    );
    response
}

/// The reason no records could be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Failure {
    /// A query failed or found nothing.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Neither the name nor any parent has CAA records.
    #[error("neither {domain} nor any parent up to the top-level domain has CAA records")]
    NoRelevantCaa { domain: String },
    /// The CAA tree climb could not find the relevant RRset.
    #[error("{0}")]
    CaaLookup(String),
    /// No resolver could be built.
    #[error("the DNS lookup could not start: {0}")]
    Unavailable(String),
}

impl Failure {
    /// Returns true when the failure is a statement about the names, so the check is
    /// completed (as failed).
    fn completes_check(&self) -> bool {
        match self {
            Self::Lookup(error) => error.completes_check(),
            Self::NoRelevantCaa { .. } => true,
            Self::CaaLookup(_) | Self::Unavailable(_) => false,
        }
    }
}

/// Runs the lookups of `plan` within the resolution lifetime.
async fn gather(resolvers: &ResolverFactory, plan: &LookupPlan) -> Result<DnsAnswer, Failure> {
    let lifetime = resolvers.resolution_lifetime();
    let work = async {
        match plan {
            LookupPlan::Record { name, record_type } => query(resolvers, name, *record_type).await,
            LookupPlan::RelevantCaa { domain } => relevant_caa_answer(resolvers, domain).await,
        }
    };
    let name = match plan {
        LookupPlan::Record { name, .. } => without_root(name),
        LookupPlan::RelevantCaa { domain } => domain.clone(),
    };
    tokio::time::timeout(lifetime, work)
        .await
        .map_err(|_elapsed| LookupError::LifetimeExceeded { name, lifetime })?
}

/// Queries one name with a resolver of its own.
async fn query(
    resolvers: &ResolverFactory,
    name: &Name,
    record_type: RecordType,
) -> Result<DnsAnswer, Failure> {
    let resolver = resolvers
        .resolver()
        .map_err(|error| Failure::Unavailable(error.to_string()))?;
    Ok(lookup(&resolver, name, record_type).await?)
}

/// Finds the relevant CAA RRset of `domain` and returns the answer that holds it.
///
/// The CAA check's tree climb (RFC 8659 §3) finds the name with the relevant RRset. It never
/// tolerates a lookup failure here (`allow_lookup_failure` is off), so a failure below that
/// name leaves the check not completed. Its issuance decision is not used. The CAA check
/// returns the RRset without the answer header or the CNAME chain, so the relevant name is
/// queried once more for CAA, and the records, RCODE, AD bit and chain of that one answer
/// make the evidence.
async fn relevant_caa_answer(
    resolvers: &ResolverFactory,
    domain: &str,
) -> Result<DnsAnswer, Failure> {
    let checker = CaaChecker::new(resolvers.clone(), Vec::<String>::new());
    let found_at = match checker.check(domain, &CaaCheckParameters::default()).await {
        CaaOutcome::Evaluated { found_at, .. } => found_at,
        CaaOutcome::NoRelevantRrset { .. } => {
            return Err(Failure::NoRelevantCaa {
                domain: domain.to_owned(),
            });
        }
        CaaOutcome::LookupFailed(failure) => return Err(Failure::CaaLookup(failure.to_string())),
        CaaOutcome::ResolverUnavailable(problem) => return Err(Failure::Unavailable(problem)),
        other => {
            return Err(Failure::CaaLookup(format!(
                "the CAA lookup of {domain} ended unexpectedly: {other:?}"
            )));
        }
    };

    let name = Name::from_ascii(format!("{found_at}.")).map_err(|error| {
        Failure::CaaLookup(format!(
            "the relevant CAA name {found_at:?} is invalid: {error}"
        ))
    })?;
    // The records were there a moment ago. Finding none now means the zone is changing and
    // shows nothing reliable about the name, so the check is not completed.
    query(resolvers, &name, RecordType::CAA)
        .await
        .map_err(|failure| {
            Failure::CaaLookup(format!(
                "the relevant CAA RRset of {domain} is at {found_at}, \
                 but the second lookup of that name failed: {failure}"
            ))
        })
}

/// Builds the reply from what the lookup found.
fn respond(
    method: ValidationMethod,
    expectation: &Expectation,
    gathered: Result<DnsAnswer, Failure>,
    now: u64,
) -> CheckResponse {
    let answer = match gathered {
        Ok(answer) => answer,
        Err(failure) => {
            let error = CheckError::new(error_type::DCV_LOOKUP, failure.to_string());
            if failure.completes_check() {
                let details = CheckDetails::Dns(DnsDetails::empty(method));
                return CheckResponse::completed(CheckType::Dcv, false, details).with_error(error);
            }
            return CheckResponse::not_completed(CheckType::Dcv, Some(method), error);
        }
    };

    let evaluation = evaluate(expectation, &answer.records, now);
    if !evaluation.rejections.is_empty() {
        debug!(rejections = ?evaluation.rejections, "persistent records not accepted");
    }
    let details = DnsDetails {
        validation_method: method,
        records_seen: Some(evaluation.records_seen),
        response_code: Some(answer.response_code),
        ad_flag: Some(answer.authentic_data),
        found_at: Some(answer.queried_name),
        cname_chain: Some(answer.cname_chain),
    };
    CheckResponse::completed(
        CheckType::Dcv,
        evaluation.passed,
        CheckDetails::Dns(details),
    )
}

/// Returns the current time in Unix seconds, for `persistUntil`.
///
/// A clock before 1970 is broken. It reads as the far future, so every record with a
/// `persistUntil` counts as expired rather than as valid forever.
fn unix_seconds_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::evaluate::RecordValue;
    use super::*;

    fn evidence(records: Vec<RecordValue>) -> DnsAnswer {
        DnsAnswer {
            queried_name: "_acme-challenge.example.com".to_owned(),
            response_code: 0,
            authentic_data: true,
            cname_chain: vec!["landing.example.net.".to_owned()],
            records,
        }
    }

    /// Name, what was gathered, expected `check_completed`, `check_passed` and error type.
    type Case = (
        &'static str,
        Result<DnsAnswer, Failure>,
        bool,
        bool,
        Option<&'static str>,
    );

    #[test]
    fn replies_per_outcome() {
        let expectation = Expectation::KeyAuthorization("token".to_owned());
        let text = |value: &str| RecordValue::Text(value.as_bytes().to_vec());
        let cases: Vec<Case> = vec![
            (
                "matching record: passed",
                Ok(evidence(vec![text("token")])),
                true,
                true,
                None,
            ),
            (
                "other record: failed without error",
                Ok(evidence(vec![text("other")])),
                true,
                false,
                None,
            ),
            (
                "NXDOMAIN: failed with a lookup error",
                Err(Failure::Lookup(LookupError::NxDomain {
                    name: "x.example".to_owned(),
                })),
                true,
                false,
                Some(error_type::DCV_LOOKUP),
            ),
            (
                "no CAA anywhere: failed with a lookup error",
                Err(Failure::NoRelevantCaa {
                    domain: "x.example".to_owned(),
                }),
                true,
                false,
                Some(error_type::DCV_LOOKUP),
            ),
            (
                "SERVFAIL: not completed",
                Err(Failure::Lookup(LookupError::ResponseCode {
                    name: "x.example".to_owned(),
                    record_type: hickory_resolver::proto::rr::RecordType::TXT,
                    code: "SERVFAIL".to_owned(),
                })),
                false,
                false,
                Some(error_type::DCV_LOOKUP),
            ),
            (
                "CAA climb failure: not completed",
                Err(Failure::CaaLookup(
                    "CAA lookup for x.example failed".to_owned(),
                )),
                false,
                false,
                Some(error_type::DCV_LOOKUP),
            ),
        ];
        for (case, gathered, completed, passed, error) in cases {
            let response = respond(ValidationMethod::AcmeDns01, &expectation, gathered, 0);
            assert_eq!(
                response.check_completed, completed,
                "case {case:?}: check_completed"
            );
            assert_eq!(response.check_passed, passed, "case {case:?}: check_passed");
            let error_types: Vec<&str> = response
                .errors
                .iter()
                .flatten()
                .map(|error| error.error_type.as_str())
                .collect();
            assert_eq!(
                error_types,
                error.into_iter().collect::<Vec<_>>(),
                "case {case:?}: errors"
            );
            let CheckDetails::Dns(details) = &response.details else {
                panic!("case {case:?}: details are not DNS details");
            };
            assert_eq!(
                details.validation_method,
                ValidationMethod::AcmeDns01,
                "case {case:?}: method"
            );
        }
    }

    #[test]
    fn details_carry_the_evidence() {
        let expectation = Expectation::KeyAuthorization("token".to_owned());
        let records = vec![RecordValue::Text(b"token".to_vec())];
        let response = respond(
            ValidationMethod::AcmeDns01,
            &expectation,
            Ok(evidence(records)),
            0,
        );
        let CheckDetails::Dns(details) = response.details else {
            panic!("details are not DNS details");
        };
        assert_eq!(
            details.records_seen,
            Some(vec!["token".to_owned()]),
            "records_seen"
        );
        assert_eq!(details.response_code, Some(0), "response_code");
        assert_eq!(details.ad_flag, Some(true), "ad_flag");
        assert_eq!(
            details.found_at.as_deref(),
            Some("_acme-challenge.example.com"),
            "found_at"
        );
        assert_eq!(
            details.cname_chain,
            Some(vec!["landing.example.net.".to_owned()]),
            "cname_chain"
        );
    }

    #[test]
    fn check_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let settings = crate::resolver::ResolverSettings {
            name_servers: crate::resolver::NameServers::Configured(vec![
                "127.0.0.1:53".parse().unwrap(),
            ]),
            ..crate::resolver::ResolverSettings::default()
        };
        let resolvers = ResolverFactory::new(&settings).unwrap();
        let request = DcvCheckRequest {
            domain_or_ip_target: "example.com".to_owned(),
            trace_identifier: None,
            dcv_check_parameters: mpic_shared::dcv::DcvCheckParameters::ContactEmailCaa(
                mpic_shared::dcv::ChallengeValueParameters {
                    challenge_value: "admin@example.com".to_owned(),
                },
            ),
        };
        // The future is only built, never polled, so no query is sent.
        let future = check(&resolvers, &request);
        assert_send(&future);
    }

    #[test]
    fn lookup_failures_leave_details_null() {
        let expectation = Expectation::KeyAuthorization("token".to_owned());
        let failure = Failure::Lookup(LookupError::NxDomain {
            name: "_acme-challenge.example.com".to_owned(),
        });
        let response = respond(ValidationMethod::AcmeDns01, &expectation, Err(failure), 0);
        assert_eq!(
            response.details,
            CheckDetails::Dns(DnsDetails::empty(ValidationMethod::AcmeDns01)),
            "details"
        );
        let message = &response.errors.as_ref().unwrap()[0].error_message;
        assert_eq!(
            message, "_acme-challenge.example.com does not exist (NXDOMAIN)",
            "message"
        );
    }
}
