//! The writer's likes and unlikes as its store sends them (`writer/src/store.rs`), in both
//! modes, on the simulated table: the same items and conditions (`contracts::items`,
//! `contracts::counting`), the writer's own decisions on the answers (`writer::decide`: a
//! repeated like changes nothing; an unlike tries the plain delete or the transactional one
//! first by mode and switches on what the failed condition's item says), and a retry after a
//! conflict or a throttle with the writer's backoff. One call is one request to the table, at
//! one instant.

use chrono::DateTime;
use contracts::counting;
use contracts::dynamo::CONDITION_FAILED;
use contracts::items::{Entity, Like};
use contracts::keys::{self, LikeId, PostId, TopicSlug, UserId, view_shard_of};
use projector::batch::count::ActionKind;
use serde_json::{Value, json};
use writer::decide::{Delete, Deleted, LikeOutcome, Unlike};

use crate::table::Table;
use crate::wire;

/// How the writer counts likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Append only; the projector counts.
    Stream,
    /// The like and its count in one transaction (the classic design).
    Transactional,
}

/// One operation of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Like the post.
    Like(UserId, TopicSlug, PostId),
    /// Take the like back.
    Unlike(UserId, TopicSlug, PostId),
}

/// What the writer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: a like created or removed.
    Changed,
    /// Done, nothing to change: already liked, or not liked.
    Unchanged,
    /// Refused for contention (a transaction under way, a partition over its throughput):
    /// the client tries again later.
    Contended,
}

fn contended(error: &Value) -> bool {
    let name = wire::error_name(error);
    contracts::dynamo::is_throttle(Some(name))
        || name == "TransactionConflictException"
        || (name == "TransactionCanceledException"
            && error["CancellationReasons"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["Code"] != "None" && r["Code"] != CONDITION_FAILED))
}

/// Whether a transaction's action `at` failed its condition; and then whether the item was
/// there (the `ALL_OLD` item it returned).
fn failed_condition(error: &Value, at: usize) -> Option<bool> {
    let reason = &error["CancellationReasons"][at];
    (reason["Code"] == CONDITION_FAILED).then(|| holds_item(reason))
}

/// Whether a failed condition's answer (or cancellation reason) returned an item: the like
/// was there, of another kind.
fn holds_item(answer: &Value) -> bool {
    answer["Item"]
        .as_object()
        .is_some_and(|item| !item.is_empty())
}

/// Run `op` once in `mode` at `now_ms`; `like_id` names a new incarnation.
pub fn run(table: &mut Table, mode: Mode, op: &Op, now_ms: i64, like_id: LikeId) -> Outcome {
    match op {
        Op::Like(user, topic, post) => like(table, mode, user, topic, *post, now_ms, like_id),
        Op::Unlike(user, topic, post) => {
            let mut unlike = Unlike::new(mode == Mode::Transactional);
            while let Some(delete) = unlike.next() {
                let deleted = match delete {
                    Delete::Counted => delete_counted(table, user, topic, *post, now_ms),
                    Delete::Uncounted => delete_uncounted(table, user, *post, now_ms),
                };
                let Some(deleted) = deleted else {
                    return Outcome::Contended;
                };
                match unlike.found(deleted) {
                    Some(true) => return Outcome::Changed,
                    Some(false) => return Outcome::Unchanged,
                    None => {}
                }
            }
            Outcome::Contended
        }
    }
}

fn like(
    table: &mut Table,
    mode: Mode,
    user: &UserId,
    topic: &TopicSlug,
    post: PostId,
    now_ms: i64,
    like_id: LikeId,
) -> Outcome {
    let like = Like {
        user_id: user.clone(),
        post_id: post,
        topic: topic.clone(),
        title: "simulated".into(),
        liked_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
        like_id,
        counted_by: None,
    };
    let name = table.name.clone();
    match mode {
        Mode::Stream => {
            // `Store::put_new`: the like, unless one is there.
            let body = json!({
                "TableName": name,
                "Item": wire::item(&like.to_item()),
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": keys::PK},
            });
            match table.call("PutItem", &body, now_ms) {
                Ok(_) => LikeOutcome::Created.into(),
                Err(e) if wire::error_name(&e) == "ConditionalCheckFailedException" => {
                    LikeOutcome::AlreadyLiked.into()
                }
                Err(_) => Outcome::Contended,
            }
        }
        Mode::Transactional => {
            let shards = view_shards(table, topic, post, now_ms);
            let writes = [
                (
                    ActionKind::Put,
                    counting::put_counted_like(&like, view_shard_of(user, shards)),
                ),
                (ActionKind::Update, counting::move_counter(topic, post, 1)),
            ];
            match table.call(
                "TransactWriteItems",
                &wire::transaction(&writes, &name),
                now_ms,
            ) {
                Ok(_) => LikeOutcome::Created.into(),
                Err(e) if contended(&e) => Outcome::Contended,
                Err(e) => LikeOutcome::of_cancelled(failed_condition(&e, 0).is_some()).into(),
            }
        }
    }
}

/// The post's view shards, as the writer reads them (its cache aside).
fn view_shards(table: &mut Table, topic: &TopicSlug, post: PostId, now_ms: i64) -> u32 {
    let key = contracts::items::key_item(&keys::ItemKey::Post(topic.clone(), post));
    let body = json!({"TableName": table.name, "Key": wire::item(&key), "ConsistentRead": true});
    table
        .call("GetItem", &body, now_ms)
        .ok()
        .and_then(|found| {
            found["Item"][contracts::items::attr::VIEW_SHARDS]["N"]
                .as_str()?
                .parse()
                .ok()
        })
        .unwrap_or(1)
        .max(1)
}

impl From<LikeOutcome> for Outcome {
    fn from(outcome: LikeOutcome) -> Self {
        match outcome {
            LikeOutcome::Created => Outcome::Changed,
            LikeOutcome::AlreadyLiked | LikeOutcome::PostMissing => Outcome::Unchanged,
        }
    }
}

/// `Store::delete_uncounted`; `None`: refused for contention.
fn delete_uncounted(
    table: &mut Table,
    user: &UserId,
    post: PostId,
    now_ms: i64,
) -> Option<Deleted> {
    let write = counting::delete_not_writer_counted(user, post);
    let body = wire::request(ActionKind::Delete, &write, &table.name);
    match table.call("DeleteItem", &body, now_ms) {
        Ok(_) => Some(Deleted::Yes),
        Err(e) if wire::error_name(&e) == "ConditionalCheckFailedException" => {
            Some(Deleted::of_failed_condition(holds_item(&e)))
        }
        Err(_) => None,
    }
}

fn delete_counted(
    table: &mut Table,
    user: &UserId,
    topic: &TopicSlug,
    post: PostId,
    now_ms: i64,
) -> Option<Deleted> {
    let writes = [
        (
            ActionKind::Delete,
            counting::delete_writer_counted(user, post),
        ),
        (ActionKind::Update, counting::move_counter(topic, post, -1)),
    ];
    let name = table.name.clone();
    match table.call(
        "TransactWriteItems",
        &wire::transaction(&writes, &name),
        now_ms,
    ) {
        Ok(_) => Some(Deleted::Yes),
        Err(e) if contended(&e) => None,
        Err(e) => Some(Deleted::of_cancelled_counted(failed_condition(&e, 0))),
    }
}
