//! CAA check: may the calling CA issue for this target, according to its CAA records?
//!
//! [`CaaChecker::check`] runs one check from one perspective and returns a [`CaaOutcome`];
//! [`CaaOutcome::into_check_response`] turns it into the perspective reply. The check is
//! transport-free: the NATS and HTTP layers call it.
//!
//! Steps, each in its own module:
//!
//! 1. Parse the target (`mpic_shared::target`): A-labels (UTS 46), lower case, no trailing dot;
//!    `*.` marks a wildcard. An IP address needs no DNS query: RFC 8659 defines CAA for domain
//!    names only, so the check passes at once and reports that no record is present.
//! 2. `lookup`: query CAA for the name and every parent up to the TLD in parallel, with a
//!    fresh, cache-free resolver ([`crate::resolver`]) and the resolution lifetime as deadline.
//! 3. `relevant`: select the relevant RRset, the one of the closest name that has CAA records
//!    ([RFC 8659 §3](https://www.rfc-editor.org/rfc/rfc8659#section-3)). A failed lookup at or
//!    below that name leaves the check not completed, never passed.
//! 4. `evaluate`: apply `issue`, `issuewild`, `issuemail`, the critical flag and the RFC 8657
//!    `accounturi` / `validationmethods` parameters
//!    ([RFC 8659 §4](https://www.rfc-editor.org/rfc/rfc8659#section-4),
//!    [RFC 8657](https://www.rfc-editor.org/rfc/rfc8657)). `property` parses the values.
//!
//! Deliberate choices (see `docs/decisions/caa-critical-flag.md`):
//!
//! - Flag value 64 counts as critical, like 128.
//! - A request without `account_uri` or `validation_method` is not permitted by a record that
//!   carries `accounturi` or `validationmethods`. The Python implementation ignores the two
//!   parameters.
//! - `allow_lookup_failure` (BR §3.2.2.8) makes a failed name count as having no CAA records:
//!   the climb continues to its parent, so a parent's RRset still applies, and the check passes
//!   only if no RRset above forbids. The tolerated failures are listed in the reply's `errors`
//!   while `check_completed` is true. Setting the flag asserts what the BR require of the CA:
//!   the failure is outside its infrastructure and the zone has no DNSSEC chain to the ICANN
//!   root. This checker retries every failed query at least once (`attempts` ≥ 1) but does not
//!   validate DNSSEC and cannot tell the other two conditions.
//!
//! Not done here: DNSSEC validation, iodef reporting (RFC 8659 §4.4) and the `contactemail` /
//! `contactphone` lookups of DCV, which the DCV checks do. Tags beyond RFC 8659, RFC 9495 and
//! the BR, such as `issuevmc`, are unknown here, so a critical one forbids issuance.

mod evaluate;
mod lookup;
mod property;
mod relevant;

use hickory_resolver::TokioResolver;
use mpic_shared::reply::{CaaDetails, CheckDetails, CheckError, CheckResponse, error_type};
use mpic_shared::request::{CaaCheckParameters, CheckType};
use mpic_shared::target::{Target, TargetError};
use tracing::debug;

use crate::resolver::{ResolverError, ResolverFactory};

pub use evaluate::{Decision, NameKind, acme_method_name};
pub use lookup::LookupError;
pub use property::{CaaRecord, PropertyTag};

use evaluate::{IssuanceRequest, evaluate};
use lookup::lookup_relevant;
use relevant::{FailurePolicy, NameLookup, Selection, names_to_query};

/// Runs CAA checks for one perspective.
#[derive(Debug, Clone)]
pub struct CaaChecker {
    resolvers: ResolverFactory,
    default_caa_domains: Vec<String>,
}

/// The result of one CAA check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaaOutcome {
    /// The target is an IP address; CAA does not apply and no query was sent.
    NotApplicable,
    /// Neither the name nor any parent has CAA records: issuance is permitted.
    NoRelevantRrset {
        /// Lookups that failed but were counted as "no records" (`allow_lookup_failure`).
        tolerated_failures: Vec<NameFailure>,
    },
    /// A relevant RRset was found and evaluated.
    Evaluated {
        /// The name that owns the relevant RRset, without trailing dot.
        found_at: String,
        /// The relevant RRset, in answer order.
        records: Vec<CaaRecord>,
        /// What the RRset decides for this request.
        decision: Decision,
        /// Lookups below `found_at` that failed but were counted as "no records".
        tolerated_failures: Vec<NameFailure>,
    },
    /// A lookup failed where the relevant RRset might be: the check is not completed.
    LookupFailed(NameFailure),
    /// The target is neither a valid domain name nor an IP address.
    InvalidTarget(TargetError),
    /// No resolver could be built for the check.
    ResolverUnavailable(String),
}

/// A failed lookup of one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CAA lookup for {name} failed: {error}")]
pub struct NameFailure {
    /// The name queried, without trailing dot.
    pub name: String,
    /// The cause of the failure.
    pub error: LookupError,
}

impl CaaChecker {
    /// Creates a checker. `default_caa_domains` identify the CA when a request names none;
    /// they are compared without case and without a trailing dot.
    pub fn new<S: AsRef<str>>(
        resolvers: ResolverFactory,
        default_caa_domains: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            resolvers,
            default_caa_domains: normalize_issuer_domain_names(default_caa_domains),
        }
    }

    /// Runs the check for `target` (`domain_or_ip_target` as received).
    pub async fn check(&self, target: &str, parameters: &CaaCheckParameters) -> CaaOutcome {
        let domain = match Target::parse(target) {
            Ok(Target::Ip(_)) => return CaaOutcome::NotApplicable,
            Ok(Target::Domain(domain)) => domain,
            Err(error) => return CaaOutcome::InvalidTarget(error),
        };
        let resolver = match self.resolvers.resolver() {
            Ok(resolver) => resolver,
            Err(error) => return CaaOutcome::ResolverUnavailable(resolver_problem(&error)),
        };

        let names = names_to_query(&domain.name);
        let name_kind = if domain.wildcard {
            NameKind::Wildcard
        } else {
            NameKind::Exact
        };
        let issuer_domain_names = self.issuer_domain_names(parameters);
        let request = IssuanceRequest {
            certificate_type: parameters.certificate_type,
            name_kind,
            issuer_domain_names: &issuer_domain_names,
            account_uri: parameters.account_uri.as_deref(),
            validation_method: parameters.validation_method.as_deref(),
        };
        let policy = if parameters.allow_lookup_failure {
            FailurePolicy::TreatAsNoRecords
        } else {
            FailurePolicy::FailClosed
        };

        self.run(&resolver, &names, policy, &request).await
    }

    async fn run(
        &self,
        resolver: &TokioResolver,
        names: &[String],
        policy: FailurePolicy,
        request: &IssuanceRequest<'_>,
    ) -> CaaOutcome {
        let (lookups, selection) = lookup_relevant(
            resolver,
            names,
            policy,
            self.resolvers.resolution_lifetime(),
        )
        .await;
        let outcome = decide(names, lookups, selection, request);
        match &outcome {
            CaaOutcome::Evaluated {
                found_at,
                records,
                decision,
                ..
            } => debug!(
                found_at,
                records = ?records.iter().map(CaaRecord::presentation).collect::<Vec<_>>(),
                ?decision,
                "relevant CAA RRset"
            ),
            other => debug!(outcome = ?other, "CAA check finished"),
        }
        outcome
    }

    fn issuer_domain_names(&self, parameters: &CaaCheckParameters) -> Vec<String> {
        match &parameters.caa_domains {
            Some(domains) if !domains.is_empty() => normalize_issuer_domain_names(domains),
            _ => self.default_caa_domains.clone(),
        }
    }
}

impl CaaOutcome {
    /// Returns true when the check ran to a decision (`check_completed`).
    pub fn is_completed(&self) -> bool {
        !matches!(
            self,
            Self::LookupFailed(_) | Self::InvalidTarget(_) | Self::ResolverUnavailable(_)
        )
    }

    /// Returns true when issuance is permitted (`check_passed`).
    pub fn is_passed(&self) -> bool {
        match self {
            Self::NotApplicable | Self::NoRelevantRrset { .. } => true,
            Self::Evaluated { decision, .. } => decision.permits_issuance(),
            Self::LookupFailed(_) | Self::InvalidTarget(_) | Self::ResolverUnavailable(_) => false,
        }
    }

    /// Builds the perspective reply.
    pub fn into_check_response(self) -> CheckResponse {
        let passed = self.is_passed();
        match self {
            Self::NotApplicable => completed(passed, no_record(), &[]),
            Self::NoRelevantRrset { tolerated_failures } => {
                completed(passed, no_record(), &tolerated_failures)
            }
            Self::Evaluated {
                found_at,
                records,
                tolerated_failures,
                ..
            } => {
                let details = CaaDetails {
                    caa_record_present: Some(true),
                    found_at: Some(found_at),
                    records_seen: Some(records.iter().map(CaaRecord::presentation).collect()),
                };
                completed(passed, details, &tolerated_failures)
            }
            Self::LookupFailed(failure) => {
                not_completed(error_type::CAA_LOOKUP, failure.to_string())
            }
            Self::InvalidTarget(error) => {
                not_completed(error_type::INVALID_REQUEST, error.to_string())
            }
            Self::ResolverUnavailable(problem) => not_completed(error_type::CAA_LOOKUP, problem),
        }
    }
}

/// Turns the lookups and the selection into an outcome, evaluating the relevant RRset.
fn decide(
    names: &[String],
    mut lookups: Vec<Option<NameLookup>>,
    selection: Selection,
    request: &IssuanceRequest<'_>,
) -> CaaOutcome {
    let mut failure_at = |index: usize| -> NameFailure {
        let error = match lookups[index].take() {
            Some(NameLookup::Failed(error)) => error,
            // `select_relevant` reports only indices of failed lookups as failures.
            other => LookupError::Other {
                reason: format!("unexpected lookup result {other:?}"),
            },
        };
        NameFailure {
            name: names[index].clone(),
            error,
        }
    };

    match selection {
        Selection::LookupFailed { index } => CaaOutcome::LookupFailed(failure_at(index)),
        Selection::NoRelevantRrset { tolerated_failures } => CaaOutcome::NoRelevantRrset {
            tolerated_failures: tolerated_failures
                .into_iter()
                .map(&mut failure_at)
                .collect(),
        },
        Selection::Relevant {
            index,
            tolerated_failures,
        } => {
            let tolerated_failures = tolerated_failures
                .into_iter()
                .map(&mut failure_at)
                .collect();
            let records = match lookups[index].take() {
                Some(NameLookup::Records(records)) => records,
                // `select_relevant` returns `Relevant` only for an index holding records.
                _ => Vec::new(),
            };
            let decision = evaluate(&records, request);
            CaaOutcome::Evaluated {
                found_at: names[index].clone(),
                records,
                decision,
                tolerated_failures,
            }
        }
        // `lookup_relevant` fills every slot before its last selection, so it never returns
        // `Pending`; if it did, the check must not pass.
        Selection::Pending => CaaOutcome::LookupFailed(NameFailure {
            name: names.first().cloned().unwrap_or_default(),
            error: LookupError::Other {
                reason: "the lookups ended before the relevant RRset was known".to_owned(),
            },
        }),
    }
}

fn normalize_issuer_domain_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Vec<String> {
    names
        .into_iter()
        .map(|name| {
            let name = name.as_ref().trim();
            name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn resolver_problem(error: &ResolverError) -> String {
    format!("CAA lookup could not start: {error}")
}

fn no_record() -> CaaDetails {
    CaaDetails {
        caa_record_present: Some(false),
        found_at: None,
        records_seen: None,
    }
}

fn completed(passed: bool, details: CaaDetails, tolerated: &[NameFailure]) -> CheckResponse {
    let response = CheckResponse::completed(CheckType::Caa, passed, CheckDetails::Caa(details));
    tolerated.iter().fold(response, |response, failure| {
        response.with_error(CheckError::new(
            error_type::CAA_LOOKUP,
            format!("{failure}; counted as no CAA records because allow_lookup_failure is set"),
        ))
    })
}

fn not_completed(kind: &str, message: String) -> CheckResponse {
    CheckResponse::not_completed(CheckType::Caa, None, CheckError::new(kind, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_domain_names_are_normalized() {
        let cases = [
            ("lower-cased", vec!["CA.Example"], vec!["ca.example"]),
            (
                "trailing dot dropped",
                vec!["ca.example."],
                vec!["ca.example"],
            ),
            (
                "whitespace trimmed",
                vec![" ca.example "],
                vec!["ca.example"],
            ),
            ("empty entries dropped", vec!["", " ", "."], vec![]),
        ];
        for (name, input, expected) in cases {
            assert_eq!(
                normalize_issuer_domain_names(input),
                expected,
                "case {name:?}"
            );
        }
    }

    fn failure(name: &str) -> NameFailure {
        NameFailure {
            name: name.to_owned(),
            error: LookupError::ResponseCode {
                code: "SERVFAIL".to_owned(),
            },
        }
    }

    #[test]
    fn outcomes_map_to_replies() {
        let records = vec![CaaRecord::new(0, "issue", "ca.example")];
        let cases = [
            (
                "IP target: passed, no record",
                CaaOutcome::NotApplicable,
                (true, true, Some(false), None, None, 0),
            ),
            (
                "no RRset: passed, no record",
                CaaOutcome::NoRelevantRrset {
                    tolerated_failures: vec![],
                },
                (true, true, Some(false), None, None, 0),
            ),
            (
                "tolerated failure: passed with an error entry",
                CaaOutcome::NoRelevantRrset {
                    tolerated_failures: vec![failure("example.com")],
                },
                (true, true, Some(false), None, None, 1),
            ),
            (
                "authorized: passed with the RRset",
                CaaOutcome::Evaluated {
                    found_at: "example.com".to_owned(),
                    records: records.clone(),
                    decision: Decision::Authorized { record: 0 },
                    tolerated_failures: vec![],
                },
                (
                    true,
                    true,
                    Some(true),
                    Some("example.com"),
                    Some(vec!["0 issue \"ca.example\""]),
                    0,
                ),
            ),
            (
                "not authorized: failed with the RRset",
                CaaOutcome::Evaluated {
                    found_at: "example.com".to_owned(),
                    records,
                    decision: Decision::NotAuthorized {
                        governing_tag: PropertyTag::Issue,
                    },
                    tolerated_failures: vec![],
                },
                (
                    true,
                    false,
                    Some(true),
                    Some("example.com"),
                    Some(vec!["0 issue \"ca.example\""]),
                    0,
                ),
            ),
            (
                "lookup failed: not completed, details null",
                CaaOutcome::LookupFailed(failure("www.example.com")),
                (false, false, None, None, None, 1),
            ),
        ];
        for (name, outcome, (completed, passed, present, found_at, seen, errors)) in cases {
            let response = outcome.into_check_response();
            assert_eq!(
                response.check_completed, completed,
                "case {name:?}: check_completed"
            );
            assert_eq!(response.check_passed, passed, "case {name:?}: check_passed");
            let CheckDetails::Caa(details) = &response.details else {
                panic!("case {name:?}: details are not CAA details");
            };
            assert_eq!(
                details.caa_record_present, present,
                "case {name:?}: caa_record_present"
            );
            assert_eq!(
                details.found_at.as_deref(),
                found_at,
                "case {name:?}: found_at"
            );
            assert_eq!(
                details.records_seen,
                seen.map(|seen| seen.into_iter().map(str::to_owned).collect::<Vec<_>>()),
                "case {name:?}: records_seen"
            );
            let error_types: Vec<&str> = response
                .errors
                .iter()
                .flatten()
                .map(|error| error.error_type.as_str())
                .collect();
            assert_eq!(
                error_types,
                vec![error_type::CAA_LOOKUP; errors],
                "case {name:?}: errors"
            );
        }
    }

    #[test]
    fn lookup_failure_message_names_the_name() {
        let response = CaaOutcome::LookupFailed(failure("www.example.com")).into_check_response();
        let message = &response.errors.unwrap()[0].error_message;
        assert_eq!(
            message,
            "CAA lookup for www.example.com failed: the resolver answered SERVFAIL"
        );
    }
}
