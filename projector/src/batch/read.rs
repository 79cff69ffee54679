//! The batch's reads: the like items screened before counting, and the posts whose view
//! shard count an instance learns before stamping. Each read asks for at most [`READ_KEYS`]
//! keys and is retried on its own; what a failed read would have said is left unknown, which
//! is always safe (the conditions still decide; a view is stamped from shard 0).

use contracts::items::{Item, key_of};
use contracts::keys::ItemKey;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Answer, Cx, Request, Running, Work};

/// Keys per read (DynamoDB's `BatchGetItem` limit).
const READ_KEYS: usize = 100;

/// Consistent reads of some keys ([`READ_KEYS`] at most), retried as `Backoff::STANDARD`
/// says (unprocessed keys too). A read that fails teaches nothing about its keys: they stay
/// out of `answered`.
#[derive(Debug)]
pub(crate) struct Read {
    keys: Vec<ItemKey>,
    sent: u32,
    phase: ReadPhase,
    found: Vec<Item>,
    /// Keys read: found, or known not to exist.
    answered: Vec<ItemKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPhase {
    Ready,
    Sent,
    Backoff(i64),
    Done,
}

impl Read {
    /// The reads of `keys`.
    pub(crate) fn of(keys: Vec<ItemKey>) -> Running<Read> {
        Running::new(
            keys.chunks(READ_KEYS)
                .map(|keys| Read {
                    keys: keys.to_vec(),
                    sent: 0,
                    phase: ReadPhase::Ready,
                    found: Vec::new(),
                    answered: Vec::new(),
                })
                .collect(),
        )
    }
}

impl Work for Read {
    fn poll(&mut self, cx: &mut Cx<'_>) -> Option<Request> {
        if let ReadPhase::Backoff(until) = self.phase
            && until <= cx.now_ms
        {
            self.phase = ReadPhase::Ready;
        }
        if self.phase != ReadPhase::Ready {
            return None;
        }
        if cx.passed(cx.now_ms) {
            self.phase = ReadPhase::Done;
            return None;
        }
        self.sent += 1;
        self.phase = ReadPhase::Sent;
        Some(Request::Read {
            keys: self.keys.clone(),
        })
    }

    fn answer(&mut self, answer: Answer, cx: &mut Cx<'_>) -> Option<Request> {
        let policy = contracts::dynamo::Backoff::STANDARD;
        let retry = match answer {
            Answer::Read { items, unprocessed } => {
                let left: FxHashSet<&ItemKey> = unprocessed.iter().collect();
                let read = self.keys.iter().filter(|k| !left.contains(k)).cloned();
                self.answered.extend(read);
                self.found.extend(items);
                self.keys = unprocessed;
                !self.keys.is_empty()
            }
            Answer::Throttled | Answer::Transient(_) => true,
            other => {
                tracing::warn!(answer = %other.describe(), "a read failed: its keys stay unread");
                false
            }
        };
        self.phase = ReadPhase::Done;
        if retry && policy.may_retry(self.sent) {
            let until = cx.now_ms + cx.backoff(policy, self.sent);
            if !cx.passed(until) {
                self.phase = ReadPhase::Backoff(until);
            }
        }
        None
    }

    fn is_done(&self) -> bool {
        self.phase == ReadPhase::Done
    }

    fn wake_at(&self) -> Option<i64> {
        match self.phase {
            ReadPhase::Backoff(at) => Some(at),
            _ => None,
        }
    }
}

/// What a stage's reads found: each key read, with its item if it exists.
pub(crate) fn read_results(reads: Running<Read>) -> FxHashMap<ItemKey, Option<Item>> {
    let mut results = FxHashMap::default();
    for read in reads.units {
        results.extend(read.answered.into_iter().map(|key| (key, None)));
        for item in read.found {
            if let Some(key) = key_of(&item) {
                results.insert(key, Some(item));
            }
        }
    }
    results
}
