//! Request parsing whose every failure is a problem document with the right status.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use contracts::api::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Validate};
use contracts::keys::{PostId, TopicSlug, UserId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON body that parsed (400 syntax, 413 size, 415 media type, 422 shape) and passed its
/// validation rules (422).
pub(crate) struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        value.validate().map_err(|errors| ApiError::Validation {
            detail: errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            errors,
        })?;
        Ok(Self(value))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation {
            detail: rejection.body_text(),
            errors: Vec::new(),
        },
        _ => ApiError::BadRequest(rejection.body_text()),
    }
}

/// Path parameters as text; each handler parses the ones it has.
#[derive(Debug, Deserialize)]
pub(crate) struct PathParams {
    topic: Option<String>,
    post: Option<String>,
    user: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<PathParams>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| p)
            .map_err(|_| ApiError::BadRequest("malformed path".into()))
    }
}

impl PathParams {
    /// The topic slug (422 when it breaks the slug rule).
    pub(crate) fn topic(&self) -> Result<TopicSlug, ApiError> {
        let raw = self.topic.as_deref().unwrap_or_default();
        raw.parse()
            .map_err(|e: contracts::keys::KeyError| ApiError::invalid("topic", e.to_string()))
    }

    /// The post id (400 when it is not a KSUID).
    pub(crate) fn post(&self) -> Result<PostId, ApiError> {
        let raw = self.post.as_deref().unwrap_or_default();
        raw.parse()
            .map_err(|e: contracts::keys::KeyError| ApiError::BadRequest(e.to_string()))
    }

    /// The user id (400 when malformed).
    pub(crate) fn user(&self) -> Result<UserId, ApiError> {
        let raw = self.user.as_deref().unwrap_or_default();
        raw.parse()
            .map_err(|e: contracts::keys::KeyError| ApiError::BadRequest(e.to_string()))
    }
}

/// `{topic}`, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct TopicPath {
    /// The topic's slug.
    #[param(pattern = r"^[a-z0-9-]{1,64}$")]
    topic: String,
}

/// `{topic}/posts/{post}`, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct PostPath {
    /// The topic's slug.
    #[param(pattern = r"^[a-z0-9-]{1,64}$")]
    topic: String,
    /// The post id: a KSUID (27 base-62 characters).
    #[param(pattern = r"^[0-9A-Z][0-9A-Za-z]{26}$")]
    post: String,
}

/// `{user}`, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct UserPath {
    /// The user id.
    #[param(pattern = r"^[A-Za-z0-9._:@+|-]{1,128}$")]
    user: String,
}

/// `?limit=&cursor=` as given.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub limit: u16,
    pub cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(query) =
            axum::extract::Query::<PageQuery>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::BadRequest("malformed query string".into()))?;
        let limit = match query.limit.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => {
                let n: i64 = text
                    .parse()
                    .map_err(|_| ApiError::BadRequest("limit must be an integer".into()))?;
                if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&n) {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be 1 to {MAX_PAGE_SIZE}"),
                    ));
                }
                n as u16
            }
        };
        Ok(Self {
            limit,
            // `?cursor=` (empty) asks for the first page, as no cursor does.
            cursor: query.cursor.filter(|c| !c.is_empty()),
        })
    }
}
