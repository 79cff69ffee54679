//! The executor of a batch: it sends the requests of the batch machine ([`crate::batch`]),
//! turns the SDK's results into the machine's answers, sleeps until the machine's wake time
//! and enforces the [`Deadline`]. Every decision about a record's path is the machine's.
//!
//! What an instance learns across batches (hot posts, fold turns, view shards) lives here,
//! behind a lock: each batch starts from a copy and its learning is merged back when it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use chrono::{DateTime, Utc};
use contracts::change::{Decoded, Undecodable};
use contracts::counting;
use contracts::dynamo::{CONDITION_FAILED, Failure, is_throttle, read_once};
use contracts::items::{Entity, Quarantined};
use contracts::keys::Ksuid;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::batch::count::{ActionKind, transaction_writes};
use crate::batch::{Answer, Batch, Knowledge, Reason, Request, Settings, Ticket};
use crate::deadline::Deadline;
use crate::plan::{CountTransaction, Plan};

pub use crate::batch::hot::fold_slot;
pub use crate::batch::view::GROW_PAUSE;
pub use crate::batch::{AppliedBatch, HOT_MEMORY, Outcome};

/// A quarantined record is cut to this many bytes (items hold 400 KB).
const MAX_QUARANTINED_BYTES: usize = 300_000;

/// The projector's writes to one table.
#[derive(Clone, Debug)]
pub struct Applier {
    client: Client,
    /// The same client without the SDK's own retries, for stamps: a throttle must be seen at
    /// once to grow the view (the machine retries stamps itself).
    stamp_client: Client,
    table: String,
    knowledge: Arc<Mutex<Knowledge>>,
    /// Defer a stamp when its view throttles, instead of failing its records.
    defers_stamps: bool,
}

type InFlight<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = (Ticket, Answer)> + Send + 'a>>>;

impl Applier {
    /// An applier writing to `table` through `client`.
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
            knowledge: Arc::default(),
            defers_stamps: true,
        }
    }

    /// An applier that never defers a stamp: a stamp into a throttled view is retried, then
    /// fails its records. For rebuild, whose recount must see every stamp it asked for.
    pub fn stamping_in_place(mut self) -> Self {
        self.defers_stamps = false;
        self
    }

    /// Project a batch of decoded records (one per record, in order); `raw` gives a record's
    /// text for quarantine. Nothing starts after `deadline`; what it stops is reported failed.
    pub async fn apply_records(
        &self,
        records: &[Result<Decoded, Undecodable>],
        raw: &(dyn Fn(usize) -> String + Sync),
        deadline: Deadline,
    ) -> AppliedBatch {
        let now = now_ms();
        let settings = self.settings(now, deadline);
        let batch = Batch::of_records(records, &self.knowledge_lock(), now, settings);
        self.run(batch, raw, deadline).await
    }

    /// Apply a plan for a batch of `batch_len` records (see [`Applier::apply_records`]).
    pub async fn apply(
        &self,
        plan: Plan,
        batch_len: usize,
        raw: &(dyn Fn(usize) -> String + Sync),
        deadline: Deadline,
    ) -> AppliedBatch {
        let now = now_ms();
        let settings = self.settings(now, deadline);
        let batch = Batch::new(plan, batch_len, &self.knowledge_lock(), now, settings);
        self.run(batch, raw, deadline).await
    }

    fn settings(&self, now: i64, deadline: Deadline) -> Settings {
        Settings {
            defers_stamps: self.defers_stamps,
            deadline_ms: deadline
                .remaining()
                .map(|left| now + left.as_millis() as i64),
            seed: rand::random(),
        }
    }

    fn knowledge_lock(&self) -> std::sync::MutexGuard<'_, Knowledge> {
        // A panic elsewhere cannot leave it half-written: merges are whole-map inserts of
        // plain values.
        self.knowledge.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run the machine: send what it asks, answer it, wake it when it wants.
    async fn run(
        &self,
        mut batch: Batch,
        raw: &(dyn Fn(usize) -> String + Sync),
        deadline: Deadline,
    ) -> AppliedBatch {
        let mut in_flight: InFlight<'_> = FuturesUnordered::new();
        let mut sent: Vec<Ticket> = Vec::new();
        loop {
            for (ticket, request) in batch.poll(now_ms()) {
                if deadline.passed() {
                    batch.answer(ticket, Answer::Abandoned, now_ms());
                    continue;
                }
                sent.push(ticket);
                in_flight.push(Box::pin(self.send(ticket, request, raw)));
            }
            if batch.is_done() {
                break;
            }
            let wake = batch.wake_at().map(|at| {
                let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
                tokio::time::Instant::now() + wait
            });
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((ticket, answer)) = in_flight.next() => {
                    sent.retain(|t| *t != ticket);
                    batch.answer(ticket, answer, now_ms());
                }
                () = sleep => {}
                None = deadline.run(std::future::pending::<()>()) => {
                    // Abandoned in flight: each may or may not have taken effect.
                    in_flight.clear();
                    for ticket in sent.drain(..) {
                        batch.answer(ticket, Answer::Abandoned, now_ms());
                    }
                }
            }
        }
        let (applied, learned) = batch.finish();
        let mut knowledge = self.knowledge_lock();
        knowledge.merge(learned);
        knowledge.expire(now_ms());
        applied
    }

    /// Send one request; its answer.
    async fn send(
        &self,
        ticket: Ticket,
        request: Request,
        raw: &(dyn Fn(usize) -> String + Sync),
    ) -> (Ticket, Answer) {
        let table = &self.table;
        let answer = match request {
            Request::Quarantine {
                position,
                record,
                now_ms,
            } => {
                tracing::error!(sequence = %record.sequence, reason = %record.reason, "undecodable stream record: quarantined");
                let item = quarantined(&record, raw(position), now_ms).to_item();
                let call = self
                    .client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item));
                match call.send().await {
                    Ok(_) => Answer::Done,
                    Err(e) => answer_of(&e),
                }
            }
            Request::Read { keys } => match read_once(&self.client, table, &keys).await {
                Ok((items, unprocessed)) => Answer::Read { items, unprocessed },
                Err(e) => answer_of(&e),
            },
            Request::Count {
                transaction,
                now_secs,
            } => match transaction_items(table, &transaction, now_secs) {
                Err(e) => {
                    tracing::error!(error = %e, "could not build a transaction");
                    Answer::Permanent(e.to_string())
                }
                Ok(items) => {
                    let call = self
                        .client
                        .transact_write_items()
                        .set_transact_items(Some(items));
                    match call.send().await {
                        Ok(_) => Answer::Done,
                        Err(e) => answer_of(&e),
                    }
                }
            },
            Request::Stamp { like, shard } => {
                let write = counting::stamp_like(&like, shard);
                update_answer(write.update_item(&self.stamp_client, table).send().await)
            }
            Request::Grow {
                topic,
                post,
                shards,
            } => {
                let write = counting::grow_view(&topic, post, shards);
                update_answer(write.update_item(&self.client, table).send().await)
            }
            Request::Defer { like, now_ms } => {
                let write = counting::defer_stamp(&like, now_ms);
                update_answer(write.update_item(&self.client, table).send().await)
            }
        };
        (ticket, answer)
    }
}

/// The wall clock, in epoch milliseconds: the machine's time.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The items of a counting transaction, in the order of [`actions`](crate::batch::actions),
/// each delta with a fresh id.
pub(crate) fn transaction_items(
    table: &str,
    transaction: &CountTransaction,
    now_secs: i64,
) -> Result<Vec<TransactWriteItem>, BuildError> {
    let item = TransactWriteItem::builder;
    transaction_writes(transaction, now_secs, Ksuid::generate)
        .into_iter()
        .map(|(kind, write)| {
            Ok(match kind {
                ActionKind::Put => item().put(write.to_put(table)?).build(),
                ActionKind::Update => item().update(write.to_update(table)?).build(),
                ActionKind::Delete => item().delete(write.to_delete(table)?).build(),
            })
        })
        .collect()
}

/// An SDK error as the machine's answer.
fn answer_of<E, R>(err: &SdkError<E, R>) -> Answer
where
    E: ProvideErrorMetadata + std::fmt::Debug + 'static,
    R: std::fmt::Debug,
{
    if is_throttle(err.code()) {
        return Answer::Throttled;
    }
    match Failure::of(err) {
        Failure::ConditionFailed => Answer::ConditionFailed { old: None },
        Failure::Cancelled(reasons) => Answer::Cancelled(reasons.iter().map(reason_of).collect()),
        Failure::Transient(what) => Answer::Transient(what),
        Failure::Permanent(what) => Answer::Permanent(what),
    }
}

/// A single update's result as the machine's answer: a failed condition brings the old item.
fn update_answer<R: std::fmt::Debug>(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Answer {
    match result {
        Ok(_) => Answer::Done,
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                Answer::ConditionFailed {
                    old: failed.item().cloned(),
                }
            }
            _ => answer_of(&e),
        },
    }
}

/// One cancellation reason as the machine reads it.
fn reason_of(reason: &CancellationReason) -> Reason {
    match reason.code() {
        None | Some("None") => Reason::None,
        Some(CONDITION_FAILED) => Reason::ConditionFailed {
            old: reason.item().cloned(),
        },
        Some("TransactionConflict") => Reason::Conflict,
        code if is_throttle(code) => Reason::Throttled,
        Some(other) => Reason::Other(other.to_owned()),
    }
}

/// The quarantine item of an undecodable record, its text cut to fit an item.
pub fn quarantined(record: &Undecodable, mut raw: String, now_ms: i64) -> Quarantined {
    if raw.len() > MAX_QUARANTINED_BYTES {
        let mut end = MAX_QUARANTINED_BYTES;
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        raw.truncate(end);
    }
    Quarantined {
        sequence: record.sequence.clone(),
        event_id: record.event_id.clone(),
        reason: record.reason.clone(),
        record: raw,
        quarantined_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_else(Utc::now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Action, actions};
    use aws_sdk_dynamodb::types::AttributeValue;
    use contracts::items::{LikeRef, attr};
    use contracts::keys::{self, LikeId, PostId};

    use crate::plan::{Mark, PostCount, PostRef};

    #[test]
    fn a_transactions_items_follow_its_actions() {
        let like = LikeRef {
            user: "ada".parse().unwrap(),
            post: PostId::generate(),
            topic: "t".parse().unwrap(),
            like_id: LikeId::generate(),
        };
        let count = |via_delta| PostCount {
            post: PostRef {
                topic: "t".parse().unwrap(),
                post: like.post,
            },
            marks: vec![Mark {
                records: vec![0],
                like: like.clone(),
                stamp: true,
            }],
            uncounts: Vec::new(),
            folds: Vec::new(),
            via_delta,
        };
        let cold = CountTransaction {
            posts: vec![count(false)],
        };
        let items = transaction_items("t", &cold, 0).unwrap();
        assert_eq!(actions(&cold), vec![Action::Counter(0), Action::Mark(0, 0)]);
        let counter = items[0].update().unwrap();
        assert_eq!(
            counter.expression_attribute_values().unwrap()[":by"],
            AttributeValue::N("1".into())
        );
        let mark = items[1].update().unwrap();
        assert_eq!(
            mark.return_values_on_condition_check_failure(),
            Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
        );
        assert!(
            mark.update_expression().contains("#gpk"),
            "a cold mark stamps"
        );
        let hot = CountTransaction {
            posts: vec![count(true)],
        };
        let delta = transaction_items("t", &hot, 0).unwrap()[0]
            .put()
            .unwrap()
            .item()
            .clone();
        assert_eq!(delta[attr::DELTA], AttributeValue::N("1".into()));
        assert_eq!(delta[keys::TYPE], AttributeValue::S("Delta".into()));
    }

    #[test]
    fn cancellation_reasons_read_as_the_machine_needs() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        assert_eq!(reason_of(&reason("None")), Reason::None);
        assert_eq!(reason_of(&reason("TransactionConflict")), Reason::Conflict);
        assert_eq!(reason_of(&reason("ThrottlingError")), Reason::Throttled);
        assert_eq!(
            reason_of(&reason("ProvisionedThroughputExceeded")),
            Reason::Throttled
        );
        assert_eq!(
            reason_of(&reason(CONDITION_FAILED)),
            Reason::ConditionFailed { old: None }
        );
        assert_eq!(
            reason_of(&reason("ValidationError")),
            Reason::Other("ValidationError".into())
        );
    }
}
