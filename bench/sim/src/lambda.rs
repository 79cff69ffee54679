//! Lambda's DynamoDB event source mapping, in virtual time: records routed by partition key to
//! `shards × parallelization` consumers ([`bench::shards::consumer_of`], order kept per
//! partition key), each invoking with up to `batch_size` records once its batch is full or its
//! oldest record has waited the batching window. A failed batch is owed before anything newer,
//! as the deployed mapping (`ReportBatchItemFailures`, `BisectBatchOnFunctionError`) does it
//! and as `projector::poller` delivers locally:
//! - a partial batch response checkpoints before the first failed record, and only the batch's
//!   remaining records are sent again ("the batch is bisected at the returned sequence number
//!   and Lambda retries only the remaining records", AWS Lambda's guide, partial batch
//!   responses for DynamoDB); that counts as a retry (AWS does not say; counting it is the
//!   stricter reading, and the poller's);
//! - a function error (a crash, a timeout) splits the batch in two, the halves sent one after
//!   the other, and replaces the execution environment; a split does not count as a retry
//!   ("Splitting batches doesn't consume the retry quota", the guide's error handling for
//!   DynamoDB), a single record failing whole does.
//!
//! Records failing past `max_retries`, or older than `max_record_age`, go to the failure
//! destination as one batch and the consumer moves on. An operator's `replay` is a consumer
//! too: one lane over the whole stream from its start, batch after batch, retried (after a
//! pause) until applied.

use std::collections::VecDeque;
use std::rc::Rc;

use contracts::change::{Decoded, Undecodable};
use projector::batch::{Knowledge, Outcome};

use bench::shards::{BatchInfo, ShardSettings};

/// A record as Lambda delivers it, decoded once, and when the event source read it. Its text
/// is the table's (shared with its log), not a parsed tree: a viral post's consumers hold
/// tens of thousands of records waiting, and the tree is several times the text's size.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) json: Rc<str>,
    pub(crate) decoded: Result<Decoded, Undecodable>,
    pub(crate) read_ms: i64,
}

impl Routed {
    fn sequence(&self) -> &str {
        match &self.decoded {
            Ok(d) => &d.sequence,
            Err(e) => &e.sequence,
        }
    }
}

/// Who reads records and invokes the projector with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One of Lambda's consumers of a shard.
    Lambda,
    /// An operator's `replay`, reading the whole stream from its start, as the CLI does.
    Replay {
        /// The sequence number of the last record it read (`None`: none yet).
        read_to: Option<u128>,
        /// It has read to the stream's end.
        caught_up: bool,
    },
}

/// Records per batch of a replay (the CLI's).
pub(crate) const REPLAY_BATCH: usize = 1000;
/// How long a replay waits before sending a failed batch again.
pub(crate) const REPLAY_RETRY_MS: i64 = 1_000;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The function answered: each record's outcome.
    Answered(Vec<Outcome>),
    /// The function failed as a whole (it crashed, or the timeout ended it).
    FunctionError,
}

/// One consumer.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub(crate) kind: Kind,
    /// Records read, not yet applied or given up on, in order.
    pub(crate) pending: VecDeque<Rc<Routed>>,
    /// How many of `pending` the running invocation has, if one runs.
    pub(crate) running: Option<usize>,
    /// Failed attempts at the records at the head (splits aside).
    attempts: u32,
    /// What is owed of a failed batch, as the batches to send before anything newer (the next
    /// last): a partial response's remaining records, a function error's halves.
    owed: Vec<usize>,
    /// What the warm execution environment knows.
    pub(crate) knowledge: Knowledge,
    /// Records applied so far (or redundant, ignored, quarantined).
    pub(crate) applied: u64,
    /// No invocation before this.
    retry_at: i64,
}

/// What became of the records of a finished invocation.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Records applied (or redundant, ignored, quarantined).
    pub(crate) applied: usize,
    /// Records failed: the invocation left some to deliver again (or gave them up).
    pub(crate) failed: bool,
    /// A batch given up on, as the failure destination hears of it.
    pub(crate) given_up: Option<(BatchInfo, usize)>,
}

impl Consumer {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            pending: VecDeque::new(),
            running: None,
            attempts: 0,
            owed: Vec::new(),
            knowledge: Knowledge::default(),
            applied: 0,
            retry_at: i64::MIN,
        }
    }

    /// Nothing to do: no record pending, none running, and a replay at the stream's end.
    pub(crate) fn idle(&self) -> bool {
        self.pending.is_empty()
            && self.running.is_none()
            && !matches!(
                self.kind,
                Kind::Replay {
                    caught_up: false,
                    ..
                }
            )
    }

    /// How many records to invoke with now, if it is time.
    pub(crate) fn due(&self, now_ms: i64, settings: &ShardSettings) -> Option<usize> {
        if self.running.is_some() || now_ms < self.retry_at {
            return None;
        }
        let oldest = self.pending.front()?;
        if let Some(owed) = self.owed.last() {
            return Some(*owed);
        }
        let limit = batch_size(&self.kind, settings);
        let len = self.pending.len().min(limit);
        let window = settings.batching_window.as_millis() as i64;
        let full = len >= limit;
        let waited = now_ms >= oldest.read_ms + window;
        (full || waited || matches!(self.kind, Kind::Replay { .. })).then_some(len)
    }

    /// The running invocation ended at `now_ms`.
    pub(crate) fn finished(
        &mut self,
        ended: Ended,
        now_ms: i64,
        settings: &ShardSettings,
        shard: usize,
    ) -> Settled {
        let len = self.running.take().expect("a running invocation");
        // The batch was the owed one, if any was owed.
        self.owed.pop();
        let mut settled = Settled::default();
        let failed_from = match &ended {
            Ended::Answered(outcomes) => outcomes.iter().position(|o| *o == Outcome::Failed),
            Ended::FunctionError => Some(0),
        };
        let Some(failed_from) = failed_from else {
            self.pending.drain(..len);
            settled.applied = len;
            self.attempts = 0;
            return settled;
        };
        // A partial batch response checkpoints before the failed record.
        self.pending.drain(..failed_from);
        settled.applied = failed_from;
        settled.failed = true;
        let rest = len - failed_from;
        let split = ended == Ended::FunctionError && len > 1;
        if ended == Ended::FunctionError {
            self.knowledge = Knowledge::default();
        }
        if !split {
            self.attempts += 1;
        }
        if let Kind::Replay { .. } = self.kind {
            self.retry_at = now_ms + REPLAY_RETRY_MS;
        } else {
            let too_many = settings.max_retries.is_some_and(|max| self.attempts > max);
            let too_old = settings.max_record_age.is_some_and(|age| {
                self.pending
                    .front()
                    .is_some_and(|r| now_ms - r.read_ms > age.as_millis() as i64)
            });
            if too_many || too_old {
                let batch: Vec<Rc<Routed>> = self.pending.drain(..rest).collect();
                settled.given_up = batch_info(shard, &batch).map(|info| (info, batch.len()));
                self.attempts = 0;
                return settled;
            }
        }
        if split {
            self.owed.extend([len - len / 2, len / 2]);
        } else {
            self.owed.push(rest);
        }
        settled
    }
}

fn batch_size(kind: &Kind, settings: &ShardSettings) -> usize {
    match kind {
        Kind::Lambda => settings.batch_size,
        Kind::Replay { .. } => REPLAY_BATCH,
    }
}

fn batch_info(shard: usize, batch: &[Rc<Routed>]) -> Option<BatchInfo> {
    let (first, last) = (batch.first()?, batch.last()?);
    let at = |r: &Routed| chrono::DateTime::from_timestamp_millis(r.read_ms).unwrap_or_default();
    Some(BatchInfo {
        shard_id: format!("shardId-consumer-{shard:04}"),
        start_sequence_number: first.sequence().to_owned(),
        end_sequence_number: last.sequence().to_owned(),
        approximate_arrival_of_first_record: at(first),
        approximate_arrival_of_last_record: at(last),
        batch_size: batch.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(max_retries: u32) -> ShardSettings {
        ShardSettings {
            batch_size: 8,
            batching_window: Duration::ZERO,
            max_retries: Some(max_retries),
            max_record_age: None,
            ..ShardSettings::consumers(1, 1)
        }
    }

    fn read(consumer: &mut Consumer, records: usize) {
        for _ in 0..records {
            let sequence = consumer.pending.len().to_string();
            consumer.pending.push_back(Rc::new(Routed {
                json: "{}".into(),
                decoded: Err(Undecodable {
                    event_id: sequence.clone(),
                    sequence,
                    reason: "a test's record".into(),
                }),
                read_ms: 0,
            }));
        }
    }

    /// Invoke with what is due; end it as `ended`.
    fn invoke(consumer: &mut Consumer, ended: Ended, settings: &ShardSettings) -> Settled {
        let len = consumer.due(0, settings).expect("a batch due");
        consumer.running = Some(len);
        consumer.finished(ended, 0, settings, 0)
    }

    fn failed_from(len: usize, from: usize) -> Ended {
        Ended::Answered(
            (0..len)
                .map(|i| {
                    if i < from {
                        Outcome::Applied
                    } else {
                        Outcome::Failed
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn a_partial_failure_sends_only_the_batch_s_remaining_records_again() {
        let settings = settings(10);
        let mut consumer = Consumer::new(Kind::Lambda);
        read(&mut consumer, 8);
        let settled = invoke(&mut consumer, failed_from(8, 5), &settings);
        assert_eq!(settled.applied, 5);
        read(&mut consumer, 8);
        assert_eq!(
            consumer.due(0, &settings),
            Some(3),
            "the rest, nothing newer"
        );
        let settled = invoke(&mut consumer, failed_from(3, 3), &settings);
        assert_eq!(settled.applied, 3);
        assert_eq!(consumer.due(0, &settings), Some(8), "a full batch again");
    }

    #[test]
    fn splits_do_not_count_as_retries_and_a_failing_record_goes_to_the_destination() {
        let settings = settings(1);
        let mut consumer = Consumer::new(Kind::Lambda);
        read(&mut consumer, 8);
        // 8 splits into 4 and 4, 4 into 2 and 2, 2 into 1 and 1: no retry used.
        for len in [8, 4, 2] {
            assert_eq!(consumer.due(0, &settings), Some(len));
            let settled = invoke(&mut consumer, Ended::FunctionError, &settings);
            assert!(settled.given_up.is_none());
        }
        // One record failing whole is retried once (`max_retries` 1), then given up.
        let settled = invoke(&mut consumer, Ended::FunctionError, &settings);
        assert!(settled.given_up.is_none());
        let settled = invoke(&mut consumer, Ended::FunctionError, &settings);
        let (info, records) = settled.given_up.expect("given up");
        assert_eq!((info.batch_size, records), (1, 1));
        // Then the halves still owed, one after the other.
        for len in [1, 2, 4] {
            assert_eq!(consumer.due(0, &settings), Some(len));
            let settled = invoke(&mut consumer, Ended::Answered(vec![]), &settings);
            assert_eq!(settled.applied, len);
        }
        assert!(consumer.pending.is_empty());
    }
}
