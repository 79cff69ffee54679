//! `PUT /users/me`, `GET /users/me` and `GET /users/{user}`: profiles and the posts a user
//! liked.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use contracts::api::{LikedPost, PutProfile, UserLikes, UserView};
use contracts::items::{Like, User};
use contracts::keys::{ItemKey, UserId};

use crate::AppState;
use crate::extract::{JsonBody, PageQuery, PageRequest, PathParams, UserPath};
use crate::identity::Caller;
use crate::problem::{ApiError, ProblemResponses};
use crate::store::Collection;

/// Create or replace the caller's profile.
#[utoipa::path(
    put, path = "/users/me", operation_id = "putMyProfile", tag = "users",
    request_body = PutProfile,
    responses(
        (status = 200, description = "the profile as stored", body = UserView),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn put_me(
    State(app): State<AppState>,
    Caller(caller): Caller,
    JsonBody(input): JsonBody<PutProfile>,
) -> Result<Json<UserView>, ApiError> {
    let user = User {
        user_id: caller,
        display_name: input.display_name,
        bio: input.bio,
        updated_at: Utc::now(),
    };
    app.store.put(&user).await?;
    Ok(Json(user.into()))
}

/// The caller's profile and liked posts.
#[utoipa::path(
    get, path = "/users/me", operation_id = "getMe", tag = "users",
    params(PageQuery),
    responses(
        (status = 200, description = "the caller and a page of liked posts", body = UserLikes),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn get_me(
    State(app): State<AppState>,
    Caller(caller): Caller,
    page: PageRequest,
) -> Result<Json<UserLikes>, ApiError> {
    user_likes(&app, caller, &page).await
}

/// A user's profile and one page of the posts they liked, newest post first.
#[utoipa::path(
    get, path = "/users/{user}", operation_id = "getUser", tag = "users",
    params(UserPath, PageQuery),
    responses(
        (status = 200, description = "the user and a page of liked posts", body = UserLikes),
        ProblemResponses,
    )
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    path: PathParams,
    page: PageRequest,
) -> Result<Json<UserLikes>, ApiError> {
    user_likes(&app, path.user()?, &page).await
}

async fn user_likes(
    app: &AppState,
    user: UserId,
    page: &PageRequest,
) -> Result<Json<UserLikes>, ApiError> {
    let profile: User = app
        .store
        .get(&ItemKey::User(user.clone()), false)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let (likes, next_cursor) = super::page::<Like>(app, Collection::UserLikes(user), page).await?;
    Ok(Json(UserLikes {
        user: profile.into(),
        likes: likes.into_iter().map(LikedPost::from).collect(),
        next_cursor,
    }))
}
