//! `PUT` and `DELETE /topics/{topic}/posts/{post}/like`: like and unlike as the caller.
//!
//! Stream mode appends one like item (no counter, no transaction); transactional mode counts
//! in the same transaction, and puts the like into the view shard its liker's id picks among
//! the post's (see [`crate::VIEW_SHARDS_MAX_AGE`]). A repeat like and an unlike of nothing change nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use contracts::api::LikeState;
use contracts::items::Like;
use contracts::keys::{LikeId, view_shard_of};

use crate::decide::LikeOutcome;
use crate::extract::{PathParams, PostPath};
use crate::identity::Caller;
use crate::problem::{ApiError, ProblemResponses};
use crate::{AppState, WriteMode};

/// Like the post as the caller.
#[utoipa::path(
    put, path = "/topics/{topic}/posts/{post}/like", operation_id = "like", tag = "likes",
    params(PostPath),
    responses(
        (status = 201, description = "liked", body = LikeState),
        (status = 200, description = "liked already; nothing changed", body = LikeState),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn like(
    State(app): State<AppState>,
    Caller(caller): Caller,
    path: PathParams,
) -> Result<(StatusCode, Json<LikeState>), ApiError> {
    let (topic, post) = (path.topic()?, path.post()?);
    let meta = app.post_meta(&topic, post).await?;
    let like = Like {
        user_id: caller,
        post_id: post,
        topic,
        title: meta.title,
        liked_at: Utc::now(),
        like_id: LikeId::generate(),
        counted_by: None,
    };
    let outcome = match app.mode {
        WriteMode::Stream => app.store.append_like(&like).await?,
        WriteMode::Transactional => {
            let shards = app.view_shards(&like.topic, post).await?;
            let shard = view_shard_of(&like.user_id, shards);
            app.store.like_and_count(&like, shard).await?
        }
    };
    let status = match outcome {
        LikeOutcome::Created => StatusCode::CREATED,
        LikeOutcome::AlreadyLiked => StatusCode::OK,
        LikeOutcome::PostMissing => return Err(ApiError::NotFound("post")),
    };
    let state = LikeState {
        topic: like.topic,
        post_id: post,
        user_id: like.user_id,
        liked: true,
        changed: outcome == LikeOutcome::Created,
    };
    Ok((status, Json(state)))
}

/// Take the caller's like back.
#[utoipa::path(
    delete, path = "/topics/{topic}/posts/{post}/like", operation_id = "unlike", tag = "likes",
    params(PostPath),
    responses(
        (status = 200, description = "not liked (any more)", body = LikeState),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn unlike(
    State(app): State<AppState>,
    Caller(caller): Caller,
    path: PathParams,
) -> Result<Json<LikeState>, ApiError> {
    let (topic, post) = (path.topic()?, path.post()?);
    app.post_meta(&topic, post).await?;
    let counted_first = app.mode == WriteMode::Transactional;
    let changed = app
        .store
        .unlike(&topic, &caller, post, counted_first)
        .await?;
    Ok(Json(LikeState {
        topic,
        post_id: post,
        user_id: caller,
        liked: false,
        changed,
    }))
}
