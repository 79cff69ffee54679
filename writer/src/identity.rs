//! Who is calling. The caller is never a field of a body.
//!
//! In Lambda the caller is the JWT `sub` that API Gateway's authorizer verified and passes in
//! the request context. The local server may instead trust an `x-user-id` header, but only
//! when started with the explicit dev-identity flag; the Lambda entrypoint cannot enable it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use contracts::keys::UserId;
use lambda_http::request::RequestContext;

use crate::AppState;
use crate::problem::ApiError;

/// The dev-only identity header.
pub const DEV_USER_HEADER: &str = "x-user-id";

/// Where the caller's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The API Gateway JWT authorizer (Lambda).
    Authorizer,
    /// The `x-user-id` header (local development only).
    DevHeader,
}

/// The authenticated caller. Extracting it answers 401 when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub UserId);

fn authorizer_subject(parts: &Parts) -> Option<&str> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .map(String::as_str),
        _ => None,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let subject = match state.identity {
            IdentitySource::Authorizer => authorizer_subject(parts),
            IdentitySource::DevHeader => parts
                .headers
                .get(DEV_USER_HEADER)
                .and_then(|v| v.to_str().ok()),
        };
        subject
            .and_then(|s| s.parse::<UserId>().ok())
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}
