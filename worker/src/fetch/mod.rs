//! Safe fetching for the HTTP-based DCV checks, and the address guard that every outgoing
//! connection of the worker consults.
//!
//! URLs, host names and redirect locations come from certificate applicants. The fetcher makes
//! sure that following them cannot reach the CA's own network (server-side request forgery):
//!
//! 1. The URL must be `http` or `https` on the configured port of its scheme ([`HTTP_PORT`] and
//!    [`HTTPS_PORT`] unless overridden).
//! 2. The host is looked up (A and AAAA, as a fully qualified name) with the caller's resolver.
//!    Every address is checked with the [`AddressGuard`]. One blocked address rejects the host,
//!    because picking another address would let the name's owner steer the choice. An IP-literal
//!    host is checked the same way.
//! 3. The HTTP client of the hop is pinned to the checked addresses and cannot look the name up
//!    again, so a DNS answer that changes between the check and the connect (DNS rebinding)
//!    has no effect.
//! 4. This module follows redirects itself, one hop at a time, under the rules of the
//!    CA/Browser Forum Baseline Requirements §3.2.2.4.18 and §3.2.2.4.19. It follows only 301,
//!    302, 307 and 308, only to `http` or `https` on the configured ports, at most
//!    [`MAX_REDIRECTS`] times and never to a URL already requested. Every redirect target goes
//!    through steps 2 and 3 again. Any other 3xx status fails the fetch.
//! 5. The body of the final response is read incrementally up to [`BODY_LIMIT`] bytes.
//!
//! Four time limits apply. The lookup timeout covers the DNS lookups of one hop. The connect
//! timeout covers the TCP connection and TLS handshake of one hop. The response head timeout covers one hop until the status line and headers have
//! arrived. The total budget covers the whole fetch: DNS, every hop and the body. A server that never responds or drips bytes is
//! cut off by whichever ends first.
//!
//! Modules:
//! - [`guard`]: the address guard and its tables of special-purpose address ranges.
//! - `redirect`: the redirect and destination rules, as pure functions.
//! - `resolve`: the DNS lookup of a hop's host and the guard check of its addresses.
//! - `hop`: the pinned HTTP client of one hop, the request and the capped body read.
//! - `tls`: the rustls configuration (ring provider, optional certificate verification).
//!
//! What the fetcher does not do:
//! - It keeps no cookies, reuses no connection between hops or fetches, ignores proxy settings
//!   from the environment, sends no `Referer` and sends each request once, without retries.
//! - It neither requests nor decodes compressed content: it sends no `Accept-Encoding` of its
//!   own and returns the body as the server sent it, so the body cap applies to those bytes and
//!   a compressed response cannot expand in memory. A server that compresses anyway (or is
//!   asked to by a caller's header) returns a body that will not match a challenge.
//! - It speaks HTTP/1.1 only, over TLS with ALPN `http/1.1` for `https`.
//! - It does not decide whether a check passed: a 404 or a body without the challenge is an
//!   outcome like any other, for the HTTP checks to judge.

mod error;
pub mod guard;
mod hop;
mod redirect;
mod resolve;
mod tls;

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use http::header::LOCATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;
use url::Url;

pub use error::{FetchError, TimeLimit, UrlProblem};
pub use guard::{AddressGuard, AddressPolicy, BlockedAddress};
pub use tls::TlsVerification;

use redirect::{Destinations, NextStep};

/// Fetches URLs named by certificate applicants without letting them reach the CA's network.
///
/// A `Fetcher` is cheap to clone. It keeps no connection between fetches.
#[derive(Clone, Debug)]
pub struct Fetcher {
    guard: AddressGuard,
    settings: FetchSettings,
    tls_config: rustls::ClientConfig,
}

/// The settings of a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// The only port allowed for `http` URLs. Default [`HTTP_PORT`].
    pub http_port: u16,
    /// The only port allowed for `https` URLs. Default [`HTTPS_PORT`].
    pub https_port: u16,
    /// The maximum number of redirects one fetch follows. Default [`MAX_REDIRECTS`].
    pub max_redirects: usize,
    /// The number of bytes of the final body that are kept. The rest is never read. Default
    /// [`BODY_LIMIT`].
    pub body_limit: usize,
    /// Whether HTTPS certificates are verified. Default: verified.
    pub tls_verification: TlsVerification,
    /// The `User-Agent` header. A caller's request header of the same name replaces it.
    pub user_agent: HeaderValue,
    /// Time allowed for the DNS lookups (A and AAAA together) of one hop. Default: the total
    /// budget. The worker sets it from `dns_resolution_lifetime_seconds`.
    pub lookup_timeout: Duration,
    /// Time allowed for the TCP connection and TLS handshake of one hop. Default
    /// [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Time allowed for one hop from its start until the response head has arrived. Default
    /// [`RESPONSE_HEAD_TIMEOUT`].
    pub response_head_timeout: Duration,
    /// Time allowed for the whole fetch: DNS lookups, every hop and the body. The worker sets
    /// it from `http_client_timeout_seconds`.
    pub total_timeout: Duration,
}

/// The result of a fetch that reached a final (non-redirect) response.
///
/// The status of the final response is not judged here: a 404 is an outcome like a 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The redirects followed, in order, each with the URL that returned it and its status.
    pub history: Vec<RedirectHop>,
    /// The URL that returned the final response.
    pub final_url: Url,
    /// The status of the final response.
    pub status: StatusCode,
    /// The first bytes of the final body, at most [`FetchSettings::body_limit`] of them.
    pub body: Vec<u8>,
    /// Whether the body was longer than the cap. A body that fills the cap exactly and came
    /// without `Content-Length` also counts as truncated, because the fetch stops reading there.
    pub truncated: bool,
    /// The address of the server that sent the final response, as reported by the HTTP client.
    pub resolved_ip: Option<IpAddr>,
}

/// One followed redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectHop {
    /// The redirect status: 301, 302, 307 or 308.
    pub status: StatusCode,
    /// The URL that returned the redirect.
    pub url: Url,
}

/// An error that kept a [`Fetcher`] from being set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetcherSetupError {
    /// The TLS configuration could not be built, usually because the operating system has no
    /// root certificates to verify servers with.
    #[error("building the TLS configuration for HTTP fetches failed")]
    Tls(#[source] rustls::Error),
}

impl FetchSettings {
    /// Creates settings with the given total budget and the named defaults for everything else.
    ///
    /// The connect and response head timeouts are shortened to the total budget when it is
    /// shorter.
    pub fn new(total_timeout: Duration) -> Self {
        Self {
            http_port: HTTP_PORT,
            https_port: HTTPS_PORT,
            max_redirects: MAX_REDIRECTS,
            body_limit: BODY_LIMIT,
            tls_verification: TlsVerification::default(),
            user_agent: HeaderValue::from_static(USER_AGENT),
            lookup_timeout: total_timeout,
            connect_timeout: CONNECT_TIMEOUT.min(total_timeout),
            response_head_timeout: RESPONSE_HEAD_TIMEOUT.min(total_timeout),
            total_timeout,
        }
    }

    fn destinations(&self) -> Destinations {
        Destinations {
            http_port: self.http_port,
            https_port: self.https_port,
        }
    }
}

impl Fetcher {
    /// Creates a fetcher that checks every address with `guard`.
    ///
    /// # Errors
    ///
    /// Returns [`FetcherSetupError::Tls`] when certificate verification is on and no root
    /// certificate can be loaded from the operating system.
    pub fn new(guard: AddressGuard, settings: FetchSettings) -> Result<Self, FetcherSetupError> {
        let tls_config =
            tls::client_config(settings.tls_verification).map_err(FetcherSetupError::Tls)?;
        Ok(Self {
            guard,
            settings,
            tls_config,
        })
    }

    /// Returns the settings this fetcher applies.
    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// Fetches `url` with GET, following allowed redirects, and returns the final response.
    ///
    /// `resolver` looks up every host, the first and each redirect target. `headers` are sent
    /// with every request of the fetch, redirects included.
    ///
    /// # Errors
    ///
    /// Returns a [`FetchError`] naming the step that failed, the URL of that hop and, where it
    /// applies, the host and address.
    pub async fn fetch(
        &self,
        resolver: &TokioResolver,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<FetchOutcome, FetchError> {
        let deadline = Instant::now() + self.settings.total_timeout;
        let destinations = self.settings.destinations();

        destinations
            .check_url(url)
            .map_err(|problem| FetchError::InvalidUrl {
                url: Box::new(url.clone()),
                problem,
            })?;

        let mut current = url.clone();
        current.set_fragment(None);
        let mut requested = vec![current.clone()];
        let mut history = Vec::new();

        // Each pass requests one URL. The loop ends because `next_step` fails once
        // `max_redirects` redirects have been followed or a URL repeats.
        loop {
            let (response, addresses) = self.request(resolver, &current, headers, deadline).await?;

            let status = response.status();
            tracing::debug!(
                url = %current,
                status = status.as_u16(),
                ?addresses,
                "fetch hop received a response"
            );
            let location = response.headers().get(LOCATION).map(HeaderValue::as_bytes);
            let step = redirect::next_step(
                &current,
                status,
                location,
                &destinations,
                &requested,
                self.settings.max_redirects,
            )?;

            match step {
                NextStep::Follow(next) => {
                    history.push(RedirectHop {
                        status,
                        url: current,
                    });
                    requested.push(next.clone());
                    current = next;
                }
                NextStep::Finish => {
                    return self.finish(response, current, history, deadline).await;
                }
            }
        }
    }

    /// Reads the body of the final response and assembles the outcome.
    async fn finish(
        &self,
        mut response: reqwest::Response,
        final_url: Url,
        history: Vec<RedirectHop>,
        deadline: Instant,
    ) -> Result<FetchOutcome, FetchError> {
        let body = hop::read_capped(
            &mut response,
            &final_url,
            self.settings.body_limit,
            deadline,
            self.settings.total_timeout,
        )
        .await?;

        Ok(FetchOutcome {
            history,
            final_url,
            status: response.status(),
            body: body.bytes,
            truncated: body.truncated,
            resolved_ip: response.remote_addr().map(|peer| peer.ip()),
        })
    }

    /// Resolves and guards the host of `url`, then sends the request of one hop.
    async fn request(
        &self,
        resolver: &TokioResolver,
        url: &Url,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<(reqwest::Response, Vec<IpAddr>), FetchError> {
        let lookup_deadline = deadline.min(Instant::now() + self.settings.lookup_timeout);
        let limit = if lookup_deadline < deadline {
            TimeLimit::Lookup(self.settings.lookup_timeout)
        } else {
            TimeLimit::Total(self.settings.total_timeout)
        };
        let lookup = resolve::guarded_addresses(resolver, &self.guard, url);
        let addresses = tokio::time::timeout_at(lookup_deadline, lookup)
            .await
            .map_err(|_elapsed| FetchError::TimedOut {
                url: Box::new(url.clone()),
                limit,
            })??;

        let client = hop::pinned_client(&self.settings, &self.tls_config, url, &addresses)?;
        let response =
            hop::send(&client, &self.settings, url, &addresses, headers, deadline).await?;
        Ok((response, addresses))
    }
}

/// The port of `http` URLs: the ACME HTTP challenge fetches an `http://` URL with no port
/// (RFC 8555 §8.3), and 80 is an Authorized Port of the Baseline Requirements.
pub const HTTP_PORT: u16 = 80;

/// The port of `https` URLs: the default `https` port, and an Authorized Port of the Baseline
/// Requirements.
pub const HTTPS_PORT: u16 = 443;

/// The maximum number of redirects one fetch follows. The Baseline Requirements set no number.
/// Ten covers the usual chains (http to https, apex to `www`, a CDN hop) several times over
/// while bounding the work an applicant can cause.
pub const MAX_REDIRECTS: usize = 10;

/// The number of body bytes a fetch keeps: 64 KiB. Challenge files are short (an ACME key
/// authorization is under 100 bytes), so this leaves room for a page that wraps the value in
/// markup while keeping the memory of one check small.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The default connect timeout: TCP connection and TLS handshake of one hop. Linux retransmits
/// an unanswered SYN after 1 s and again 2 s later, so 5 s allows two retransmissions.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time for one hop until its response head arrives. A challenge responder serves
/// a static file, so a server that needs longer is treated as unresponsive.
pub const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `User-Agent` header of fetches.
pub const USER_AGENT: &str = concat!("mpic-worker/", env!("CARGO_PKG_VERSION"));
