//! The likers view: why a post's view goes hot, how its likes are stamped then, and why no
//! stamped like is missed (the writes are `contracts::counting::{count_like, stamp_like,
//! grow_view, defer_stamp}`).
//!
//!
//! A mark also stamps the like's GSI1 keys in the same write: one write per like, the cheapest
//! way. But every stamp of a post lands on that post's GSI1 partition (about 1,000 writes/s),
//! and a GSI write that throttles throttles the base write feeding it, here the whole counting
//! transaction. So a post whose view cannot keep up has a *hot view*: its marks leave GSI1
//! alone, and its likes are stamped by separate idempotent updates after counting (one more
//! write per like), only for marks whose transaction committed. A view is hot when it throttled
//! a counting transaction recently (the count notices; only DynamoDB sees a post's total rate over
//! all shards) or when one batch holds [`HOT_POST_LIKES`](crate::plan::HOT_POST_LIKES) of its likes.
//!
//! A separate stamp goes to one of the post's *view shards* (GSI1 partitions `POST#<id>` and
//! `POST#<id>#<k>`, picked by the liker's id), so the view takes as many thousand stamps a
//! second as it has shards. The count is recorded on the post (`viewShards`) and only ever
//! grown: when a stamp throttles, the instance doubles the count it knows on the post (a
//! conditional update that also tells it a larger count grown by another instance) and stamps
//! into the new shards only after that update, so a reader that reads every shard below the
//! post's count misses no stamped like. A stamp applies only to a like in no shard yet, so a
//! like never moves between shards. Stamps of a cold view ride with the mark, into shard 0.
//!
//! A stamp still throttled once the count has grown is *deferred*, not failed: the like is
//! marked `stampDue` (one write on the liker's partition, outside GSI1), and that MODIFY brings
//! it back through the stream (`Change::StampDue`) to be stamped then. So a view that cannot
//! keep up fails no record and holds up no other post's batch; its likes enter it a stream
//! trip or a few later. (Rebuild stamps in place instead: its recount must see its stamps.)
//!
//! Here, per stamp: the shard the liker's id picks among the shards this instance knows; on a
//! throttle, a request to grow (once per [`GROW_PAUSE`] per instance); still throttled from
//! attempt `DEFER_AFTER`, a deferral. A stamp whose condition fails is done: in the view
//! already, or gone, or re-liked (its own record stamps the new incarnation).

use contracts::dynamo::Backoff;
use contracts::items::Post;
use contracts::keys::{MAX_VIEW_SHARDS, view_shard_of};

use super::{Answer, Cx, Request, Work};
use crate::plan::Stamp;

/// The attempt of a stamp from which a throttle defers it (the first retry already sees
/// the view's shards grown).
const DEFER_AFTER: u32 = 2;

/// How long an instance waits before it grows a post's view shards again: a storm of
/// throttled stamps asks once, and the stamps retried meanwhile see the new count.
pub const GROW_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

const POLICY: Backoff = Backoff::STANDARD;

/// One like's stamp on its way.
#[derive(Debug)]
pub(crate) struct Stamping {
    pub(crate) stamp: Stamp,
    /// Stamps sent so far.
    sent: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    /// The stamp is in flight, into one of `shards`.
    Sent {
        shards: u32,
    },
    /// Asked to record `target` shards, after a stamp into one of `shards` throttled.
    Growing {
        shards: u32,
        target: u32,
    },
    Deferring,
    Backoff(i64),
    /// Settled: `true` if the like is stamped, deferred or needs no stamp.
    Done(bool),
}

impl Stamping {
    pub(crate) fn new(stamp: Stamp) -> Self {
        Self {
            stamp,
            sent: 0,
            phase: Phase::Ready,
        }
    }

    /// `Some(ok)` once settled.
    pub(crate) fn done(&self) -> Option<bool> {
        match self.phase {
            Phase::Done(ok) => Some(ok),
            _ => None,
        }
    }
}

impl Work for Stamping {
    fn is_done(&self) -> bool {
        self.done().is_some()
    }

    fn wake_at(&self) -> Option<i64> {
        match self.phase {
            Phase::Backoff(at) => Some(at),
            _ => None,
        }
    }

    fn poll(&mut self, cx: &mut Cx<'_>) -> Option<Request> {
        if let Phase::Backoff(until) = self.phase
            && until <= cx.now_ms
        {
            self.phase = Phase::Ready;
        }
        if self.phase != Phase::Ready {
            return None;
        }
        if cx.passed(cx.now_ms) {
            self.phase = Phase::Done(false);
            return None;
        }
        let like = &self.stamp.like;
        let shards = cx.knowledge.view_shard_count(like.post);
        self.sent += 1;
        self.phase = Phase::Sent { shards };
        Some(Request::Stamp {
            like: like.clone(),
            shard: view_shard_of(&like.user, shards),
        })
    }

    fn answer(&mut self, answer: Answer, cx: &mut Cx<'_>) -> Option<Request> {
        match (self.phase, answer) {
            (Phase::Sent { .. }, Answer::Done | Answer::ConditionFailed { .. }) => {
                self.phase = Phase::Done(true);
                None
            }
            (Phase::Sent { shards }, Answer::Throttled) => self.grow(shards, cx),
            (Phase::Sent { .. }, Answer::Transient(_)) => {
                self.retry(cx);
                None
            }
            (Phase::Growing { shards, target }, answer) => {
                let recorded = match answer {
                    Answer::Done => Some(target),
                    Answer::ConditionFailed { old } => {
                        Some(old.as_ref().map_or(shards, Post::view_shards_in))
                    }
                    // Throttled or unreachable: asked again after the pause.
                    _ => None,
                };
                if let Some(recorded) = recorded {
                    let post = self.stamp.like.post;
                    tracing::info!(%post, view_shards = recorded, "likers view spread");
                    cx.knowledge.learn_view_shards(post, recorded);
                }
                self.throttled(cx)
            }
            (Phase::Deferring, Answer::Done | Answer::ConditionFailed { .. }) => {
                self.phase = Phase::Done(true);
                None
            }
            (phase, answer) => {
                if !matches!(answer, Answer::Abandoned) {
                    tracing::warn!(?phase, answer = %answer.describe(), "stamp failed; records will be re-delivered");
                }
                self.phase = Phase::Done(false);
                None
            }
        }
    }
}

impl Stamping {
    /// A stamp into one of `shards` throttled: ask for twice as many (at most
    /// [`MAX_VIEW_SHARDS`], once per [`GROW_PAUSE`]) unless known or asked lately.
    fn grow(&mut self, shards: u32, cx: &mut Cx<'_>) -> Option<Request> {
        let like = &self.stamp.like;
        let target = (shards * 2).min(MAX_VIEW_SHARDS);
        let known = cx.knowledge.view_shards(like.post);
        let count = known.map_or(1, |k| k.count);
        let asked_lately = known
            .and_then(|k| k.grown_ms)
            .is_some_and(|at| cx.now_ms - at < GROW_PAUSE.as_millis() as i64);
        if target <= count || asked_lately {
            return self.throttled(cx);
        }
        cx.knowledge.growing(like.post, cx.now_ms);
        self.phase = Phase::Growing { shards, target };
        Some(Request::Grow {
            topic: like.topic.clone(),
            post: like.post,
            shards: target,
        })
    }

    /// After a throttle (and the growth it asked for): tried once more with the count grown,
    /// still throttled, the stamp waits its turn in the stream instead of failing the records
    /// (and the batch) behind it.
    fn throttled(&mut self, cx: &mut Cx<'_>) -> Option<Request> {
        if cx.defers_stamps && self.sent >= DEFER_AFTER {
            self.phase = Phase::Deferring;
            return Some(Request::Defer {
                like: self.stamp.like.clone(),
                now_ms: cx.now_ms,
            });
        }
        self.retry(cx);
        None
    }

    fn retry(&mut self, cx: &mut Cx<'_>) {
        if !POLICY.may_retry(self.sent) {
            tracing::warn!(post = %self.stamp.like.post, "stamp kept failing; records will be re-delivered");
            self.phase = Phase::Done(false);
            return;
        }
        let until = cx.now_ms + cx.backoff(POLICY, self.sent);
        self.phase = if cx.passed(until) {
            Phase::Done(false)
        } else {
            Phase::Backoff(until)
        };
    }
}
