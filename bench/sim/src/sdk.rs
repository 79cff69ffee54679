//! The AWS SDK's own retries of one call, in virtual time, as the projector's clients and
//! `rebuild`'s make them (`contracts::dynamo::sdk_config`): the standard retry mode's attempts
//! and full-jitter backoff (`RetryConfig::standard()`, as `aws-smithy-runtime` computes it:
//! a draw in `[0, min(initial × 2^(n-1), max)]` after the `n`th attempt), each attempt cut at the
//! attempt timeout and the whole call at the operation timeout, and only the errors the SDK
//! classifies as retryable tried again: timeouts, its throttling and transient error codes
//! (`aws_runtime::retries::classifiers`) and 5xx answers. A transaction's cancellation is none
//! of them, nor a single write's `TransactionConflictException`: those reach the caller at once.
//!
//! Retries are paid from the process's retry quota ([`Quota`], the standard mode's token bucket):
//! a retry after a timeout or a transient error costs 10 of its 500 tokens, after a throttle 5;
//! a call that succeeds first time earns one back, one that succeeds after retries gives its
//! last retry's cost back; when the bucket cannot pay, the failure goes to the caller.
//!
//! An attempt that times out may still land: the SDK stops waiting, not the request. Each
//! attempt ends in exactly one outcome (its answer, or its timeout), and the next attempt starts
//! only after it, so a call never sees a stale answer of its own.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use contracts::dynamo::{ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};
use projector::batch::Answer;
use rand::Rng;
use rand::rngs::StdRng;

/// What an attempt that got no answer within its timeout fails with.
pub(crate) const TIMED_OUT: &str = "TimeoutError";

/// DynamoDB's 5xx error codes: the SDK retries 500, 502, 503 and 504 answers.
const SERVER_ERRORS: [&str; 2] = ["InternalServerError", "ServiceUnavailable"];

/// The standard mode's retry quota (`aws-smithy-runtime`'s `TokenBucket`, legacy costs): its
/// capacity, a retry's cost after a throttle, and after a timeout or a transient error.
pub(crate) const QUOTA: u32 = 500;
const THROTTLING_RETRY_COST: u32 = 5;
const TRANSIENT_RETRY_COST: u32 = 10;

/// What a retry after `error` (an error code, or [`TIMED_OUT`]) costs, if the SDK retries it:
/// a throttle (its throttling codes), or a timeout, a transient code or a 5xx (transient).
pub(crate) fn retry_cost(error: &str) -> Option<u32> {
    if THROTTLING_ERRORS.contains(&error) {
        Some(THROTTLING_RETRY_COST)
    } else if error == TIMED_OUT
        || TRANSIENT_ERRORS.contains(&error)
        || SERVER_ERRORS.contains(&error)
    {
        Some(TRANSIENT_RETRY_COST)
    } else {
        None
    }
}

/// What a retry after this answer of the projector's executor costs, if the SDK retries it: a
/// single request's throttle (`contracts::dynamo::is_throttle`'s codes, all in the SDK's
/// throttling list), or a transient failure it retries.
pub(crate) fn answer_retry_cost(answer: &Answer) -> Option<u32> {
    match answer {
        Answer::Throttled => Some(THROTTLING_RETRY_COST),
        Answer::Transient(error) => retry_cost(error),
        _ => None,
    }
}

/// Whether the SDK takes an answer for a success (a response that is no error).
pub(crate) fn succeeded(answer: &Answer) -> bool {
    matches!(answer, Answer::Done | Answer::Read { .. })
}

/// One process's retry quota: every client of DynamoDB in it shares the bucket (the SDK keeps
/// one per retry partition, process-wide). Tokens left, and the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota(u32, u32);

impl Quota {
    /// A full bucket of `capacity` tokens (the SDK's: [`QUOTA`]).
    pub(crate) fn full(capacity: u32) -> Self {
        Self(capacity, capacity)
    }
}

/// One call through the SDK.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    /// When the call began: the operation timeout runs from it.
    began: i64,
    /// Attempts made.
    attempts: u32,
    /// Attempts allowed: the standard mode's, or one for a client built without retries.
    max_attempts: u32,
    /// The quota the call's last retry took (given back if the call then succeeds).
    permit: u32,
}

/// What the SDK does after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Attempt again at this time.
    Retry { at: i64 },
    /// Hand the failure to the caller now.
    Fail,
    /// The quota cannot pay for a retry: hand the failure to the caller now.
    OutOfQuota,
    /// The backoff outlasts the operation timeout: the call fails with a timeout then.
    TimedOut { at: i64 },
}

impl Call {
    /// A call beginning at `now`; `retried`: through a client with the SDK's standard retries
    /// (the projector's stamps go through one without: one attempt).
    pub(crate) fn new(now: i64, retried: bool) -> Self {
        let max_attempts = if retried {
            RetryConfig::standard().max_attempts()
        } else {
            1
        };
        Self {
            began: now,
            attempts: 0,
            max_attempts,
            permit: 0,
        }
    }

    /// Start an attempt at `now`: the time the SDK stops waiting for its answer (the attempt
    /// timeout, or the operation's if sooner).
    pub(crate) fn attempt(&mut self, now: i64) -> i64 {
        self.attempts += 1;
        (now + millis(ATTEMPT_TIMEOUT)).min(self.began + millis(OPERATION_TIMEOUT))
    }

    /// After the last attempt failed at `now` (`cost`: what a retry costs, if the SDK retries
    /// the error): try again after a drawn backoff, paid from `quota`, or fail. A retry's
    /// permit replaces the last one's, which is gone from the quota for good, as in the SDK.
    pub(crate) fn after_failure(
        &mut self,
        now: i64,
        cost: Option<u32>,
        quota: &mut Quota,
        rng: &mut StdRng,
    ) -> Next {
        let Some(cost) = cost.filter(|_| self.attempts < self.max_attempts) else {
            return Next::Fail;
        };
        let config = RetryConfig::standard();
        let exponential = millis(config.initial_backoff()) << (self.attempts - 1).min(16);
        let cap = exponential.min(millis(config.max_backoff()));
        let at = now + rng.random_range(0..=cap);
        if quota.0 < cost {
            return Next::OutOfQuota;
        }
        quota.0 -= cost;
        self.permit = cost;
        let timeout = self.began + millis(OPERATION_TIMEOUT);
        if at >= timeout {
            Next::TimedOut { at: timeout }
        } else {
            Next::Retry { at }
        }
    }
}

impl Call {
    /// The call succeeded: its last retry's permit goes back to `quota`, or, if it needed no
    /// retry, one token is earned back (up to the capacity).
    pub(crate) fn succeeded(&mut self, quota: &mut Quota) {
        let back = if self.permit > 0 { self.permit } else { 1 };
        quota.0 = (quota.0 + back).min(quota.1);
        self.permit = 0;
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    duration.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_sdk_retries_timeouts_and_throttles_not_conflicts_or_cancellations() {
        assert_eq!(retry_cost(TIMED_OUT), Some(TRANSIENT_RETRY_COST));
        assert_eq!(
            retry_cost("InternalServerError"),
            Some(TRANSIENT_RETRY_COST)
        );
        assert_eq!(
            retry_cost("ThrottlingException"),
            Some(THROTTLING_RETRY_COST)
        );
        for name in [
            "TransactionConflictException",
            "TransactionCanceledException",
            "ConditionalCheckFailedException",
        ] {
            assert_eq!(retry_cost(name), None, "{name}");
        }
        // Every single request's throttle the executor reads as one, the SDK retries.
        for name in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(contracts::dynamo::is_throttle(Some(name)));
            assert_eq!(retry_cost(name), Some(THROTTLING_RETRY_COST), "{name}");
        }
        assert_eq!(
            answer_retry_cost(&Answer::Throttled),
            Some(THROTTLING_RETRY_COST)
        );
        assert_eq!(answer_retry_cost(&Answer::Cancelled(vec![])), None);
    }

    #[test]
    fn three_attempts_within_the_operation_timeout_then_the_failure() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..200 {
            let mut quota = Quota::full(QUOTA);
            let mut call = Call::new(0, true);
            let mut now = 0;
            let mut attempts = 0;
            loop {
                let cut = call.attempt(now);
                attempts += 1;
                assert!(cut - now <= millis(ATTEMPT_TIMEOUT), "round {round}");
                assert!(cut <= millis(OPERATION_TIMEOUT), "round {round}");
                now = cut; // every attempt times out
                let cost = retry_cost(TIMED_OUT);
                match call.after_failure(now, cost, &mut quota, &mut rng) {
                    Next::Retry { at } => {
                        // Full jitter: at most 1 s after the first attempt, 2 s after the second.
                        assert!(at - now <= 1_000 << (attempts - 1));
                        now = at;
                    }
                    Next::Fail => break,
                    Next::TimedOut { at } => {
                        assert_eq!(at, millis(OPERATION_TIMEOUT));
                        break;
                    }
                    Next::OutOfQuota => panic!("a full quota pays for two retries"),
                }
            }
            assert!((2..=3).contains(&attempts), "round {round}: {attempts}");
        }
        let mut quota = Quota::full(QUOTA);
        let mut once = Call::new(0, false);
        once.attempt(0);
        let timed_out = retry_cost(TIMED_OUT);
        assert_eq!(
            once.after_failure(5, timed_out, &mut quota, &mut rng),
            Next::Fail
        );
        let mut call = Call::new(0, true);
        call.attempt(0);
        let conflict = retry_cost("TransactionConflictException");
        assert_eq!(
            call.after_failure(5, conflict, &mut quota, &mut rng),
            Next::Fail
        );
        assert_eq!(quota, Quota::full(QUOTA), "no retry, no cost");
    }

    #[test]
    fn retries_are_paid_from_the_quota_and_refused_once_it_runs_dry() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut quota = Quota::full(QUOTA);
        let timed_out = retry_cost(TIMED_OUT);
        // Fifty retries after timeouts spend the 500 tokens; the fifty-first is refused.
        for _ in 0..QUOTA / TRANSIENT_RETRY_COST {
            let mut call = Call::new(0, true);
            call.attempt(0);
            let next = call.after_failure(3_000, timed_out, &mut quota, &mut rng);
            assert!(matches!(next, Next::Retry { .. }), "{next:?}");
        }
        assert_eq!(quota.0, 0);
        let mut call = Call::new(0, true);
        call.attempt(0);
        let next = call.after_failure(3_000, timed_out, &mut quota, &mut rng);
        assert_eq!(next, Next::OutOfQuota);
        // A success after a retry gives that retry's cost back; a first-time success earns one.
        let mut retried = Call::new(0, true);
        retried.attempt(0);
        let throttled = retry_cost("ThrottlingException");
        quota = Quota(THROTTLING_RETRY_COST, QUOTA);
        let next = retried.after_failure(10, throttled, &mut quota, &mut rng);
        assert!(matches!(next, Next::Retry { .. }), "{next:?}");
        assert_eq!(quota.0, 0);
        retried.succeeded(&mut quota);
        assert_eq!(quota.0, THROTTLING_RETRY_COST);
        let mut first = Call::new(0, true);
        first.attempt(0);
        first.succeeded(&mut quota);
        assert_eq!(quota.0, THROTTLING_RETRY_COST + 1);
        let mut full = Quota::full(QUOTA);
        first.succeeded(&mut full);
        assert_eq!(full, Quota::full(QUOTA), "never above its capacity");
    }
}
