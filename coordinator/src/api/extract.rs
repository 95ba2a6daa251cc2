//! [`ApiJson`], the JSON body extractor whose rejections are Open MPIC `400` bodies.
//!
//! axum's own `Json` extractor rejects a bad body with plain text. This one reports every
//! problem in the API's shape, with one issue that names the field at fault, such as
//! `dcv_check_parameters: missing field `key_authorization_hash``. The field path comes from
//! `serde_path_to_error`.
//!
//! Accepted media types are `application/json`, `application/*+json` and, deliberately, a
//! missing `Content-Type` and `application/x-www-form-urlencoded`: the last is what `curl -d`
//! sends without `-H`, and the body is parsed as JSON all the same. Any other type is `415`.
//! A body over the router's limit is `413`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use mpic_shared::dcv::ValidationMethod;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::error::{ApiError, ValidationIssue};
use crate::orchestration::validate::enum_value_issues;

/// A JSON request body parsed into `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default().to_owned());
        if let Some(content_type) = content_type
            && !is_accepted_media_type(&content_type)
        {
            return Err(ApiError::UnsupportedMediaType);
        }

        let body = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse(&body).map(ApiJson)
    }
}

/// The `issue_type` values of bodies that do not parse into a request. The Open MPIC API leaves
/// these to the implementation.
pub mod issue_type {
    /// The body is not JSON at all: a syntax error, truncated, or trailing data.
    pub const INVALID_JSON: &str = "invalid-json";
    /// `check_type` is missing or not `caa` or `dcv`.
    pub const INVALID_CHECK_TYPE: &str = "invalid-check-type";
    /// `dcv_check_parameters.validation_method` is missing or names no known method.
    pub const INVALID_VALIDATION_METHOD: &str = "invalid-validation-method";
    /// Any other shape problem: a missing field, a value of the wrong type, an unknown value.
    pub const INVALID_REQUEST_SCHEMA: &str = "invalid-request-schema";
}

/// Parses a JSON body. A body that does not parse becomes validation issues: the API's own
/// issue types where the problem is one of them (an unknown `certificate_type`, a record type
/// the method cannot query), else one issue that names the field.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ApiError::Validation(issues(&error, body)))?;
    deserializer
        .end()
        .map_err(|error| ApiError::Validation(vec![syntax_issue(&error)]))?;
    Ok(value)
}

fn issues(
    error: &serde_path_to_error::Error<serde_json::Error>,
    body: &[u8],
) -> Vec<ValidationIssue> {
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return vec![syntax_issue(inner)];
    }
    // The body is valid JSON here, because serde reported a data error and not a syntax error.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return vec![syntax_issue(inner)];
    };
    let api_issues = enum_value_issues(&value);
    if !api_issues.is_empty() {
        return api_issues;
    }

    let path = error.path().to_string();
    let field = path.rsplit('.').next().unwrap_or_default();
    let issue_type = match field {
        "check_type" => issue_type::INVALID_CHECK_TYPE,
        "validation_method" => issue_type::INVALID_VALIDATION_METHOD,
        // A missing `validation_method` tag fails on the parameters object itself.
        "dcv_check_parameters" if !has_known_validation_method(&value) => {
            issue_type::INVALID_VALIDATION_METHOD
        }
        _ => issue_type::INVALID_REQUEST_SCHEMA,
    };
    let detail = without_position(inner);
    let message = if path == "." {
        detail
    } else {
        format!("{path}: {detail}")
    };
    vec![ValidationIssue::new(issue_type, message)]
}

fn syntax_issue(error: &serde_json::Error) -> ValidationIssue {
    ValidationIssue::new(
        issue_type::INVALID_JSON,
        format!("the request body is not valid JSON: {error}"),
    )
}

/// Reports whether `dcv_check_parameters.validation_method` names a known method. The path of
/// an error inside the parameters, a missing tag included, stops at `dcv_check_parameters`,
/// because serde buffers an internally tagged object before it picks the variant. So the tag is
/// looked at on its own.
fn has_known_validation_method(body: &serde_json::Value) -> bool {
    body.pointer("/dcv_check_parameters/validation_method")
        .is_some_and(|method| ValidationMethod::deserialize(method).is_ok())
}

/// Returns serde_json's message without the trailing " at line L column C", which adds nothing
/// once the field path is known.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge {
            limit: super::MAX_BODY_BYTES,
        };
    }
    ApiError::Validation(vec![ValidationIssue::new(
        issue_type::INVALID_JSON,
        format!("the request body could not be read: {rejection}"),
    )])
}

/// Reports whether a `Content-Type` allows parsing the body as JSON.
fn is_accepted_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || subtype.ends_with("+json") || subtype == "x-www-form-urlencoded"
}

#[cfg(test)]
mod tests {
    use mpic_shared::request::MpicRequest;

    use super::*;

    fn issues(body: &str) -> Vec<ValidationIssue> {
        match parse::<MpicRequest>(body.as_bytes()) {
            Err(ApiError::Validation(issues)) => issues,
            other => panic!("{body} gave {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        let cases = [
            (
                "missing hash",
                r#"{"check_type":"dcv","domain_or_ip_target":"example.com",
                    "dcv_check_parameters":{"validation_method":"acme-dns-01"}}"#,
                "invalid-request-schema",
                "dcv_check_parameters: missing field `key_authorization_hash`",
            ),
            (
                "unknown check type",
                r#"{"check_type":"nope","domain_or_ip_target":"example.com"}"#,
                "invalid-check-type",
                "check_type: unknown variant `nope`, expected `caa` or `dcv`",
            ),
            (
                "unknown certificate type",
                r#"{"check_type":"caa","domain_or_ip_target":"example.com",
                    "caa_check_parameters":{"certificate_type":"code-signing"}}"#,
                "invalid-certificate-type",
                "Invalid 'certificate-type' specified: code-signing",
            ),
            (
                "unknown validation method",
                r#"{"check_type":"dcv","domain_or_ip_target":"example.com",
                    "dcv_check_parameters":{"validation_method":"carrier-pigeon"}}"#,
                "invalid-validation-method",
                "dcv_check_parameters.validation_method: unknown variant `carrier-pigeon`",
            ),
            (
                "missing validation method",
                r#"{"check_type":"dcv","domain_or_ip_target":"example.com",
                    "dcv_check_parameters":{"challenge_value":"x"}}"#,
                "invalid-validation-method",
                "dcv_check_parameters: missing field `validation_method`",
            ),
            (
                "record type outside the method",
                r#"{"check_type":"dcv","domain_or_ip_target":"example.com",
                    "dcv_check_parameters":{"validation_method":"dns-change",
                    "challenge_value":"x","dns_record_type":"MX"}}"#,
                "invalid-validation-method-record-type-combination",
                "Invalid validation method and record type combination: dns-change and MX",
            ),
            (
                "missing target",
                r#"{"check_type":"caa"}"#,
                "invalid-request-schema",
                "missing field `domain_or_ip_target`",
            ),
            (
                "count of the wrong type",
                r#"{"check_type":"caa","domain_or_ip_target":"example.com",
                    "orchestration_parameters":{"perspective_count":"six"}}"#,
                "invalid-request-schema",
                "orchestration_parameters.perspective_count: invalid type: string \"six\"",
            ),
            (
                "not an object",
                r#""caa""#,
                "invalid-request-schema",
                "invalid type: string \"caa\", expected struct MpicRequest",
            ),
            (
                "truncated",
                r#"{"check_type":"caa""#,
                "invalid-json",
                "the request body is not valid JSON",
            ),
            (
                "not JSON",
                "check_type=caa",
                "invalid-json",
                "the request body is not valid JSON",
            ),
            (
                "empty",
                "",
                "invalid-json",
                "the request body is not valid JSON",
            ),
            (
                "trailing data",
                r#"{"check_type":"caa","domain_or_ip_target":"example.com"} {}"#,
                "invalid-json",
                "the request body is not valid JSON: trailing characters",
            ),
        ];
        for (name, body, issue_type, message) in cases {
            let found = issues(body);
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            assert_eq!(found[0].issue_type, issue_type, "{name}: {found:?}");
            assert!(
                found[0].message.starts_with(message),
                "{name}: {:?} does not start with {message:?}",
                found[0].message
            );
        }
    }

    #[test]
    fn media_types() {
        let cases = [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("application/x-www-form-urlencoded", true),
            ("text/plain", false),
            ("multipart/form-data; boundary=x", false),
            ("application/xml", false),
            ("json", false),
        ];
        for (content_type, accepted) in cases {
            assert_eq!(
                is_accepted_media_type(content_type),
                accepted,
                "{content_type}"
            );
        }
    }
}
