//! Applying a [`Plan`] to DynamoDB, with an outcome per record: the thin I/O half. What the
//! requests are, and what DynamoDB's answers mean for each record, is [`requests`] (pure).
//!
//! First the like items the marks name are read (consistently, in batches): a mark whose like
//! is gone, re-liked or already counted would only fail, and a failed condition cancels its
//! whole transaction, billed in full. Those marks are dropped before anything is sent. (The
//! read only saves work: whatever it misses, the transaction's conditions still catch.)
//!
//! Counting transactions run concurrently, except that those sharing a post run one after
//! another (see [`crate::plan::lanes`]). When DynamoDB cancels one because a condition
//! failed, `CancellationReasons` names the actions: those marks and tombstones are already
//! counted (or their like is gone) and are dropped, as is a post that does not exist; the rest
//! is retried at once. Conflicts and throttling are retried as `contracts::dynamo::Backoff`
//! says; every attempt counts against it, a condition failure that left nothing to drop too (it
//! is backed off like a conflict), and nothing starts past the batch's deadline. What still
//! fails is reported as failed, so the caller re-delivers it, which is safe because every
//! action is conditional (see [`crate::plan`]). When DynamoDB names a mark as
//! throttled, its stamp may be what its post's GSI1 partition cannot take: the post's stamps
//! leave the transaction before the retry, and its view is planned hot for [`HOT_MEMORY`]
//! (see "Hot views" in [`crate::plan`]). When the counter item itself conflicted with another
//! transaction or throttled, the retry writes a delta instead, and the counter is planned hot
//! for [`HOT_MEMORY`] (see "Hot counters"). Stamps are written only for likes whose
//! counting did not fail: a like enters the likers view once it is counted. Before the first
//! stamps of a post, the instance reads its view shard count (one consistent read per post
//! it does not know), so a view another instance spread is stamped spread from the start; a
//! post that does not exist gets none of its likes stamped.

pub(crate) mod requests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use chrono::Utc;
use contracts::change::{LikeRef, Undecodable};
use contracts::counting;
use contracts::dynamo::{Backoff, Failure, batch_get, is_condition_failed, is_throttle};
use contracts::items::{Entity, Item, Post, Quarantined, key_of};
use contracts::keys::{
    DELTA_PARTITIONS, ItemKey, MAX_VIEW_SHARDS, PostId, delta_partition_of, view_shard_of,
};
use futures_util::{StreamExt, stream};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::plan::{CountTransaction, HotPosts, Plan, lanes};
pub use requests::Outcome;
use requests::{
    Screen, Settlement, contended_counters, drop_failed_conditions, record_outcome, screen_mark,
    throttled_marks, transaction_items,
};

/// What applying a batch's plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedBatch {
    /// Each record's outcome, in batch order.
    pub outcomes: Vec<Outcome>,
    /// Counting transactions DynamoDB cancelled (each billed in full, then retried).
    pub cancelled: usize,
}

/// Transactions, reads and stamps in flight at once.
const CONCURRENCY: usize = 8;
/// A quarantined record is cut to this many bytes (items hold 400 KB).
const MAX_QUARANTINED_BYTES: usize = 300_000;

/// How long a post stays hot after DynamoDB struggled with its view or its counter.
pub const HOT_MEMORY: Duration = Duration::from_secs(300);

pub use requests::fold_slot;

/// A fold waits its turn on a counter that other invocations still write in one hop (until
/// the fold marks it hot, or they meet a conflict of their own): it retries longer than other
/// writes, within the deadline.
const FOLD_RETRIES: Backoff = Backoff {
    attempts: 32,
    ..Backoff::STANDARD
};

/// When each hot post was last seen struggling, and last folded (this process's memory: a
/// Lambda instance keeps it while warm; one post's deltas reach one invocation at a time).
#[derive(Debug, Default)]
struct HotMemory {
    views: FxHashMap<PostId, Instant>,
    counters: FxHashMap<PostId, Instant>,
    /// The slot of each delta partition's last fold.
    folded: FxHashMap<(PostId, u8), u64>,
    /// What this instance knows of posts' view shards (absent: 1).
    view_shards: FxHashMap<PostId, ViewShards>,
}

/// A post's view shards as this instance knows them.
#[derive(Debug, Clone, Copy)]
struct ViewShards {
    /// Recorded on the post (read back from DynamoDB): stamping into any shard below it is
    /// safe, since the count only grows.
    count: u32,
    /// When this instance last tried to grow it.
    grown: Option<Instant>,
}

/// The attempt of a stamp from which a throttle defers it (the first retry already sees
/// the view's shards grown).
const DEFER_AFTER: u32 = 2;

/// How long an instance waits before it grows a post's view shards again: a storm of
/// throttled stamps asks once, and the stamps retried meanwhile see the new count.
pub const GROW_PAUSE: Duration = Duration::from_secs(1);

/// The projector's writes to one table.
#[derive(Clone, Debug)]
pub struct Applier {
    client: Client,
    /// The same client without the SDK's own retries, for stamps: a throttle must be seen at
    /// once to grow the view (the stamp loop retries itself).
    stamp_client: Client,
    table: String,
    hot: Arc<Mutex<HotMemory>>,
    /// Defer a stamp when its view throttles, instead of failing its records.
    defers_stamps: bool,
}

impl Applier {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let unretried = client
            .config()
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Self {
            stamp_client: Client::from_conf(unretried),
            client,
            table: table.into(),
            hot: Arc::default(),
            defers_stamps: true,
        }
    }

    /// An applier that never defers a stamp: a stamp into a throttled view is retried, then
    /// fails its records. For rebuild, whose recount must see every stamp it asked for.
    pub fn stamping_in_place(mut self) -> Self {
        self.defers_stamps = false;
        self
    }

    /// Posts whose view or counter DynamoDB struggled with in the last [`HOT_MEMORY`]: plan
    /// them hot.
    pub(crate) fn hot_posts(&self) -> HotPosts {
        let mut hot = self.hot_memory();
        let recent = |seen: &mut FxHashMap<PostId, Instant>| {
            seen.retain(|_, at| at.elapsed() < HOT_MEMORY);
            seen.keys().copied().collect()
        };
        let now = requests::slot_of(Utc::now().timestamp_millis());
        hot.folded
            .retain(|_, slot| *slot + 2 * u64::from(DELTA_PARTITIONS) > now);
        HotPosts {
            views: recent(&mut hot.views),
            counters: recent(&mut hot.counters),
        }
    }

    /// Count `post` through deltas for [`HOT_MEMORY`].
    fn remember_hot_counter(&self, post: PostId) {
        self.hot_memory().counters.insert(post, Instant::now());
    }

    fn hot_memory(&self) -> std::sync::MutexGuard<'_, HotMemory> {
        // A panic elsewhere cannot leave the maps half-written: their writes are single inserts.
        self.hot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply a plan for a batch of `batch_len` records; `raw` gives a record's text for
    /// quarantine. Nothing starts after `deadline`; what it stops is reported failed.
    pub async fn apply(
        &self,
        plan: &Plan,
        batch_len: usize,
        raw: &(dyn Fn(usize) -> String + Sync),
        deadline: Deadline,
    ) -> AppliedBatch {
        let mut outcomes = vec![Outcome::Ignored; batch_len];
        for (position, undecodable) in &plan.undecodable {
            tracing::error!(sequence = %undecodable.sequence, reason = %undecodable.reason, "undecodable stream record: quarantined");
            let quarantined = deadline
                .run(self.quarantine(undecodable, raw(*position)))
                .await
                .unwrap_or(Err(Error::DeadlinePassed));
            outcomes[*position] = match quarantined {
                Ok(()) => Outcome::Quarantined,
                Err(e) => {
                    tracing::error!(error = %e, "quarantine failed");
                    Outcome::Failed
                }
            };
        }

        let mut transactions = plan.transactions.clone();
        // Past the deadline, the marks screening would have dropped are caught by their
        // conditions.
        let screened = deadline
            .run(self.screen(&mut transactions))
            .await
            .unwrap_or_default();
        let lanes = lanes(&transactions);
        let mut unassigned: Vec<Option<CountTransaction>> =
            transactions.into_iter().map(Some).collect();
        let lanes: Vec<Vec<CountTransaction>> = lanes
            .into_iter()
            .map(|lane| {
                lane.into_iter()
                    .filter_map(|i| unassigned[i].take())
                    .collect()
            })
            .collect();
        let counted: Vec<Settlement> = stream::iter(lanes)
            .map(|lane| async move {
                let mut settled = Vec::with_capacity(lane.len());
                for transaction in lane {
                    settled.push(self.count(transaction, deadline).await);
                }
                settled
            })
            .buffer_unordered(CONCURRENCY)
            .flat_map(stream::iter)
            .collect()
            .await;
        let mut stamps = plan.stamps.clone();
        let mut cancelled = 0;
        let mut missing_posts = FxHashSet::default();
        for settlement in std::iter::once(screened).chain(counted) {
            cancelled += settlement.cancelled;
            for (records, outcome) in settlement.outcomes {
                record_outcome(&mut outcomes, &records, outcome);
            }
            stamps.extend(settlement.stamps);
            missing_posts.extend(settlement.missing_posts);
        }
        // A like enters the view once counted: a failed count is re-delivered, stamp and all.
        stamps.retain(|stamp| {
            stamp
                .records
                .iter()
                .all(|&position| outcomes[position] != Outcome::Failed)
        });
        if let Some(missing) = deadline.run(self.learn_view_shards(&stamps)).await {
            missing_posts.extend(missing);
        }
        // A post that does not exist counts none of its likes, and shows none.
        stamps.retain(|stamp| !missing_posts.contains(&stamp.like.post));

        let stamped: Vec<(Vec<usize>, bool)> = stream::iter(stamps)
            .map(|stamp| async move {
                let ok = self.stamp(&stamp.like, deadline).await;
                (stamp.records, ok)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (records, ok) in stamped {
            if !ok {
                record_outcome(&mut outcomes, &records, Outcome::Failed);
            }
        }
        AppliedBatch {
            outcomes,
            cancelled,
        }
    }

    /// Drop the marks that a consistent read of their like items shows cannot succeed. A read
    /// that fails screens nothing: the transactions' conditions then sort it out.
    async fn screen(&self, transactions: &mut [CountTransaction]) -> Settlement {
        let mut settlement = Settlement::default();
        let keys: Vec<ItemKey> = transactions
            .iter()
            .flat_map(|t| &t.posts)
            .flat_map(|p| &p.marks)
            .map(|m| m.like.item_key())
            .collect::<FxHashSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            return settlement;
        }
        let chunks: Vec<Vec<ItemKey>> = keys.chunks(100).map(<[_]>::to_vec).collect();
        let reads: Vec<_> = stream::iter(chunks)
            .map(|chunk| async move { batch_get(&self.client, &self.table, &chunk).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut found: HashMap<ItemKey, Item> = HashMap::with_capacity(keys.len());
        for read in reads {
            match read {
                Ok(items) => found.extend(
                    items
                        .into_iter()
                        .filter_map(|item| Some((key_of(&item)?, item))),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read like items; counting unscreened");
                    return settlement;
                }
            }
        }
        for count in transactions.iter_mut().flat_map(|t| &mut t.posts) {
            count.marks.retain(
                |mark| match screen_mark(found.get(&mark.like.item_key()), mark) {
                    Screen::Send => true,
                    Screen::Drop { stamp } => {
                        settlement.dropped(mark, stamp);
                        false
                    }
                },
            );
        }
        settlement
    }

    /// Run one counting transaction to completion: drop what is already done, retry the rest,
    /// until `deadline`.
    async fn count(&self, mut transaction: CountTransaction, deadline: Deadline) -> Settlement {
        let policy = if transaction.posts.iter().any(|p| !p.folds.is_empty()) {
            FOLD_RETRIES
        } else {
            Backoff::STANDARD
        };
        let mut settlement = Settlement::default();
        let mut attempt = 0;
        loop {
            transaction.posts.retain(|p| !p.is_empty());
            if transaction.posts.is_empty() {
                return settlement;
            }
            if deadline.run(self.fold_turn(&transaction)).await.is_none() || deadline.passed() {
                settlement.fail_transaction(&transaction);
                return settlement;
            }
            let now = Utc::now().timestamp();
            let (items, actions) = match transaction_items(&self.table, &transaction, now) {
                Ok(built) => built,
                Err(e) => {
                    tracing::error!(error = %e, "could not build a transaction");
                    settlement.fail_transaction(&transaction);
                    return settlement;
                }
            };
            let send = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send();
            let failure = match deadline.run(send).await {
                Some(Ok(_)) => {
                    settlement.commit_transaction(&transaction);
                    return settlement;
                }
                Some(Err(err)) => Failure::of(&err),
                // Abandoned in flight: it may have committed; re-delivery finds out.
                None => {
                    settlement.fail_transaction(&transaction);
                    return settlement;
                }
            };
            let reasons = match &failure {
                Failure::Cancelled(reasons) => {
                    settlement.cancelled += 1;
                    reasons.as_slice()
                }
                _ => &[],
            };
            attempt += 1;
            if reasons.iter().any(is_condition_failed) {
                let before = (transaction.actions(), via_deltas(&transaction));
                let found_hot = drop_failed_conditions(
                    &mut transaction,
                    &actions,
                    reasons,
                    now,
                    &mut settlement,
                );
                for post in found_hot {
                    self.remember_hot_counter(post);
                }
                // What failed is out (or now goes through a delta): the rest is retried at
                // once. A failure that changed nothing is retried like a transient one, so it
                // ends with the policy's attempts, not in a loop.
                let progressed = before != (transaction.actions(), via_deltas(&transaction));
                if progressed && policy.may_retry(attempt) {
                    continue;
                }
            }
            for p in throttled_marks(&actions, reasons) {
                let count = &mut transaction.posts[p];
                let stamps = count.split_stamps();
                if !stamps.is_empty() {
                    tracing::warn!(post = %count.post.post, "a post's view throttled counting: planned hot for a while");
                    self.hot_memory()
                        .views
                        .insert(count.post.post, Instant::now());
                    settlement.stamps.extend(stamps);
                }
            }
            for p in contended_counters(&actions, reasons) {
                let count = &mut transaction.posts[p];
                if count.folds.is_empty() {
                    tracing::info!(post = %count.post.post, "a post's counter is contended: counted through deltas for a while");
                    self.remember_hot_counter(count.post.post);
                    count.via_delta = true;
                }
            }
            let retryable = failure.is_transient() || matches!(failure, Failure::Cancelled(_));
            if !retryable || !policy.may_retry(attempt) {
                tracing::warn!(error = %failure.describe(), posts = transaction.posts.len(), "counting transaction failed; records will be re-delivered");
                settlement.fail_transaction(&transaction);
                return settlement;
            }
            if deadline.run(policy.wait(attempt)).await.is_none() {
                settlement.fail_transaction(&transaction);
                return settlement;
            }
        }
    }

    /// Wait for the slot in which the transaction's fold may write its counter (see
    /// [`fold_slot`]), and take it.
    async fn fold_turn(&self, transaction: &CountTransaction) {
        let Some((post, k)) = transaction.posts.iter().find_map(|p| {
            Some((
                p.post.post,
                delta_partition_of(&p.folds.first()?.delta.delta_id),
            ))
        }) else {
            return;
        };
        let now = Utc::now().timestamp_millis();
        let slot = {
            let mut hot = self.hot_memory();
            let slot = fold_slot(now, k, hot.folded.get(&(post, k)).copied());
            hot.folded.insert((post, k), slot);
            slot
        };
        let wait = requests::slot_start(slot) - now;
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }

    /// Set a like's GSI1 keys, in one of its post's view shards, if this incarnation still
    /// exists. `false` if it could not be done by `deadline` (the records are then
    /// re-delivered). A throttled stamp grows the post's view shards (see "Hot views").
    async fn stamp(&self, like: &LikeRef, deadline: Deadline) -> bool {
        let policy = Backoff::STANDARD;
        for attempt in 1.. {
            if deadline.passed() {
                return false;
            }
            let shards = self.view_shards(like.post);
            let write = counting::stamp_like(like, view_shard_of(&like.user, shards));
            let call = write.update_item(&self.stamp_client, &self.table).send();
            let error = match deadline.run(call).await {
                None => return false,
                Some(Ok(_)) => return true,
                Some(Err(e)) => e,
            };
            if is_throttle(error.code()) {
                self.grow_view(like, shards, deadline).await;
                // Tried once more with the count grown: still throttled, it waits its turn
                // in the stream instead of failing the records (and the batch) behind it.
                if self.defers_stamps && attempt >= DEFER_AFTER {
                    return self.defer_stamp(like, deadline).await;
                }
            }
            match Failure::of(&error) {
                // In the view already, or gone or re-liked: its own record stamps the new
                // incarnation.
                Failure::ConditionFailed => return true,
                f if f.is_transient() && policy.may_retry(attempt) => {
                    if deadline.run(policy.wait(attempt)).await.is_none() {
                        return false;
                    }
                }
                f => {
                    tracing::warn!(error = %f.describe(), "stamp failed; records will be re-delivered");
                    return false;
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Defer `like`'s stamp (`stampDue`): its MODIFY record brings it back. `true` if done,
    /// or not needed any more (stamped meanwhile, gone or re-liked).
    async fn defer_stamp(&self, like: &LikeRef, deadline: Deadline) -> bool {
        let write = counting::defer_stamp(like, Utc::now().timestamp_millis());
        match deadline
            .run(write.update_item(&self.client, &self.table).send())
            .await
        {
            Some(Ok(_)) => true,
            Some(Err(e)) if matches!(Failure::of(&e), Failure::ConditionFailed) => true,
            Some(Err(e)) => {
                tracing::warn!(error = %Failure::of(&e).describe(), "stamp could not be deferred; records will be re-delivered");
                false
            }
            None => false,
        }
    }

    /// Read the view shard count of each post to be stamped that this instance does not know
    /// yet, so that its first stamps already spread (a fresh instance would otherwise stamp a
    /// spread view's shard 0 until throttled). Returns the posts found not to exist. A read
    /// that fails teaches nothing: the stamps then start from shard 0, which is always safe.
    async fn learn_view_shards(&self, stamps: &[crate::plan::Stamp]) -> Vec<PostId> {
        let unknown: Vec<ItemKey> = {
            let hot = self.hot_memory();
            stamps
                .iter()
                .filter(|stamp| !hot.view_shards.contains_key(&stamp.like.post))
                .map(|stamp| ItemKey::Post(stamp.like.topic.clone(), stamp.like.post))
                .collect::<FxHashSet<_>>()
                .into_iter()
                .collect()
        };
        if unknown.is_empty() {
            return Vec::new();
        }
        let found = match batch_get(&self.client, &self.table, &unknown).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "could not read posts' view shards; stamping from shard 0");
                return Vec::new();
            }
        };
        let mut hot = self.hot_memory();
        for item in &found {
            if let Some(ItemKey::Post(_, post)) = key_of(item) {
                hot.view_shards.entry(post).or_insert(ViewShards {
                    count: Post::view_shards_in(item),
                    grown: None,
                });
            }
        }
        unknown
            .iter()
            .filter_map(|key| match key {
                ItemKey::Post(_, post) if !hot.view_shards.contains_key(post) => Some(*post),
                _ => None,
            })
            .collect()
    }

    /// The view shards of `post` this instance knows to be recorded.
    fn view_shards(&self, post: PostId) -> u32 {
        self.hot_memory()
            .view_shards
            .get(&post)
            .map_or(1, |known| known.count)
    }

    /// A stamp into one of `known` view shards of `like`'s post throttled: record twice as
    /// many on the post (at most [`MAX_VIEW_SHARDS`], once per [`GROW_PAUSE`]), and learn the
    /// count recorded, which another instance may have grown further.
    async fn grow_view(&self, like: &LikeRef, known: u32, deadline: Deadline) {
        let target = (known * 2).min(MAX_VIEW_SHARDS);
        {
            let mut hot = self.hot_memory();
            let entry = hot.view_shards.entry(like.post).or_insert(ViewShards {
                count: 1,
                grown: None,
            });
            let asked_lately = entry.grown.is_some_and(|at| at.elapsed() < GROW_PAUSE);
            if target <= entry.count || asked_lately {
                return;
            }
            entry.grown = Some(Instant::now());
        }
        let write = counting::grow_view(&like.topic, like.post, target);
        let recorded = match deadline
            .run(write.update_item(&self.client, &self.table).send())
            .await
        {
            Some(Ok(_)) => target,
            Some(Err(e)) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    failed.item().map_or(known, Post::view_shards_in)
                }
                _ => return, // throttled or unreachable: asked again after the pause
            },
            None => return,
        };

        tracing::info!(post = %like.post, view_shards = recorded, "likers view spread");
        let mut hot = self.hot_memory();
        if let Some(entry) = hot.view_shards.get_mut(&like.post) {
            entry.count = entry.count.max(recorded);
        }
    }

    async fn quarantine(&self, record: &Undecodable, mut raw: String) -> Result<(), Error> {
        if raw.len() > MAX_QUARANTINED_BYTES {
            let mut end = MAX_QUARANTINED_BYTES;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw.truncate(end);
        }
        let item = Quarantined {
            sequence: record.sequence.clone(),
            event_id: record.event_id.clone(),
            reason: record.reason.clone(),
            record: raw,
            quarantined_at: Utc::now(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.to_item()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::dynamo("PutItem", e))
    }
}

/// How many of a transaction's posts move through a delta: a condition failure that turns one
/// to deltas is progress.
fn via_deltas(transaction: &CountTransaction) -> usize {
    transaction.posts.iter().filter(|p| p.via_delta).count()
}
