//! Hot counters: counting a post in two hops, through deltas and folds, and the folds' turns
//! on the counter (the writes are `contracts::counting::{put_delta, fold_delta,
//! fold_into_counter, move_cold_counter}`).
//!
//! On AWS a post's likes live in its likers' partitions, so they arrive through every stream
//! shard, and each shard's invocations (times the parallelization factor) would write its
//! counter item in transactions of their own: overlapping transactions on one item cancel each
//! other (`TransactionConflict`), and the counter's write rate grows with the shards, not the
//! likes. A post with a *hot counter* is counted in two hops instead:
//!
//! 1. Its counting transactions hold its marks and tombstones and, in place of the counter
//!    update, the put of a new **delta** item carrying marks − uncounts, under one of the
//!    post's delta partitions (`DELTA#<post>#<k>`, `k` from the delta's id). They share no
//!    item with any other invocation's transactions (each delta is new), so they never
//!    conflict with another invocation's.
//! 2. The delta's INSERT comes back through the stream. Each delta partition's records travel
//!    one shard, in order, to one invocation at a time: a **fold** adds up to
//!    [`MAX_CHANGES_PER_TRANSACTION`](crate::plan::MAX_CHANGES_PER_TRANSACTION) deltas of one
//!    partition to the counter and deletes each, conditioned on it existing, in one
//!    transaction.
//!
//! Exactly once, hop by hop: a like's mark and the delta carrying it commit together or not at
//! all (hop 1 is [`crate::plan`]'s argument, with the delta in the counter's place); a delta is
//! added to the counter in the same transaction that deletes it, and a delete conditioned on
//! existence succeeds once, so a re-delivered, replayed or concurrent fold of it is dropped as
//! redundant. At every moment the counter plus the post's pending deltas is its counted likes,
//! which is what `verify` and `rebuild` read.
//!
//! The counter is written once per fold. A post's four delta partitions take turns on the
//! counter in [`FOLD_SLOT`]s of the wall clock ([`fold_slot`]; the batch machine wakes a fold
//! at its slot): at most ten counter writes a second whatever the number of shards and likes,
//! without overlap while clocks agree. A delta costs a put and a delete of two write units
//! each, so one partition takes about 250 deltas a second and the four about 1,000 (a delta per hot counting transaction, i.e. per lane's batch); a fold of 99
//! deltas per slot of its partition folds up to about 250 a second each.
//!
//! A counter is hot when DynamoDB cancelled a counting transaction over it (a conflict or a
//! throttle on the counter item: the count notices and switches the retry to a delta at
//! once), or when one batch holds more of its changes than one transaction takes (its counter would be
//! written more than once by the batch), or when a fold has marked it hot (`hotUntil`, renewed
//! by every fold: the one-hop move is conditioned on it, so each invocation learns it from one
//! cancelled transaction). Cold posts keep the one-hop path: a delta costs a put and a delete
//! more per transaction, and a second trip through the stream.

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
/// [`DELTA_PARTITIONS`]) that has not started more than `FOLD_START_WITHIN` ago. With the
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
