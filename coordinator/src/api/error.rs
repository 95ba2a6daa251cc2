//! [`ApiError`], the one error type of the REST layer, and the Open MPIC error bodies it renders.
//!
//! A rejected request is `400` with
//! `{"error": "request-validation-failed", "validation_issues": [{"issue_type": ..., "message": ...}]}`,
//! and a request without a valid API key is `401` with
//! `{"error": "unauthorized", "message": "<what to send>"}`; every other error is
//! `{"error": "<what failed>"}` with a fitting status. The text of a 5xx
//! body states what failed and never carries internal detail: the handler that creates the error
//! logs the detail with the trace identifier.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::orchestration::validate::ValidationIssue;

/// The `error` value of every 400 body.
pub const VALIDATION_FAILED: &str = "request-validation-failed";

/// The `error` value of every 401 body.
pub const UNAUTHORIZED: &str = "unauthorized";

/// An error response of the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed or out of range: `400` with the issues found.
    Validation(Vec<ValidationIssue>),
    /// The request is valid but cannot be served, such as a cohort number that does not exist:
    /// `500` with a message that is safe to show the caller.
    Unserviceable {
        /// The message for the caller.
        message: String,
    },
    /// The request did not finish within the request deadline: `504`.
    Timeout,
    /// The body is not JSON by its `Content-Type`: `415`.
    UnsupportedMediaType,
    /// The body exceeds the size limit: `413`.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No route matches the path: `404`.
    NotFound,
    /// The route exists but not for this method: `405`.
    MethodNotAllowed,
    /// API keys are configured and the request presents none, or a wrong one: `401`.
    Unauthorized(Credentials),
}

/// The credentials of a request rejected for want of a valid API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// Neither an `x-api-key` header nor an `Authorization: Bearer` header.
    Missing,
    /// A key that is not one of the configured keys.
    Invalid,
}

impl Credentials {
    /// Returns a short name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Credentials::Missing => "missing",
            Credentials::Invalid => "invalid",
        }
    }
}

impl ApiError {
    /// Returns the HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unserviceable { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }

    /// Returns the `error` text of a body without validation issues.
    fn message(&self) -> String {
        match self {
            ApiError::Validation(_) => VALIDATION_FAILED.to_owned(),
            ApiError::Unserviceable { message } => message.clone(),
            ApiError::Timeout => {
                "The coordinator did not finish the request within its deadline.".to_owned()
            }
            ApiError::UnsupportedMediaType => {
                "The request body must be JSON: send Content-Type: application/json.".to_owned()
            }
            ApiError::PayloadTooLarge { limit } => {
                format!("The request body is larger than the limit of {limit} bytes.")
            }
            ApiError::NotFound => "Not found.".to_owned(),
            ApiError::MethodNotAllowed => "Method not allowed.".to_owned(),
            ApiError::Unauthorized(_) => UNAUTHORIZED.to_owned(),
        }
    }
}

/// The `401` body: the error and what the caller has to send.
#[derive(Serialize)]
struct UnauthorizedBody {
    error: &'static str,
    message: &'static str,
}

impl UnauthorizedBody {
    fn new(credentials: Credentials) -> Self {
        let message = match credentials {
            Credentials::Missing => {
                "An API key is required: send it in the x-api-key header or as \
                 Authorization: Bearer <key>."
            }
            Credentials::Invalid => "The API key is not valid.",
        };
        UnauthorizedBody {
            error: UNAUTHORIZED,
            message,
        }
    }
}

/// The `400` body.
#[derive(Serialize)]
struct ValidationBody<'a> {
    error: &'static str,
    validation_issues: &'a [ValidationIssue],
}

/// Every other error body.
#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Validation(issues) => {
                let body = ValidationBody {
                    error: VALIDATION_FAILED,
                    validation_issues: issues,
                };
                (status, Json(body)).into_response()
            }
            ApiError::Unauthorized(credentials) => (
                status,
                // RFC 9110 §15.5.2: a 401 carries a challenge for the scheme it accepts.
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(UnauthorizedBody::new(*credentials)),
            )
                .into_response(),
            other => (
                status,
                Json(ErrorBody {
                    error: other.message(),
                }),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn validation_error_renders_the_open_mpic_body() {
        let (status, body) = body_of(ApiError::Validation(vec![ValidationIssue::new(
            "invalid-quorum-count",
            "Invalid quorum count: 5",
        )]))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({
                "error": "request-validation-failed",
                "validation_issues": [
                    {"issue_type": "invalid-quorum-count", "message": "Invalid quorum count: 5"}
                ]
            })
        );
    }

    #[tokio::test]
    async fn unauthorized_renders_error_and_message() {
        for credentials in [Credentials::Missing, Credentials::Invalid] {
            let response = ApiError::Unauthorized(credentials).into_response();
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer",
                "{credentials:?}"
            );
            let (status, body) = body_of(ApiError::Unauthorized(credentials)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{credentials:?}");
            assert_eq!(body["error"], "unauthorized", "{credentials:?}");
            assert!(body["message"].is_string(), "{credentials:?}: {body}");
            assert_eq!(
                body.as_object().unwrap().len(),
                2,
                "{credentials:?}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn other_errors_render_only_an_error_text() {
        let cases = [
            (
                ApiError::Unserviceable {
                    message: "no cohort".to_owned(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (ApiError::Timeout, StatusCode::GATEWAY_TIMEOUT),
            (
                ApiError::UnsupportedMediaType,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (ApiError::NotFound, StatusCode::NOT_FOUND),
            (ApiError::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED),
        ];
        for (error, expected_status) in cases {
            let name = format!("{error:?}");
            let (status, body) = body_of(error).await;
            assert_eq!(status, expected_status, "{name}");
            let object = body.as_object().unwrap();
            assert_eq!(object.len(), 1, "{name}: {body}");
            assert!(object["error"].is_string(), "{name}: {body}");
        }
    }
}
