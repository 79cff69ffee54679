//! Lambda's DynamoDB event source over many stream shards, simulated on DynamoDB Local's one.
//!
//! AWS gives a table as many stream shards as partitions and routes an item's records by its
//! partition key, so a post's likes (which live in their likers' partitions) arrive through
//! every shard. Lambda runs one invocation per shard at a time, or up to a parallelization
//! factor of them, keeping order per partition key only. [`deliver`] does the same with records
//! read from DynamoDB Local: each record goes to a virtual shard by its partition key, and within
//! it to one of `parallelization` lanes, again by partition key; every lane hands its records in
//! order, in batches, each batch a separate call of the handler as Lambda's invocations are, and
//! all lanes run at once. A batch that reports a failure is re-sent from that record, as with
//! `ReportBatchItemFailures`, until it is applied.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::dynamo::Backoff;
use contracts::items::{Entity, Like, Post};
use contracts::keys::{Ksuid, PostId, TopicSlug};
use futures_util::{StreamExt, stream};
use projector::apply::Applier;
use projector::handler::Projector;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::Value;

use crate::TestTable;
use crate::contention::{ContentionModel, ContentionSettings, ContentionStats};
use crate::skew::PostSkew;

/// How the event source is laid out.
#[derive(Debug, Clone, Copy)]
pub struct ShardSettings {
    pub shards: usize,
    pub parallelization: usize,
    pub batch_size: usize,
}

/// What delivery took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub records: usize,
    /// Handler calls, re-sends included.
    pub invocations: usize,
    /// Records reported failed (then re-sent).
    pub failed_records: usize,
    /// Counting transactions DynamoDB (the model) cancelled.
    pub cancelled: usize,
}

impl Delivered {
    fn merge(mut self, other: Delivered) -> Delivered {
        self.records += other.records;
        self.invocations += other.invocations;
        self.failed_records += other.failed_records;
        self.cancelled += other.cancelled;
        self
    }
}

/// Re-sends back off as Lambda's retries do, without a bound: the simulation ends applied.
const RESEND: Backoff = Backoff {
    attempts: u32::MAX,
    base: Duration::from_millis(20),
    cap: Duration::from_secs(1),
};

/// The lane of a record: (virtual shard, lane within it), by its partition key.
pub fn lane_of(record: &Value, settings: &ShardSettings) -> usize {
    let key = record["dynamodb"]["Keys"]["PK"]["S"]
        .as_str()
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let hash = hasher.finish() as usize;
    let shard = hash % settings.shards;
    let within = (hash / settings.shards) % settings.parallelization;
    shard * settings.parallelization + within
}

/// Deliver `records` (in stream order) through `projector` as the event source would.
pub async fn deliver(
    projector: &Projector,
    records: &[Value],
    settings: ShardSettings,
) -> Delivered {
    let lanes = settings.shards * settings.parallelization;
    let mut by_lane: Vec<Vec<Value>> = vec![Vec::new(); lanes];
    for record in records {
        by_lane[lane_of(record, &settings)].push(record.clone());
    }
    let tasks: Vec<_> = by_lane
        .into_iter()
        .filter(|lane| !lane.is_empty())
        .map(|lane| {
            let projector = projector.clone();
            tokio::spawn(async move { deliver_lane(&projector, &lane, settings.batch_size).await })
        })
        .collect();
    let mut total = Delivered::default();
    for task in tasks {
        total = total.merge(task.await.expect("a lane"));
    }
    total
}

async fn deliver_lane(projector: &Projector, lane: &[Value], batch_size: usize) -> Delivered {
    let mut delivered = Delivered {
        records: lane.len(),
        ..Delivered::default()
    };
    let mut start = 0;
    let mut attempt = 0;
    while start < lane.len() {
        let end = (start + batch_size).min(lane.len());
        delivered.invocations += 1;
        let report = projector
            .handle(&lane[start..end])
            .await
            .expect("every record has a sequence number");
        delivered.cancelled += report.metrics.cancelled;
        match report.first_failure {
            None => {
                start = end;
                attempt = 0;
            }
            Some(first) => {
                delivered.failed_records += report.metrics.failed;
                start += first;
                attempt += 1;
                RESEND.wait(attempt).await;
            }
        }
    }
    delivered
}

/// A viral post's likes, written straight into a table: `likes` likes by distinct users, the
/// hot post ([`PostSkew::HOT`]) taking `hot_share` of them, the rest Zipf over `cold` posts.
pub struct ViralLoad {
    pub posts: Vec<Post>,
    pub likes: Vec<Like>,
}

impl ViralLoad {
    pub async fn write(table: &TestTable, likes: usize, cold: usize, hot_share: f64) -> Self {
        let topic: TopicSlug = "viral".parse().expect("a slug");
        let skew = PostSkew::new(cold, 1.1, hot_share);
        let posts: Vec<Post> = (0..skew.posts())
            .map(|i| Post {
                topic: topic.clone(),
                post_id: Ksuid::generate(),
                author_id: "author".parse().expect("a user id"),
                title: format!("post {i}"),
                body: String::new(),
                created_at: Utc::now(),
                like_count: 0,
            })
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let likes: Vec<Like> = (0..likes)
            .map(|user| {
                let post = &posts[skew.pick(&mut rng)];
                Like {
                    user_id: format!("user-{user}").parse().expect("a user id"),
                    post_id: post.post_id,
                    topic: topic.clone(),
                    title: post.title.clone(),
                    liked_at: Utc::now(),
                    like_id: Ksuid::generate(),
                    counted_by: None,
                }
            })
            .collect();
        let items: Vec<_> = posts
            .iter()
            .map(Entity::to_item)
            .chain(likes.iter().map(Entity::to_item))
            .collect();
        stream::iter(items)
            .for_each_concurrent(16, |item| table.put(item))
            .await;
        Self { posts, likes }
    }

    pub fn hot(&self) -> PostId {
        self.posts[PostSkew::HOT].post_id
    }

    pub fn likes_of(&self, post: PostId) -> i64 {
        self.likes.iter().filter(|l| l.post_id == post).count() as i64
    }
}

/// What one simulated run measured: every figure is simulated (DynamoDB Local behind the
/// contention model, the shards virtual).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationFigures {
    pub shards: usize,
    pub parallelization: usize,
    pub batch_size: usize,
    pub likes: usize,
    pub hot_post_likes: i64,
    pub seconds: f64,
    pub invocations: usize,
    /// Records reported failed and re-sent (conflicts and throttling).
    pub records_resent: usize,
    pub transactions: u64,
    /// Counting transactions cancelled because another held one of their items.
    pub transaction_conflicts: u64,
    pub throttled_requests: u64,
    /// The most writes the hot post's counter item took within one second.
    pub hot_counter_writes_per_second_max: usize,
}

/// Project `load` (already in `table`'s stream) over `settings`, through the contention model.
pub async fn simulate(
    table: &TestTable,
    load: &ViralLoad,
    settings: ShardSettings,
) -> SimulationFigures {
    let records = crate::app::stream_records(table).await;
    let model = ContentionModel::start(&table.endpoint, ContentionSettings::default()).await;
    let projector = Projector::new(Applier::new(
        crate::app::client_at(&model.endpoint).await,
        &table.name,
    ));
    let started = Instant::now();
    let delivered = deliver(&projector, &records, settings).await;
    let seconds = started.elapsed().as_secs_f64();
    let ContentionStats {
        transactions,
        conflicts,
        throttled,
        ..
    } = model.stats();
    SimulationFigures {
        shards: settings.shards,
        parallelization: settings.parallelization,
        batch_size: settings.batch_size,
        likes: load.likes.len(),
        hot_post_likes: load.likes_of(load.hot()),
        seconds,
        invocations: delivered.invocations,
        records_resent: delivered.failed_records,
        transactions,
        transaction_conflicts: conflicts,
        throttled_requests: throttled,
        hot_counter_writes_per_second_max: model.max_post_writes_per_second(load.hot().as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_partition_keys_records_share_one_lane_and_keys_spread_over_all() {
        let settings = ShardSettings {
            shards: 16,
            parallelization: 2,
            batch_size: 100,
        };
        let record = |pk: &str| json!({"dynamodb": {"Keys": {"PK": {"S": pk}}}});
        assert_eq!(
            lane_of(&record("USER#a"), &settings),
            lane_of(&record("USER#a"), &settings)
        );
        let used: std::collections::HashSet<usize> = (0..2_000)
            .map(|u| lane_of(&record(&format!("USER#{u}")), &settings))
            .collect();
        assert_eq!(used.len(), 32, "every lane gets users");
    }
}
