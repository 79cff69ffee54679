//! The id of each request, for operators to find it: API Gateway's request id in Lambda (the
//! one its access logs carry), a fresh KSUID locally. It is in the request's log span, in the
//! `x-request-id` response header, and in every problem document (`instance`).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// A request's id, also kept in its extensions for the log span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The response header carrying it.
pub const HEADER: &str = "x-request-id";

impl RequestId {
    /// The id of the request being answered, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(RequestId::clone).ok()
    }

    /// How problem documents name it (`instance`).
    pub fn as_instance(&self) -> String {
        format!("urn:publishing:request:{}", self.0)
    }

    fn of(request: &Request) -> Self {
        let from_gateway = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        RequestId(
            from_gateway
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| contracts::keys::Ksuid::generate().to_string()),
        )
    }
}

/// Middleware: name the request, and answer with its id.
pub(crate) async fn assign(mut request: Request, next: Next) -> Response {
    let id = RequestId::of(&request);
    request.extensions_mut().insert(id.clone());
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
