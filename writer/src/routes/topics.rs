//! `PUT /topics/{topic}`: create a topic, idempotent by slug.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use contracts::api::{CreateTopic, TopicView};
use contracts::items::Topic;

use crate::AppState;
use crate::extract::{JsonBody, PathParams, TopicPath};
use crate::identity::Caller;
use crate::problem::{ApiError, ProblemResponses};

/// Create the topic, or return it unchanged if the slug exists (the first title wins).
#[utoipa::path(
    put, path = "/topics/{topic}", operation_id = "createTopic", tag = "topics",
    params(TopicPath),
    request_body = CreateTopic,
    responses(
        (status = 201, description = "created", body = TopicView),
        (status = 200, description = "exists already", body = TopicView),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    Caller(caller): Caller,
    path: PathParams,
    JsonBody(input): JsonBody<CreateTopic>,
) -> Result<(StatusCode, Json<TopicView>), ApiError> {
    let slug = path.topic()?;
    let topic = Topic {
        slug,
        title: input.title,
        created_by: caller,
        created_at: Utc::now(),
    };
    if app.store.put_new(&topic).await? {
        return Ok((StatusCode::CREATED, Json(topic.into())));
    }
    let existing = app.topic(&topic.slug).await?;
    Ok((StatusCode::OK, Json(existing.into())))
}
