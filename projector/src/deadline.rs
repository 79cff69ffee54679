//! When an invocation must be done. Lambda gives each invocation a deadline; a batch still
//! being written when it passes gets no partial batch response (the whole batch is retried
//! and bisected, and eventually given up to the failure queue). So the projector stops
//! starting writes [`MARGIN`] before the deadline, abandons calls still in flight then, and
//! reports what it did not finish as failed: Lambda re-delivers from there, which is safe
//! because every write is conditional.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time kept back from Lambda's deadline to answer (the response and the metrics line).
pub const MARGIN: Duration = Duration::from_secs(2);

/// How long one batch may take: the deployed function's timeout (`infra/runtime.json`), and
/// the budget of each batch the local poller, `replay` and `rebuild` apply, so a batch that
/// cannot finish ends with its records failed (and re-delivered) there as it would on AWS.
pub const BATCH_TIME: Duration = Duration::from_secs(60);

/// The instant after which no write starts, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline(None);

    /// Stop `within` from now.
    pub fn after(within: Duration) -> Self {
        Deadline(Some(Instant::now() + within))
    }

    /// A batch's deadline outside Lambda: [`BATCH_TIME`] less [`MARGIN`] from now.
    pub fn batch() -> Self {
        Self::after(BATCH_TIME.saturating_sub(MARGIN))
    }

    /// Lambda's deadline (milliseconds since the epoch) less [`MARGIN`].
    ///
    /// cargo-lambda's runtime emulator sends the timeout itself instead (milliseconds from
    /// now, e.g. 600000). A value before 2020 cannot be an epoch deadline, so it is read so.
    pub fn lambda(deadline_ms: u64) -> Self {
        const EPOCH_2020_MS: u64 = 1_577_836_800_000;
        let left = if deadline_ms < EPOCH_2020_MS {
            Duration::from_millis(deadline_ms)
        } else {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        };
        Self::after(left.saturating_sub(MARGIN))
    }

    /// The time left for writes (zero once passed), or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the time for writes is up.
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// `work`, or `None` if the deadline passes first (the work is then abandoned).
    pub async fn run<F: Future>(&self, work: F) -> Option<F::Output> {
        match self.0 {
            None => Some(work.await),
            Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_past_the_deadline_is_abandoned() {
        let deadline = Deadline::after(Duration::from_millis(100));
        assert!(!deadline.passed());
        assert_eq!(deadline.run(async { 1 }).await, Some(1));
        let late = deadline
            .run(tokio::time::sleep(Duration::from_secs(1)))
            .await;
        assert_eq!(late, None);
        assert!(deadline.passed());
        assert_eq!(Deadline::NONE.run(async { 2 }).await, Some(2));
        assert!(!Deadline::NONE.passed());
    }

    #[test]
    fn lambdas_deadline_keeps_the_margin() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(
                Deadline::lambda(now_ms + 1_000).passed(),
                "1 s left: under the margin"
            );
            assert!(!Deadline::lambda(now_ms + 60_000).passed());
        });
    }
}
