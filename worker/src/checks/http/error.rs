//! The reasons an HTTP-based check fails, does not complete, or cannot start, with the
//! `error_type` of each.

use http::StatusCode;
use mpic_shared::target::TargetError;

use super::request::TokenPathProblem;
use crate::fetch::FetchError;
use crate::resolver::ResolverError;

/// The `error_type` values of the HTTP-based checks.
///
/// [`STATUS`](error_type::STATUS) is the value the Python implementation reports for a final
/// response that is not 200, so clients that match on it keep working. The others belong to
/// the `mpic_error:dcv_checker:http` family.
pub mod error_type {
    /// The final response has a status other than 200.
    pub const STATUS: &str = "mpic_error:http";
    /// The body does not contain the challenge value, the pattern or the key authorization.
    pub const CONTENT_MISMATCH: &str = "mpic_error:dcv_checker:http:content_mismatch";
    /// A redirect broke the redirect rules (status, scheme, port, count, loop, location).
    pub const REDIRECT: &str = "mpic_error:dcv_checker:http:redirect";
    /// The request cannot be checked: invalid target, token, token path, header or pattern.
    pub const INVALID_REQUEST: &str = "mpic_error:dcv_checker:http:invalid_request";
    /// The target is a wildcard domain name.
    pub const WILDCARD_TARGET: &str = "mpic_error:dcv_checker:http:wildcard_target";
    /// The A/AAAA lookup failed or returned no address, or no resolver could be built.
    pub const LOOKUP: &str = "mpic_error:dcv_checker:http:lookup";
    /// The address guard rejected an address of a host.
    pub const BLOCKED_ADDRESS: &str = "mpic_error:dcv_checker:http:blocked_address";
    /// No TCP connection could be made.
    pub const CONNECTION: &str = "mpic_error:dcv_checker:http:connection";
    /// The TLS handshake failed.
    pub const TLS: &str = "mpic_error:dcv_checker:http:tls";
    /// The request could not be sent, or the response could not be read.
    pub const RESPONSE: &str = "mpic_error:dcv_checker:http:response";
    /// A time limit of the fetch ran out.
    pub const TIMEOUT: &str = "mpic_error:dcv_checker:http:timeout";
    /// A fault of this worker, not of the target.
    pub const INTERNAL: &str = "mpic_error:dcv_checker:http:internal";
}

/// A reason a request cannot be checked with an HTTP-based method. Reported as not completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The target is neither a valid domain name nor an IP address.
    #[error("invalid target: {0}")]
    InvalidTarget(#[from] TargetError),
    /// The target is a wildcard domain name, which file-based methods cannot validate.
    #[error("{target} is a wildcard domain name, which HTTP-based methods cannot validate")]
    WildcardTarget {
        /// The target as parsed, with its `*.` label.
        target: String,
    },
    /// The challenge URL cannot be built from the target.
    #[error("cannot build a challenge URL from {url:?}")]
    InvalidUrl {
        /// The URL text that did not parse.
        url: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// `http_token_path` cannot name a file under `/.well-known/pki-validation/`.
    #[error("invalid http_token_path {path:?}: {reason}")]
    InvalidTokenPath {
        /// The token path as given.
        path: String,
        /// The rule it breaks.
        reason: TokenPathProblem,
    },
    /// The ACME token contains characters outside the base64url alphabet, or is empty.
    #[error("invalid token {token:?}: it must be non-empty base64url without padding")]
    InvalidToken {
        /// The token as given.
        token: String,
    },
    /// The value the response must contain is empty or only whitespace, so any page would
    /// contain it.
    #[error("the {field} is blank, so any response would match it")]
    BlankChallengeValue {
        /// The request field that is blank: `challenge_value` or `key_authorization`.
        field: &'static str,
    },
    /// A request header name or value is not valid HTTP.
    #[error("invalid HTTP header {name:?}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
    },
    /// A request header that the fetcher controls itself.
    #[error("the HTTP header {name:?} may not be set by a request")]
    ForbiddenHeader {
        /// The header name as given.
        name: String,
    },
    /// `match_regex` is not a valid regular expression or compiles too large.
    #[error("invalid match_regex {pattern:?}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
}

/// A reason the final response does not prove control. Reported as completed and failed
/// (`check_completed: true, check_passed: false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The final response has another status than 200.
    #[error("the final response has status {status}, expected 200")]
    Status {
        /// The status of the final response.
        status: StatusCode,
    },
    /// The body does not contain the challenge value.
    #[error("the response body does not contain the challenge value{}", truncation_note(*.searched_bytes, *.truncated))]
    ChallengeValueNotFound {
        /// How many bytes of the body were searched.
        searched_bytes: usize,
        /// Whether the body was longer than the bytes searched.
        truncated: bool,
    },
    /// The body does not match `match_regex`.
    #[error("the response body does not match the pattern {pattern:?}{}", truncation_note(*.searched_bytes, *.truncated))]
    PatternNotMatched {
        /// The pattern as given.
        pattern: String,
        /// How many bytes of the body were searched.
        searched_bytes: usize,
        /// Whether the body was longer than the bytes searched.
        truncated: bool,
    },
    /// The body, with trailing whitespace removed, is not the key authorization.
    #[error(
        "the response body is not the expected key authorization (after removing trailing \
         whitespace){}",
        truncation_note(*.searched_bytes, *.truncated)
    )]
    KeyAuthorizationMismatch {
        /// How many bytes of the body were read.
        searched_bytes: usize,
        /// Whether the body was longer than the bytes read.
        truncated: bool,
    },
    /// A redirect broke the redirect rules, so no final response was reached.
    #[error("redirect not followed")]
    Redirect(#[source] FetchError),
}

/// A reason the check could not decide. Reported as not completed (`check_completed: false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unfinished {
    /// No resolver could be built for the check.
    #[error("no DNS resolver is available")]
    Resolver(#[source] ResolverError),
    /// The fetch stopped before a final response: DNS, guard, connection, TLS or timeout.
    #[error("the challenge fetch failed")]
    Fetch(#[source] FetchError),
}

impl InvalidRequest {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::WildcardTarget { .. } => error_type::WILDCARD_TARGET,
            Self::InvalidUrl { .. } => error_type::INTERNAL,
            Self::InvalidTarget(_)
            | Self::InvalidTokenPath { .. }
            | Self::InvalidToken { .. }
            | Self::BlankChallengeValue { .. }
            | Self::InvalidHeader { .. }
            | Self::ForbiddenHeader { .. }
            | Self::InvalidPattern { .. } => error_type::INVALID_REQUEST,
        }
    }
}

impl Rejection {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Status { .. } => error_type::STATUS,
            Self::ChallengeValueNotFound { .. }
            | Self::PatternNotMatched { .. }
            | Self::KeyAuthorizationMismatch { .. } => error_type::CONTENT_MISMATCH,
            Self::Redirect(_) => error_type::REDIRECT,
        }
    }
}

impl Unfinished {
    /// Returns the `error_type` for the wire reply.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Resolver(_) => error_type::LOOKUP,
            Self::Fetch(error) => fetch_error_type(error),
        }
    }
}

/// Sorts a fetch error into a redirect rejection (the server responded, and the response breaks
/// a rule) or an unfinished check (no response was obtained).
pub(crate) fn classify_fetch_error(error: FetchError) -> Result<Rejection, Unfinished> {
    match error {
        FetchError::DisallowedRedirectStatus { .. }
        | FetchError::MissingLocation { .. }
        | FetchError::InvalidLocation { .. }
        | FetchError::DisallowedRedirectScheme { .. }
        | FetchError::DisallowedRedirectPort { .. }
        | FetchError::TooManyRedirects { .. }
        | FetchError::RedirectLoop { .. } => Ok(Rejection::Redirect(error)),
        FetchError::InvalidUrl { .. }
        | FetchError::BlockedAddress { .. }
        | FetchError::DnsLookup { .. }
        | FetchError::NoAddresses { .. }
        | FetchError::Connect { .. }
        | FetchError::Tls { .. }
        | FetchError::Http { .. }
        | FetchError::Body { .. }
        | FetchError::TimedOut { .. }
        | FetchError::ClientSetup { .. } => Err(Unfinished::Fetch(error)),
    }
}

fn fetch_error_type(error: &FetchError) -> &'static str {
    match error {
        FetchError::BlockedAddress { .. } => error_type::BLOCKED_ADDRESS,
        FetchError::DnsLookup { .. } | FetchError::NoAddresses { .. } => error_type::LOOKUP,
        FetchError::Connect { .. } => error_type::CONNECTION,
        FetchError::Tls { .. } => error_type::TLS,
        FetchError::Http { .. } | FetchError::Body { .. } => error_type::RESPONSE,
        FetchError::TimedOut { .. } => error_type::TIMEOUT,
        FetchError::DisallowedRedirectStatus { .. }
        | FetchError::MissingLocation { .. }
        | FetchError::InvalidLocation { .. }
        | FetchError::DisallowedRedirectScheme { .. }
        | FetchError::DisallowedRedirectPort { .. }
        | FetchError::TooManyRedirects { .. }
        | FetchError::RedirectLoop { .. } => error_type::REDIRECT,
        FetchError::InvalidUrl { .. } | FetchError::ClientSetup { .. } => error_type::INTERNAL,
    }
}

fn truncation_note(searched_bytes: usize, truncated: bool) -> String {
    if truncated {
        format!(" (only the first {searched_bytes} bytes were read)")
    } else {
        String::new()
    }
}
