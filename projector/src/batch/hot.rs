//! The hot counter's turns: when a fold may write its post's counter. Why a counter goes hot
//! and how deltas and folds keep it exact is "Hot counters" in [`crate::plan`]; the delta
//! and fold writes are `contracts::counting::{put_delta, fold_delta, fold_into_counter}`.
//!
//! A post's delta partitions take turns on the counter in [`FOLD_SLOT`]s of the wall clock:
//! slot `n` belongs to partition `n mod DELTA_PARTITIONS`. A fold waits for its partition's
//! next slot (the batch machine wakes then), so a post's counter is written at most once a
//! slot, ten times a second, whatever the number of shards and likes.

use std::time::Duration;

use contracts::dynamo::Backoff;
use contracts::keys::{DELTA_PARTITIONS, PostId, delta_partition_of};

use super::knowledge::{HOT_MEMORY_MS, Knowledge};
use crate::plan::CountTransaction;

/// The time a hot counter's folds take turns in.
pub const FOLD_SLOT: Duration = Duration::from_millis(100);
/// How far into its slot a fold may still start: the rest of the slot is for its transaction
/// to finish before the next partition's turn.
const FOLD_START_WITHIN: i64 = 40;

/// A fold waits its turn on a counter that other invocations still write in one hop (until
/// the fold marks it hot, or they meet a conflict of their own): it retries longer than other
/// writes, within the deadline.
pub(crate) const FOLD_RETRIES: Backoff = Backoff {
    attempts: 32,
    ..Backoff::STANDARD
};

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

/// The retry policy of a counting transaction: longer for a fold.
pub(crate) fn policy(transaction: &CountTransaction) -> Backoff {
    if folds(transaction).is_some() {
        FOLD_RETRIES
    } else {
        Backoff::STANDARD
    }
}

/// The post and delta partition a transaction folds, if it folds.
fn folds(transaction: &CountTransaction) -> Option<(PostId, u8)> {
    transaction.posts.iter().find_map(|p| {
        Some((
            p.post.post,
            delta_partition_of(&p.folds.first()?.delta.delta_id),
        ))
    })
}

/// When the transaction may be sent, at `now_ms`: a fold takes its partition's next slot
/// (remembered, so the next fold of the partition takes a later one); anything else, now.
pub(crate) fn turn(transaction: &CountTransaction, knowledge: &mut Knowledge, now_ms: i64) -> i64 {
    let Some((post, k)) = folds(transaction) else {
        return now_ms;
    };
    let slot = fold_slot(now_ms, k, knowledge.last_fold(post, k));
    knowledge.folding(post, k, slot);
    slot_start(slot).max(now_ms)
}

/// The `hotUntil` a fold at `now_secs` renews on its counter.
pub(crate) fn hot_until(now_secs: i64) -> i64 {
    now_secs + HOT_MEMORY_MS / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
