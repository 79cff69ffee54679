//! GSI1 as its readers see it. DynamoDB propagates a base-table write to a global secondary
//! index asynchronously: "write operations propagate to a GSI within 1 second" under normal
//! conditions (AWS re:Post, *Why are my items missing from my GSI*), longer when it struggles.
//! One engine updates its index in the write's own transaction, so the replica is a second
//! table in the same storage holding each GSI1 item as the index last received it: every
//! stream record of an item in GSI1 before or after the write reaches the replica after a
//! seeded delay, in order per item (a later write of an item never overtakes an earlier one).
//! Queries on GSI1 read the replica; nothing else does.

use std::collections::BTreeMap;

use contracts::items::attr;
use contracts::keys;
use dynoxide::actions::{delete_item, get_records, put_item};
use dynoxide::storage::Storage;
use dynoxide::types::{AttributeValue, Item};
use futures_util::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

/// A change on its way to GSI1: the item's key, and its new image (`None`: gone).
struct Change {
    id: (String, String),
    key: Item,
    image: Option<Item>,
}

/// GSI1's delayed copy of the table.
pub(crate) struct Replica {
    /// The replica table's name.
    pub(crate) name: String,
    /// Each change's delay, drawn in `[min, max]` milliseconds.
    delay_ms: (i64, i64),
    rng: StdRng,
    /// Changes not yet shown, by the time they show (and their order of arrival).
    pending: BTreeMap<(i64, u64), Change>,
    arrivals: u64,
    /// Each item's last change's time: changes to one item show in order.
    last: FxHashMap<(String, String), i64>,
}

/// A like that entered GSI1: its `likeId`, and when readers could first see it.
pub struct Viewed {
    /// The like's `likeId`.
    pub like_id: String,
    /// When GSI1 showed it (epoch milliseconds).
    pub at_ms: i64,
}

impl Replica {
    pub(crate) fn new(name: String, delay_ms: (i64, i64), seed: u64) -> Self {
        Self {
            name,
            delay_ms: (delay_ms.0.max(0), delay_ms.1.max(delay_ms.0.max(0))),
            rng: StdRng::seed_from_u64(seed),
            pending: BTreeMap::new(),
            arrivals: 0,
            last: FxHashMap::default(),
        }
    }

    /// Take the stream's next record (in order, `written` at its time): a change of an item
    /// in GSI1 goes on its way with its delay from the moment it was written.
    pub(crate) fn take(&mut self, record: &get_records::Record, written: i64) {
        let stream = &record.dynamodb;
        let in_index = |image: &Option<Item>| {
            image
                .as_ref()
                .is_some_and(|item| item.contains_key(keys::GSI1PK))
        };
        if !in_index(&stream.new_image) && !in_index(&stream.old_image) {
            return;
        }
        let Some(id) = item_id(&stream.keys) else {
            return;
        };
        let delay = self.rng.random_range(self.delay_ms.0..=self.delay_ms.1);
        let last = self.last.entry(id.clone()).or_insert(i64::MIN);
        let at = (written + delay).max(*last);
        *last = at;
        self.arrivals += 1;
        let image = stream
            .new_image
            .clone()
            .filter(|item| item.contains_key(keys::GSI1PK));
        let change = Change {
            id,
            key: stream.keys.clone(),
            image,
        };
        self.pending.insert((at, self.arrivals), change);
    }

    /// Show every change due by `now_ms`; the likes that entered GSI1 with them.
    pub(crate) fn show(&mut self, storage: &Storage, now_ms: i64) -> Vec<Viewed> {
        let mut viewed = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let ((at, _), change) = entry.remove_entry();
            if self.last.get(&change.id) == Some(&at) {
                self.last.remove(&change.id);
            }
            match change.image {
                Some(item) => {
                    if let Some(AttributeValue::S(like_id)) = item.get(attr::LIKE_ID) {
                        viewed.push(Viewed {
                            like_id: like_id.clone(),
                            at_ms: at,
                        });
                    }
                    let request = put_item::PutItemRequest {
                        table_name: self.name.clone(),
                        item,
                        ..Default::default()
                    };
                    put_item::execute(storage, request)
                        .now_or_never()
                        .expect("dynoxide's storage never waits")
                        .expect("the replica takes the item");
                }
                None => {
                    let request = delete_item::DeleteItemRequest {
                        table_name: self.name.clone(),
                        key: change.key,
                        ..Default::default()
                    };
                    delete_item::execute(storage, request)
                        .now_or_never()
                        .expect("dynoxide's storage never waits")
                        .expect("the replica drops the item");
                }
            }
        }
        viewed
    }

    /// When the last change on its way shows, if one is.
    pub(crate) fn settled_at(&self) -> Option<i64> {
        self.pending.keys().map(|(at, _)| *at).max()
    }
}

/// An item's table key as text.
fn item_id(key: &Item) -> Option<(String, String)> {
    match (key.get(keys::PK)?, key.get(keys::SK)?) {
        (AttributeValue::S(pk), AttributeValue::S(sk)) => Some((pk.clone(), sk.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use contracts::items::{Entity, Like, key_of};
    use contracts::keys::{self, PostId};
    use serde_json::json;

    use crate::table::{Table, TableSettings};
    use crate::wire;

    const START: i64 = 1_767_225_600_000;

    fn likes_in_view(table: &mut Table, post: &PostId, now: i64) -> i64 {
        let body = json!({
            "TableName": table.name,
            "IndexName": keys::GSI1,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": keys::GSI1PK},
            "ExpressionAttributeValues": {":pk": {"S": keys::post_view_partition(post)}},
            "Select": "COUNT",
        });
        let page = table.call("Query", &body, now).expect("GSI1 answers");
        page["Count"].as_i64().expect("a count")
    }

    /// A stamped like shows in GSI1 after the delay and not before; its deletion likewise,
    /// the old entry read until then; each like is reported once it shows, with its time.
    #[test]
    fn gsi1_shows_each_write_after_its_delay_in_order() {
        let settings = TableSettings {
            gsi1_delay_ms: (500, 500),
            ..TableSettings::default()
        };
        let mut table = Table::new("replica", START, settings, 7);
        let post = PostId::generate();
        let like = Like {
            user_id: "u".parse().unwrap(),
            post_id: post,
            topic: "t".parse().unwrap(),
            title: String::new(),
            liked_at: chrono::DateTime::from_timestamp_millis(START).unwrap(),
            like_id: contracts::keys::LikeId::generate(),
            counted_by: None,
        };
        let put = json!({"TableName": table.name, "Item": wire::item(&like.to_item_in_view(0))});
        table.call("PutItem", &put, START).expect("the like lands");
        assert_eq!(likes_in_view(&mut table, &post, START + 499), 0);
        assert!(table.viewed().is_empty(), "nothing shown yet");
        assert_eq!(likes_in_view(&mut table, &post, START + 500), 1);
        let viewed = table.viewed();
        assert_eq!(viewed.len(), 1);
        assert_eq!(viewed[0].like_id, like.like_id.as_str());
        assert_eq!(viewed[0].at_ms, START + 500);

        let key = contracts::items::key_item(&key_of(&like.to_item()).expect("a key"));
        let delete = json!({"TableName": table.name, "Key": wire::item(&key)});
        table
            .call("DeleteItem", &delete, START + 600)
            .expect("the unlike lands");
        assert_eq!(
            likes_in_view(&mut table, &post, START + 1_099),
            1,
            "still shown"
        );
        assert_eq!(table.gsi1_settles_at(), Some(START + 1_100));
        assert_eq!(likes_in_view(&mut table, &post, START + 1_100), 0);
        assert_eq!(table.gsi1_settles_at(), None);
        assert!(table.viewed().is_empty(), "a deletion shows no like");
    }
}
