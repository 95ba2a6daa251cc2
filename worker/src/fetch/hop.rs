//! One hop of a fetch: a client pinned to the guarded addresses, the request, and the body read
//! up to the cap.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::HeaderMap;
use reqwest::dns::{Name, Resolve, Resolving};
use tokio::time::Instant;
use url::{Host, Url};

use super::FetchSettings;
use super::error::{FetchError, TimeLimit};

/// Builds a client for one hop that can only reach `addresses`.
///
/// The host name is pinned to the addresses the guard accepted, and every other name fails to
/// resolve. So the client cannot look the name up again and connect to a different address
/// (DNS rebinding between the check and the connect). An IP-literal host needs no lookup.
///
/// The client keeps no idle connection, no cookie and no proxy, follows no redirect and retries
/// nothing: each hop is one request on one fresh connection.
pub(crate) fn pinned_client(
    settings: &FetchSettings,
    tls_config: &rustls::ClientConfig,
    url: &Url,
    addresses: &[IpAddr],
) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config.clone())
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .referer(false)
        .pool_max_idle_per_host(0)
        .connect_timeout(settings.connect_timeout)
        .user_agent(settings.user_agent.clone())
        .dns_resolver(NoLookup);

    if let Some(Host::Domain(domain)) = url.host() {
        // Port 0 makes the client use the port of the URL, or the default port of its scheme.
        let pinned: Vec<SocketAddr> = addresses
            .iter()
            .map(|address| SocketAddr::new(*address, 0))
            .collect();
        builder = builder.resolve_to_addrs(domain, &pinned);
    }

    builder.build().map_err(|source| FetchError::ClientSetup {
        url: Box::new(url.clone()),
        source,
    })
}

/// Sends a GET request for `url` and waits for the response head.
pub(crate) async fn send(
    client: &reqwest::Client,
    settings: &FetchSettings,
    url: &Url,
    addresses: &[IpAddr],
    headers: &HeaderMap,
    deadline: Instant,
) -> Result<reqwest::Response, FetchError> {
    let request = client.get(url.clone()).headers(headers.clone());

    let head_deadline = deadline.min(Instant::now() + settings.response_head_timeout);
    let limit = if head_deadline < deadline {
        TimeLimit::ResponseHead(settings.response_head_timeout)
    } else {
        TimeLimit::Total(settings.total_timeout)
    };

    match tokio::time::timeout_at(head_deadline, request.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(classify(error, url, addresses, settings.connect_timeout)),
        Err(_elapsed) => Err(FetchError::TimedOut {
            url: Box::new(url.clone()),
            limit,
        }),
    }
}

/// A response body of at most the configured number of bytes.
pub(crate) struct CappedBody {
    pub(crate) bytes: Vec<u8>,
    pub(crate) truncated: bool,
}

/// Reads the body chunk by chunk and stops at `limit` bytes, so a large body never sits in
/// memory. The reading stops at `deadline` too, so a server that sends slowly cannot hold the
/// fetch.
///
/// When the body fills the cap exactly and the response has no `Content-Length`, the fetch
/// cannot tell whether more would follow without waiting for it, so it reports the body as
/// truncated.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    url: &Url,
    limit: usize,
    deadline: Instant,
    total_timeout: Duration,
) -> Result<CappedBody, FetchError> {
    let declared_length = response.content_length();
    let mut bytes = Vec::new();

    while bytes.len() < limit {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_elapsed) => {
                return Err(FetchError::TimedOut {
                    url: Box::new(url.clone()),
                    limit: TimeLimit::Total(total_timeout),
                });
            }
            Ok(Err(source)) => {
                return Err(FetchError::Body {
                    url: Box::new(url.clone()),
                    source,
                });
            }
            Ok(Ok(None)) => {
                return Ok(CappedBody {
                    bytes,
                    truncated: false,
                });
            }
            Ok(Ok(Some(chunk))) => chunk,
        };

        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(CappedBody {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }

    let truncated = declared_length.is_none_or(|length| length > bytes.len() as u64);
    Ok(CappedBody { bytes, truncated })
}

/// Sorts a client error into the fetch error that names the failed step.
fn classify(
    error: reqwest::Error,
    url: &Url,
    addresses: &[IpAddr],
    connect_timeout: Duration,
) -> FetchError {
    let url = Box::new(url.clone());
    if error.is_connect() && error.is_timeout() {
        return FetchError::TimedOut {
            url,
            limit: TimeLimit::Connect(connect_timeout),
        };
    }
    if has_tls_error(&error) {
        return FetchError::Tls { url, source: error };
    }
    if error.is_connect() {
        return FetchError::Connect {
            url,
            addresses: addresses.to_vec(),
            source: error,
        };
    }
    FetchError::Http { url, source: error }
}

/// Reports whether a rustls error is in the source chain of `error`.
///
/// tokio-rustls wraps rustls errors in `std::io::Error`, sometimes twice, and `io::Error::source`
/// skips the wrapped error. So the walk descends into an `io::Error` through `get_ref()`.
fn has_tls_error(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if current.is::<rustls::Error>() {
            return true;
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io_error) => io_error
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    false
}

/// A DNS resolver for the HTTP client that resolves nothing.
///
/// The pinned host never reaches it. It stops any other name from being looked up behind the
/// guard's back.
struct NoLookup;

impl Resolve for NoLookup {
    fn resolve(&self, name: Name) -> Resolving {
        let error = UnpinnedName(name.as_str().to_owned());
        Box::pin(async move { Err(error.into()) })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("host {0} is not pinned to guarded addresses")]
struct UnpinnedName(String);
