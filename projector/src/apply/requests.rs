//! The pure half of applying a plan: the requests a counting transaction sends, what a
//! screening read or a cancellation says about each of its actions, and the outcome of every
//! record. Everything here is unit-tested without a database; `apply` only sends and waits.

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use contracts::counting::{self, CounterState, LikeState};
use contracts::dynamo::{is_condition_failed, is_throttle};
use contracts::items::{Delta, Item};
use contracts::keys::Ksuid;
use contracts::keys::{DELTA_PARTITIONS, PostId};
use std::time::Duration;

use crate::plan::{CountTransaction, Mark, PostCount, Stamp};

/// The time a hot counter's folds take turns in: each slot is one delta partition's, round
/// robin, so a post's counter is written at most once a slot, ten times a second.
pub(crate) const FOLD_SLOT: Duration = Duration::from_millis(100);
/// How far into its slot a fold may still start: the rest of the slot is for its transaction
/// to finish before the next partition's turn.
const FOLD_START_WITHIN: i64 = 40;

/// The slot (counted from the epoch) that the wall clock `now_ms` is in.
pub(crate) fn slot_of(now_ms: i64) -> u64 {
    (now_ms.max(0) / FOLD_SLOT.as_millis() as i64) as u64
}

/// When a slot starts, in epoch milliseconds.
pub(crate) fn slot_start(slot: u64) -> i64 {
    slot as i64 * FOLD_SLOT.as_millis() as i64
}

/// The slot in which a fold of delta partition `k` may write its post's counter, at `now_ms`
/// and after its previous fold's slot `last`: the first slot of `k` (slot number ≡ `k` modulo
/// [`DELTA_PARTITIONS`]) that has not started more than [`FOLD_START_WITHIN`] ago. With the
/// invocations' clocks in step (Lambda's are kept to milliseconds), the folds of a post's
/// partitions never overlap on its counter; if clocks drift apart, they conflict and retry.
pub fn fold_slot(now_ms: i64, k: u8, last: Option<u64>) -> u64 {
    let period = u64::from(DELTA_PARTITIONS);
    let mut slot = slot_of(now_ms - FOLD_START_WITHIN);
    if now_ms - slot_start(slot) > FOLD_START_WITHIN {
        slot += 1;
    }
    slot += (u64::from(k) + period - slot % period) % period;
    if let Some(last) = last.filter(|last| *last >= slot) {
        slot = last + period;
    }
    slot
}

/// What happened to one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its change is now in the counters and views.
    Applied,
    /// Nothing to do: its change was applied by an earlier delivery, or was overtaken (its
    /// like is gone or was liked again since, and the later record counts).
    Redundant,
    /// It needs no projection.
    Ignored,
    /// It could not be decoded and was quarantined.
    Quarantined,
    /// Not applied: must be delivered again.
    Failed,
}

/// Record `outcome` for the batch positions `records`. A position already `Failed` stays
/// failed: one of its writes did not happen, so it must be delivered again whatever else
/// succeeded.
pub(crate) fn record_outcome(outcomes: &mut [Outcome], records: &[usize], outcome: Outcome) {
    for &position in records {
        if outcomes[position] != Outcome::Failed {
            outcomes[position] = outcome;
        }
    }
}

/// One action of a counting transaction, for reading its cancellation reason: the post (its
/// index in the transaction), and which of its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Counter(usize),
    /// The new delta of a hot counter, in the counter's place.
    Delta(usize),
    Mark(usize, usize),
    Uncount(usize, usize),
    Fold(usize, usize),
}

/// The items of a counting transaction, and which action each one is. `now_secs` dates the
/// tombstones; each delta written gets a fresh id (a retry after an unknown outcome cannot
/// count twice: the marks it carries are then counted, and dropped).
pub(crate) fn transaction_items(
    table: &str,
    transaction: &CountTransaction,
    now_secs: i64,
) -> Result<(Vec<TransactWriteItem>, Vec<Action>), BuildError> {
    let mut items = Vec::with_capacity(transaction.actions());
    let mut actions = Vec::with_capacity(transaction.actions());
    for (p, count) in transaction.posts.iter().enumerate() {
        // The counter update (or delta) is there even when the move is zero: its new version
        // tells `rebuild` that the post's counted likes changed.
        if count.via_delta {
            let delta = Delta {
                topic: count.post.topic.clone(),
                post_id: count.post.post,
                delta_id: Ksuid::generate(),
                delta: count.moves_by(),
            };
            let put = counting::put_delta(&delta).to_put(table)?;
            items.push(TransactWriteItem::builder().put(put).build());
            actions.push(Action::Delta(p));
        } else {
            let (topic, post) = (&count.post.topic, count.post.post);
            let counter = if count.folds.is_empty() {
                counting::move_cold_counter(topic, post, count.moves_by(), now_secs)
            } else {
                let hot_until = now_secs + super::HOT_MEMORY.as_secs() as i64;
                counting::fold_into_counter(topic, post, count.moves_by(), hot_until)
            };
            items.push(
                TransactWriteItem::builder()
                    .update(counter.to_update(table)?)
                    .build(),
            );
            actions.push(Action::Counter(p));
        }
        for (m, mark) in count.marks.iter().enumerate() {
            // A failed condition returns the item as it was: screening it tells why.
            let update = counting::count_like(&mark.like, mark.stamp).to_update(table)?;
            items.push(TransactWriteItem::builder().update(update).build());
            actions.push(Action::Mark(p, m));
        }
        for (u, uncount) in count.uncounts.iter().enumerate() {
            let put = counting::tombstone(&uncount.like, now_secs).to_put(table)?;
            items.push(TransactWriteItem::builder().put(put).build());
            actions.push(Action::Uncount(p, u));
        }
        for (f, fold) in count.folds.iter().enumerate() {
            let delete =
                counting::fold_delta(fold.delta.post_id, fold.delta.delta_id).to_delete(table)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
            actions.push(Action::Fold(p, f));
        }
    }
    Ok((items, actions))
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

/// What a counting transaction (or the screening before it) settled: outcomes for batch
/// positions, cancelled attempts, and stamps still to write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settlement {
    pub outcomes: Vec<(Vec<usize>, Outcome)>,
    /// Attempts DynamoDB cancelled.
    pub cancelled: usize,
    /// Likes found counted but not stamped (a run that crashed between count and stamp), and
    /// stamps taken out of marks whose view throttled.
    pub stamps: Vec<Stamp>,
    /// Posts a transaction found not to exist: none of their likes is counted or stamped.
    pub missing_posts: Vec<PostId>,
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
    pub(crate) fn committed(&mut self, records: &[usize]) {
        if let Some((first, rest)) = records.split_first() {
            self.outcomes.push((vec![*first], Outcome::Applied));
            if !rest.is_empty() {
                self.outcomes.push((rest.to_vec(), Outcome::Redundant));
            }
        }
    }

    /// Every record of a post's count, with one outcome.
    pub(crate) fn settle_post(&mut self, count: &PostCount, outcome: Outcome) {
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
pub(crate) fn throttled_marks(actions: &[Action], reasons: &[CancellationReason]) -> Vec<usize> {
    let mut posts: Vec<usize> = actions
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| is_throttle(reason.code()))
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
pub(crate) fn contended_counters(actions: &[Action], reasons: &[CancellationReason]) -> Vec<usize> {
    actions
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| {
            reason.code() == Some("TransactionConflict") || is_throttle(reason.code())
        })
        .filter_map(|(action, _)| match action {
            Action::Counter(p) => Some(*p),
            _ => None,
        })
        .collect()
}

/// Remove from `transaction` the actions whose condition failed, settling why: a mark or
/// tombstone already there (its like counted or gone), a delta already folded, or a post that
/// does not exist (nothing of it counts). A counter found hot at `now_secs` is moved through a
/// delta instead: those posts are returned. What is left may be sent again.
pub(crate) fn drop_failed_conditions(
    transaction: &mut CountTransaction,
    actions: &[Action],
    reasons: &[CancellationReason],
    now_secs: i64,
    settlement: &mut Settlement,
) -> Vec<PostId> {
    let mut hot_counters = Vec::new();
    let failed = |i: usize| reasons.get(i).is_some_and(is_condition_failed);
    let mut missing_posts = Vec::new();
    let mut done_marks = Vec::new();
    let mut done_uncounts = Vec::new();
    let mut done_folds = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        if !failed(i) {
            continue;
        }
        match *action {
            Action::Counter(p) => match CounterState::of(reasons[i].item(), now_secs) {
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
                    hot_counters.push(count.post.post);
                }
                // Cold again since: the retry moves it.
                CounterState::Cold => {}
            },
            Action::Mark(p, m) => {
                // The item as it was when the condition failed (`ALL_OLD`).
                let mark = &transaction.posts[p].marks[m];
                let stamp = screen_mark(reasons[i].item(), mark) == Screen::Drop { stamp: true };
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
    hot_counters
}

/// The elements whose index passes `wanted`.
fn keep<T>(items: Vec<T>, wanted: impl Fn(usize) -> bool) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| wanted(i).then_some(item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use contracts::items::{LikeRef, attr};
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

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
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

    #[test]
    fn a_transaction_holds_counter_marks_and_tombstones_in_action_order() {
        let transaction = transaction();
        let (items, actions) = transaction_items("t", &transaction, 0).unwrap();
        assert_eq!(
            actions,
            vec![
                Action::Counter(0),
                Action::Mark(0, 0),
                Action::Mark(0, 1),
                Action::Uncount(0, 0),
                Action::Counter(1),
                Action::Mark(1, 0),
            ]
        );
        assert_eq!(items.len(), transaction.actions());
        let counter = items[0].update().unwrap();
        assert_eq!(
            counter.expression_attribute_values().unwrap()[":by"],
            AttributeValue::N("1".into())
        );
        let mark = items[1].update().unwrap();
        assert_eq!(
            mark.return_values_on_condition_check_failure(),
            Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
        );
        assert!(
            mark.update_expression().contains("#gpk"),
            "a cold mark stamps"
        );
        assert!(items[3].put().is_some(), "an uncount is a tombstone put");
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
    fn a_hot_counter_writes_a_delta_and_a_fold_deletes_what_it_adds() {
        let mut transaction = transaction();
        transaction.posts[0].via_delta = true;
        transaction.posts[1].marks.clear();
        transaction.posts[1].folds = vec![fold(5, 40), fold(6, -1)];
        let (items, actions) = transaction_items("t", &transaction, 0).unwrap();
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
        let delta = items[0].put().unwrap().item();
        assert_eq!(delta[attr::DELTA], AttributeValue::N("1".into()));
        assert_eq!(delta[keys::TYPE], s("Delta"));
        let counter = items[4].update().unwrap();
        assert_eq!(
            counter.expression_attribute_values().unwrap()[":by"],
            AttributeValue::N("39".into()),
            "the folded deltas' sum"
        );
        let reasons: Vec<_> = (0..7)
            .map(|i| match i {
                5 => reason(contracts::dynamo::CONDITION_FAILED),
                _ => reason("None"),
            })
            .collect();
        let mut settlement = Settlement::default();
        drop_failed_conditions(&mut transaction, &actions, &reasons, 0, &mut settlement);
        assert_eq!(settlement.outcomes, vec![(vec![5], Outcome::Redundant)]);
        assert_eq!(
            transaction.posts[1].moves_by(),
            -1,
            "an already folded delta is dropped"
        );
    }

    #[test]
    fn a_counter_a_fold_marked_hot_is_moved_through_a_delta_on_retry() {
        let mut transaction = transaction();
        let (_, actions) = transaction_items("t", &transaction, 1_000).unwrap();
        let post = |until: i64| {
            Item::from([
                (keys::PK.to_owned(), s("TOPIC#t")),
                (
                    attr::HOT_UNTIL.to_owned(),
                    AttributeValue::N(until.to_string()),
                ),
            ])
        };
        let failed = |item: Item| {
            CancellationReason::builder()
                .code(contracts::dynamo::CONDITION_FAILED)
                .set_item(Some(item))
                .build()
        };
        let mut reasons: Vec<_> = (0..actions.len()).map(|_| reason("None")).collect();
        reasons[0] = failed(post(1_200));
        reasons[4] = failed(post(900));
        let mut settlement = Settlement::default();
        let hot =
            drop_failed_conditions(&mut transaction, &actions, &reasons, 1_000, &mut settlement);
        assert_eq!(transaction.posts.len(), 2, "both posts exist");
        assert!(transaction.posts[0].via_delta, "hot until after now");
        assert!(
            !transaction.posts[1].via_delta,
            "hot until before now: cold again"
        );
        assert_eq!(hot, vec![transaction.posts[0].post.post]);
        assert!(
            settlement.outcomes.is_empty(),
            "nothing settled: all is retried"
        );
    }

    #[test]
    fn folds_take_the_slots_of_their_partition_in_turn() {
        // Slots of 100 ms; partition 2's are 2, 6, 10, ...
        assert_eq!(fold_slot(200, 2, None), 2, "its slot, just begun");
        assert_eq!(fold_slot(230, 2, None), 2, "early enough in it");
        assert_eq!(fold_slot(250, 2, None), 6, "too late in it: the next one");
        assert_eq!(fold_slot(0, 2, None), 2);
        assert_eq!(fold_slot(310, 2, None), 6);
        assert_eq!(fold_slot(200, 2, Some(2)), 6, "one fold a slot");
        assert_eq!(fold_slot(200, 3, None), 3);
        for now in (0..2_000).step_by(7) {
            for k in 0..DELTA_PARTITIONS {
                let slot = fold_slot(now, k, None);
                assert_eq!(slot % u64::from(DELTA_PARTITIONS), u64::from(k));
                assert!(slot_start(slot) >= now - FOLD_START_WITHIN, "{now} {k}");
                assert!(slot_start(slot) < now + 500, "within one round: {now} {k}");
            }
        }
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
            reason("TransactionConflict"),
            reason("TransactionConflict"),
            reason("None"),
            reason("TransactionConflict"),
            reason("ThrottlingError"),
        ];
        assert_eq!(contended_counters(&actions, &reasons), vec![0, 3]);
    }

    #[test]
    fn failed_conditions_leave_only_what_may_still_succeed() {
        let mut transaction = transaction();
        let (_, actions) = transaction_items("t", &transaction, 0).unwrap();
        let counted_unstamped = like_item(&transaction.posts[0].marks[1], true, false);
        let reasons = vec![
            reason("None"),
            reason("None"),
            CancellationReason::builder()
                .code(contracts::dynamo::CONDITION_FAILED)
                .set_item(Some(counted_unstamped))
                .build(),
            reason(contracts::dynamo::CONDITION_FAILED),
            reason(contracts::dynamo::CONDITION_FAILED),
            reason("None"),
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
    fn a_failed_position_stays_failed() {
        let mut outcomes = vec![Outcome::Ignored; 3];
        record_outcome(&mut outcomes, &[0, 1], Outcome::Failed);
        record_outcome(&mut outcomes, &[1, 2], Outcome::Applied);
        assert_eq!(
            outcomes,
            vec![Outcome::Failed, Outcome::Failed, Outcome::Applied]
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
            reason("None"),
            reason("ThrottlingError"),
            reason("ThrottlingError"),
            reason("ThrottlingError"),
            reason("None"),
            reason("None"),
            reason("ProvisionedThroughputExceeded"),
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
