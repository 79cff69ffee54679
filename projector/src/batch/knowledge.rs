//! What an instance knows across batches: the posts DynamoDB struggled with lately (planned
//! hot), each hot counter's last fold slot per delta partition, and posts' view shard counts.
//!
//! A batch starts from a copy of what is known about its own posts and hands back what it
//! learned; the executor merges it into the instance's copy (a Lambda instance keeps it while warm; the local poller shares it between
//! its shards). Merging keeps the later time, the later slot and the larger count, so batches
//! running side by side lose nothing of each other's, and every fact is one that only grows
//! (a view's shard count) or one that expires (hot for [`HOT_MEMORY`]).

use contracts::keys::{DELTA_PARTITIONS, PostId};
use rustc_hash::{FxHashMap, FxHashSet};

use super::hot::slot_of;
use crate::plan::HotPosts;

/// How long a post stays hot after DynamoDB struggled with its view or its counter.
pub(crate) const HOT_MEMORY_MS: i64 = 300_000;

/// How long a post stays hot after DynamoDB struggled with its view or its counter.
pub const HOT_MEMORY: std::time::Duration = std::time::Duration::from_millis(HOT_MEMORY_MS as u64);

/// An instance's memory of posts (times are epoch milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// When each post's view last throttled a counting transaction.
    views: FxHashMap<PostId, i64>,
    /// When each post's counter last conflicted, throttled or was found hot.
    counters: FxHashMap<PostId, i64>,
    /// The slot of each delta partition's last fold.
    folded: FxHashMap<(PostId, u8), u64>,
    /// Posts' view shards as this instance knows them.
    view_shards: FxHashMap<PostId, ViewShards>,
}

/// A post's view shards as an instance knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViewShards {
    /// Recorded on the post (read back from DynamoDB): stamping into any shard below it is
    /// safe, since the count only grows.
    pub(crate) count: u32,
    /// When this instance last asked to grow it.
    pub(crate) grown_ms: Option<i64>,
}

impl Knowledge {
    /// Forget what is out of date at `now_ms`: hot posts not seen struggling for
    /// [`HOT_MEMORY`], fold slots two rounds old.
    pub fn expire(&mut self, now_ms: i64) {
        self.views.retain(|_, at| still_hot(*at, now_ms));
        self.counters.retain(|_, at| still_hot(*at, now_ms));
        self.folded.retain(|_, last| recent_fold(*last, now_ms));
    }

    /// What is known about `posts` and not out of date at `now_ms`: a batch's copy.
    pub(crate) fn about(&self, posts: &FxHashSet<PostId>, now_ms: i64) -> Knowledge {
        let hot = |seen: &FxHashMap<PostId, i64>| {
            posts
                .iter()
                .filter_map(|post| Some((*post, *seen.get(post)?)))
                .filter(|(_, at)| still_hot(*at, now_ms))
                .collect()
        };
        Knowledge {
            views: hot(&self.views),
            counters: hot(&self.counters),
            folded: self
                .folded
                .iter()
                .filter(|((post, _), last)| posts.contains(post) && recent_fold(**last, now_ms))
                .map(|(key, last)| (*key, *last))
                .collect(),
            view_shards: posts
                .iter()
                .filter_map(|post| Some((*post, *self.view_shards.get(post)?)))
                .collect(),
        }
    }

    /// The posts to plan hot (see [`super::view`] and [`super::hot`]).
    pub(crate) fn hot_posts(&self) -> HotPosts {
        HotPosts {
            views: self.views.keys().copied().collect(),
            counters: self.counters.keys().copied().collect(),
        }
    }

    pub(crate) fn view_throttled(&mut self, post: PostId, now_ms: i64) {
        self.views.insert(post, now_ms);
    }

    pub(crate) fn counter_contended(&mut self, post: PostId, now_ms: i64) {
        self.counters.insert(post, now_ms);
    }

    /// The slot of the last fold of `post`'s delta partition `k`.
    pub(crate) fn last_fold(&self, post: PostId, k: u8) -> Option<u64> {
        self.folded.get(&(post, k)).copied()
    }

    pub(crate) fn folding(&mut self, post: PostId, k: u8, slot: u64) {
        self.folded.insert((post, k), slot);
    }

    /// What is known of `post`'s view shards, if anything.
    pub(crate) fn view_shards(&self, post: PostId) -> Option<ViewShards> {
        self.view_shards.get(&post).copied()
    }

    /// The view shards `post` is known to have (1 when nothing is known: always safe).
    pub(crate) fn view_shard_count(&self, post: PostId) -> u32 {
        self.view_shards(post).map_or(1, |known| known.count)
    }

    /// `post` is recorded with at least `count` view shards.
    pub(crate) fn learn_view_shards(&mut self, post: PostId, count: u32) {
        let entry = self.view_shards.entry(post).or_insert(ViewShards {
            count,
            grown_ms: None,
        });
        entry.count = entry.count.max(count);
    }

    /// This instance asks, at `now_ms`, to grow `post`'s view shards.
    pub(crate) fn growing(&mut self, post: PostId, now_ms: i64) {
        self.view_shards
            .entry(post)
            .or_insert(ViewShards {
                count: 1,
                grown_ms: None,
            })
            .grown_ms = Some(now_ms);
    }

    /// Take in what another copy learned: the later time, slot and the larger count win.
    pub fn merge(&mut self, other: Knowledge) {
        let later = |mine: &mut i64, theirs: i64| *mine = (*mine).max(theirs);
        for (post, at) in other.views {
            later(self.views.entry(post).or_insert(at), at);
        }
        for (post, at) in other.counters {
            later(self.counters.entry(post).or_insert(at), at);
        }
        for (key, slot) in other.folded {
            let mine = self.folded.entry(key).or_insert(slot);
            *mine = (*mine).max(slot);
        }
        for (post, theirs) in other.view_shards {
            let mine = self.view_shards.entry(post).or_insert(theirs);
            mine.count = mine.count.max(theirs.count);
            mine.grown_ms = mine.grown_ms.max(theirs.grown_ms);
        }
    }
}

/// Whether a post seen struggling at `at` is still hot at `now_ms`.
fn still_hot(at: i64, now_ms: i64) -> bool {
    now_ms - at < HOT_MEMORY_MS
}

/// Whether a fold in slot `last` still matters at `now_ms` (within two rounds of slots).
fn recent_fold(last: u64, now_ms: i64) -> bool {
    last + 2 * u64::from(DELTA_PARTITIONS) > slot_of(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_later_and_the_larger() {
        let (a, b) = (PostId::generate(), PostId::generate());
        let mut mine = Knowledge::default();
        mine.view_throttled(a, 10);
        mine.learn_view_shards(a, 4);
        mine.folding(a, 1, 7);
        let mut theirs = Knowledge::default();
        theirs.view_throttled(a, 5);
        theirs.counter_contended(b, 3);
        theirs.learn_view_shards(a, 2);
        theirs.growing(b, 9);
        theirs.folding(a, 1, 11);
        mine.merge(theirs);
        assert_eq!(mine.views[&a], 10);
        assert_eq!(mine.counters[&b], 3);
        assert_eq!(mine.view_shard_count(a), 4, "a count only grows");
        assert_eq!(mine.view_shards(b).unwrap().grown_ms, Some(9));
        assert_eq!(mine.last_fold(a, 1), Some(11));
    }

    #[test]
    fn hot_posts_expire_after_the_memory() {
        let post = PostId::generate();
        let mut knowledge = Knowledge::default();
        knowledge.counter_contended(post, 1_000);
        knowledge.folding(post, 0, slot_of(1_000));
        knowledge.expire(1_000 + HOT_MEMORY_MS - 1);
        assert!(knowledge.hot_posts().counters.contains(&post));
        assert_eq!(knowledge.last_fold(post, 0), None, "two rounds old");
        knowledge.expire(1_000 + HOT_MEMORY_MS);
        assert!(knowledge.hot_posts().counters.is_empty());
    }

    #[test]
    fn a_batch_copies_only_what_is_known_and_current_about_its_posts() {
        let (mine, other) = (PostId::generate(), PostId::generate());
        let mut knowledge = Knowledge::default();
        for post in [mine, other] {
            knowledge.view_throttled(post, 1_000);
            knowledge.learn_view_shards(post, 4);
            knowledge.folding(post, 1, slot_of(1_000));
        }
        let posts = FxHashSet::from_iter([mine]);
        let copy = knowledge.about(&posts, 1_000);
        assert_eq!(copy.hot_posts().views, posts);
        assert_eq!(copy.view_shard_count(mine), 4);
        assert_eq!(copy.view_shards(other), None, "not the batch's post");
        assert_eq!(copy.last_fold(mine, 1), Some(slot_of(1_000)));
        let late = knowledge.about(&posts, 1_000 + HOT_MEMORY_MS);
        assert!(late.hot_posts().views.is_empty(), "hot no longer");
        assert_eq!(late.last_fold(mine, 1), None, "two rounds old");
        assert_eq!(late.view_shard_count(mine), 4, "a count never expires");
    }
}
