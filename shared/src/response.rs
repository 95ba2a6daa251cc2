//! The `POST /mpic` response body (Open MPIC API 3.5 `CAAResponse` / `DCVResponse`).
//!
//! Every field is always written, nulls included, because clients of the Python service read
//! them that way.

use serde::{Deserialize, Serialize};

use crate::dcv::DcvCheckParameters;
use crate::reply::CheckResponse;
use crate::request::{CaaCheckParameters, CheckType, RequestOrchestrationParameters};

/// The body of a 200 answer to `POST /mpic`, whether or not the check passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpicResponse {
    /// `caa` or `dcv`, as requested.
    pub check_type: CheckType,
    /// The target as requested.
    pub domain_or_ip_target: String,
    /// The caller's trace identifier, or null.
    pub trace_identifier: Option<String>,
    /// True when a quorum of the final attempt's cohort passed, spanning enough RIRs.
    pub is_valid: bool,
    /// True when no more perspectives failed to complete than the quorum allows.
    pub mpic_completed: bool,
    /// The orchestration parameters as sent, or null when the request had none.
    pub request_orchestration_parameters: Option<RequestOrchestrationParameters>,
    /// The cohort size, quorum and attempt count actually used.
    pub actual_orchestration_parameters: ActualOrchestrationParameters,
    /// Each perspective's reply in the final attempt.
    pub perspectives: Vec<PerspectiveResponse>,
    /// The check parameters as understood, under the key the check type calls for.
    #[serde(flatten)]
    pub check_parameters: EchoedCheckParameters,
    /// The perspectives' replies of each earlier attempt, oldest first; null after one attempt.
    pub previous_attempt_results: Option<Vec<Vec<PerspectiveResponse>>>,
}

/// The orchestration actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualOrchestrationParameters {
    /// Perspectives per cohort.
    pub perspective_count: u32,
    /// Perspectives that had to pass.
    pub quorum_count: u32,
    /// Attempts made (1 when the first cohort decided).
    pub attempt_count: u32,
}

/// One perspective's reply inside a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerspectiveResponse {
    /// The perspective's catalogue code.
    pub perspective_code: String,
    /// What it replied, or the coordinator's error reply when it did not.
    pub check_response: CheckResponse,
}

/// The echoed check parameters: `caa_check_parameters` (null when absent) for CAA,
/// `dcv_check_parameters` for DCV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EchoedCheckParameters {
    /// Tried first when parsing, because the CAA variant matches any object.
    Dcv {
        /// The DCV method and fields.
        dcv_check_parameters: DcvCheckParameters,
    },
    /// CAA parameters as sent, or null.
    Caa {
        /// The CAA settings, or null when the request had none.
        caa_check_parameters: Option<CaaCheckParameters>,
    },
}
