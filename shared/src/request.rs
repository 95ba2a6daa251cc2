//! The `POST /mpic` request body: the Open MPIC API 3.5 `CAAParams` and `DCVParams` schemas.
//!
//! Absent optional fields take the documented defaults and unknown fields are ignored, as the
//! Python implementation does. Range checks (perspective and quorum counts) need the
//! coordinator's configuration and live there.

use serde::{Deserialize, Serialize};

use crate::dcv::DcvCheckParameters;

/// The kind of check a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// A CAA check (RFC 8659, BR §3.2.2.8).
    Caa,
    /// A domain control validation check (BR §3.2.2.4 and §3.2.2.5).
    Dcv,
}

impl CheckType {
    /// Returns the wire name, which is also the last token of the NATS subject.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Caa => "caa",
            CheckType::Dcv => "dcv",
        }
    }
}

impl std::fmt::Display for CheckType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /mpic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpicRequest {
    /// Which check to run; it decides which parameter object is required.
    pub check_type: CheckType,
    /// The domain name (`*.` prefix for a wildcard) or IP address to check.
    pub domain_or_ip_target: String,
    /// A caller-chosen identifier that is echoed back and logged with every step.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// Cohort size, quorum and retry settings; defaults come from the coordinator's configuration.
    #[serde(default)]
    pub orchestration_parameters: Option<RequestOrchestrationParameters>,
    /// CAA settings, used when `check_type` is `caa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caa_check_parameters: Option<CaaCheckParameters>,
    /// DCV method and its fields, required when `check_type` is `dcv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcv_check_parameters: Option<DcvCheckParameters>,
}

/// Orchestration settings as the caller sent them. Every field is optional and is echoed back,
/// nulls included, as `request_orchestration_parameters`.
///
/// The counts are signed so that a negative value reaches the coordinator's range check and gets
/// the API's `invalid-perspective-count` or `invalid-quorum-count` issue rather than a schema error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOrchestrationParameters {
    /// Number of perspectives in the cohort.
    #[serde(default)]
    pub perspective_count: Option<i64>,
    /// Number of perspectives that must pass.
    #[serde(default)]
    pub quorum_count: Option<i64>,
    /// Number of cohorts to try before giving up, capped by `absolute_max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// One-based cohort number to use for a single attempt (for re-checks and diagnostics).
    #[serde(default)]
    pub cohort_for_single_attempt: Option<i64>,
}

/// The certificate type a CAA check is for; it decides which property tags apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CertificateType {
    /// A TLS server certificate: `issue` and `issuewild` apply (RFC 8659 §4.2, §4.3).
    #[default]
    #[serde(rename = "tls-server")]
    TlsServer,
    /// An S/MIME certificate: `issuemail` applies (RFC 9495).
    #[serde(rename = "s-mime")]
    SMime,
}

/// CAA check settings (`caa_check_parameters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaaCheckParameters {
    /// Certificate type; `tls-server` when absent.
    #[serde(default)]
    pub certificate_type: CertificateType,
    /// Issuer domain names that identify the calling CA. When absent or empty the worker's
    /// `default_caa_domains` apply.
    #[serde(default)]
    pub caa_domains: Option<Vec<String>>,
    /// Treat a failed lookup as "no CAA records" instead of leaving the check not completed.
    #[serde(default)]
    pub allow_lookup_failure: bool,
    /// ACME account URI of the applicant, matched against an `accounturi` parameter (RFC 8657
    /// §3). A record that carries the parameter permits nothing to a request without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_uri: Option<String>,
    /// Validation method the CA used, matched against a `validationmethods` parameter (RFC 8657
    /// §4). A record that carries the parameter permits nothing to a request without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_method: Option<String>,
}
