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
use writer::{AppState, WriteMode, serve_on_loopback};

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
    serve_on_loopback(state).await.expect("serve the writer")
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
        poller.run().await;
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

/// A like or an unlike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Like,
    Unlike,
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered 2xx.
    pub acknowledged: u64,
    /// Answers that were not 2xx (or no answer: status 0), by status.
    pub failures: std::collections::BTreeMap<u16, u64>,
    /// 503 answers that carried `Retry-After`.
    pub retry_after: u64,
    /// Per (user, post): the last operation sent and whether it was acknowledged. Each key
    /// belongs to one client, so its operations never overlap.
    pub last: HashMap<(String, String), (Op, bool)>,
}

impl LoadReport {
    fn merge(mut self, other: LoadReport) -> LoadReport {
        self.acknowledged += other.acknowledged;
        for (status, n) in other.failures {
            *self.failures.entry(status).or_default() += n;
        }
        self.retry_after += other.retry_after;
        self.last.extend(other.last);
        self
    }
}

/// Clients liking and unliking through the writer until stopped; `acknowledged` counts the
/// 2xx answers as they come, so a test can wait for progress.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub acknowledged: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub unavailable: std::sync::Arc<std::sync::atomic::AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// `clients` clients, each with 20 users of its own, over `posts` of `topic`.
    pub fn start(base: &str, topic: &str, posts: &[String], clients: usize) -> Self {
        use rand::{Rng, SeedableRng};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let unavailable = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let clients = (0..clients)
            .map(|client| {
                let (stop, acknowledged, unavailable) =
                    (stop.clone(), acknowledged.clone(), unavailable.clone());
                let (http, base, topic, posts) = (
                    http.clone(),
                    base.to_owned(),
                    topic.to_owned(),
                    posts.to_vec(),
                );
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
                    let mut report = LoadReport::default();
                    while !stop.load(Ordering::SeqCst) {
                        let user = format!("c{client}-u{}", rng.random_range(0..20));
                        let post = posts[rng.random_range(0..posts.len())].clone();
                        let op = if rng.random_bool(0.7) {
                            Op::Like
                        } else {
                            Op::Unlike
                        };
                        let url = format!("{base}/topics/{topic}/posts/{post}/like");
                        let request = match op {
                            Op::Like => http.put(url),
                            Op::Unlike => http.delete(url),
                        };
                        let answer = request.header("x-user-id", &user).send().await;
                        let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
                        let acked = (200..300).contains(&status);
                        if acked {
                            report.acknowledged += 1;
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        } else {
                            *report.failures.entry(status).or_default() += 1;
                        }
                        if status == 503 {
                            unavailable.fetch_add(1, Ordering::SeqCst);
                            let retry_after = answer
                                .as_ref()
                                .is_ok_and(|r| r.headers().contains_key("retry-after"));
                            report.retry_after += u64::from(retry_after);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        report.last.insert((user, post), (op, acked));
                    }
                    report
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            unavailable,
            clients,
        }
    }

    /// Wait until `n` more requests than now have been acknowledged.
    pub async fn until_acknowledged(&self, more: u64, within: Duration) {
        use std::sync::atomic::Ordering;
        let target = self.acknowledged.load(Ordering::SeqCst) + more;
        eventually("the load makes progress", within, || async {
            let now = self.acknowledged.load(Ordering::SeqCst);
            if now >= target {
                Ok(())
            } else {
                Err(format!("{now} of {target} requests acknowledged"))
            }
        })
        .await
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut report = LoadReport::default();
        for client in self.clients {
            report = report.merge(client.await.expect("load client"));
        }
        report
    }
}

/// Every acknowledged last operation holds in the base table: an acknowledged like is there,
/// an acknowledged unlike is not. Keys whose last request failed may go either way.
pub async fn assert_acknowledged_hold(table: &TestTable, topic: &str, report: &LoadReport) {
    let live: std::collections::HashSet<(String, String)> = scan(table)
        .await
        .into_iter()
        .filter_map(|item| Like::from_item(item).ok())
        .map(|like| (like.user_id.to_string(), like.post_id.to_string()))
        .collect();
    let mut lost = Vec::new();
    for ((user, post), (op, acked)) in &report.last {
        let present = live.contains(&(user.clone(), post.clone()));
        if *acked && present != (*op == Op::Like) {
            lost.push(format!("{op:?} by {user} of {topic}/{post}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged operations are not in the table: {lost:?}",
        lost.len()
    );
}
