//! Entities and their items.
//!
//! An entity serializes its own fields with serde_dynamo; [`Entity::to_item`] adds the keys and
//! the `type` attribute from [`crate::keys`], so the key schema has one source. Reading ignores
//! the key attributes: they are derived, never trusted over the fields.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::keys::{self, ItemKey, Ksuid, LikeId, PostId, TopicSlug, UserId};

/// A DynamoDB item as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// The key attributes (PK, SK) of an item, as requests name it.
pub fn key_item(key: &ItemKey) -> Item {
    let keys::KeyPair { pk, sk } = key.key();
    HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S(pk)),
        (keys::SK.to_owned(), AttributeValue::S(sk)),
    ])
}

/// The key of an item read from the table, if it is one of ours.
pub fn key_of(item: &Item) -> Option<ItemKey> {
    ItemKey::parse(
        item.get(keys::PK)?.as_s().ok()?,
        item.get(keys::SK)?.as_s().ok()?,
    )
    .ok()
}

/// A like incarnation, as the projection and the counting protocol name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LikeRef {
    /// The liker.
    pub user: UserId,
    /// The liked post.
    pub post: PostId,
    /// The liked post's topic.
    pub topic: TopicSlug,
    /// The incarnation: conditions on it keep a late record from touching a re-like.
    pub like_id: LikeId,
}

impl From<&Like> for LikeRef {
    fn from(like: &Like) -> Self {
        Self {
            user: like.user_id.clone(),
            post: like.post_id,
            topic: like.topic.clone(),
            like_id: like.like_id,
        }
    }
}

impl LikeRef {
    /// The like item's key.
    pub fn item_key(&self) -> ItemKey {
        ItemKey::Like(self.user.clone(), self.post)
    }
}

/// Attribute names that writers outside this module put into conditions and updates.
pub mod attr {
    /// A post's topic slug.
    pub const TOPIC: &str = "topic";
    /// A post's id.
    pub const POST_ID: &str = "postId";
    /// A post's counted likes.
    pub const LIKE_COUNT: &str = "likeCount";
    /// On a like: who counted it ([`CountedBy`]).
    pub const COUNTED_BY: &str = "countedBy";
    /// On a like: its incarnation.
    pub const LIKE_ID: &str = "likeId";
    /// A fresh KSUID set by every write that moves `likeCount`: `rebuild` sees from it whether
    /// a counter moved while it recounted, and when it last moved.
    pub const COUNT_VERSION: &str = "countVersion";
    /// A delta item's change to its post's `likeCount`.
    pub const DELTA: &str = "delta";
    /// Until when (epoch seconds) a post's counter is counted through deltas: set by folds.
    pub const HOT_UNTIL: &str = "hotUntil";
    /// A post's number of likers view shards.
    pub const VIEW_SHARDS: &str = "viewShards";
    /// On a counted like: its stamp was deferred (epoch milliseconds of the last try); the
    /// MODIFY this write makes brings it back through the stream. Removed by the stamp.
    pub const STAMP_DUE: &str = "stampDue";
}

/// The `type` attribute of every item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemType {
    /// A topic.
    Topic,
    /// A post.
    Post,
    /// A user's profile.
    User,
    /// One user's like of one post.
    Like,
    /// The record that the count of a like incarnation was taken back.
    Tombstone,
    /// A hot post's counted change not yet in its counter.
    Delta,
    /// Where the local poller stands in a shard.
    Checkpoint,
    /// A stream record that could not be decoded.
    Quarantine,
}

impl ItemType {
    /// The value of the `type` attribute.
    pub const fn as_str(self) -> &'static str {
        match self {
            ItemType::Topic => "Topic",
            ItemType::Post => "Post",
            ItemType::User => "User",
            ItemType::Like => "Like",
            ItemType::Tombstone => "Tombstone",
            ItemType::Delta => "Delta",
            ItemType::Checkpoint => "Checkpoint",
            ItemType::Quarantine => "Quarantine",
        }
    }
}

/// Why an item could not be read as an entity.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The item is of another type.
    #[error("item is a {found:?}, expected {expected}")]
    WrongType {
        /// The type asked for.
        expected: &'static str,
        /// The item's `type`, if it has one.
        found: Option<String>,
    },
    /// Its attributes do not make the entity.
    #[error("malformed item: {0}")]
    Malformed(#[from] serde_dynamo::Error),
}

/// An entity stored as one item.
pub trait Entity: Serialize + DeserializeOwned {
    /// The `type` its items carry.
    const TYPE: ItemType;

    /// The item's primary key.
    fn item_key(&self) -> ItemKey;

    /// The item as written: fields, keys and type.
    fn to_item(&self) -> Item {
        base_item(self)
    }

    /// The entity of an item, checking its type.
    fn from_item(item: Item) -> Result<Self, ItemError> {
        match item.get(keys::TYPE) {
            Some(AttributeValue::S(t)) if t == Self::TYPE.as_str() => {}
            other => {
                return Err(ItemError::WrongType {
                    expected: Self::TYPE.as_str(),
                    found: other.map(|v| format!("{v:?}")),
                });
            }
        }
        Ok(serde_dynamo::from_item(item)?)
    }
}

/// A topic, created once by slug.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    /// Its id in paths.
    pub slug: TopicSlug,
    /// Its title.
    pub title: String,
    /// Who created it.
    pub created_by: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Entity for Topic {
    const TYPE: ItemType = ItemType::Topic;
    fn item_key(&self) -> ItemKey {
        ItemKey::Topic(self.slug.clone())
    }
}

/// A post. Immutable after creation except `likeCount`, which only the projector (or the
/// transactional writer) changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Post {
    /// Its topic.
    pub topic: TopicSlug,
    /// Its id.
    pub post_id: PostId,
    /// Who wrote it.
    pub author_id: UserId,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Absent on a new post; the projector's first `ADD` creates it.
    #[serde(default)]
    pub like_count: i64,
    /// How many GSI1 partitions its likers view is spread over (see [`keys::post_view_shard`]):
    /// 1 for a new post, only ever grown (by the projector, before it stamps into a new shard),
    /// so a reader that reads every shard below it misses no stamped like.
    #[serde(default = "one_view_shard")]
    pub view_shards: u32,
}

fn one_view_shard() -> u32 {
    1
}

impl Post {
    /// The view shard count of a stored post item, read alone (1 while never grown).
    pub fn view_shards_in(item: &Item) -> u32 {
        item.get(attr::VIEW_SHARDS)
            .and_then(|v| v.as_n().ok()?.parse().ok())
            .unwrap_or_else(one_view_shard)
    }
}

impl Entity for Post {
    const TYPE: ItemType = ItemType::Post;
    fn item_key(&self) -> ItemKey {
        ItemKey::Post(self.topic.clone(), self.post_id)
    }
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub user_id: UserId,
    /// The name shown for the user.
    pub display_name: String,
    /// A few words about the user.
    #[serde(default)]
    pub bio: String,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
}

impl Entity for User {
    const TYPE: ItemType = ItemType::User;
    fn item_key(&self) -> ItemKey {
        ItemKey::User(self.user_id.clone())
    }
}

/// Who has counted a like into its post's `likeCount`, and so owns the decrement when it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountedBy {
    /// The projector counted it from the stream.
    Projector,
    /// The transactional writer counted it in the same transaction that wrote it.
    Writer,
}

impl CountedBy {
    /// The value of `countedBy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CountedBy::Projector => "projector",
            CountedBy::Writer => "writer",
        }
    }
}

/// One user's like of one post. The item is its own "counted" marker (`countedBy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Like {
    /// The liker.
    pub user_id: UserId,
    /// The liked post.
    pub post_id: PostId,
    /// Copied from the post, so a user's likes list titles without reading posts.
    pub topic: TopicSlug,
    /// The post's title when it was liked.
    pub title: String,
    /// When it was liked.
    pub liked_at: DateTime<Utc>,
    /// This incarnation of the like: a re-like after an unlike gets a new one, so a late
    /// record of an old incarnation can never count or uncount the new one.
    pub like_id: LikeId,
    /// Who counted it, once counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_by: Option<CountedBy>,
}

impl Entity for Like {
    const TYPE: ItemType = ItemType::Like;
    fn item_key(&self) -> ItemKey {
        ItemKey::Like(self.user_id.clone(), self.post_id)
    }
}

impl Like {
    /// The like with its GSI1 keys, in view shard `shard` of its post's likers view, as the
    /// transactional writer writes it (the stream-mode writer leaves them to the projector).
    pub fn to_item_in_view(&self, shard: u32) -> Item {
        let mut item = self.to_item();
        let gsi1 = self.item_key().gsi1().expect("likes are in GSI1");
        let pk = keys::post_view_shard(&self.post_id, shard);
        item.insert(keys::GSI1PK.into(), AttributeValue::S(pk));
        item.insert(keys::GSI1SK.into(), AttributeValue::S(gsi1.sk));
        item
    }
}

/// The projector's record that it took back the count of one like incarnation. Its
/// conditional put makes a re-delivered REMOVE a no-op; TTL removes it after the stream (24 h)
/// and any replay of it are long past.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    /// The incarnation whose count was taken back.
    pub like_id: LikeId,
    /// Its liker.
    pub user_id: UserId,
    /// Its post.
    pub post_id: PostId,
    /// Epoch seconds (the table's TTL attribute).
    pub expires_at: i64,
}

impl Entity for Tombstone {
    const TYPE: ItemType = ItemType::Tombstone;
    fn item_key(&self) -> ItemKey {
        ItemKey::Tombstone(self.like_id)
    }
}

/// A hot post's counted change not yet in its counter: written by the counting transaction
/// that marked its likes, deleted by the transaction that adds it to the counter. A post's
/// `likeCount` plus its pending deltas is its number of counted likes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    /// The post's topic.
    pub topic: TopicSlug,
    /// The post.
    pub post_id: PostId,
    /// Its id: fresh per write; its last character picks the delta partition.
    pub delta_id: Ksuid,
    /// Likes marked minus likes taken back by the transaction that wrote it.
    pub delta: i64,
}

impl Entity for Delta {
    const TYPE: ItemType = ItemType::Delta;
    fn item_key(&self) -> ItemKey {
        ItemKey::Delta(self.post_id, self.delta_id)
    }
}

/// How long tombstones live: well past the stream's 24 h retention.
pub const TOMBSTONE_TTL_SECS: i64 = 3 * 24 * 3600;

/// Where a shard's reading stands (local poller only; Lambda keeps its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The stream's ARN.
    pub stream: String,
    /// The shard's id.
    pub shard: String,
    /// The last sequence number fully handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// The shard is closed and fully read: its children may start.
    #[serde(default)]
    pub finished: bool,
}

impl Entity for Checkpoint {
    const TYPE: ItemType = ItemType::Checkpoint;
    fn item_key(&self) -> ItemKey {
        ItemKey::Checkpoint {
            stream: self.stream.clone(),
            shard: self.shard.clone(),
        }
    }
}

/// A stream record that could not be decoded, quarantined so it never blocks its shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    /// The record's sequence number.
    pub sequence: String,
    /// The record's `eventID`.
    pub event_id: String,
    /// Why it could not be decoded.
    pub reason: String,
    /// The record as received (truncated to stay under the item size limit).
    pub record: String,
    /// When it was quarantined.
    pub quarantined_at: DateTime<Utc>,
}

impl Entity for Quarantined {
    const TYPE: ItemType = ItemType::Quarantine;
    fn item_key(&self) -> ItemKey {
        ItemKey::Quarantine {
            sequence: self.sequence.clone(),
            event_id: self.event_id.clone(),
        }
    }
}

/// Fields, keys and type: what every entity's item holds.
fn base_item<E: Entity>(entity: &E) -> Item {
    let mut item: Item = serde_dynamo::to_item(entity).expect("entities serialize to maps");
    let key = entity.item_key().key();
    item.insert(keys::PK.into(), AttributeValue::S(key.pk));
    item.insert(keys::SK.into(), AttributeValue::S(key.sk));
    item.insert(
        keys::TYPE.into(),
        AttributeValue::S(E::TYPE.as_str().into()),
    );
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LikeId, PostId};

    fn string(item: &Item, name: &str) -> String {
        item[name].as_s().unwrap().clone()
    }

    #[test]
    fn post_round_trips_with_keys_outside_the_view() {
        let post = Post {
            topic: "rust".parse().unwrap(),
            post_id: PostId::generate(),
            author_id: "alice".parse().unwrap(),
            title: "Hello".into(),
            body: "World".into(),
            created_at: Utc::now(),
            like_count: 0,
            view_shards: 1,
        };
        let item = post.to_item();
        assert_eq!(string(&item, "PK"), "TOPIC#rust");
        assert_eq!(string(&item, "SK"), format!("POST#{}", post.post_id));
        assert!(
            !item.contains_key("GSI1PK"),
            "read by key, not through the view"
        );
        assert_eq!(string(&item, "type"), "Post");
        assert_eq!(Post::from_item(item).unwrap(), post);
    }

    #[test]
    fn stream_mode_like_has_no_view_keys_and_no_mark() {
        let like = Like {
            user_id: "bob".parse().unwrap(),
            post_id: PostId::generate(),
            topic: "rust".parse().unwrap(),
            title: "Hello".into(),
            liked_at: Utc::now(),
            like_id: LikeId::generate(),
            counted_by: None,
        };
        let item = like.to_item();
        assert!(!item.contains_key("GSI1PK") && !item.contains_key("countedBy"));
        assert_eq!(string(&item, "SK"), format!("LIKE#{}", like.post_id));
        assert_eq!(Like::from_item(item).unwrap(), like);
        let in_view = like.to_item_in_view(0);
        assert_eq!(string(&in_view, "GSI1SK"), "LIKE#bob");
        assert_eq!(string(&in_view, "GSI1PK"), format!("POST#{}", like.post_id));
        let spread = like.to_item_in_view(5);
        assert_eq!(
            string(&spread, "GSI1PK"),
            format!("POST#{}#5", like.post_id)
        );
    }

    #[test]
    fn reading_checks_the_type() {
        let user = User {
            user_id: "carol".parse().unwrap(),
            display_name: "Carol".into(),
            bio: String::new(),
            updated_at: Utc::now(),
        };
        assert!(matches!(
            Post::from_item(user.to_item()),
            Err(ItemError::WrongType { .. })
        ));
    }
}
