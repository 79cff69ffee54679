//! How Lambda feeds the projector from the table's stream: the event source mapping's settings,
//! as the stack deploys them (through `infra/runtime.json`, written from this constant and
//! checked by a test) and as the simulation's event source behaves; and [`Redelivery`], what
//! the mapping sends again of a batch that failed, followed by every delivery path (the local
//! poller, the live multi-shard model, the simulation).

use std::time::Duration;

use serde::Serialize;

/// The settings of the projector's event source mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// Records per invocation at most.
    pub batch_size: u32,
    /// How long Lambda gathers records before it invokes: the window trades lag for coalescing
    /// (a post's likes in one batch share counter writes; docs/benchmarks.md).
    pub max_batching_window_seconds: u32,
    /// Split a batch whose invocation fails as a whole, to isolate a record that crashes it.
    pub bisect_batch_on_error: bool,
    /// Retries of a failing batch before it goes to the failure destination.
    pub retry_attempts: u32,
    /// A failing batch with a record older than this goes to the failure destination.
    pub max_record_age_seconds: u32,
    /// Concurrent batches per shard. Order is kept per partition key (per item) only: the
    /// projection tolerates that, since every write is conditioned on its item's state.
    pub parallelization_factor: u32,
    /// The handler answers a partial batch response (the lowest record not applied).
    pub report_batch_item_failures: bool,
}

/// What the stack deploys.
pub const DEPLOYED: EventSource = EventSource {
    batch_size: 1000,
    max_batching_window_seconds: 1,
    bisect_batch_on_error: true,
    retry_attempts: 10,
    max_record_age_seconds: 6 * 3600,
    parallelization_factor: 2,
    report_batch_item_failures: true,
};

/// When a failing batch goes to the failure destination instead of being sent again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GiveUp {
    /// Retries before it does (Lambda's `MaximumRetryAttempts`; `None`: retried until applied).
    pub retries: Option<u32>,
    /// A failing batch whose oldest record is older than this goes whatever the retries left
    /// (Lambda's `MaximumRecordAgeInSeconds`; `None`: no limit).
    pub record_age: Option<Duration>,
}

impl GiveUp {
    /// Never: the batch is sent again until it is applied (the local poller, a replay).
    pub const NEVER: GiveUp = GiveUp {
        retries: None,
        record_age: None,
    };
}

/// How an invocation ended, as the event source sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The function answered: `first_failure` is the partial batch response's first record not
    /// applied (`None`: all applied).
    Answered {
        /// Its index in the batch.
        first_failure: Option<usize>,
    },
    /// The function failed as a whole: it returned an error, crashed, or the timeout ended it.
    FunctionError,
}

/// What became of a batch's records, from its first: `done` applied, then `given_up` sent to
/// the failure destination; the rest of the batch is owed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Records applied (the checkpoint moves past them).
    pub done: usize,
    /// Records after them given up on: the failure destination hears of them as one batch,
    /// and the checkpoint moves past them too.
    pub given_up: usize,
    /// The batch's remaining records are sent again as a retry, the `n`th in a row: wait
    /// before. `None` when all were done or given up, or the batch was split.
    pub retry: Option<u32>,
}

/// What the event source mapping owes of a failed batch, before any newer record, as the
/// deployed mapping (`ReportBatchItemFailures`, `BisectBatchOnFunctionError`) does it:
///
/// - a partial batch response checkpoints before the first failed record, and only the batch's
///   remaining records are sent again ("the batch is bisected at the returned sequence number
///   and Lambda retries only the remaining records", Lambda's guide, partial batch responses
///   for DynamoDB). It counts as a retry: AWS does not say, and counting it is the stricter
///   reading;
/// - a function error splits the batch in two, the halves sent one after the other (the first
///   records first); a split does not count as a retry ("Splitting batches doesn't consume the
///   retry quota", the guide's error handling for DynamoDB), a single record failing whole does;
/// - past [`GiveUp`]'s retries, or with the first record not applied older than its age, the
///   batch's remaining records go to the failure destination and what is still owed of the
///   batch before them (the other half of a split) follows.
///
/// The records are the caller's, in order from its checkpoint: this keeps only how many each
/// owed batch takes, so the same plan drives a slice, a queue or a channel's backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redelivery {
    /// The owed batches' sizes, the next one last.
    owed: Vec<usize>,
    /// Retries in a row of the records at the checkpoint.
    retries: u32,
}

impl Redelivery {
    /// The size of the batch owed next, if one is: it is sent at once, before anything newer
    /// and without a batching window.
    pub fn owed(&self) -> Option<usize> {
        self.owed.last().copied()
    }

    /// How many records the next invocation takes, `fresh` the size of a new batch.
    pub fn next(&self, fresh: usize) -> usize {
        self.owed().unwrap_or(fresh)
    }

    /// The invocation of the next `len` records ended. `age(i)` is how old the batch's `i`th
    /// record is, asked only when records failed and a record age limit is set.
    pub fn ended(
        &mut self,
        len: usize,
        ended: Ended,
        give_up: GiveUp,
        age: impl FnOnce(usize) -> Duration,
    ) -> Verdict {
        // The batch was the owed one, if any was owed.
        self.owed.pop();
        let done = match ended {
            Ended::Answered { first_failure } => first_failure.unwrap_or(len).min(len),
            Ended::FunctionError => 0,
        };
        if done == len {
            self.retries = 0;
            return Verdict {
                done,
                ..Verdict::default()
            };
        }
        let rest = len - done;
        let split = ended == Ended::FunctionError && len > 1;
        if !split {
            self.retries += 1;
        }
        let too_many = give_up.retries.is_some_and(|max| self.retries > max);
        let too_old = give_up.record_age.is_some_and(|limit| age(done) > limit);
        if too_many || too_old {
            self.retries = 0;
            return Verdict {
                done,
                given_up: rest,
                retry: None,
            };
        }
        if split {
            self.owed.extend([len - len / 2, len / 2]);
            return Verdict {
                done,
                ..Verdict::default()
            };
        }
        self.owed.push(rest);
        Verdict {
            done,
            given_up: 0,
            retry: Some(self.retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_AGE: fn(usize) -> Duration = |_| Duration::ZERO;

    fn retries(max: u32) -> GiveUp {
        GiveUp {
            retries: Some(max),
            record_age: None,
        }
    }

    fn failed_from(i: usize) -> Ended {
        Ended::Answered {
            first_failure: Some(i),
        }
    }

    const APPLIED: Ended = Ended::Answered {
        first_failure: None,
    };

    #[test]
    fn a_partial_failure_owes_only_the_batch_s_remaining_records() {
        let mut plan = Redelivery::default();
        assert_eq!(plan.next(8), 8);
        let verdict = plan.ended(8, failed_from(5), retries(10), NO_AGE);
        assert_eq!(
            verdict,
            Verdict {
                done: 5,
                given_up: 0,
                retry: Some(1)
            }
        );
        assert_eq!(plan.next(8), 3, "the rest, nothing newer");
        let verdict = plan.ended(3, failed_from(1), retries(10), NO_AGE);
        assert_eq!((verdict.done, verdict.retry), (1, Some(2)));
        assert_eq!(plan.next(8), 2);
        let verdict = plan.ended(2, APPLIED, retries(10), NO_AGE);
        assert_eq!(verdict.done, 2);
        assert_eq!(plan.next(8), 8, "a full batch again");
        let verdict = plan.ended(8, failed_from(0), retries(10), NO_AGE);
        assert_eq!(verdict.retry, Some(1), "the retries start again");
    }

    #[test]
    fn splits_use_no_retry_and_a_failing_record_goes_to_the_destination() {
        let mut plan = Redelivery::default();
        // 8 splits into 4 and 4, 4 into 2 and 2, 2 into 1 and 1: no retry used.
        for len in [8, 4, 2] {
            assert_eq!(plan.next(8), len);
            let verdict = plan.ended(len, Ended::FunctionError, retries(1), NO_AGE);
            assert_eq!(verdict, Verdict::default());
        }
        // One record failing whole is retried once, then given up.
        let verdict = plan.ended(1, Ended::FunctionError, retries(1), NO_AGE);
        assert_eq!(verdict.retry, Some(1));
        let verdict = plan.ended(1, Ended::FunctionError, retries(1), NO_AGE);
        assert_eq!(
            verdict,
            Verdict {
                done: 0,
                given_up: 1,
                retry: None
            }
        );
        // Then the halves still owed, one after the other, then new batches.
        for len in [1, 2, 4, 8] {
            assert_eq!(plan.next(8), len);
            assert_eq!(plan.ended(len, APPLIED, retries(1), NO_AGE).done, len);
        }
        assert_eq!(plan.owed(), None);
    }

    #[test]
    fn a_record_past_its_age_gives_up_what_is_left_of_the_batch() {
        let mut plan = Redelivery::default();
        let give_up = GiveUp {
            retries: None,
            record_age: Some(Duration::from_secs(60)),
        };
        let young = |_| Duration::from_secs(60);
        assert_eq!(
            plan.ended(10, failed_from(4), give_up, young).retry,
            Some(1)
        );
        let old = |i| {
            assert_eq!(i, 2, "the age of the first record not applied");
            Duration::from_secs(61)
        };
        let verdict = plan.ended(6, failed_from(2), give_up, old);
        assert_eq!(
            verdict,
            Verdict {
                done: 2,
                given_up: 4,
                retry: None
            }
        );
        assert_eq!(plan.owed(), None);
    }

    #[test]
    fn without_limits_a_batch_is_owed_until_it_is_applied() {
        let mut plan = Redelivery::default();
        for len in [4, 2] {
            let verdict = plan.ended(len, Ended::FunctionError, GiveUp::NEVER, NO_AGE);
            assert_eq!(verdict, Verdict::default());
        }
        for n in 1..=100 {
            assert_eq!(plan.next(4), 1);
            let verdict = plan.ended(1, Ended::FunctionError, GiveUp::NEVER, NO_AGE);
            assert_eq!((verdict.given_up, verdict.retry), (0, Some(n)));
        }
        for len in [1, 1, 2] {
            assert_eq!(plan.next(4), len);
            assert_eq!(plan.ended(len, APPLIED, GiveUp::NEVER, NO_AGE).done, len);
        }
        assert_eq!(plan.owed(), None);
    }
}
