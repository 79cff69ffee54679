//! The AWS SDK's own retries of one call, in virtual time, as the projector's clients and
//! `rebuild`'s make them (`contracts::dynamo::sdk_config`): the standard retry mode's attempts
//! and full-jitter backoff (`RetryConfig::standard()`, as `aws-smithy-runtime` computes it:
//! a draw in `[0, min(initial × 2^(n-1), max)]` after the `n`th attempt), each attempt cut at the
//! attempt timeout and the whole call at the operation timeout, and only the errors the SDK
//! classifies as retryable tried again: timeouts, its throttling and transient error codes
//! (`aws_runtime::retries::classifiers`) and 5xx answers. A transaction's cancellation is none
//! of them, nor a single write's `TransactionConflictException`: those reach the caller at once.
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

/// Whether the SDK tries a call again after an attempt failed with `error` (an error code, or
/// [`TIMED_OUT`]).
pub(crate) fn retries(error: &str) -> bool {
    error == TIMED_OUT
        || THROTTLING_ERRORS.contains(&error)
        || TRANSIENT_ERRORS.contains(&error)
        || SERVER_ERRORS.contains(&error)
}

/// Whether the SDK tries a call of the projector's executor again after this answer: a single
/// request's throttle (`contracts::dynamo::is_throttle`'s codes, all in the SDK's throttling
/// list), or a transient failure it retries.
pub(crate) fn retries_answer(answer: &Answer) -> bool {
    match answer {
        Answer::Throttled => true,
        Answer::Transient(error) => retries(error),
        _ => false,
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
}

/// What the SDK does after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Attempt again at this time.
    Retry { at: i64 },
    /// Hand the failure to the caller now.
    Fail,
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
        }
    }

    /// Start an attempt at `now`: the time the SDK stops waiting for its answer (the attempt
    /// timeout, or the operation's if sooner).
    pub(crate) fn attempt(&mut self, now: i64) -> i64 {
        self.attempts += 1;
        (now + millis(ATTEMPT_TIMEOUT)).min(self.began + millis(OPERATION_TIMEOUT))
    }

    /// After the last attempt failed at `now` (`retryable`: with an error the SDK retries):
    /// try again after a drawn backoff, or fail.
    pub(crate) fn after_failure(&self, now: i64, retryable: bool, rng: &mut StdRng) -> Next {
        if !retryable || self.attempts >= self.max_attempts {
            return Next::Fail;
        }
        let config = RetryConfig::standard();
        let exponential = millis(config.initial_backoff()) << (self.attempts - 1).min(16);
        let cap = exponential.min(millis(config.max_backoff()));
        let at = now + rng.random_range(0..=cap);
        let timeout = self.began + millis(OPERATION_TIMEOUT);
        if at >= timeout {
            Next::TimedOut { at: timeout }
        } else {
            Next::Retry { at }
        }
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
        assert!(retries(TIMED_OUT));
        assert!(retries("ProvisionedThroughputExceededException"));
        assert!(retries("ThrottlingException"));
        assert!(retries("InternalServerError"));
        assert!(!retries("TransactionConflictException"));
        assert!(!retries("TransactionCanceledException"));
        assert!(!retries("ConditionalCheckFailedException"));
        // Every single request's throttle the executor reads as one, the SDK retries.
        for name in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(contracts::dynamo::is_throttle(Some(name)) && retries(name));
        }
    }

    #[test]
    fn three_attempts_within_the_operation_timeout_then_the_failure() {
        let mut rng = StdRng::seed_from_u64(7);
        for seed_round in 0..200 {
            let mut call = Call::new(0, true);
            let mut now = 0;
            let mut attempts = 0;
            loop {
                let cut = call.attempt(now);
                attempts += 1;
                assert!(cut - now <= millis(ATTEMPT_TIMEOUT), "round {seed_round}");
                assert!(cut <= millis(OPERATION_TIMEOUT), "round {seed_round}");
                now = cut; // every attempt times out
                match call.after_failure(now, true, &mut rng) {
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
                }
            }
            assert!(
                (2..=3).contains(&attempts),
                "round {seed_round}: {attempts}"
            );
        }
        let mut once = Call::new(0, false);
        once.attempt(0);
        assert_eq!(once.after_failure(5, true, &mut rng), Next::Fail);
        let mut call = Call::new(0, true);
        call.attempt(0);
        let conflict = retries("TransactionConflictException");
        assert_eq!(call.after_failure(5, conflict, &mut rng), Next::Fail);
        assert!(retries_answer(&Answer::Throttled));
        assert!(!retries_answer(&Answer::Cancelled(vec![])));
    }
}
