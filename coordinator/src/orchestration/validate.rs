//! Request validation: from a parsed `POST /mpic` body to an [`OrchestrationPlan`] or the list
//! of every problem found.
//!
//! The Open MPIC API names five issue types: `invalid-perspective-count`,
//! `invalid-quorum-count`, `invalid-certificate-type`,
//! `invalid-validation-method-record-type-combination` and `empty-challenge-value`. The others
//! in [`issue_type`] are this service's, for problems the API leaves to the implementation.
//! Validation collects all issues instead of stopping at the first, so a caller can fix a
//! request in one round trip.
//!
//! Accepted ranges:
//! - `perspective_count`: 2 up to the number of deployed perspectives, or the coordinator's
//!   `default_perspective_count` when absent.
//! - `quorum_count`: from the BR §3.2.2.9 minimum (`count - 1` up to five perspectives,
//!   `count - 2` from six) up to `count`, or that minimum when absent. See [`super::quorum`].
//! - `max_attempts`: at least 1, default 1, lowered to `absolute_max_attempts` when that is set.
//! - `cohort_for_single_attempt`: at least 1. It forces a single attempt. Whether that cohort
//!   exists depends on the cohorts built for the target, so a number above the cohort count is
//!   an orchestration error (HTTP 500), not a validation issue.
//!
//! What is not checked here: the JSON shape, whether a cohort of the requested size can be
//! built, and anything only a perspective can see. Serde rejects a bad shape before a
//! [`MpicRequest`] exists, and [`enum_value_issues`] finds the two API issue types hidden in
//! such a rejection.

use std::num::NonZeroU32;

use serde::Serialize;

use mpic_shared::dcv::DcvCheckParameters;
use mpic_shared::request::{CheckType, MpicRequest, RequestOrchestrationParameters};
use mpic_shared::response::EchoedCheckParameters;
use mpic_shared::target::Target;
use mpic_worker::checks::dcv_request_problem;

use super::quorum;

/// The `issue_type` values of a `request-validation-failed` response.
pub mod issue_type {
    /// `perspective_count` outside 2 to the number of deployed perspectives (Open MPIC API).
    pub const INVALID_PERSPECTIVE_COUNT: &str = "invalid-perspective-count";
    /// `quorum_count` outside the range the BR table allows for the cohort size (Open MPIC API).
    pub const INVALID_QUORUM_COUNT: &str = "invalid-quorum-count";
    /// `certificate_type` is not `tls-server` or `s-mime` (Open MPIC API).
    pub const INVALID_CERTIFICATE_TYPE: &str = "invalid-certificate-type";
    /// `dns_record_type` is not one the validation method can query (Open MPIC API).
    pub const INVALID_VALIDATION_METHOD_RECORD_TYPE_COMBINATION: &str =
        "invalid-validation-method-record-type-combination";
    /// The value a DCV method looks for is empty or blank (Open MPIC API).
    pub const EMPTY_CHALLENGE_VALUE: &str = "empty-challenge-value";
    /// `check_type` is `dcv` but `dcv_check_parameters` is absent.
    pub const MISSING_DCV_CHECK_PARAMETERS: &str = "missing-dcv-check-parameters";
    /// `domain_or_ip_target` is not a domain name or IP address.
    pub const INVALID_TARGET: &str = "invalid-target";
    /// `max_attempts` is below 1.
    pub const INVALID_MAX_ATTEMPTS: &str = "invalid-max-attempts";
    /// `cohort_for_single_attempt` is below 1.
    pub const INVALID_COHORT_FOR_SINGLE_ATTEMPT: &str = "invalid-cohort-for-single-attempt";
    /// `dns-persistent` with no issuer domain names, or a blank one.
    pub const EMPTY_ISSUER_DOMAIN_NAMES: &str = "empty-issuer-domain-names";
    /// The account URI of `dns-persistent` or `dns-account-01` is blank.
    pub const EMPTY_ACCOUNT_URI: &str = "empty-account-uri";
    /// `website-change` `match_regex` does not compile.
    pub const INVALID_MATCH_REGEX: &str = "invalid-match-regex";
    /// `acme-tls-alpn-01` `key_authorization_hash` is not 64 hexadecimal digits.
    pub const INVALID_KEY_AUTHORIZATION_HASH: &str = "invalid-key-authorization-hash";
    /// The DCV fields cannot be run against the target, as the worker's planning step finds
    /// (an IP target for a domain method, a `dns_name_prefix` that is not one `_` label, an
    /// expected address of the wrong family, an `http_token_path` outside its directory).
    pub const INVALID_DCV_CHECK_PARAMETERS: &str = "invalid-dcv-check-parameters";
}

/// One problem with a request, serialized as an entry of `validation_issues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationIssue {
    /// One of the [`issue_type`] constants.
    pub issue_type: &'static str,
    /// A description of the problem that names the offending value.
    pub message: String,
}

impl ValidationIssue {
    /// Builds an issue.
    pub fn new(issue_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            issue_type,
            message: message.into(),
        }
    }
}

/// The coordinator settings that bound a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Perspectives deployed behind this coordinator: the largest accepted perspective count.
    pub deployed_perspective_count: usize,
    /// Perspective count for requests that name none.
    pub default_perspective_count: usize,
    /// Upper bound on `max_attempts`; `None` when the operator set none.
    pub absolute_max_attempts: Option<NonZeroU32>,
}

/// A request that passed validation, with every default resolved.
///
/// Only [`validate`] builds one, so holding a plan proves the counts are in range.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestrationPlan {
    request: MpicRequest,
    target: Target,
    check_parameters: EchoedCheckParameters,
    perspective_count: usize,
    quorum_count: usize,
    attempts: AttemptPolicy,
}

/// How many attempts a request may make and with which cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptPolicy {
    /// Attempt k uses cohort k, stopping at the first valid attempt or after `max_attempts`.
    Retry {
        /// The request's `max_attempts` (1 when absent), already lowered to
        /// `absolute_max_attempts`.
        max_attempts: NonZeroU32,
    },
    /// One attempt with the cohort of this one-based number (`cohort_for_single_attempt`).
    SingleCohort {
        /// The cohort's one-based number.
        cohort_number: NonZeroU32,
    },
}

impl OrchestrationPlan {
    /// Returns the request as received.
    pub fn request(&self) -> &MpicRequest {
        &self.request
    }

    /// Returns the parsed target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Returns the check's parameters: CAA parameters as sent (possibly none), or the DCV
    /// method and its fields. They are echoed in the response and sent to each perspective.
    pub fn check_parameters(&self) -> &EchoedCheckParameters {
        &self.check_parameters
    }

    /// Returns the check type.
    pub fn check_type(&self) -> CheckType {
        self.request.check_type
    }

    /// Returns the number of perspectives in each cohort.
    pub fn perspective_count(&self) -> usize {
        self.perspective_count
    }

    /// Returns the number of perspectives that must pass.
    pub fn quorum_count(&self) -> usize {
        self.quorum_count
    }

    /// Returns how many attempts to make and with which cohorts.
    pub fn attempts(&self) -> AttemptPolicy {
        self.attempts
    }
}

/// Validates a request against the coordinator's limits and resolves its defaults.
///
/// Returns every issue found, in a stable order: target, orchestration parameters, check
/// parameters.
pub fn validate(
    request: &MpicRequest,
    limits: &ValidationLimits,
) -> Result<OrchestrationPlan, Vec<ValidationIssue>> {
    let mut issues = Issues::default();

    let target = issues.check(
        Target::parse(&request.domain_or_ip_target).map_err(|error| {
            ValidationIssue::new(
                issue_type::INVALID_TARGET,
                format!("Invalid target: {error}"),
            )
        }),
    );

    let orchestration = request.orchestration_parameters.clone().unwrap_or_default();
    let perspective_count = issues.check(perspective_count(&orchestration, limits));
    // The quorum range depends on the perspective count, so an invalid count leaves the
    // quorum unchecked; the count's own issue already rejects the request.
    let quorum_count =
        perspective_count.and_then(|count| issues.check(quorum_count(&orchestration, count)));
    let attempts = attempt_policy(&orchestration, limits, &mut issues);

    let check_parameters = issues.check(check_parameters(request));
    if let Some(EchoedCheckParameters::Dcv {
        dcv_check_parameters,
    }) = &check_parameters
    {
        let parameter_issues = dcv_parameter_issues(dcv_check_parameters);
        let planning_problem = match &target {
            // Asked only of a request that passed the checks above, so one problem is not
            // reported twice in different words.
            Some(_) if parameter_issues.is_empty() => {
                dcv_request_problem(&request.domain_or_ip_target, dcv_check_parameters)
            }
            _ => None,
        };
        issues.extend(parameter_issues);
        if let Some(problem) = planning_problem {
            issues.extend(vec![ValidationIssue::new(
                issue_type::INVALID_DCV_CHECK_PARAMETERS,
                format!("Invalid DCV check parameters: {problem}"),
            )]);
        }
    }

    // Every `None` below comes with an issue, so an empty list always means a complete plan.
    match (
        target,
        perspective_count,
        quorum_count,
        attempts,
        check_parameters,
    ) {
        (
            Some(target),
            Some(perspective_count),
            Some(quorum_count),
            Some(attempts),
            Some(check_parameters),
        ) if issues.0.is_empty() => Ok(OrchestrationPlan {
            request: request.clone(),
            target,
            check_parameters,
            perspective_count,
            quorum_count,
            attempts,
        }),
        _ => Err(issues.0),
    }
}

/// Finds the two API issue types that serde reports only as a generic rejection: an unknown
/// `certificate_type` and a `dns_record_type` the validation method cannot query.
///
/// For the API layer to call on a request body that failed to parse into [`MpicRequest`], so
/// the response uses the API's issue types where they apply. Returns an empty list when neither
/// problem is present.
pub fn enum_value_issues(body: &serde_json::Value) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();

    let certificate_type = body
        .get("caa_check_parameters")
        .and_then(|parameters| parameters.get("certificate_type"))
        .filter(|value| !value.is_null());
    if let Some(value) = certificate_type
        && !value
            .as_str()
            .is_some_and(|name| CERTIFICATE_TYPES.contains(&name))
    {
        issues.push(ValidationIssue::new(
            issue_type::INVALID_CERTIFICATE_TYPE,
            format!("Invalid 'certificate-type' specified: {}", json_text(value)),
        ));
    }

    let Some(dcv) = body.get("dcv_check_parameters") else {
        return issues;
    };
    let method = dcv
        .get("validation_method")
        .and_then(|value| value.as_str());
    let record_type = dcv.get("dns_record_type").filter(|value| !value.is_null());
    let accepted = method.and_then(|method| {
        RECORD_TYPES_BY_METHOD
            .iter()
            .find(|(name, _)| *name == method)
            .map(|(_, types)| *types)
    });
    if let (Some(method), Some(record_type), Some(accepted)) = (method, record_type, accepted)
        && !record_type
            .as_str()
            .is_some_and(|name| accepted.contains(&name))
    {
        issues.push(ValidationIssue::new(
            issue_type::INVALID_VALIDATION_METHOD_RECORD_TYPE_COMBINATION,
            format!(
                "Invalid validation method and record type combination: {method} and {}",
                json_text(record_type)
            ),
        ));
    }
    issues
}

fn perspective_count(
    orchestration: &RequestOrchestrationParameters,
    limits: &ValidationLimits,
) -> Result<usize, ValidationIssue> {
    let Some(requested) = orchestration.perspective_count else {
        return Ok(limits.default_perspective_count);
    };
    usize::try_from(requested)
        .ok()
        .filter(|count| (MIN_PERSPECTIVE_COUNT..=limits.deployed_perspective_count).contains(count))
        .ok_or_else(|| {
            ValidationIssue::new(
                issue_type::INVALID_PERSPECTIVE_COUNT,
                format!("Invalid perspective count: {requested}"),
            )
        })
}

fn quorum_count(
    orchestration: &RequestOrchestrationParameters,
    perspective_count: usize,
) -> Result<usize, ValidationIssue> {
    let Some(requested) = orchestration.quorum_count else {
        return Ok(quorum::default_quorum_count(perspective_count));
    };
    usize::try_from(requested)
        .ok()
        .filter(|count| quorum::accepted_quorum_counts(perspective_count).contains(count))
        .ok_or_else(|| {
            ValidationIssue::new(
                issue_type::INVALID_QUORUM_COUNT,
                format!("Invalid quorum count: {requested}"),
            )
        })
}

/// Checks `max_attempts` and `cohort_for_single_attempt`. Both are checked even when the cohort
/// number makes `max_attempts` irrelevant, so every issue is reported.
fn attempt_policy(
    orchestration: &RequestOrchestrationParameters,
    limits: &ValidationLimits,
    issues: &mut Issues,
) -> Option<AttemptPolicy> {
    let max_attempts = issues.check(positive(orchestration.max_attempts).map_err(|value| {
        ValidationIssue::new(
            issue_type::INVALID_MAX_ATTEMPTS,
            format!("Invalid max attempts: {value} (must be at least 1)"),
        )
    }));
    let cohort_number = issues.check(positive(orchestration.cohort_for_single_attempt).map_err(
        |value| {
            ValidationIssue::new(
                issue_type::INVALID_COHORT_FOR_SINGLE_ATTEMPT,
                format!("Invalid cohort for single attempt: {value} (must be at least 1)"),
            )
        },
    ))?;

    if let Some(cohort_number) = cohort_number {
        return Some(AttemptPolicy::SingleCohort { cohort_number });
    }
    let requested = max_attempts?.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let max_attempts = match limits.absolute_max_attempts {
        Some(cap) => requested.min(cap),
        None => requested,
    };
    Some(AttemptPolicy::Retry { max_attempts })
}

/// Converts an optional count to a positive `u32`, saturating very large values. Returns the
/// value itself as the error when it is below 1.
fn positive(value: Option<i64>) -> Result<Option<NonZeroU32>, i64> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value < 1 {
        return Err(value);
    }
    let saturated = u32::try_from(value).unwrap_or(u32::MAX);
    Ok(NonZeroU32::new(saturated))
}

fn check_parameters(request: &MpicRequest) -> Result<EchoedCheckParameters, ValidationIssue> {
    match request.check_type {
        CheckType::Caa => Ok(EchoedCheckParameters::Caa {
            caa_check_parameters: request.caa_check_parameters.clone(),
        }),
        CheckType::Dcv => request
            .dcv_check_parameters
            .clone()
            .map(|dcv_check_parameters| EchoedCheckParameters::Dcv {
                dcv_check_parameters,
            })
            .ok_or_else(|| {
                ValidationIssue::new(
                    issue_type::MISSING_DCV_CHECK_PARAMETERS,
                    "dcv_check_parameters is required when check_type is dcv",
                )
            }),
    }
}

/// Checks the DCV fields serde cannot: blank values, the regular expression and the hash form.
/// A blank challenge value is rejected because "the page contains the empty string" holds for
/// every page.
fn dcv_parameter_issues(parameters: &DcvCheckParameters) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();
    let challenge_blank = parameters
        .challenge_value()
        .is_some_and(|value| value.trim().is_empty());
    if challenge_blank {
        issues.push(ValidationIssue::new(
            issue_type::EMPTY_CHALLENGE_VALUE,
            "Empty challenge value.",
        ));
    }

    match parameters {
        DcvCheckParameters::WebsiteChange(website) => {
            if let Some(pattern) = &website.match_regex
                && let Err(error) = regex::Regex::new(pattern)
            {
                issues.push(ValidationIssue::new(
                    issue_type::INVALID_MATCH_REGEX,
                    format!("Invalid match_regex {pattern:?}: {}", last_line(&error)),
                ));
            }
        }
        DcvCheckParameters::AcmeTlsAlpn01(hash) if !challenge_blank => {
            let digest = &hash.key_authorization_hash;
            if !is_sha256_hex(digest) {
                issues.push(ValidationIssue::new(
                    issue_type::INVALID_KEY_AUTHORIZATION_HASH,
                    format!(
                        "Invalid key_authorization_hash: expected {SHA256_HEX_DIGITS} hexadecimal \
                         digits (a SHA-256 digest, RFC 8737 §3), got {} characters",
                        digest.chars().count()
                    ),
                ));
            }
        }
        DcvCheckParameters::DnsPersistent(persistent) => {
            let names = &persistent.issuer_domain_names;
            if names.is_empty() || names.iter().any(|name| name.trim().is_empty()) {
                issues.push(ValidationIssue::new(
                    issue_type::EMPTY_ISSUER_DOMAIN_NAMES,
                    "issuer_domain_names must list at least one issuer domain name, none blank",
                ));
            }
            if persistent.expected_account_uri.trim().is_empty() {
                issues.push(empty_account_uri("expected_account_uri"));
            }
        }
        DcvCheckParameters::DnsAccount01(account) if account.account_uri.trim().is_empty() => {
            issues.push(empty_account_uri("account_uri"));
        }
        _ => {}
    }
    issues
}

fn empty_account_uri(field: &str) -> ValidationIssue {
    ValidationIssue::new(
        issue_type::EMPTY_ACCOUNT_URI,
        format!("{field} must be the ACME account URI, not blank"),
    )
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == SHA256_HEX_DIGITS && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Returns the last line of a regex error: its syntax errors span several lines (the pattern,
/// a caret, then the reason), and only the reason reads well inside a JSON message.
fn last_line(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(&text)
        .trim()
        .to_owned()
}

/// Renders a JSON value for a message: strings without quotes, anything else as JSON.
fn json_text(value: &serde_json::Value) -> String {
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    }
}

/// Collects issues while validation goes on.
#[derive(Default)]
struct Issues(Vec<ValidationIssue>);

impl Issues {
    fn check<T>(&mut self, result: Result<T, ValidationIssue>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(issue) => {
                self.0.push(issue);
                None
            }
        }
    }

    fn extend(&mut self, issues: Vec<ValidationIssue>) {
        self.0.extend(issues);
    }
}

/// The smallest cohort: MPIC needs at least two remote perspectives (BR §3.2.2.9).
pub(crate) const MIN_PERSPECTIVE_COUNT: usize = 2;
/// Attempts when the request names none: one, as the Open MPIC API's reference service does.
const DEFAULT_MAX_ATTEMPTS: NonZeroU32 = NonZeroU32::MIN;
/// Length of a hex-encoded SHA-256 digest.
const SHA256_HEX_DIGITS: usize = 64;
/// The `certificate_type` values of the Open MPIC API.
const CERTIFICATE_TYPES: [&str; 2] = ["tls-server", "s-mime"];
/// The record types each method with a `dns_record_type` field may query.
const RECORD_TYPES_BY_METHOD: [(&str, &[&str]); 2] = [
    ("dns-change", &["CNAME", "TXT", "CAA"]),
    ("ip-address", &["A", "AAAA"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    const LIMITS: ValidationLimits = ValidationLimits {
        deployed_perspective_count: 8,
        default_perspective_count: 6,
        absolute_max_attempts: NonZeroU32::new(3),
    };

    fn request(body: serde_json::Value) -> MpicRequest {
        serde_json::from_value(body).expect("test request parses")
    }

    fn caa_request(orchestration: serde_json::Value) -> MpicRequest {
        request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "orchestration_parameters": orchestration,
        }))
    }

    fn dcv_request(parameters: serde_json::Value) -> MpicRequest {
        request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "example.com",
            "dcv_check_parameters": parameters,
        }))
    }

    fn issue_types(result: &Result<OrchestrationPlan, Vec<ValidationIssue>>) -> Vec<&'static str> {
        match result {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(|issue| issue.issue_type).collect(),
        }
    }

    #[test]
    fn orchestration_defaults_and_ranges() {
        struct Case {
            name: &'static str,
            orchestration: serde_json::Value,
            expected: Result<(usize, usize, AttemptPolicy), Vec<&'static str>>,
        }
        let retry = |n: u32| AttemptPolicy::Retry {
            max_attempts: NonZeroU32::new(n).expect("test count is positive"),
        };
        let single = |n: u32| AttemptPolicy::SingleCohort {
            cohort_number: NonZeroU32::new(n).expect("test number is positive"),
        };
        let cases = [
            Case {
                name: "no parameters: default count six, quorum four, one attempt",
                orchestration: json!(null),
                expected: Ok((6, 4, retry(1))),
            },
            Case {
                name: "count five defaults to quorum four",
                orchestration: json!({"perspective_count": 5}),
                expected: Ok((5, 4, retry(1))),
            },
            Case {
                name: "count two defaults to quorum one",
                orchestration: json!({"perspective_count": 2}),
                expected: Ok((2, 1, retry(1))),
            },
            Case {
                name: "count eight defaults to quorum six",
                orchestration: json!({"perspective_count": 8}),
                expected: Ok((8, 6, retry(1))),
            },
            Case {
                name: "quorum equal to count is accepted",
                orchestration: json!({"perspective_count": 3, "quorum_count": 3}),
                expected: Ok((3, 3, retry(1))),
            },
            Case {
                name: "quorum count-2 with six is accepted",
                orchestration: json!({"perspective_count": 6, "quorum_count": 4}),
                expected: Ok((6, 4, retry(1))),
            },
            Case {
                name: "quorum without count is checked against the default count",
                orchestration: json!({"quorum_count": 5}),
                expected: Ok((6, 5, retry(1))),
            },
            Case {
                name: "quorum zero without count is rejected",
                orchestration: json!({"quorum_count": 0}),
                expected: Err(vec![issue_type::INVALID_QUORUM_COUNT]),
            },
            Case {
                name: "quorum count-2 with five is rejected",
                orchestration: json!({"perspective_count": 5, "quorum_count": 3}),
                expected: Err(vec![issue_type::INVALID_QUORUM_COUNT]),
            },
            Case {
                name: "quorum above count is rejected",
                orchestration: json!({"perspective_count": 3, "quorum_count": 5}),
                expected: Err(vec![issue_type::INVALID_QUORUM_COUNT]),
            },
            Case {
                name: "count one is rejected",
                orchestration: json!({"perspective_count": 1}),
                expected: Err(vec![issue_type::INVALID_PERSPECTIVE_COUNT]),
            },
            Case {
                name: "count above deployed is rejected, quorum left unchecked",
                orchestration: json!({"perspective_count": 9, "quorum_count": 1}),
                expected: Err(vec![issue_type::INVALID_PERSPECTIVE_COUNT]),
            },
            Case {
                name: "negative count is rejected",
                orchestration: json!({"perspective_count": -3}),
                expected: Err(vec![issue_type::INVALID_PERSPECTIVE_COUNT]),
            },
            Case {
                name: "max attempts within the cap",
                orchestration: json!({"max_attempts": 2}),
                expected: Ok((6, 4, retry(2))),
            },
            Case {
                name: "max attempts above the cap is lowered",
                orchestration: json!({"max_attempts": 40}),
                expected: Ok((6, 4, retry(3))),
            },
            Case {
                name: "max attempts beyond u32 is lowered",
                orchestration: json!({"max_attempts": 9_000_000_000_i64}),
                expected: Ok((6, 4, retry(3))),
            },
            Case {
                name: "max attempts zero is rejected",
                orchestration: json!({"max_attempts": 0}),
                expected: Err(vec![issue_type::INVALID_MAX_ATTEMPTS]),
            },
            Case {
                name: "cohort number forces a single attempt",
                orchestration: json!({"max_attempts": 3, "cohort_for_single_attempt": 2}),
                expected: Ok((6, 4, single(2))),
            },
            Case {
                name: "cohort number far above any cohort count is left to orchestration",
                orchestration: json!({"cohort_for_single_attempt": 9}),
                expected: Ok((6, 4, single(9))),
            },
            Case {
                name: "cohort number zero is rejected",
                orchestration: json!({"cohort_for_single_attempt": 0}),
                expected: Err(vec![issue_type::INVALID_COHORT_FOR_SINGLE_ATTEMPT]),
            },
            Case {
                name: "every bad parameter is reported",
                orchestration: json!({
                    "perspective_count": 0,
                    "max_attempts": -1,
                    "cohort_for_single_attempt": -1,
                }),
                expected: Err(vec![
                    issue_type::INVALID_PERSPECTIVE_COUNT,
                    issue_type::INVALID_MAX_ATTEMPTS,
                    issue_type::INVALID_COHORT_FOR_SINGLE_ATTEMPT,
                ]),
            },
        ];

        for case in cases {
            let result = validate(&caa_request(case.orchestration), &LIMITS);
            match (&result, &case.expected) {
                (Ok(plan), Ok((count, quorum, attempts))) => {
                    assert_eq!(plan.perspective_count(), *count, "case {:?}", case.name);
                    assert_eq!(plan.quorum_count(), *quorum, "case {:?}", case.name);
                    assert_eq!(plan.attempts(), *attempts, "case {:?}", case.name);
                }
                (Err(_), Err(expected)) => {
                    assert_eq!(&issue_types(&result), expected, "case {:?}", case.name);
                }
                _ => panic!("case {:?}: got {result:?}", case.name),
            }
        }
    }

    #[test]
    fn uncapped_max_attempts_is_kept() {
        let limits = ValidationLimits {
            absolute_max_attempts: None,
            ..LIMITS
        };
        let plan =
            validate(&caa_request(json!({"max_attempts": 40})), &limits).expect("request is valid");
        assert_eq!(
            plan.attempts(),
            AttemptPolicy::Retry {
                max_attempts: NonZeroU32::new(40).expect("positive")
            }
        );
    }

    #[test]
    fn api_messages_match_the_reference_service() {
        let result = validate(
            &caa_request(json!({"perspective_count": 3, "quorum_count": 5})),
            &LIMITS,
        );
        assert_eq!(
            result.err(),
            Some(vec![ValidationIssue::new(
                issue_type::INVALID_QUORUM_COUNT,
                "Invalid quorum count: 5"
            )])
        );

        let result = validate(&caa_request(json!({"perspective_count": 20})), &LIMITS);
        assert_eq!(
            result.err(),
            Some(vec![ValidationIssue::new(
                issue_type::INVALID_PERSPECTIVE_COUNT,
                "Invalid perspective count: 20"
            )])
        );
    }

    #[test]
    fn check_parameter_issues() {
        let digest = "653471d42925d7eb4cd39a39cda8b34d3034c94cb90067ab78c8123560ba2e5f";
        let cases = [
            (
                "website-change with a plain value: valid",
                json!({"validation_method": "website-change", "challenge_value": "token",
                       "http_token_path": "doc.txt"}),
                vec![],
            ),
            (
                "website-change with an empty value: empty challenge",
                json!({"validation_method": "website-change", "challenge_value": "",
                       "http_token_path": "doc.txt"}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "website-change with a blank value: empty challenge",
                json!({"validation_method": "website-change", "challenge_value": "  ",
                       "http_token_path": "doc.txt"}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "website-change with a good regex: valid",
                json!({"validation_method": "website-change", "challenge_value": "token",
                       "http_token_path": "doc.txt", "match_regex": "^token-[0-9]+$"}),
                vec![],
            ),
            (
                "website-change with an unclosed group: invalid regex",
                json!({"validation_method": "website-change", "challenge_value": "token",
                       "http_token_path": "doc.txt", "match_regex": "(token"}),
                vec![issue_type::INVALID_MATCH_REGEX],
            ),
            (
                "acme-http-01 with an empty key authorization: empty challenge",
                json!({"validation_method": "acme-http-01", "token": "t",
                       "key_authorization": ""}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "acme-dns-01 with an empty hash: empty challenge",
                json!({"validation_method": "acme-dns-01", "key_authorization_hash": ""}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "acme-tls-alpn-01 with 64 hex digits: valid",
                json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": digest}),
                vec![],
            ),
            (
                "acme-tls-alpn-01 with upper-case hex: valid",
                json!({"validation_method": "acme-tls-alpn-01",
                       "key_authorization_hash": digest.to_uppercase()}),
                vec![],
            ),
            (
                "acme-tls-alpn-01 with a base64url digest: invalid hash",
                json!({"validation_method": "acme-tls-alpn-01",
                       "key_authorization_hash": "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"}),
                vec![issue_type::INVALID_KEY_AUTHORIZATION_HASH],
            ),
            (
                "acme-tls-alpn-01 with 63 hex digits: invalid hash",
                json!({"validation_method": "acme-tls-alpn-01",
                       "key_authorization_hash": &digest[1..]}),
                vec![issue_type::INVALID_KEY_AUTHORIZATION_HASH],
            ),
            (
                "acme-tls-alpn-01 with an empty hash: empty challenge only",
                json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": ""}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "dns-persistent with one issuer: valid",
                json!({"validation_method": "dns-persistent",
                       "issuer_domain_names": ["ca.example"],
                       "expected_account_uri": "https://ca.example/acct/1"}),
                vec![],
            ),
            (
                "dns-persistent with no issuers: empty issuer list",
                json!({"validation_method": "dns-persistent", "issuer_domain_names": [],
                       "expected_account_uri": "https://ca.example/acct/1"}),
                vec![issue_type::EMPTY_ISSUER_DOMAIN_NAMES],
            ),
            (
                "dns-persistent with a blank issuer and account: two issues",
                json!({"validation_method": "dns-persistent",
                       "issuer_domain_names": ["ca.example", ""],
                       "expected_account_uri": ""}),
                vec![
                    issue_type::EMPTY_ISSUER_DOMAIN_NAMES,
                    issue_type::EMPTY_ACCOUNT_URI,
                ],
            ),
            (
                "dns-account-01 with a blank account URI: empty account",
                json!({"validation_method": "dns-account-01", "key_authorization_hash": "h",
                       "account_uri": " "}),
                vec![issue_type::EMPTY_ACCOUNT_URI],
            ),
            (
                "ip-address with an empty value: empty challenge",
                json!({"validation_method": "ip-address", "challenge_value": "",
                       "dns_record_type": "A"}),
                vec![issue_type::EMPTY_CHALLENGE_VALUE],
            ),
            (
                "ip-address with an IPv4 value for A: valid",
                json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1",
                       "dns_record_type": "A"}),
                vec![],
            ),
            (
                "ip-address with a name as value: invalid parameters",
                json!({"validation_method": "ip-address", "challenge_value": "not-an-ip",
                       "dns_record_type": "A"}),
                vec![issue_type::INVALID_DCV_CHECK_PARAMETERS],
            ),
            (
                "ip-address with an IPv6 value for A: invalid parameters",
                json!({"validation_method": "ip-address", "challenge_value": "2001:db8::1",
                       "dns_record_type": "A"}),
                vec![issue_type::INVALID_DCV_CHECK_PARAMETERS],
            ),
            (
                "dns-change with an underscore label prefix: valid",
                json!({"validation_method": "dns-change", "challenge_value": "v",
                       "dns_record_type": "TXT", "dns_name_prefix": "_dcv"}),
                vec![],
            ),
            (
                "dns-change with a path as prefix: invalid parameters",
                json!({"validation_method": "dns-change", "challenge_value": "v",
                       "dns_record_type": "TXT", "dns_name_prefix": "../.."}),
                vec![issue_type::INVALID_DCV_CHECK_PARAMETERS],
            ),
            (
                "website-change with a token path leaving its directory: invalid parameters",
                json!({"validation_method": "website-change", "challenge_value": "token",
                       "http_token_path": "../../admin"}),
                vec![issue_type::INVALID_DCV_CHECK_PARAMETERS],
            ),
            (
                "reverse-address-lookup of a domain name: invalid parameters",
                json!({"validation_method": "reverse-address-lookup",
                       "challenge_value": "host.example"}),
                vec![issue_type::INVALID_DCV_CHECK_PARAMETERS],
            ),
        ];
        for (name, parameters, expected) in cases {
            let result = validate(&dcv_request(parameters), &LIMITS);
            assert_eq!(issue_types(&result), expected, "case {name:?}: {result:?}");
        }
    }

    #[test]
    fn request_level_issues() {
        let cases = [
            (
                "dcv without parameters",
                json!({"check_type": "dcv", "domain_or_ip_target": "example.com"}),
                vec![issue_type::MISSING_DCV_CHECK_PARAMETERS],
            ),
            (
                "misplaced wildcard",
                json!({"check_type": "caa", "domain_or_ip_target": "a.*.example.com"}),
                vec![issue_type::INVALID_TARGET],
            ),
            (
                "single-label target",
                json!({"check_type": "caa", "domain_or_ip_target": "localhost"}),
                vec![issue_type::INVALID_TARGET],
            ),
            (
                "bad target, bad count and missing parameters together",
                json!({"check_type": "dcv", "domain_or_ip_target": "",
                       "orchestration_parameters": {"perspective_count": 99}}),
                vec![
                    issue_type::INVALID_TARGET,
                    issue_type::INVALID_PERSPECTIVE_COUNT,
                    issue_type::MISSING_DCV_CHECK_PARAMETERS,
                ],
            ),
            (
                "caa ignores stray dcv parameters",
                json!({"check_type": "caa", "domain_or_ip_target": "*.example.com",
                       "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                                "key_authorization_hash": ""}}),
                vec![],
            ),
        ];
        for (name, body, expected) in cases {
            let result = validate(&request(body), &LIMITS);
            assert_eq!(issue_types(&result), expected, "case {name:?}: {result:?}");
        }
    }

    #[test]
    fn plan_keeps_request_and_parameters() {
        let body = json!({
            "check_type": "dcv",
            "domain_or_ip_target": "*.Example.COM",
            "trace_identifier": "t-1",
            "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                     "key_authorization_hash": "abc"},
        });
        let original = request(body);
        let plan = validate(&original, &LIMITS).expect("request is valid");
        assert_eq!(plan.request(), &original);
        assert_eq!(plan.check_type(), CheckType::Dcv);
        assert_eq!(plan.target().to_string(), "*.example.com");
        assert!(matches!(
            plan.check_parameters(),
            EchoedCheckParameters::Dcv { .. }
        ));

        let caa = validate(&caa_request(json!(null)), &LIMITS).expect("request is valid");
        assert_eq!(
            caa.check_parameters(),
            &EchoedCheckParameters::Caa {
                caa_check_parameters: None
            }
        );
    }

    #[test]
    fn enum_values_from_raw_bodies() {
        let cases = [
            (
                "known certificate type",
                json!({"caa_check_parameters": {"certificate_type": "s-mime"}}),
                vec![],
            ),
            (
                "null certificate type",
                json!({"caa_check_parameters": {"certificate_type": null}}),
                vec![],
            ),
            (
                "unknown certificate type",
                json!({"caa_check_parameters": {"certificate_type": "code-signing"}}),
                vec![(
                    issue_type::INVALID_CERTIFICATE_TYPE,
                    "Invalid 'certificate-type' specified: code-signing",
                )],
            ),
            (
                "numeric certificate type",
                json!({"caa_check_parameters": {"certificate_type": 3}}),
                vec![(
                    issue_type::INVALID_CERTIFICATE_TYPE,
                    "Invalid 'certificate-type' specified: 3",
                )],
            ),
            (
                "dns-change with TXT",
                json!({"dcv_check_parameters": {"validation_method": "dns-change",
                                                "dns_record_type": "TXT"}}),
                vec![],
            ),
            (
                "dns-change with A",
                json!({"dcv_check_parameters": {"validation_method": "dns-change",
                                                "dns_record_type": "A"}}),
                vec![(
                    issue_type::INVALID_VALIDATION_METHOD_RECORD_TYPE_COMBINATION,
                    "Invalid validation method and record type combination: dns-change and A",
                )],
            ),
            (
                "ip-address with TXT",
                json!({"dcv_check_parameters": {"validation_method": "ip-address",
                                                "dns_record_type": "TXT"}}),
                vec![(
                    issue_type::INVALID_VALIDATION_METHOD_RECORD_TYPE_COMBINATION,
                    "Invalid validation method and record type combination: ip-address and TXT",
                )],
            ),
            (
                "ip-address with lower-case aaaa",
                json!({"dcv_check_parameters": {"validation_method": "ip-address",
                                                "dns_record_type": "aaaa"}}),
                vec![(
                    issue_type::INVALID_VALIDATION_METHOD_RECORD_TYPE_COMBINATION,
                    "Invalid validation method and record type combination: ip-address and aaaa",
                )],
            ),
            (
                "method without a record type field",
                json!({"dcv_check_parameters": {"validation_method": "acme-dns-01",
                                                "dns_record_type": "CNAME"}}),
                vec![],
            ),
            ("not an object", json!("text"), vec![]),
        ];
        for (name, body, expected) in cases {
            let issues = enum_value_issues(&body);
            let found: Vec<(&str, &str)> = issues
                .iter()
                .map(|issue| (issue.issue_type, issue.message.as_str()))
                .collect();
            assert_eq!(found, expected, "case {name:?}");
        }
    }
}
