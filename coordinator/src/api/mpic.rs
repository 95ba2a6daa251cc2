//! The `POST /mpic` handler.
//!
//! 1. [`ApiJson`] parses the body. A body that does not parse is a `400` (`413` or `415` for
//!    size and media type), and the handler emits the request's audit event itself.
//! 2. The [`Orchestrator`](crate::orchestration::Orchestrator) validates the request (`400`
//!    with every issue found), runs its attempts over the transports and returns the
//!    response, `200` whether or not the target passed. It emits the audit event of every
//!    request that parsed, including one cut off by the deadline.
//! 3. The whole request runs under `request_timeout_seconds`. When the deadline passes the
//!    response is `504` and the perspectives' calls still in flight are dropped.

use axum::Json;
use axum::extract::State;
use mpic_shared::request::MpicRequest;
use mpic_shared::response::MpicResponse;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::ApiJson;
use crate::orchestration::{HandleError, audit};

/// Handles `POST /mpic`.
pub(crate) async fn post_mpic(
    State(state): State<AppState>,
    body: Result<ApiJson<MpicRequest>, ApiError>,
) -> Result<Json<MpicResponse>, ApiError> {
    let request = match body {
        Ok(ApiJson(request)) => request,
        Err(error) => {
            let issues = match &error {
                ApiError::Validation(issues) => issues.as_slice(),
                _ => &[],
            };
            audit::emit_rejection(None, issues);
            return Err(error);
        }
    };
    let trace_identifier = request.trace_identifier.as_deref();
    if let Some(trace_identifier) = trace_identifier {
        tracing::Span::current().record("trace_identifier", trace_identifier);
    }

    let transports = &state.transports;
    let handled = tokio::time::timeout(
        state.request_timeout,
        state
            .orchestrator
            .handle(&request, |perspective, check_type, body| {
                transports.call(&perspective.code, check_type, body, trace_identifier)
            }),
    )
    .await;

    match handled {
        Ok(Ok(response)) => Ok(Json(response)),
        Ok(Err(HandleError::Rejected(issues))) => Err(ApiError::Validation(issues)),
        Ok(Err(HandleError::Failed(error))) => {
            // The error's text is written for the caller; its cause, if any, is for the log.
            tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "request could not be served");
            Err(ApiError::Unserviceable {
                message: error.to_string(),
            })
        }
        Err(_elapsed) => {
            tracing::warn!(
                request_timeout_ms =
                    u64::try_from(state.request_timeout.as_millis()).unwrap_or(u64::MAX),
                "request did not finish within its deadline"
            );
            Err(ApiError::Timeout)
        }
    }
}
