//! Attempts: calling one cohort's perspectives at once, judging the attempt, and moving to the
//! next cohort until an attempt is valid or the attempts run out.
//!
//! Each attempt sends the same JSON body to every perspective of its cohort concurrently,
//! through the caller's function. It waits for all of them, because every perspective's reply
//! is evidence the CA must record (BR §5.4.1). The transport's own timeout bounds each call. A call that fails in transport, or returns a reply for another check, becomes that
//! perspective's not-completed reply with error type `mpic_error:coordinator:remote_check`, so
//! it counts against the quorum and never as a pass.
//!
//! A retry uses the next cohort and is judged on its own replies only (BR §3.2.2.9: "CAs MUST
//! NOT rely on corroborations from previous attempts"). The earlier attempts' replies are
//! reported in `previous_attempt_results`.
//!
//! This module does not choose cohorts ([`super::cohort`]) or count the quorum
//! ([`super::quorum`]), and it knows nothing of NATS or HTTP.

use std::future::Future;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use tracing::Instrument;

use mpic_shared::catalogue::PerspectiveInfo;
use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{
    CaaCheckRequest, CheckDetails, CheckError, CheckResponse, DcvCheckRequest, error_type,
};
use mpic_shared::request::CheckType;
use mpic_shared::response::{
    ActualOrchestrationParameters, EchoedCheckParameters, MpicResponse, PerspectiveResponse,
};

use super::OrchestrationError;
use super::audit::{AttemptRecord, AuditScope};
use super::cohort::Cohort;
use super::quorum::{self, CheckOutcome, QuorumResult};
use super::validate::{AttemptPolicy, OrchestrationPlan};
use crate::transport::{TransportError, TransportErrorKind};

/// The cohorts a request's attempts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Zero-based index of the first attempt's cohort.
    first_cohort: usize,
    /// Attempts to make at most.
    attempts: NonZeroU32,
}

/// One perspective's reply in one attempt, with the facts the audit record needs.
#[derive(Debug, Clone)]
pub(crate) struct PerspectiveReply<'a> {
    /// The perspective called.
    pub(crate) perspective: &'a PerspectiveInfo,
    /// Its reply, or the coordinator's not-completed reply when the call failed.
    pub(crate) response: CheckResponse,
    /// The kind of transport failure, when the call failed.
    pub(crate) transport_error: Option<TransportErrorKind>,
    /// Time from sending the call to its result.
    pub(crate) latency: Duration,
}

/// Plans the attempts for a policy over `cohort_count` cohorts.
///
/// With `Retry`, attempt k uses cohort k. When `absolute_max_attempts` is configured the
/// attempts cycle back to the first cohort after the last. Without it, attempts stop at the
/// cohort count, so a request cannot repeat a cohort unless the operator allowed more attempts.
/// A cohort number above the cohort count is an error (HTTP 500 in the Open MPIC API).
pub(crate) fn schedule(
    policy: AttemptPolicy,
    cohort_count: usize,
    absolute_max_attempts: Option<NonZeroU32>,
) -> Result<Schedule, OrchestrationError> {
    match policy {
        AttemptPolicy::Retry { max_attempts } => {
            let attempts = match absolute_max_attempts {
                Some(_) => max_attempts,
                None => {
                    let cohorts = NonZeroU32::new(u32::try_from(cohort_count).unwrap_or(u32::MAX))
                        .unwrap_or(NonZeroU32::MIN);
                    max_attempts.min(cohorts)
                }
            };
            Ok(Schedule {
                first_cohort: 0,
                attempts,
            })
        }
        AttemptPolicy::SingleCohort { cohort_number } => {
            let index = usize::try_from(cohort_number.get() - 1).unwrap_or(usize::MAX);
            if index >= cohort_count {
                return Err(OrchestrationError::CohortNotAvailable { cohort_number });
            }
            Ok(Schedule {
                first_cohort: index,
                attempts: NonZeroU32::MIN,
            })
        }
    }
}

/// Runs the scheduled attempts and builds the response from the last one. Returns
/// [`OrchestrationError::NoCohort`] when `cohorts` is empty.
pub(crate) async fn run_attempts<'a, F, Fut>(
    plan: &OrchestrationPlan,
    cohorts: &[Cohort<'a>],
    schedule: Schedule,
    call: &F,
    audit: &mut AuditScope,
) -> Result<MpicResponse, OrchestrationError>
where
    F: Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Fut,
    Fut: Future<Output = Result<CheckResponse, TransportError>>,
{
    let body = perspective_request_body(plan)?;
    let mut previous_attempts = Vec::new();
    let mut attempt: u32 = 1;
    loop {
        let position = schedule.first_cohort + attempt as usize - 1;
        let Some(cohort_index) = position.checked_rem(cohorts.len()) else {
            return Err(OrchestrationError::NoCohort {
                perspective_count: plan.perspective_count(),
            });
        };
        let replies = call_cohort(plan, &cohorts[cohort_index], &body, call, attempt).await;
        let members: Vec<_> = replies
            .iter()
            .map(|reply| (reply.perspective.rir, CheckOutcome::of(&reply.response)))
            .collect();
        let quorum = quorum::evaluate(plan.quorum_count(), &members);
        audit.record_attempt(AttemptRecord::new(
            attempt,
            cohort_index + 1,
            &replies,
            &quorum,
        ));
        tracing::debug!(
            trace_identifier = plan.request().trace_identifier.as_deref(),
            attempt,
            cohort = cohort_index + 1,
            quorum = %quorum.summary(),
            is_valid = quorum.is_valid,
            "attempt finished"
        );

        let perspectives: Vec<PerspectiveResponse> = replies
            .into_iter()
            .map(|reply| PerspectiveResponse {
                perspective_code: reply.perspective.code.clone(),
                check_response: reply.response,
            })
            .collect();
        if quorum.is_valid || attempt >= schedule.attempts.get() {
            return Ok(build_response(
                plan,
                perspectives,
                previous_attempts,
                &quorum,
                attempt,
            ));
        }
        previous_attempts.push(perspectives);
        attempt += 1;
    }
}

/// Calls every member of a cohort at once and returns their replies in cohort order. One slow
/// or failing perspective does not hold up the others' calls.
async fn call_cohort<'a, F, Fut>(
    plan: &OrchestrationPlan,
    cohort: &Cohort<'a>,
    body: &Bytes,
    call: &F,
    attempt: u32,
) -> Vec<PerspectiveReply<'a>>
where
    F: Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Fut,
    Fut: Future<Output = Result<CheckResponse, TransportError>>,
{
    let check_type = plan.check_type();
    let calls = cohort.members().iter().map(|&perspective| {
        let span = tracing::info_span!(
            "perspective_call",
            perspective = %perspective.code,
            attempt,
            check_type = %check_type,
        );
        let body = body.clone();
        async move {
            let started = Instant::now();
            let result = call(perspective, check_type, body).await;
            (perspective, result, started.elapsed())
        }
        .instrument(span)
    });

    join_all(calls)
        .await
        .into_iter()
        .map(|(perspective, result, latency)| to_reply(plan, perspective, result, latency, attempt))
        .collect()
}

/// Turns a call's result into the perspective's reply, replacing a transport failure or a
/// reply for another check by a not-completed reply.
fn to_reply<'a>(
    plan: &OrchestrationPlan,
    perspective: &'a PerspectiveInfo,
    result: Result<CheckResponse, TransportError>,
    latency: Duration,
    attempt: u32,
) -> PerspectiveReply<'a> {
    let check_type = plan.check_type();
    let method = validation_method(plan);
    let checked = result.and_then(|response| reply_matching(perspective, plan, response));
    match checked {
        Ok(response) => {
            tracing::debug!(
                perspective = %perspective.code,
                attempt,
                passed = response.check_passed,
                completed = response.check_completed,
                latency_ms = millis(latency),
                "perspective replied"
            );
            PerspectiveReply {
                perspective,
                response,
                transport_error: None,
                latency,
            }
        }
        Err(error) => {
            let kind = error.kind();
            tracing::warn!(
                trace_identifier = plan.request().trace_identifier.as_deref(),
                perspective = %perspective.code,
                attempt,
                error_kind = ?kind,
                %error,
                "perspective call failed; its check counts as not completed"
            );
            let check_error = CheckError::new(
                error_type::COORDINATOR_REMOTE_CHECK,
                remote_check_message(kind),
            );
            PerspectiveReply {
                perspective,
                response: CheckResponse::not_completed(check_type, method, check_error),
                transport_error: Some(kind),
                latency,
            }
        }
    }
}

/// Accepts a reply only when it is for the check that was sent: same check type and, for DCV,
/// same validation method. A reply for another check is no evidence about this one.
fn reply_matching(
    perspective: &PerspectiveInfo,
    plan: &OrchestrationPlan,
    response: CheckResponse,
) -> Result<CheckResponse, TransportError> {
    let expected_type = plan.check_type();
    if response.check_type != expected_type {
        return Err(TransportError::InvalidReply {
            perspective: perspective.code.clone(),
            reason: format!(
                "the reply is for a {} check, the request was for {}",
                response.check_type, expected_type
            ),
        });
    }
    let expected_method = validation_method(plan);
    let replied_method = details_method(&response.details);
    if let (Some(expected), Some(replied)) = (expected_method, replied_method)
        && expected != replied
    {
        return Err(TransportError::InvalidReply {
            perspective: perspective.code.clone(),
            reason: format!("the reply is for {replied}, the request was for {expected}"),
        });
    }
    Ok(response)
}

/// Returns the text of the coordinator's error for a failed call. It names only the kind of
/// failure, because the detail (subjects, URLs, library errors) belongs in the log.
fn remote_check_message(kind: TransportErrorKind) -> &'static str {
    match kind {
        TransportErrorKind::NoResponders => "The perspective has no running workers.",
        TransportErrorKind::TimedOut => "The perspective did not reply in time.",
        TransportErrorKind::InvalidReply => {
            "The perspective sent a reply that is not a valid reply to this check."
        }
        TransportErrorKind::WrongPerspective => {
            "The reply did not come from the perspective that was called."
        }
        TransportErrorKind::RequestFailed => "The request to the perspective failed.",
        TransportErrorKind::BadSignature => {
            "The reply's signature did not verify with the perspective's public key."
        }
    }
}

fn validation_method(plan: &OrchestrationPlan) -> Option<ValidationMethod> {
    match plan.check_parameters() {
        EchoedCheckParameters::Dcv {
            dcv_check_parameters,
        } => Some(dcv_check_parameters.method()),
        EchoedCheckParameters::Caa { .. } => None,
    }
}

fn details_method(details: &CheckDetails) -> Option<ValidationMethod> {
    match details {
        CheckDetails::Caa(_) => None,
        CheckDetails::Dns(dns) => Some(dns.validation_method),
        CheckDetails::Http(http) => Some(http.validation_method),
        CheckDetails::TlsAlpn(tls) => Some(tls.validation_method),
    }
}

/// Encodes the body every perspective receives: the target as requested, the trace identifier,
/// and the check parameters.
fn perspective_request_body(plan: &OrchestrationPlan) -> Result<Bytes, OrchestrationError> {
    let request = plan.request();
    let encoded = match plan.check_parameters() {
        EchoedCheckParameters::Caa {
            caa_check_parameters,
        } => serde_json::to_vec(&CaaCheckRequest {
            domain_or_ip_target: request.domain_or_ip_target.clone(),
            trace_identifier: request.trace_identifier.clone(),
            caa_check_parameters: caa_check_parameters.clone(),
        }),
        EchoedCheckParameters::Dcv {
            dcv_check_parameters,
        } => serde_json::to_vec(&DcvCheckRequest {
            domain_or_ip_target: request.domain_or_ip_target.clone(),
            trace_identifier: request.trace_identifier.clone(),
            dcv_check_parameters: dcv_check_parameters.clone(),
        }),
    };
    encoded
        .map(Bytes::from)
        .map_err(OrchestrationError::EncodeRequest)
}

fn build_response(
    plan: &OrchestrationPlan,
    perspectives: Vec<PerspectiveResponse>,
    previous_attempts: Vec<Vec<PerspectiveResponse>>,
    quorum: &QuorumResult,
    attempt_count: u32,
) -> MpicResponse {
    let request = plan.request();
    MpicResponse {
        check_type: plan.check_type(),
        domain_or_ip_target: request.domain_or_ip_target.clone(),
        trace_identifier: request.trace_identifier.clone(),
        is_valid: quorum.is_valid,
        mpic_completed: quorum.mpic_completed,
        request_orchestration_parameters: request.orchestration_parameters.clone(),
        actual_orchestration_parameters: ActualOrchestrationParameters {
            perspective_count: saturating_u32(plan.perspective_count()),
            quorum_count: saturating_u32(plan.quorum_count()),
            attempt_count,
        },
        perspectives,
        check_parameters: plan.check_parameters().clone(),
        previous_attempt_results: (!previous_attempts.is_empty()).then_some(previous_attempts),
    }
}

/// Converts a count for the response. Counts are at most the pool size (128), so saturation
/// never happens in practice.
fn saturating_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Returns a duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Arc;

    use serde_json::json;

    use mpic_shared::target::Target;

    use super::super::Orchestrator;
    use super::super::test_fixtures::{
        CallLog, Canned, canned_calls, canned_result, orchestrator, request,
    };

    fn cohort_codes(orchestrator: &Orchestrator, target: &str, size: usize) -> Vec<Vec<String>> {
        let target = Target::parse(target).expect("test target parses");
        orchestrator
            .pool
            .cohorts(&orchestrator.hash_secret, &target, size)
            .iter()
            .map(|cohort| {
                cohort
                    .members()
                    .iter()
                    .map(|member| member.code.clone())
                    .collect()
            })
            .collect()
    }

    fn codes_of(perspectives: &[PerspectiveResponse]) -> Vec<String> {
        perspectives
            .iter()
            .map(|perspective| perspective.perspective_code.clone())
            .collect()
    }

    fn outcomes_for(codes: &[String], canned: Canned) -> HashMap<String, Canned> {
        codes.iter().map(|code| (code.clone(), canned)).collect()
    }

    fn nonzero(value: u32) -> NonZeroU32 {
        NonZeroU32::new(value).expect("test value is positive")
    }

    #[test]
    fn schedule_follows_policy() {
        let retry = |n| AttemptPolicy::Retry {
            max_attempts: nonzero(n),
        };
        let single = |n| AttemptPolicy::SingleCohort {
            cohort_number: nonzero(n),
        };
        let cases = [
            ("one attempt by default", retry(1), 3, Some(3), Some((0, 1))),
            ("capped retries cycle", retry(5), 3, Some(5), Some((0, 5))),
            (
                "uncapped retries stop at cohort count",
                retry(5),
                3,
                None,
                Some((0, 3)),
            ),
            (
                "uncapped retries within cohort count",
                retry(2),
                3,
                None,
                Some((0, 2)),
            ),
            (
                "cohort two forces one attempt",
                single(2),
                3,
                Some(3),
                Some((1, 1)),
            ),
            ("last cohort is available", single(3), 3, None, Some((2, 1))),
            (
                "cohort above the count is an error",
                single(4),
                3,
                Some(3),
                None,
            ),
        ];
        for (name, policy, cohort_count, cap, expected) in cases {
            let result = schedule(policy, cohort_count, cap.map(nonzero));
            match (result, expected) {
                (Ok(plan), Some((first_cohort, attempts))) => {
                    assert_eq!(
                        plan.first_cohort, first_cohort,
                        "case {name:?}: first cohort"
                    );
                    assert_eq!(plan.attempts.get(), attempts, "case {name:?}: attempts");
                }
                (Err(error), None) => assert_eq!(
                    error.to_string(),
                    "The coordinator could not select cohort number 4 from available cohorts.",
                    "case {name:?}"
                ),
                (result, _) => panic!("case {name:?}: got {result:?}"),
            }
        }
    }

    #[tokio::test]
    async fn all_pass_in_one_attempt() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "Example.com",
            "trace_identifier": "trace-1",
            "caa_check_parameters": {"caa_domains": ["ca.example"]},
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        let log = CallLog::default();
        let response = orchestrator
            .run(
                &plan,
                canned_calls(HashMap::new(), Canned::Pass, None, log.clone()),
            )
            .await
            .expect("request is served");

        let first_cohort = &cohort_codes(&orchestrator, "example.com", 6)[0];
        assert!(response.is_valid);
        assert!(response.mpic_completed);
        assert_eq!(response.trace_identifier.as_deref(), Some("trace-1"));
        assert_eq!(response.domain_or_ip_target, "Example.com");
        assert_eq!(&codes_of(&response.perspectives), first_cohort);
        assert_eq!(response.previous_attempt_results, None);
        assert_eq!(
            response.actual_orchestration_parameters,
            ActualOrchestrationParameters {
                perspective_count: 6,
                quorum_count: 4,
                attempt_count: 1
            }
        );
        assert_eq!(response.request_orchestration_parameters, None);
        assert_eq!(
            response.check_parameters,
            EchoedCheckParameters::Caa {
                caa_check_parameters: request.caa_check_parameters.clone()
            }
        );

        let calls = log.calls();
        assert_eq!(calls.len(), 6, "one call per cohort member");
        for (code, check_type, body) in calls {
            assert_eq!(check_type, CheckType::Caa, "call to {code}");
            let sent: CaaCheckRequest =
                serde_json::from_slice(&body).expect("body is a CAA request");
            assert_eq!(sent.domain_or_ip_target, "Example.com", "call to {code}");
            assert_eq!(
                sent.trace_identifier.as_deref(),
                Some("trace-1"),
                "call to {code}"
            );
            assert_eq!(sent.caa_check_parameters, request.caa_check_parameters);
        }
    }

    #[tokio::test]
    async fn retry_uses_next_cohort() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "retry.example",
            "orchestration_parameters": {"perspective_count": 4, "max_attempts": 2},
        }));
        let cohorts = cohort_codes(&orchestrator, "retry.example", 4);
        assert_eq!(
            cohorts.len(),
            2,
            "eight perspectives give two cohorts of four"
        );

        let plan = orchestrator.validate(&request).expect("request is valid");
        let outcomes = outcomes_for(&cohorts[0], Canned::Fail);
        let response = orchestrator
            .run(
                &plan,
                canned_calls(outcomes, Canned::Pass, None, CallLog::default()),
            )
            .await
            .expect("request is served");

        assert!(response.is_valid);
        assert_eq!(response.actual_orchestration_parameters.attempt_count, 2);
        assert_eq!(codes_of(&response.perspectives), cohorts[1]);
        let previous = response
            .previous_attempt_results
            .expect("first attempt is reported");
        assert_eq!(previous.len(), 1);
        assert_eq!(codes_of(&previous[0]), cohorts[0]);
        assert!(
            previous[0]
                .iter()
                .all(|perspective| !perspective.check_response.check_passed)
        );
        assert_eq!(
            response.request_orchestration_parameters,
            request.orchestration_parameters
        );
    }

    #[tokio::test]
    async fn retry_does_not_count_earlier_corroborations() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "split.example",
            "orchestration_parameters": {"perspective_count": 4, "max_attempts": 2},
        }));
        let cohorts = cohort_codes(&orchestrator, "split.example", 4);
        // Two passes per cohort: four passes in total, but never three in one attempt.
        let mut outcomes = HashMap::new();
        for cohort in &cohorts {
            for (position, code) in cohort.iter().enumerate() {
                let canned = if position < 2 {
                    Canned::Pass
                } else {
                    Canned::Fail
                };
                outcomes.insert(code.clone(), canned);
            }
        }
        let plan = orchestrator.validate(&request).expect("request is valid");
        let response = orchestrator
            .run(
                &plan,
                canned_calls(outcomes, Canned::Fail, None, CallLog::default()),
            )
            .await
            .expect("request is served");

        assert!(!response.is_valid);
        assert!(response.mpic_completed);
        assert_eq!(response.actual_orchestration_parameters.attempt_count, 2);
        assert_eq!(codes_of(&response.perspectives), cohorts[1]);
    }

    #[tokio::test]
    async fn transport_errors_become_not_completed_replies() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "transport.example",
            "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                     "key_authorization_hash": "abc"},
        }));
        let cohort = &cohort_codes(&orchestrator, "transport.example", 6)[0];
        let mut outcomes = HashMap::new();
        outcomes.insert(cohort[0].clone(), Canned::TimedOut);
        outcomes.insert(cohort[1].clone(), Canned::NoResponders);
        let plan = orchestrator.validate(&request).expect("request is valid");
        let method = Some(ValidationMethod::AcmeDns01);
        let response = orchestrator
            .run(
                &plan,
                canned_calls(outcomes, Canned::Pass, method, CallLog::default()),
            )
            .await
            .expect("request is served");

        for failed in &response.perspectives[..2] {
            let reply = &failed.check_response;
            assert!(!reply.check_completed, "{}", failed.perspective_code);
            assert!(!reply.check_passed, "{}", failed.perspective_code);
            let errors = reply.errors.as_ref().expect("error is reported");
            assert_eq!(errors[0].error_type, error_type::COORDINATOR_REMOTE_CHECK);
            assert!(
                matches!(&reply.details, CheckDetails::Dns(dns)
                    if dns.validation_method == ValidationMethod::AcmeDns01),
                "{}: details keep the method's shape",
                failed.perspective_code
            );
        }
        // Four passes of six with two not completed: the quorum of four is met, and two not
        // completed is what the quorum can do without.
        let rirs: std::collections::BTreeSet<_> = orchestrator
            .perspectives()
            .iter()
            .filter(|p| cohort[2..].contains(&p.code))
            .map(|p| p.rir)
            .collect();
        assert!(
            rirs.len() >= 2,
            "fixture: the passing members span two RIRs"
        );
        assert!(response.is_valid);
        assert!(response.mpic_completed);
    }

    #[tokio::test]
    async fn reply_for_another_check_is_not_completed() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "mixup.example",
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        let response = orchestrator
            .run(
                &plan,
                canned_calls(
                    HashMap::new(),
                    Canned::WrongCheckType,
                    None,
                    CallLog::default(),
                ),
            )
            .await
            .expect("request is served");

        assert!(
            !response.is_valid,
            "replies for a DCV check must not pass a CAA check"
        );
        assert!(!response.mpic_completed);
        for perspective in &response.perspectives {
            let reply = &perspective.check_response;
            assert_eq!(
                reply.check_type,
                CheckType::Caa,
                "{}",
                perspective.perspective_code
            );
            assert!(!reply.check_completed, "{}", perspective.perspective_code);
        }
    }

    #[tokio::test]
    async fn reply_for_another_method_is_not_completed() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "method.example",
            "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                     "key_authorization_hash": "abc"},
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        // The perspectives reply as if they had run dns-change.
        let wrong_method = Some(ValidationMethod::DnsChange);
        let response = orchestrator
            .run(
                &plan,
                canned_calls(
                    HashMap::new(),
                    Canned::Pass,
                    wrong_method,
                    CallLog::default(),
                ),
            )
            .await
            .expect("request is served");

        assert!(!response.is_valid);
        assert!(
            response
                .perspectives
                .iter()
                .all(|perspective| !perspective.check_response.check_completed)
        );
    }

    #[tokio::test]
    async fn cohort_members_are_called_concurrently() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "concurrent.example",
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        // Every call waits until all six calls have started, so calling one after another
        // would never finish.
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let call = |perspective: &PerspectiveInfo, check_type: CheckType, _body: Bytes| {
            let barrier = Arc::clone(&barrier);
            let code = perspective.code.clone();
            async move {
                barrier.wait().await;
                canned_result(&code, Canned::Pass, check_type, None)
            }
        };
        let response = tokio::time::timeout(Duration::from_secs(10), orchestrator.run(&plan, call))
            .await
            .expect("calls run concurrently")
            .expect("request is served");
        assert!(response.is_valid);
    }

    #[tokio::test]
    async fn single_cohort_request_uses_that_cohort_once() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "single.example",
            "orchestration_parameters": {"perspective_count": 2, "max_attempts": 3,
                                         "cohort_for_single_attempt": 3},
        }));
        let cohorts = cohort_codes(&orchestrator, "single.example", 2);
        let plan = orchestrator.validate(&request).expect("request is valid");
        let log = CallLog::default();
        let response = orchestrator
            .run(
                &plan,
                canned_calls(HashMap::new(), Canned::Fail, None, log.clone()),
            )
            .await
            .expect("request is served");

        assert_eq!(response.actual_orchestration_parameters.attempt_count, 1);
        assert_eq!(codes_of(&response.perspectives), cohorts[2]);
        assert_eq!(log.calls().len(), 2);
    }

    #[tokio::test]
    async fn unavailable_cohort_number_fails_without_calls() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "orchestration_parameters": {"perspective_count": 5, "quorum_count": 4,
                                         "cohort_for_single_attempt": 9},
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        let log = CallLog::default();
        let error = orchestrator
            .run(
                &plan,
                canned_calls(HashMap::new(), Canned::Pass, None, log.clone()),
            )
            .await
            .expect_err("cohort 9 does not exist");

        assert_eq!(
            error.to_string(),
            "The coordinator could not select cohort number 9 from available cohorts."
        );
        assert!(log.calls().is_empty());
    }

    #[tokio::test]
    async fn impossible_cohort_size_fails_without_calls() {
        let orchestrator = orchestrator(6, Some(3));
        // All eight include us-east-1 and us-east-2, which are too close.
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "orchestration_parameters": {"perspective_count": 8},
        }));
        let plan = orchestrator.validate(&request).expect("request is valid");
        let log = CallLog::default();
        let error = orchestrator
            .run(
                &plan,
                canned_calls(HashMap::new(), Canned::Pass, None, log.clone()),
            )
            .await
            .expect_err("no cohort of eight exists");

        assert!(matches!(
            error,
            OrchestrationError::NoCohort {
                perspective_count: 8
            }
        ));
        assert!(log.calls().is_empty());
    }

    #[tokio::test]
    async fn attempts_stop_at_cohort_count_without_cap() {
        let cases = [
            ("no cap: one attempt per cohort", None, 10, 2, 1),
            (
                "cap of three: third attempt reuses cohort one",
                Some(3),
                10,
                3,
                2,
            ),
        ];
        for (name, cap, max_attempts, expected_attempts, calls_to_first_cohort) in cases {
            let orchestrator = orchestrator(6, cap);
            let request = request(json!({
                "check_type": "caa",
                "domain_or_ip_target": "attempts.example",
                "orchestration_parameters": {"perspective_count": 4,
                                             "max_attempts": max_attempts},
            }));
            let cohorts = cohort_codes(&orchestrator, "attempts.example", 4);
            let plan = orchestrator.validate(&request).expect("request is valid");
            let log = CallLog::default();
            let response = orchestrator
                .run(
                    &plan,
                    canned_calls(HashMap::new(), Canned::Fail, None, log.clone()),
                )
                .await
                .expect("request is served");

            assert_eq!(
                response.actual_orchestration_parameters.attempt_count, expected_attempts,
                "case {name:?}"
            );
            let first_member_calls = log
                .calls()
                .iter()
                .filter(|(code, _, _)| *code == cohorts[0][0])
                .count();
            assert_eq!(first_member_calls, calls_to_first_cohort, "case {name:?}");
        }
    }

    /// The reference service's response when every perspective of a three-perspective cohort
    /// fails to look up CAA.
    const LOOKUP_FAILURE_FIXTURE: &str = include_str!(
        "../../../shared/tests/fixtures/python-reference/mpic-caa-lookup-failure.json"
    );
    /// The reference service's response to an acme-dns-01 request.
    const DNS_01_FIXTURE: &str = include_str!(
        "../../../shared/tests/fixtures/python-reference/mpic-dcv-acme-dns-01-cname.json"
    );

    fn object_keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .expect("value is an object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn response_matches_reference_lookup_failure() {
        let fixture: serde_json::Value =
            serde_json::from_str(LOOKUP_FAILURE_FIXTURE).expect("fixture parses");
        let orchestrator = orchestrator(6, Some(3));
        let request = request(fixture["request"].clone());
        let plan = orchestrator.validate(&request).expect("request is valid");
        let response = orchestrator
            .run(
                &plan,
                canned_calls(
                    HashMap::new(),
                    Canned::NotCompleted,
                    None,
                    CallLog::default(),
                ),
            )
            .await
            .expect("request is served");
        let ours = serde_json::to_value(&response).expect("response serializes");
        let reference = &fixture["response"];

        assert_eq!(object_keys(&ours), object_keys(reference));
        for field in [
            "is_valid",
            "mpic_completed",
            "actual_orchestration_parameters",
            "request_orchestration_parameters",
            "caa_check_parameters",
            "previous_attempt_results",
            "trace_identifier",
            "domain_or_ip_target",
            "check_type",
        ] {
            assert_eq!(ours[field], reference[field], "field {field}");
        }
        assert_eq!(
            object_keys(&ours["perspectives"][0]),
            object_keys(&reference["perspectives"][0])
        );
    }

    #[tokio::test]
    async fn response_matches_reference_dns_01_echo() {
        let fixture: serde_json::Value =
            serde_json::from_str(DNS_01_FIXTURE).expect("fixture parses");
        let orchestrator = orchestrator(6, Some(3));
        let request = request(fixture["request"].clone());
        let plan = orchestrator.validate(&request).expect("request is valid");
        let method = Some(ValidationMethod::AcmeDns01);
        let response = orchestrator
            .run(
                &plan,
                canned_calls(HashMap::new(), Canned::Pass, method, CallLog::default()),
            )
            .await
            .expect("request is served");
        let ours = serde_json::to_value(&response).expect("response serializes");
        let reference = &fixture["response"];

        assert_eq!(object_keys(&ours), object_keys(reference));
        for field in [
            "is_valid",
            "mpic_completed",
            "actual_orchestration_parameters",
            "request_orchestration_parameters",
            "dcv_check_parameters",
            "previous_attempt_results",
        ] {
            assert_eq!(ours[field], reference[field], "field {field}");
        }
    }
}
