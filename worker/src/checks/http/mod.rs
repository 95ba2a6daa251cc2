//! The HTTP-based DCV checks: website-change (BR §3.2.2.4.18, and §3.2.2.5.1 for IP addresses)
//! and acme-http-01 (RFC 8555 §8.3, RFC 8738 §3 for IP addresses, BR §3.2.2.4.19).
//!
//! # What a check does
//!
//! 1. Builds the challenge request ([`request`]). website-change fetches
//!    `<url_scheme>://<target>/.well-known/pki-validation/<http_token_path>` and acme-http-01
//!    fetches `http://<target>/.well-known/acme-challenge/<token>`, each on the configured port
//!    of its scheme. Some requests are rejected before anything is sent: a wildcard target, a
//!    token path that leaves the `pki-validation` directory, a token outside the base64url
//!    alphabet, an invalid `match_regex`, and request headers that would change the host or the
//!    message framing (`Host`, `Content-Length` and others).
//! 2. Fetches the URL with the [`Fetcher`], which looks the host up with a fresh resolver from
//!    the [`ResolverFactory`], refuses addresses the address guard rejects, follows only the
//!    redirects the BR allow and keeps at most the first 64 KiB of the body.
//! 3. Decides. Both methods need status 200 on the final response. website-change passes when
//!    the body contains `challenge_value` (ignoring letter case when `require_exact_case` is
//!    false) and matches `match_regex` when one is given. acme-http-01 passes when the body,
//!    with trailing whitespace removed, equals `key_authorization`.
//!
//! # Outcomes
//!
//! | [`Verdict`] | Wire reply | When |
//! |---|---|---|
//! | `Passed` | `check_completed: true, check_passed: true` | the final response proves control |
//! | `Failed` ([`Rejection`]) | `check_completed: true, check_passed: false` | the server responded, and the response breaks a rule: status other than 200, content that does not match, a redirect the rules forbid |
//! | `NotCompleted` ([`Unfinished`]) | `check_completed: false` | no final response was obtained: DNS failure, blocked address, refused connection, TLS failure, timeout |
//! | `InvalidRequest` ([`InvalidRequest`]) | `check_completed: false` | the request cannot be checked with this method |
//!
//! A failed or not-completed check carries one error with an `error_type` from
//! [`error_type`]. The details report the redirects followed, the final URL (the URL that
//! returned the final response, as the Open MPIC API defines `response_url`; the Python
//! implementation reports the first URL), the final status, the first 100 bytes of the body in
//! base64 (`response_page`) and the address that sent the final response.
//!
//! # What the check does not do
//!
//! - It does not apply a `charset` from `Content-Type`: website-change reads the body as UTF-8.
//! - It searches only the first 64 KiB of the body ([`crate::fetch::BODY_LIMIT`]).
//! - It does not check how old a token or random value is (BR: at most 30 days). The CA that
//!   issued the value does.

mod error;
mod evaluate;
pub mod request;

use std::error::Error as StdError;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mpic_shared::dcv::{AcmeHttp01Parameters, ValidationMethod, WebsiteChangeParameters};
use mpic_shared::reply::{CheckDetails, CheckError, CheckResponse, HttpDetails, RedirectHop};
use mpic_shared::request::CheckType;
use mpic_shared::target::Target;
use tracing::debug;

use crate::fetch::{FetchOutcome, Fetcher};
use crate::resolver::ResolverFactory;

pub use self::error::{InvalidRequest, Rejection, Unfinished, error_type};
pub use self::request::{ChallengePorts, ChallengeRequest, Expectation, LetterCase};

use self::error::classify_fetch_error;
use self::evaluate::evaluate;

/// Runs the HTTP-based DCV checks for one perspective.
///
/// The checker keeps no per-check state. One instance can run any number of checks at once.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    /// Builds a fresh resolver for every check, so no DNS response is reused.
    resolvers: ResolverFactory,
    /// Fetches the challenge URL behind the address guard.
    fetcher: Fetcher,
}

/// The result of one check: the verdict and the response behind it.
#[derive(Debug)]
pub struct HttpOutcome {
    /// The method that ran.
    pub validation_method: ValidationMethod,
    /// Passed, failed, not completed or invalid request.
    pub verdict: Verdict,
    /// The final response, when the fetch reached one.
    pub response: Option<FetchOutcome>,
}

/// The decision of a check.
#[derive(Debug)]
pub enum Verdict {
    /// The final response proves control of the target.
    Passed,
    /// The server responded, and the response does not prove control.
    Failed(Rejection),
    /// No final response was obtained, so the check did not decide.
    NotCompleted(Unfinished),
    /// The request cannot be checked with this method.
    InvalidRequest(InvalidRequest),
}

impl HttpChecker {
    /// Creates a checker that looks hosts up with resolvers from `resolvers` and fetches with
    /// `fetcher`.
    pub fn new(resolvers: ResolverFactory, fetcher: Fetcher) -> Self {
        Self { resolvers, fetcher }
    }

    /// Runs website-change for `target` (`domain_or_ip_target` as received).
    pub async fn website_change(
        &self,
        target: &str,
        parameters: &WebsiteChangeParameters,
    ) -> HttpOutcome {
        let request = Target::parse(target)
            .map_err(InvalidRequest::from)
            .and_then(|target| ChallengeRequest::website_change(&target, parameters, self.ports()));
        self.run(ValidationMethod::WebsiteChange, request).await
    }

    /// Runs acme-http-01 for `target` (`domain_or_ip_target` as received).
    pub async fn acme_http_01(
        &self,
        target: &str,
        parameters: &AcmeHttp01Parameters,
    ) -> HttpOutcome {
        let request = Target::parse(target)
            .map_err(InvalidRequest::from)
            .and_then(|target| ChallengeRequest::acme_http_01(&target, parameters, self.ports()));
        self.run(ValidationMethod::AcmeHttp01, request).await
    }

    fn ports(&self) -> ChallengePorts {
        let settings = self.fetcher.settings();
        ChallengePorts {
            http: settings.http_port,
            https: settings.https_port,
        }
    }

    async fn run(
        &self,
        validation_method: ValidationMethod,
        request: Result<ChallengeRequest, InvalidRequest>,
    ) -> HttpOutcome {
        let outcome = |verdict, response| HttpOutcome {
            validation_method,
            verdict,
            response,
        };

        let request = match request {
            Ok(request) => request,
            Err(error) => return outcome(Verdict::InvalidRequest(error), None),
        };
        let resolver = match self.resolvers.resolver() {
            Ok(resolver) => resolver,
            Err(error) => return outcome(Verdict::NotCompleted(Unfinished::Resolver(error)), None),
        };

        let fetched = self
            .fetcher
            .fetch(&resolver, &request.url, &request.headers)
            .await;
        let result = match fetched {
            Ok(response) => {
                let decision = evaluate(
                    &request.expectation,
                    response.status,
                    &response.body,
                    response.truncated,
                );
                let verdict = match decision {
                    Ok(()) => Verdict::Passed,
                    Err(rejection) => Verdict::Failed(rejection),
                };
                outcome(verdict, Some(response))
            }
            Err(error) => match classify_fetch_error(error) {
                Ok(rejection) => outcome(Verdict::Failed(rejection), None),
                Err(unfinished) => outcome(Verdict::NotCompleted(unfinished), None),
            },
        };

        debug!(
            url = %request.url,
            final_url = result.response.as_ref().map(|response| response.final_url.as_str()),
            status = result.response.as_ref().map(|response| response.status.as_u16()),
            passed = result.is_passed(),
            verdict = ?result.verdict,
            "HTTP check finished"
        );
        result
    }
}

impl HttpOutcome {
    /// Returns true when the check ran to a decision (`check_completed`).
    pub fn is_completed(&self) -> bool {
        matches!(self.verdict, Verdict::Passed | Verdict::Failed(_))
    }

    /// Returns true when the final response proves control (`check_passed`).
    pub fn is_passed(&self) -> bool {
        matches!(self.verdict, Verdict::Passed)
    }

    /// Builds the perspective reply.
    pub fn into_check_response(self) -> CheckResponse {
        let method = self.validation_method;
        let details = CheckDetails::Http(details(method, self.response.as_ref()));
        match self.verdict {
            Verdict::Passed => CheckResponse::completed(CheckType::Dcv, true, details),
            Verdict::Failed(rejection) => {
                let error = CheckError::new(rejection.error_type(), error_message(&rejection));
                CheckResponse::completed(CheckType::Dcv, false, details).with_error(error)
            }
            Verdict::NotCompleted(unfinished) => {
                let error = CheckError::new(unfinished.error_type(), error_message(&unfinished));
                CheckResponse::not_completed(CheckType::Dcv, Some(method), error)
            }
            Verdict::InvalidRequest(invalid) => {
                let error = CheckError::new(invalid.error_type(), error_message(&invalid));
                CheckResponse::not_completed(CheckType::Dcv, Some(method), error)
            }
        }
    }
}

/// Builds the reply details from the final response, or empty details without one.
fn details(method: ValidationMethod, response: Option<&FetchOutcome>) -> HttpDetails {
    let Some(response) = response else {
        return HttpDetails::empty(method);
    };

    let history: Vec<RedirectHop> = response
        .history
        .iter()
        .map(|hop| RedirectHop {
            status_code: hop.status.as_u16(),
            url: hop.url.to_string(),
        })
        .collect();
    let page_end = response.body.len().min(RESPONSE_PAGE_BYTES);

    HttpDetails {
        validation_method: method,
        response_history: (!history.is_empty()).then_some(history),
        response_url: Some(response.final_url.to_string()),
        response_status_code: Some(response.status.as_u16()),
        response_page: Some(BASE64.encode(&response.body[..page_end])),
        resolved_ip: response.resolved_ip.map(|address| address.to_string()),
    }
}

/// Joins an error and its sources into one message, outermost first.
fn error_message(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// How many bytes of the final body the reply shows as `response_page`. The Open MPIC API
/// defines the field as "the first 100 bytes of the page returned at the final URL".
const RESPONSE_PAGE_BYTES: usize = 100;

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::StatusCode;
    use url::Url;

    use super::*;
    use crate::fetch;

    fn fetched(body: &[u8]) -> FetchOutcome {
        let url = |text: &str| Url::parse(text).expect("test URL is valid");
        FetchOutcome {
            history: vec![fetch::RedirectHop {
                status: StatusCode::FOUND,
                url: url("http://example.com/.well-known/acme-challenge/t"),
            }],
            final_url: url("https://www.example.com/t"),
            status: StatusCode::OK,
            body: body.to_vec(),
            truncated: false,
            resolved_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        }
    }

    #[test]
    fn passed_reply_details() {
        let outcome = HttpOutcome {
            validation_method: ValidationMethod::AcmeHttp01,
            verdict: Verdict::Passed,
            response: Some(fetched(&[b'a'; 150])),
        };

        let reply = outcome.into_check_response();

        assert!(reply.check_completed);
        assert!(reply.check_passed);
        assert_eq!(reply.errors, None);
        let CheckDetails::Http(details) = reply.details else {
            panic!("expected HTTP details, got {:?}", reply.details);
        };
        assert_eq!(details.validation_method, ValidationMethod::AcmeHttp01);
        assert_eq!(
            details.response_history,
            Some(vec![RedirectHop {
                status_code: 302,
                url: "http://example.com/.well-known/acme-challenge/t".to_owned(),
            }])
        );
        assert_eq!(
            details.response_url.as_deref(),
            Some("https://www.example.com/t")
        );
        assert_eq!(details.response_status_code, Some(200));
        let page = BASE64
            .decode(details.response_page.expect("page present"))
            .expect("page is base64");
        assert_eq!(
            page,
            vec![b'a'; RESPONSE_PAGE_BYTES],
            "only the first 100 bytes"
        );
        assert_eq!(details.resolved_ip.as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn failed_reply_keeps_evidence() {
        let mut response = fetched(b"not found");
        response.history.clear();
        response.status = StatusCode::NOT_FOUND;
        let outcome = HttpOutcome {
            validation_method: ValidationMethod::WebsiteChange,
            verdict: Verdict::Failed(Rejection::Status {
                status: StatusCode::NOT_FOUND,
            }),
            response: Some(response),
        };

        let reply = outcome.into_check_response();

        assert!(reply.check_completed);
        assert!(!reply.check_passed);
        let errors = reply.errors.expect("a rejection carries an error");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].error_type, "mpic_error:http");
        assert_eq!(
            errors[0].error_message,
            "the final response has status 404 Not Found, expected 200"
        );
        let CheckDetails::Http(details) = reply.details else {
            panic!("expected HTTP details");
        };
        assert_eq!(details.response_history, None, "no redirect: null history");
        assert_eq!(details.response_status_code, Some(404));
        assert_eq!(details.response_page.as_deref(), Some("bm90IGZvdW5k"));
    }

    #[test]
    fn invalid_request_reply() {
        let outcome = HttpOutcome {
            validation_method: ValidationMethod::AcmeHttp01,
            verdict: Verdict::InvalidRequest(InvalidRequest::InvalidToken {
                token: "a/b".to_owned(),
            }),
            response: None,
        };

        let reply = outcome.into_check_response();

        assert!(!reply.check_completed);
        assert!(!reply.check_passed);
        let errors = reply.errors.expect("an invalid request carries an error");
        assert_eq!(errors[0].error_type, error_type::INVALID_REQUEST);
        let CheckDetails::Http(details) = reply.details else {
            panic!("expected HTTP details");
        };
        assert_eq!(details, HttpDetails::empty(ValidationMethod::AcmeHttp01));
    }
}
