//! Posts of a topic: create, list newest first, get one, and list who liked one.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::Utc;
use contracts::api::{CreatePost, Liker, PostLikers, PostPage, PostView};
use contracts::items::{Like, Post};
use contracts::keys::{ItemKey, PostId, TopicSlug};

use crate::AppState;
use crate::extract::{JsonBody, PageQuery, PageRequest, PathParams, PostPath, TopicPath};
use crate::identity::Caller;
use crate::problem::{ApiError, ProblemResponses};
use crate::store::Collection;

/// Create a post in the topic, written by the caller.
#[utoipa::path(
    post, path = "/topics/{topic}/posts", operation_id = "createPost", tag = "posts",
    params(TopicPath),
    request_body = CreatePost,
    responses(
        (status = 201, description = "created", body = PostView,
         headers(("location" = String, description = "the post's URL"))),
        ProblemResponses,
    ),
    security(("jwt" = []))
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    Caller(caller): Caller,
    path: PathParams,
    JsonBody(input): JsonBody<CreatePost>,
) -> Result<(StatusCode, HeaderMap, Json<PostView>), ApiError> {
    let topic = path.topic()?;
    app.topic(&topic).await?;
    let post = Post {
        topic,
        post_id: PostId::generate(),
        author_id: caller,
        title: input.title,
        body: input.body,
        created_at: Utc::now(),
        like_count: 0,
        view_shards: 1,
    };
    if !app.store.put_new(&post).await? {
        // Two KSUIDs collided within 4 ms and 128 random bits: ask the client to retry.
        return Err(ApiError::Unavailable);
    }
    let location = format!("/topics/{}/posts/{}", post.topic, post.post_id);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("slugs and KSUIDs are header-safe"),
    );
    Ok((StatusCode::CREATED, headers, Json(post.into())))
}

/// A topic's posts, newest first, each with its like count.
///
/// Newest first to the post ids' 4 ms resolution (they are KSUIDs): posts created within one
/// 4 ms tick come in descending id order, not necessarily in the order they were created.
#[utoipa::path(
    get, path = "/topics/{topic}/posts", operation_id = "listPosts", tag = "posts",
    params(TopicPath, PageQuery),
    responses(
        (status = 200, description = "a page of posts", body = PostPage),
        ProblemResponses,
    )
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    path: PathParams,
    page: PageRequest,
) -> Result<Json<PostPage>, ApiError> {
    let topic = path.topic()?;
    app.topic(&topic).await?;
    let (posts, next_cursor) =
        super::page::<Post>(&app, Collection::TopicPosts(topic), &page).await?;
    Ok(Json(PostPage {
        posts: posts.into_iter().map(PostView::from).collect(),
        next_cursor,
    }))
}

/// The post, read `consistent`ly or not.
async fn read_post(
    app: &AppState,
    topic: TopicSlug,
    post: PostId,
    consistent: bool,
) -> Result<Post, ApiError> {
    app.store
        .get(&ItemKey::Post(topic, post), consistent)
        .await?
        .ok_or(ApiError::NotFound("post"))
}

/// One post with its like count.
#[utoipa::path(
    get, path = "/topics/{topic}/posts/{post}", operation_id = "getPost", tag = "posts",
    params(PostPath),
    responses(
        (status = 200, description = "the post", body = PostView),
        ProblemResponses,
    )
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    path: PathParams,
) -> Result<Json<PostView>, ApiError> {
    let post = read_post(&app, path.topic()?, path.post()?, false).await?;
    Ok(Json(post.into()))
}

/// A post and one page of the users who liked it (the GSI1 view, ordered by user id).
#[utoipa::path(
    get, path = "/topics/{topic}/posts/{post}/likes", operation_id = "listLikers", tag = "posts",
    params(PostPath, PageQuery),
    responses(
        (status = 200, description = "the post and a page of likers", body = PostLikers),
        ProblemResponses,
    )
)]
pub(crate) async fn likers(
    State(app): State<AppState>,
    path: PathParams,
    page: PageRequest,
) -> Result<Json<PostLikers>, ApiError> {
    // Consistently: the page must read every view shard there is (see `Store::likers_page`).
    let post = read_post(&app, path.topic()?, path.post()?, true).await?;
    let likers = Collection::PostLikers {
        post: post.post_id,
        view_shards: post.view_shards,
    };
    let (likes, next_cursor) = super::page::<Like>(&app, likers, &page).await?;
    Ok(Json(PostLikers {
        post: post.into(),
        likers: likes
            .into_iter()
            .map(|l| Liker {
                user_id: l.user_id,
                liked_at: l.liked_at,
            })
            .collect(),
        next_cursor,
    }))
}
