//! Applying a [`Plan`] to DynamoDB, with an outcome per record.
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
//! is retried at once.
//! Conflicts and throttling are retried with jittered backoff; what still fails is reported
//! as failed, so the caller re-delivers it, which is safe because every action is
//! conditional (see [`crate::plan`]). When DynamoDB names a mark as throttled, its stamp may
//! be what its post's GSI1 partition cannot take: the post's stamps leave the transaction
//! before the retry, and the post is planned hot for [`HOT_MEMORY`] (see "Hot posts" in
//! [`crate::plan`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::Utc;
use contracts::change::LikeRef;
use contracts::items::{
    CountedBy, Entity, Item, Quarantined, TOMBSTONE_TTL_SECS, Tombstone, attr, batch_get,
    counter_update, key_item,
};
use contracts::keys::{self, ItemKey, PostId};
use futures_util::{StreamExt, stream};
use rand::Rng;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::plan::{CountTransaction, Mark, Plan, PostCount, Stamp, lanes};

/// What happened to one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its change is now in the counters and views.
    Applied,
    /// Its change was already applied (re-delivery), or its like is gone: nothing to do.
    Duplicate,
    /// It needs no projection.
    Ignored,
    /// It could not be decoded and was quarantined.
    Isolated,
    /// Not applied: must be delivered again.
    Failed,
}

/// What applying a batch's plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Each record's outcome, in batch order.
    pub outcomes: Vec<Outcome>,
    /// Counting transactions DynamoDB cancelled (each billed in full, then retried).
    pub cancelled: usize,
}

/// Transactions and stamps in flight at once.
const CONCURRENCY: usize = 8;
/// Attempts of one transaction or stamp before its records are reported failed.
const ATTEMPTS: u32 = 8;
/// A quarantined record is cut to this many bytes (items hold 400 KB).
const MAX_QUARANTINED_BYTES: usize = 300_000;

/// How long a post stays hot after its view throttled a counting transaction.
pub const HOT_MEMORY: Duration = Duration::from_secs(300);

/// The projector's writes to one table.
#[derive(Clone, Debug)]
pub struct Applier {
    client: Client,
    table: String,
    /// Posts whose view throttled a counting transaction, and when (this process's memory:
    /// a Lambda instance keeps it while warm).
    throttled_views: Arc<Mutex<FxHashMap<PostId, Instant>>>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn retryable_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflict"
                | "TransactionConflictException"
                | "TransactionInProgressException"
        )
    )
}

async fn backoff(attempt: u32) {
    let base = Duration::from_millis(10 * 2u64.pow(attempt.min(6)));
    let jitter = rand::rng().random_range(0..=base.as_millis() as u64);
    tokio::time::sleep(base / 2 + Duration::from_millis(jitter)).await;
}

/// One action of a counting transaction, for reading its cancellation reason: the post (its
/// index in the transaction), and which of its writes.
#[derive(Debug, Clone, Copy)]
enum Action {
    Counter(usize),
    Mark(usize, usize),
    Uncount(usize, usize),
}

/// What a counting transaction did to its marks and tombstones.
#[derive(Debug, Default)]
struct TransactionResult {
    outcomes: Vec<(Vec<usize>, Outcome)>,
    /// Attempts DynamoDB cancelled.
    cancelled: usize,
    /// Likes found counted but not stamped (a run that crashed between count and stamp).
    stamps: Vec<Stamp>,
}

impl Applier {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            throttled_views: Arc::default(),
        }
    }

    /// Posts whose view throttled a counting transaction in the last [`HOT_MEMORY`]: plan
    /// them hot.
    pub fn hot_posts(&self) -> FxHashSet<PostId> {
        let mut views = self.throttled_views();
        views.retain(|_, at| at.elapsed() < HOT_MEMORY);
        views.keys().copied().collect()
    }

    fn throttled_views(&self) -> std::sync::MutexGuard<'_, FxHashMap<PostId, Instant>> {
        // A panic elsewhere cannot leave the map half-written: its writes are single inserts.
        self.throttled_views
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Apply a plan for a batch of `batch_len` records; `raw` gives a record's text for
    /// quarantine.
    pub async fn apply(
        &self,
        plan: &Plan,
        batch_len: usize,
        raw: &(dyn Fn(usize) -> String + Sync),
    ) -> Applied {
        let mut outcomes = vec![Outcome::Ignored; batch_len];
        for (position, undecodable) in &plan.undecodable {
            tracing::error!(sequence = %undecodable.sequence, reason = %undecodable.reason, "undecodable stream record: quarantined");
            outcomes[*position] = match self.quarantine(undecodable, raw(*position)).await {
                Ok(()) => Outcome::Isolated,
                Err(reason) => {
                    tracing::error!(%reason, "quarantine failed");
                    Outcome::Failed
                }
            };
        }

        let mut transactions = plan.transactions.clone();
        let screened = self.screen(&mut transactions).await;
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
        let results: Vec<TransactionResult> = stream::iter(lanes)
            .map(|lane| async move {
                let mut results = Vec::with_capacity(lane.len());
                for transaction in lane {
                    results.push(self.count(transaction).await);
                }
                results
            })
            .buffer_unordered(CONCURRENCY)
            .flat_map(stream::iter)
            .collect()
            .await;
        let mut stamps: Vec<Stamp> = plan.stamps.clone();
        let mut cancelled = 0;
        for result in std::iter::once(screened).chain(results) {
            cancelled += result.cancelled;
            for (records, outcome) in result.outcomes {
                set(&mut outcomes, &records, outcome);
            }
            stamps.extend(result.stamps);
        }

        let stamped: Vec<(Vec<usize>, bool)> = stream::iter(stamps)
            .map(|stamp| async move {
                let ok = self.stamp(&stamp.like).await;
                (stamp.records, ok)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (records, ok) in stamped {
            if !ok {
                set(&mut outcomes, &records, Outcome::Failed);
            }
        }
        Applied {
            outcomes,
            cancelled,
        }
    }

    /// Drop the marks that a consistent read of their like items shows cannot succeed. A read
    /// that fails screens nothing: the transactions' conditions then sort it out.
    async fn screen(&self, transactions: &mut [CountTransaction]) -> TransactionResult {
        let mut result = TransactionResult::default();
        let keys: Vec<ItemKey> = transactions
            .iter()
            .flat_map(|t| &t.posts)
            .flat_map(|p| &p.marks)
            .map(|m| like_key(&m.like))
            .collect::<FxHashSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            return result;
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
                Ok(items) => found.extend(items.into_iter().filter_map(|item| {
                    let key = ItemKey::parse(
                        item.get(keys::PK)?.as_s().ok()?,
                        item.get(keys::SK)?.as_s().ok()?,
                    )
                    .ok()?;
                    Some((key, item))
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read like items; counting unscreened");
                    return result;
                }
            }
        }
        for count in transactions.iter_mut().flat_map(|t| &mut t.posts) {
            count.marks.retain(
                |mark| match screen_mark(found.get(&like_key(&mark.like)), mark) {
                    Screen::Send => true,
                    Screen::Drop { stamp } => {
                        dropped(&mut result, mark, stamp);
                        false
                    }
                },
            );
        }
        result
    }

    /// Run one counting transaction to completion: drop what is already done, retry the rest.
    async fn count(&self, mut transaction: CountTransaction) -> TransactionResult {
        let mut result = TransactionResult::default();
        let mut attempt = 0;
        loop {
            transaction
                .posts
                .retain(|p| !p.marks.is_empty() || !p.uncounts.is_empty());
            if transaction.posts.is_empty() {
                return result;
            }
            let (items, actions) = match self.transaction_items(&transaction) {
                Ok(built) => built,
                Err(reason) => {
                    tracing::error!(%reason, "could not build a transaction");
                    fail_all(&mut result, &transaction);
                    return result;
                }
            };
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match sent {
                Ok(_) => {
                    for records in transaction.posts.iter().flat_map(PostCount::records) {
                        applied(&mut result, records);
                    }
                    return result;
                }
                Err(err) => err,
            };
            let reasons = match &err {
                SdkError::ServiceError(service) => match service.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        result.cancelled += 1;
                        Some(c.cancellation_reasons().to_vec())
                    }
                    _ => None,
                },
                _ => None,
            };
            let conditional = reasons
                .as_ref()
                .is_some_and(|r| r.iter().any(|r| r.code() == Some("ConditionalCheckFailed")));
            if let (true, Some(reasons)) = (conditional, &reasons) {
                drop_done(&mut transaction, &actions, reasons, &mut result);
                continue;
            }
            for p in throttled_marks(&actions, reasons.as_deref().unwrap_or_default()) {
                let count = &mut transaction.posts[p];
                let stamps = count.split_stamps();
                if !stamps.is_empty() {
                    tracing::warn!(post = %count.post.post, "a post's view throttled counting: planned hot for a while");
                    self.throttled_views()
                        .insert(count.post.post, Instant::now());
                    result.stamps.extend(stamps);
                }
            }
            attempt += 1;
            if attempt >= ATTEMPTS {
                tracing::warn!(error = ?err.code(), posts = transaction.posts.len(), "counting transaction failed; records will be re-delivered");
                fail_all(&mut result, &transaction);
                return result;
            }
            backoff(attempt).await;
        }
    }

    fn transaction_items(
        &self,
        transaction: &CountTransaction,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Action>), String> {
        let mut items = Vec::with_capacity(transaction.actions());
        let mut actions = Vec::with_capacity(transaction.actions());
        for (p, count) in transaction.posts.iter().enumerate() {
            self.post_count_items(p, count, &mut items, &mut actions)?;
        }
        Ok((items, actions))
    }

    /// The writes of one post's count: its counter, marks and tombstones.
    fn post_count_items(
        &self,
        p: usize,
        t: &PostCount,
        items: &mut Vec<TransactWriteItem>,
        actions: &mut Vec<Action>,
    ) -> Result<(), String> {
        // The counter update is there even when the delta is zero: its new version tells
        // `rebuild` that the post's counted likes changed.
        {
            let counter = counter_update(&self.table, &t.post.topic, t.post.post, t.delta())
                .map_err(|e| e.to_string())?;
            items.push(TransactWriteItem::builder().update(counter).build());
            actions.push(Action::Counter(p));
        }
        for (i, mark) in t.marks.iter().enumerate() {
            let like = &mark.like;
            let key = ItemKey::Like(like.user.clone(), like.post);
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&key)))
                .condition_expression(
                    "attribute_exists(#pk) AND #likeId = :likeId AND attribute_not_exists(#counted)",
                )
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#likeId", attr::LIKE_ID)
                .expression_attribute_names("#counted", attr::COUNTED_BY)
                .expression_attribute_values(":likeId", s(like.like_id.to_string()))
                .expression_attribute_values(":projector", s(CountedBy::Projector.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            update = if mark.stamp {
                let view = key.gsi1().expect("likes are in GSI1");
                update
                    .update_expression("SET #counted = :projector, #gpk = :gpk, #gsk = :gsk")
                    .expression_attribute_names("#gpk", keys::GSI1PK)
                    .expression_attribute_names("#gsk", keys::GSI1SK)
                    .expression_attribute_values(":gpk", s(view.pk))
                    .expression_attribute_values(":gsk", s(view.sk))
            } else {
                update.update_expression("SET #counted = :projector")
            };
            let update = update.build().map_err(|e| e.to_string())?;
            items.push(TransactWriteItem::builder().update(update).build());
            actions.push(Action::Mark(p, i));
        }
        let expires_at = Utc::now().timestamp() + TOMBSTONE_TTL_SECS;
        for (i, uncount) in t.uncounts.iter().enumerate() {
            let tombstone = Tombstone {
                like_id: uncount.like.like_id,
                user_id: uncount.like.user.clone(),
                post_id: uncount.like.post,
                expires_at,
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(tombstone.to_item()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| e.to_string())?;
            items.push(TransactWriteItem::builder().put(put).build());
            actions.push(Action::Uncount(p, i));
        }
        Ok(())
    }

    /// Set a like's GSI1 keys if this incarnation still exists. `false` if it could not be
    /// done now (the records are then re-delivered).
    async fn stamp(&self, like: &LikeRef) -> bool {
        let key = ItemKey::Like(like.user.clone(), like.post);
        let view = key.gsi1().expect("likes are in GSI1");
        for attempt in 1..=ATTEMPTS {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&key)))
                .update_expression("SET #gpk = :gpk, #gsk = :gsk")
                .condition_expression("attribute_exists(#pk) AND #likeId = :likeId")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#likeId", attr::LIKE_ID)
                .expression_attribute_names("#gpk", keys::GSI1PK)
                .expression_attribute_names("#gsk", keys::GSI1SK)
                .expression_attribute_values(":likeId", s(like.like_id.to_string()))
                .expression_attribute_values(":gpk", s(view.pk.clone()))
                .expression_attribute_values(":gsk", s(view.sk.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return true,
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
                {
                    return true; // gone or re-liked: its own record stamps the new one
                }
                Err(e) => {
                    let retry = !matches!(e, SdkError::ServiceError(_)) || retryable_code(e.code());
                    if !retry || attempt == ATTEMPTS {
                        tracing::warn!(error = ?e.code(), "stamp failed; records will be re-delivered");
                        return false;
                    }
                    backoff(attempt).await;
                }
            }
        }
        false
    }

    async fn quarantine(
        &self,
        record: &contracts::change::Undecodable,
        mut raw: String,
    ) -> Result<(), String> {
        if raw.len() > MAX_QUARANTINED_BYTES {
            let mut end = MAX_QUARANTINED_BYTES;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw.truncate(end);
        }
        let item = Quarantined {
            sequence: record.sequence.clone(),
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
            .map_err(|e| format!("{:?}", e.code()))
    }
}

fn like_key(like: &LikeRef) -> ItemKey {
    ItemKey::Like(like.user.clone(), like.post)
}

/// Whether a like item (as DynamoDB returned it) is this incarnation.
fn same_incarnation(item: &Item, like: &LikeRef) -> bool {
    matches!(item.get(attr::LIKE_ID), Some(AttributeValue::S(id)) if id == like.like_id.as_str())
}

/// Whether a like item (as DynamoDB returned it) is this incarnation, counted, but not in GSI1.
fn needs_stamp(item: &Item, like: &LikeRef) -> bool {
    same_incarnation(item, like)
        && item.contains_key(attr::COUNTED_BY)
        && !item.contains_key(keys::GSI1PK)
}

/// What to do with a mark, given its like item as a consistent read found it.
#[derive(Debug, PartialEq, Eq)]
enum Screen {
    /// It may succeed: send it.
    Send,
    /// It would fail: the like is gone, re-liked, or already counted. `stamp`: counted but
    /// not in GSI1 while its stamp was to ride with the mark (a run that crashed between
    /// counting and stamping a hot post), so stamp it now.
    Drop { stamp: bool },
}

fn screen_mark(item: Option<&Item>, mark: &Mark) -> Screen {
    match item {
        None => Screen::Drop { stamp: false },
        Some(item) if !same_incarnation(item, &mark.like) => Screen::Drop { stamp: false },
        Some(item) if item.contains_key(attr::COUNTED_BY) => Screen::Drop {
            stamp: mark.stamp && needs_stamp(item, &mark.like),
        },
        Some(_) => Screen::Send,
    }
}

/// A mark not sent (again), its like gone, re-liked or counted: its records are duplicates,
/// and `stamp` stamps the like now (see [`Screen::Drop`]).
fn dropped(result: &mut TransactionResult, mark: &Mark, stamp: bool) {
    result
        .outcomes
        .push((mark.records.clone(), Outcome::Duplicate));
    if stamp {
        result.stamps.push(mark.as_stamp());
    }
}

fn applied(result: &mut TransactionResult, records: &[usize]) {
    // The first delivery of a change is applied; copies in the same batch are duplicates.
    if let Some((first, rest)) = records.split_first() {
        result.outcomes.push((vec![*first], Outcome::Applied));
        if !rest.is_empty() {
            result.outcomes.push((rest.to_vec(), Outcome::Duplicate));
        }
    }
}

/// Every record of a post's count, with one outcome.
fn settle_all(result: &mut TransactionResult, count: &PostCount, outcome: Outcome) {
    for records in count.records() {
        result.outcomes.push((records.to_vec(), outcome));
    }
}

fn fail_all(result: &mut TransactionResult, transaction: &CountTransaction) {
    for count in &transaction.posts {
        settle_all(result, count, Outcome::Failed);
    }
}

/// The posts (indexes in the transaction) of marks that DynamoDB cancelled as throttled.
fn throttled_marks(actions: &[Action], reasons: &[CancellationReason]) -> Vec<usize> {
    let mut posts: Vec<usize> = actions
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| {
            matches!(
                reason.code(),
                Some("ThrottlingError" | "ProvisionedThroughputExceeded")
            )
        })
        .filter_map(|(action, _)| match action {
            Action::Mark(p, _) => Some(*p),
            _ => None,
        })
        .collect();
    posts.dedup();
    posts
}

/// Remove the actions whose condition failed, recording why: a mark or tombstone already
/// there (its like counted or gone), or a post that does not exist (nothing of it counts).
fn drop_done(
    transaction: &mut CountTransaction,
    actions: &[Action],
    reasons: &[CancellationReason],
    result: &mut TransactionResult,
) {
    let failed = |i: usize| {
        reasons
            .get(i)
            .is_some_and(|r| r.code() == Some("ConditionalCheckFailed"))
    };
    let mut missing_posts = Vec::new();
    let mut done_marks = Vec::new();
    let mut done_uncounts = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        if !failed(i) {
            continue;
        }
        match *action {
            Action::Counter(p) => {
                let count = &transaction.posts[p];
                tracing::error!(post = %count.post.post, "likes of a post that does not exist: not counted");
                settle_all(result, count, Outcome::Ignored);
                missing_posts.push(p);
            }
            Action::Mark(p, m) => {
                // The item as it was when the condition failed (`ALL_OLD`).
                let mark = &transaction.posts[p].marks[m];
                let stamp = screen_mark(reasons[i].item(), mark) == Screen::Drop { stamp: true };
                dropped(result, mark, stamp);
                done_marks.push((p, m));
            }
            Action::Uncount(p, u) => {
                let records = transaction.posts[p].uncounts[u].records.clone();
                result.outcomes.push((records, Outcome::Duplicate));
                done_uncounts.push((p, u));
            }
        }
    }
    let posts = std::mem::take(&mut transaction.posts);
    for (p, mut count) in posts.into_iter().enumerate() {
        if missing_posts.contains(&p) {
            continue;
        }
        count.marks = keep(count.marks, |m| !done_marks.contains(&(p, m)));
        count.uncounts = keep(count.uncounts, |u| !done_uncounts.contains(&(p, u)));
        transaction.posts.push(count);
    }
}

/// The elements whose index passes `wanted`.
fn keep<T>(items: Vec<T>, wanted: impl Fn(usize) -> bool) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| wanted(i).then_some(item))
        .collect()
}

fn set(outcomes: &mut [Outcome], records: &[usize], outcome: Outcome) {
    for &position in records {
        if outcomes[position] != Outcome::Failed {
            outcomes[position] = outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::keys::Ksuid;

    fn mark(stamp: bool) -> Mark {
        Mark {
            records: vec![0],
            like: LikeRef {
                user: "ada".parse().unwrap(),
                post: Ksuid::generate(),
                topic: "rust".parse().unwrap(),
                like_id: Ksuid::generate(),
            },
            stamp,
        }
    }

    fn like_item(mark: &Mark, counted: bool, stamped: bool) -> Item {
        let mut item = Item::from([(attr::LIKE_ID.to_owned(), s(mark.like.like_id.to_string()))]);
        if counted {
            item.insert(attr::COUNTED_BY.into(), s("projector"));
        }
        if stamped {
            item.insert(keys::GSI1PK.into(), s("POST#x"));
        }
        item
    }

    #[test]
    fn throttled_marks_name_their_posts_once() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        let actions = [
            Action::Counter(0),
            Action::Mark(0, 0),
            Action::Mark(0, 1),
            Action::Counter(1),
            Action::Mark(1, 0),
            Action::Counter(2),
            Action::Mark(2, 0),
        ];
        let reasons = [
            reason("None"),
            reason("ThrottlingError"),
            reason("ThrottlingError"),
            reason("ThrottlingError"),
            reason("None"),
            reason("None"),
            reason("ProvisionedThroughputExceeded"),
        ];
        // Post 1's counter was throttled, not a mark of it: that is the post item, not its view.
        assert_eq!(throttled_marks(&actions, &reasons), vec![0, 2]);
        assert!(throttled_marks(&actions, &[]).is_empty());
    }

    #[test]
    fn only_marks_that_can_succeed_are_sent() {
        let cold = mark(true);
        assert_eq!(
            screen_mark(Some(&like_item(&cold, false, false)), &cold),
            Screen::Send
        );
        // Gone (unliked), or re-liked since: its own record counts the new incarnation.
        assert_eq!(screen_mark(None, &cold), Screen::Drop { stamp: false });
        let other = mark(true);
        assert_eq!(
            screen_mark(Some(&like_item(&other, false, false)), &cold),
            Screen::Drop { stamp: false }
        );
        // Counted already: stamped, or not (then stamped now, unless a separate stamp is planned).
        assert_eq!(
            screen_mark(Some(&like_item(&cold, true, true)), &cold),
            Screen::Drop { stamp: false }
        );
        assert_eq!(
            screen_mark(Some(&like_item(&cold, true, false)), &cold),
            Screen::Drop { stamp: true }
        );
        let hot = mark(false);
        assert_eq!(
            screen_mark(Some(&like_item(&hot, true, false)), &hot),
            Screen::Drop { stamp: false }
        );
    }
}
