//! # writer
//!
//! The append-only HTTP API of the publishing service: topics, posts, user profiles and likes
//! on one DynamoDB table.
//!
//! In stream mode (the default) the request path only appends: a like is one conditional
//! `PutItem` and an unlike one conditional `DeleteItem`, with no counter, no transaction and
//! no read of the post (post metadata comes from a bounded in-process cache). The projector
//! turns the table's stream into like counters and the likers view. In transactional mode the
//! writer is the classic design instead, like and counter in one transaction: the baseline.
//!
//! - [`routes`]: one module per resource; handlers parse, call the store, shape the answer.
//! - [`store`]: DynamoDB access. [`cache`]: immutable metadata. [`cursor`]: page cursors.
//! - [`identity`]: the caller. [`problem`]: errors as `application/problem+json`, each naming
//!   its request ([`request_id`]).
//! - [`extract`]: request parsing with problem rejections. [`openapi`]: the API document.
//!
//! - [`server`]: the local server and the Lambda function, configured through the same
//!   arguments; `main.rs` only picks one. [`error`]: the crate's error type.
//!
//! One [`router`] serves both: `axum::serve` locally and `lambda_http::run` in Lambda.

#![warn(unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::Response;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use contracts::api::MAX_BODY_BYTES;
use contracts::items::{Post, Topic};
use contracts::keys::{ItemKey, PostId, TopicSlug};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

pub(crate) mod cache;
pub mod cursor;
pub mod decide;
pub mod error;
pub(crate) mod extract;
pub mod identity;
pub mod openapi;
pub mod problem;
pub mod request_id;
pub(crate) mod routes;
pub mod server;
pub mod store;

pub use error::Error;

use cache::ImmutableCache;
use cursor::CursorCodec;
use identity::IdentitySource;
use problem::ApiError;
use store::Store;

/// How likes are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteMode {
    /// Append only; the projector counts from the stream.
    Stream,
    /// The classic design: like and counter in one transaction (the baseline).
    Transactional,
}

/// What a post's like needs to know about the post. Posts are immutable, so this never
/// goes stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostMeta {
    pub(crate) title: String,
}

/// How long a request may take before it is answered 503 with `Retry-After`: below the
/// Lambda function's timeout (`infra/runtime.json`), so that a slow DynamoDB gets the
/// documented answer, not API Gateway's 500, however many SDK calls a request chains.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(8);

/// How long the transactional writer keeps a post's view shard count before it reads it again:
/// the projector grows a hot view's count when its shards throttle, and the transactional
/// likes of a post whose view is spread go to the shard the liker's id picks among them. A
/// count read earlier is never wrong (shards are only added), only less spread.
pub const VIEW_SHARDS_MAX_AGE: Duration = Duration::from_secs(10);

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) mode: WriteMode,
    pub(crate) identity: IdentitySource,
    pub(crate) cursors: CursorCodec,
    budget: Duration,
    posts: Arc<ImmutableCache<(TopicSlug, PostId), PostMeta>>,
    topics: Arc<ImmutableCache<TopicSlug, Topic>>,
    /// Posts' view shard counts and when they were read (transactional mode).
    view_shards: Arc<quick_cache::sync::Cache<PostId, (u32, Instant)>>,
}

impl AppState {
    /// The state of a writer over `store` in `mode`.
    pub fn new(
        store: Store,
        mode: WriteMode,
        identity: IdentitySource,
        cursors: CursorCodec,
        cache_capacity: usize,
    ) -> Self {
        Self {
            store,
            mode,
            identity,
            cursors,
            budget: REQUEST_BUDGET,
            posts: Arc::new(ImmutableCache::new(cache_capacity)),
            topics: Arc::new(ImmutableCache::new(cache_capacity)),
            view_shards: Arc::new(quick_cache::sync::Cache::new(cache_capacity.max(1))),
        }
    }

    /// The same state with another request budget (tests of slow dependencies).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The post's metadata, from the cache or one consistent read; 404 if there is no post.
    pub(crate) async fn post_meta(
        &self,
        topic: &TopicSlug,
        post: PostId,
    ) -> Result<PostMeta, ApiError> {
        let key = (topic.clone(), post);
        self.posts
            .get_or_load(&key, || async {
                let found: Option<Post> = self
                    .store
                    .get(&ItemKey::Post(topic.clone(), post), true)
                    .await?;
                // The same read gives the view shard count: no second read for a first like.
                if let Some(p) = &found {
                    self.view_shards
                        .insert(post, (p.view_shards, Instant::now()));
                }
                Ok::<_, Error>(found.map(|p| PostMeta { title: p.title }))
            })
            .await?
            .ok_or(ApiError::NotFound("post"))
    }

    /// How many view shards the post's likers view is spread over, as read at most
    /// [`VIEW_SHARDS_MAX_AGE`] ago; 404 if there is no post.
    pub(crate) async fn view_shards(
        &self,
        topic: &TopicSlug,
        post: PostId,
    ) -> Result<u32, ApiError> {
        if let Some((count, read)) = self.view_shards.get(&post)
            && read.elapsed() < VIEW_SHARDS_MAX_AGE
        {
            return Ok(count);
        }
        let found: Option<Post> = self
            .store
            .get(&ItemKey::Post(topic.clone(), post), false)
            .await?;
        let count = found.ok_or(ApiError::NotFound("post"))?.view_shards;
        self.view_shards.insert(post, (count, Instant::now()));
        Ok(count)
    }

    /// The topic, from the cache or one consistent read; 404 if there is none.
    pub(crate) async fn topic(&self, topic: &TopicSlug) -> Result<Topic, ApiError> {
        self.topics
            .get_or_load(topic, || async {
                let key = ItemKey::Topic(topic.clone());
                self.store.get::<Topic>(&key, true).await
            })
            .await?
            .ok_or(ApiError::NotFound("topic"))
    }
}

/// Serve `state` in the background on an ephemeral loopback port (tests and benchmarks that
/// run the writer in-process); the base URL it answers on.
pub async fn serve_on_loopback(state: AppState) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Ok(format!("http://{addr}"))
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    use routes::{likes, posts, topics, users};
    let api = Router::new()
        .route("/topics/{topic}", put(topics::create))
        .route(
            "/topics/{topic}/posts",
            get(posts::list).post(posts::create),
        )
        .route("/topics/{topic}/posts/{post}", get(posts::get))
        .route("/topics/{topic}/posts/{post}/likes", get(posts::likers))
        .route(
            "/topics/{topic}/posts/{post}/like",
            put(likes::like).delete(likes::unlike),
        )
        .route("/users/me", put(users::put_me).get(users::get_me))
        .route("/users/{user}", get(users::get))
        .route("/openapi.json", get(openapi::serve));
    with_docs(api)
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            within_budget,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_response)
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::Internal.into_response()
        }))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// The interactive API reference at `/docs`, reading `/openapi.json` (feature `docs-ui`).
#[cfg(feature = "docs-ui")]
fn with_docs(api: Router<AppState>) -> Router<AppState> {
    let docs = utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .config(utoipa_swagger_ui::Config::from("/openapi.json"));
    api.merge(docs)
}

#[cfg(not(feature = "docs-ui"))]
fn with_docs(api: Router<AppState>) -> Router<AppState> {
    api
}

/// Where the interactive API reference is served (feature `docs-ui`).
pub const DOCS_PATH: &str = "/docs";

/// Answer 503 with `Retry-After` when a request outlasts its budget.
async fn within_budget(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(app.budget, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                budget_ms = app.budget.as_millis() as u64,
                "request budget spent"
            );
            ApiError::Unavailable.into_response()
        }
    }
}

/// One span per request: method and route now, status and latency when it ends. Bodies and
/// headers are never logged.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<request_id::RequestId>()
        .map_or("", |id| id.0.as_str());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        status = field::Empty,
        latency_ms = field::Empty,
    )
}

fn record_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    tracing::info!(parent: span, "response");
}
