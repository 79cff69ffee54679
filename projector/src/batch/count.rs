//! Counting transactions: the one-hop count of cold posts, and the first hop (deltas) and
//! second hop (folds) of hot counters, as a `Lane` of transactions sent one after another.
//! Why the writes count every like exactly once is in [`crate::plan`]; here is what
//! DynamoDB's answer to each attempt means for the next one.
//!
//! Before counting, a consistent read of the like items screens the marks (`screen_mark`):
//! a mark whose like is gone, re-liked or already counted would only fail, and a failed
//! condition cancels its whole transaction, billed in full. (The read only saves work:
//! whatever it misses, the conditions still catch.)
//!
//! When DynamoDB cancels a transaction, `CancellationReasons` names the actions:
//! - a **failed condition** (`drop_failed_conditions`): a mark or tombstone already there
//!   (its like counted or gone) or a delta already folded is dropped as redundant; a post that
//!   does not exist drops its whole count; a counter found hot (`hotUntil`) moves through a
//!   delta from now on. What is left is sent again at once;
//! - a **throttled mark** (`throttled_marks`): its stamp may be what the post's GSI1
//!   partition cannot take, so the post's stamps leave the transaction and its view is planned
//!   hot (see [`super::view`]);
//! - a **conflict or throttle on the counter item** (`contended_counters`): the retry writes
//!   a delta instead, and the counter is planned hot (see [`super::hot`]).
//!
//! Conflicts and throttling are retried as the lane's `Backoff` says (`super::hot::policy`);
//! every attempt counts against it, a condition failure that left nothing to drop too, and
//! nothing starts past the batch's deadline. What still fails is reported failed, so the
//! caller re-delivers it, which is safe because every action is conditional.

use std::collections::VecDeque;

use contracts::counting::{self, CounterState, LikeState, Write};
use contracts::dynamo::Backoff;
use contracts::items::{Delta, Item};
use contracts::keys::{Ksuid, PostId};

use super::hot;
use super::{Answer, Cx, Outcome, Reason, Request, Work};
use crate::plan::{CountTransaction, Mark, PostCount, Stamp};

/// One action of a counting transaction, for reading its cancellation reason: the post (its
/// index in the transaction), and which of its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The counter update.
    Counter(usize),
    /// The new delta of a hot counter, in the counter's place.
    Delta(usize),
    /// Mark `.1` of the post.
    Mark(usize, usize),
    /// Uncount (tombstone) `.1` of the post.
    Uncount(usize, usize),
    /// Fold `.1` of the post.
    Fold(usize, usize),
}

/// The actions of a transaction, in the order its items are sent: per post the counter (or
/// delta), then marks, uncounts and folds. The counter (or delta) is there even when the move
/// is zero: its new version tells `rebuild` that the post's counted likes changed.
pub fn actions(transaction: &CountTransaction) -> Vec<Action> {
    let mut actions = Vec::with_capacity(transaction.actions());
    for (p, count) in transaction.posts.iter().enumerate() {
        actions.push(if count.via_delta {
            Action::Delta(p)
        } else {
            Action::Counter(p)
        });
        actions.extend((0..count.marks.len()).map(|m| Action::Mark(p, m)));
        actions.extend((0..count.uncounts.len()).map(|u| Action::Uncount(p, u)));
        actions.extend((0..count.folds.len()).map(|f| Action::Fold(p, f)));
    }
    actions
}

/// How a write goes into a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A `Put`: the write's item is the whole item.
    Put,
    /// An `Update` of the write's key.
    Update,
    /// A `Delete` of the write's key.
    Delete,
}

/// The writes of a counting transaction, in the order of [`actions`], as
/// `contracts::counting` states them. Each delta written takes a new id from `delta_id`: a
/// retry after an unknown outcome then cannot count twice (the marks it carries are counted,
/// and dropped).
pub fn transaction_writes(
    transaction: &CountTransaction,
    now_secs: i64,
    mut delta_id: impl FnMut() -> Ksuid,
) -> Vec<(ActionKind, Write)> {
    actions(transaction)
        .into_iter()
        .map(|action| match action {
            Action::Delta(p) => {
                let count = &transaction.posts[p];
                let delta = Delta {
                    topic: count.post.topic.clone(),
                    post_id: count.post.post,
                    delta_id: delta_id(),
                    delta: count.moves_by(),
                };
                (ActionKind::Put, counting::put_delta(&delta))
            }
            Action::Counter(p) => {
                let count = &transaction.posts[p];
                let (topic, post) = (&count.post.topic, count.post.post);
                let counter = if count.folds.is_empty() {
                    counting::move_cold_counter(topic, post, count.moves_by(), now_secs)
                } else {
                    counting::fold_into_counter(
                        topic,
                        post,
                        count.moves_by(),
                        hot::hot_until(now_secs),
                    )
                };
                (ActionKind::Update, counter)
            }
            Action::Mark(p, m) => {
                // A failed condition returns the item as it was: it tells why.
                let mark = &transaction.posts[p].marks[m];
                (
                    ActionKind::Update,
                    counting::count_like(&mark.like, mark.stamp),
                )
            }
            Action::Uncount(p, u) => {
                let like = &transaction.posts[p].uncounts[u].like;
                (ActionKind::Put, counting::tombstone(like, now_secs))
            }
            Action::Fold(p, f) => {
                let delta = &transaction.posts[p].folds[f].delta;
                (
                    ActionKind::Delete,
                    counting::fold_delta(delta.post_id, delta.delta_id),
                )
            }
        })
        .collect()
}

/// What to do with a mark, given its like item as a consistent read found it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Screen {
    /// It may succeed: send it.
    Send,
    /// It would fail: the like is gone, re-liked, or already counted. `stamp`: counted but
    /// not in GSI1 while its stamp was to ride with the mark (a run that crashed between
    /// counting and stamping a hot post), so stamp it now.
    Drop { stamp: bool },
}

/// Screen a mark against its like item (`None`: no item).
pub(crate) fn screen_mark(item: Option<&Item>, mark: &Mark) -> Screen {
    match LikeState::of(item, &mark.like) {
        LikeState::Uncounted => Screen::Send,
        LikeState::Gone | LikeState::Replaced => Screen::Drop { stamp: false },
        LikeState::Counted { in_view } => Screen::Drop {
            stamp: mark.stamp && !in_view,
        },
    }
}

/// What counting settled: outcomes for batch positions, and stamps still to write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settlement {
    pub(crate) outcomes: Vec<(Vec<usize>, Outcome)>,
    /// Likes found counted but not stamped (a run that crashed between count and stamp), and
    /// stamps taken out of marks whose view throttled.
    pub(crate) stamps: Vec<Stamp>,
    /// Posts a transaction found not to exist: none of their likes is counted or stamped.
    pub(crate) missing_posts: Vec<PostId>,
}

impl Settlement {
    /// A mark not sent (again), its like gone, re-liked or counted: its records are
    /// redundant, and `stamp` stamps the like now (see [`Screen::Drop`]).
    pub(crate) fn dropped(&mut self, mark: &Mark, stamp: bool) {
        self.outcomes
            .push((mark.records.clone(), Outcome::Redundant));
        if stamp {
            self.stamps.push(mark.as_stamp());
        }
    }

    /// A change that committed: its first delivery is applied, copies in the same batch are
    /// redundant.
    fn committed(&mut self, records: &[usize]) {
        if let Some((first, rest)) = records.split_first() {
            self.outcomes.push((vec![*first], Outcome::Applied));
            if !rest.is_empty() {
                self.outcomes.push((rest.to_vec(), Outcome::Redundant));
            }
        }
    }

    /// Every record of a post's count, with one outcome.
    fn settle_post(&mut self, count: &PostCount, outcome: Outcome) {
        for records in count.records() {
            self.outcomes.push((records.to_vec(), outcome));
        }
    }

    /// Every record of a transaction committed.
    pub(crate) fn commit_transaction(&mut self, transaction: &CountTransaction) {
        for records in transaction.posts.iter().flat_map(PostCount::records) {
            self.committed(records);
        }
    }

    /// Every record of a transaction failed (to be re-delivered).
    pub(crate) fn fail_transaction(&mut self, transaction: &CountTransaction) {
        for count in &transaction.posts {
            self.settle_post(count, Outcome::Failed);
        }
    }
}

/// The posts (indexes in the transaction) of marks that DynamoDB cancelled as throttled: their
/// stamps may be what the post's GSI1 partition cannot take.
pub(crate) fn throttled_marks(actions: &[Action], reasons: &[Reason]) -> Vec<usize> {
    let mut posts: Vec<usize> = actions
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| matches!(reason, Reason::Throttled))
        .filter_map(|(action, _)| match action {
            Action::Mark(p, _) => Some(*p),
            _ => None,
        })
        .collect();
    posts.dedup();
    posts
}

/// The posts (indexes in the transaction) whose counter item DynamoDB cancelled the
/// transaction over, conflicting with another transaction or throttled: hot counters.
pub(crate) fn contended_counters(actions: &[Action], reasons: &[Reason]) -> Vec<usize> {
    actions
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| matches!(reason, Reason::Conflict | Reason::Throttled))
        .filter_map(|(action, _)| match action {
            Action::Counter(p) => Some(*p),
            _ => None,
        })
        .collect()
}

/// What [`drop_failed_conditions`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Posts whose counter was found hot: moved through a delta from now on.
    pub(crate) hot_counters: Vec<PostId>,
    /// Whether anything left the transaction or turned to a delta: a retry may now succeed.
    pub(crate) progressed: bool,
}

/// Remove from `transaction` the actions whose condition failed, settling why: a mark or
/// tombstone already there (its like counted or gone), a delta already folded, or a post that
/// does not exist (nothing of it counts). A counter found hot at `now_secs` is moved through a
/// delta instead. What is left may be sent again.
pub(crate) fn drop_failed_conditions(
    transaction: &mut CountTransaction,
    actions: &[Action],
    reasons: &[Reason],
    now_secs: i64,
    settlement: &mut Settlement,
) -> Dropped {
    let mut dropped = Dropped::default();
    let mut missing_posts = Vec::new();
    let mut done_marks = Vec::new();
    let mut done_uncounts = Vec::new();
    let mut done_folds = Vec::new();
    for (action, reason) in actions.iter().zip(reasons) {
        let Reason::ConditionFailed { old } = reason else {
            continue;
        };
        match *action {
            Action::Counter(p) => match CounterState::of(old.as_ref(), now_secs) {
                CounterState::Missing => {
                    let count = &transaction.posts[p];
                    tracing::error!(post = %count.post.post, "likes of a post that does not exist: not counted");
                    settlement.settle_post(count, Outcome::Ignored);
                    settlement.missing_posts.push(count.post.post);
                    missing_posts.push(p);
                }
                CounterState::Hot { .. } => {
                    let count = &mut transaction.posts[p];
                    count.via_delta = true;
                    dropped.hot_counters.push(count.post.post);
                }
                // Cold again since: the retry moves it.
                CounterState::Cold => {}
            },
            Action::Mark(p, m) => {
                // The item as it was when the condition failed (`ALL_OLD`).
                let mark = &transaction.posts[p].marks[m];
                let stamp = screen_mark(old.as_ref(), mark) == Screen::Drop { stamp: true };
                settlement.dropped(mark, stamp);
                done_marks.push((p, m));
            }
            Action::Uncount(p, u) => {
                let records = transaction.posts[p].uncounts[u].records.clone();
                settlement.outcomes.push((records, Outcome::Redundant));
                done_uncounts.push((p, u));
            }
            Action::Fold(p, f) => {
                let records = transaction.posts[p].folds[f].records.clone();
                settlement.outcomes.push((records, Outcome::Redundant));
                done_folds.push((p, f));
            }
            // A fresh id that exists already: the retry gets another.
            Action::Delta(_) => {}
        }
    }
    dropped.progressed = !(missing_posts.is_empty()
        && done_marks.is_empty()
        && done_uncounts.is_empty()
        && done_folds.is_empty()
        && dropped.hot_counters.is_empty());
    let posts = std::mem::take(&mut transaction.posts);
    for (p, mut count) in posts.into_iter().enumerate() {
        if missing_posts.contains(&p) {
            continue;
        }
        count.marks = keep(count.marks, |m| !done_marks.contains(&(p, m)));
        count.uncounts = keep(count.uncounts, |u| !done_uncounts.contains(&(p, u)));
        count.folds = keep(count.folds, |f| !done_folds.contains(&(p, f)));
        transaction.posts.push(count);
    }
    dropped
}

/// The elements whose index passes `wanted`.
fn keep<T>(items: Vec<T>, wanted: impl Fn(usize) -> bool) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| wanted(i).then_some(item))
        .collect()
}

/// Transactions sharing a post, sent one after another (see [`crate::plan::lanes`]).
#[derive(Debug)]
pub(crate) struct Lane {
    queue: VecDeque<CountTransaction>,
    current: Option<Attempts>,
}

/// One transaction on its way: what is left of it, and where its attempts stand.
#[derive(Debug)]
struct Attempts {
    transaction: CountTransaction,
    policy: Backoff,
    /// Attempts sent so far.
    sent: u32,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// To be sent (after its fold's turn, if it folds).
    Begin,
    /// To be sent at this time (its fold's turn).
    Turn(i64),
    /// Sent, with its actions in order; dated `now_secs`.
    Sent { actions: Vec<Action>, now_secs: i64 },
    /// Backing off until then.
    Backoff(i64),
}

impl Lane {
    pub(crate) fn new(transactions: Vec<CountTransaction>) -> Self {
        Self {
            queue: transactions.into(),
            current: None,
        }
    }

    /// The transaction in flight failed for good: its records are re-delivered.
    fn fail(&mut self, cx: &mut Cx<'_>) {
        if let Some(current) = self.current.take() {
            cx.settlement.fail_transaction(&current.transaction);
        }
    }
}

impl Work for Lane {
    fn is_done(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }

    fn wake_at(&self) -> Option<i64> {
        match self.current.as_ref()?.phase {
            Phase::Turn(at) | Phase::Backoff(at) => Some(at),
            Phase::Begin | Phase::Sent { .. } => None,
        }
    }

    fn poll(&mut self, cx: &mut Cx<'_>) -> Option<Request> {
        loop {
            let Some(current) = self.current.as_mut() else {
                let transaction = self.queue.pop_front()?;
                self.current = Some(Attempts {
                    policy: hot::policy(&transaction),
                    transaction,
                    sent: 0,
                    phase: Phase::Begin,
                });
                continue;
            };
            match current.phase {
                Phase::Begin => {
                    current.transaction.posts.retain(|p| !p.is_empty());
                    if current.transaction.posts.is_empty() {
                        self.current = None;
                        continue;
                    }
                    let at = hot::turn(&current.transaction, cx.knowledge, cx.now_ms);
                    if cx.passed(at) {
                        self.fail(cx);
                        continue;
                    }
                    current.phase = Phase::Turn(at);
                }
                Phase::Turn(at) if at <= cx.now_ms => {
                    if cx.passed(cx.now_ms) {
                        self.fail(cx);
                        continue;
                    }
                    let now_secs = cx.now_ms.div_euclid(1000);
                    current.sent += 1;
                    current.phase = Phase::Sent {
                        actions: actions(&current.transaction),
                        now_secs,
                    };
                    return Some(Request::Count {
                        transaction: current.transaction.clone(),
                        now_secs,
                    });
                }
                Phase::Backoff(until) if until <= cx.now_ms => current.phase = Phase::Begin,
                Phase::Turn(_) | Phase::Backoff(_) | Phase::Sent { .. } => return None,
            }
        }
    }

    /// The answer to the transaction in flight: what failed is dropped or failed, what may
    /// still succeed is sent again at once or after a backoff.
    fn answer(&mut self, answer: Answer, cx: &mut Cx<'_>) -> Option<Request> {
        self.answered(answer, cx);
        None
    }
}

impl Lane {
    fn answered(&mut self, answer: Answer, cx: &mut Cx<'_>) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let Phase::Sent { actions, now_secs } = std::mem::replace(&mut current.phase, Phase::Begin)
        else {
            return;
        };
        let reasons = match &answer {
            Answer::Done => {
                cx.settlement.commit_transaction(&current.transaction);
                self.current = None;
                return;
            }
            // Abandoned in flight: it may have committed; re-delivery finds out.
            Answer::Abandoned => return self.fail(cx),
            Answer::Cancelled(reasons) => {
                *cx.cancelled += 1;
                reasons.as_slice()
            }
            _ => &[],
        };
        let transaction = &mut current.transaction;
        let failed_condition = reasons
            .iter()
            .any(|r| matches!(r, Reason::ConditionFailed { .. }));
        if failed_condition {
            let dropped =
                drop_failed_conditions(transaction, &actions, reasons, now_secs, cx.settlement);
            for post in dropped.hot_counters {
                cx.knowledge.counter_contended(post, cx.now_ms);
            }
            // What failed is out (or now goes through a delta): the rest is retried at once.
            // A failure that changed nothing is retried like a transient one, so it ends with
            // the policy's attempts, not in a loop.
            if dropped.progressed && current.policy.may_retry(current.sent) {
                return;
            }
        }
        for p in throttled_marks(&actions, reasons) {
            let count = &mut transaction.posts[p];
            let stamps = count.split_stamps();
            if !stamps.is_empty() {
                tracing::warn!(post = %count.post.post, "a post's view throttled counting: planned hot for a while");
                cx.knowledge.view_throttled(count.post.post, cx.now_ms);
                cx.settlement.stamps.extend(stamps);
            }
        }
        for p in contended_counters(&actions, reasons) {
            let count = &mut transaction.posts[p];
            if count.folds.is_empty() {
                tracing::info!(post = %count.post.post, "a post's counter is contended: counted through deltas for a while");
                cx.knowledge.counter_contended(count.post.post, cx.now_ms);
                count.via_delta = true;
            }
        }
        let retryable = matches!(
            answer,
            Answer::Transient(_) | Answer::Throttled | Answer::Cancelled(_)
        );
        if !retryable || !current.policy.may_retry(current.sent) {
            tracing::warn!(answer = %answer.describe(), posts = transaction.posts.len(), "counting transaction failed; records will be re-delivered");
            return self.fail(cx);
        }
        let until = cx.now_ms + cx.backoff(current.policy, current.sent);
        if cx.passed(until) {
            return self.fail(cx);
        }
        current.phase = Phase::Backoff(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use contracts::items::{Delta, LikeRef, attr};
    use contracts::keys::{self, Ksuid, LikeId, PostId};

    use crate::plan::{Fold, PostRef, Uncount};

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    fn mark(stamp: bool, record: usize) -> Mark {
        Mark {
            records: vec![record],
            like: LikeRef {
                user: format!("user-{record}").parse().unwrap(),
                post: PostId::generate(),
                topic: "rust".parse().unwrap(),
                like_id: LikeId::generate(),
            },
            stamp,
        }
    }

    fn like_item(mark: &Mark, counted: bool, stamped: bool) -> Item {
        let mut item = Item::from([(attr::LIKE_ID.to_owned(), s(mark.like.like_id.as_str()))]);
        if counted {
            item.insert(attr::COUNTED_BY.into(), s("projector"));
        }
        if stamped {
            item.insert(keys::GSI1PK.into(), s("POST#x"));
        }
        item
    }

    fn failed(old: Option<Item>) -> Reason {
        Reason::ConditionFailed { old }
    }

    fn transaction() -> CountTransaction {
        let post = |n: u64| PostRef {
            topic: "t".parse().unwrap(),
            post: PostId::at_millis(1_700_000_000_000 + n as i64),
        };
        let uncount = Uncount {
            records: vec![9],
            like: mark(false, 9).like,
        };
        CountTransaction {
            posts: vec![
                PostCount {
                    post: post(1),
                    marks: vec![mark(true, 0), mark(true, 1)],
                    uncounts: vec![uncount],
                    folds: Vec::new(),
                    via_delta: false,
                },
                PostCount {
                    post: post(2),
                    marks: vec![mark(true, 2)],
                    uncounts: Vec::new(),
                    folds: Vec::new(),
                    via_delta: false,
                },
            ],
        }
    }

    fn fold(record: usize, delta: i64) -> Fold {
        Fold {
            records: vec![record],
            delta: Delta {
                topic: "t".parse().unwrap(),
                post_id: PostId::generate(),
                delta_id: Ksuid::generate(),
                delta,
            },
        }
    }

    #[test]
    fn a_transaction_holds_counter_marks_and_tombstones_in_action_order() {
        assert_eq!(
            actions(&transaction()),
            vec![
                Action::Counter(0),
                Action::Mark(0, 0),
                Action::Mark(0, 1),
                Action::Uncount(0, 0),
                Action::Counter(1),
                Action::Mark(1, 0),
            ]
        );
    }

    #[test]
    fn an_already_folded_delta_is_dropped() {
        let mut transaction = transaction();
        transaction.posts[0].via_delta = true;
        transaction.posts[1].marks.clear();
        transaction.posts[1].folds = vec![fold(5, 40), fold(6, -1)];
        let actions = actions(&transaction);
        assert_eq!(
            actions,
            vec![
                Action::Delta(0),
                Action::Mark(0, 0),
                Action::Mark(0, 1),
                Action::Uncount(0, 0),
                Action::Counter(1),
                Action::Fold(1, 0),
                Action::Fold(1, 1),
            ]
        );
        let reasons: Vec<_> = (0..7)
            .map(|i| if i == 5 { failed(None) } else { Reason::None })
            .collect();
        let mut settlement = Settlement::default();
        let dropped =
            drop_failed_conditions(&mut transaction, &actions, &reasons, 0, &mut settlement);
        assert!(dropped.progressed);
        assert_eq!(settlement.outcomes, vec![(vec![5], Outcome::Redundant)]);
        assert_eq!(transaction.posts[1].moves_by(), -1);
    }

    #[test]
    fn a_counter_a_fold_marked_hot_is_moved_through_a_delta_on_retry() {
        let mut transaction = transaction();
        let actions = actions(&transaction);
        let post = |until: i64| {
            Item::from([
                (keys::PK.to_owned(), s("TOPIC#t")),
                (
                    attr::HOT_UNTIL.to_owned(),
                    AttributeValue::N(until.to_string()),
                ),
            ])
        };
        let mut reasons: Vec<_> = (0..actions.len()).map(|_| Reason::None).collect();
        reasons[0] = failed(Some(post(1_200)));
        reasons[4] = failed(Some(post(900)));
        let mut settlement = Settlement::default();
        let dropped =
            drop_failed_conditions(&mut transaction, &actions, &reasons, 1_000, &mut settlement);
        assert_eq!(transaction.posts.len(), 2, "both posts exist");
        assert!(transaction.posts[0].via_delta, "hot until after now");
        assert!(
            !transaction.posts[1].via_delta,
            "hot until before now: cold again"
        );
        assert_eq!(dropped.hot_counters, vec![transaction.posts[0].post.post]);
        assert!(dropped.progressed, "a counter turned to a delta");
        assert!(settlement.outcomes.is_empty(), "all is retried");
    }

    #[test]
    fn a_condition_that_changes_nothing_is_no_progress() {
        let mut transaction = transaction();
        let before = transaction.clone();
        let actions = actions(&transaction);
        let cold = Item::from([(keys::PK.to_owned(), s("TOPIC#t"))]);
        let mut reasons: Vec<_> = (0..actions.len()).map(|_| Reason::None).collect();
        reasons[0] = failed(Some(cold));
        let mut settlement = Settlement::default();
        let dropped =
            drop_failed_conditions(&mut transaction, &actions, &reasons, 0, &mut settlement);
        assert!(!dropped.progressed, "a counter cold again: nothing to drop");
        assert_eq!(transaction, before);
    }

    #[test]
    fn a_counter_that_conflicted_or_throttled_is_contended() {
        let actions = [
            Action::Counter(0),
            Action::Mark(0, 0),
            Action::Counter(1),
            Action::Delta(2),
            Action::Counter(3),
        ];
        let reasons = [
            Reason::Conflict,
            Reason::Conflict,
            Reason::None,
            Reason::Conflict,
            Reason::Throttled,
        ];
        assert_eq!(contended_counters(&actions, &reasons), vec![0, 3]);
    }

    #[test]
    fn failed_conditions_leave_only_what_may_still_succeed() {
        let mut transaction = transaction();
        let actions = actions(&transaction);
        let counted_unstamped = like_item(&transaction.posts[0].marks[1], true, false);
        let reasons = vec![
            Reason::None,
            Reason::None,
            failed(Some(counted_unstamped)),
            failed(None),
            failed(None),
            Reason::None,
        ];
        let mut settlement = Settlement::default();
        drop_failed_conditions(&mut transaction, &actions, &reasons, 0, &mut settlement);
        // Post 2 does not exist: all of it is ignored and it leaves the transaction.
        assert_eq!(transaction.posts.len(), 1);
        assert_eq!(
            transaction.posts[0].marks.len(),
            1,
            "the mark that may succeed"
        );
        assert_eq!(transaction.posts[0].marks[0].records, vec![0]);
        assert!(
            transaction.posts[0].uncounts.is_empty(),
            "the tombstone existed"
        );
        assert_eq!(
            settlement.outcomes,
            vec![
                (vec![1], Outcome::Redundant),
                (vec![9], Outcome::Redundant),
                (vec![2], Outcome::Ignored),
            ]
        );
        assert_eq!(
            settlement.stamps.len(),
            1,
            "counted but not stamped: stamped now"
        );
    }

    #[test]
    fn throttled_marks_name_their_posts_once() {
        let actions = [
            Action::Counter(0),
            Action::Mark(0, 0),
            Action::Mark(0, 1),
            Action::Counter(1),
            Action::Mark(1, 0),
            Action::Counter(2),
            Action::Mark(2, 0),
        ];
        let reasons = [
            Reason::None,
            Reason::Throttled,
            Reason::Throttled,
            Reason::Throttled,
            Reason::None,
            Reason::None,
            Reason::Throttled,
        ];
        // Post 1's counter was throttled, not a mark of it: that is the post item, not its view.
        assert_eq!(throttled_marks(&actions, &reasons), vec![0, 2]);
        assert!(throttled_marks(&actions, &[]).is_empty());
    }

    #[test]
    fn only_marks_that_can_succeed_are_sent() {
        let cold = mark(true, 0);
        assert_eq!(
            screen_mark(Some(&like_item(&cold, false, false)), &cold),
            Screen::Send
        );
        // Gone (unliked), or re-liked since: its own record counts the new incarnation.
        assert_eq!(screen_mark(None, &cold), Screen::Drop { stamp: false });
        let other = mark(true, 1);
        assert_eq!(
            screen_mark(Some(&like_item(&other, false, false)), &cold),
            Screen::Drop { stamp: false }
        );
        // Counted already: stamped, or not (then stamped now, unless a separate stamp is planned).
        assert_eq!(
            screen_mark(Some(&like_item(&cold, true, true)), &cold),
            Screen::Drop { stamp: false }
        );
        assert_eq!(
            screen_mark(Some(&like_item(&cold, true, false)), &cold),
            Screen::Drop { stamp: true }
        );
        let hot = mark(false, 2);
        assert_eq!(
            screen_mark(Some(&like_item(&hot, true, false)), &hot),
            Screen::Drop { stamp: false }
        );
    }
}
