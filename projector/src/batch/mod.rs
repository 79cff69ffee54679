//! One batch's projection as a pure state machine: every decision about a record's path,
//! no I/O, no clock, no randomness of its own (tikv/raft-rs's `step / ready / advance` is the
//! shape). The executor (`crate::apply`) only sends, waits and translates:
//!
//! ```text
//! let mut batch = Batch::new(plan, records, knowledge, now, settings);
//! loop {
//!     for (ticket, request) in batch.poll(now) { send it }   // what to send now
//!     if batch.is_done() { break }
//!     wait for an answer, or until batch.wake_at(), or the deadline
//!     batch.answer(ticket, answer, now);                      // DynamoDB's answer
//! }
//! let (applied, knowledge) = batch.finish();                  // each record's outcome
//! ```
//!
//! A batch goes through stages, each sending requests side by side (at most [`CONCURRENCY`]):
//! 1. **screen**: read the like items the marks name, and drop marks that can only fail
//!    ([`count`]); undecodable records go to quarantine beside it;
//! 2. **count**: the counting transactions, in lanes (`plan::lanes`): the one-hop
//!    count and the hot counter's deltas and folds ([`count`], [`hot`]);
//! 3. **learn**: read the view shard count of each post about to be stamped that the instance
//!    does not know, so a view another instance spread is stamped spread from the start; a
//!    post that does not exist gets none of its likes stamped;
//! 4. **stamp**: the separate stamps of hot views, with growth and deferral ([`view`]). A
//!    like enters the view once counted: stamps of records whose counting failed are left to
//!    their re-delivery.
//!
//! What the instance knows across batches ([`Knowledge`]) comes in and goes back out. Time is
//! epoch milliseconds, given with every call; the deadline is a time too: nothing starts past
//! it, and what it stops is reported failed (`Outcome::Failed`), so the caller re-delivers
//! it, which is safe because every write is conditional.

pub mod count;
pub mod hot;
mod knowledge;
#[cfg(test)]
mod model;
mod read;
pub mod view;

use std::collections::VecDeque;

use contracts::change::{Change, Decoded, LikeRef, Undecodable};
use contracts::items::{Item, Post};
use contracts::keys::{ItemKey, PostId, TopicSlug};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};

pub use count::{Action, actions};
use count::{Lane, Screen, Settlement, screen_mark};
pub use knowledge::{HOT_MEMORY, Knowledge};
use read::{Read, read_results};
use view::Stamping;

use crate::plan::{CountTransaction, Plan, Stamp, lanes, plan_with_hot};

/// Requests in flight at once, per stage.
pub const CONCURRENCY: usize = 8;

/// What happened to one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its change is now in the counters and views.
    Applied,
    /// Nothing to do: its change was applied by an earlier delivery, or was overtaken (its
    /// like is gone or was liked again since, and the later record counts).
    Redundant,
    /// It needs no projection.
    Ignored,
    /// It could not be decoded and was quarantined.
    Quarantined,
    /// Not applied: must be delivered again.
    Failed,
}

/// What applying a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedBatch {
    /// Each record's outcome, in batch order.
    pub outcomes: Vec<Outcome>,
    /// Counting transactions DynamoDB cancelled (each billed in full, then retried).
    pub cancelled: usize,
}

/// Names a request until its answer comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// A request to DynamoDB, as data. The writes are `contracts::counting`'s.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Put an undecodable record into quarantine.
    Quarantine {
        /// Its place in the batch (the executor has its text).
        position: usize,
        /// What the decoder said.
        record: Undecodable,
        /// When.
        now_ms: i64,
    },
    /// Read items consistently.
    Read {
        /// At most 100.
        keys: Vec<ItemKey>,
    },
    /// A counting transaction: its items in the order of [`actions`].
    Count {
        /// What it counts.
        transaction: CountTransaction,
        /// The date of its tombstones and of the `hotUntil` checks.
        now_secs: i64,
    },
    /// Stamp a like into one of its post's view shards.
    Stamp {
        /// The like incarnation.
        like: LikeRef,
        /// The view shard.
        shard: u32,
    },
    /// Record more view shards on a post.
    Grow {
        /// The post's topic.
        topic: TopicSlug,
        /// The post.
        post: PostId,
        /// The count to record.
        shards: u32,
    },
    /// Defer a like's stamp (`stampDue`).
    Defer {
        /// The like incarnation.
        like: LikeRef,
        /// When.
        now_ms: i64,
    },
}

/// DynamoDB's answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The write or transaction took effect.
    Done,
    /// A read's answer.
    Read {
        /// The items found.
        items: Vec<Item>,
        /// Keys left unprocessed (short of capacity): neither found nor known missing.
        unprocessed: Vec<ItemKey>,
    },
    /// A transaction cancelled: one reason per action.
    Cancelled(Vec<Reason>),
    /// A single write's condition failed.
    ConditionFailed {
        /// The item as it was, if the write asked for it.
        old: Option<Item>,
    },
    /// Throttled (the SDK's own retries, if any, spent).
    Throttled,
    /// Anything else worth another try: a timeout, an unreachable endpoint, a 5xx.
    Transient(String),
    /// A bug or a misconfiguration.
    Permanent(String),
    /// Given up at the deadline while in flight: it may or may not have taken effect.
    Abandoned,
}

/// Why DynamoDB cancelled one action of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Nothing wrong with this action (DynamoDB's `None`).
    None,
    /// Its condition failed.
    ConditionFailed {
        /// The item as it was, if the action asked for it.
        old: Option<Item>,
    },
    /// It met another transaction on its item.
    Conflict,
    /// Its item's partition (or an index's) throttled.
    Throttled,
    /// Any other code.
    Other(String),
}

impl Reason {
    /// DynamoDB's name for it (for logs: never the item).
    pub fn code(&self) -> &str {
        match self {
            Reason::None => "None",
            Reason::ConditionFailed { .. } => contracts::dynamo::CONDITION_FAILED,
            Reason::Conflict => "TransactionConflict",
            Reason::Throttled => "ThrottlingError",
            Reason::Other(code) => code,
        }
    }
}

impl Answer {
    /// A short description for logs (codes, never payloads).
    pub fn describe(&self) -> String {
        match self {
            Answer::Done => "done".into(),
            Answer::Read { unprocessed, .. } => format!("read, {} unprocessed", unprocessed.len()),
            Answer::Cancelled(reasons) => {
                let codes: Vec<&str> = reasons.iter().map(Reason::code).collect();
                format!("TransactionCanceled [{}]", codes.join(", "))
            }
            Answer::ConditionFailed { .. } => "ConditionalCheckFailed".into(),
            Answer::Throttled => "throttled".into(),
            Answer::Transient(what) | Answer::Permanent(what) => what.clone(),
            Answer::Abandoned => "abandoned at the deadline".into(),
        }
    }
}

/// How a batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Defer a stamp when its view throttles, instead of failing its records (off for
    /// rebuild, whose recount must see every stamp it asked for).
    pub defers_stamps: bool,
    /// The time after which nothing starts (epoch ms), if any.
    pub deadline_ms: Option<i64>,
    /// Seeds the backoff's jitter.
    pub seed: u64,
}

/// What the parts of the machine share while they decide.
pub(crate) struct Cx<'a> {
    pub(crate) now_ms: i64,
    pub(crate) knowledge: &'a mut Knowledge,
    pub(crate) settlement: &'a mut Settlement,
    pub(crate) cancelled: &'a mut usize,
    pub(crate) defers_stamps: bool,
    deadline_ms: Option<i64>,
    rng: &'a mut StdRng,
}

impl Cx<'_> {
    /// Whether `at` is past the deadline.
    pub(crate) fn passed(&self, at: i64) -> bool {
        self.deadline_ms.is_some_and(|deadline| at >= deadline)
    }

    /// The pause (ms) after failed attempt `attempt`.
    pub(crate) fn backoff(&mut self, policy: contracts::dynamo::Backoff, attempt: u32) -> i64 {
        policy.jittered(attempt, self.rng.random()).as_millis() as i64
    }
}

/// A unit of work in a stage: sends one request at a time, and decides on each answer,
/// until done.
pub(crate) trait Work {
    /// Move on at `cx.now_ms`: the request to send now, if any.
    fn poll(&mut self, cx: &mut Cx<'_>) -> Option<Request>;
    /// DynamoDB's answer to the request in flight; a request to send at once, if any.
    fn answer(&mut self, answer: Answer, cx: &mut Cx<'_>) -> Option<Request>;
    /// Whether it is settled (nothing in flight, nothing more to send).
    fn is_done(&self) -> bool;
    /// When it wants to be woken, if it waits.
    fn wake_at(&self) -> Option<i64>;
}

#[derive(Debug)]
enum Stage {
    Screen(Running<Read>),
    Count(Running<Lane>),
    Learn(Running<Read>),
    Stamp(Running<Stamping>),
    Done,
}

impl Stage {
    /// The stage's work, unless it is done.
    fn running(&mut self) -> Option<&mut dyn Stepping> {
        match self {
            Stage::Screen(reads) | Stage::Learn(reads) => Some(reads),
            Stage::Count(lanes) => Some(lanes),
            Stage::Stamp(stamps) => Some(stamps),
            Stage::Done => None,
        }
    }

    fn wake_at(&self) -> Option<i64> {
        match self {
            Stage::Screen(reads) | Stage::Learn(reads) => reads.wake_at(),
            Stage::Count(lanes) => lanes.wake_at(),
            Stage::Stamp(stamps) => stamps.wake_at(),
            Stage::Done => None,
        }
    }
}

/// Units of work started in order, at most [`CONCURRENCY`] at a time.
#[derive(Debug)]
struct Running<T> {
    units: Vec<T>,
    /// Started and not done.
    active: Vec<usize>,
    next: usize,
}

/// A stage's work, whatever its units.
trait Stepping {
    /// The requests to send now (unit index, request), starting units as others finish.
    fn poll(&mut self, cx: &mut Cx<'_>) -> Vec<(usize, Request)>;
    /// The answer to unit `i`'s request; a request of its to send at once, if any.
    fn answer(&mut self, i: usize, answer: Answer, cx: &mut Cx<'_>) -> Option<Request>;
    /// Whether every unit is done.
    fn is_done(&self) -> bool;
}

impl<T: Work> Running<T> {
    fn new(units: Vec<T>) -> Self {
        Self {
            units,
            active: Vec::new(),
            next: 0,
        }
    }

    fn wake_at(&self) -> Option<i64> {
        self.active
            .iter()
            .filter_map(|&i| self.units[i].wake_at())
            .min()
    }
}

impl<T: Work> Stepping for Running<T> {
    fn poll(&mut self, cx: &mut Cx<'_>) -> Vec<(usize, Request)> {
        let mut requests = Vec::new();
        let mut i = 0;
        loop {
            if i == self.active.len() {
                if self.active.len() >= CONCURRENCY || self.next == self.units.len() {
                    return requests;
                }
                self.active.push(self.next);
                self.next += 1;
            }
            let unit = self.active[i];
            if let Some(request) = self.units[unit].poll(cx) {
                requests.push((unit, request));
            }
            if self.units[unit].is_done() {
                self.active.remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn answer(&mut self, i: usize, answer: Answer, cx: &mut Cx<'_>) -> Option<Request> {
        self.units[i].answer(answer, cx)
    }

    fn is_done(&self) -> bool {
        self.next == self.units.len() && self.active.iter().all(|&i| self.units[i].is_done())
    }
}

/// What a ticket's answer is for.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// The quarantine of the record at this position.
    Quarantine(usize),
    /// A unit of the stage's work.
    Work(usize),
}

/// One batch's projection (see the module docs).
#[derive(Debug)]
pub struct Batch {
    settings: Settings,
    rng: StdRng,
    knowledge: Knowledge,
    outcomes: Vec<Outcome>,
    cancelled: usize,
    settlement: Settlement,
    next_ticket: u64,
    in_flight: FxHashMap<Ticket, Unit>,
    /// Requests decided on an answer, sent with the next poll.
    outbox: Vec<(Ticket, Request)>,
    quarantine: VecDeque<(usize, Undecodable)>,
    /// Counting transactions, screened in the first stage.
    transactions: Vec<CountTransaction>,
    /// Stamps to write once counting is done.
    stamps: Vec<Stamp>,
    stage: Stage,
}

impl Batch {
    /// The batch of decoded `records` (one per record, in order), planned with what the
    /// instance knows at `now_ms`.
    pub fn of_records(
        records: &[Result<Decoded, Undecodable>],
        knowledge: &Knowledge,
        now_ms: i64,
        settings: Settings,
    ) -> Self {
        let posts = records
            .iter()
            .flatten()
            .filter_map(|record| match &record.change {
                Change::LikeAdded(like) | Change::LikeRemoved(like) | Change::StampDue(like) => {
                    Some(like.post)
                }
                Change::DeltaAdded(delta) => Some(delta.post_id),
                Change::Ignored(_) => None,
            })
            .collect();
        let known = knowledge.about(&posts, now_ms);
        let plan = plan_with_hot(records, &known.hot_posts());
        Self::with(plan, records.len(), known, settings)
    }

    /// The batch of `plan`, over `records` positions.
    pub fn new(
        plan: Plan,
        records: usize,
        knowledge: &Knowledge,
        now_ms: i64,
        settings: Settings,
    ) -> Self {
        let posts = plan
            .transactions
            .iter()
            .flat_map(|t| &t.posts)
            .map(|p| p.post.post)
            .chain(plan.stamps.iter().map(|s| s.like.post))
            .collect();
        let known = knowledge.about(&posts, now_ms);
        Self::with(plan, records, known, settings)
    }

    /// The batch of `plan`, knowing `knowledge` of its posts.
    fn with(plan: Plan, records: usize, knowledge: Knowledge, settings: Settings) -> Self {
        let keys = unique(
            plan.transactions
                .iter()
                .flat_map(|t| &t.posts)
                .flat_map(|p| &p.marks)
                .map(|m| m.like.item_key()),
        );
        Self {
            rng: StdRng::seed_from_u64(settings.seed),
            settings,
            knowledge,
            outcomes: vec![Outcome::Ignored; records],
            cancelled: 0,
            settlement: Settlement::default(),
            next_ticket: 0,
            in_flight: FxHashMap::default(),
            outbox: Vec::new(),
            quarantine: plan.undecodable.into(),
            transactions: plan.transactions,
            stamps: plan.stamps,
            stage: Stage::Screen(Read::of(keys)),
        }
    }

    fn ticket(&mut self, unit: Unit) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.in_flight.insert(ticket, unit);
        ticket
    }

    /// The requests to send at `now_ms`.
    pub fn poll(&mut self, now_ms: i64) -> Vec<(Ticket, Request)> {
        let mut requests = std::mem::take(&mut self.outbox);
        while let Some((position, record)) = self.quarantine.pop_front() {
            let ticket = self.ticket(Unit::Quarantine(position));
            requests.push((
                ticket,
                Request::Quarantine {
                    position,
                    record,
                    now_ms,
                },
            ));
        }
        loop {
            let (stage, mut cx) = self.split(now_ms);
            let started = match stage.running() {
                Some(work) => work.poll(&mut cx),
                None => Vec::new(),
            };
            let sent = !started.is_empty();
            for (i, request) in started {
                let ticket = self.ticket(Unit::Work(i));
                requests.push((ticket, request));
            }
            if !self.advance() && !sent {
                return requests;
            }
        }
    }

    /// The stage, and the context its parts decide in.
    fn split(&mut self, now_ms: i64) -> (&mut Stage, Cx<'_>) {
        (
            &mut self.stage,
            Cx {
                now_ms,
                knowledge: &mut self.knowledge,
                settlement: &mut self.settlement,
                cancelled: &mut self.cancelled,
                defers_stamps: self.settings.defers_stamps,
                deadline_ms: self.settings.deadline_ms,
                rng: &mut self.rng,
            },
        )
    }

    /// Go to the next stage if this one is done. `true` if it moved.
    fn advance(&mut self) -> bool {
        if !self.stage.running().is_some_and(|work| work.is_done()) {
            return false;
        }
        let next = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Screen(reads) => {
                self.screen(&read_results(reads));
                let transactions = std::mem::take(&mut self.transactions);
                let mut unassigned: Vec<Option<CountTransaction>> =
                    transactions.iter().cloned().map(Some).collect();
                let lanes = lanes(&transactions)
                    .into_iter()
                    .map(|lane| {
                        Lane::new(
                            lane.into_iter()
                                .filter_map(|i| unassigned[i].take())
                                .collect(),
                        )
                    })
                    .collect();
                Stage::Count(Running::new(lanes))
            }
            Stage::Count(_) => {
                self.settle();
                let keys = unique(
                    self.stamps
                        .iter()
                        .filter(|s| self.knowledge.view_shards(s.like.post).is_none())
                        .map(|s| ItemKey::Post(s.like.topic.clone(), s.like.post)),
                );
                Stage::Learn(Read::of(keys))
            }
            Stage::Learn(reads) => {
                let missing = self.learn(read_results(reads));
                // A post that does not exist counts none of its likes, and shows none.
                let stamps = std::mem::take(&mut self.stamps)
                    .into_iter()
                    .filter(|s| !missing.contains(&s.like.post))
                    .map(Stamping::new)
                    .collect();
                Stage::Stamp(Running::new(stamps))
            }
            Stage::Stamp(stamps) => {
                for stamping in stamps.units {
                    if stamping.done() == Some(false) {
                        record_outcome(
                            &mut self.outcomes,
                            &stamping.stamp.records,
                            Outcome::Failed,
                        );
                    }
                }
                Stage::Done
            }
            Stage::Done => Stage::Done,
        };
        self.stage = next;
        true
    }

    /// Drop the marks that the screening read shows cannot succeed. A key not read screens
    /// nothing: the transactions' conditions sort it out.
    fn screen(&mut self, read: &FxHashMap<ItemKey, Option<Item>>) {
        for count in self.transactions.iter_mut().flat_map(|t| &mut t.posts) {
            count.marks.retain(|mark| {
                let Some(item) = read.get(&mark.like.item_key()) else {
                    return true;
                };
                match screen_mark(item.as_ref(), mark) {
                    Screen::Send => true,
                    Screen::Drop { stamp } => {
                        self.settlement.dropped(mark, stamp);
                        false
                    }
                }
            });
        }
    }

    /// Counting is done: record its outcomes, and keep the stamps of records not failed (a
    /// like enters the view once counted; a failed count is re-delivered, stamp and all).
    fn settle(&mut self) {
        let settlement = std::mem::take(&mut self.settlement);
        for (records, outcome) in &settlement.outcomes {
            record_outcome(&mut self.outcomes, records, *outcome);
        }
        self.stamps.extend(settlement.stamps);
        let outcomes = &self.outcomes;
        self.stamps.retain(|stamp| {
            stamp
                .records
                .iter()
                .all(|&position| outcomes[position] != Outcome::Failed)
        });
        let missing: FxHashSet<PostId> = settlement.missing_posts.into_iter().collect();
        self.stamps.retain(|s| !missing.contains(&s.like.post));
    }

    /// Learn the view shard counts read; the posts found not to exist.
    fn learn(&mut self, read: FxHashMap<ItemKey, Option<Item>>) -> FxHashSet<PostId> {
        let mut missing = FxHashSet::default();
        for (key, item) in read {
            let ItemKey::Post(_, post) = key else {
                continue;
            };
            match item {
                Some(item) => self
                    .knowledge
                    .learn_view_shards(post, Post::view_shards_in(&item)),
                None => {
                    missing.insert(post);
                }
            }
        }
        missing
    }

    /// DynamoDB's answer to `ticket`, at `now_ms`.
    pub fn answer(&mut self, ticket: Ticket, answer: Answer, now_ms: i64) {
        let Some(unit) = self.in_flight.remove(&ticket) else {
            return;
        };
        let i = match unit {
            Unit::Work(i) => i,
            Unit::Quarantine(position) => {
                self.outcomes[position] = match answer {
                    Answer::Done => Outcome::Quarantined,
                    other => {
                        tracing::error!(answer = %other.describe(), "quarantine failed");
                        Outcome::Failed
                    }
                };
                return;
            }
        };
        let (stage, mut cx) = self.split(now_ms);
        let follow_up = stage
            .running()
            .and_then(|work| work.answer(i, answer, &mut cx));
        if let Some(request) = follow_up {
            let ticket = self.ticket(unit);
            self.outbox.push((ticket, request));
        }
    }

    /// When the machine wants to be polled again, if nothing else comes first.
    pub fn wake_at(&self) -> Option<i64> {
        self.stage.wake_at()
    }

    /// Whether every record is settled and nothing is in flight.
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
            && self.in_flight.is_empty()
            && self.outbox.is_empty()
            && self.quarantine.is_empty()
    }

    /// Each record's outcome, and what the instance knows now.
    pub fn finish(self) -> (AppliedBatch, Knowledge) {
        (
            AppliedBatch {
                outcomes: self.outcomes,
                cancelled: self.cancelled,
            },
            self.knowledge,
        )
    }
}

/// Each key once, in first-seen order.
fn unique(keys: impl Iterator<Item = ItemKey>) -> Vec<ItemKey> {
    let mut seen = FxHashSet::default();
    keys.filter(|key| seen.insert(key.clone())).collect()
}

/// Record `outcome` for the batch positions `records`. A position already `Failed` stays
/// failed: one of its writes did not happen, so it must be delivered again whatever else
/// succeeded.
pub(crate) fn record_outcome(outcomes: &mut [Outcome], records: &[usize], outcome: Outcome) {
    for &position in records {
        if outcomes[position] != Outcome::Failed {
            outcomes[position] = outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_position_stays_failed() {
        let mut outcomes = vec![Outcome::Ignored; 3];
        record_outcome(&mut outcomes, &[0, 1], Outcome::Failed);
        record_outcome(&mut outcomes, &[1, 2], Outcome::Applied);
        assert_eq!(
            outcomes,
            vec![Outcome::Failed, Outcome::Failed, Outcome::Applied]
        );
    }
}
