//! The audit record: one `tracing` event with target `audit` per validation request, on every
//! exit path.
//!
//! BR §5.4.1 requires the CA to log each Multi-Perspective Issuance Corroboration attempt from
//! each perspective ("an identifier that uniquely identifies the Network Perspective used; the
//! attempted domain name and/or IP address; and the result of the attempt") and the quorum
//! result of each attempted name as "3/4". The record holds that for every attempt, plus each
//! perspective's RIR, error types, latency, the relevant RRset as text where the reply carries
//! one, and which perspectives timed out or had no responders.
//!
//! The record is a typed [`AuditRecord`] serialized to JSON in the event's `record` field, so a
//! change of schema shows up in review. It never holds credentials: the check parameters
//! (which may carry HTTP headers) and the perspectives' error messages are left out, and only
//! the validation method and the error types are kept.
//!
//! Exit paths and who emits:
//! - a request that ran (valid, invalid, or failed while orchestrating): the orchestrator, via
//!   an `AuditScope` that also emits if the request future is dropped, for example when the
//!   API layer's deadline expires (`outcome: cancelled`);
//! - a request rejected by validation: the orchestrator's `handle`, or [`emit_rejection`] when
//!   the API layer rejects a body that did not parse;
//! - any other failure the API layer handles itself: [`emit_failure`].
//!
//! NOTE: The perspective replies do not say which DNS resolvers a perspective used, so the
//! record cannot hold them.

use std::fmt;
use std::time::Instant;

use serde::Serialize;

use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::CheckDetails;
use mpic_shared::request::{CheckType, MpicRequest};
use mpic_shared::response::MpicResponse;

use super::OrchestrationError;
use super::attempt::{PerspectiveReply, millis};
use super::quorum::{CheckOutcome, QuorumResult};
use super::validate::{OrchestrationPlan, ValidationIssue};
use crate::transport::TransportErrorKind;

/// The `tracing` target of the audit event.
pub const AUDIT_TARGET: &str = "audit";

/// Everything the CA must be able to reconstruct about one validation request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// The caller's trace identifier, when the request carried one.
    pub trace_identifier: Option<String>,
    /// The target as requested, absent when the body did not parse.
    pub target: Option<String>,
    /// `caa` or `dcv`, absent when the body did not parse.
    pub check_type: Option<CheckType>,
    /// The DCV method, absent for CAA.
    pub validation_method: Option<ValidationMethod>,
    /// The outcome of the request.
    pub outcome: AuditOutcome,
    /// The final verdict: true only when an attempt met the quorum.
    pub is_valid: bool,
    /// The last attempt's `mpic_completed`, absent when no attempt finished.
    pub mpic_completed: Option<bool>,
    /// Perspectives per cohort, once validated.
    pub perspective_count: Option<usize>,
    /// Perspectives that had to pass, once validated.
    pub quorum_count: Option<usize>,
    /// Every finished attempt, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// The validation issues, for outcome `rejected`.
    pub validation_issues: Vec<ValidationIssue>,
    /// The failure, for outcome `failed`, in the words of the error returned to the API layer.
    pub error: Option<String>,
    /// Time from the start of orchestration to the event, absent for rejections made before
    /// orchestration started.
    pub latency_ms: Option<u64>,
}

/// The outcome of a validation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// An attempt met the quorum.
    Valid,
    /// Every attempt ran and none met the quorum.
    Invalid,
    /// The request failed validation (HTTP 400).
    Rejected,
    /// The request was valid but could not be served (HTTP 500).
    Failed,
    /// The request future was dropped before it finished, for example by a deadline.
    Cancelled,
}

impl AuditOutcome {
    /// Returns the name used in the event and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Valid => "valid",
            AuditOutcome::Invalid => "invalid",
            AuditOutcome::Rejected => "rejected",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Cancelled => "cancelled",
        }
    }
}

/// One attempt: its cohort, each perspective's result and the quorum result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// One-based attempt number.
    pub attempt: u32,
    /// One-based number of the cohort used.
    pub cohort_number: usize,
    /// Perspectives that passed over perspectives called, as BR §5.4.1 writes it ("3/4").
    pub quorum: String,
    /// Whether this attempt met the quorum.
    pub is_valid: bool,
    /// Whether no more perspectives failed to complete than the quorum allows.
    pub mpic_completed: bool,
    /// The distinct RIRs of the perspectives that passed.
    pub corroborating_rirs: Vec<&'static str>,
    /// Each cohort member, in cohort order.
    pub perspectives: Vec<PerspectiveRecord>,
    /// Perspectives whose call timed out.
    pub timed_out: Vec<String>,
    /// Perspectives that had no running workers.
    pub no_responders: Vec<String>,
}

/// One perspective's part in one attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerspectiveRecord {
    /// The perspective code.
    pub perspective: String,
    /// The perspective's RIR, as the catalogue spells it.
    pub rir: &'static str,
    /// Passed, failed or not completed.
    pub outcome: CheckOutcome,
    /// The `error_type` of each error in the reply.
    pub error_types: Vec<String>,
    /// The kind of transport failure, when the call failed.
    pub transport_error: Option<TransportErrorKind>,
    /// Time from sending the call to its result.
    pub latency_ms: u64,
    /// The name where the relevant records were found (CAA and DNS-based methods).
    pub found_at: Option<String>,
    /// The records seen, as text (CAA and DNS-based methods).
    pub records_seen: Option<Vec<String>>,
}

impl AttemptRecord {
    pub(crate) fn new(
        attempt: u32,
        cohort_number: usize,
        replies: &[PerspectiveReply<'_>],
        quorum: &QuorumResult,
    ) -> Self {
        let failed_with = |kind: TransportErrorKind| -> Vec<String> {
            replies
                .iter()
                .filter(|reply| reply.transport_error == Some(kind))
                .map(|reply| reply.perspective.code.clone())
                .collect()
        };
        Self {
            attempt,
            cohort_number,
            quorum: quorum.summary(),
            is_valid: quorum.is_valid,
            mpic_completed: quorum.mpic_completed,
            corroborating_rirs: quorum
                .corroborating_rirs
                .iter()
                .map(|rir| rir.as_str())
                .collect(),
            perspectives: replies.iter().map(perspective_record).collect(),
            timed_out: failed_with(TransportErrorKind::TimedOut),
            no_responders: failed_with(TransportErrorKind::NoResponders),
        }
    }
}

/// Emits the audit event for a request rejected by validation. The API layer calls it when
/// the body did not parse into a request (`request` is then `None`). The orchestrator's
/// `handle` emits its own rejections.
pub fn emit_rejection(request: Option<&MpicRequest>, issues: &[ValidationIssue]) {
    let mut record = AuditRecord::describing(request, AuditOutcome::Rejected);
    record.validation_issues = issues.to_vec();
    emit(&record);
}

/// Emits the audit event for a request that failed in the API layer outside the orchestrator
/// (for example an internal error before orchestration started). Do not call it for a request
/// the orchestrator ran: that one has its event already.
pub fn emit_failure(request: Option<&MpicRequest>, error: &dyn fmt::Display) {
    let mut record = AuditRecord::describing(request, AuditOutcome::Failed);
    record.error = Some(error.to_string());
    emit(&record);
}

impl AuditRecord {
    /// Starts a record from the request's own fields.
    fn describing(request: Option<&MpicRequest>, outcome: AuditOutcome) -> Self {
        Self {
            trace_identifier: request.and_then(|request| request.trace_identifier.clone()),
            target: request.map(|request| request.domain_or_ip_target.clone()),
            check_type: request.map(|request| request.check_type),
            validation_method: request
                .filter(|request| request.check_type == CheckType::Dcv)
                .and_then(|request| request.dcv_check_parameters.as_ref())
                .map(|parameters| parameters.method()),
            outcome,
            is_valid: false,
            mpic_completed: None,
            perspective_count: None,
            quorum_count: None,
            attempts: Vec::new(),
            validation_issues: Vec::new(),
            error: None,
            latency_ms: None,
        }
    }
}

/// The audit record of a request the orchestrator is running. It emits exactly once: through
/// [`AuditScope::finish`], or when dropped unfinished (outcome `cancelled`).
#[derive(Debug)]
pub(crate) struct AuditScope {
    record: Option<AuditRecord>,
    started: Instant,
}

impl AuditScope {
    pub(crate) fn start(plan: &OrchestrationPlan) -> Self {
        let mut record = AuditRecord::describing(Some(plan.request()), AuditOutcome::Cancelled);
        record.perspective_count = Some(plan.perspective_count());
        record.quorum_count = Some(plan.quorum_count());
        Self {
            record: Some(record),
            started: Instant::now(),
        }
    }

    pub(crate) fn record_attempt(&mut self, attempt: AttemptRecord) {
        if let Some(record) = &mut self.record {
            record.mpic_completed = Some(attempt.mpic_completed);
            record.attempts.push(attempt);
        }
    }

    /// Completes the record from the orchestration's result and emits it.
    pub(crate) fn finish(mut self, result: &Result<MpicResponse, OrchestrationError>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        match result {
            Ok(response) => {
                record.is_valid = response.is_valid;
                record.mpic_completed = Some(response.mpic_completed);
                record.outcome = if response.is_valid {
                    AuditOutcome::Valid
                } else {
                    AuditOutcome::Invalid
                };
            }
            Err(error) => {
                record.outcome = AuditOutcome::Failed;
                record.error = Some(error.to_string());
            }
        }
        record.latency_ms = Some(millis(self.started.elapsed()));
        emit(&record);
    }
}

impl Drop for AuditScope {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.outcome = AuditOutcome::Cancelled;
            record.latency_ms = Some(millis(self.started.elapsed()));
            emit(&record);
        }
    }
}

fn perspective_record(reply: &PerspectiveReply<'_>) -> PerspectiveRecord {
    let response = &reply.response;
    let (found_at, records_seen) = match &response.details {
        CheckDetails::Caa(caa) => (caa.found_at.clone(), caa.records_seen.clone()),
        CheckDetails::Dns(dns) => (dns.found_at.clone(), dns.records_seen.clone()),
        CheckDetails::Http(_) | CheckDetails::TlsAlpn(_) => (None, None),
    };
    PerspectiveRecord {
        perspective: reply.perspective.code.clone(),
        rir: reply.perspective.rir.as_str(),
        outcome: CheckOutcome::of(response),
        error_types: response
            .errors
            .iter()
            .flatten()
            .map(|error| error.error_type.clone())
            .collect(),
        transport_error: reply.transport_error,
        latency_ms: millis(reply.latency),
        found_at,
        records_seen,
    }
}

/// Emits the one audit event. A record that cannot be serialized still produces exactly one
/// event, at `error`, because an audit gap needs a person to look.
fn emit(record: &AuditRecord) {
    let trace_identifier = record.trace_identifier.as_deref();
    let outcome = record.outcome.as_str();
    match serde_json::to_string(record) {
        Ok(json) => tracing::info!(
            target: AUDIT_TARGET,
            trace_identifier,
            outcome,
            is_valid = record.is_valid,
            record = %json,
            "validation request finished"
        ),
        Err(error) => tracing::error!(
            target: AUDIT_TARGET,
            trace_identifier,
            outcome,
            is_valid = record.is_valid,
            %error,
            "validation request finished, but its audit record could not be serialized"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use bytes::Bytes;
    use serde_json::json;
    use tracing::Level;

    use mpic_shared::catalogue::PerspectiveInfo;
    use mpic_shared::reply::{CheckResponse, DnsDetails};

    use super::super::HandleError;
    use super::super::test_fixtures::{
        CallLog, Canned, CapturedEvent, canned_calls, orchestrator, request, with_audit_capture,
    };
    use super::super::validate::issue_type;

    fn only_event(events: &[CapturedEvent], case: &str) -> serde_json::Value {
        assert_eq!(events.len(), 1, "case {case:?}: audit events {events:?}");
        events[0].record()
    }

    #[test]
    fn valid_request_emits_one_event() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "audit.example",
            "trace_identifier": "trace-valid",
        }));
        let (result, events) = with_audit_capture(|runtime| {
            runtime.block_on(orchestrator.handle(
                &request,
                canned_calls(HashMap::new(), Canned::Pass, None, CallLog::default()),
            ))
        });
        assert!(result.expect("request is served").is_valid);

        let record = only_event(&events, "valid");
        assert_eq!(events[0].level, Level::INFO);
        assert_eq!(events[0].fields["outcome"], "valid");
        assert_eq!(events[0].fields["trace_identifier"], "trace-valid");
        assert_eq!(record["outcome"], "valid");
        assert_eq!(record["trace_identifier"], "trace-valid");
        assert_eq!(record["target"], "audit.example");
        assert_eq!(record["check_type"], "caa");
        assert_eq!(record["is_valid"], true);
        assert_eq!(record["mpic_completed"], true);
        assert_eq!(record["perspective_count"], 6);
        assert_eq!(record["quorum_count"], 4);
        assert!(record["latency_ms"].is_u64());

        let attempts = record["attempts"].as_array().expect("attempts is a list");
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["quorum"], "6/6");
        assert_eq!(attempts[0]["cohort_number"], 1);
        let perspectives = attempts[0]["perspectives"].as_array().expect("a list");
        assert_eq!(perspectives.len(), 6);
        for perspective in perspectives {
            assert_eq!(perspective["outcome"], "passed", "{perspective}");
            assert!(perspective["rir"].is_string(), "{perspective}");
            assert!(perspective["perspective"].is_string(), "{perspective}");
            assert!(perspective["latency_ms"].is_u64(), "{perspective}");
            assert_eq!(perspective["transport_error"], serde_json::Value::Null);
        }
    }

    #[test]
    fn invalid_request_records_all_attempts() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "failing.example",
            "orchestration_parameters": {"perspective_count": 4, "max_attempts": 2},
        }));
        let mut outcomes = HashMap::new();
        for perspective in orchestrator.perspectives() {
            let canned = match perspective.rir {
                mpic_shared::catalogue::Rir::Arin => Canned::TimedOut,
                mpic_shared::catalogue::Rir::RipeNcc => Canned::NoResponders,
                _ => Canned::Fail,
            };
            outcomes.insert(perspective.code.clone(), canned);
        }
        let (result, events) = with_audit_capture(|runtime| {
            runtime.block_on(orchestrator.handle(
                &request,
                canned_calls(outcomes, Canned::Fail, None, CallLog::default()),
            ))
        });
        assert!(!result.expect("request is served").is_valid);

        let record = only_event(&events, "invalid");
        assert_eq!(record["outcome"], "invalid");
        assert_eq!(record["is_valid"], false);
        let attempts = record["attempts"].as_array().expect("attempts is a list");
        assert_eq!(attempts.len(), 2);

        let mut timed_out = Vec::new();
        let mut no_responders = Vec::new();
        for (number, attempt) in attempts.iter().enumerate() {
            assert_eq!(attempt["attempt"], number + 1);
            assert_eq!(attempt["quorum"], "0/4", "attempt {number}");
            for perspective in attempt["perspectives"].as_array().expect("a list") {
                let expected = match perspective["rir"].as_str() {
                    Some("ARIN") => (json!("not_completed"), json!("timed_out")),
                    Some("RIPE NCC") => (json!("not_completed"), json!("no_responders")),
                    _ => (json!("failed"), serde_json::Value::Null),
                };
                assert_eq!(perspective["outcome"], expected.0, "{perspective}");
                assert_eq!(perspective["transport_error"], expected.1, "{perspective}");
            }
            timed_out.extend(attempt["timed_out"].as_array().expect("a list").clone());
            no_responders.extend(attempt["no_responders"].as_array().expect("a list").clone());
        }
        let arin = orchestrator
            .perspectives()
            .iter()
            .filter(|p| p.rir == mpic_shared::catalogue::Rir::Arin)
            .count();
        assert_eq!(
            timed_out.len(),
            arin,
            "every ARIN perspective timed out once"
        );
        assert_eq!(
            no_responders.len(),
            2,
            "both RIPE NCC perspectives had no responders"
        );
    }

    #[test]
    fn rejected_request_emits_one_event() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "trace_identifier": "trace-rejected",
            "orchestration_parameters": {"perspective_count": 3, "quorum_count": 5},
        }));
        let log = CallLog::default();
        let (result, events) = with_audit_capture(|runtime| {
            runtime.block_on(orchestrator.handle(
                &request,
                canned_calls(HashMap::new(), Canned::Pass, None, log.clone()),
            ))
        });
        assert!(matches!(result, Err(HandleError::Rejected(_))));
        assert!(log.calls().is_empty());

        let record = only_event(&events, "rejected");
        assert_eq!(record["outcome"], "rejected");
        assert_eq!(record["trace_identifier"], "trace-rejected");
        assert_eq!(record["is_valid"], false);
        assert_eq!(record["attempts"], json!([]));
        assert_eq!(
            record["validation_issues"],
            json!([{"issue_type": "invalid-quorum-count", "message": "Invalid quorum count: 5"}])
        );
    }

    #[test]
    fn failed_request_emits_one_event() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "orchestration_parameters": {"cohort_for_single_attempt": 9},
        }));
        let (result, events) = with_audit_capture(|runtime| {
            runtime.block_on(orchestrator.handle(
                &request,
                canned_calls(HashMap::new(), Canned::Pass, None, CallLog::default()),
            ))
        });
        assert!(matches!(result, Err(HandleError::Failed(_))));

        let record = only_event(&events, "failed");
        assert_eq!(record["outcome"], "failed");
        assert_eq!(
            record["error"],
            "The coordinator could not select cohort number 9 from available cohorts."
        );
        assert_eq!(record["attempts"], json!([]));
    }

    #[test]
    fn dropped_request_emits_cancelled_event() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "slow.example",
        }));
        let never_replies = |_: &PerspectiveInfo, _: CheckType, _: Bytes| {
            std::future::pending::<Result<CheckResponse, crate::transport::TransportError>>()
        };
        let (still_pending, events) = with_audit_capture(|runtime| {
            runtime.block_on(async {
                let mut handling = Box::pin(orchestrator.handle(&request, never_replies));
                let polled = futures::poll!(handling.as_mut());
                drop(handling);
                polled.is_pending()
            })
        });
        assert!(still_pending, "the request waits for its perspectives");

        let record = only_event(&events, "cancelled");
        assert_eq!(record["outcome"], "cancelled");
        assert_eq!(record["target"], "slow.example");
        assert_eq!(record["attempts"], json!([]));
    }

    #[test]
    fn api_layer_events() {
        let issue = ValidationIssue::new(issue_type::INVALID_CERTIFICATE_TYPE, "bad type");
        let (_, events) = with_audit_capture(|_| emit_rejection(None, &[issue]));
        let record = only_event(&events, "rejected body");
        assert_eq!(record["outcome"], "rejected");
        assert_eq!(record["target"], serde_json::Value::Null);
        assert_eq!(
            record["validation_issues"][0]["issue_type"],
            "invalid-certificate-type"
        );

        let request = request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "example.com",
            "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                     "key_authorization_hash": "abc"},
        }));
        let (_, events) = with_audit_capture(|_| emit_failure(Some(&request), &"deadline"));
        let record = only_event(&events, "api failure");
        assert_eq!(record["outcome"], "failed");
        assert_eq!(record["error"], "deadline");
        assert_eq!(record["validation_method"], "acme-dns-01");
    }

    #[test]
    fn record_keeps_evidence_not_credentials() {
        let orchestrator = orchestrator(6, Some(3));
        let request = request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "evidence.example",
            "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                     "key_authorization_hash": "digest-value"},
        }));
        let call = |_: &PerspectiveInfo, _: CheckType, _: Bytes| {
            let mut details = DnsDetails::empty(ValidationMethod::AcmeDns01);
            details.found_at = Some("_acme-challenge.evidence.example".to_owned());
            details.records_seen = Some(vec!["digest-value".to_owned()]);
            std::future::ready(Ok(CheckResponse::completed(
                CheckType::Dcv,
                true,
                CheckDetails::Dns(details),
            )))
        };
        let (_, events) =
            with_audit_capture(|runtime| runtime.block_on(orchestrator.handle(&request, call)));
        let record = only_event(&events, "evidence");
        let perspective = &record["attempts"][0]["perspectives"][0];
        assert_eq!(perspective["found_at"], "_acme-challenge.evidence.example");
        assert_eq!(perspective["records_seen"], json!(["digest-value"]));

        let secret_header = request_with_header("Bearer secret-token-123");
        let (_, events) = with_audit_capture(|runtime| {
            runtime.block_on(orchestrator.handle(
                &secret_header,
                canned_calls(
                    HashMap::new(),
                    Canned::Pass,
                    Some(ValidationMethod::WebsiteChange),
                    CallLog::default(),
                ),
            ))
        });
        let text = &events[0].fields["record"];
        assert!(
            !text.contains("secret-token-123"),
            "record leaks a header: {text}"
        );
        assert_eq!(events[0].record()["validation_method"], "website-change");
    }

    fn request_with_header(authorization: &str) -> MpicRequest {
        request(json!({
            "check_type": "dcv",
            "domain_or_ip_target": "headers.example",
            "dcv_check_parameters": {"validation_method": "website-change",
                                     "challenge_value": "token",
                                     "http_token_path": "doc.txt",
                                     "http_headers": {"Authorization": authorization}},
        }))
    }
}
