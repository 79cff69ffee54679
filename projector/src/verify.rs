//! `verify`: recompute every post's true like count from the base table and report drift.
//!
//! A parallel scan (`--segments`) reads posts, likes and deltas; [`Tallies`] (pure) folds the
//! items into per-post figures: the stored `likeCount`, the pending deltas of a hot counter
//! (counted, not yet folded into it), the live likes (the truth), and the likes stamped into
//! the GSI1 view. A post drifts when its stored count plus its pending deltas, or its view,
//! differs from its live likes. Likes still in flight through the projector show as drift
//! too: verify a quiet table, or expect in-flight likes in the report.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use contracts::items::{Item, ItemType, attr};
use contracts::keys::{self, PostId, TopicSlug};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plan::PostRef;

/// The attributes a tally reads: a scan asks for these alone, which keeps pages small.
pub(crate) const TALLY_PROJECTION: [&str; 6] = [
    keys::TYPE,
    keys::GSI1PK,
    attr::TOPIC,
    attr::POST_ID,
    attr::LIKE_COUNT,
    attr::DELTA,
];

/// What a tally reads of a post, like or delta item.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountedItem {
    topic: TopicSlug,
    post_id: PostId,
    like_count: Option<i64>,
    delta: Option<i64>,
}

/// The kinds of item a tally folds.
enum Tallied {
    Post,
    Like,
    Delta,
}

/// One post's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostTally {
    /// `likeCount` as stored (`None` if the post item was not seen).
    pub stored: Option<i64>,
    /// Pending deltas: counted likes not yet folded into `likeCount`.
    pub pending: i64,
    /// Live like items: the true count.
    pub live: i64,
    /// Live likes carrying GSI1 keys (in the likers view).
    pub in_view: i64,
}

/// Per-post figures, folded from items in any order and merged across scan segments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tallies {
    /// Each post's figures.
    pub posts: BTreeMap<PostRef, PostTally>,
    /// Items folded.
    pub items: u64,
}

/// A post whose stored count or view differs from its live likes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// The post's topic.
    pub topic: String,
    /// The post.
    pub post_id: String,
    /// Its stored `likeCount`.
    pub stored: i64,
    /// Its pending deltas' sum.
    pub pending: i64,
    /// Its live likes.
    #[serde(rename = "true")]
    pub true_count: i64,
    /// stored + pending − true.
    pub difference: i64,
    /// Its likes in the likers view.
    pub in_view: i64,
}

impl Tallies {
    /// Fold one item (anything but posts, likes and deltas is counted and skipped). Items
    /// need only the attributes of `TALLY_PROJECTION`.
    pub fn add(&mut self, item: Item) {
        self.items += 1;
        let kind = match item.get(keys::TYPE) {
            Some(AttributeValue::S(kind)) if kind == ItemType::Post.as_str() => Tallied::Post,
            Some(AttributeValue::S(kind)) if kind == ItemType::Like.as_str() => Tallied::Like,
            Some(AttributeValue::S(kind)) if kind == ItemType::Delta.as_str() => Tallied::Delta,
            _ => return,
        };
        let in_view = item.contains_key(keys::GSI1PK);
        let Ok(counted) = serde_dynamo::from_item::<_, CountedItem>(item) else {
            return;
        };
        let key = PostRef {
            topic: counted.topic,
            post: counted.post_id,
        };
        let tally = self.posts.entry(key).or_default();
        match kind {
            Tallied::Post => tally.stored = Some(counted.like_count.unwrap_or(0)),
            Tallied::Like => {
                tally.live += 1;
                tally.in_view += i64::from(in_view);
            }
            Tallied::Delta => tally.pending += counted.delta.unwrap_or(0),
        }
    }

    /// Combine the tallies of two scan segments.
    pub fn merge(mut self, other: Tallies) -> Tallies {
        self.items += other.items;
        for (key, theirs) in other.posts {
            let ours = self.posts.entry(key).or_default();
            ours.stored = ours.stored.or(theirs.stored);
            ours.pending += theirs.pending;
            ours.live += theirs.live;
            ours.in_view += theirs.in_view;
        }
        self
    }

    /// The drifting posts, in key order.
    pub fn drift(&self) -> Vec<Drift> {
        self.posts
            .iter()
            .filter_map(|(key, t)| {
                let counted = t.stored.unwrap_or(0) + t.pending;
                (counted != t.live || t.in_view != t.live).then(|| Drift {
                    topic: key.topic.to_string(),
                    post_id: key.post.to_string(),
                    stored: t.stored.unwrap_or(0),
                    pending: t.pending,
                    true_count: t.live,
                    difference: counted - t.live,
                    in_view: t.in_view,
                })
            })
            .collect()
    }
}

/// Items per scan page unless told otherwise. Pages of 1,000 projected items stay far below
/// DynamoDB's 1 MB page limit; on a local engine they scan faster than 1 MB
/// pages, and on DynamoDB they cost the same read units.
pub const DEFAULT_PAGE_SIZE: i32 = 1000;

/// What to scan.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// The table.
    pub table: String,
    /// Parallel scan segments.
    pub segments: i32,
    /// Only posts and likes of this topic.
    pub topic: Option<TopicSlug>,
    /// Items per page (`None`: DynamoDB's 1 MB pages).
    pub page_size: Option<i32>,
}

/// One page of one scan segment, resuming after `start`, with only the `attributes` named
/// (all when empty).
pub(crate) async fn scan_page(
    client: &Client,
    spec: &ScanSpec,
    segment: i32,
    start: Option<Item>,
    attributes: &[&str],
) -> Result<(Vec<Item>, Option<Item>), Error> {
    let mut request = client
        .scan()
        .table_name(&spec.table)
        .segment(segment)
        .total_segments(spec.segments)
        .set_limit(spec.page_size)
        .set_exclusive_start_key(start);
    if !attributes.is_empty() {
        let placeholders: Vec<String> = (0..attributes.len()).map(|i| format!("#a{i}")).collect();
        request = request.projection_expression(placeholders.join(", "));
        for (placeholder, name) in placeholders.into_iter().zip(attributes) {
            request = request.expression_attribute_names(placeholder, *name);
        }
    }
    if let Some(topic) = &spec.topic {
        request = request
            .filter_expression("#topic = :topic")
            .expression_attribute_names("#topic", attr::TOPIC)
            .expression_attribute_values(":topic", AttributeValue::S(topic.to_string()));
    }
    let out = request.send().await.map_err(|e| Error::dynamo("Scan", e))?;
    Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
}

/// Scan the table with `spec.segments` concurrent segments and fold every item.
/// `progress` is told how many items each page held.
pub async fn tally(
    client: &Client,
    spec: &ScanSpec,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Tallies, Error> {
    let segments = (0..spec.segments).map(|segment| async move {
        let mut tallies = Tallies::default();
        let mut start = None;
        loop {
            let (items, next) = scan_page(client, spec, segment, start, &TALLY_PROJECTION).await?;
            progress(items.len() as u64);
            for item in items {
                tallies.add(item);
            }
            start = next;
            if start.is_none() {
                return Ok::<_, Error>(tallies);
            }
        }
    });
    let parts = try_join_all(segments).await?;
    Ok(parts.into_iter().fold(Tallies::default(), Tallies::merge))
}

/// The drift report as an aligned text table.
pub(crate) fn drift_table(drift: &[Drift]) -> String {
    let mut out = format!(
        "{:<12} {:<28} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
        "topic", "post", "stored", "pending", "true", "difference", "in view"
    );
    for d in drift {
        out.push_str(&format!(
            "{:<12} {:<28} {:>8} {:>8} {:>8} {:>+10} {:>8}\n",
            d.topic, d.post_id, d.stored, d.pending, d.true_count, d.difference, d.in_view
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use contracts::items::{Entity, Like, Post};
    use contracts::keys::{Ksuid, LikeId, PostId};

    fn post(id: PostId, count: i64) -> Item {
        Post {
            topic: "t".parse().unwrap(),
            post_id: id,
            author_id: "a".parse().unwrap(),
            title: "p".into(),
            body: String::new(),
            created_at: Utc::now(),
            like_count: count,
            view_shards: 1,
        }
        .to_item()
    }

    fn like(user: &str, id: PostId, in_view: bool) -> Item {
        let like = Like {
            user_id: user.parse().unwrap(),
            post_id: id,
            topic: "t".parse().unwrap(),
            title: "p".into(),
            liked_at: Utc::now(),
            like_id: LikeId::generate(),
            counted_by: Some(contracts::items::CountedBy::Projector),
        };
        if in_view {
            like.to_item_in_view(0)
        } else {
            like.to_item()
        }
    }

    #[test]
    fn drift_is_stored_or_view_against_live_likes_across_segments() {
        let (ok, high, unstamped) = (PostId::generate(), PostId::generate(), PostId::generate());
        let mut a = Tallies::default();
        a.add(post(ok, 2));
        a.add(like("u1", high, true));
        a.add(like("u1", unstamped, true));
        let mut b = Tallies::default();
        b.add(like("u1", ok, true));
        b.add(like("u2", ok, true));
        b.add(post(high, 3));
        b.add(post(unstamped, 2));
        b.add(like("u2", unstamped, false));
        let drift = a.merge(b).drift();
        let ids: Vec<_> = drift.iter().map(|d| d.post_id.clone()).collect();
        let mut expected = vec![high.to_string(), unstamped.to_string()];
        expected.sort();
        let mut ids_sorted = ids.clone();
        ids_sorted.sort();
        assert_eq!(ids_sorted, expected);
        let high_drift = drift
            .iter()
            .find(|d| d.post_id == high.to_string())
            .unwrap();
        assert_eq!(
            (
                high_drift.stored,
                high_drift.true_count,
                high_drift.difference
            ),
            (3, 1, 2)
        );
        let view_drift = drift
            .iter()
            .find(|d| d.post_id == unstamped.to_string())
            .unwrap();
        assert_eq!((view_drift.difference, view_drift.in_view), (0, 1));
    }

    #[test]
    fn pending_deltas_count_with_the_stored_counter() {
        let (hot, behind) = (PostId::generate(), PostId::generate());
        let delta = |post: PostId, delta: i64| {
            contracts::items::Delta {
                topic: "t".parse().unwrap(),
                post_id: post,
                delta_id: Ksuid::generate(),
                delta,
            }
            .to_item()
        };
        let mut tallies = Tallies::default();
        for item in [post(hot, 1), like("u1", hot, true), like("u2", hot, true)] {
            tallies.add(item);
        }
        tallies.add(delta(hot, 2));
        tallies.add(delta(hot, -1));
        tallies.add(post(behind, 0));
        tallies.add(like("u1", behind, true));
        tallies.add(delta(behind, 2));
        let drift = tallies.drift();
        assert_eq!(drift.len(), 1, "1 stored + 1 pending = 2 live: no drift");
        assert_eq!(
            (drift[0].stored, drift[0].pending, drift[0].difference),
            (0, 2, 1)
        );
    }
}
