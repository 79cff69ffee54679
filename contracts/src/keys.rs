//! Every key of the table is built and parsed here, and nowhere else.
//!
//! | entity    | PK               | SK                 | GSI1PK          | GSI1SK           |
//! |-----------|------------------|--------------------|-----------------|------------------|
//! | Topic     | `TOPIC#<slug>`   | `TOPIC#<slug>`     |                 |                  |
//! | Post      | `TOPIC#<slug>`   | `POST#<ksuid>`     |                 |                  |
//! | User      | `USER#<id>`      | `USER#<id>`        |                 |                  |
//! | Like      | `USER#<id>`      | `LIKE#<ksuid>`     | `POST#<ksuid>[#<k>]`* | `LIKE#<id>`* |
//! | Tombstone | `TOMB#<likeId>`  | `TOMB#<likeId>`    |                 |                  |
//! | Delta     | `DELTA#<postKsuid>#<k>` | `DELTA#<ksuid>` |             |                  |
//! | Checkpoint| `CHECKPOINT#<stream>` | `SHARD#<shard>` |              |                  |
//! | Quarantine| `QUARANTINE#records` | `SEQ#<sequence>#<eventID>` |               |                  |
//!
//! (*) stamped by the projector (or written by the transactional writer), never by the
//! stream-mode writer: a hot post's GSI1 partition must stay off the request path. A post's
//! likers view is its view shards (`k` from 1 below the post's `viewShards`; shard 0 has no
//! suffix, see [`post_view_shard`]). The post item itself is not in GSI1: the likers page
//! reads it by key, so its counter writes cost no index write and are never held up by a
//! view that throttles.
//!
//! A delta is a hot post's counted change not yet in its counter. A post's deltas spread over
//! [`DELTA_PARTITIONS`] partition keys of its own (`k` from the delta's id), so the stream
//! hands each key's deltas, in order, to one invocation at a time, and together they take four
//! partitions' write units (see `projector::batch::hot`).
//!
//! The identifier newtypes validate on construction, so a key built from them always parses
//! back, and no identifier can smuggle a `#` into a key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use svix_ksuid::{KsuidLike, KsuidMs};

/// The partition key attribute.
pub const PK: &str = "PK";
/// The sort key attribute.
pub const SK: &str = "SK";
/// The one global secondary index: the likers view and a user's likes.
pub const GSI1: &str = "GSI1";
/// GSI1's partition key attribute.
pub const GSI1PK: &str = "GSI1PK";
/// GSI1's sort key attribute.
pub const GSI1SK: &str = "GSI1SK";
/// Every item says what it is.
pub const TYPE: &str = "type";
/// DynamoDB's TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expiresAt";

const TOPIC: &str = "TOPIC#";
const POST: &str = "POST#";
const USER: &str = "USER#";
const LIKE: &str = "LIKE#";
const TOMB: &str = "TOMB#";
const DELTA: &str = "DELTA#";
const CHECKPOINT: &str = "CHECKPOINT#";
const SHARD: &str = "SHARD#";
const QUARANTINE: &str = "QUARANTINE#";
const SEQ: &str = "SEQ#";
/// The one partition that holds quarantined stream records.
const QUARANTINE_PARTITION: &str = "records";

/// Why an identifier or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A topic slug out of shape.
    #[error("topic must match [a-z0-9-]{{1,64}}")]
    TopicSlug,
    /// A post id that is not a KSUID.
    #[error("post id must be a 27-character KSUID")]
    PostId,
    /// A user id out of shape.
    #[error("user id must be 1-128 characters of [A-Za-z0-9._:@+|-]")]
    UserId,
    /// A key that names no item of this table.
    #[error("not a key of this table: {0}")]
    Unknown(String),
}

/// A topic's slug: `[a-z0-9-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicSlug(String);

impl TopicSlug {
    /// The slug's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopicSlug {
    type Error = KeyError;
    fn try_from(value: String) -> Result<Self, KeyError> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(value))
        } else {
            Err(KeyError::TopicSlug)
        }
    }
}

/// A user id: the authenticated caller's `sub`. Never contains `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = KeyError;
    fn try_from(value: String) -> Result<Self, KeyError> {
        let valid = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@+|-".contains(&b));
        if valid {
            Ok(Self(value))
        } else {
            Err(KeyError::UserId)
        }
    }
}

/// A time-sortable id (KSUID with 4 ms resolution), used for posts and like incarnations.
///
/// Its base62 text sorts like its time, so `POST#<id>` sort keys list newest last. It is held
/// as that canonical text: the projector reads two ids per stream record and writes them back
/// into keys and conditions, so parsing is a check of 27 bytes, never a base conversion.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ksuid([u8; KSUID_LEN]);

/// Ids that are KSUIDs, each a type of its own, so that a post's id is never taken for a like
/// incarnation's (or the other way round). Same text, same order, same serialization as
/// [`Ksuid`].
macro_rules! ksuid_ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ksuid);

        impl $name {
            /// A fresh id for now.
            pub fn generate() -> Self {
                Self(Ksuid::generate())
            }

            /// A random id for a given time (milliseconds since the epoch).
            pub fn at_millis(millis: i64) -> Self {
                Self(Ksuid::at_millis(millis))
            }

            /// Its time, as [`Ksuid::millis`].
            pub fn millis(&self) -> i64 {
                self.0.millis()
            }

            /// The base62 text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                s.parse().map(Self)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.to_string()
            }
        }
    )*};
}

ksuid_ids! {
    /// A post's id.
    PostId;
    /// One incarnation of a like: a re-like after an unlike is a new incarnation.
    LikeId;
}

/// Length of a KSUID's base62 text.
const KSUID_LEN: usize = 27;
/// The largest KSUID (20 bytes of 0xFF) in base62: with a fixed length and an alphabet in
/// ASCII order, text order is numeric order, so a text at most this one is canonical.
const KSUID_MAX: &[u8; KSUID_LEN] = b"aWgEPTl1tmebfsQzFP4bxwgy80V";

impl Ksuid {
    fn from_ksuid(id: KsuidMs) -> Self {
        let text = id.to_string();
        let mut bytes = [0; KSUID_LEN];
        bytes.copy_from_slice(text.as_bytes());
        Self(bytes)
    }

    /// A fresh id for now.
    pub fn generate() -> Self {
        Self::from_ksuid(KsuidMs::now(None))
    }

    /// A random id for a given time (milliseconds since the epoch).
    pub fn at_millis(millis: i64) -> Self {
        Self::from_ksuid(KsuidMs::from_millis(Some(millis), None))
    }

    /// Its time, in milliseconds since the epoch, to its 4 ms resolution: ids of one tick
    /// share it and sort among themselves by their random part.
    pub fn millis(&self) -> i64 {
        KsuidMs::from_str(self.as_str())
            .expect("a Ksuid holds canonical text")
            .timestamp_millis()
    }

    /// The base62 text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a KSUID's text is ASCII")
    }
}

impl fmt::Display for Ksuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ksuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ksuid({})", self.as_str())
    }
}

impl FromStr for Ksuid {
    type Err = KeyError;
    /// Only the canonical spelling is an id: 27 base62 characters, at most [`KSUID_MAX`].
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bytes: [u8; KSUID_LEN] = s.as_bytes().try_into().map_err(|_| KeyError::PostId)?;
        if bytes.iter().all(u8::is_ascii_alphanumeric) && &bytes <= KSUID_MAX {
            Ok(Self(bytes))
        } else {
            Err(KeyError::PostId)
        }
    }
}

impl TryFrom<String> for Ksuid {
    type Error = KeyError;
    fn try_from(value: String) -> Result<Self, KeyError> {
        value.parse()
    }
}

macro_rules! into_string {
    ($($t:ty),*) => {$(
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.to_string()
            }
        }
        impl FromStr for $t {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                Self::try_from(s.to_owned())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
into_string!(TopicSlug, UserId);

impl From<Ksuid> for String {
    fn from(value: Ksuid) -> String {
        value.to_string()
    }
}

/// A primary key (or a GSI1 key): partition and sort key values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPair {
    /// The partition key value.
    pub pk: String,
    /// The sort key value.
    pub sk: String,
}

/// The primary key of every kind of item, typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemKey {
    /// A topic, by slug.
    Topic(TopicSlug),
    /// A post, in its topic's partition.
    Post(TopicSlug, PostId),
    /// A user's profile.
    User(UserId),
    /// A user's like of a post, in the user's partition.
    Like(UserId, PostId),
    /// The tombstone of a like incarnation whose count was taken back.
    Tombstone(LikeId),
    /// A hot post's counted change waiting to be folded into its counter: post, delta id
    /// (which also picks its partition, [`delta_partition_of`]).
    Delta(PostId, Ksuid),
    /// Where the local poller stands in a shard of a stream.
    Checkpoint {
        /// The stream's ARN.
        stream: String,
        /// The shard's id.
        shard: String,
    },
    /// A stream record the projector could not read, kept for operators; by sequence number
    /// and `eventID` (records can share a sequence number).
    Quarantine {
        /// The record's sequence number.
        sequence: String,
        /// The record's `eventID`.
        event_id: String,
    },
}

impl ItemKey {
    /// The base-table key.
    pub fn key(&self) -> KeyPair {
        let (pk, sk) = match self {
            ItemKey::Topic(t) => (format!("{TOPIC}{t}"), format!("{TOPIC}{t}")),
            ItemKey::Post(t, p) => (format!("{TOPIC}{t}"), format!("{POST}{p}")),
            ItemKey::User(u) => (format!("{USER}{u}"), format!("{USER}{u}")),
            ItemKey::Like(u, p) => (format!("{USER}{u}"), format!("{LIKE}{p}")),
            ItemKey::Tombstone(l) => (format!("{TOMB}{l}"), format!("{TOMB}{l}")),
            ItemKey::Delta(p, d) => (
                delta_partition(p, delta_partition_of(d)),
                format!("{DELTA}{d}"),
            ),
            ItemKey::Checkpoint { stream, shard } => {
                (format!("{CHECKPOINT}{stream}"), format!("{SHARD}{shard}"))
            }
            ItemKey::Quarantine { sequence, event_id } => (
                format!("{QUARANTINE}{QUARANTINE_PARTITION}"),
                format!("{SEQ}{sequence}#{event_id}"),
            ),
        };
        KeyPair { pk, sk }
    }

    /// The GSI1 key the item carries once it is in the view (shard 0), if it belongs there.
    pub fn gsi1(&self) -> Option<KeyPair> {
        match self {
            ItemKey::Like(u, p) => Some(KeyPair {
                pk: post_gsi1pk(p),
                sk: format!("{LIKE}{u}"),
            }),
            _ => None,
        }
    }

    /// Parse a base-table key back into what it addresses.
    pub fn parse(pk: &str, sk: &str) -> Result<Self, KeyError> {
        let unknown = || KeyError::Unknown(format!("{pk} / {sk}"));
        let (pk_kind, pk_id) = split(pk).ok_or_else(unknown)?;
        let (sk_kind, sk_id) = split(sk).ok_or_else(unknown)?;
        let key = match (pk_kind, sk_kind) {
            (TOPIC, TOPIC) if pk_id == sk_id => ItemKey::Topic(pk_id.parse()?),
            (TOPIC, POST) => ItemKey::Post(pk_id.parse()?, sk_id.parse()?),
            (USER, USER) if pk_id == sk_id => ItemKey::User(pk_id.parse()?),
            (USER, LIKE) => ItemKey::Like(pk_id.parse()?, sk_id.parse()?),
            (TOMB, TOMB) if pk_id == sk_id => ItemKey::Tombstone(pk_id.parse()?),
            (DELTA, DELTA) => {
                let (post, k) = pk_id.rsplit_once('#').ok_or_else(unknown)?;
                let (post, id): (PostId, Ksuid) = (post.parse()?, sk_id.parse()?);
                if k != delta_partition_of(&id).to_string() {
                    return Err(unknown());
                }
                ItemKey::Delta(post, id)
            }
            (CHECKPOINT, SHARD) => ItemKey::Checkpoint {
                stream: pk_id.to_owned(),
                shard: sk_id.to_owned(),
            },
            (QUARANTINE, SEQ) if pk_id == QUARANTINE_PARTITION => {
                let (sequence, event_id) = sk_id.rsplit_once('#').ok_or_else(unknown)?;
                ItemKey::Quarantine {
                    sequence: sequence.to_owned(),
                    event_id: event_id.to_owned(),
                }
            }
            _ => return Err(unknown()),
        };
        Ok(key)
    }
}

fn split(value: &str) -> Option<(&'static str, &str)> {
    [
        TOPIC, POST, USER, LIKE, TOMB, DELTA, CHECKPOINT, SHARD, QUARANTINE, SEQ,
    ]
    .into_iter()
    .find_map(|prefix| value.strip_prefix(prefix).map(|rest| (prefix, rest)))
}

fn post_gsi1pk(post: &PostId) -> String {
    format!("{POST}{post}")
}

/// Sort-key prefixes for queries over an item collection.
pub mod prefix {
    /// A topic's posts in its partition.
    pub const POSTS: &str = super::POST;
    /// A user's likes in their partition; a post's likers in its GSI1 collection.
    pub const LIKES: &str = super::LIKE;
    /// Above every like's sort key (`$` follows `#`): the end of a `BETWEEN` over likes.
    pub const LIKES_END: &str = "LIKE$";
}

/// The partition key of a topic's collection (the topic and its posts).
pub fn topic_partition(topic: &TopicSlug) -> String {
    ItemKey::Topic(topic.clone()).key().pk
}

/// The partition key of a user's collection (the profile and the likes).
pub fn user_partition(user: &UserId) -> String {
    ItemKey::User(user.clone()).key().pk
}

/// How many partition keys a post's deltas spread over.
pub const DELTA_PARTITIONS: u8 = 4;

/// Which of its post's delta partitions a delta goes to: from the random end of its id.
pub fn delta_partition_of(delta: &Ksuid) -> u8 {
    delta.as_str().as_bytes()[KSUID_LEN - 1] % DELTA_PARTITIONS
}

/// The partition key of a post's pending deltas number `k`.
pub fn delta_partition(post: &PostId, k: u8) -> String {
    format!("{DELTA}{post}#{k}")
}

/// The GSI1 partition key of a post's view shard 0 (where cold posts' likes are stamped).
pub fn post_view_partition(post: &PostId) -> String {
    post_gsi1pk(post)
}

/// The most view shards a post's likers view is spread over: 64 GSI1 partitions take about
/// 64,000 stamps a second.
pub const MAX_VIEW_SHARDS: u32 = 64;

/// The GSI1 partition key of a post's view shard `k`: shard 0 is the post's own collection
/// (`POST#<id>`, where cold posts' likes are stamped), shard `k > 0` is `POST#<id>#<k>`.
pub fn post_view_shard(post: &PostId, k: u32) -> String {
    if k == 0 {
        post_gsi1pk(post)
    } else {
        format!("{POST}{post}#{k}")
    }
}

/// The view shard, of `shards`, a user's like of a hot post is stamped into: FNV-1a of the
/// user id, so every process picks the same (readers do not depend on it: they read every
/// shard).
pub fn view_shard_of(user: &UserId, shards: u32) -> u32 {
    let hash = user
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_shards_spread_users_and_shard_zero_is_the_posts_collection() {
        let post = PostId::generate();
        assert_eq!(post_view_shard(&post, 0), post_view_partition(&post));
        assert_eq!(post_view_shard(&post, 3), format!("POST#{post}#3"));
        let mut seen = [0u32; 8];
        for i in 0..8000 {
            let user: UserId = format!("user-{i}").parse().unwrap();
            assert_eq!(view_shard_of(&user, 1), 0);
            seen[view_shard_of(&user, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }

    fn slug(s: &str) -> TopicSlug {
        s.parse().unwrap()
    }

    #[test]
    fn every_key_parses_back_to_itself() {
        let post = PostId::generate();
        let user: UserId = "u-1@example.com".parse().unwrap();
        let keys = [
            ItemKey::Topic(slug("rust-2024")),
            ItemKey::Post(slug("rust"), post),
            ItemKey::User(user.clone()),
            ItemKey::Like(user, post),
            ItemKey::Tombstone(LikeId::generate()),
            ItemKey::Delta(post, Ksuid::generate()),
            ItemKey::Checkpoint {
                stream: "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026".into(),
                shard: "shardId-00000001".into(),
            },
            ItemKey::Quarantine {
                sequence: "4200000000000000001".into(),
                event_id: "f07f8ca4b0b26cb9c4e5e77e69f274ee".into(),
            },
        ];
        for key in keys {
            let KeyPair { pk, sk } = key.key();
            assert_eq!(ItemKey::parse(&pk, &sk), Ok(key));
        }
    }

    #[test]
    fn likes_are_in_their_posts_view_and_the_post_is_not() {
        let post = PostId::generate();
        let like = ItemKey::Like("alice".parse().unwrap(), post)
            .gsi1()
            .unwrap();
        assert_eq!(ItemKey::Post(slug("t"), post).gsi1(), None);
        assert_eq!(like.pk, post_view_partition(&post));
        assert!(like.sk.starts_with(prefix::LIKES));
    }

    #[test]
    fn identifiers_are_validated() {
        assert!("a-b-0".parse::<TopicSlug>().is_ok());
        for bad in ["", "A", "a_b", "a#b", &"a".repeat(65)] {
            assert_eq!(
                bad.parse::<TopicSlug>(),
                Err(KeyError::TopicSlug),
                "{bad:?}"
            );
        }
        assert!("8f9a-user|google:1".parse::<UserId>().is_ok());
        for bad in ["", "a#b", "a b", "a/b", &"u".repeat(129)] {
            assert_eq!(bad.parse::<UserId>(), Err(KeyError::UserId), "{bad:?}");
        }
        let id = Ksuid::generate().to_string();
        assert_eq!(id.parse::<Ksuid>().unwrap().to_string(), id);
        for bad in ["", "x", "0000000000000000000000000!", &format!("{id}0")] {
            assert_eq!(bad.parse::<Ksuid>(), Err(KeyError::PostId), "{bad:?}");
        }
    }

    #[test]
    fn foreign_keys_are_refused() {
        for (pk, sk) in [
            ("TOPIC#a", "TOPIC#b"),
            ("USER#a", "POST#x"),
            ("OTHER#a", "OTHER#a"),
            ("TOPIC#a", "POST#not-a-ksuid"),
        ] {
            assert!(ItemKey::parse(pk, sk).is_err(), "{pk} {sk}");
        }
    }

    /// The library's own round trip decides what is canonical; the 27-byte check must agree,
    /// above all around the largest KSUID, where a base62 text can overflow 160 bits.
    #[test]
    fn ksuid_text_check_agrees_with_the_library() {
        let library = |s: &str| KsuidMs::from_str(s).is_ok_and(|id| id.to_string() == s);
        assert_eq!(
            KsuidMs::from_bytes([0xFF; 20]).to_string().as_bytes(),
            KSUID_MAX
        );
        let max = std::str::from_utf8(KSUID_MAX).unwrap();
        let mut cases = vec![max.to_owned(), "0".repeat(27), "z".repeat(27)];
        for i in 0..KSUID_LEN {
            for c in ['0', '9', 'A', 'Z', 'a', 'z'] {
                let mut near_max = max.as_bytes().to_vec();
                near_max[i] = c as u8;
                cases.push(String::from_utf8(near_max).unwrap());
            }
        }
        cases.extend((0..200).map(|_| Ksuid::generate().to_string()));
        for case in cases {
            assert_eq!(case.parse::<Ksuid>().is_ok(), library(&case), "{case}");
        }
    }

    #[test]
    fn post_ids_sort_by_time() {
        let now = chrono::Utc::now().timestamp_millis();
        let older = Ksuid::at_millis(now);
        let newer = Ksuid::at_millis(now + 4);
        assert!(older.to_string() < newer.to_string());
        assert!(older < newer);
    }
}
