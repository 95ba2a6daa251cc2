//! HTTP calls to a perspective's checker endpoints, as the seed deployment runs them: the Python
//! checkers' `POST /caa` and `POST /dcv`, or the worker's own HTTP API.
//!
//! The body is the same JSON as over NATS; the endpoint's configured headers (such as an API
//! key), the caller's trace identifier ([`TRACE_HEADER`]) and a fresh request identifier
//! ([`REQUEST_ID_HEADER`]) go with it. A 2xx answer must carry a check response; any other
//! status is a failed request. Redirects are not followed, because a checker has no reason to
//! send one and following it would post the check elsewhere.
//!
//! An [`HttpPerspective`] with a [`ReplyVerifier`] accepts a 2xx response only when its
//! [`SIGNATURE_HEADER`] verifies over the perspective code, the request identifier and the
//! exact body, as our worker's HTTP API signs it. Without a verifier, responses are accepted
//! unsigned, because the seed deployment's Python checkers cannot sign.
//!
//! TLS uses rustls with the *ring* provider and the operating system's root certificates
//! (through `rustls-platform-verifier`). Not handled here: client certificates and private root
//! certificates beyond the system store.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::TRACE_HEADER;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::config::{HttpEndpoint, HttpEndpoints};
use crate::transport::{
    MAX_REPLY_BYTES, TransportError, new_request_id, parse_reply, verify_signature,
};

/// The reason the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpSetupError {
    /// The TLS configuration could not be built (no root certificates, for example).
    #[error("failed to set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest rejected the client settings.
    #[error("failed to build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// An HTTP client shared by every HTTP perspective. Cloning is cheap: clones share the
/// connection pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    /// Per-request timeout (`http_client_timeout_seconds`), covering connect, send and the
    /// whole reply body.
    timeout: Duration,
}

impl HttpTransport {
    /// Builds the client. `pool_idle_timeout` is `http_client_keepalive_timeout_seconds`.
    pub fn new(timeout: Duration, pool_idle_timeout: Duration) -> Result<Self, HttpSetupError> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(pool_idle_timeout)
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self { client, timeout })
    }

    /// Returns the client of one perspective's endpoints. With `verifier`, its responses must
    /// carry a valid signature; with `None`, unsigned responses are accepted.
    pub fn perspective(
        &self,
        endpoints: HttpEndpoints,
        verifier: Option<Arc<ReplyVerifier>>,
    ) -> HttpPerspective {
        HttpPerspective {
            transport: self.clone(),
            endpoints: Arc::new(endpoints),
            verifier,
        }
    }

    /// Posts one check to `endpoint` and reads the reply. With `verifier`, the response must
    /// carry a signature that verifies for this call's request identifier.
    pub async fn call(
        &self,
        perspective: &str,
        endpoint: &HttpEndpoint,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
        verifier: Option<&ReplyVerifier>,
    ) -> Result<CheckResponse, TransportError> {
        let request_id = new_request_id();
        let mut request = self
            .client
            .post(endpoint.url.clone())
            .headers(endpoint.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(REQUEST_ID_HEADER, request_id.as_str())
            .body(body);
        // An identifier that is not a valid header value still travels in the JSON body.
        if let Some(value) = trace_identifier.and_then(|id| HeaderValue::from_str(id).ok()) {
            request = request.header(TRACE_HEADER, value);
        }

        let mut response = request
            .send()
            .await
            .map_err(|error| self.send_error(perspective, error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TransportError::RequestFailed {
                perspective: perspective.to_owned(),
                reason: format!("{} answered with status {status}", endpoint.url.path()),
            });
        }
        // A header that is not text cannot be a base64 signature; it verifies as unsigned.
        let signature = response
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);

        let mut payload = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.send_error(perspective, error))?
        {
            if payload.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(TransportError::InvalidReply {
                    perspective: perspective.to_owned(),
                    reason: format!("the reply is larger than {MAX_REPLY_BYTES} bytes"),
                });
            }
            payload.extend_from_slice(&chunk);
        }
        verify_signature(
            perspective,
            verifier,
            &request_id,
            &payload,
            signature.as_deref(),
        )?;
        parse_reply(perspective, check_type, &payload)
    }

    fn send_error(&self, perspective: &str, error: reqwest::Error) -> TransportError {
        if error.is_timeout() {
            return TransportError::TimedOut {
                perspective: perspective.to_owned(),
                timeout: self.timeout,
            };
        }
        // The URL is left out: it may carry credentials.
        TransportError::RequestFailed {
            perspective: perspective.to_owned(),
            reason: error.without_url().to_string(),
        }
    }
}

/// One HTTP perspective: the shared client, that perspective's two endpoints and, when its
/// responses must be signed, its public keys.
#[derive(Debug, Clone)]
pub struct HttpPerspective {
    transport: HttpTransport,
    endpoints: Arc<HttpEndpoints>,
    verifier: Option<Arc<ReplyVerifier>>,
}

impl HttpPerspective {
    /// Posts one check to the endpoint of its type.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
    ) -> Result<CheckResponse, TransportError> {
        let endpoint = match check_type {
            CheckType::Caa => &self.endpoints.caa,
            CheckType::Dcv => &self.endpoints.dcv,
        };
        self.transport
            .call(
                perspective,
                endpoint,
                check_type,
                body,
                trace_identifier,
                self.verifier.as_deref(),
            )
            .await
    }
}

/// Builds the rustls configuration: *ring*, the safe default protocol versions, and certificate
/// verification against the operating system's roots.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The `User-Agent` of perspective calls.
const USER_AGENT: &str = concat!("mpic-coordinator/", env!("CARGO_PKG_VERSION"));
