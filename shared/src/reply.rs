//! What the coordinator sends to a perspective and what the perspective replies.
//!
//! The same JSON travels over NATS (`mpic.<code>.caa` / `.dcv`), over the HTTP endpoints of the
//! existing Python checkers (`POST /caa`, `POST /dcv`) and through the in-process transport.
//!
//! A reply is one of three things: passed (`check_completed` and `check_passed`), failed
//! (`check_completed` but not `check_passed`: the check ran and decided no), or not completed
//! (`check_completed: false`: the perspective could not decide, for example after a SERVFAIL, and
//! the `errors` say why). A not-completed check never counts as passed.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::dcv::{DcvCheckParameters, MethodFamily, ValidationMethod};
use crate::request::{CaaCheckParameters, CheckType};

/// Body of a CAA perspective call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaaCheckRequest {
    /// The target as the caller sent it.
    pub domain_or_ip_target: String,
    /// The caller's trace identifier, for logs.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// CAA settings; the worker's defaults apply when absent.
    #[serde(default)]
    pub caa_check_parameters: Option<CaaCheckParameters>,
}

/// Body of a DCV perspective call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcvCheckRequest {
    /// The target as the caller sent it.
    pub domain_or_ip_target: String,
    /// The caller's trace identifier, for logs.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// The validation method and its fields.
    pub dcv_check_parameters: DcvCheckParameters,
}

/// One error in a reply's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckError {
    /// A `type:subtype` identifier such as `mpic_error:caa_checker:lookup`; see [`error_type`].
    pub error_type: String,
    /// A description of the problem, for a person.
    pub error_message: String,
}

impl CheckError {
    /// Builds an error of the given type.
    pub fn new(error_type: &str, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            error_message: error_message.into(),
        }
    }
}

/// The `error_type` values this service emits. The first three are the Python service's.
pub mod error_type {
    /// A CAA lookup failed (SERVFAIL, timeout, refused).
    pub const CAA_LOOKUP: &str = "mpic_error:caa_checker:lookup";
    /// A DCV DNS lookup failed or found nothing.
    pub const DCV_LOOKUP: &str = "mpic_error:dcv_checker:lookup";
    /// The coordinator got no usable reply from a perspective (no responders, timeout, bad reply).
    pub const COORDINATOR_REMOTE_CHECK: &str = "mpic_error:coordinator:remote_check";
    /// The perspective could not parse the request it received.
    pub const INVALID_REQUEST: &str = "mpic_error:worker:invalid_request";
    /// The perspective is shutting down or overloaded and did not run the check.
    pub const UNAVAILABLE: &str = "mpic_error:worker:unavailable";
    /// The check did not finish within the worker's whole-check deadline.
    pub const CHECK_TIMEOUT: &str = "mpic_error:worker:check_timeout";
}

/// A perspective's reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResponse {
    /// False when the perspective could not decide; `check_passed` is then false too.
    pub check_completed: bool,
    /// True when the check ran and found what it looked for.
    pub check_passed: bool,
    /// The reasons the check failed or could not complete; null when there are none.
    pub errors: Option<Vec<CheckError>>,
    /// When the check finished, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// `caa` or `dcv`.
    pub check_type: CheckType,
    /// The evidence, shaped by the check type and validation method.
    pub details: CheckDetails,
}

impl CheckResponse {
    /// Builds a reply for a check that ran to a decision.
    pub fn completed(check_type: CheckType, passed: bool, details: CheckDetails) -> Self {
        Self {
            check_completed: true,
            check_passed: passed,
            errors: None,
            timestamp_ns: now_ns(),
            check_type,
            details,
        }
    }

    /// Builds a reply for a check that could not decide, with empty details of the right shape.
    pub fn not_completed(
        check_type: CheckType,
        method: Option<ValidationMethod>,
        error: CheckError,
    ) -> Self {
        Self {
            check_completed: false,
            check_passed: false,
            errors: Some(vec![error]),
            timestamp_ns: now_ns(),
            check_type,
            details: CheckDetails::empty(check_type, method),
        }
    }

    /// Adds an error to the reply's `errors` list.
    pub fn with_error(mut self, error: CheckError) -> Self {
        self.errors.get_or_insert_with(Vec::new).push(error);
        self
    }
}

/// The `details` of a reply. It serializes as the inner object alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CheckDetails {
    /// CAA evidence.
    Caa(CaaDetails),
    /// Evidence of the DNS-based DCV methods.
    Dns(DnsDetails),
    /// Evidence of the HTTP-based DCV methods.
    Http(HttpDetails),
    /// Evidence of acme-tls-alpn-01.
    TlsAlpn(TlsAlpnDetails),
}

impl CheckDetails {
    /// Returns details with every field null, in the shape the check type and method call for.
    /// A DCV reply without a known method falls back to the DNS shape.
    pub fn empty(check_type: CheckType, method: Option<ValidationMethod>) -> Self {
        let Some(method) = method.filter(|_| check_type == CheckType::Dcv) else {
            return match check_type {
                CheckType::Caa => Self::Caa(CaaDetails::default()),
                CheckType::Dcv => Self::Dns(DnsDetails::empty(ValidationMethod::DnsChange)),
            };
        };
        match method.family() {
            MethodFamily::Dns => Self::Dns(DnsDetails::empty(method)),
            MethodFamily::Http => Self::Http(HttpDetails::empty(method)),
            MethodFamily::TlsAlpn => Self::TlsAlpn(TlsAlpnDetails {
                validation_method: method,
                common_name: None,
            }),
        }
    }
}

/// CAA evidence: where the relevant RRset was found and what it held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaaDetails {
    /// Whether a relevant RRset exists; null when the lookup did not complete.
    pub caa_record_present: Option<bool>,
    /// The name (no trailing dot) whose RRset was relevant.
    pub found_at: Option<String>,
    /// The relevant RRset in presentation format, e.g. `0 issue "ca.example"`.
    pub records_seen: Option<Vec<String>>,
}

/// Evidence of a DNS-based DCV method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsDetails {
    /// The method that ran.
    pub validation_method: ValidationMethod,
    /// The answer's records in presentation format (TXT strings joined).
    pub records_seen: Option<Vec<String>>,
    /// The DNS RCODE of the final answer.
    pub response_code: Option<u16>,
    /// Whether the resolver set the AD (authenticated data) flag.
    pub ad_flag: Option<bool>,
    /// The name that was queried (no trailing dot).
    pub found_at: Option<String>,
    /// Canonical names followed to reach the answer, in order.
    pub cname_chain: Option<Vec<String>>,
}

impl DnsDetails {
    /// Returns details with every evidence field null.
    pub fn empty(validation_method: ValidationMethod) -> Self {
        Self {
            validation_method,
            records_seen: None,
            response_code: None,
            ad_flag: None,
            found_at: None,
            cname_chain: None,
        }
    }
}

/// One redirect in an HTTP fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectHop {
    /// The redirect status (301, 302, 307 or 308).
    pub status_code: u16,
    /// The URL that returned it.
    pub url: String,
}

/// Evidence of an HTTP-based DCV method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpDetails {
    /// The method that ran.
    pub validation_method: ValidationMethod,
    /// Redirects before the final response, starting with the challenge URL; null without any.
    pub response_history: Option<Vec<RedirectHop>>,
    /// The URL that returned the final response (the API's meaning; the Python service reports
    /// the first URL instead).
    pub response_url: Option<String>,
    /// The final response's status code.
    pub response_status_code: Option<u16>,
    /// The first 100 bytes of the final response body, base64.
    pub response_page: Option<String>,
    /// The IP address that returned the final response.
    #[serde(default)]
    pub resolved_ip: Option<String>,
}

impl HttpDetails {
    /// Returns details with every evidence field null.
    pub fn empty(validation_method: ValidationMethod) -> Self {
        Self {
            validation_method,
            response_history: None,
            response_url: None,
            response_status_code: None,
            response_page: None,
            resolved_ip: None,
        }
    }
}

/// Evidence of acme-tls-alpn-01.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsAlpnDetails {
    /// Always `acme-tls-alpn-01`.
    pub validation_method: ValidationMethod,
    /// The subject common name of the certificate the server presented.
    pub common_name: Option<String>,
}

/// Parses replies by looking at `check_type` and `details.validation_method`, so each details
/// shape is chosen exactly instead of by trying one after another.
impl<'de> Deserialize<'de> for CheckResponse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        #[derive(Deserialize)]
        struct Raw {
            check_completed: bool,
            check_passed: bool,
            #[serde(default)]
            errors: Option<Vec<CheckError>>,
            timestamp_ns: u64,
            check_type: CheckType,
            details: serde_json::Value,
        }

        #[derive(Deserialize)]
        struct MethodOnly {
            validation_method: ValidationMethod,
        }

        let raw = Raw::deserialize(deserializer)?;
        let details = match raw.check_type {
            CheckType::Caa => {
                CheckDetails::Caa(CaaDetails::deserialize(raw.details).map_err(D::Error::custom)?)
            }
            CheckType::Dcv => {
                let method = MethodOnly::deserialize(&raw.details)
                    .map_err(|e| D::Error::custom(format!("details: {e}")))?
                    .validation_method;
                match method.family() {
                    MethodFamily::Dns => CheckDetails::Dns(
                        DnsDetails::deserialize(raw.details).map_err(D::Error::custom)?,
                    ),
                    MethodFamily::Http => CheckDetails::Http(
                        HttpDetails::deserialize(raw.details).map_err(D::Error::custom)?,
                    ),
                    MethodFamily::TlsAlpn => CheckDetails::TlsAlpn(
                        TlsAlpnDetails::deserialize(raw.details).map_err(D::Error::custom)?,
                    ),
                }
            }
        };
        Ok(CheckResponse {
            check_completed: raw.check_completed,
            check_passed: raw.check_passed,
            errors: raw.errors,
            timestamp_ns: raw.timestamp_ns,
            check_type: raw.check_type,
            details,
        })
    }
}

/// Returns the current time in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
