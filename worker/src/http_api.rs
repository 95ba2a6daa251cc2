//! The HTTP endpoints of the Python checkers, for coordinators that call perspectives over HTTP.
//!
//! | route | answer |
//! |---|---|
//! | `POST /caa` | the CAA check reply, 200 |
//! | `POST /dcv` | the DCV check reply, 200 |
//! | `GET /healthz` | `{"status": "healthy"}`, 200 |
//! | `GET /configz` | the effective configuration, secrets redacted, 200 |
//!
//! The check routes take the same JSON body as the NATS subjects and go through the same
//! [`Checker::handle`], so the in-flight bound covers both transports. A check that passed,
//! failed or could not complete is a 200 with the reply, whatever the check decided about the
//! request's values. A body that does not parse (malformed JSON, a missing field, a value of
//! the wrong type, more than [`MAX_REQUEST_BYTES`]) is a 400 with the Open MPIC error body
//! `{"error": "request-validation-failed", "validation_issues": [{"issue_type": ..., "message": ...}]}`,
//! whose message is the one a NATS reply would carry.
//! Replies carry the [`PERSPECTIVE_HEADER`] like NATS replies, and a [`TRACE_HEADER`] on the
//! request goes into the request's span.
//!
//! Signed replies: when the worker has a reply signing key and a check request carries
//! [`REQUEST_ID_HEADER`], the response carries [`SIGNATURE_HEADER`], the Ed25519 signature over
//! the perspective code, that request identifier and the exact response body bytes (see
//! [`mpic_shared::signing`]), whatever the status. A request without the header gets an
//! unsigned response, because the Python coordinator sends none. A coordinator that verifies
//! signatures therefore has to reject unsigned responses itself. A header that cannot be
//! signed for (not text, empty, longer than 128 bytes) is a 400 with issue type
//! `invalid-request-id`, unsigned.
//!
//! Not handled here: TLS (terminate it in front of the worker) and authentication of callers.
//! These endpoints are for deployments that keep perspectives on a private network; NATS with
//! credentials is the transport for anything else.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, SIGNATURE_HEADER, validate_request_id};
use mpic_shared::subject::{PERSPECTIVE_HEADER, TRACE_HEADER};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{Instrument, debug, error, field};

use crate::config::{EffectiveConfig, ReplySigningKey};
use crate::handler::{Checker, MAX_REQUEST_BYTES, request_body_problem};

/// Builds the router of the HTTP endpoints. With `reply_signing`, check responses to requests
/// that carry a request identifier are signed.
pub fn router(
    checker: Checker,
    effective_config: EffectiveConfig,
    reply_signing: Option<ReplySigningKey>,
) -> Router {
    let state = AppState {
        checker,
        reply_signing,
        configz: std::sync::Arc::new(Configz {
            app_version: env!("CARGO_PKG_VERSION"),
            config: effective_config,
        }),
    };
    Router::new()
        .route("/caa", post(check_caa))
        .route("/dcv", post(check_dcv))
        .route("/healthz", get(healthz))
        .route("/configz", get(configz))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in
/// progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[derive(Clone)]
struct AppState {
    checker: Checker,
    /// Signs check responses when set.
    reply_signing: Option<ReplySigningKey>,
    configz: std::sync::Arc<Configz>,
}

/// The `GET /configz` body.
#[derive(Debug, Serialize)]
struct Configz {
    app_version: &'static str,
    #[serde(flatten)]
    config: EffectiveConfig,
}

/// The Open MPIC error body of a 400.
#[derive(Debug, Serialize)]
struct ValidationFailed {
    error: &'static str,
    validation_issues: Vec<ValidationIssue>,
}

#[derive(Debug, Serialize)]
struct ValidationIssue {
    issue_type: &'static str,
    message: String,
}

async fn check_caa(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    run_check(state, CheckType::Caa, &headers, body).await
}

async fn check_dcv(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    run_check(state, CheckType::Dcv, &headers, body).await
}

async fn run_check(
    state: AppState,
    check_type: CheckType,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let trace_identifier = headers
        .get(TRACE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let span = tracing::info_span!(
        "http_request",
        route = %format_args!("/{check_type}"),
        trace_identifier = trace_identifier.as_deref(),
        request_id = field::Empty,
    );
    async move {
        let request_id = match signing_request_id(headers, state.reply_signing.is_some()) {
            Ok(request_id) => request_id,
            Err(problem) => {
                debug!(%problem, "rejected a request identifier");
                let body = validation_failed(INVALID_REQUEST_ID, problem);
                return respond(body, state.checker.perspective_code(), None);
            }
        };
        if let Some(request_id) = request_id {
            tracing::Span::current().record("request_id", request_id);
        }

        let body = match read_body(headers, body).await {
            Ok(bytes) => match request_body_problem(check_type, &bytes) {
                Some(problem) => rejected(problem),
                None => {
                    let reply = state.checker.handle(check_type, &bytes).await;
                    JsonBody::encode(StatusCode::OK, &reply)
                }
            },
            Err(problem) => rejected(problem),
        };
        let signer = state.reply_signing.as_ref().zip(request_id);
        respond(body, state.checker.perspective_code(), signer)
    }
    .instrument(span)
    .await
}

/// Returns the request identifier to sign for: `None` when the worker does not sign or the
/// request carries no [`REQUEST_ID_HEADER`]. A header that cannot be signed for is an error.
fn signing_request_id(headers: &HeaderMap, signing: bool) -> Result<Option<&str>, String> {
    let Some(value) = headers.get(REQUEST_ID_HEADER).filter(|_| signing) else {
        return Ok(None);
    };
    let Ok(request_id) = value.to_str() else {
        return Err(format!(
            "the {REQUEST_ID_HEADER} header is not visible ASCII text"
        ));
    };
    match validate_request_id(request_id) {
        Ok(()) => Ok(Some(request_id)),
        Err(error) => Err(format!(
            "the {REQUEST_ID_HEADER} header cannot be signed for ({error}); send 1 to 128 bytes"
        )),
    }
}

/// Reads the body within [`BODY_READ_TIMEOUT`] and up to [`MAX_REQUEST_BYTES`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, String> {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large = || format!("the request body exceeds the maximum of {MAX_REQUEST_BYTES} bytes");
    if declared_length.is_some_and(|length| length > MAX_REQUEST_BYTES as u64) {
        return Err(too_large());
    }

    // One byte over the limit is read so that an oversized body is distinguished from one of
    // exactly the maximum size.
    let read = axum::body::to_bytes(body, MAX_REQUEST_BYTES + 1);
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_elapsed) => Err(format!(
            "the request body did not arrive within {} seconds",
            BODY_READ_TIMEOUT.as_secs()
        )),
        Ok(Err(error)) => Err(format!("the request body could not be read: {error}")),
        Ok(Ok(bytes)) if bytes.len() > MAX_REQUEST_BYTES => Err(too_large()),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// A response status and body, encoded once so that a signature covers exactly the bytes
/// sent.
struct JsonBody {
    status: StatusCode,
    bytes: Vec<u8>,
}

impl JsonBody {
    fn encode(status: StatusCode, value: &impl Serialize) -> JsonBody {
        match serde_json::to_vec(value) {
            Ok(bytes) => JsonBody { status, bytes },
            Err(error) => {
                // Replies and error bodies contain only strings, numbers, booleans and lists, so
                // this would be a bug in those types.
                error!(%error, "failed to encode a response body");
                JsonBody {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    bytes: ENCODING_FAILED_BODY.to_vec(),
                }
            }
        }
    }
}

/// Builds a check route's response with the perspective header and, given a key and request
/// identifier, the signature header.
fn respond(
    body: JsonBody,
    perspective_code: &str,
    signer: Option<(&ReplySigningKey, &str)>,
) -> Response {
    let signature = signer.and_then(
        |(key, request_id)| match key.sign(request_id, &body.bytes) {
            Ok(signature) => Some(signature),
            Err(error) => {
                // `signing_request_id` validated the identifier, the only input signing rejects.
                error!(%error, "failed to sign the response");
                None
            }
        },
    );
    let mut response = Response::new(Body::from(body.bytes));
    *response.status_mut() = body.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Perspective codes are subject tokens (ASCII letters, digits, '-' and '_') and
    // signatures are base64, so both are valid header values. A value that is not would only
    // lose its header.
    if let Ok(value) = HeaderValue::from_str(perspective_code) {
        headers.insert(PERSPECTIVE_HEADER, value);
    }
    if let Some(value) = signature.and_then(|signature| HeaderValue::from_str(&signature).ok()) {
        headers.insert(SIGNATURE_HEADER, value);
    }
    response
}

fn rejected(problem: String) -> JsonBody {
    debug!(%problem, "rejected a request body");
    validation_failed(INVALID_REQUEST_BODY, problem)
}

fn validation_failed(issue_type: &'static str, message: String) -> JsonBody {
    let body = ValidationFailed {
        error: REQUEST_VALIDATION_FAILED,
        validation_issues: vec![ValidationIssue {
            issue_type,
            message,
        }],
    };
    JsonBody::encode(StatusCode::BAD_REQUEST, &body)
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "healthy" })).into_response()
}

async fn configz(State(state): State<AppState>) -> Response {
    axum::Json(state.configz.as_ref()).into_response()
}

/// How long a client may take to send a request body. A body is a few hundred bytes, so a
/// client that needs longer is stalled or holding the connection open on purpose.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `error` of a 400 body, as the Open MPIC API writes it.
const REQUEST_VALIDATION_FAILED: &str = "request-validation-failed";

/// The `issue_type` of a request body the worker cannot run.
const INVALID_REQUEST_BODY: &str = "invalid-request-body";

/// The `issue_type` of a request identifier the worker cannot sign for.
const INVALID_REQUEST_ID: &str = "invalid-request-id";

/// The body of a 500 when a response body could not be encoded.
const ENCODING_FAILED_BODY: &[u8] = br#"{"error":"failed to encode the response"}"#;
