//! The single entry point of a check: a JSON request body in, a perspective reply out.
//!
//! [`Checker::handle`] is what every transport calls with the bytes it received: the NATS
//! service loop, the HTTP endpoints and the coordinator's in-process transport. It
//!
//! 1. waits for a free check slot, so that at most `max_checks_in_flight` checks run at once;
//! 2. parses the body as a CAA or DCV perspective request. A body that does not parse becomes
//!    a not-completed reply with error type [`error_type::INVALID_REQUEST`] and a message that
//!    names the offending field, so every request gets a reply;
//! 3. runs the check under the whole-check deadline (`check_timeout_seconds`). A check that
//!    overruns it becomes a not-completed reply with error type [`error_type::CHECK_TIMEOUT`];
//! 4. dispatches CAA to [`crate::checks::caa`] and each DCV method to the check module of its
//!    family: DNS-based methods, HTTP-based methods, or acme-tls-alpn-01.
//!
//! Every check runs in a span named `check` with the perspective, check type, target, trace
//! identifier and validation method, and ends with one `debug` event carrying the outcome and
//! the latency.
//!
//! Not handled here: transport concerns (subjects, headers, HTTP status codes) and the
//! decisions of the checks themselves.

use std::sync::Arc;
use std::time::Duration;

use mpic_shared::dcv::{DcvCheckParameters, ValidationMethod};
use mpic_shared::reply::{CaaCheckRequest, CheckError, CheckResponse, DcvCheckRequest, error_type};
use mpic_shared::request::CheckType;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{Instrument, debug, field};

use crate::checks::caa::CaaChecker;
use crate::checks::dns;
use crate::checks::http::HttpChecker;
use crate::checks::tls_alpn::{TlsAlpnChecker, TlsAlpnSettings};
use crate::config::WorkerConfig;
use crate::fetch::{AddressGuard, FetchSettings, Fetcher, FetcherSetupError};
use crate::resolver::{ResolverError, ResolverFactory};

/// Runs the checks of one perspective. Cheap to clone: clones share the check slots.
#[derive(Debug, Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    perspective_code: String,
    check_timeout: Duration,
    slots: Arc<Semaphore>,
    resolvers: ResolverFactory,
    caa: CaaChecker,
    http: HttpChecker,
    tls_alpn: TlsAlpnChecker,
}

/// A reserved check slot. The slot is free again when the permit is dropped.
#[derive(Debug)]
pub struct CheckPermit {
    _permit: OwnedSemaphorePermit,
}

/// Errors of building a [`Checker`] from the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckerSetupError {
    /// The DNS resolver settings are unusable, or `/etc/resolv.conf` could not be read.
    #[error("failed to set up DNS resolution for the checks")]
    Resolver(#[from] ResolverError),
    /// The HTTP client of the HTTP-based checks could not be built, usually because no root
    /// certificate could be loaded while `verify_ssl` is on.
    #[error("failed to set up the HTTP client for the checks")]
    Fetcher(#[from] FetcherSetupError),
    /// The TLS client of acme-tls-alpn-01 could not be built: the crypto provider lacks the
    /// TLS 1.2 and 1.3 cipher suites.
    #[error("failed to set up the TLS client for acme-tls-alpn-01")]
    TlsAlpn(#[source] rustls::Error),
}

impl Checker {
    /// Builds the checks of the perspective `config` describes.
    pub fn new(config: &WorkerConfig) -> Result<Checker, CheckerSetupError> {
        let resolvers = ResolverFactory::new(&config.resolver)?;
        let guard = AddressGuard::new(config.address_policy);

        let mut fetch_settings = FetchSettings::new(config.http_client_timeout);
        fetch_settings.http_port = config.challenge_ports.http;
        fetch_settings.https_port = config.challenge_ports.https;
        fetch_settings.tls_verification = config.tls_verification;
        let fetcher = Fetcher::new(guard, fetch_settings)?;

        let mut tls_alpn_settings = TlsAlpnSettings::new(config.http_client_timeout);
        tls_alpn_settings.port = config.challenge_ports.tls_alpn;
        let tls_alpn = TlsAlpnChecker::new(resolvers.clone(), guard, tls_alpn_settings)
            .map_err(CheckerSetupError::TlsAlpn)?;

        Ok(Checker {
            inner: Arc::new(Inner {
                perspective_code: config.perspective_code.clone(),
                check_timeout: config.check_timeout,
                slots: Arc::new(Semaphore::new(config.max_checks_in_flight)),
                caa: CaaChecker::new(resolvers.clone(), &config.default_caa_domains),
                http: HttpChecker::new(resolvers.clone(), fetcher),
                tls_alpn,
                resolvers,
            }),
        })
    }

    /// Returns the code of the perspective these checks run for.
    pub fn perspective_code(&self) -> &str {
        &self.inner.perspective_code
    }

    /// Runs one check from a request body and returns the perspective reply.
    ///
    /// Waits for a free check slot first. The reply is always a [`CheckResponse`]: a malformed
    /// body, a check that could not decide and a check that overran its deadline all come back
    /// as not completed, with an error saying why.
    pub async fn handle(&self, check_type: CheckType, body: &[u8]) -> CheckResponse {
        let permit = self.acquire().await;
        self.handle_with_permit(permit, check_type, body).await
    }

    /// Waits for a free check slot and reserves it.
    ///
    /// A transport that spawns a task per request reserves the slot before spawning, so that
    /// the number of tasks stays bounded, and passes the permit to
    /// [`Checker::handle_with_permit`].
    pub async fn acquire(&self) -> CheckPermit {
        let permit = Arc::clone(&self.inner.slots).acquire_owned().await;
        match permit {
            Ok(permit) => CheckPermit { _permit: permit },
            // The semaphore lives as long as `inner` and no code calls `close` on it, so
            // `acquire_owned` cannot fail.
            Err(closed) => unreachable!("check slots closed: {closed}"),
        }
    }

    /// Runs one check in a slot reserved with [`Checker::acquire`], freeing it at the end.
    pub async fn handle_with_permit(
        &self,
        permit: CheckPermit,
        check_type: CheckType,
        body: &[u8],
    ) -> CheckResponse {
        let span = tracing::debug_span!(
            "check",
            perspective = %self.inner.perspective_code,
            %check_type,
            target = field::Empty,
            trace_identifier = field::Empty,
            validation_method = field::Empty,
        );
        let started = Instant::now();
        let reply = self.run(check_type, body).instrument(span.clone()).await;
        drop(permit);

        let _entered = span.enter();
        debug!(
            completed = reply.check_completed,
            passed = reply.check_passed,
            error_type = reply
                .errors
                .as_ref()
                .and_then(|errors| errors.first())
                .map(|error| error.error_type.as_str()),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "check finished"
        );
        reply
    }

    async fn run(&self, check_type: CheckType, body: &[u8]) -> CheckResponse {
        let check = async {
            match check_type {
                CheckType::Caa => self.run_caa(body).await,
                CheckType::Dcv => self.run_dcv(body).await,
            }
        };
        match tokio::time::timeout(self.inner.check_timeout, check).await {
            Ok(reply) => reply,
            Err(_elapsed) => CheckResponse::not_completed(
                check_type,
                validation_method_of(check_type, body),
                CheckError::new(
                    error_type::CHECK_TIMEOUT,
                    format!(
                        "the check did not finish within the deadline of {} seconds",
                        self.inner.check_timeout.as_secs_f64()
                    ),
                ),
            ),
        }
    }

    async fn run_caa(&self, body: &[u8]) -> CheckResponse {
        let request: CaaCheckRequest = match parse_request(body) {
            Ok(request) => request,
            Err(problem) => return invalid_request(CheckType::Caa, None, problem),
        };
        record_request(
            &request.domain_or_ip_target,
            request.trace_identifier.as_deref(),
        );

        let parameters = request.caa_check_parameters.unwrap_or_default();
        self.inner
            .caa
            .check(&request.domain_or_ip_target, &parameters)
            .await
            .into_check_response()
    }

    async fn run_dcv(&self, body: &[u8]) -> CheckResponse {
        let request: DcvCheckRequest = match parse_request(body) {
            Ok(request) => request,
            Err(problem) => {
                let method = validation_method_of(CheckType::Dcv, body);
                return invalid_request(CheckType::Dcv, method, problem);
            }
        };
        record_request(
            &request.domain_or_ip_target,
            request.trace_identifier.as_deref(),
        );
        let method = request.dcv_check_parameters.method();
        tracing::Span::current().record("validation_method", method.as_str());

        let target = request.domain_or_ip_target.as_str();
        let inner = &self.inner;
        match &request.dcv_check_parameters {
            DcvCheckParameters::WebsiteChange(parameters) => inner
                .http
                .website_change(target, parameters)
                .await
                .into_check_response(),
            DcvCheckParameters::AcmeHttp01(parameters) => inner
                .http
                .acme_http_01(target, parameters)
                .await
                .into_check_response(),
            DcvCheckParameters::AcmeDns01(_)
            | DcvCheckParameters::DnsAccount01(_)
            | DcvCheckParameters::DnsChange(_)
            | DcvCheckParameters::DnsPersistent(_)
            | DcvCheckParameters::ContactEmailTxt(_)
            | DcvCheckParameters::ContactEmailCaa(_)
            | DcvCheckParameters::ContactPhoneTxt(_)
            | DcvCheckParameters::ContactPhoneCaa(_)
            | DcvCheckParameters::IpAddress(_)
            | DcvCheckParameters::ReverseAddressLookup(_) => {
                dns::check(&inner.resolvers, &request).await
            }
            DcvCheckParameters::AcmeTlsAlpn01(parameters) => inner
                .tls_alpn
                .check(target, &parameters.key_authorization_hash)
                .await
                .into_check_response(),
        }
    }
}

/// Returns why `body` is not a valid request for `check_type`, or `None` when it parses.
///
/// The message is the one [`Checker::handle`] puts in its [`error_type::INVALID_REQUEST`]
/// reply. The HTTP endpoints use it to reject a malformed body with a 400 before taking a
/// check slot.
pub fn request_body_problem(check_type: CheckType, body: &[u8]) -> Option<String> {
    match check_type {
        CheckType::Caa => parse_request::<CaaCheckRequest>(body).err(),
        CheckType::Dcv => parse_request::<DcvCheckRequest>(body).err(),
    }
}

/// Parses a request body, describing a failure by the path of the field at fault.
fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request body has {} bytes; the maximum is {MAX_REQUEST_BYTES}",
            body.len()
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body: {path}: {inner}")
        }
    })?;
    deserializer
        .end()
        .map_err(|error| format!("invalid request body: {error}"))?;
    Ok(request)
}

/// Reads `dcv_check_parameters.validation_method` from a body that may not parse as a whole,
/// so that a not-completed DCV reply still carries details of the method's shape.
fn validation_method_of(check_type: CheckType, body: &[u8]) -> Option<ValidationMethod> {
    if check_type != CheckType::Dcv || body.len() > MAX_REQUEST_BYTES {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let method = value
        .get("dcv_check_parameters")?
        .get("validation_method")?;
    serde_json::from_value(method.clone()).ok()
}

fn record_request(target: &str, trace_identifier: Option<&str>) {
    let span = tracing::Span::current();
    span.record("target", target);
    if let Some(trace_identifier) = trace_identifier {
        span.record("trace_identifier", trace_identifier);
    }
}

fn invalid_request(
    check_type: CheckType,
    method: Option<ValidationMethod>,
    problem: String,
) -> CheckResponse {
    CheckResponse::not_completed(
        check_type,
        method,
        CheckError::new(error_type::INVALID_REQUEST, problem),
    )
}

/// The largest request body a check accepts: 64 KiB. Perspective requests are a few hundred
/// bytes; the largest legitimate ones carry extra HTTP headers for website-change.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Probe {
        #[serde(rename = "domain_or_ip_target")]
        _target: String,
    }

    #[test]
    fn parse_errors_name_the_field() {
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "missing target",
                b"{}",
                "invalid request body: missing field `domain_or_ip_target`",
            ),
            (
                "target of wrong type",
                br#"{"domain_or_ip_target": 7}"#,
                "invalid request body: domain_or_ip_target: invalid type: integer `7`",
            ),
            (
                "not JSON",
                b"caa please",
                "invalid request body: expected value",
            ),
            ("empty body", b"", "invalid request body: EOF while parsing"),
            (
                "trailing data",
                br#"{"domain_or_ip_target": "a.example"} {}"#,
                "invalid request body: trailing characters",
            ),
            (
                "oversized body",
                &[b' '; MAX_REQUEST_BYTES + 1],
                "the request body has 65537 bytes; the maximum is 65536",
            ),
        ];
        for (name, body, expected) in cases {
            let message = parse_request::<Probe>(body).expect_err(name);
            assert!(
                message.starts_with(expected),
                "{name}: expected {expected:?}, got {message:?}"
            );
        }
    }

    #[tokio::test]
    async fn deadline_overrun_is_not_completed() {
        use hickory_proto::rr::RecordType;
        use mpic_testkit::dns::{Behavior, TestDns, Zone};

        let dns = TestDns::start([
            Zone::new("test.", ""),
            Zone::new("example.test.", "slow CAA 0 issue \"ca.example\""),
        ])
        .await;
        dns.set_behavior(
            "slow.example.test.",
            Some(RecordType::CAA),
            Behavior::Delay(Duration::from_secs(2)),
        );
        let mut config = WorkerConfig::with_defaults("us-east-1").expect("valid code");
        config.resolver.name_servers = crate::resolver::NameServers::Configured(vec![dns.addr()]);
        config.resolver.query_timeout = Duration::from_secs(3);
        config.resolver.resolution_lifetime = Duration::from_secs(4);
        // Shorter than the DNS delay, which validation of a configuration file would reject.
        config.check_timeout = Duration::from_millis(200);
        let checker = Checker::new(&config).expect("checker builds");

        let cases = [
            (
                CheckType::Caa,
                r#"{"domain_or_ip_target": "slow.example.test"}"#,
                None,
            ),
            (
                CheckType::Dcv,
                r#"{"domain_or_ip_target": "slow.example.test",
                    "dcv_check_parameters": {"validation_method": "dns-change",
                        "challenge_value": "v", "dns_record_type": "CAA"}}"#,
                Some(ValidationMethod::DnsChange),
            ),
        ];
        for (check_type, body, method) in cases {
            let started = Instant::now();
            let reply = checker.handle(check_type, body.as_bytes()).await;

            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{check_type}: the deadline did not stop the check"
            );
            assert!(!reply.check_completed, "{check_type}: completed");
            assert!(!reply.check_passed, "{check_type}: passed");
            let errors = reply.errors.as_deref().unwrap_or_default();
            assert_eq!(errors.len(), 1, "{check_type}: errors {errors:?}");
            assert_eq!(
                errors[0].error_type,
                error_type::CHECK_TIMEOUT,
                "{check_type}: error type"
            );
            assert_eq!(
                reply.details,
                mpic_shared::reply::CheckDetails::empty(check_type, method),
                "{check_type}: details"
            );
        }
    }

    #[test]
    fn validation_method_is_read_from_partial_bodies() {
        let cases: [(&str, CheckType, &[u8], Option<ValidationMethod>); 4] = [
            (
                "method with missing field",
                CheckType::Dcv,
                br#"{"dcv_check_parameters": {"validation_method": "acme-http-01"}}"#,
                Some(ValidationMethod::AcmeHttp01),
            ),
            (
                "unknown method",
                CheckType::Dcv,
                br#"{"dcv_check_parameters": {"validation_method": "carrier-pigeon"}}"#,
                None,
            ),
            ("not JSON", CheckType::Dcv, b"{", None),
            (
                "CAA request",
                CheckType::Caa,
                br#"{"dcv_check_parameters": {"validation_method": "acme-dns-01"}}"#,
                None,
            ),
        ];
        for (name, check_type, body, expected) in cases {
            assert_eq!(validation_method_of(check_type, body), expected, "{name}");
        }
    }
}
