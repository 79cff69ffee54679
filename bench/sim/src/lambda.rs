//! Lambda's DynamoDB event source mapping, in virtual time: records routed by partition key to
//! `shards × parallelization` consumers ([`bench::shards::consumer_of`], order kept per
//! partition key), each invoking with up to `batch_size` records once its batch is full or its
//! oldest record has waited the batching window; a partial batch response checkpoints before
//! the first failed record and the rest is sent again; a function error (a crash, a timeout)
//! halves the batch (`BisectBatchOnFunctionError`) and replaces the execution environment; a
//! batch failing past `max_retries`, or with a record older than `max_record_age`, goes to the
//! failure destination and the consumer moves on. An operator's `replay` is a consumer too:
//! one lane over the whole stream from its start, batch after batch, retried until applied.

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
    /// Failed attempts at the batch at the head.
    attempts: u32,
    /// The batch size, halved by function errors.
    limit: usize,
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
    /// A batch given up on, as the failure destination hears of it.
    pub(crate) given_up: Option<(BatchInfo, usize)>,
}

impl Consumer {
    pub(crate) fn new(kind: Kind, settings: &ShardSettings) -> Self {
        Self {
            limit: batch_size(&kind, settings),
            kind,
            pending: VecDeque::new(),
            running: None,
            attempts: 0,
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
        let len = self.pending.len().min(self.limit);
        let window = settings.batching_window.as_millis() as i64;
        let full = len >= self.limit;
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
        let mut settled = Settled::default();
        let failed_from = match &ended {
            Ended::Answered(outcomes) => outcomes.iter().position(|o| *o == Outcome::Failed),
            Ended::FunctionError => Some(0),
        };
        let Some(failed_from) = failed_from else {
            self.pending.drain(..len);
            settled.applied = len;
            self.attempts = 0;
            self.limit = batch_size(&self.kind, settings);
            return settled;
        };
        // A partial batch response checkpoints before the failed record.
        self.pending.drain(..failed_from);
        settled.applied = failed_from;
        self.attempts += 1;
        if ended == Ended::FunctionError {
            self.knowledge = Knowledge::default();
            self.limit = (len / 2).max(1);
        }
        if let Kind::Replay { .. } = self.kind {
            self.retry_at = now_ms + REPLAY_RETRY_MS;
            return settled;
        }
        let rest = len - failed_from;
        let too_many = settings.max_retries.is_some_and(|max| self.attempts > max);
        let too_old = settings.max_record_age.is_some_and(|age| {
            self.pending
                .front()
                .is_some_and(|r| now_ms - r.read_ms > age.as_millis() as i64)
        });
        if too_many || too_old {
            let batch: Vec<Rc<Routed>> = self
                .pending
                .drain(..rest.max(1).min(self.pending.len()))
                .collect();
            settled.given_up = batch_info(shard, &batch).map(|info| (info, batch.len()));
            self.attempts = 0;
            self.limit = batch_size(&self.kind, settings);
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
