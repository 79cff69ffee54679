//! Shared pieces of the projector's integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use contracts::items::{Entity, Like, Post};
use contracts::keys::{self, PostId, TopicSlug};
use contracts::testkit::{TestTable, eventually};
use projector::apply::Applier;
use projector::handler::Projector;
use projector::poller::{Poller, PollerSettings, StartAt};
use writer::cursor::CursorCodec;
use writer::identity::IdentitySource;
use writer::store::Store;
use writer::{AppState, WriteMode, router};

pub fn projector(table: &TestTable) -> Projector {
    Projector::new(Applier::new(table.client.clone(), &table.name))
}

/// The writer over HTTP on a loopback port.
pub async fn serve_writer(table: &TestTable, mode: WriteMode) -> String {
    let store = Store::new(table.client.clone(), &table.name);
    let state = AppState::new(
        store,
        mode,
        IdentitySource::DevHeader,
        CursorCodec::new("t"),
        1000,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    format!("http://{addr}")
}

/// The poller, running in the background until the handle is dropped.
pub async fn start_poller(table: &TestTable) -> tokio::task::JoinHandle<()> {
    start_poller_at(table, StartAt::TrimHorizon).await
}

/// The poller, starting shards without a checkpoint at `start_at`.
pub async fn start_poller_at(table: &TestTable, start_at: StartAt) -> tokio::task::JoinHandle<()> {
    let mut settings = PollerSettings::new(&table.name);
    settings.start_at = start_at;
    settings.idle_delay = Duration::from_millis(20);
    let mut poller = Poller::new(
        projector(table),
        table.client.clone(),
        table.streams.clone(),
        settings,
    )
    .await
    .expect("poller starts");
    tokio::spawn(async move {
        poller.run().await.expect("poller runs");
    })
}

/// Scan the whole table (tests only).
pub async fn scan(table: &TestTable) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = table
            .client
            .scan()
            .table_name(&table.name)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Per post: (stored likeCount, live likes in the base table, likes in the GSI1 view).
pub async fn tallies(table: &TestTable) -> HashMap<PostId, (i64, i64, i64)> {
    let mut tallies: HashMap<PostId, (i64, i64, i64)> = HashMap::new();
    for item in scan(table).await {
        match item
            .get(keys::TYPE)
            .and_then(|t| t.as_s().ok())
            .map(String::as_str)
        {
            Some("Post") => {
                let post = Post::from_item(item).unwrap();
                tallies.entry(post.post_id).or_default().0 = post.like_count;
            }
            Some("Like") => {
                let in_view = item.contains_key(keys::GSI1PK);
                let like = Like::from_item(item).unwrap();
                let entry = tallies.entry(like.post_id).or_default();
                entry.1 += 1;
                entry.2 += i64::from(in_view);
            }
            _ => {}
        }
    }
    tallies
}

/// Likes of one post in the GSI1 view, as the index answers.
pub async fn view_count(table: &TestTable, post: PostId) -> i64 {
    let out = table
        .client
        .query()
        .table_name(&table.name)
        .index_name(keys::GSI1)
        .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :likes)")
        .expression_attribute_values(":pk", AttributeValue::S(keys::post_view_partition(&post)))
        .expression_attribute_values(":likes", AttributeValue::S(keys::prefix::LIKES.into()))
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap();
    i64::from(out.count)
}

/// Wait until every post's count equals its live likes and its GSI1 view.
pub async fn until_converged(
    table: &TestTable,
    within: Duration,
) -> HashMap<PostId, (i64, i64, i64)> {
    eventually("counts = live likes = GSI1 view", within, || async {
        let tallies = tallies(table).await;
        let drift: Vec<_> = tallies
            .iter()
            .filter(|(_, (c, l, v))| c != l || l != v)
            .collect();
        if drift.is_empty() {
            Ok(tallies.clone())
        } else {
            Err(format!("{} posts drift: {drift:?}", drift.len()))
        }
    })
    .await
}

pub fn topic(slug: &str) -> TopicSlug {
    slug.parse().unwrap()
}

/// The writer over HTTP, as the tests call it (dev identity header).
#[derive(Clone)]
pub struct WriterClient {
    pub http: reqwest::Client,
    pub base: String,
}

impl WriterClient {
    pub async fn start(table: &TestTable, mode: WriteMode) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: serve_writer(table, mode).await,
        }
    }

    /// Call as `user`; the answer must be 2xx JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-user-id", user);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Create (or reuse) the topic and a new post in it; the post's id.
    pub async fn create_post(&self, topic: &str, title: &str) -> String {
        let body = serde_json::json!({"title": topic});
        self.call(
            reqwest::Method::PUT,
            &format!("/topics/{topic}"),
            "admin",
            Some(body),
        )
        .await;
        let body = serde_json::json!({"title": title});
        let post = self
            .call(
                reqwest::Method::POST,
                &format!("/topics/{topic}/posts"),
                "admin",
                Some(body),
            )
            .await;
        post["postId"].as_str().unwrap().to_owned()
    }

    pub async fn like(&self, topic: &str, post: &str, user: &str) {
        self.call(
            reqwest::Method::PUT,
            &format!("/topics/{topic}/posts/{post}/like"),
            user,
            None,
        )
        .await;
    }

    pub async fn unlike(&self, topic: &str, post: &str, user: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/topics/{topic}/posts/{post}/like"),
            user,
            None,
        )
        .await;
    }

    pub async fn like_count(&self, topic: &str, post: &str) -> i64 {
        let view = self
            .call(
                reqwest::Method::GET,
                &format!("/topics/{topic}/posts/{post}"),
                "admin",
                None,
            )
            .await;
        view["likeCount"].as_i64().unwrap()
    }
}
