//! Every decision of `rebuild` as a pure state machine, in the batch machine's shape
//! ([`crate::batch`]): no I/O, no clock; time is given with every call. The shell
//! ([`super::Rebuild`]) sends what [`Machine::poll`] asks for and hands back DynamoDB's (or the
//! replay's) answers; the deterministic simulation drives the same machine in virtual time.
//!
//! ```text
//! let mut machine = Machine::new(settings, state);
//! loop {
//!     for (ticket, request) in machine.poll(now) { send it }
//!     if machine.is_done() { break }
//!     wait for an answer, or until machine.wake_at()
//!     machine.answer(ticket, answer, now);
//! }
//! machine.finish()
//! ```
//!
//! The phases and why they are safe live are in the [module docs](super). The machine asks for
//! one thing at a time, except in phase 1, where each scan segment goes its own way: scan a
//! page, repair it, save the progress, scan the next.

use std::collections::{BTreeSet, HashMap, VecDeque};

use aws_sdk_dynamodb::types::AttributeValue;
use contracts::change::{Change, LikeRef};
use contracts::items::{Delta, Entity, Item, ItemType, Like, Post};
use contracts::keys;
use serde::{Deserialize, Serialize};

use crate::batch::Outcome;
use crate::plan::{Plan, PostRef, Stamp, plan_changes};

/// How to rebuild, as the machine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Parallel scan segments.
    pub segments: i32,
    /// Report what would change, change nothing.
    pub dry_run: bool,
    /// How long a drifting post must stay still before it is corrected.
    pub settle_ms: i64,
    /// Rounds of phase 2 before a still-moving post is reported busy.
    pub rounds: u32,
}

/// What a rebuild did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Stream records replayed in phase 0.
    pub records_replayed: u64,
    /// Items the scan read.
    pub items_scanned: u64,
    /// Likes the scan found uncounted and counted.
    pub likes_counted: u64,
    /// Likes the scan found counted but not in the view and stamped.
    pub likes_stamped: u64,
    /// Posts whose counter was checked.
    pub posts_checked: u64,
    /// Counters set to a recount.
    pub counters_corrected: u64,
    /// Posts still moving after every round: left for a rerun.
    pub posts_busy: u64,
    /// The posts still moving at the last look (`<topic>/<post>`): repairs left, for a rerun.
    #[serde(default)]
    pub busy_posts: Vec<String>,
}

/// A scan segment's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentState {
    /// The segment was scanned to its end.
    pub done: bool,
    /// Where its scan resumes (`LastEvaluatedKey`).
    pub resume: Option<HashMap<String, String>>,
}

/// Everything needed to resume: saved after every page of phase 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildState {
    /// The table rebuilt.
    pub table: String,
    /// Each scan segment's position.
    pub segments: Vec<SegmentState>,
    /// Posts seen so far, as `(topic, post id)`.
    pub posts: BTreeSet<(String, String)>,
    /// The work done so far.
    pub summary: Summary,
}

impl RebuildState {
    /// A fresh state for `table` scanned in `segments`.
    pub fn new(table: &str, segments: i32) -> Self {
        Self {
            table: table.to_owned(),
            segments: vec![SegmentState::default(); segments.max(1) as usize],
            ..Default::default()
        }
    }
}

/// A post item's counter, its version and its number of view shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// `likeCount`, if set.
    pub stored: Option<i64>,
    /// `countVersion`, if set.
    pub version: Option<String>,
    /// `viewShards`.
    pub view_shards: u32,
}

impl Counter {
    /// The counter of a post item (an empty item: the post is gone).
    pub fn of(item: &Item) -> Self {
        let number = |name: &str| item.get(name)?.as_n().ok()?.parse().ok();
        Self {
            stored: number(contracts::items::attr::LIKE_COUNT),
            version: item
                .get(contracts::items::attr::COUNT_VERSION)
                .and_then(|v| v.as_s().ok())
                .cloned(),
            view_shards: Post::view_shards_in(item),
        }
    }
}

/// Names a request until its answer comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Replay the stream to its end through rebuild's own projector: answered
    /// [`Answer::CaughtUp`].
    CatchUp,
    /// A page of a scan segment, from `start` (the table's first item without one): answered
    /// [`Answer::Page`].
    Scan {
        /// The segment.
        segment: i32,
        /// Where it resumes.
        start: Option<Item>,
    },
    /// Apply a page's repairs through the batch machine (counting through the projector's own
    /// conditional transactions, stamping in place, a batch time's deadline): answered
    /// [`Answer::Repaired`].
    Repair {
        /// The writes.
        plan: Plan,
        /// The positions the plan settles.
        records: usize,
    },
    /// Save the progress, so that a rerun resumes from it: answered [`Answer::Saved`].
    Save(RebuildState),
    /// Read a post's item consistently: answered [`Answer::Counter`].
    Counter(PostRef),
    /// The sum of a post's pending deltas, read consistently: answered [`Answer::Sum`].
    Pending(PostRef),
    /// The counted likes in the post's view shards below `shards`, as GSI1 shows them:
    /// answered [`Answer::Sum`].
    CountView {
        /// The post.
        post: PostRef,
        /// Its view shards.
        shards: u32,
    },
    /// Set the post's counter to `count` if its version is still `version`
    /// (`contracts::counting::set_counter`): answered [`Answer::Set`].
    SetCount {
        /// The post.
        post: PostRef,
        /// The counter that, with the pending deltas, equals the recount.
        count: i64,
        /// The version observed.
        version: Option<String>,
    },
}

/// An answer to a request. A request that fails ends the rebuild in the shell (a rerun
/// resumes from the last save), so every answer here is a success.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The replay reached the stream's end, having replayed this many records.
    CaughtUp(u64),
    /// A scan page, and where the segment resumes (`None`: it ended).
    Page {
        /// The items.
        items: Vec<Item>,
        /// `LastEvaluatedKey`.
        next: Option<Item>,
    },
    /// Each position's outcome.
    Repaired(Vec<Outcome>),
    /// The progress is saved.
    Saved,
    /// A post's counter.
    Counter(Counter),
    /// A sum: pending deltas, or counted likes in a view.
    Sum(i64),
    /// Whether the conditional counter update was applied.
    Set(bool),
}

/// Why a rebuild stopped before the end: a rerun resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Repair writes failed after their retries.
    WritesFailed(u64),
}

/// The repairs one page of items asks for (pure).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PageRepairs {
    pub(crate) uncounted: Vec<LikeRef>,
    pub(crate) unstamped: Vec<LikeRef>,
    pub(crate) pending: Vec<Delta>,
    pub(crate) posts: Vec<PostRef>,
}

impl PageRepairs {
    pub(crate) fn of(items: Vec<Item>) -> Self {
        let mut repairs = PageRepairs::default();
        for item in items {
            let kind = item.get(keys::TYPE).and_then(|t| t.as_s().ok()).cloned();
            if kind.as_deref() == Some(ItemType::Delta.as_str()) {
                if let Ok(delta) = Delta::from_item(item) {
                    repairs.pending.push(delta);
                }
            } else if kind.as_deref() == Some(ItemType::Like.as_str()) {
                let in_view = item.contains_key(keys::GSI1PK);
                if let Ok(like) = Like::from_item(item) {
                    match like.counted_by {
                        None => repairs.uncounted.push(LikeRef::from(&like)),
                        Some(_) if !in_view => repairs.unstamped.push(LikeRef::from(&like)),
                        Some(_) => {}
                    }
                }
            } else if kind.as_deref() == Some(ItemType::Post.as_str())
                && let Ok(post) = Post::from_item(item)
            {
                repairs.posts.push(PostRef {
                    topic: post.topic,
                    post: post.post_id,
                });
            }
        }
        repairs
    }

    fn is_empty(&self) -> bool {
        self.uncounted.is_empty() && self.unstamped.is_empty() && self.pending.is_empty()
    }

    /// The writes: a mark for each uncounted like, a fold of each pending delta, then a stamp
    /// of each unstamped like. Positions: the marks first, the folds, the stamps.
    fn plan(&self) -> (Plan, usize) {
        let changes: Vec<Change> = self
            .uncounted
            .iter()
            .cloned()
            .map(Change::LikeAdded)
            .chain(self.pending.iter().cloned().map(Change::DeltaAdded))
            .collect();
        let mut plan = plan_changes(&changes);
        let first_stamp = changes.len();
        plan.stamps
            .extend(self.unstamped.iter().enumerate().map(|(i, like)| Stamp {
                records: vec![first_stamp + i],
                like: like.clone(),
            }));
        (plan, first_stamp + self.unstamped.len())
    }

    /// (likes counted, likes stamped, writes failed) from the outcomes of [`Self::plan`].
    fn tally(&self, outcomes: &[Outcome]) -> (u64, u64, u64) {
        let likes = self.uncounted.len();
        let first_stamp = likes + self.pending.len();
        let counted = outcomes.iter().take(likes);
        let counted = counted.filter(|o| **o == Outcome::Applied).count() as u64;
        let stamps = outcomes.iter().skip(first_stamp);
        let stamped = stamps.filter(|o| **o != Outcome::Failed).count() as u64;
        let failed = outcomes.iter().filter(|o| **o == Outcome::Failed).count() as u64;
        (counted, stamped, failed)
    }
}

/// A post's counter, its pending deltas and its recount, seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observation {
    stored: Option<i64>,
    version: Option<String>,
    pending: i64,
    counted_in_view: i64,
}

impl Observation {
    fn drifts(&self) -> bool {
        self.stored.unwrap_or(0) + self.pending != self.counted_in_view
    }

    /// The counter that, with the pending deltas, equals the recount.
    fn corrected(&self) -> i64 {
        self.counted_in_view - self.pending
    }
}

/// One look at a post: its counter and deltas, its recount, its counter and deltas again. The
/// look is `None` if the counter or the deltas moved during the recount.
#[derive(Debug, Clone, PartialEq)]
enum Look {
    Counter,
    Pending(Counter),
    View(Counter, i64),
    CounterAgain(Counter, i64, i64),
    PendingAgain(Counter, i64, i64, Counter),
}

impl Look {
    fn request(&self, post: &PostRef) -> Request {
        match self {
            Look::Counter | Look::CounterAgain(..) => Request::Counter(post.clone()),
            Look::Pending(_) | Look::PendingAgain(..) => Request::Pending(post.clone()),
            Look::View(counter, _) => Request::CountView {
                post: post.clone(),
                shards: counter.view_shards,
            },
        }
    }

    /// The next step with `answer`, or the look's end.
    fn next(self, answer: Answer) -> Result<Look, Option<Observation>> {
        match (self, answer) {
            (Look::Counter, Answer::Counter(c)) => Ok(Look::Pending(c)),
            (Look::Pending(c), Answer::Sum(p)) => Ok(Look::View(c, p)),
            (Look::View(c, p), Answer::Sum(v)) => Ok(Look::CounterAgain(c, p, v)),
            (Look::CounterAgain(c, p, v), Answer::Counter(again)) => {
                Ok(Look::PendingAgain(c, p, v, again))
            }
            (Look::PendingAgain(c, p, v, again), Answer::Sum(p2)) => Err((c == again && p == p2)
                .then_some(Observation {
                    stored: c.stored,
                    version: c.version,
                    pending: p,
                    counted_in_view: v,
                })),
            (look, _) => Ok(look), // an answer of another kind: not this look's
        }
    }
}

/// A post to look at again, with what it showed if it held still for the last look.
type Drifting = (PostRef, Option<Observation>);

/// What phase 2 is doing.
#[derive(Debug, Clone, PartialEq)]
enum Doing {
    /// Nothing: the next post of the pass, or the pass's end.
    Idle,
    /// Looking at a post, with what it showed at the last look.
    Look {
        post: PostRef,
        before: Option<Observation>,
        look: Look,
    },
    /// Correcting a counter that held still and drifts.
    Set { post: PostRef, seen: Observation },
    /// Giving what was in flight at the last look time to reach the stream.
    Settle { until: i64 },
    /// Replaying to the stream's end before a round's looks.
    CatchUp,
    /// Giving GSI1 time to show what was written before the replay's end.
    Show { until: i64 },
}

/// Phase 2: a first look at every post, then rounds of second looks at those that drift.
#[derive(Debug)]
struct Check {
    /// Posts still to look at in this pass.
    queue: VecDeque<Drifting>,
    /// The round of second looks (`None`: the first looks).
    round: Option<u32>,
    /// Posts to look at again in the next round.
    again: Vec<Drifting>,
    doing: Doing,
}

/// What a scan segment does next in phase 1.
#[derive(Debug)]
enum Step {
    Scan,
    /// Repair a page, then resume after it (`LastEvaluatedKey`).
    Repair(PageRepairs, Option<Item>),
    /// Save the progress; then stop (the segment ended, or its repairs failed) or scan on.
    Save {
        then_stop: bool,
    },
    Stopped,
}

/// A scan segment in phase 1.
#[derive(Debug)]
struct Segment {
    step: Step,
    waiting: bool,
}

/// Where the rebuild is.
#[derive(Debug)]
enum Stage {
    /// Phase 0: the stream replayed to its end.
    Replay,
    /// Phase 1: the scan segments' pages, repaired and saved.
    Scan(Vec<Segment>),
    /// Phase 2: the counters checked and corrected.
    Check(Box<Check>),
    Done,
}

/// The rebuild's decisions.
#[derive(Debug)]
pub struct Machine {
    settings: Settings,
    state: RebuildState,
    stage: Stage,
    next_ticket: u64,
    /// The requests in flight, with the scan segment each is for in phase 1.
    in_flight: HashMap<Ticket, Option<usize>>,
    failed_writes: u64,
    /// Posts given their first look.
    checked: u64,
    corrected: u64,
    busy: Vec<PostRef>,
}

impl Machine {
    /// A rebuild by `settings`, resuming `state` (fresh: [`RebuildState::new`]). A dry run
    /// replays nothing.
    pub fn new(settings: Settings, state: RebuildState) -> Self {
        let mut machine = Self {
            settings,
            state,
            stage: Stage::Replay,
            next_ticket: 0,
            in_flight: HashMap::new(),
            failed_writes: 0,
            checked: 0,
            corrected: 0,
            busy: Vec::new(),
        };
        if settings.dry_run {
            machine.start_scan();
        }
        machine
    }

    /// The progress so far.
    pub fn state(&self) -> &RebuildState {
        &self.state
    }

    /// Posts given their first look in phase 2 so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Whether the rebuild has ended (see [`Machine::finish`]).
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// When the machine wants to be polled again, if it waits for time rather than answers.
    pub fn wake_at(&self) -> Option<i64> {
        match &self.stage {
            Stage::Check(check) => match check.doing {
                Doing::Settle { until } | Doing::Show { until } => Some(until),
                _ => None,
            },
            _ => None,
        }
    }

    /// What to send at `now_ms`.
    pub fn poll(&mut self, now_ms: i64) -> Vec<(Ticket, Request)> {
        let mut out = Vec::new();
        loop {
            match &self.stage {
                Stage::Replay => {
                    if self.in_flight.is_empty() {
                        out.push(self.ask(None, Request::CatchUp));
                    }
                    return out;
                }
                Stage::Scan(_) => {
                    self.poll_scan(&mut out);
                    if !out.is_empty() || !self.in_flight.is_empty() {
                        return out;
                    }
                    self.end_scan();
                }
                Stage::Check(_) => {
                    if let Some(request) = self.poll_check(now_ms) {
                        out.push(self.ask(None, request));
                    }
                    return out;
                }
                Stage::Done => return out,
            }
        }
    }

    /// Take `answer` to the request `ticket`.
    pub fn answer(&mut self, ticket: Ticket, answer: Answer, now_ms: i64) {
        let Some(segment) = self.in_flight.remove(&ticket) else {
            return;
        };
        match &self.stage {
            Stage::Replay => {
                if let Answer::CaughtUp(records) = answer {
                    self.state.summary.records_replayed += records;
                    self.start_scan();
                }
            }
            Stage::Scan(_) => {
                if let Some(segment) = segment {
                    self.answer_scan(segment, answer);
                }
            }
            Stage::Check(_) => self.answer_check(answer, now_ms),
            Stage::Done => {}
        }
    }

    /// The summary, or why the rebuild stopped early.
    pub fn finish(self) -> Result<Summary, Stopped> {
        if self.failed_writes > 0 {
            return Err(Stopped::WritesFailed(self.failed_writes));
        }
        let mut summary = self.state.summary;
        summary.posts_checked = self.state.posts.len() as u64;
        summary.counters_corrected = self.corrected;
        summary.posts_busy = self.busy.len() as u64;
        summary.busy_posts = self
            .busy
            .iter()
            .map(|p| format!("{}/{}", p.topic, p.post))
            .collect();
        Ok(summary)
    }

    fn ask(&mut self, segment: Option<usize>, request: Request) -> (Ticket, Request) {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.in_flight.insert(ticket, segment);
        (ticket, request)
    }

    fn start_scan(&mut self) {
        let segments = self
            .state
            .segments
            .iter()
            .map(|s| Segment {
                step: if s.done { Step::Stopped } else { Step::Scan },
                waiting: false,
            })
            .collect();
        self.stage = Stage::Scan(segments);
    }

    /// Every segment stopped: on to phase 2, unless writes failed.
    fn end_scan(&mut self) {
        if self.failed_writes > 0 {
            self.stage = Stage::Done;
            return;
        }
        let queue = self
            .state
            .posts
            .iter()
            .filter_map(|(topic, post)| {
                let post = PostRef {
                    topic: topic.parse().ok()?,
                    post: post.parse().ok()?,
                };
                Some((post, None))
            })
            .collect();
        self.stage = Stage::Check(Box::new(Check {
            queue,
            round: None,
            again: Vec::new(),
            doing: Doing::Idle,
        }));
    }

    fn poll_scan(&mut self, out: &mut Vec<(Ticket, Request)>) {
        let Stage::Scan(segments) = &mut self.stage else {
            return;
        };
        let mut asks = Vec::new();
        for (i, segment) in segments.iter_mut().enumerate() {
            if segment.waiting {
                continue;
            }
            let request = match &segment.step {
                Step::Stopped => continue,
                Step::Scan => Request::Scan {
                    segment: i as i32,
                    start: self.state.segments[i].resume.clone().map(to_item),
                },
                Step::Repair(repairs, _) => {
                    let (plan, records) = repairs.plan();
                    Request::Repair { plan, records }
                }
                Step::Save { .. } => Request::Save(self.state.clone()),
            };
            segment.waiting = true;
            asks.push((i, request));
        }
        for (i, request) in asks {
            out.push(self.ask(Some(i), request));
        }
    }

    fn answer_scan(&mut self, i: usize, answer: Answer) {
        let dry_run = self.settings.dry_run;
        let Stage::Scan(segments) = &mut self.stage else {
            return;
        };
        let segment = &mut segments[i];
        segment.waiting = false;
        let step = std::mem::replace(&mut segment.step, Step::Stopped);
        let summary = &mut self.state.summary;
        segment.step = match (step, answer) {
            (Step::Scan, Answer::Page { items, next }) => {
                summary.items_scanned += items.len() as u64;
                let repairs = PageRepairs::of(items);
                if dry_run {
                    // What would be counted and stamped.
                    summary.likes_counted += repairs.uncounted.len() as u64;
                    summary.likes_stamped += repairs.unstamped.len() as u64;
                    let then_stop = next.is_none();
                    self.state.resume(i, &repairs, next);
                    if then_stop { Step::Stopped } else { Step::Scan }
                } else if repairs.is_empty() {
                    let then_stop = next.is_none();
                    self.state.resume(i, &repairs, next);
                    Step::Save { then_stop }
                } else {
                    Step::Repair(repairs, next)
                }
            }
            (Step::Repair(repairs, next), Answer::Repaired(outcomes)) => {
                let (counted, stamped, failed) = repairs.tally(&outcomes);
                summary.likes_counted += counted;
                summary.likes_stamped += stamped;
                if failed > 0 {
                    // Its position stays: a rerun scans the page again.
                    self.failed_writes += failed;
                    Step::Save { then_stop: true }
                } else {
                    let then_stop = next.is_none();
                    self.state.resume(i, &repairs, next);
                    Step::Save { then_stop }
                }
            }
            (Step::Save { then_stop: true }, Answer::Saved) => Step::Stopped,
            (Step::Save { then_stop: false }, Answer::Saved) => Step::Scan,
            (step, _) => step, // not this step's answer
        };
    }

    /// The next request of phase 2, if one is due.
    fn poll_check(&mut self, now_ms: i64) -> Option<Request> {
        if !self.in_flight.is_empty() {
            return None;
        }
        let (dry_run, rounds, settle) = (
            self.settings.dry_run,
            self.settings.rounds,
            self.settings.settle_ms,
        );
        let Stage::Check(check) = &mut self.stage else {
            return None;
        };
        loop {
            match &check.doing {
                Doing::Look { post, look, .. } => return Some(look.request(post)),
                Doing::Set { post, seen } => {
                    return Some(Request::SetCount {
                        post: post.clone(),
                        count: seen.corrected(),
                        version: seen.version.clone(),
                    });
                }
                Doing::CatchUp => return Some(Request::CatchUp),
                Doing::Settle { until } | Doing::Show { until } if now_ms < *until => return None,
                // What was in flight at the last look is in the stream by now: project it
                // (a dry run replays nothing).
                Doing::Settle { .. } if !dry_run => check.doing = Doing::CatchUp,
                Doing::Settle { .. } | Doing::Show { .. } => check.doing = Doing::Idle,
                Doing::Idle => {
                    if let Some((post, before)) = check.queue.pop_front() {
                        check.doing = Doing::Look {
                            post,
                            before,
                            look: Look::Counter,
                        };
                        continue;
                    }
                    let round = check.round.map_or(0, |r| r + 1);
                    if check.again.is_empty() || round >= rounds {
                        self.busy = check.again.drain(..).map(|(post, _)| post).collect();
                        self.stage = Stage::Done;
                        return None;
                    }
                    check.round = Some(round);
                    check.queue = std::mem::take(&mut check.again).into();
                    check.doing = Doing::Settle {
                        until: now_ms + settle,
                    };
                }
            }
        }
    }

    fn answer_check(&mut self, answer: Answer, now_ms: i64) {
        let (dry_run, settle) = (self.settings.dry_run, self.settings.settle_ms);
        let Stage::Check(check) = &mut self.stage else {
            return;
        };
        check.doing = match (std::mem::replace(&mut check.doing, Doing::Idle), answer) {
            (Doing::CatchUp, Answer::CaughtUp(records)) => {
                self.state.summary.records_replayed += records;
                Doing::Show {
                    until: now_ms + settle,
                }
            }
            (Doing::Set { post, seen }, Answer::Set(applied)) => {
                if applied {
                    self.corrected += 1;
                } else {
                    check.again.push((post, Some(seen)));
                }
                Doing::Idle
            }
            (Doing::Look { post, before, look }, answer) => match look.next(answer) {
                Ok(look) => Doing::Look { post, before, look },
                Err(now) if check.round.is_none() => {
                    // The first look: a post that drifts, or moved, is looked at again.
                    self.checked += 1;
                    if now.as_ref().is_none_or(Observation::drifts) {
                        check.again.push((post, now));
                    }
                    Doing::Idle
                }
                Err(None) => {
                    check.again.push((post, before));
                    Doing::Idle
                }
                // The projector caught up: it was not drift.
                Err(Some(now)) if !now.drifts() => Doing::Idle,
                // Moved since the last look: looked at again after another settle.
                Err(Some(now)) if before.as_ref() != Some(&now) => {
                    check.again.push((post, Some(now)));
                    Doing::Idle
                }
                // Still, and drifting: real drift.
                Err(Some(_)) if dry_run => {
                    self.corrected += 1;
                    Doing::Idle
                }
                Err(Some(seen)) => Doing::Set { post, seen },
            },
            (doing, _) => doing, // not this step's answer
        };
    }
}

impl RebuildState {
    /// Segment `i` resumes after a page whose repairs are done: its posts are remembered.
    fn resume(&mut self, i: usize, repairs: &PageRepairs, next: Option<Item>) {
        self.posts.extend(
            repairs
                .posts
                .iter()
                .map(|p| (p.topic.to_string(), p.post.to_string())),
        );
        let saved = &mut self.segments[i];
        saved.done = next.is_none();
        saved.resume = next.map(to_strings);
    }
}

/// A key's string attributes, as the state file keeps them.
fn to_strings(key: Item) -> HashMap<String, String> {
    key.into_iter()
        .filter_map(|(k, v)| match v {
            AttributeValue::S(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

fn to_item(key: HashMap<String, String>) -> Item {
    key.into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::items::{Entity, Like, Post};
    use contracts::keys::{LikeId, PostId, UserId};

    const SETTLE: i64 = 5_000;

    fn settings(segments: i32) -> Settings {
        Settings {
            segments,
            dry_run: false,
            settle_ms: SETTLE,
            rounds: 3,
        }
    }

    fn post() -> (PostRef, Item) {
        let post = Post {
            topic: "t".parse().unwrap(),
            post_id: PostId::generate(),
            title: "p".into(),
            body: String::new(),
            author_id: "a".parse().unwrap(),
            created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            like_count: 2,
            view_shards: 1,
        };
        let reference = PostRef {
            topic: post.topic.clone(),
            post: post.post_id,
        };
        (reference, post.to_item())
    }

    fn uncounted_like(post: &PostRef) -> Item {
        Like {
            user_id: "u".parse::<UserId>().unwrap(),
            post_id: post.post,
            topic: post.topic.clone(),
            title: "p".into(),
            liked_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            like_id: LikeId::generate(),
            counted_by: None,
        }
        .to_item()
    }

    /// The one request the machine asks for now.
    fn one(machine: &mut Machine, now: i64) -> (Ticket, Request) {
        let mut asked = machine.poll(now);
        assert_eq!(asked.len(), 1, "{asked:?}");
        asked.remove(0)
    }

    /// Phase 0 and a one-segment scan of `items`, repaired; then the first look's requests.
    fn through_the_scan(machine: &mut Machine, items: Vec<Item>) {
        let (t, r) = one(machine, 0);
        assert_eq!(r, Request::CatchUp, "the stream is replayed first");
        machine.answer(t, Answer::CaughtUp(3), 0);
        let (t, r) = one(machine, 0);
        assert_eq!(
            r,
            Request::Scan {
                segment: 0,
                start: None
            }
        );
        machine.answer(t, Answer::Page { items, next: None }, 0);
        let (t, r) = one(machine, 0);
        let Request::Repair { plan, records } = r else {
            panic!("the uncounted like is repaired: {r:?}")
        };
        assert_eq!((plan.transactions.len(), records), (1, 1));
        machine.answer(t, Answer::Repaired(vec![Outcome::Applied]), 0);
        let (t, r) = one(machine, 0);
        let Request::Save(state) = r else {
            panic!("the page's progress is saved: {r:?}")
        };
        assert!(state.segments[0].done);
        assert_eq!(state.summary.likes_counted, 1);
        machine.answer(t, Answer::Saved, 0);
    }

    /// Answer one look at the post: its counter, deltas and recount, the same both times.
    fn look(machine: &mut Machine, now: i64, counter: &Counter, pending: i64, view: i64) {
        for answer in [
            Answer::Counter(counter.clone()),
            Answer::Sum(pending),
            Answer::Sum(view),
            Answer::Counter(counter.clone()),
            Answer::Sum(pending),
        ] {
            let (t, _) = one(machine, now);
            machine.answer(t, answer, 0);
        }
    }

    #[test]
    fn a_counter_that_stays_wrong_is_corrected_after_it_settled() {
        let (post, item) = post();
        let mut machine = Machine::new(settings(1), RebuildState::new("t", 1));
        through_the_scan(&mut machine, vec![item, uncounted_like(&post)]);
        let counter = Counter {
            stored: Some(5),
            version: Some("v1".into()),
            view_shards: 1,
        };
        look(&mut machine, 0, &counter, 1, 4);
        assert_eq!(machine.checked(), 1);
        assert!(machine.poll(10).is_empty(), "it waits for the stream");
        assert_eq!(machine.wake_at(), Some(10 + SETTLE));
        let (t, r) = one(&mut machine, 10 + SETTLE);
        assert_eq!(r, Request::CatchUp, "what was in flight is projected first");
        machine.answer(t, Answer::CaughtUp(0), 20 + SETTLE);
        assert!(machine.poll(20 + SETTLE).is_empty(), "GSI1 is given time");
        let later = 20 + 2 * SETTLE;
        assert_eq!(machine.wake_at(), Some(later));
        look(&mut machine, later, &counter, 1, 4);
        let (t, r) = one(&mut machine, later);
        assert_eq!(
            r,
            Request::SetCount {
                post,
                count: 3,
                version: Some("v1".into())
            },
            "the recount less the pending deltas, on the version seen"
        );
        machine.answer(t, Answer::Set(true), later);
        assert!(machine.poll(later).is_empty());
        assert!(machine.is_done());
        let summary = machine.finish().unwrap();
        assert_eq!(
            (
                summary.records_replayed,
                summary.counters_corrected,
                summary.posts_busy
            ),
            (3, 1, 0)
        );
    }

    #[test]
    fn a_counter_that_keeps_moving_is_left_busy_never_guessed_at() {
        let (post, item) = post();
        let mut machine = Machine::new(settings(1), RebuildState::new("t", 1));
        through_the_scan(&mut machine, vec![item, uncounted_like(&post)]);
        let mut now = 0;
        for version in 0..4 {
            let counter = Counter {
                stored: Some(version),
                version: Some(format!("v{version}")),
                view_shards: 1,
            };
            if version > 0 {
                assert!(machine.poll(now).is_empty());
                now = machine.wake_at().expect("settling");
                let (t, r) = one(&mut machine, now);
                assert_eq!(r, Request::CatchUp);
                machine.answer(t, Answer::CaughtUp(0), now);
                now += SETTLE;
            }
            look(&mut machine, now, &counter, 0, 10);
        }
        assert!(machine.poll(now).is_empty());
        let summary = machine.finish().unwrap();
        assert_eq!((summary.counters_corrected, summary.posts_busy), (0, 1));
        assert_eq!(summary.busy_posts, vec![format!("t/{}", post.post)]);
    }

    #[test]
    fn a_page_whose_repairs_failed_is_scanned_again_by_the_rerun() {
        let (post, item) = post();
        let start: Item = [("PK".to_owned(), AttributeValue::S("after".into()))].into();
        let mut machine = Machine::new(settings(2), RebuildState::new("t", 2));
        let (t, _) = one(&mut machine, 0);
        machine.answer(t, Answer::CaughtUp(0), 0);
        let scans = machine.poll(0);
        assert_eq!(scans.len(), 2, "the segments scan side by side");
        let (first, second) = (scans[0].0, scans[1].0);
        machine.answer(
            first,
            Answer::Page {
                items: vec![item.clone(), uncounted_like(&post)],
                next: Some(start.clone()),
            },
            0,
        );
        machine.answer(
            second,
            Answer::Page {
                items: vec![],
                next: None,
            },
            0,
        );
        let asked = machine.poll(0);
        let (repair, save) = match (&asked[0].1, &asked[1].1) {
            (Request::Repair { .. }, Request::Save(_)) => (asked[0].0, asked[1].0),
            other => panic!("{other:?}"),
        };
        machine.answer(save, Answer::Saved, 0);
        machine.answer(repair, Answer::Repaired(vec![Outcome::Failed]), 0);
        let (t, r) = one(&mut machine, 0);
        let Request::Save(state) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            state.segments[0],
            SegmentState::default(),
            "the failed page's segment resumes where it was"
        );
        assert!(state.segments[1].done);
        machine.answer(t, Answer::Saved, 0);
        assert!(machine.poll(0).is_empty());
        assert!(
            machine.is_done(),
            "no counter is checked after failed writes"
        );
        assert_eq!(machine.finish(), Err(Stopped::WritesFailed(1)));
    }

    #[test]
    fn a_dry_run_replays_nothing_and_writes_nothing() {
        let (post, item) = post();
        let mut machine = Machine::new(
            Settings {
                dry_run: true,
                ..settings(1)
            },
            RebuildState::new("t", 1),
        );
        let (t, r) = one(&mut machine, 0);
        assert!(matches!(r, Request::Scan { .. }), "{r:?}");
        machine.answer(
            t,
            Answer::Page {
                items: vec![item, uncounted_like(&post)],
                next: None,
            },
            0,
        );
        let counter = Counter {
            stored: Some(5),
            version: None,
            view_shards: 1,
        };
        look(&mut machine, 0, &counter, 0, 4);
        assert!(machine.poll(0).is_empty(), "it waits, and replays nothing");
        look(&mut machine, SETTLE, &counter, 0, 4);
        assert!(machine.poll(SETTLE).is_empty());
        let summary = machine.finish().unwrap();
        assert_eq!(
            (summary.likes_counted, summary.counters_corrected),
            (1, 1),
            "what would be done"
        );
    }
}
