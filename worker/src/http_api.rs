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
use mpic_shared::subject::{PERSPECTIVE_HEADER, TRACE_HEADER};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{Instrument, debug};

use crate::config::EffectiveConfig;
use crate::handler::{Checker, MAX_REQUEST_BYTES, request_body_problem};

/// Builds the router of the HTTP endpoints.
pub fn router(checker: Checker, effective_config: EffectiveConfig) -> Router {
    let state = AppState {
        checker,
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
    );
    async move {
        let response = match read_body(headers, body).await {
            Ok(bytes) => match request_body_problem(check_type, &bytes) {
                Some(problem) => rejected(problem),
                None => {
                    let reply = state.checker.handle(check_type, &bytes).await;
                    (StatusCode::OK, axum::Json(reply)).into_response()
                }
            },
            Err(problem) => rejected(problem),
        };
        with_perspective(response, state.checker.perspective_code())
    }
    .instrument(span)
    .await
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

    // One byte over the limit is read so that an oversized body is told apart from one of
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

fn rejected(problem: String) -> Response {
    debug!(%problem, "rejected a request body");
    validation_failed(problem)
}

fn with_perspective(mut response: Response, perspective_code: &str) -> Response {
    // Perspective codes are subject tokens (ASCII letters, digits, '-' and '_'), which are
    // valid header values; a code that is not would only lose the header.
    if let Ok(value) = HeaderValue::from_str(perspective_code) {
        response.headers_mut().insert(PERSPECTIVE_HEADER, value);
    }
    response
}

fn validation_failed(message: String) -> Response {
    let body = ValidationFailed {
        error: REQUEST_VALIDATION_FAILED,
        validation_issues: vec![ValidationIssue {
            issue_type: INVALID_REQUEST_BODY,
            message,
        }],
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
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
