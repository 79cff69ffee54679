//! Every error the API returns, as an RFC 9457 `application/problem+json` document.
//!
//! Client mistakes map to 4xx with a detail that speaks of the request only; faults on our
//! side map to 503 (retryable, with `Retry-After`) or 500, and never echo internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::api::{FieldError, Problem};

use crate::error::Error;
use crate::request_id::RequestId;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 1;

/// The error answers every operation may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ProblemResponses {
    /// The request was refused: bad syntax (400), no identity (401), no such resource (404),
    /// wrong method (405), too large (413), wrong media type (415) or a broken rule (422).
    #[response(status = "4XX", content_type = "application/problem+json")]
    Refused(Problem),
    /// The database is busy or unreachable; retry after `Retry-After` seconds.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// No caller (401).
    #[error("authentication required")]
    Unauthorized,
    /// The named thing does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The path exists, the method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is over the limit (413).
    #[error("request body larger than the limit")]
    PayloadTooLarge,
    /// The body is not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A well-formed body that breaks rules (422).
    #[error("{detail}")]
    Validation {
        /// The rules broken, in a sentence.
        detail: String,
        /// The rules broken, field by field.
        errors: Vec<FieldError>,
    },
    /// DynamoDB is busy or unreachable (503).
    #[error("the service is busy or its database is unreachable; retry later")]
    Unavailable,
    /// A bug (500).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// One field broke one rule.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    /// Its HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::PayloadTooLarge => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Validation { .. } => "validation",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:publishing:problem:{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: Some(self.to_string()),
            instance: RequestId::current().map(|id| id.as_instance()),
            errors: match self {
                ApiError::Validation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::Unavailable
            }
            Error::Internal(reason) | Error::Start(reason) => {
                tracing::error!(%reason, "database error");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).expect("problems serialize");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
