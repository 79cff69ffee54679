//! Lambda's DynamoDB event source mapping, in virtual time: records routed by partition key to
//! `shards × parallelization` consumers ([`bench::shards::consumer_of`], order kept per
//! partition key), each invoking with up to `batch_size` records once its batch is full or its
//! oldest record has waited the batching window. What a failed batch owes before anything
//! newer, and when it goes to the failure destination instead, is
//! [`contracts::event_source::Redelivery`]'s, as for every delivery path. An operator's
//! `replay` is a consumer too: one lane over the whole stream from its start, batch after batch,
//! retried (after a pause) until applied.

use std::collections::VecDeque;
use std::rc::Rc;

use contracts::change::{Decoded, Undecodable};
use contracts::event_source::{self, GiveUp, Redelivery};
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
    /// What is owed of a failed batch before anything newer.
    redelivery: Redelivery,
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
            redelivery: Redelivery::default(),
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
        if let Some(owed) = self.redelivery.owed() {
            return Some(owed);
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
        let ended = match ended {
            Ended::Answered(outcomes) => event_source::Ended::Answered {
                first_failure: outcomes.iter().position(|o| *o == Outcome::Failed),
            },
            Ended::FunctionError => {
                self.knowledge = Knowledge::default();
                event_source::Ended::FunctionError
            }
        };
        let give_up = match self.kind {
            Kind::Lambda => settings.give_up,
            Kind::Replay { .. } => GiveUp::NEVER,
        };
        let age = |i: usize| {
            let read_ms = self.pending.get(i).map_or(now_ms, |r| r.read_ms);
            std::time::Duration::from_millis((now_ms - read_ms).max(0) as u64)
        };
        let verdict = self.redelivery.ended(len, ended, give_up, age);
        self.pending.drain(..verdict.done);
        let given_up: Vec<Rc<Routed>> = self.pending.drain(..verdict.given_up).collect();
        let failed = verdict.done < len;
        if failed && matches!(self.kind, Kind::Replay { .. }) {
            self.retry_at = now_ms + REPLAY_RETRY_MS;
        }
        Settled {
            applied: verdict.done,
            failed,
            given_up: batch_info(shard, &given_up).map(|info| (info, given_up.len())),
        }
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
            give_up: GiveUp {
                retries: Some(max_retries),
                record_age: None,
            },
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

    #[test]
    fn a_consumer_drains_what_its_plan_settles_and_names_what_it_gives_up() {
        let settings = settings(1);
        let mut consumer = Consumer::new(Kind::Lambda);
        read(&mut consumer, 8);
        // 8 splits into 4 and 4, 4 into 2 and 2, 2 into 1 and 1: no retry used.
        for len in [8, 4, 2] {
            assert_eq!(consumer.due(0, &settings), Some(len));
            let settled = invoke(&mut consumer, Ended::FunctionError, &settings);
            assert!(settled.given_up.is_none());
        }
        // One record failing whole is retried once (one retry allowed), then given up.
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
