//! Lambda's DynamoDB event source over many stream shards, simulated on the local engine's one.
//!
//! AWS gives a table as many stream shards as partitions and routes an item's records by its
//! partition key, so a post's likes (which live in their likers' partitions) arrive through
//! every shard. Lambda runs one invocation per shard at a time, or up to a parallelization
//! factor of them, keeping order per partition key only. [`simulate`] does the same, live: it
//! tails the engine's stream while the load is written, passes what the deployed event
//! filters pass ([`contracts::filters::Filter`], matched as Lambda matches them), and sends each record to a virtual
//! shard by its partition key, and within it to one of `parallelization` consumers, again by
//! partition key. Every consumer hands its records in order, in batches (up to `batch_size`,
//! gathered for at most `batching_window`), each batch a separate handler call of a projector
//! of its own, as Lambda's concurrent invocations are separate instances. What a failed batch
//! owes (its remaining records after a partial batch response, its halves after a function
//! error) is sent before anything newer, as [`contracts::event_source::Redelivery`] says for
//! every delivery path; a batch given up on goes to a stand-in failure destination, which keeps
//! what Lambda would send (the `DDBStreamBatchInfo`: shard, first and last sequence numbers,
//! arrival times), and the consumer moves on. The projection's own records (a hot counter's
//! deltas) come back through the same stream, as on AWS: the simulation ends when the stream
//! has been quiet for [`QUIET`] with every record applied or given up on.
//!
//! The function's timeout is Lambda's: the handler gets the deadline, and an invocation still
//! running at the timeout is ended mid-write (a fault of the contention model can hold a
//! request that long) and its batch re-sent, halved, to a new instance from the consumer's
//! checkpoint (its first pending record).
//!
//! Not emulated: shard rotation (the local poller's, tested in
//! `projector/tests/it/lineage.rs`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contracts::change::{Change, decode_json};
use contracts::dynamo::Backoff;
use contracts::event_source::{Ended, GiveUp, Redelivery};
use contracts::items::{Entity, Like, Post};
use contracts::keys::{LikeId, PostId, TopicSlug};
use futures_util::{StreamExt, stream};
use projector::apply::Applier;
use projector::deadline::{Deadline, MARGIN};
use projector::handler::Projector;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::TestTable;
use crate::contention::{ContentionModel, ContentionSettings, ContentionStats};
use crate::skew::PostSkew;

/// How the event source is laid out.
#[derive(Debug, Clone, Copy)]
pub struct ShardSettings {
    /// Stream shards.
    pub shards: usize,
    /// Consumers per shard (Lambda's parallelization factor).
    pub parallelization: usize,
    /// Records per batch at most.
    pub batch_size: usize,
    /// How long a consumer gathers records before it invokes (Lambda's batching window).
    pub batching_window: Duration,
    /// When a failing batch goes to the failure destination (Lambda's `MaximumRetryAttempts`
    /// and `MaximumRecordAgeInSeconds`). The record age runs from when the record was read, as
    /// the local engine dates records to the second.
    pub give_up: GiveUp,
    /// The function's timeout: the handler is given Lambda's deadline (less
    /// `projector::deadline::MARGIN`), and an invocation still running at the timeout is ended
    /// mid-write, its execution environment replaced (`None`: no timeout).
    pub timeout: Option<Duration>,
}

impl ShardSettings {
    /// The deployed event source (`contracts::event_source::DEPLOYED`) over `shards` shards,
    /// with the projector's timeout.
    pub fn deployed(shards: usize) -> Self {
        let deployed = contracts::event_source::DEPLOYED;
        Self {
            shards,
            parallelization: deployed.parallelization_factor as usize,
            batch_size: deployed.batch_size as usize,
            batching_window: Duration::from_secs(deployed.max_batching_window_seconds.into()),
            give_up: GiveUp {
                retries: Some(deployed.retry_attempts),
                record_age: Some(Duration::from_secs(deployed.max_record_age_seconds.into())),
            },
            timeout: Some(projector::deadline::BATCH_TIME),
        }
    }

    /// `shards` × `parallelization` consumers, records handed over as they come, retried until
    /// applied, no timeout.
    pub fn consumers(shards: usize, parallelization: usize) -> Self {
        Self {
            shards,
            parallelization,
            batch_size: 1000,
            batching_window: Duration::ZERO,
            give_up: GiveUp::NEVER,
            timeout: None,
        }
    }
}

/// What Lambda sends the failure destination about a batch it gave up on: the
/// `DDBStreamBatchInfo` of its failure record (the consumer stands for the shard).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    /// The shard the batch came from.
    pub shard_id: String,
    /// Its first record's sequence number.
    pub start_sequence_number: String,
    /// Its last record's sequence number.
    pub end_sequence_number: String,
    /// When its first record arrived in the stream.
    pub approximate_arrival_of_first_record: DateTime<Utc>,
    /// When its last record arrived in the stream.
    pub approximate_arrival_of_last_record: DateTime<Utc>,
    /// Records in it.
    pub batch_size: usize,
}

impl BatchInfo {
    fn of(consumer: usize, records: &[Routed]) -> Option<Self> {
        let (first, last) = (records.first()?, records.last()?);
        Some(Self {
            shard_id: format!("shardId-consumer-{consumer:04}"),
            start_sequence_number: first.sequence.clone(),
            end_sequence_number: last.sequence.clone(),
            approximate_arrival_of_first_record: first.created,
            approximate_arrival_of_last_record: last.created,
            batch_size: records.len(),
        })
    }
}

/// A record on its way to its consumer, decoded once when read: as Lambda delivers it, when it
/// was read from the stream, and what the figures need of it.
struct Routed {
    record: Value,
    read: Instant,
    sequence: String,
    created: DateTime<Utc>,
    /// `None`: undecodable (the projector quarantines it).
    change: Option<Change>,
    /// A like's `likedAt` (its lag runs from there).
    liked_at: Option<DateTime<Utc>>,
}

/// What delivery took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Records delivered.
    pub records: usize,
    /// Handler calls, re-sends included.
    pub invocations: usize,
    /// Records reported failed (then re-sent).
    pub failed_records: usize,
    /// Invocations ended by the timeout.
    pub timeouts: usize,
    /// Counting transactions DynamoDB (the model) cancelled.
    pub cancelled: usize,
}

impl Delivered {
    fn merge(mut self, other: Delivered) -> Delivered {
        self.records += other.records;
        self.invocations += other.invocations;
        self.failed_records += other.failed_records;
        self.timeouts += other.timeouts;
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

/// How long the stream must stay quiet, every record applied, for the simulation to end.
pub const QUIET: Duration = Duration::from_secs(1);
/// How often the stream is read when it had nothing new (Lambda polls about four times a
/// second).
const POLL: Duration = Duration::from_millis(250);
/// The longest a simulation may take before it is a failure.
const GIVE_UP: Duration = Duration::from_secs(600);

/// A stream record's partition key.
pub fn partition_key(record: &Value) -> &str {
    record["dynamodb"]["Keys"][contracts::keys::PK]["S"]
        .as_str()
        .unwrap_or_default()
}

/// The hash of a partition key that routes its records to a shard.
pub fn key_hash(pk: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pk.hash(&mut hasher);
    hasher.finish()
}

/// The consumer of a record: (virtual shard, consumer within it), by its partition key.
pub fn consumer_of(record: &Value, settings: &ShardSettings) -> usize {
    let hash = key_hash(partition_key(record)) as usize;
    let shard = hash % settings.shards;
    let within = (hash / settings.shards) % settings.parallelization;
    shard * settings.parallelization + within
}

/// How long after its like was written (`likedAt`), or after its record was read from the
/// stream (a delta: the local engine dates records to the second), a record's batch was applied.
#[derive(Debug, Clone, Copy)]
struct Lag {
    post: PostId,
    delta: bool,
    millis: f64,
}

/// What the running consumers share with the simulation.
#[derive(Default)]
struct Progress {
    routed: AtomicUsize,
    /// Records applied, or given up on (sent to the failure destination).
    settled: AtomicUsize,
    lags: Mutex<Vec<Lag>>,
    failure_destination: Mutex<Vec<BatchInfo>>,
}

/// Read the table's stream from its start until `stop`, routing every record the deployed
/// filters pass to its consumer.
async fn tail(
    streams: aws_sdk_dynamodbstreams::Client,
    arn: String,
    consumers: Vec<mpsc::UnboundedSender<Routed>>,
    settings: ShardSettings,
    progress: Arc<Progress>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let streams = &streams;
    let filter = contracts::filters::Filter::deployed();
    let mut iterators = crate::app::trim_horizon_iterators(streams, &arn).await;
    while !*stop.borrow() {
        let mut read_any = false;
        for slot in iterators.iter_mut() {
            let Some(current) = slot.take() else { continue };
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("read the stream");
            *slot = page.next_shard_iterator;
            for record in page.records.unwrap_or_default() {
                read_any = true;
                let record =
                    serde_json::to_value(contracts::change::from_streams_record(record, &arn))
                        .expect("records serialize");
                if !filter.passes(&record) {
                    continue;
                }
                let (sequence, created, change) = match decode_json(&record) {
                    Ok(d) => (d.sequence, d.created, Some(d.change)),
                    Err(e) => (e.sequence, DateTime::UNIX_EPOCH, None),
                };
                progress.routed.fetch_add(1, Ordering::SeqCst);
                let consumer = consumer_of(&record, &settings);
                let liked_at = record["dynamodb"]["NewImage"]["likedAt"]["S"]
                    .as_str()
                    .and_then(|t| t.parse().ok());
                let routed = Routed {
                    record,
                    read: Instant::now(),
                    sequence,
                    created,
                    change,
                    liked_at,
                };
                consumers[consumer]
                    .send(routed)
                    .expect("consumers outlive the tail");
            }
        }
        if !read_any {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One consumer: batches in order, each a handler call; what a failed batch owes is sent before
/// anything newer, or given up on, as [`Redelivery`] says. The consumer's checkpoint is its
/// first pending record: an ended invocation's records are sent again to a new instance (a
/// fresh projector, its memory of hot posts gone).
async fn run_consumer(
    consumer: usize,
    instance: impl Fn() -> Projector,
    mut records: mpsc::UnboundedReceiver<Routed>,
    settings: ShardSettings,
    progress: Arc<Progress>,
) -> Delivered {
    let mut projector = instance();
    let mut delivered = Delivered::default();
    let mut pending: Vec<Routed> = Vec::new();
    let mut redelivery = Redelivery::default();
    loop {
        if redelivery.owed().is_none() {
            if pending.is_empty() {
                match records.recv().await {
                    Some(record) => pending.push(record),
                    None => return delivered,
                }
            }
            let window = tokio::time::Instant::now() + settings.batching_window;
            while pending.len() < settings.batch_size {
                match tokio::time::timeout_at(window, records.recv()).await {
                    Ok(Some(record)) => pending.push(record),
                    _ => break,
                }
            }
        }
        let len = redelivery.next(pending.len().min(settings.batch_size));
        delivered.invocations += 1;
        let batch: Vec<Value> = pending[..len].iter().map(|r| r.record.clone()).collect();
        let ended = match invoke(&projector, &batch, settings.timeout).await {
            Invocation::Answered(report) => {
                delivered.cancelled += report.metrics.cancelled;
                delivered.failed_records += report.metrics.failed;
                Ended::Answered {
                    first_failure: report.first_failure,
                }
            }
            Invocation::Failed => Ended::FunctionError,
            Invocation::TimedOut => {
                delivered.timeouts += 1;
                projector = instance();
                Ended::FunctionError
            }
        };
        let verdict = redelivery.ended(len, ended, settings.give_up, |i| pending[i].read.elapsed());
        let now = Utc::now();
        progress.lags.lock().expect("lags").extend(
            pending[..verdict.done]
                .iter()
                .filter_map(|r| lag_of(r, now)),
        );
        pending.drain(..verdict.done);
        delivered.records += verdict.done;
        let given_up: Vec<Routed> = pending.drain(..verdict.given_up).collect();
        if let Some(info) = BatchInfo::of(consumer, &given_up) {
            progress
                .failure_destination
                .lock()
                .expect("destination")
                .push(info);
        }
        progress
            .settled
            .fetch_add(verdict.done + verdict.given_up, Ordering::SeqCst);
        if let Some(retry) = verdict.retry {
            RESEND.wait(retry).await;
        }
    }
}

/// How one handler call ended.
enum Invocation {
    Answered(projector::handler::BatchReport),
    /// The function returned an error.
    Failed,
    /// Still running at the timeout: ended wherever it was.
    TimedOut,
}

/// Call the handler as Lambda does: with its deadline, ended at the timeout.
async fn invoke(projector: &Projector, batch: &[Value], timeout: Option<Duration>) -> Invocation {
    let Some(timeout) = timeout else {
        return match projector.handle(batch).await {
            Ok(report) => Invocation::Answered(report),
            Err(_) => Invocation::Failed,
        };
    };
    let deadline = Deadline::after(timeout.saturating_sub(MARGIN));
    match tokio::time::timeout(timeout, projector.handle_before(batch, deadline)).await {
        Ok(Ok(report)) => Invocation::Answered(report),
        Ok(Err(_)) => Invocation::Failed,
        Err(_) => Invocation::TimedOut,
    }
}

fn lag_of(routed: &Routed, now: DateTime<Utc>) -> Option<Lag> {
    let (post, delta, millis) = match routed.change.as_ref()? {
        Change::LikeAdded(like) => {
            let liked = routed.liked_at?;
            (
                like.post,
                false,
                (now - liked).num_microseconds()? as f64 / 1000.0,
            )
        }
        Change::DeltaAdded(delta) => (
            delta.post_id,
            true,
            routed.read.elapsed().as_secs_f64() * 1e3,
        ),
        _ => return None,
    };
    Some(Lag {
        post,
        delta,
        millis,
    })
}

/// A viral post's likes: `likes` likes by distinct users, the hot post ([`PostSkew::HOT`])
/// taking `hot_share` of them, the rest Zipf over `cold` posts.
pub struct ViralLoad {
    /// The posts liked.
    pub posts: Vec<Post>,
    /// The likes, in writing order.
    pub likes: Vec<Like>,
    /// Likes (by index) taken back once every like is written, as the writer's unlike does.
    pub unliked: Vec<usize>,
}

impl ViralLoad {
    /// The load, not yet written.
    pub fn new(likes: usize, cold: usize, hot_share: f64) -> Self {
        let topic: TopicSlug = "viral".parse().expect("a slug");
        let skew = PostSkew::new(cold, 1.1, hot_share);
        let posts: Vec<Post> = (0..skew.posts())
            .map(|i| Post {
                topic: topic.clone(),
                post_id: PostId::generate(),
                author_id: "author".parse().expect("a user id"),
                title: format!("post {i}"),
                body: String::new(),
                created_at: Utc::now(),
                like_count: 0,
                view_shards: 1,
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
                    like_id: LikeId::generate(),
                    counted_by: None,
                }
            })
            .collect();
        Self {
            posts,
            likes,
            unliked: Vec::new(),
        }
    }

    /// The same load, with every `n`th like taken back after all are written.
    pub fn with_unlikes(mut self, n: usize) -> Self {
        self.unliked = (0..self.likes.len()).step_by(n.max(1)).collect();
        self
    }

    /// [`projector::plan::HOT_POST_LIKES`] likes of one post, written to `table` at once: as
    /// one batch, a hot view. The post is `posts[PostSkew::HOT]`.
    pub async fn hot_view(table: &TestTable) -> Self {
        let load = Self::new(projector::plan::HOT_POST_LIKES, 1, 1.0);
        load.write(table, f64::INFINITY).await;
        load
    }

    /// Write the posts, then the likes at `rate` per second (each stamped `likedAt` when
    /// written), straight into the table as the stream-mode writer appends them, then the
    /// unlikes.
    pub async fn write(&self, table: &TestTable, rate: f64) {
        stream::iter(self.posts.iter().map(Entity::to_item))
            .for_each_concurrent(16, |item| table.put(item))
            .await;
        let started = tokio::time::Instant::now();
        stream::iter(self.likes.iter().enumerate())
            .for_each_concurrent(16, |(i, like)| async move {
                tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
                let like = Like {
                    liked_at: Utc::now(),
                    ..like.clone()
                };
                table.put(like.to_item()).await;
            })
            .await;
        stream::iter(&self.unliked)
            .for_each_concurrent(16, |&i| async move {
                let like = &self.likes[i];
                contracts::counting::delete_not_writer_counted(&like.user_id, like.post_id)
                    .delete_item(&table.client, &table.name)
                    .send()
                    .await
                    .expect("unlike");
            })
            .await;
    }

    /// The hot post.
    pub fn hot(&self) -> PostId {
        self.posts[PostSkew::HOT].post_id
    }

    /// Live likes of `post` once the load is written.
    pub fn likes_of(&self, post: PostId) -> i64 {
        let liked = self.likes.iter().filter(|l| l.post_id == post).count();
        let unliked = self
            .unliked
            .iter()
            .filter(|&&i| self.likes[i].post_id == post)
            .count();
        (liked - unliked) as i64
    }
}

/// What one simulated run measured: every figure is simulated (the local engine behind the
/// contention model, the shards virtual).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationFigures {
    /// Stream shards.
    pub shards: usize,
    /// Consumers per shard.
    pub parallelization: usize,
    /// Records per batch at most.
    pub batch_size: usize,
    /// Lambda's batching window.
    pub batching_window_ms: u128,
    /// Likes written.
    pub likes: usize,
    /// Likes written per second, while the projection ran.
    pub like_rate: f64,
    /// The hot post's live likes.
    pub hot_post_likes: i64,
    /// Seconds until the projection was exact.
    pub seconds: f64,
    /// Handler calls.
    pub invocations: usize,
    /// Records reported failed and re-sent (conflicts and throttling).
    pub records_resent: usize,
    /// Invocations ended by the function's timeout.
    pub invocations_timed_out: usize,
    /// Counting transactions sent.
    pub transactions: u64,
    /// Counting transactions cancelled because another held one of their items.
    pub transaction_conflicts: u64,
    /// Requests the model throttled.
    pub throttled_requests: u64,
    /// The most writes the hot post's counter item took within one second.
    pub hot_counter_writes_per_second_max: usize,
    /// From a like's write to its batch applied, p99, for likes of every post but the hot one.
    pub other_posts_lag_p99_ms: f64,
    /// The same for the hot post's likes (counted: marked, in its counter or a delta).
    pub hot_post_lag_p99_ms: f64,
    /// Deltas the second hop folded into counters.
    pub deltas_folded: usize,
    /// From a delta's record read from the stream to its fold, p99.
    pub fold_lag_p99_ms: f64,
    /// Batches given up on (`ShardSettings::give_up`): what the failure destination received.
    pub failure_destination: Vec<BatchInfo>,
}

/// The `q` quantile of `values` (0 when empty).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Write `load` into `table` at `rate` likes a second while projecting it live over
/// `settings`, through the contention model; return when everything is applied.
pub async fn simulate(
    table: &TestTable,
    load: &ViralLoad,
    settings: ShardSettings,
    rate: f64,
) -> SimulationFigures {
    let model = ContentionModel::start(&table.endpoint, ContentionSettings::default()).await;
    simulate_through(table, &model, load, settings, rate).await
}

/// [`simulate`] through a contention model of the caller's (who may inject faults into it).
pub async fn simulate_through(
    table: &TestTable,
    model: &ContentionModel,
    load: &ViralLoad,
    settings: ShardSettings,
    rate: f64,
) -> SimulationFigures {
    let client = crate::app::client_at(&model.endpoint).await;
    let progress = Arc::new(Progress::default());
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..settings.shards * settings.parallelization)
        .map(|_| mpsc::unbounded_channel())
        .unzip();
    let consumers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, receiver)| {
            let (client, table) = (client.clone(), table.name.clone());
            let instance = move || Projector::new(Applier::new(client.clone(), &table));
            tokio::spawn(run_consumer(
                i,
                instance,
                receiver,
                settings,
                progress.clone(),
            ))
        })
        .collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let arn = crate::app::stream_arn(table).await;
    let tailing = tokio::spawn(tail(
        table.streams.clone(),
        arn,
        senders,
        settings,
        progress.clone(),
        stopped,
    ));
    load.write(table, rate).await;
    let mut quiet_since = (Instant::now(), progress.routed.load(Ordering::SeqCst));
    loop {
        let routed = progress.routed.load(Ordering::SeqCst);
        let applied = progress.settled.load(Ordering::SeqCst);
        if routed != quiet_since.1 || applied < routed {
            quiet_since = (Instant::now(), routed);
        } else if quiet_since.0.elapsed() >= QUIET {
            break;
        }
        assert!(
            started.elapsed() < GIVE_UP,
            "the simulation did not settle within {GIVE_UP:?}: {applied} of {routed} records applied"
        );
        tokio::time::sleep(POLL).await;
    }
    let seconds = started.elapsed().as_secs_f64() - QUIET.as_secs_f64();
    stop.send(true).expect("the tail listens");
    tailing.await.expect("the tail");
    let mut delivered = Delivered::default();
    for consumer in consumers {
        delivered = delivered.merge(consumer.await.expect("a consumer"));
    }
    let lags = std::mem::take(&mut *progress.lags.lock().expect("lags"));
    let hot = load.hot();
    let lag = |wanted: &dyn Fn(&Lag) -> bool| {
        quantile(
            lags.iter()
                .filter(|l| wanted(l))
                .map(|l| l.millis)
                .collect(),
            0.99,
        )
    };
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
        batching_window_ms: settings.batching_window.as_millis(),
        likes: load.likes.len(),
        like_rate: rate,
        hot_post_likes: load.likes_of(hot),
        seconds,
        invocations: delivered.invocations,
        records_resent: delivered.failed_records,
        invocations_timed_out: delivered.timeouts,
        transactions,
        transaction_conflicts: conflicts,
        throttled_requests: throttled,
        hot_counter_writes_per_second_max: model.max_post_writes_per_second(hot.as_str()),
        other_posts_lag_p99_ms: lag(&|l| !l.delta && l.post != hot),
        hot_post_lag_p99_ms: lag(&|l| !l.delta && l.post == hot),
        deltas_folded: lags.iter().filter(|l| l.delta).count(),
        fold_lag_p99_ms: lag(&|l| l.delta),
        failure_destination: std::mem::take(
            &mut *progress.failure_destination.lock().expect("destination"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_partition_keys_records_share_one_consumer_and_keys_spread_over_all() {
        let settings = ShardSettings::consumers(16, 2);
        let record = |pk: &str| json!({"dynamodb": {"Keys": {"PK": {"S": pk}}}});
        assert_eq!(
            consumer_of(&record("USER#a"), &settings),
            consumer_of(&record("USER#a"), &settings)
        );
        let used: std::collections::HashSet<usize> = (0..2_000)
            .map(|u| consumer_of(&record(&format!("USER#{u}")), &settings))
            .collect();
        assert_eq!(used.len(), 32, "every consumer gets users");
    }
}
