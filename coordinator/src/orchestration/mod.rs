//! Orchestration: from a `POST /mpic` request to the verdict, by validating the request,
//! choosing cohorts, calling perspectives and applying the quorum rules of
//! [BR §3.2.2.9](https://cabforum.org/working-groups/server/baseline-requirements/requirements/#3229-multi-perspective-issuance-corroboration).
//!
//! # Modules
//!
//! - [`validate`]: request validation and defaults, giving an [`OrchestrationPlan`] or the
//!   list of [`ValidationIssue`]s for a 400 response.
//! - [`cohort`]: secret-keyed, deterministic cohorts that respect closeness and RIR rules.
//! - [`quorum`]: whether one attempt's replies meet the quorum.
//! - [`attempt`]: concurrent perspective calls per attempt, retries, the response body.
//! - [`audit`]: the one `target: "audit"` event per request.
//!
//! # Using it from the API layer
//!
//! Build one [`Orchestrator`] at start-up and share it (it is immutable, `Send` and `Sync`):
//!
//! ```text
//! let hash_secret = HashSecret::new(secret_bytes)?;             // rejects an empty secret
//! let orchestrator = Orchestrator::new(
//!     OrchestrationSettings {
//!         perspectives: deployed_codes,                         // Vec<String>
//!         default_perspective_count: 6,
//!         absolute_max_attempts: NonZeroU32::new(3),            // None: no operator cap
//!         hash_secret,
//!     },
//!     &catalogue,
//! )?;                                                           // SetupError names the problem
//! ```
//!
//! Per request, with a parsed [`MpicRequest`] and a function that performs one perspective
//! call:
//!
//! ```text
//! match orchestrator.handle(&request, |perspective, check_type, body| {
//!     transport.call(perspective, check_type, body)   // -> Result<CheckResponse, TransportError>
//! }).await {
//!     Ok(response) => 200 with `response` (whether or not `is_valid`),
//!     Err(HandleError::Rejected(issues)) => 400 {"error": "request-validation-failed",
//!                                                 "validation_issues": issues},
//!     Err(HandleError::Failed(error)) => 500 {"error": error.to_string()},
//! }
//! ```
//!
//! The call function receives the catalogue entry of the perspective, the check type, and the
//! JSON body of a `CaaCheckRequest` or `DcvCheckRequest`. Its future may borrow the entry. It
//! must bound its own time (the per-perspective timeout): the orchestrator waits for every call
//! of an attempt. A [`TransportError`] becomes that perspective's not-completed reply.
//!
//! `handle` emits exactly one audit event on each of these paths, including when its future is
//! dropped by a deadline, so the API layer must not emit another. When a body does not even
//! parse into an [`MpicRequest`], the API layer responds 400 itself and calls
//! [`audit::emit_rejection`]. In such a body, [`validate::enum_value_issues`] finds the API's
//! `invalid-certificate-type` and `invalid-validation-method-record-type-combination` issues. For a failure of its own outside `handle`, it calls [`audit::emit_failure`].
//!
//! [`Orchestrator::validate`] and [`Orchestrator::run`] are the two halves of `handle`, for
//! callers that need the plan in between. `run` emits the audit event of the request. After a
//! failed `validate` the caller must call [`audit::emit_rejection`].
//!
//! # What this module does not do
//!
//! It does not parse JSON bodies, render HTTP responses, reach perspectives (the caller's
//! function does), enforce a request deadline, or check CAA or DCV itself.

pub mod attempt;
pub mod audit;
pub mod cohort;
pub mod quorum;
pub mod validate;

#[cfg(test)]
mod test_fixtures;

use std::future::Future;
use std::num::NonZeroU32;

use bytes::Bytes;

use mpic_shared::catalogue::{Catalogue, PerspectiveInfo};
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::{CheckType, MpicRequest};
use mpic_shared::response::MpicResponse;

use self::audit::AuditScope;
use self::cohort::PerspectivePool;
pub use self::cohort::{HashSecret, HashSecretError, PoolError};
use self::validate::MIN_PERSPECTIVE_COUNT;
pub use self::validate::{OrchestrationPlan, ValidationIssue, ValidationLimits};
use crate::transport::TransportError;

/// The coordinator settings the orchestration needs, as the configuration provides them.
#[derive(Debug, Clone)]
pub struct OrchestrationSettings {
    /// Codes of the deployed perspectives (`perspectives` in `app.conf`). Each must be in the
    /// catalogue, in any order.
    pub perspectives: Vec<String>,
    /// Cohort size for requests that name none (`default_perspective_count`). It must be from 2
    /// to the number of deployed perspectives, and a cohort of that size must exist.
    pub default_perspective_count: usize,
    /// Upper bound on a request's `max_attempts` (`absolute_max_attempts`). With `None`, a
    /// request makes at most one attempt per cohort.
    pub absolute_max_attempts: Option<NonZeroU32>,
    /// The key of cohort selection (`hash_secret`).
    pub hash_secret: HashSecret,
}

/// Validates and runs validation requests. Build it once at start-up.
#[derive(Debug)]
pub struct Orchestrator {
    pool: PerspectivePool,
    hash_secret: HashSecret,
    limits: ValidationLimits,
}

/// Errors in the orchestration settings, found at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A deployed code is missing from the catalogue.
    #[error("perspectives: {code:?} is not in the perspective catalogue")]
    UnknownPerspective {
        /// The code as configured.
        code: String,
    },
    /// A code is listed twice.
    #[error("perspectives: {code:?} is listed more than once")]
    DuplicatePerspective {
        /// The repeated code.
        code: String,
    },
    /// Fewer perspectives than the smallest cohort.
    #[error("perspectives: {count} deployed, at least {MIN_PERSPECTIVE_COUNT} are needed")]
    TooFewPerspectives {
        /// The number deployed.
        count: usize,
    },
    /// The default cohort size is outside 2 to the number deployed.
    #[error(
        "default_perspective_count: {count} is outside 2 to {deployed} (the number of deployed perspectives)"
    )]
    DefaultPerspectiveCount {
        /// The configured default.
        count: usize,
        /// The number deployed.
        deployed: usize,
    },
    /// No cohort of the default size satisfies the closeness and RIR rules.
    #[error(
        "default_perspective_count: no cohort of {count} deployed perspectives spans two RIRs \
         without two perspectives closer than 500 km; deploy more perspectives or lower it"
    )]
    NoCohortOfDefaultSize {
        /// The configured default.
        count: usize,
    },
    /// The perspectives do not fit the cohort search.
    #[error("perspectives: {0}")]
    Pool(#[from] PoolError),
}

/// Failures that keep a valid request from being served. The `Display` text is the `error`
/// of the API's 500 body, so it states what failed without internal detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestrationError {
    /// `cohort_for_single_attempt` is above the number of cohorts for this target and size.
    /// The text is the reference service's.
    #[error(
        "The coordinator could not select cohort number {cohort_number} from available cohorts."
    )]
    CohortNotAvailable {
        /// The requested one-based cohort number.
        cohort_number: NonZeroU32,
    },
    /// No cohort of the requested size satisfies the closeness and RIR rules.
    #[error(
        "The coordinator could not build a cohort of {perspective_count} perspectives that spans two RIRs without perspectives closer than 500 km."
    )]
    NoCohort {
        /// The requested cohort size.
        perspective_count: usize,
    },
    /// The body for the perspectives could not be encoded.
    #[error("The coordinator could not encode the request for the perspectives.")]
    EncodeRequest(#[source] serde_json::Error),
}

/// The outcome of [`Orchestrator::handle`] when there is no 200 response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The request failed validation: HTTP 400 `request-validation-failed` with these issues.
    #[error("request validation failed with {} issue(s)", .0.len())]
    Rejected(Vec<ValidationIssue>),
    /// The request was valid but could not be served: HTTP 500.
    #[error(transparent)]
    Failed(#[from] OrchestrationError),
}

impl Orchestrator {
    /// Resolves the deployed perspectives in the catalogue and checks the settings.
    pub fn new(settings: OrchestrationSettings, catalogue: &Catalogue) -> Result<Self, SetupError> {
        let mut perspectives: Vec<PerspectiveInfo> =
            Vec::with_capacity(settings.perspectives.len());
        for code in &settings.perspectives {
            let info = catalogue
                .get(code)
                .ok_or_else(|| SetupError::UnknownPerspective { code: code.clone() })?;
            if perspectives.iter().any(|known| known.code == *code) {
                return Err(SetupError::DuplicatePerspective { code: code.clone() });
            }
            perspectives.push(info.clone());
        }

        let deployed = perspectives.len();
        if deployed < MIN_PERSPECTIVE_COUNT {
            return Err(SetupError::TooFewPerspectives { count: deployed });
        }
        let count = settings.default_perspective_count;
        if !(MIN_PERSPECTIVE_COUNT..=deployed).contains(&count) {
            return Err(SetupError::DefaultPerspectiveCount { count, deployed });
        }

        let pool = PerspectivePool::new(perspectives, catalogue)?;
        if !pool.can_build(count) {
            return Err(SetupError::NoCohortOfDefaultSize { count });
        }
        Ok(Self {
            pool,
            hash_secret: settings.hash_secret,
            limits: ValidationLimits {
                deployed_perspective_count: deployed,
                default_perspective_count: count,
                absolute_max_attempts: settings.absolute_max_attempts,
            },
        })
    }

    /// Returns the deployed perspectives, ordered by code.
    pub fn perspectives(&self) -> &[PerspectiveInfo] {
        self.pool.perspectives()
    }

    /// Returns the limits requests are validated against.
    pub fn validation_limits(&self) -> ValidationLimits {
        self.limits
    }

    /// Validates a request and resolves its defaults. Pure: it emits no audit event.
    pub fn validate(
        &self,
        request: &MpicRequest,
    ) -> Result<OrchestrationPlan, Vec<ValidationIssue>> {
        validate::validate(request, &self.limits)
    }

    /// Validates and runs a request, emitting its one audit event on every path.
    pub async fn handle<'a, F, Fut>(
        &'a self,
        request: &MpicRequest,
        call: F,
    ) -> Result<MpicResponse, HandleError>
    where
        F: Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Fut,
        Fut: Future<Output = Result<CheckResponse, TransportError>>,
    {
        let plan = match self.validate(request) {
            Ok(plan) => plan,
            Err(issues) => {
                audit::emit_rejection(Some(request), &issues);
                return Err(HandleError::Rejected(issues));
            }
        };
        Ok(self.run(&plan, call).await?)
    }

    /// Runs a validated request: builds the target's cohorts, makes the attempts and returns
    /// the response of the last one. Emits the request's audit event on every path, including
    /// when the future is dropped before it finishes.
    pub async fn run<'a, F, Fut>(
        &'a self,
        plan: &OrchestrationPlan,
        call: F,
    ) -> Result<MpicResponse, OrchestrationError>
    where
        F: Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Fut,
        Fut: Future<Output = Result<CheckResponse, TransportError>>,
    {
        let mut audit = AuditScope::start(plan);
        let result = self.run_attempts(plan, &call, &mut audit).await;
        audit.finish(&result);
        result
    }

    async fn run_attempts<'a, F, Fut>(
        &'a self,
        plan: &OrchestrationPlan,
        call: &F,
        audit: &mut AuditScope,
    ) -> Result<MpicResponse, OrchestrationError>
    where
        F: Fn(&'a PerspectiveInfo, CheckType, Bytes) -> Fut,
        Fut: Future<Output = Result<CheckResponse, TransportError>>,
    {
        let size = plan.perspective_count();
        let cohorts = self.pool.cohorts(&self.hash_secret, plan.target(), size);
        if cohorts.is_empty() {
            return Err(OrchestrationError::NoCohort {
                perspective_count: size,
            });
        }
        let schedule = attempt::schedule(
            plan.attempts(),
            cohorts.len(),
            self.limits.absolute_max_attempts,
        )?;
        attempt::run_attempts(plan, &cohorts, schedule, call, audit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use serde_json::json;

    use self::test_fixtures::{CallLog, Canned, canned_calls, catalogue, orchestrator, settings};

    #[test]
    fn settings_are_checked_at_start_up() {
        let catalogue = catalogue();
        let with_codes = |codes: &[&str], default_count: usize| OrchestrationSettings {
            perspectives: codes.iter().map(|code| (*code).to_owned()).collect(),
            ..settings(default_count, Some(3))
        };
        let cases = [
            (
                "unknown code",
                with_codes(&["us-east-1", "eu-north-9"], 2),
                "perspectives: \"eu-north-9\" is not in the perspective catalogue",
            ),
            (
                "duplicate code",
                with_codes(&["us-east-1", "eu-west-1", "us-east-1"], 2),
                "perspectives: \"us-east-1\" is listed more than once",
            ),
            (
                "one perspective",
                with_codes(&["us-east-1"], 2),
                "perspectives: 1 deployed, at least 2 are needed",
            ),
            (
                "default count above deployed",
                settings(9, Some(3)),
                "default_perspective_count: 9 is outside 2 to 8 (the number of deployed perspectives)",
            ),
            (
                "default count one",
                settings(1, Some(3)),
                "default_perspective_count: 1 is outside 2 to 8 (the number of deployed perspectives)",
            ),
            (
                "default count with no cohort",
                settings(8, Some(3)),
                "default_perspective_count: no cohort of 8 deployed perspectives spans two RIRs \
                 without two perspectives closer than 500 km; deploy more perspectives or lower it",
            ),
            (
                "only a too-close pair",
                with_codes(&["us-east-1", "us-east-2"], 2),
                "default_perspective_count: no cohort of 2 deployed perspectives spans two RIRs \
                 without two perspectives closer than 500 km; deploy more perspectives or lower it",
            ),
        ];
        for (name, settings, message) in cases {
            let error = Orchestrator::new(settings, &catalogue).expect_err(name);
            assert_eq!(error.to_string(), message, "case {name:?}");
        }
    }

    #[test]
    fn valid_settings_give_limits() {
        let orchestrator = orchestrator(6, Some(3));
        assert_eq!(
            orchestrator.validation_limits(),
            ValidationLimits {
                deployed_perspective_count: 8,
                default_perspective_count: 6,
                absolute_max_attempts: NonZeroU32::new(3),
            }
        );
        let codes: Vec<&str> = orchestrator
            .perspectives()
            .iter()
            .map(|perspective| perspective.code.as_str())
            .collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(codes, sorted, "perspectives are ordered by code");
        assert_eq!(codes.len(), 8);
    }

    #[test]
    fn handle_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let orchestrator = orchestrator(6, Some(3));
        let request = test_fixtures::request(json!({
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
        }));
        let handling = orchestrator.handle(
            &request,
            canned_calls(HashMap::new(), Canned::Pass, None, CallLog::default()),
        );
        assert_send(&handling);
    }
}
