//! Errors of a fetch: every way a fetch can fail, each with the URL and host it concerns.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;
use url::Url;

use super::guard::BlockedAddress;

/// The failure that kept a fetch from reaching a final response.
///
/// A variant names the step that failed and carries the URL of the hop that failed, so an error
/// message in a check reply lets the applicant find the problem. None of them means that the
/// check ran and decided: the caller reports every one as "not completed".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL passed to [`Fetcher::fetch`](super::Fetcher::fetch) cannot be fetched under the
    /// settings. This is a fault of the caller, not of the target.
    #[error("invalid URL to fetch {url}: {problem}")]
    InvalidUrl {
        /// The URL as passed in.
        url: Box<Url>,
        /// The rule the URL breaks.
        problem: UrlProblem,
    },

    /// The host resolved to an address that the address guard rejects. The fetch stops even if
    /// other addresses of the host are allowed.
    #[error("host {host} of {url} is not fetched because {blocked}")]
    BlockedAddress {
        /// The URL of the hop.
        url: Box<Url>,
        /// The host name or IP literal of the URL.
        host: String,
        /// The rejected address and its range.
        blocked: BlockedAddress,
    },

    /// The DNS lookup of the host failed (SERVFAIL, timeout, refused) and returned no address.
    #[error("DNS lookup of {host} for {url} failed")]
    DnsLookup {
        /// The URL of the hop.
        url: Box<Url>,
        /// The host name that was looked up.
        host: String,
        /// The resolver error of the A lookup, or of the AAAA lookup when A had no records.
        #[source]
        source: Box<hickory_resolver::net::NetError>,
    },

    /// The host has neither A nor AAAA records.
    #[error("host {host} of {url} has no A or AAAA records")]
    NoAddresses {
        /// The URL of the hop.
        url: Box<Url>,
        /// The host name that was looked up.
        host: String,
    },

    /// No TCP connection could be opened to any address of the host.
    #[error("connecting to {url} failed (addresses tried: {})", display_addresses(.addresses))]
    Connect {
        /// The URL of the hop.
        url: Box<Url>,
        /// The guarded addresses the connection was pinned to.
        addresses: Vec<IpAddr>,
        /// The HTTP client error.
        #[source]
        source: reqwest::Error,
    },

    /// The TLS handshake failed, for example on an untrusted certificate while TLS verification
    /// is on.
    #[error("TLS handshake with {url} failed")]
    Tls {
        /// The URL of the hop.
        url: Box<Url>,
        /// The HTTP client error, whose source chain contains the rustls error.
        #[source]
        source: reqwest::Error,
    },

    /// The request could not be sent or the response head could not be read.
    #[error("HTTP exchange with {url} failed")]
    Http {
        /// The URL of the hop.
        url: Box<Url>,
        /// The HTTP client error.
        #[source]
        source: reqwest::Error,
    },

    /// Reading the response body failed.
    #[error("reading the response body of {url} failed")]
    Body {
        /// The URL of the final response.
        url: Box<Url>,
        /// The HTTP client error.
        #[source]
        source: reqwest::Error,
    },

    /// A time limit ran out.
    #[error("fetching {url} timed out: {limit}")]
    TimedOut {
        /// The URL of the hop that was under way.
        url: Box<Url>,
        /// The limit that ran out.
        limit: TimeLimit,
    },

    /// The response is a redirect with a status that must not be followed (only 301, 302, 307
    /// and 308 are followed).
    #[error("{url} returned redirect status {status}, which is not followed")]
    DisallowedRedirectStatus {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The status code of the response.
        status: StatusCode,
    },

    /// A followed redirect status came without a `Location` header.
    #[error("{url} returned redirect status {status} without a Location header")]
    MissingLocation {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The status code of the response.
        status: StatusCode,
    },

    /// The `Location` header is not valid UTF-8 or not a valid URL reference.
    #[error("{url} redirected to an invalid location {location:?}")]
    InvalidLocation {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The header value, with invalid UTF-8 replaced.
        location: String,
        /// The parse error, if the value was valid UTF-8.
        #[source]
        source: Option<url::ParseError>,
    },

    /// A redirect points to a scheme other than `http` or `https`.
    #[error("{url} redirected to {location}, whose scheme is neither http nor https")]
    DisallowedRedirectScheme {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The resolved redirect target.
        location: Box<Url>,
    },

    /// A redirect points to a port other than the one configured for its scheme.
    #[error(
        "{url} redirected to {location} on port {port}, but only port {allowed_port} is \
         allowed for that scheme"
    )]
    DisallowedRedirectPort {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The resolved redirect target.
        location: Box<Url>,
        /// The port of the redirect target.
        port: u16,
        /// The configured port for the scheme of the redirect target.
        allowed_port: u16,
    },

    /// The response would need one more redirect than the settings allow.
    #[error("{url} redirected again after {max_redirects} redirects")]
    TooManyRedirects {
        /// The URL that returned the redirect that was not followed.
        url: Box<Url>,
        /// The configured maximum number of redirects.
        max_redirects: usize,
    },

    /// A redirect points to a URL that this fetch already requested.
    #[error("{url} redirected to {location}, which was already requested")]
    RedirectLoop {
        /// The URL that returned the redirect.
        url: Box<Url>,
        /// The resolved redirect target.
        location: Box<Url>,
    },

    /// The HTTP client could not be built. This is an internal fault, not a fault of the target.
    #[error("building the HTTP client for {url} failed")]
    ClientSetup {
        /// The URL of the hop the client was for.
        url: Box<Url>,
        /// The HTTP client error.
        #[source]
        source: reqwest::Error,
    },
}

/// The reason a URL passed by the caller cannot be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlProblem {
    /// The scheme is neither `http` nor `https`.
    UnsupportedScheme,
    /// The URL has no host.
    MissingHost,
    /// The port is not the one configured for the scheme.
    DisallowedPort {
        /// The port of the URL.
        port: u16,
        /// The configured port for the scheme.
        allowed_port: u16,
    },
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedScheme => f.write_str("the scheme is neither http nor https"),
            Self::MissingHost => f.write_str("the URL has no host"),
            Self::DisallowedPort { port, allowed_port } => write!(
                f,
                "port {port} is not allowed, only port {allowed_port} for this scheme"
            ),
        }
    }
}

/// A time limit of a fetch, with its configured length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeLimit {
    /// The DNS lookups (A and AAAA) of one hop.
    Lookup(Duration),
    /// Opening the TCP connection and completing the TLS handshake of one hop.
    Connect(Duration),
    /// One hop, from the start of the connection until the response head has arrived.
    ResponseHead(Duration),
    /// The whole fetch: DNS lookups, every hop and the body.
    Total(Duration),
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lookup(limit) => write!(f, "no DNS response within {limit:?}"),
            Self::Connect(limit) => write!(f, "no connection within {limit:?}"),
            Self::ResponseHead(limit) => write!(f, "no response head within {limit:?}"),
            Self::Total(limit) => write!(f, "the fetch took longer than {limit:?}"),
        }
    }
}

fn display_addresses(addresses: &[IpAddr]) -> String {
    let texts: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    texts.join(", ")
}
