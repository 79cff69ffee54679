//! The counting protocol: every condition and update that decides whether a like is counted,
//! in one place. The writer (transactional mode and every unlike), the projector's `apply` and
//! `rebuild` build their writes from these functions only.
//!
//! # The rules
//!
//! - **The like item is its own marker.** `countedBy` on a like says who counted it into its
//!   post's `likeCount`: the projector ([`count_like`]) or the transactional writer
//!   ([`put_counted_like`]). Each like incarnation has its own `likeId`, so a late record of an
//!   old incarnation never counts or uncounts a re-like.
//! - **Counted at most once.** [`count_like`] succeeds only on the incarnation it names, and
//!   only while `countedBy` is absent. It runs in one transaction with the counter update
//!   ([`move_counter`]), so the counter moves exactly when the mark does.
//! - **Taken back at most once.** When a like the projector counted is deleted, the projector
//!   puts the tombstone of its incarnation ([`tombstone`]), conditioned on it not existing, in
//!   one transaction with `ADD likeCount -1`.
//! - **Whoever counted a like owns its decrement.** A writer-counted like is deleted only
//!   together with its decrement ([`delete_writer_counted`]); every other delete is plain
//!   ([`delete_not_writer_counted`]) and left to the projector, which takes back only likes it
//!   counted itself (the stream's old image says so). Both modes can share a table.
//! - **A hot post's counter moves in two hops.** Its counting transaction writes, instead of
//!   the counter, a delta item of its own ([`put_delta`]) under the post's delta partition;
//!   a later transaction adds deltas to the counter ([`fold_into_counter`]) and deletes each
//!   one, conditioned on it existing ([`fold_delta`]), so a delta is folded at most once.
//!   Counter plus pending deltas is the number of counted likes at every moment. A fold also
//!   marks the counter hot (`hotUntil`), and the projector's one-hop move
//!   ([`move_cold_counter`]) holds only while it is not: every invocation learns from its
//!   first cancelled transaction that the post is counted through deltas ([`CounterState`]).
//! - **A like is in one view shard.** A hot post's likers view is spread over view shards
//!   (`viewShards` on the post, only ever grown by [`grow_view`] before anything is stamped
//!   into a new shard); [`stamp_like`] stamps a like only while it is in none, so it never
//!   moves, and a reader of every shard below the count sees it exactly once.
//! - **Counters carry a version.** Every write that moves `likeCount` renews `countVersion`;
//!   `rebuild` corrects a counter only with [`set_counter`], conditioned on the version it
//!   observed, so it never overwrites a move it did not see.
//!
//! The stream side of the protocol (which records count, which take back) is
//! `change::decode_json`; the deployed event filters in `infra/` pass exactly those records.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, Update,
};

use crate::items::{
    CountedBy, Delta, Entity, Item, Like, LikeRef, TOMBSTONE_TTL_SECS, Tombstone, attr, key_item,
};
use crate::keys::{self, ItemKey, Ksuid, PostId, TopicSlug, UserId};

/// The table, the condition, the placeholders and what to return on failure, on any request
/// builder of the SDK (they share the setter names, not a trait).
macro_rules! with_expressions {
    ($builder:expr, $write:expr, $table:expr) => {
        $builder
            .table_name($table)
            .condition_expression(&$write.condition)
            .set_expression_attribute_names(Some($write.names.clone()))
            .set_expression_attribute_values($write.values_or_none())
            .set_return_values_on_condition_check_failure($write.on_failure())
    };
}

/// A conditional write on one item, as data: the key (or the whole item, for a put), the
/// expressions and their placeholders. It becomes a transaction action or a single call.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The key of an update or delete; the whole item of a put.
    pub item: Item,
    /// `None` for a put or a delete.
    pub update: Option<String>,
    /// The condition expression.
    pub condition: String,
    /// Expression attribute names (`#name` → attribute).
    pub names: HashMap<String, String>,
    /// Expression attribute values (`:value` → value).
    pub values: HashMap<String, AttributeValue>,
    /// When the condition fails, return the item as it was (`ALL_OLD`): the caller reads why
    /// from it ([`LikeState`]).
    pub old_on_failure: bool,
}

impl Write {
    fn new(item: Item, condition: &str) -> Self {
        Self {
            item,
            update: None,
            condition: condition.into(),
            names: HashMap::new(),
            values: HashMap::new(),
            old_on_failure: false,
        }
    }

    fn returning_old(mut self) -> Self {
        self.old_on_failure = true;
        self
    }

    /// `ALL_OLD` when [`old_on_failure`](Self::old_on_failure) asks for it.
    pub fn on_failure(&self) -> Option<ReturnValuesOnConditionCheckFailure> {
        self.old_on_failure
            .then_some(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.into(), value);
        self
    }

    fn set(mut self, update: String) -> Self {
        self.update = Some(update);
        self
    }

    /// Placeholder values, or `None` when there are none (DynamoDB refuses an empty map).
    pub fn values_or_none(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// As an `UpdateItem` call, ready to send.
    pub fn update_item(&self, client: &Client, table: &str) -> UpdateItemFluentBuilder {
        let call = client
            .update_item()
            .set_key(Some(self.item.clone()))
            .set_update_expression(self.update.clone());
        with_expressions!(call, self, table)
    }

    /// As a `DeleteItem` call, ready to send.
    pub fn delete_item(&self, client: &Client, table: &str) -> DeleteItemFluentBuilder {
        let call = client.delete_item().set_key(Some(self.item.clone()));
        with_expressions!(call, self, table)
    }

    /// As an `Update` action of a transaction.
    pub fn to_update(&self, table: &str) -> Result<Update, BuildError> {
        let action = Update::builder()
            .set_key(Some(self.item.clone()))
            .set_update_expression(self.update.clone());
        with_expressions!(action, self, table).build()
    }

    /// As a `Put` action of a transaction.
    pub fn to_put(&self, table: &str) -> Result<Put, BuildError> {
        let action = Put::builder().set_item(Some(self.item.clone()));
        with_expressions!(action, self, table).build()
    }

    /// As a `Delete` action of a transaction.
    pub fn to_delete(&self, table: &str) -> Result<Delete, BuildError> {
        let action = Delete::builder().set_key(Some(self.item.clone()));
        with_expressions!(action, self, table).build()
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn like_key(user: &UserId, post: PostId) -> Item {
    key_item(&ItemKey::Like(user.clone(), post))
}

/// The projector's mark: count this incarnation, if it still exists and nobody counted it.
/// With `stamp`, the like's GSI1 keys are set in the same write (it enters the likers view).
pub fn count_like(like: &LikeRef, stamp: bool) -> Write {
    let write = Write::new(
        like_key(&like.user, like.post),
        "attribute_exists(#pk) AND #likeId = :likeId AND attribute_not_exists(#counted)",
    )
    .name("#pk", keys::PK)
    .name("#likeId", attr::LIKE_ID)
    .name("#counted", attr::COUNTED_BY)
    .value(":likeId", s(like.like_id.as_str()))
    .value(":projector", s(CountedBy::Projector.as_str()))
    .returning_old();
    if stamp {
        in_view_shard(write, like, 0)
            .set("SET #counted = :projector, #gpk = :gpk, #gsk = :gsk".into())
    } else {
        write.set("SET #counted = :projector".into())
    }
}

/// Put a like into view shard `shard` of its post's likers view (its GSI1 keys), if this
/// incarnation still exists and is in no shard yet. Counts nothing, so repeating it is
/// harmless, and a like never moves between shards (a reader paging by user id sees it once).
/// A failed condition means done: in the view already, or gone or re-liked (the new
/// incarnation's own record stamps it).
pub fn stamp_like(like: &LikeRef, shard: u32) -> Write {
    let write = Write::new(
        like_key(&like.user, like.post),
        "attribute_exists(#pk) AND #likeId = :likeId AND attribute_not_exists(#gpk)",
    )
    .name("#pk", keys::PK)
    .name("#likeId", attr::LIKE_ID)
    .name("#due", attr::STAMP_DUE)
    .value(":likeId", s(like.like_id.as_str()));
    in_view_shard(write, like, shard).set("SET #gpk = :gpk, #gsk = :gsk REMOVE #due".into())
}

/// Defer a like's stamp (its view throttled): mark it `stampDue`, if this incarnation still
/// exists and is in no view shard. The mark's MODIFY record brings the like back through the
/// stream ([`crate::change::Change::StampDue`]), so the batch that could not stamp it need not
/// fail: a view that throttles slows no other post's records. The like is not in GSI1, so this
/// costs one write unit on the liker's partition.
pub fn defer_stamp(like: &LikeRef, now_ms: i64) -> Write {
    Write::new(
        like_key(&like.user, like.post),
        "attribute_exists(#pk) AND #likeId = :likeId AND attribute_not_exists(#gpk)",
    )
    .set("SET #due = :now".into())
    .name("#pk", keys::PK)
    .name("#likeId", attr::LIKE_ID)
    .name("#gpk", keys::GSI1PK)
    .name("#due", attr::STAMP_DUE)
    .value(":likeId", s(like.like_id.as_str()))
    .value(":now", AttributeValue::N(now_ms.to_string()))
}

fn in_view_shard(write: Write, like: &LikeRef, shard: u32) -> Write {
    let view = ItemKey::Like(like.user.clone(), like.post)
        .gsi1()
        .expect("likes are in GSI1");
    write
        .name("#gpk", keys::GSI1PK)
        .name("#gsk", keys::GSI1SK)
        .value(":gpk", s(keys::post_view_shard(&like.post, shard)))
        .value(":gsk", s(view.sk))
}

/// Spread a post's likers view over `shards` view shards, unless it already is over as many
/// or more (the count is only ever grown). `ALL_OLD` on a failed condition says how many.
pub fn grow_view(topic: &TopicSlug, post: PostId, shards: u32) -> Write {
    Write::new(
        key_item(&ItemKey::Post(topic.clone(), post)),
        "attribute_exists(#pk) AND (attribute_not_exists(#shards) OR #shards < :shards)",
    )
    .set("SET #shards = :shards".into())
    .name("#pk", keys::PK)
    .name("#shards", attr::VIEW_SHARDS)
    .value(":shards", AttributeValue::N(shards.to_string()))
    .returning_old()
}

/// The tombstone that takes back the projector's count of one incarnation, at most once: a
/// put conditioned on it not existing. It expires `TOMBSTONE_TTL_SECS` after `now_secs`.
pub fn tombstone(like: &LikeRef, now_secs: i64) -> Write {
    let tombstone = Tombstone {
        like_id: like.like_id,
        user_id: like.user.clone(),
        post_id: like.post,
        expires_at: now_secs + TOMBSTONE_TTL_SECS,
    };
    Write::new(tombstone.to_item(), "attribute_not_exists(#pk)").name("#pk", keys::PK)
}

/// A hot post's counted change, as a new item of its own (its id is fresh, so the condition
/// only guards against a collision).
pub fn put_delta(delta: &Delta) -> Write {
    Write::new(delta.to_item(), "attribute_not_exists(#pk)").name("#pk", keys::PK)
}

/// Take a delta out of the pending ones, once: with the counter move that adds it, in one
/// transaction. A re-delivered fold finds it gone.
pub fn fold_delta(post: PostId, delta_id: Ksuid) -> Write {
    Write::new(
        key_item(&ItemKey::Delta(post, delta_id)),
        "attribute_exists(#pk)",
    )
    .name("#pk", keys::PK)
}

/// Move a post's counter by `by` (zero too: the renewed version still tells `rebuild` that
/// the counted likes changed), only if the post exists.
pub fn move_counter(topic: &TopicSlug, post: PostId, by: i64) -> Write {
    counter_move(topic, post, by, "attribute_exists(#pk)")
}

/// The projector's one-hop move: [`move_counter`], only while the counter is not hot at
/// `now_secs` (no fold marked it). On failure the post as it was says which ([`CounterState`]).
pub fn move_cold_counter(topic: &TopicSlug, post: PostId, by: i64, now_secs: i64) -> Write {
    counter_move(
        topic,
        post,
        by,
        "attribute_exists(#pk) AND (attribute_not_exists(#hot) OR #hot < :now)",
    )
    .name("#hot", attr::HOT_UNTIL)
    .value(":now", AttributeValue::N(now_secs.to_string()))
    .returning_old()
}

/// A fold's move: add folded deltas, and keep the counter hot until `hot_until_secs`.
pub fn fold_into_counter(topic: &TopicSlug, post: PostId, by: i64, hot_until_secs: i64) -> Write {
    let mut write = counter_move(topic, post, by, "attribute_exists(#pk)")
        .name("#hot", attr::HOT_UNTIL)
        .value(":until", AttributeValue::N(hot_until_secs.to_string()));
    write.update = Some("ADD #count :by SET #version = :version, #hot = :until".into());
    write
}

fn counter_move(topic: &TopicSlug, post: PostId, by: i64, condition: &str) -> Write {
    Write::new(key_item(&ItemKey::Post(topic.clone(), post)), condition)
        .set("ADD #count :by SET #version = :version".into())
        .name("#pk", keys::PK)
        .name("#count", attr::LIKE_COUNT)
        .name("#version", attr::COUNT_VERSION)
        .value(":by", AttributeValue::N(by.to_string()))
        .value(":version", s(Ksuid::generate().as_str()))
}

/// A post item, as a failed [`move_cold_counter`] returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterState {
    /// No post: nothing of it counts.
    Missing,
    /// Counted through deltas until then.
    Hot {
        /// Epoch seconds.
        until_secs: i64,
    },
    /// Neither: the failure was something else.
    Cold,
}

impl CounterState {
    /// The state `item` (the post as it was) shows at `now_secs`.
    pub fn of(item: Option<&Item>, now_secs: i64) -> Self {
        let Some(item) = item.filter(|i| !i.is_empty()) else {
            return CounterState::Missing;
        };
        match item
            .get(attr::HOT_UNTIL)
            .and_then(|v| v.as_n().ok()?.parse::<i64>().ok())
        {
            Some(until_secs) if until_secs >= now_secs => CounterState::Hot { until_secs },
            _ => CounterState::Cold,
        }
    }
}

/// Set a post's counter to a recount, only if its version is still `seen` (absent: never
/// moved): `rebuild`'s correction.
pub fn set_counter(topic: &TopicSlug, post: PostId, count: i64, seen: Option<&str>) -> Write {
    let condition = match seen {
        Some(_) => "attribute_exists(#pk) AND #version = :seen",
        None => "attribute_exists(#pk) AND attribute_not_exists(#version)",
    };
    let write = Write::new(key_item(&ItemKey::Post(topic.clone(), post)), condition)
        .set("SET #count = :count, #version = :version".into())
        .name("#pk", keys::PK)
        .name("#count", attr::LIKE_COUNT)
        .name("#version", attr::COUNT_VERSION)
        .value(":count", AttributeValue::N(count.to_string()))
        .value(":version", s(Ksuid::generate().as_str()));
    match seen {
        Some(version) => write.value(":seen", s(version)),
        None => write,
    }
}

/// The transactional writer's like: new, already in view shard `shard` of the likers view
/// (any shard below the post's `viewShards`; the writer picks the one the liker's id does) and
/// counted by the writer (to go with `move_counter(.., 1)` in one transaction).
pub fn put_counted_like(like: &Like, shard: u32) -> Write {
    let like = Like {
        counted_by: Some(CountedBy::Writer),
        ..like.clone()
    };
    Write::new(like.to_item_in_view(shard), "attribute_not_exists(#pk)").name("#pk", keys::PK)
}

/// Delete a like the writer counted (to go with `move_counter(.., -1)` in one transaction).
pub fn delete_writer_counted(user: &UserId, post: PostId) -> Write {
    Write::new(like_key(user, post), "#counted = :writer")
        .name("#counted", attr::COUNTED_BY)
        .value(":writer", s(CountedBy::Writer.as_str()))
        .returning_old()
}

/// Delete a like the writer did not count: plainly; the projector takes back its own count.
pub fn delete_not_writer_counted(user: &UserId, post: PostId) -> Write {
    Write::new(
        like_key(user, post),
        "attribute_exists(#pk) AND (attribute_not_exists(#counted) OR #counted <> :writer)",
    )
    .name("#pk", keys::PK)
    .name("#counted", attr::COUNTED_BY)
    .value(":writer", s(CountedBy::Writer.as_str()))
    .returning_old()
}

/// A like item, as a consistent read (or a failed condition's `ALL_OLD`) found it, seen from
/// the incarnation a record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeState {
    /// No like item: unliked.
    Gone,
    /// Another incarnation: unliked and liked again since.
    Replaced,
    /// This incarnation, not yet counted.
    Uncounted,
    /// This incarnation, counted.
    Counted {
        /// Its GSI1 keys are set: it is in its post's likers view.
        in_view: bool,
    },
}

impl LikeState {
    /// The state of `like`'s incarnation in `item` (the like item as it was, if any).
    pub fn of(item: Option<&Item>, like: &LikeRef) -> Self {
        let Some(item) = item.filter(|i| !i.is_empty()) else {
            return LikeState::Gone;
        };
        match item.get(attr::LIKE_ID) {
            Some(AttributeValue::S(id)) if id == like.like_id.as_str() => {}
            _ => return LikeState::Replaced,
        }
        if item.contains_key(attr::COUNTED_BY) {
            LikeState::Counted {
                in_view: item.contains_key(keys::GSI1PK),
            }
        } else {
            LikeState::Uncounted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LikeId;

    fn like() -> LikeRef {
        LikeRef {
            user: "ada".parse().unwrap(),
            post: PostId::generate(),
            topic: "rust".parse().unwrap(),
            like_id: LikeId::generate(),
        }
    }

    /// Every placeholder an expression uses is defined, and every one defined is used
    /// (DynamoDB refuses both mistakes).
    fn assert_placeholders_match(write: &Write) {
        let text = format!(
            "{} {}",
            write.update.as_deref().unwrap_or(""),
            write.condition
        );
        let used = |prefix: char| -> std::collections::BTreeSet<String> {
            text.split(|c: char| !(c.is_alphanumeric() || c == '#' || c == ':'))
                .filter(|t| t.starts_with(prefix))
                .map(str::to_owned)
                .collect()
        };
        let names: std::collections::BTreeSet<String> = write.names.keys().cloned().collect();
        let values: std::collections::BTreeSet<String> = write.values.keys().cloned().collect();
        assert_eq!(used('#'), names, "{text}");
        assert_eq!(used(':'), values, "{text}");
    }

    #[test]
    fn every_write_defines_exactly_the_placeholders_it_uses() {
        let like = like();
        let post = like.post;
        let topic = like.topic.clone();
        let full = Like {
            user_id: like.user.clone(),
            post_id: post,
            topic: topic.clone(),
            title: "t".into(),
            liked_at: chrono::Utc::now(),
            like_id: like.like_id,
            counted_by: None,
        };
        for write in [
            count_like(&like, true),
            count_like(&like, false),
            stamp_like(&like, 0),
            stamp_like(&like, 5),
            defer_stamp(&like, 0),
            grow_view(&topic, post, 8),
            tombstone(&like, 0),
            put_delta(&Delta {
                topic: topic.clone(),
                post_id: post,
                delta_id: Ksuid::generate(),
                delta: 3,
            }),
            fold_delta(post, Ksuid::generate()),
            move_counter(&topic, post, -3),
            move_cold_counter(&topic, post, 2, 0),
            fold_into_counter(&topic, post, 40, 300),
            set_counter(&topic, post, 7, Some("v")),
            set_counter(&topic, post, 7, None),
            put_counted_like(&full, 3),
            delete_writer_counted(&like.user, post),
            delete_not_writer_counted(&like.user, post),
        ] {
            assert_placeholders_match(&write);
        }
    }

    #[test]
    fn a_like_item_reads_as_its_state_for_one_incarnation() {
        let like = like();
        let mut item = Item::from([(attr::LIKE_ID.to_owned(), s(like.like_id.as_str()))]);
        assert_eq!(LikeState::of(None, &like), LikeState::Gone);
        assert_eq!(LikeState::of(Some(&Item::new()), &like), LikeState::Gone);
        assert_eq!(LikeState::of(Some(&item), &like), LikeState::Uncounted);
        item.insert(attr::COUNTED_BY.into(), s("projector"));
        assert_eq!(
            LikeState::of(Some(&item), &like),
            LikeState::Counted { in_view: false }
        );
        item.insert(keys::GSI1PK.into(), s("POST#x"));
        assert_eq!(
            LikeState::of(Some(&item), &like),
            LikeState::Counted { in_view: true }
        );
        let other = LikeRef {
            like_id: LikeId::generate(),
            ..like
        };
        assert_eq!(LikeState::of(Some(&item), &other), LikeState::Replaced);
    }
}
