//! Test fixtures for the orchestration tests: a small catalogue, an orchestrator over it,
//! canned perspective replies, and a `tracing` layer that captures audit events.

use std::collections::{BTreeMap, HashMap};
use std::future::{Ready, ready};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use mpic_shared::catalogue::{Catalogue, PerspectiveInfo};
use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{CheckDetails, CheckError, CheckResponse, error_type};
use mpic_shared::request::{CheckType, MpicRequest};

use super::audit::AUDIT_TARGET;
use super::{HashSecret, OrchestrationSettings, Orchestrator};
use crate::transport::TransportError;

/// Eight perspectives over four RIRs, where us-east-1 and us-east-2 are too close.
pub(crate) const CATALOGUE: &str = r#"
available_regions:
  - {code: us-east-1, rir: ARIN, too_close_codes: [us-east-2]}
  - {code: us-east-2, rir: ARIN}
  - {code: us-west-2, rir: ARIN}
  - {code: eu-west-1, rir: RIPE NCC}
  - {code: eu-central-1, rir: RIPE NCC}
  - {code: ap-northeast-1, rir: APNIC}
  - {code: ap-southeast-1, rir: APNIC}
  - {code: sa-east-1, rir: LACNIC}
"#;

pub(crate) fn catalogue() -> Catalogue {
    Catalogue::from_yaml(CATALOGUE).expect("fixture catalogue parses")
}

pub(crate) fn settings(
    default_perspective_count: usize,
    absolute_max_attempts: Option<u32>,
) -> OrchestrationSettings {
    OrchestrationSettings {
        perspectives: catalogue().iter().map(|entry| entry.code.clone()).collect(),
        default_perspective_count,
        absolute_max_attempts: absolute_max_attempts.and_then(NonZeroU32::new),
        hash_secret: HashSecret::new(b"fixture secret").expect("secret is not empty"),
    }
}

pub(crate) fn orchestrator(
    default_perspective_count: usize,
    absolute_max_attempts: Option<u32>,
) -> Orchestrator {
    Orchestrator::new(
        settings(default_perspective_count, absolute_max_attempts),
        &catalogue(),
    )
    .expect("fixture settings are valid")
}

pub(crate) fn request(body: serde_json::Value) -> MpicRequest {
    serde_json::from_value(body).expect("fixture request parses")
}

/// The reply of a canned perspective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Canned {
    Pass,
    Fail,
    NotCompleted,
    TimedOut,
    NoResponders,
    /// A reply for the other check type.
    WrongCheckType,
}

/// Returns the reply or transport error a canned perspective gives.
pub(crate) fn canned_result(
    code: &str,
    canned: Canned,
    check_type: CheckType,
    method: Option<ValidationMethod>,
) -> Result<CheckResponse, TransportError> {
    let details = CheckDetails::empty(check_type, method);
    match canned {
        Canned::Pass => Ok(CheckResponse::completed(check_type, true, details)),
        Canned::Fail => Ok(CheckResponse::completed(check_type, false, details)),
        Canned::NotCompleted => Ok(CheckResponse::not_completed(
            check_type,
            method,
            CheckError::new(error_type::CAA_LOOKUP, "SERVFAIL"),
        )),
        Canned::TimedOut => Err(TransportError::TimedOut {
            perspective: code.to_owned(),
            timeout: std::time::Duration::from_secs(30),
        }),
        Canned::NoResponders => Err(TransportError::NoResponders {
            perspective: code.to_owned(),
            subject: format!("mpic.{code}.caa"),
        }),
        Canned::WrongCheckType => {
            let other = match check_type {
                CheckType::Caa => CheckType::Dcv,
                CheckType::Dcv => CheckType::Caa,
            };
            Ok(CheckResponse::completed(
                other,
                true,
                CheckDetails::empty(other, Some(ValidationMethod::DnsChange)),
            ))
        }
    }
}

/// Records the calls a canned call function receives.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallLog(Arc<Mutex<Vec<(String, CheckType, Bytes)>>>);

impl CallLog {
    pub(crate) fn calls(&self) -> Vec<(String, CheckType, Bytes)> {
        self.0.lock().expect("call log lock").clone()
    }
}

/// Returns a call function that replies from `outcomes` (code to canned reply, `fallback` for
/// the others) and logs every call.
pub(crate) fn canned_calls<'a>(
    outcomes: HashMap<String, Canned>,
    fallback: Canned,
    method: Option<ValidationMethod>,
    log: CallLog,
) -> impl Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Ready<Result<CheckResponse, TransportError>>
{
    move |perspective, check_type, body| {
        log.0
            .lock()
            .expect("call log lock")
            .push((perspective.code.clone(), check_type, body));
        let canned = outcomes.get(&perspective.code).copied().unwrap_or(fallback);
        ready(canned_result(&perspective.code, canned, check_type, method))
    }
}

/// One captured `tracing` event: its level and its fields rendered as text.
#[derive(Debug, Clone)]
pub(crate) struct CapturedEvent {
    pub(crate) level: Level,
    pub(crate) fields: BTreeMap<String, String>,
}

impl CapturedEvent {
    /// Parses the event's `record` field.
    pub(crate) fn record(&self) -> serde_json::Value {
        let text = self.fields.get("record").expect("audit event has a record");
        serde_json::from_str(text).expect("record is JSON")
    }
}

#[derive(Clone, Default)]
struct AuditCapture(Arc<Mutex<Vec<CapturedEvent>>>);

impl<S: Subscriber> Layer<S> for AuditCapture {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let mut fields = FieldText::default();
        event.record(&mut fields);
        self.0.lock().expect("capture lock").push(CapturedEvent {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

#[derive(Default)]
struct FieldText(BTreeMap<String, String>);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Runs `test` on a current-thread runtime with a subscriber that captures audit events, and
/// returns its output with the events. Everything, including futures dropped by the test,
/// runs on this thread, so every audit event is captured.
pub(crate) fn with_audit_capture<T>(
    test: impl FnOnce(&tokio::runtime::Runtime) -> T,
) -> (T, Vec<CapturedEvent>) {
    let capture = AuditCapture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime builds");
    let output = tracing::subscriber::with_default(subscriber, || test(&runtime));
    let events = capture.0.lock().expect("capture lock").clone();
    (output, events)
}
