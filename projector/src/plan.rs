//! Pure planning: a batch of decoded stream records in, the writes that project it out.
//!
//! # What the writes are
//!
//! **Counting transactions** of up to 100 actions. Each post in one holds:
//! - `ADD likeCount :by` on the post item (by marks − uncounts), and
//! - a **mark** per like added: `SET countedBy = projector` on the like item, conditioned on
//!   the item existing *with the record's `likeId`* and not yet counted; and
//! - an **uncount** per counted like removed: a put of the tombstone `TOMB#<likeId>`,
//!   conditioned on it not existing (TTL removes it after three days).
//!
//! Cold posts share transactions (most have a like or two per batch, and one request per post
//! would make a batch's latency grow with the posts it touches); a hot post's changes fill
//! transactions of their own. A like whose removal is in the same batch gets no mark: its item
//! is gone, and the failed condition would cancel the whole transaction.
//!
//! # Why every like counts exactly once
//!
//! The like item is its own marker. A mark succeeds at most once per incarnation: after it,
//! `countedBy` exists; after an unlike, the item is gone; after a re-like, `likeId` differs. An
//! uncount succeeds at most once per incarnation because its tombstone exists afterwards. The
//! counter moves in the same transaction as the marks and tombstones that justify it, so a
//! re-delivered, duplicated, bisected or concurrently processed record finds its condition
//! false and changes nothing (apply drops it from the transaction and retries the rest). A
//! REMOVE takes one back only if its old image says the projector counted it, which is true
//! exactly when a mark succeeded before the delete. Order inside a batch does not matter:
//! every condition reads the item's current state, not the order of records.
//!
//! # Hot posts
//!
//! A post can be too hot for the one-write-per-like path in two ways, each with its module:
//! a *hot view* (its GSI1 partition cannot take its stamps) is stamped apart from counting
//! ([`crate::batch::view`]), and a *hot counter* (its counter item meets other invocations'
//! transactions) is counted in two hops, through deltas ([`crate::batch::hot`]). Planning
//! makes a post hot when one batch holds [`HOT_POST_LIKES`] of its likes (view) or more of
//! its changes than one transaction takes (counter), or when the instance saw DynamoDB
//! struggle with it lately ([`HotPosts`]).

use contracts::change::{Change, Decoded, IgnoreReason, LikeRef, Undecodable};
use contracts::items::Delta;
use contracts::keys::delta_partition_of;
use contracts::keys::{Ksuid, LikeId, PostId, TopicSlug, UserId};
use rustc_hash::{FxHashMap, FxHashSet};

/// DynamoDB's limit on actions in one transaction.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Likes and unlikes per counting transaction (one action is the counter).
pub const MAX_CHANGES_PER_TRANSACTION: usize = MAX_TRANSACTION_ACTIONS - 1;
/// Likes of one post in one batch from which its view is hot (marks and stamps split): a
/// second's worth of one GSI1 partition's writes, and a batch's writes land within much less.
pub const HOT_POST_LIKES: usize = 1000;

/// Posts that the projection saw DynamoDB struggle with recently (see [`crate::batch::view`] and
/// [`crate::batch::hot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotPosts {
    /// Their GSI1 partition throttled a counting transaction.
    pub views: FxHashSet<PostId>,
    /// Their counter item conflicted or throttled.
    pub counters: FxHashSet<PostId>,
}

/// A post's key parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostRef {
    /// The post's topic.
    pub topic: TopicSlug,
    /// The post.
    pub post: PostId,
}

/// Count one like incarnation. `records` are the batch positions it stands for (a record
/// delivered twice in one batch is one mark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The batch positions it settles.
    pub records: Vec<usize>,
    /// The like incarnation.
    pub like: LikeRef,
    /// Also set the GSI1 keys in the same write (cold posts).
    pub stamp: bool,
}

impl Mark {
    /// Its stamp as a write of its own.
    pub fn as_stamp(&self) -> Stamp {
        Stamp {
            records: self.records.clone(),
            like: self.like.clone(),
        }
    }
}

/// Take back the count of one like incarnation that the projector had counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncount {
    /// The batch positions it settles.
    pub records: Vec<usize>,
    /// The like incarnation, counted before.
    pub like: LikeRef,
}

/// Add one pending delta to its post's counter (and delete it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// The batch positions it settles.
    pub records: Vec<usize>,
    /// The delta to fold.
    pub delta: Delta,
}

/// Set a like's GSI1 keys (hot views, after counting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The batch positions it settles.
    pub records: Vec<usize>,
    /// The like incarnation.
    pub like: LikeRef,
}

/// One post's part of a counting transaction: its counter (or, for a hot counter, a delta)
/// and the marks, tombstones and folded deltas that justify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCount {
    /// The post.
    pub post: PostRef,
    /// Likes to count.
    pub marks: Vec<Mark>,
    /// Counted likes to take back.
    pub uncounts: Vec<Uncount>,
    /// Pending deltas added to the counter here (never with `via_delta`).
    pub folds: Vec<Fold>,
    /// Write the move as a new delta item, not to the counter (see [`crate::batch::hot`]).
    pub via_delta: bool,
}

impl PostCount {
    fn new(post: &PostRef) -> Self {
        Self {
            post: post.clone(),
            marks: Vec::new(),
            uncounts: Vec::new(),
            folds: Vec::new(),
            via_delta: false,
        }
    }

    /// What the counter (or the delta) moves by if every condition holds.
    pub fn moves_by(&self) -> i64 {
        let folded: i64 = self.folds.iter().map(|f| f.delta.delta).sum();
        self.marks.len() as i64 - self.uncounts.len() as i64 + folded
    }

    /// Actions it takes, counter (or delta) included.
    pub fn actions(&self) -> usize {
        1 + self.marks.len() + self.uncounts.len() + self.folds.len()
    }

    /// Whether anything is left to write.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty() && self.uncounts.is_empty() && self.folds.is_empty()
    }

    /// The batch positions behind each of its changes: marks, uncounts, folds.
    pub fn records(&self) -> impl Iterator<Item = &[usize]> {
        let marks = self.marks.iter().map(|m| m.records.as_slice());
        let uncounts = self.uncounts.iter().map(|u| u.records.as_slice());
        marks
            .chain(uncounts)
            .chain(self.folds.iter().map(|f| f.records.as_slice()))
    }

    /// Take the stamps out of the marks: they become separate writes, after counting (see
    /// [`crate::batch::view`]).
    pub fn split_stamps(&mut self) -> Vec<Stamp> {
        self.marks
            .iter_mut()
            .filter(|m| m.stamp)
            .map(|mark| {
                mark.stamp = false;
                mark.as_stamp()
            })
            .collect()
    }
}

/// One transaction: the counts of one or more posts (each post at most once).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountTransaction {
    /// Each post at most once.
    pub posts: Vec<PostCount>,
}

impl CountTransaction {
    /// Actions in the transaction.
    pub fn actions(&self) -> usize {
        self.posts.iter().map(PostCount::actions).sum()
    }
}

/// Everything a batch asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Counting transactions.
    pub transactions: Vec<CountTransaction>,
    /// Stamps to write after counting (hot views, deferred stamps).
    pub stamps: Vec<Stamp>,
    /// Positions of records that need nothing.
    pub ignored: Vec<usize>,
    /// Records that could not be decoded: to be quarantined.
    pub undecodable: Vec<(usize, Undecodable)>,
}

/// Changes of one post, in first-seen order, duplicates merged.
#[derive(Default)]
struct PostChanges {
    marks: Merged<LikeId, Mark>,
    uncounts: Merged<LikeId, Uncount>,
    folds: Merged<Ksuid, Fold>,
}

/// What a planned write carries: the batch positions it settles.
trait Settles {
    fn records(&mut self) -> &mut Vec<usize>;
}

macro_rules! settles {
    ($($entry:ty),*) => {
        $(impl Settles for $entry {
            fn records(&mut self) -> &mut Vec<usize> {
                &mut self.records
            }
        })*
    };
}
settles!(Mark, Uncount, Fold, Stamp);

/// Writes of one kind in first-seen order, one per key (a like incarnation, a delta): a change
/// delivered again in the batch joins the write it already has.
struct Merged<K, T> {
    entries: Vec<T>,
    index: FxHashMap<K, usize>,
}

impl<K, T> Default for Merged<K, T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<K: Eq + std::hash::Hash, T: Settles> Merged<K, T> {
    /// The change at `position`, keyed `key`: joins its write, or makes one with `new`.
    fn add(&mut self, key: K, position: usize, new: impl FnOnce(Vec<usize>) -> T) {
        match self.index.get(&key) {
            Some(&i) => self.entries[i].records().push(position),
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push(new(vec![position]));
            }
        }
    }
}

/// Plan the writes for a batch. Pure and deterministic.
pub fn plan(batch: &[Result<Decoded, Undecodable>]) -> Plan {
    plan_with_hot(batch, &HotPosts::default())
}

/// [`plan`], knowing the posts DynamoDB struggled with recently: hot whatever their number of
/// likes in this batch.
pub(crate) fn plan_with_hot(batch: &[Result<Decoded, Undecodable>], hot_posts: &HotPosts) -> Plan {
    let changes: Vec<Option<&Change>> = batch
        .iter()
        .map(|record| record.as_ref().ok().map(|d| &d.change))
        .collect();
    let mut plan = plan_positions(&changes, hot_posts);
    plan.undecodable = batch
        .iter()
        .enumerate()
        .filter_map(|(position, record)| Some((position, record.as_ref().err()?.clone())))
        .collect();
    plan
}

/// Plan typed changes that come from no stream record (`rebuild`'s repairs): the change at
/// index `i` is position `i` of the plan.
pub(crate) fn plan_changes(changes: &[Change]) -> Plan {
    let changes: Vec<Option<&Change>> = changes.iter().map(Some).collect();
    plan_positions(&changes, &HotPosts::default())
}

/// The plan of the changes at their positions (`None`: no change there, e.g. an undecodable
/// record).
fn plan_positions(changes: &[Option<&Change>], hot_posts: &HotPosts) -> Plan {
    let mut plan = Plan::default();
    // Posts in order of first appearance keep the plan deterministic; the index borrows its
    // keys from the batch. (Fx hashing: the keys are ids, and planning is on every record's path.)
    let mut posts: Vec<(PostRef, PostChanges)> = Vec::new();
    let mut post_index: FxHashMap<(&TopicSlug, PostId), usize> = FxHashMap::default();
    // Incarnations deleted by a record of this batch: their item is gone, so a mark of one
    // could only fail (and cancel the transaction it is in, billed and retried for nothing).
    let gone: FxHashSet<LikeId> = changes
        .iter()
        .flatten()
        .filter_map(|change| match change {
            Change::LikeRemoved(like) => Some(like.like_id),
            Change::Ignored(IgnoreReason::RemovedUncounted(id)) => Some(*id),
            _ => None,
        })
        .collect();
    // Stamps deferred by an earlier delivery, one per like however many records ask for it.
    let mut due: Merged<LikeId, Stamp> = Merged::default();
    for (position, change) in changes.iter().enumerate() {
        let Some(change) = change else { continue };
        let (topic, post) = match change {
            Change::LikeAdded(like) | Change::StampDue(like) if gone.contains(&like.like_id) => {
                plan.ignored.push(position);
                continue;
            }
            Change::StampDue(like) => {
                due.add(like.like_id, position, |records| Stamp {
                    records,
                    like: like.clone(),
                });
                continue;
            }
            Change::LikeAdded(like) | Change::LikeRemoved(like) => (&like.topic, like.post),
            Change::DeltaAdded(delta) => (&delta.topic, delta.post_id),
            Change::Ignored(_) => {
                plan.ignored.push(position);
                continue;
            }
        };
        let index = *post_index.entry((topic, post)).or_insert_with(|| {
            let post = PostRef {
                topic: topic.clone(),
                post,
            };
            posts.push((post, PostChanges::default()));
            posts.len() - 1
        });
        let changes = &mut posts[index].1;
        match change {
            Change::DeltaAdded(delta) => {
                changes.folds.add(delta.delta_id, position, |records| Fold {
                    records,
                    delta: delta.clone(),
                })
            }
            Change::LikeAdded(like) => changes.marks.add(like.like_id, position, |records| Mark {
                records,
                like: like.clone(),
                stamp: true,
            }),
            Change::LikeRemoved(like) => {
                changes
                    .uncounts
                    .add(like.like_id, position, |records| Uncount {
                        records,
                        like: like.clone(),
                    })
            }
            Change::Ignored(_) | Change::StampDue(_) => unreachable!("planned above"),
        }
    }
    plan.stamps = due.entries;
    let mut cold: Vec<PostCount> = Vec::new();
    for (post, changes) in posts {
        let (marks, uncounts) = (changes.marks.entries, changes.uncounts.entries);
        let hot_view = marks.len() >= HOT_POST_LIKES || hot_posts.views.contains(&post.post);
        let hot_counter = marks.len() + uncounts.len() > MAX_CHANGES_PER_TRANSACTION
            || hot_posts.counters.contains(&post.post);
        let folds = fold_chunks(&post, changes.folds.entries);
        let mut counts = chunk(&post, marks, uncounts);
        for count in &mut counts {
            count.via_delta = hot_counter;
            if hot_view {
                plan.stamps.extend(count.split_stamps());
            }
        }
        // Folds take transactions of their own: they are paced (see `apply`).
        let own = |count| CountTransaction { posts: vec![count] };
        plan.transactions.extend(folds.into_iter().map(own));
        if hot_view || hot_counter {
            plan.transactions.extend(counts.into_iter().map(own));
        } else {
            cold.extend(counts);
        }
    }
    plan.transactions.extend(pack(cold));
    plan
}

/// A post's pending deltas in folds of at most [`MAX_CHANGES_PER_TRANSACTION`], each of one
/// delta partition (which decides its turn on the counter).
fn fold_chunks(post: &PostRef, mut folds: Vec<Fold>) -> Vec<PostCount> {
    folds.sort_by_key(|f| delta_partition_of(&f.delta.delta_id));
    let mut counts: Vec<PostCount> = Vec::new();
    for fold in folds {
        let k = delta_partition_of(&fold.delta.delta_id);
        match counts.last_mut() {
            Some(count)
                if count.actions() < MAX_TRANSACTION_ACTIONS
                    && delta_partition_of(&count.folds[0].delta.delta_id) == k =>
            {
                count.folds.push(fold)
            }
            _ => counts.push(PostCount {
                folds: vec![fold],
                ..PostCount::new(post)
            }),
        }
    }
    counts
}

/// Transactions in lanes (indexes into `transactions`): transactions that share a post run one
/// after another in one lane, since two at once would both update its counter item and
/// DynamoDB would cancel one as a conflict; lanes run side by side. Counts through a delta
/// write no counter, but keep to their post's lane too: a burst of one post then takes one
/// lane of a batch's concurrency, not all of it.
pub(crate) fn lanes(transactions: &[CountTransaction]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: FxHashMap<&PostRef, usize> = FxHashMap::default();
    for (i, transaction) in transactions.iter().enumerate() {
        let mut joined: Vec<usize> = transaction
            .posts
            .iter()
            .filter_map(|p| lane_of.get(&p.post).copied())
            .collect();
        joined.sort_unstable();
        joined.dedup();
        let lane = match joined.split_first() {
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
            Some((&first, others)) => {
                // A transaction bridging lanes merges them (rare: only a post with more
                // changes than one transaction holds is in several).
                for &other in others {
                    let moved = std::mem::take(&mut lanes[other]);
                    lanes[first].extend(moved);
                    for lane in lane_of.values_mut() {
                        if *lane == other {
                            *lane = first;
                        }
                    }
                }
                first
            }
        };
        lanes[lane].push(i);
        for p in &transaction.posts {
            lane_of.insert(&p.post, lane);
        }
    }
    lanes.retain(|lane| !lane.is_empty());
    for lane in &mut lanes {
        lane.sort_unstable();
    }
    lanes
}

/// Pack posts' counts into as few transactions as fit (first fit, in order), never one post
/// twice in a transaction: it would update its counter item twice.
fn pack(counts: Vec<PostCount>) -> Vec<CountTransaction> {
    let mut transactions: Vec<CountTransaction> = Vec::new();
    for count in counts {
        let fits = |t: &CountTransaction| {
            t.actions() + count.actions() <= MAX_TRANSACTION_ACTIONS
                && t.posts.iter().all(|p| p.post != count.post)
        };
        match transactions.iter_mut().find(|t| fits(t)) {
            Some(transaction) => transaction.posts.push(count),
            None => transactions.push(CountTransaction { posts: vec![count] }),
        }
    }
    transactions
}

/// Split one post's changes into counts of at most [`MAX_CHANGES_PER_TRANSACTION`] changes,
/// never with two marks of one like item (a user's successive incarnations) in one.
fn chunk(post: &PostRef, marks: Vec<Mark>, uncounts: Vec<Uncount>) -> Vec<PostCount> {
    let mut chunks: Vec<(PostCount, FxHashSet<UserId>)> = Vec::new();
    for mark in marks {
        let i = slot(&mut chunks, post, Some(&mark.like.user));
        chunks[i].1.insert(mark.like.user.clone());
        chunks[i].0.marks.push(mark);
    }
    for uncount in uncounts {
        let i = slot(&mut chunks, post, None);
        chunks[i].0.uncounts.push(uncount);
    }
    chunks.into_iter().map(|(count, _)| count).collect()
}

/// The first count with room (and without a mark of `user`'s like item), or a new one.
fn slot(
    chunks: &mut Vec<(PostCount, FxHashSet<UserId>)>,
    post: &PostRef,
    user: Option<&UserId>,
) -> usize {
    let fits = |(count, users): &(PostCount, FxHashSet<UserId>)| {
        count.actions() < MAX_TRANSACTION_ACTIONS && user.is_none_or(|u| !users.contains(u))
    };
    chunks.iter().position(fits).unwrap_or_else(|| {
        chunks.push((PostCount::new(post), FxHashSet::default()));
        chunks.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use contracts::keys::Ksuid;
    use std::collections::HashSet;

    fn like(user: usize, post: PostId) -> LikeRef {
        LikeRef {
            user: format!("user-{user}").parse().unwrap(),
            post,
            topic: "t".parse().unwrap(),
            like_id: LikeId::generate(),
        }
    }

    fn record(change: Change) -> Result<Decoded, Undecodable> {
        Ok(Decoded {
            sequence: "1".into(),
            created: Utc::now(),
            change,
        })
    }

    #[test]
    fn transactions_sharing_a_post_share_a_lane() {
        let post = |n: u64| PostRef {
            topic: "t".parse().unwrap(),
            post: PostId::at_millis(1_700_000_000_000 + n as i64),
        };
        let (a, b, c, d) = (post(1), post(2), post(3), post(4));
        let transaction = |posts: &[&PostRef]| CountTransaction {
            posts: posts.iter().map(|p| PostCount::new(p)).collect(),
        };
        let transactions = vec![
            transaction(&[&a]),
            transaction(&[&b]),
            transaction(&[&a]),
            transaction(&[&c]),
            transaction(&[&b, &c]),
            transaction(&[&d]),
        ];
        assert_eq!(
            lanes(&transactions),
            vec![vec![0, 2], vec![1, 3, 4], vec![5]]
        );
    }

    /// Every position is accounted for once, and every transaction is one DynamoDB accepts.
    fn check_shape(batch_len: usize, plan: &Plan) {
        let mut seen: Vec<usize> = plan.ignored.clone();
        seen.extend(plan.undecodable.iter().map(|(i, _)| *i));
        for t in &plan.transactions {
            assert!(t.actions() <= MAX_TRANSACTION_ACTIONS);
            let posts: HashSet<_> = t.posts.iter().map(|p| &p.post).collect();
            assert_eq!(posts.len(), t.posts.len(), "one counter update per post");
            for p in &t.posts {
                let users: HashSet<_> = p.marks.iter().map(|m| &m.like.user).collect();
                assert_eq!(users.len(), p.marks.len(), "one mark per like item");
                seen.extend(p.marks.iter().flat_map(|m| m.records.iter().copied()));
                seen.extend(p.uncounts.iter().flat_map(|u| u.records.iter().copied()));
                seen.extend(p.folds.iter().flat_map(|f| f.records.iter().copied()));
                assert!(
                    !p.via_delta || p.folds.is_empty(),
                    "a fold writes the counter"
                );
            }
        }
        // Stamps split from marks share their records; a stamp deferred earlier has its own.
        let marked: HashSet<usize> = seen.iter().copied().collect();
        for stamp in &plan.stamps {
            seen.extend(stamp.records.iter().filter(|r| !marked.contains(r)));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..batch_len).collect::<Vec<_>>());
    }

    #[test]
    fn stamps_put_off_come_back_once_each_and_not_for_likes_gone() {
        let post = PostId::generate();
        let (due, gone) = (like(1, post), like(2, post));
        let batch = vec![
            record(Change::StampDue(due.clone())),
            record(Change::StampDue(gone.clone())),
            record(Change::StampDue(due.clone())),
            record(Change::LikeRemoved(gone)),
        ];
        let plan = plan(&batch);
        check_shape(batch.len(), &plan);
        assert_eq!(plan.stamps.len(), 1);
        assert_eq!(plan.stamps[0].like, due);
        assert_eq!(plan.stamps[0].records, [0, 2], "one stamp for both records");
        assert_eq!(plan.ignored, [1], "its like is gone in this batch");
    }

    #[test]
    fn a_burst_of_1000_likes_is_counted_through_11_deltas() {
        let hot = PostId::generate();
        let batch: Vec<_> = (0..1000)
            .map(|u| record(Change::LikeAdded(like(u, hot))))
            .collect();
        let plan = plan(&batch);
        check_shape(batch.len(), &plan);
        let touching: Vec<_> = plan
            .transactions
            .iter()
            .flat_map(|t| &t.posts)
            .filter(|p| p.post.post == hot)
            .collect();
        assert!(
            plan.transactions.iter().all(|t| t.posts.len() == 1),
            "a hot post's transactions are its own"
        );
        assert!(touching.len() <= 11, "{} transactions", touching.len());
        assert!(
            touching.iter().all(|t| t.via_delta),
            "more changes than one transaction takes: the counter is not written by this batch"
        );
        assert_eq!(touching.iter().map(|t| t.moves_by()).sum::<i64>(), 1000);
        assert!(
            touching.iter().flat_map(|t| &t.marks).all(|m| !m.stamp),
            "hot: marks leave GSI1 alone"
        );
        assert_eq!(
            plan.stamps.len(),
            1000,
            "hot: every like stamped after counting"
        );
    }

    #[test]
    fn a_post_whose_view_throttled_is_hot_with_few_likes() {
        let (hot, cold) = (PostId::generate(), PostId::generate());
        let batch = vec![
            record(Change::LikeAdded(like(1, hot))),
            record(Change::LikeAdded(like(2, cold))),
        ];
        let hot_views = HotPosts {
            views: FxHashSet::from_iter([hot]),
            ..HotPosts::default()
        };
        let plan = plan_with_hot(&batch, &hot_views);
        check_shape(batch.len(), &plan);
        let marks = |post: PostId| -> Vec<&Mark> {
            plan.transactions
                .iter()
                .flat_map(|t| &t.posts)
                .filter(|p| p.post.post == post)
                .flat_map(|p| &p.marks)
                .collect()
        };
        assert!(
            marks(hot).iter().all(|m| !m.stamp),
            "counting leaves its view alone"
        );
        assert!(marks(cold).iter().all(|m| m.stamp));
        assert_eq!(plan.stamps.len(), 1);
        assert_eq!(plan.stamps[0].like.post, hot, "stamped after counting");
    }

    fn new_delta(post: PostId, delta: i64) -> Delta {
        Delta {
            topic: "t".parse().unwrap(),
            post_id: post,
            delta_id: Ksuid::generate(),
            delta,
        }
    }

    #[test]
    fn deltas_are_folded_per_post_apart_from_its_likes() {
        let (hot, other) = (PostId::generate(), PostId::generate());
        let mut batch: Vec<_> = (0..150)
            .map(|i| record(Change::DeltaAdded(new_delta(hot, i))))
            .collect();
        batch.push(batch[3].clone());
        batch.push(record(Change::DeltaAdded(new_delta(other, 2))));
        batch.push(record(Change::LikeAdded(like(1, hot))));
        let counters = HotPosts {
            counters: FxHashSet::from_iter([hot]),
            ..HotPosts::default()
        };
        let plan = plan_with_hot(&batch, &counters);
        check_shape(batch.len(), &plan);
        let folds: Vec<&PostCount> = plan
            .transactions
            .iter()
            .flat_map(|t| &t.posts)
            .filter(|p| !p.folds.is_empty())
            .collect();
        let partitions = |count: &PostCount| -> HashSet<u8> {
            count
                .folds
                .iter()
                .map(|f| delta_partition_of(&f.delta.delta_id))
                .collect()
        };
        assert!(
            folds.iter().all(|f| partitions(f).len() == 1),
            "a fold takes one delta partition's turn"
        );
        let hot_partitions: HashSet<u8> = folds
            .iter()
            .filter(|f| f.post.post == hot)
            .flat_map(|f| partitions(f))
            .collect();
        assert_eq!(
            folds.iter().filter(|f| f.post.post == hot).count(),
            hot_partitions.len(),
            "150 deltas over four partitions: one fold each"
        );
        assert!(folds.iter().all(|f| !f.via_delta && f.marks.is_empty()));
        assert!(folds.iter().all(|f| f.actions() <= MAX_TRANSACTION_ACTIONS));
        let folded_for = |post: PostId| -> i64 {
            folds
                .iter()
                .filter(|f| f.post.post == post)
                .map(|f| f.moves_by())
                .sum()
        };
        assert_eq!(folded_for(hot), (0..150).sum::<i64>(), "a duplicate merges");
        assert_eq!(folded_for(other), 2);
        let liked: Vec<&PostCount> = plan
            .transactions
            .iter()
            .flat_map(|t| &t.posts)
            .filter(|p| !p.marks.is_empty())
            .collect();
        assert_eq!(liked.len(), 1);
        assert!(
            liked[0].via_delta,
            "a hot counter's like is counted through a delta"
        );
    }

    #[test]
    fn cold_posts_mark_and_stamp_in_one_write_and_coalesce_per_post() {
        let (a, b) = (PostId::generate(), PostId::generate());
        let removed = like(9, a);
        let batch = vec![
            record(Change::LikeAdded(like(1, a))),
            record(Change::LikeAdded(like(2, b))),
            record(Change::Ignored(IgnoreReason::Modified)),
            record(Change::LikeAdded(like(3, a))),
            record(Change::LikeRemoved(removed.clone())),
            Err(Undecodable {
                sequence: "9".into(),
                event_id: "e9".into(),
                reason: "bad".into(),
            }),
            record(Change::LikeRemoved(removed)),
        ];
        let plan = plan(&batch);
        check_shape(batch.len(), &plan);
        assert_eq!(plan.transactions.len(), 1, "cold posts share a transaction");
        let posts = &plan.transactions[0].posts;
        assert_eq!(posts.len(), 2, "one count per post");
        assert_eq!(posts[0].moves_by(), 1, "two likes, one unlike of post a");
        assert_eq!(posts[0].uncounts[0].records, [4, 6], "duplicates merge");
        assert!(posts.iter().flat_map(|p| &p.marks).all(|m| m.stamp));
        assert!(plan.stamps.is_empty());
        assert_eq!(plan.ignored, [2]);
        assert_eq!(plan.undecodable[0].0, 5);
    }

    #[test]
    fn successive_incarnations_of_one_like_go_to_different_transactions() {
        let post = PostId::generate();
        let first = like(1, post);
        let second = LikeRef {
            like_id: LikeId::generate(),
            ..first.clone()
        };
        let batch = vec![
            record(Change::LikeAdded(first)),
            record(Change::LikeAdded(second)),
        ];
        let plan = plan(&batch);
        check_shape(2, &plan);
        assert_eq!(plan.transactions.len(), 2);
    }

    #[test]
    fn a_like_removed_in_the_same_batch_is_not_marked() {
        let post = PostId::generate();
        let (uncounted, counted) = (like(1, post), like(2, post));
        let batch = vec![
            record(Change::LikeAdded(uncounted.clone())),
            record(Change::LikeAdded(counted.clone())),
            record(Change::LikeAdded(like(3, post))),
            record(Change::Ignored(IgnoreReason::RemovedUncounted(
                uncounted.like_id,
            ))),
            record(Change::LikeRemoved(counted)),
        ];
        let plan = plan(&batch);
        check_shape(batch.len(), &plan);
        let count = &plan.transactions[0].posts[0];
        assert_eq!(count.marks.len(), 1, "only the like still there is marked");
        assert_eq!(count.uncounts.len(), 1);
        assert_eq!(plan.ignored, [0, 1, 3]);
    }

    #[test]
    fn cold_posts_fill_transactions_up_to_the_action_limit() {
        let posts: Vec<_> = (0..120).map(|_| PostId::generate()).collect();
        let batch: Vec<_> = (0..360)
            .map(|i| record(Change::LikeAdded(like(i, posts[i % 120]))))
            .collect();
        let plan = plan(&batch);
        check_shape(batch.len(), &plan);
        // 120 posts × (counter + 3 marks) = 480 actions: 5 transactions of at most 100.
        assert_eq!(plan.transactions.len(), 5);
        let counted: i64 = plan
            .transactions
            .iter()
            .flat_map(|t| &t.posts)
            .map(|p| p.moves_by())
            .sum();
        assert_eq!(counted, 360);
    }

    #[test]
    fn planning_is_deterministic() {
        let posts: Vec<_> = (0..5).map(|_| PostId::generate()).collect();
        let batch: Vec<_> = (0..300)
            .map(|i| record(Change::LikeAdded(like(i, posts[i % 5]))))
            .collect();
        assert_eq!(plan(&batch), plan(&batch));
    }
}
