//! # The deterministic simulation
//!
//! The whole pipeline in one process, in virtual time, driven by one seed: the same seed gives
//! the same run, bit for bit ([`Report::fingerprint`]). Its parts:
//!
//! - **the table** ([`table`]): dynoxide's storage in process, on the virtual clock, evaluating
//!   every item, condition, update expression and transaction and writing the stream; in front
//!   of it the contention rules shared with the proxy of `bench::contention`: overlapping
//!   transactions cancelled with `TransactionConflict`, a single write meeting a transaction
//!   answered `TransactionConflictException`, 1,000 write units a second per table and GSI1
//!   partition (or fewer, to make throttles common) answered as throttles;
//! - **the writer** ([`writer`]): clients liking, unliking and liking again, in stream or
//!   transactional mode, with the store's requests and decisions, retrying contention;
//! - **the event source** ([`lambda`]): Lambda's mapping over `shards × parallelization`
//!   consumers, with the deployed filters (`contracts::filters::Filter`), batching windows,
//!   partial batch responses, bisection, retries, maximum record age and the failure
//!   destination; each invocation runs the projector's real batch machine
//!   (`projector::batch::Batch`) with the function's deadline, its requests built once
//!   (`executor`) and sent through the SDK's own retries (`sdk`) to the table;
//! - **faults**: requests dropped before they land, answers lost after the write landed,
//!   answers so slow the invocation abandons them at its deadline while the write lands later,
//!   invocations that crash mid-batch;
//! - **GSI1** shows each write after a seeded delay ([`replica`]); the **stream**'s shards
//!   rotate and split (`stream`), and it keeps records 24 hours; TTL removes expired items;
//! - **operators**: `replay` (the whole stream again, through the filters, beside the live
//!   consumers), `verify` (projector's own `verify::Tallies` over a consistent scan) and
//!   `rebuild` (projector's own `rebuild::machine`, its requests answered here and in
//!   `rebuild`, run again from its saved progress until it ends clean) at seeded moments
//!   while load and faults go on, after a counter's drift now and then; after the load, the
//!   runbook: replay if the failure destination holds anything, and after a drift `verify`
//!   and `rebuild` again.
//!
//! While the load runs, a client reads the first posts' counts and a counter checker holds each
//! read against the acknowledged history ([`staleness`]): a count no staleness allows fails the
//! run. At the end, with the load stopped and the faults calmed, the run must reach quiescence
//! within [`QUIESCE_LIMIT_MS`] of virtual time and then show zero drift: every post's counter
//! plus its pending deltas equals its live likes, its view (read through GSI1) holds exactly its
//! live likes, each in a shard below its `viewShards`, and no delta is left; and again days
//! later, after TTL and the stream's trim, and a replay of what the stream still holds.
//!
//! Not modelled: the SDK's one retry-permit slot per client (the model keeps one per call), and
//! the writer's HTTP layer (its store's requests are modelled, with its own decisions on the
//! answers, `writer::decide`). Replay a seed: `cargo run -p sim -- --seed N`.

mod executor;
pub mod lambda;
mod measure;
pub mod rebuild;
pub mod replica;
mod sdk;
mod settings;
mod stream;
pub mod table;
pub mod wire;
pub mod writer;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;
use std::rc::Rc;

use contracts::change::decode_json;
use contracts::dynamo::Backoff;
use contracts::filters::Filter;
use contracts::items::{Entity, Post, TOMBSTONE_TTL_SECS, attr};
use contracts::keys::{self, LikeId, PostId, TopicSlug, UserId};
use executor::Prepared;
use projector::batch::{Answer, Batch, Reason, Request, Settings as BatchSettings, Ticket};
use projector::deadline::{BATCH_TIME, MARGIN};
use projector::rebuild::machine::{Answer as RebuildAnswer, Ticket as RebuildTicket};
use projector::verify::Tallies;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::Serialize;

use bench::shards::{BatchInfo, partition_key};
use lambda::{Consumer, Ended, Kind, Routed};
pub use measure::{Lag, MAX_FOLDS_PER_SECOND, Second, staleness};
use measure::{Lags, Series, Written};
use rebuild::{Call, RebuildRun};
pub use settings::{Command, Faults, Settings};
use stream::Stream;
use table::{RawRecord, Table};
use writer::{Mode, Op, Outcome};

/// The virtual epoch every run starts at (2026-01-01).
const START_MS: i64 = 1_767_225_600_000;
/// How often the event source reads the stream (Lambda polls a shard about four times a
/// second).
const POLL_MS: i64 = 250;
/// How often a client reads the counts while the load runs.
const READ_EVERY_MS: i64 = 500;
/// Posts whose counts are read (the first ones: the hot post among them).
const POSTS_READ: usize = 8;
/// The longest the pipeline may take to settle after the load stops.
pub const QUIESCE_LIMIT_MS: i64 = 30 * 60 * 1000;
/// The staleness bound of the counts the API answers: a count read at `t` holds every like and
/// unlike acknowledged before `t` minus this, unless a batch went to the failure destination
/// (its changes then wait for the runbook's replay). Lambda's retries of a batch within the
/// sweeps' timeouts, and a hot counter's second hop through its deltas, fit well inside it.
pub const STALENESS_BOUND_MS: i64 = 60_000;
/// Attempts a client makes at one operation before it gives up (the writer's backoff).
const WRITER_BACKOFF: Backoff = Backoff::STANDARD;

/// What a run did and found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// A hash of every event's time and kind and every outcome: equal for equal seeds.
    pub fingerprint: u64,
    /// Virtual milliseconds the run took, settling included.
    pub virtual_ms: i64,
    /// Events the scheduler ran.
    pub events: u64,
    /// Writer operations done (changed or not), and given up for contention.
    pub operations: u64,
    /// Writer operations given up after their retries.
    pub operations_given_up: u64,
    /// Invocations of the projector (replays' included).
    pub invocations: u64,
    /// Requests the projector sent, each attempt of the SDK's counted.
    pub requests: u64,
    /// Retries the SDK set out to make after a failed attempt (the projector's and `rebuild`'s calls;
    /// one whose invocation has since abandoned its request is not sent).
    pub sdk_retries: u64,
    /// Retries the SDK did not make for want of retry quota.
    pub sdk_out_of_quota: u64,
    /// Faults injected: lost, slow, crashes.
    pub faults: u64,
    /// Invocations that ended in a function error.
    pub function_errors: u64,
    /// Batches Lambda gave up on (sent to the failure destination).
    pub given_up: u64,
    /// Operator commands run.
    pub commands: u64,
    /// Transactions cancelled for conflicts, writes refused for conflicts, throttles.
    pub conflicts: u64,
    /// Requests throttled.
    pub throttled: u64,
    /// Live likes at the end.
    pub live_likes: i64,
    /// The most writes the hot post's item took in one virtual second.
    pub hot_counter_writes_per_second: usize,
    /// From a like's write until the hot post's `likeCount` holds it.
    pub counter_lag_hot: Lag,
    /// From a like's write until GSI1 shows it in the hot post's likers view.
    pub view_lag_hot: Lag,
    /// The same for the other posts.
    pub counter_lag_others: Lag,
    /// The same for the other posts.
    pub view_lag_others: Lag,
    /// The most write units one partition (table or GSI1) took in one virtual second, and
    /// the table in one virtual second.
    pub peak_partition_units: f64,
    /// The most write units the whole table took in one virtual second.
    pub peak_table_units: f64,
    /// The most folds one post's counter took in one virtual second (a hot counter's writes;
    /// at most [`MAX_FOLDS_PER_SECOND`]).
    pub most_folds_per_second: u32,
    /// Counts read while the load ran.
    pub count_reads: u64,
    /// The most a read count lagged: the shortest window of recent acknowledged changes
    /// within which some subset, with everything older, gives the count read.
    pub max_read_staleness_ms: i64,
    /// Tombstones DynamoDB's TTL removed in the days after the load.
    pub expired: u64,
    /// Rotations of the stream's shards.
    pub rotations: u64,
    /// `rebuild`s run to a clean end, and the runs of them that failed or left posts busy
    /// (each run again from its saved progress).
    pub rebuilds: u64,
    /// See [`Report::rebuilds`].
    pub rebuild_reruns: u64,
    /// Counters `rebuild` corrected.
    pub counters_corrected: u64,
    /// Shards split by the rotations.
    pub splits: u64,
    /// Each virtual second's figures (`sim --series`).
    #[serde(skip)]
    pub series: Vec<Second>,
}

/// Why a run failed: what went wrong, with the replay command.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed: {}\n  replay: cargo run -p sim -- --seed {}",
            self.seed, self.what, self.seed
        )
    }
}

/// What happens at a moment.
#[derive(Debug)]
enum Event {
    /// A client's next operation (or its retry).
    Client(usize),
    /// The event source reads the stream and invokes.
    Poll,
    /// An attempt of a request reaches DynamoDB; its answer comes back at the time given
    /// (`None`: it is lost, or the SDK stopped waiting for it).
    Land {
        invocation: u64,
        ticket: Ticket,
        prepared: Rc<Prepared>,
        fault: Fault,
        answer_at: Option<(i64, sdk::Call)>,
    },
    /// An attempt's answer (or its timeout) reaches the invocation's SDK client, which may try
    /// again (`retry`: the attempt's call; `None`: the call's last word).
    Answer {
        invocation: u64,
        ticket: Ticket,
        answer: Answer,
        retry: Option<Attempted>,
    },
    /// The SDK attempts a request again.
    Retry {
        invocation: u64,
        ticket: Ticket,
        attempted: Attempted,
    },
    /// The machine's wake time.
    Wake(u64),
    /// The handler's deadline: what is in flight is abandoned.
    Deadline(u64),
    /// The function's timeout: Lambda ends the invocation.
    Timeout(u64),
    /// An operator's command.
    Operator(Command),
    /// A client reads the posts' counts (the API answers the stored `likeCount`).
    Read,
    /// The stream's shards rotate (some split).
    Rotate,
    /// An answer reaches a `rebuild` (`None`: its call failed, and the run with it).
    Operated {
        run: u64,
        attempt: u32,
        ticket: RebuildTicket,
        answer: Option<RebuildAnswer>,
    },
    /// A `rebuild`'s wake time, for the attempt of the run that asked for it.
    RebuildWake { run: u64, attempt: u32 },
    /// The operator runs a `rebuild` again, from its saved progress.
    Rerun(u64),
    /// A `rebuild`'s call to the table tries again.
    Call(Box<Call>),
}

impl Event {
    fn kind(&self) -> u8 {
        match self {
            Event::Client(_) => 0,
            Event::Poll => 1,
            Event::Land { .. } => 2,
            Event::Answer { .. } => 3,
            Event::Wake(_) => 4,
            Event::Deadline(_) => 5,
            Event::Timeout(_) => 6,
            Event::Operator(_) => 7,
            Event::Read => 8,
            Event::Rotate => 9,
            Event::Operated { .. } => 10,
            Event::RebuildWake { .. } => 11,
            Event::Rerun(_) => 12,
            Event::Call(_) => 13,
            Event::Retry { .. } => 14,
        }
    }
}

/// Whether an event keeps the world from being quiet: polls do not, nor an invocation's
/// deadline and timeout (a running invocation keeps it busy by itself; a finished one's
/// timers do nothing).
fn counts_as_work(event: &Event) -> bool {
    !matches!(event, Event::Poll | Event::Deadline(_) | Event::Timeout(_))
}

/// A request the SDK attempted, and its call.
#[derive(Debug, Clone)]
struct Attempted {
    prepared: Rc<Prepared>,
    call: sdk::Call,
}

/// What a fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Never lands; the attempt times out.
    Dropped,
    /// Lands; its answer is lost, and the attempt times out.
    Lost,
    /// Lands slowly: it answers, unless the attempt timed out first (the write lands anyway).
    Slow,
    /// Refused as throttled: nothing lands.
    Throttled,
}

struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Who runs a batch machine: a consumer's invocation, or a `rebuild`'s repair of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Consumer(usize),
    Rebuild {
        run: u64,
        attempt: u32,
        ticket: RebuildTicket,
    },
}

impl Owner {
    /// The process its SDK clients run in.
    fn process(&self) -> Process {
        match *self {
            Owner::Consumer(c) => Process::Consumer(c),
            Owner::Rebuild { run, attempt, .. } => Process::Rebuild { run, attempt },
        }
    }
}

/// A process whose SDK clients share one retry quota (`sdk::Quota`): a consumer's Lambda
/// execution environment, or one run of `rebuild` (each rerun a process of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Process {
    Consumer(usize),
    Rebuild { run: u64, attempt: u32 },
}

/// A running invocation: the batch machine and what it waits for.
struct Invocation {
    owner: Owner,
    batch: Batch,
    records: Vec<Rc<Routed>>,
    in_flight: FxHashSet<Ticket>,
    /// Answers before it crashes, if it does.
    crash_after: Option<u32>,
    answers: u32,
}

/// A client: its mode and the operation it retries, if any.
struct Client {
    mode: Mode,
    retry: Option<(Op, u32)>,
}

/// The world.
struct World {
    settings: Settings,
    now: i64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    /// Events scheduled and not yet run, polls aside.
    outstanding: u64,
    rng: StdRng,
    table: Table,
    filter: Filter,
    posts: Vec<(TopicSlug, PostId)>,
    users: Vec<UserId>,
    clients: Vec<Client>,
    consumers: Vec<Consumer>,
    /// The stream's shards, and which consumer reads which.
    stream: Stream,
    invocations: FxHashMap<u64, Invocation>,
    next_invocation: u64,
    rebuilds: FxHashMap<u64, RebuildRun>,
    next_rebuild: u64,
    /// How far the first post's counter drifted ([`Command::Drift`]), if it did.
    drift: Option<i64>,
    failure_destination: Vec<BatchInfo>,
    faults_on: bool,
    lags: Lags,
    /// Each post's acknowledged likes (+1) and unlikes (-1), in time order.
    history: FxHashMap<PostId, Vec<(i64, i64)>>,
    /// The next new liker's number (with `distinct_likers`).
    next_liker: u64,
    /// Each process's retry quota.
    quotas: FxHashMap<Process, sdk::Quota>,
    trace: FxHasher,
    report: Report,
}

/// A run writing this many likes or more grows its table's database to 1 GiB first
/// ([`Table::presize`]): about 170,000 likes fill 1 GiB, so such a run passes half of it.
const PRESIZE_LIKES: f64 = 100_000.0;

/// Run one simulation.
pub fn run(settings: Settings) -> Result<Report, Failure> {
    let seed = settings.seed;
    let mut world = World::new(settings);
    world.run().map_err(|what| Failure { seed, what })?;
    Ok(world.report)
}

impl World {
    fn new(settings: Settings) -> Self {
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let mut table = Table::new("sim", START_MS, settings.table, settings.seed);
        if settings.rate * settings.load_ms as f64 / 1000.0 >= PRESIZE_LIKES {
            table.presize();
        }
        let posts: Vec<(TopicSlug, PostId)> = (0..settings.posts.max(1))
            .map(|i| {
                let topic = format!("topic-{}", i % settings.topics.max(1));
                (topic.parse().expect("a topic"), id(&mut rng))
            })
            .collect();
        for (topic, post) in &posts {
            let item = Post {
                topic: topic.clone(),
                post_id: *post,
                title: "simulated".into(),
                body: String::new(),
                author_id: "author".parse().expect("a user id"),
                created_at: chrono::DateTime::from_timestamp_millis(START_MS).unwrap_or_default(),
                like_count: 0,
                view_shards: 1,
            }
            .to_item();
            table.load(&item);
        }
        let users = (0..settings.users.max(1))
            .map(|u| format!("user-{u}").parse().expect("a user id"))
            .collect();
        let clients = (0..settings.clients.max(1))
            .map(|c| Client {
                mode: if c < settings.transactional {
                    Mode::Transactional
                } else {
                    Mode::Stream
                },
                retry: None,
            })
            .collect();
        let source = settings.source;
        let stream = Stream::new(source.shards, source.parallelization);
        let consumers = (0..stream.consumers())
            .map(|_| Consumer::new(Kind::Lambda))
            .collect();
        let mut world = Self {
            now: START_MS,
            seq: 0,
            queue: BinaryHeap::new(),
            outstanding: 0,
            rng,
            table,
            filter: Filter::deployed(),
            posts,
            users,
            clients,
            consumers,
            stream,
            invocations: FxHashMap::default(),
            next_invocation: 0,
            rebuilds: FxHashMap::default(),
            next_rebuild: 0,
            drift: None,
            failure_destination: Vec::new(),
            faults_on: true,
            lags: Lags::new(START_MS),
            history: FxHashMap::default(),
            next_liker: 0,
            quotas: FxHashMap::default(),
            trace: FxHasher::default(),
            report: Report {
                seed: settings.seed,
                ..Report::default()
            },
            settings,
        };
        for c in 0..world.clients.len() {
            let first = world.think_time();
            world.schedule(first, Event::Client(c));
        }
        for (at, command) in world.settings.operators.clone() {
            world.schedule(at, Event::Operator(command));
        }
        for at in world.settings.rotations.clone() {
            world.schedule(at, Event::Rotate);
        }
        world.schedule(POLL_MS, Event::Poll);
        world.schedule(READ_EVERY_MS, Event::Read);
        world
    }

    fn schedule(&mut self, after_ms: i64, event: Event) {
        if counts_as_work(&event) {
            self.outstanding += 1;
        }
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after_ms.max(0),
            seq: self.seq,
            event,
        }));
    }

    /// Milliseconds until a client's next operation (exponential: a Poisson load).
    fn think_time(&mut self) -> i64 {
        let per_client = self.settings.rate / self.clients.len() as f64;
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-u.ln() / per_client * 1000.0) as i64
    }

    fn load_ends(&self) -> i64 {
        START_MS + self.settings.load_ms
    }

    /// Run to the end of the load, settle, run the runbook, settle, and check.
    fn run(&mut self) -> Result<(), String> {
        self.run_until_quiet()?;
        self.faults_on = false;
        if !self.failure_destination.is_empty() {
            self.operate(Command::Replay)?;
            self.run_until_quiet()?;
        }
        if let Some(by) = self.drift {
            self.repair_drift(by)?;
        }
        self.check()?;
        if self.settings.days_later {
            self.days_later()?;
        }
        self.report.virtual_ms = self.now - START_MS;
        self.report.fingerprint = self.trace.finish();
        let stats = self.table.stats();
        self.report.conflicts = stats.conflicts + stats.write_conflicts;
        self.report.throttled = stats.throttled;
        self.report.hot_counter_writes_per_second = self
            .table
            .max_post_writes_per_second(self.posts[0].1.as_str());
        self.report.most_folds_per_second = self.lags.most_folds;
        self.report.splits = self.stream.splits as u64;
        if self.lags.most_folds > MAX_FOLDS_PER_SECOND {
            return Err(format!(
                "a hot counter took {} folds in one virtual second",
                self.lags.most_folds
            ));
        }
        self.report.counter_lag_hot = Lag::of(&self.lags.counter[1]);
        self.report.view_lag_hot = Lag::of(&self.lags.view[1]);
        self.report.counter_lag_others = Lag::of(&self.lags.counter[0]);
        self.report.view_lag_others = Lag::of(&self.lags.view[0]);
        let (partition, table) = self.table.peak_units();
        self.report.peak_partition_units = partition;
        self.report.peak_table_units = table;
        let mut series = std::mem::replace(&mut self.lags.series, Series::new(START_MS));
        for (second, usage) in self.table.usage() {
            let at = series.at(second * 1000);
            (at.table_units, at.index_units, at.throttled) =
                (usage.table, usage.index, usage.throttled);
        }
        self.report.series = series.into_seconds();
        Ok(())
    }

    /// The runbook after a counter drifted: `verify`, and `rebuild` if it reports drift. Only
    /// the drifted counter may drift, by the drift itself (a `rebuild` during the load sets a
    /// counter to its recount, or leaves it); anything else is the pipeline's and fails.
    fn repair_drift(&mut self, by: i64) -> Result<(), String> {
        let drift = self.drift();
        let Some(first) = drift.first() else {
            return Ok(());
        };
        let drifted = self.posts[0].1.to_string();
        if drift.len() > 1 || first.post_id != drifted || first.difference != by {
            return Err(format!("drift after settling: {drift:?}"));
        }
        self.operate(Command::Rebuild { segments: 1 })?;
        self.run_until_quiet()
    }

    /// Days after the load: past the tombstones' time to live and the stream's retention.
    /// DynamoDB's TTL removes the tombstones (their removals reach the event source, whose
    /// filters drop them), the stream has trimmed every record older than its retention, and
    /// an operator replays what it still holds (and rebuilds, if one did during the load):
    /// nothing may be counted or uncounted twice.
    fn days_later(&mut self) -> Result<(), String> {
        self.now += TOMBSTONE_TTL_SECS * 1000 + 1000;
        let queue = std::mem::take(&mut self.queue);
        self.queue = queue
            .into_iter()
            .map(|Reverse(mut scheduled)| {
                scheduled.at = scheduled.at.max(self.now);
                Reverse(scheduled)
            })
            .collect();
        self.report.expired += self.table.expire(self.now) as u64;
        self.operate(Command::Replay)?;
        // An operator who rebuilt during the load rebuilds again, beside the replay: its
        // phase 0 finds the old records trimmed, and its scan the tombstones gone.
        let rebuilt = self
            .settings
            .operators
            .iter()
            .find_map(|(_, command)| match command {
                Command::Rebuild { segments } => Some(*segments),
                _ => None,
            });
        if let Some(segments) = rebuilt {
            self.operate(Command::Rebuild { segments })?;
        }
        self.run_until_quiet()?;
        self.check()
    }

    /// Run events until the load is over and nothing is left to do.
    fn run_until_quiet(&mut self) -> Result<(), String> {
        let limit = self.load_ends().max(self.now) + QUIESCE_LIMIT_MS;
        while let Some(Reverse(next)) = self.queue.pop() {
            self.now = next.at;
            if self.now > limit {
                return Err(format!(
                    "not settled {} s after the load: {} invocations running, {} records pending",
                    QUIESCE_LIMIT_MS / 1000,
                    self.invocations.len(),
                    self.consumers
                        .iter()
                        .map(|c| c.pending.len())
                        .sum::<usize>()
                ));
            }
            if self.now >= self.load_ends() + self.settings.fault_tail_ms {
                self.faults_on = false;
            }
            self.report.events += 1;
            self.trace.write_i64(self.now);
            self.trace.write_u8(next.event.kind());
            let poll = matches!(next.event, Event::Poll);
            if counts_as_work(&next.event) {
                self.outstanding -= 1;
            }
            let read = self.step(next.event)?;
            if poll {
                let quiet = self.now >= self.load_ends()
                    && self.outstanding == 0
                    && read == 0
                    && self.invocations.is_empty()
                    && self.rebuilds.is_empty()
                    && self.consumers.iter().all(Consumer::idle)
                    && self.table.gsi1_settles_at().is_none();
                self.schedule(POLL_MS, Event::Poll);
                if quiet {
                    return Ok(());
                }
            }
        }
        Err("the scheduler ran dry".into())
    }

    /// Run one event; a poll says how many records it read.
    fn step(&mut self, event: Event) -> Result<usize, String> {
        match event {
            Event::Client(c) => self.client(c),
            Event::Poll => return self.poll(),
            Event::Land {
                invocation,
                ticket,
                prepared,
                fault,
                answer_at,
            } => self.land(invocation, ticket, prepared, fault, answer_at),
            Event::Retry {
                invocation,
                ticket,
                attempted,
            } => {
                // None once the invocation abandoned the request (or ended).
                if self.awaits(invocation, ticket) {
                    self.attempt(invocation, ticket, attempted);
                }
            }
            Event::Answer {
                invocation,
                ticket,
                answer,
                retry,
            } => {
                if !self.awaits(invocation, ticket) {
                    return Ok(0);
                }
                let process = self.invocations[&invocation].owner.process();
                match retry {
                    Some(mut attempted) if !sdk::succeeded(&answer) => {
                        let cost = sdk::answer_retry_cost(&answer);
                        match self.after_failure(process, &mut attempted.call, self.now, cost) {
                            sdk::Next::Fail | sdk::Next::OutOfQuota => {}
                            sdk::Next::Retry { at } => {
                                let retry = Event::Retry {
                                    invocation,
                                    ticket,
                                    attempted,
                                };
                                self.schedule(at - self.now, retry);
                                return Ok(0);
                            }
                            sdk::Next::TimedOut { at } => {
                                let answer = Answer::Transient(sdk::TIMED_OUT.into());
                                self.answer_at(at, invocation, ticket, answer, None);
                                return Ok(0);
                            }
                        }
                    }
                    Some(mut attempted) => {
                        attempted.call.succeeded(self.quota(process));
                    }
                    None => {}
                }
                let running = self.invocations.get_mut(&invocation).expect("awaited");
                running.in_flight.remove(&ticket);
                running.answers += 1;
                let crashed = running.crash_after == Some(running.answers);
                if !crashed {
                    running.batch.answer(ticket, answer, self.now);
                }
                if crashed {
                    self.report.faults += 1;
                    self.end(invocation, Ended::FunctionError);
                } else {
                    self.pump(invocation)?;
                }
            }
            Event::Wake(invocation) => {
                if self.invocations.contains_key(&invocation) {
                    self.pump(invocation)?;
                }
            }
            Event::Deadline(invocation) => {
                if let Some(running) = self.invocations.get_mut(&invocation) {
                    let mut abandoned: Vec<Ticket> = running.in_flight.drain().collect();
                    abandoned.sort();
                    for ticket in abandoned {
                        running.batch.answer(ticket, Answer::Abandoned, self.now);
                    }
                    self.pump(invocation)?;
                }
            }
            Event::Timeout(invocation) => {
                if self.invocations.contains_key(&invocation) {
                    self.end(invocation, Ended::FunctionError);
                }
            }
            Event::Operator(command) => self.operate(command)?,
            Event::Operated {
                run,
                attempt,
                ticket,
                answer,
            } => self.operated(run, attempt, ticket, answer)?,
            Event::RebuildWake { run, attempt } => {
                // A wake of an attempt that failed since is stale: the rerun wakes on its own.
                if self
                    .rebuilds
                    .get(&run)
                    .is_some_and(|r| r.attempt == attempt)
                {
                    self.drive_rebuild(run)?;
                }
            }
            Event::Rerun(run) => self.rerun(run)?,
            Event::Call(call) => self.call(*call),
            Event::Rotate => {
                let (rng, split) = (&mut self.rng, self.settings.split_share);
                self.stream
                    .rotate(|| rng.random_bool(split.clamp(0.0, 1.0)));
                while self.consumers.len() < self.stream.consumers() {
                    let consumer = Consumer::new(Kind::Lambda);
                    self.consumers.push(consumer);
                }
                self.report.rotations += 1;
            }
            Event::Read => {
                self.read_counts()?;
                if self.now < self.load_ends() {
                    self.schedule(READ_EVERY_MS, Event::Read);
                }
            }
        }
        Ok(0)
    }

    fn client(&mut self, c: usize) {
        if self.now >= self.load_ends() {
            return;
        }
        let (op, attempt) = match self.clients[c].retry.take() {
            Some(retry) => retry,
            None => (self.next_op(), 0),
        };
        let like_id: LikeId = id(&mut self.rng);
        let outcome = writer::run(
            &mut self.table,
            self.clients[c].mode,
            &op,
            self.now,
            like_id,
        );
        self.trace.write_u8(outcome as u8);
        if outcome == Outcome::Changed {
            let (post, change) = match &op {
                Op::Like(_, _, post) => (post, 1),
                Op::Unlike(_, _, post) => (post, -1),
            };
            self.history
                .entry(*post)
                .or_default()
                .push((self.now, change));
        }
        if let (Outcome::Changed, Op::Like(_, _, post)) = (outcome, &op) {
            let written = Written {
                at: self.now,
                hot: *post == self.posts[0].1,
                counted: false,
                viewed: false,
            };
            self.lags.series.at(self.now).written[usize::from(written.hot)] += 1;
            self.lags.written.insert(like_id, written);
        }
        let wait = if outcome == Outcome::Contended && attempt + 1 < WRITER_BACKOFF.attempts {
            self.clients[c].retry = Some((op, attempt + 1));
            let jitter = self.rng.random();
            WRITER_BACKOFF.jittered(attempt, jitter).as_millis() as i64
        } else {
            self.report.operations += 1;
            if outcome == Outcome::Contended {
                self.report.operations_given_up += 1;
            }
            self.think_time()
        };
        self.schedule(wait, Event::Client(c));
    }

    fn next_op(&mut self) -> Op {
        let (topic, post) = if self
            .rng
            .random_bool(self.settings.hot_share.clamp(0.0, 1.0))
        {
            self.posts[0].clone()
        } else {
            self.posts[self.rng.random_range(0..self.posts.len())].clone()
        };
        let user = if self.settings.distinct_likers {
            self.next_liker += 1;
            format!("liker-{}", self.next_liker)
                .parse()
                .expect("a user id")
        } else {
            self.users[self.rng.random_range(0..self.users.len())].clone()
        };
        if self
            .rng
            .random_bool(self.settings.unlike_share.clamp(0.0, 1.0))
        {
            Op::Unlike(user, topic, post)
        } else {
            Op::Like(user, topic, post)
        }
    }

    /// Read the stream, route what the filters pass, and start every invocation that is due.
    fn poll(&mut self) -> Result<usize, String> {
        if self.lags.series.first_look(self.now) {
            self.sample_waiting();
        }
        self.table.propagate(self.now);
        for viewed in self.table.viewed() {
            if let Ok(like) = viewed.like_id.parse() {
                self.lags.viewed(like, viewed.at_ms);
            }
        }
        let records = self.table.new_records();
        let read = records.len();
        for raw in records {
            if !self.filter.passes_json(raw.json.as_bytes()) {
                continue;
            }
            let value = raw.value();
            let consumer = self.stream.consumer_of(partition_key(&value));
            let routed = self.routed(&raw, &value);
            self.consumers[consumer].pending.push_back(routed);
        }
        for c in 0..self.consumers.len() {
            self.read_for_replay(c);
            self.start(c)?;
        }
        self.caught_up();
        Ok(read)
    }

    fn routed(&self, raw: &RawRecord, value: &serde_json::Value) -> Rc<Routed> {
        Rc::new(Routed {
            decoded: decode_json(value),
            json: raw.json.clone(),
            read_ms: self.now,
        })
    }

    /// The records the consumers hold at the start of a second, and the oldest one's age.
    fn sample_waiting(&mut self) {
        let (mut waiting, mut oldest) = (0, 0);
        for consumer in &self.consumers {
            waiting += consumer.pending.len() as u64;
            if let Some(first) = consumer.pending.front() {
                oldest = oldest.max(self.now - first.read_ms);
            }
        }
        let second = self.lags.series.at(self.now);
        (second.waiting_records, second.oldest_waiting_ms) = (waiting, oldest);
    }

    /// A replay reads the stream from its start, through the filters, a few batches ahead.
    fn read_for_replay(&mut self, c: usize) {
        let Kind::Replay {
            read_to,
            caught_up: false,
        } = &self.consumers[c].kind
        else {
            return;
        };
        if self.consumers[c].pending.len() >= 2 * lambda::REPLAY_BATCH {
            return;
        }
        let page = self.table.records_after(*read_to, lambda::REPLAY_BATCH);
        let read_to = page.last().map(|raw| raw.sequence).or(*read_to);
        let caught_up = page.is_empty();
        for raw in page {
            if self.filter.passes_json(raw.json.as_bytes()) {
                let routed = self.routed(&raw, &raw.value());
                self.consumers[c].pending.push_back(routed);
            }
        }
        self.consumers[c].kind = Kind::Replay { read_to, caught_up };
    }

    /// Start an invocation on consumer `c` if one is due.
    fn start(&mut self, c: usize) -> Result<(), String> {
        let source = self.settings.source;
        let consumers = &self.consumers;
        if self.stream.waits(c, |parent| consumers[parent].idle()) {
            return Ok(());
        }
        let Some(len) = self.consumers[c].due(self.now, &source) else {
            return Ok(());
        };
        let id = self.next_invocation;
        self.next_invocation += 1;
        self.report.invocations += 1;
        self.lags.series.at(self.now).invocations += 1;
        let consumer = &mut self.consumers[c];
        consumer.running = Some(len);
        let records: Vec<Rc<Routed>> = consumer.pending.iter().take(len).cloned().collect();
        let decoded: Vec<_> = records.iter().map(|r| r.decoded.clone()).collect();
        // Lambda ends an invocation at the function's timeout; the replay CLI gives a batch
        // `BATCH_TIME`, as every batch outside Lambda (`Deadline::batch`).
        let timeout = match consumer.kind {
            Kind::Lambda => source.timeout.unwrap_or(BATCH_TIME),
            Kind::Replay { .. } => BATCH_TIME,
        };
        let timeout = timeout.as_millis() as i64;
        let deadline = timeout - MARGIN.as_millis() as i64;
        let settings = BatchSettings {
            defers_stamps: true,
            deadline_ms: Some(self.now + deadline),
            seed: self.rng.random(),
        };
        let batch = Batch::of_records(&decoded, &consumer.knowledge, self.now, settings);
        let crash_after = (self.faults_on
            && self.rng.random_range(0..100) < self.settings.faults.crash)
            .then(|| self.rng.random_range(1..20));
        self.invocations.insert(
            id,
            Invocation {
                owner: Owner::Consumer(c),
                batch,
                records,
                in_flight: FxHashSet::default(),
                crash_after,
                answers: 0,
            },
        );
        self.schedule(deadline, Event::Deadline(id));
        self.schedule(timeout, Event::Timeout(id));
        self.pump(id)
    }

    /// Send what the machine asks for; end the invocation when it is done.
    fn pump(&mut self, id: u64) -> Result<(), String> {
        let running = self.invocations.get_mut(&id).expect("a running invocation");
        let requests = running.batch.poll(self.now);
        for (ticket, _) in &requests {
            running.in_flight.insert(*ticket);
        }
        if running.batch.is_done() {
            let done = self.invocations.remove(&id).expect("a running invocation");
            let (applied, knowledge) = done.batch.finish();
            match done.owner {
                Owner::Consumer(c) => {
                    self.consumers[c].knowledge.merge(knowledge);
                    self.settle(c, Ended::Answered(applied.outcomes));
                }
                Owner::Rebuild {
                    run,
                    attempt,
                    ticket,
                } => {
                    if let Some(r) = self.rebuilds.get_mut(&run) {
                        r.knowledge.merge(knowledge);
                    }
                    let answer = Some(RebuildAnswer::Repaired(applied.outcomes));
                    self.operated(run, attempt, ticket, answer)?;
                }
            }
            return Ok(());
        }
        let idle = running.in_flight.is_empty();
        let wake = running.batch.wake_at();
        for (ticket, request) in requests {
            self.send(id, ticket, request);
        }
        if idle {
            let Some(at) = wake else {
                return Err(
                    "the batch machine is stuck: nothing in flight, no time to wake".into(),
                );
            };
            self.schedule(at - self.now, Event::Wake(id));
        }
        Ok(())
    }

    /// End an invocation that failed as a whole.
    fn end(&mut self, id: u64, ended: Ended) {
        if let Some(running) = self.invocations.remove(&id) {
            self.report.function_errors += 1;
            match running.owner {
                Owner::Consumer(c) => self.settle(c, ended),
                // The rebuild's process died mid-page.
                Owner::Rebuild { run, attempt, .. } => self.fail_rebuild(run, attempt),
            }
        }
    }

    /// Settle consumer `c`'s invocation and start its next.
    fn settle(&mut self, c: usize, ended: Ended) {
        let source = self.settings.source;
        let settled = self.consumers[c].finished(ended, self.now, &source, c);
        self.lags.series.at(self.now).failed_invocations += u64::from(settled.failed);
        self.consumers[c].applied += settled.applied as u64;
        self.trace.write_usize(settled.applied);
        if let Some((info, _)) = settled.given_up {
            self.report.given_up += 1;
            self.lags.series.at(self.now).given_up += 1;
            self.failure_destination.push(info);
        }
    }

    /// A draw in `0..100` against the fault rates (`Faults`): 100, no fault, once they calm.
    pub(crate) fn fault_draw(&mut self) -> u32 {
        if self.faults_on {
            self.rng.random_range(0..100)
        } else {
            100
        }
    }

    /// The retry quota of `process`, full the first time it is asked for.
    pub(crate) fn quota(&mut self, process: Process) -> &mut sdk::Quota {
        quota_of(&mut self.quotas, process, self.settings.retry_quota)
    }

    /// What the SDK of `process` does after `call`'s attempt failed at `at` (`cost`: a retry's,
    /// if it retries the error); the retries it makes and those its quota refuses are counted.
    pub(crate) fn after_failure(
        &mut self,
        process: Process,
        call: &mut sdk::Call,
        at: i64,
        cost: Option<u32>,
    ) -> sdk::Next {
        // The quota and the world's generator, borrowed side by side.
        let quota = quota_of(&mut self.quotas, process, self.settings.retry_quota);
        let next = call.after_failure(at, cost, quota, &mut self.rng);
        match next {
            sdk::Next::Retry { .. } => self.report.sdk_retries += 1,
            sdk::Next::OutOfQuota => self.report.sdk_out_of_quota += 1,
            sdk::Next::Fail | sdk::Next::TimedOut { .. } => {}
        }
        next
    }

    /// Whether invocation `invocation` still waits for the answer to `ticket`.
    fn awaits(&self, invocation: u64, ticket: Ticket) -> bool {
        self.invocations
            .get(&invocation)
            .is_some_and(|running| running.in_flight.contains(&ticket))
    }

    /// Send a request as the executor does: built once, then attempted through the SDK.
    fn send(&mut self, invocation: u64, ticket: Ticket, request: Request) {
        let rng = &mut self.rng;
        let records = self.invocations.get(&invocation).map(|i| &i.records);
        let raw = |position: usize| {
            records
                .and_then(|r| r.get(position))
                .map(|r| r.json.to_string())
                .unwrap_or_default()
        };
        let prepared = executor::prepare(&self.table.name, request, || id(rng), raw);
        let call = sdk::Call::new(self.now, prepared.retried());
        let prepared = Rc::new(prepared);
        self.attempt(invocation, ticket, Attempted { prepared, call });
    }

    /// One attempt of a request: it lands after a short while, unless a fault drops it, and
    /// its answer comes back unless a fault loses it or the SDK stopped waiting first.
    fn attempt(&mut self, invocation: u64, ticket: Ticket, attempted: Attempted) {
        let Attempted { prepared, mut call } = attempted;
        self.report.requests += 1;
        let cut = call.attempt(self.now);
        let faults = self.settings.faults;
        let draw = self.fault_draw();
        let fault = if draw < faults.lost {
            self.report.faults += 1;
            if self.rng.random_bool(0.5) {
                Fault::Dropped
            } else {
                Fault::Lost
            }
        } else if draw < faults.lost + faults.slow {
            self.report.faults += 1;
            Fault::Slow
        } else if draw < faults.lost + faults.slow + faults.throttled {
            self.report.faults += 1;
            Fault::Throttled
        } else {
            Fault::None
        };
        let after = match fault {
            Fault::Slow => self.rng.random_range(1_000..10_000),
            _ => self.rng.random_range(1..8),
        };
        let answered = self.now + after + self.rng.random_range(1..8);
        let answers = !matches!(fault, Fault::Dropped | Fault::Lost) && answered < cut;
        if !answers {
            let timed_out = Event::Answer {
                invocation,
                ticket,
                answer: Answer::Transient(sdk::TIMED_OUT.into()),
                retry: Some(Attempted {
                    prepared: prepared.clone(),
                    call,
                }),
            };
            self.schedule(cut - self.now, timed_out);
        }
        if fault != Fault::Dropped {
            let land = Event::Land {
                invocation,
                ticket,
                prepared,
                fault,
                answer_at: answers.then_some((answered, call)),
            };
            self.schedule(after, land);
        }
    }

    /// An attempt reaches the table, and its answer goes back if it does.
    fn land(
        &mut self,
        invocation: u64,
        ticket: Ticket,
        prepared: Rc<Prepared>,
        fault: Fault,
        answer_at: Option<(i64, sdk::Call)>,
    ) {
        let answer = if fault == Fault::Throttled {
            throttled(&prepared.request, &mut self.rng)
        } else {
            let answer = executor::send(&mut self.table, &prepared, self.now);
            if answer == Answer::Done {
                self.lags
                    .landed(&prepared.request, &prepared.minted, self.now);
            }
            answer
        };
        let throttle = match &answer {
            Answer::Throttled => true,
            Answer::Cancelled(reasons) => reasons.contains(&Reason::Throttled),
            _ => false,
        };
        if throttle {
            let second = self.lags.series.at(self.now);
            match prepared.request {
                Request::Count { .. } => second.throttled_counts += 1,
                Request::Stamp { .. } => second.throttled_stamps += 1,
                _ => {}
            }
        }
        self.trace.write_u8(answer_code(&answer));
        if let Some((at, call)) = answer_at {
            let retry = Some(Attempted { prepared, call });
            self.answer_at(at, invocation, ticket, answer, retry);
        }
    }

    /// The answer to `ticket` reaches invocation `invocation` at `at`, with the attempt the SDK
    /// may make again after it (none once the SDK gave up waiting).
    fn answer_at(
        &mut self,
        at: i64,
        invocation: u64,
        ticket: Ticket,
        answer: Answer,
        retry: Option<Attempted>,
    ) {
        let answered = Event::Answer {
            invocation,
            ticket,
            answer,
            retry,
        };
        self.schedule(at - self.now, answered);
    }

    /// Read the first posts' counts as the API answers them, and check each against the
    /// acknowledged history (a counter checker in the manner of Jepsen's): a count read at `t`
    /// is every change acknowledged before `t - S` and any subset of the later ones, for some
    /// staleness `S`. A count that no `S` allows, or none within [`STALENESS_BOUND_MS`], is a
    /// failure; the largest `S` is reported.
    fn read_counts(&mut self) -> Result<(), String> {
        // A counter an operator's drift moved answers to no acknowledged history.
        let skip = usize::from(self.drift.is_some());
        for (topic, post) in self.posts.iter().take(POSTS_READ).skip(skip) {
            let key = contracts::items::key_item(&keys::ItemKey::Post(topic.clone(), *post));
            let body = serde_json::json!({"TableName": self.table.name, "Key": wire::item(&key)});
            let Ok(found) = self.table.call("GetItem", &body, self.now) else {
                continue;
            };
            let Some(count) = found["Item"][attr::LIKE_COUNT]["N"]
                .as_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            self.report.count_reads += 1;
            let history = self
                .history
                .get(post)
                .map(Vec::as_slice)
                .unwrap_or_default();
            match staleness(history, count, self.now) {
                // Until a batch goes to the failure destination (its likes then wait for the
                // runbook), every like is in the counts within the stated bound.
                Some(stale) if stale > STALENESS_BOUND_MS && self.report.given_up == 0 => {
                    return Err(format!(
                        "post {post} read {count} likes at {} ms: it misses a change acknowledged {stale} ms before, past the {STALENESS_BOUND_MS} ms staleness bound",
                        self.now - START_MS
                    ));
                }
                Some(stale) => {
                    self.report.max_read_staleness_ms =
                        self.report.max_read_staleness_ms.max(stale);
                }
                None => {
                    return Err(format!(
                        "post {post} read {count} likes at {} ms: no acknowledged history allows it",
                        self.now - START_MS
                    ));
                }
            }
        }
        Ok(())
    }

    fn operate(&mut self, command: Command) -> Result<(), String> {
        self.report.commands += 1;
        match command {
            Command::Replay => {
                self.add_replay();
            }
            Command::Verify => {
                let drifting = self.drift().len();
                self.trace.write_usize(drifting);
            }
            Command::Drift(by) => {
                let (topic, post) = &self.posts[0];
                let key = contracts::items::key_item(&keys::ItemKey::Post(topic.clone(), *post));
                let body = serde_json::json!({
                    "TableName": self.table.name,
                    "Key": wire::item(&key),
                    "UpdateExpression": "SET #count = #count + :by",
                    "ExpressionAttributeNames": {"#count": attr::LIKE_COUNT},
                    "ExpressionAttributeValues": {":by": {"N": by.to_string()}},
                });
                let drifted = self.table.call("UpdateItem", &body, self.now).is_ok();
                if drifted {
                    self.drift = Some(by);
                }
                self.trace.write_u8(u8::from(drifted));
            }
            Command::Rebuild { segments } => self.start_rebuild(segments)?,
        }
        Ok(())
    }

    /// A replay's consumer, from the stream's trim horizon: its number.
    pub(crate) fn add_replay(&mut self) -> usize {
        let replay = Kind::Replay {
            read_to: None,
            caught_up: false,
        };
        let consumer = Consumer::new(replay);
        let number = self.stream.add_replay();
        debug_assert_eq!(number, self.consumers.len());
        self.consumers.push(consumer);
        number
    }

    /// What `verify` reports: the posts that drift, over a consistent scan.
    fn drift(&mut self) -> Vec<projector::verify::Drift> {
        let mut tallies = Tallies::default();
        self.table.scan(|item| tally(&mut tallies, &item));
        tallies.drift()
    }

    /// Zero drift, no delta left, every stamp in a shard below its post's count.
    fn check(&mut self) -> Result<(), String> {
        let mut tallies = Tallies::default();
        // Each post's view shards, and the highest shard a like of it is stamped into.
        let mut shards: FxHashMap<String, i64> = FxHashMap::default();
        let mut stamped: FxHashMap<String, i64> = FxHashMap::default();
        self.table.scan(|item| {
            if let Some((post, n)) = view_shards(&item) {
                shards.insert(post, n);
            }
            if let Some((post, shard)) = stamped_shard(&item) {
                let highest = stamped.entry(post).or_insert(shard);
                *highest = (*highest).max(shard);
            }
            tally(&mut tallies, &item);
        });
        let drift = tallies.drift();
        if !drift.is_empty() {
            return Err(format!("drift after settling: {drift:?}"));
        }
        if let Some((post, t)) = tallies.posts.iter().find(|(_, t)| t.pending != 0) {
            return Err(format!("a delta left on {post:?}: {t:?}"));
        }
        self.report.live_likes = tallies.posts.values().map(|t| t.live).sum();
        let mut stamped: Vec<_> = stamped.into_iter().collect();
        stamped.sort();
        for (post, shard) in stamped {
            if shard >= shards.get(&post).copied().unwrap_or(1) {
                return Err(format!(
                    "a like stamped into shard {shard} of post {post}, beyond its view shards"
                ));
            }
        }
        // What readers of the likers view (AP8) see: GSI1, once it has shown every write.
        if let Some(at) = self.table.gsi1_settles_at() {
            self.now = self.now.max(at);
        }
        for (post, tally) in &tallies.posts {
            let view_shards = shards.get(post.post.as_str()).copied().unwrap_or(1);
            let viewed = self.gsi1_likes(&post.post, view_shards);
            if viewed != tally.live {
                return Err(format!(
                    "GSI1 shows {viewed} likes of post {}, which has {} live likes",
                    post.post, tally.live
                ));
            }
        }
        Ok(())
    }

    /// The likes of `post` GSI1 shows over its view shards, as AP8 reads them.
    fn gsi1_likes(&mut self, post: &PostId, view_shards: i64) -> i64 {
        (0..view_shards.max(1))
            .flat_map(|k| {
                let body = serde_json::json!({
                    "TableName": self.table.name,
                    "IndexName": keys::GSI1,
                    "KeyConditionExpression": "#pk = :pk",
                    "ExpressionAttributeNames": {"#pk": keys::GSI1PK},
                    "ExpressionAttributeValues":
                        {":pk": {"S": keys::post_view_shard(post, k as u32)}},
                    "Select": "COUNT",
                    "Limit": table::READ_PAGE,
                });
                self.table.pages("Query", body, self.now)
            })
            .map(|page| page["Count"].as_i64().unwrap_or_default())
            .sum()
    }
}

/// The retry quota of `process` among `quotas`, full (`capacity` tokens) when first asked for.
fn quota_of(
    quotas: &mut FxHashMap<Process, sdk::Quota>,
    process: Process,
    capacity: u32,
) -> &mut sdk::Quota {
    quotas
        .entry(process)
        .or_insert_with(|| sdk::Quota::full(capacity))
}

/// `verify`'s tally, given one item of a consistent scan.
fn tally(tallies: &mut Tallies, item: &serde_json::Value) {
    if let Some(item) = wire::from_item(item) {
        tallies.add(item);
    }
}

/// A post item's view shards: (post, `viewShards`, 1 without it).
fn view_shards(item: &serde_json::Value) -> Option<(String, i64)> {
    let post = item[keys::SK]["S"].as_str()?.strip_prefix("POST#")?;
    let shards = item[attr::VIEW_SHARDS]["N"]
        .as_str()
        .map_or(Some(1), |n| n.parse().ok())?;
    Some((post.to_owned(), shards))
}

/// A like stamped into a view: (post, the view shard its `GSI1PK` names).
fn stamped_shard(item: &serde_json::Value) -> Option<(String, i64)> {
    let rest = item[keys::GSI1PK]["S"].as_str()?.strip_prefix("POST#")?;
    let (post, shard) = match rest.split_once('#') {
        Some((post, k)) => (post, k.parse::<i64>().unwrap_or(i64::MAX)),
        None => (rest, 0),
    };
    Some((post.to_owned(), shard))
}

/// DynamoDB's answer to a request it throttles: a transaction cancelled with one action's
/// reason `ThrottlingError`, anything else `ThrottlingException`.
fn throttled(request: &Request, rng: &mut StdRng) -> Answer {
    match request {
        Request::Count { transaction, .. } => {
            let actions = transaction.actions();
            let at = rng.random_range(0..actions.max(1));
            Answer::Cancelled(
                (0..actions)
                    .map(|i| {
                        if i == at {
                            Reason::Throttled
                        } else {
                            Reason::None
                        }
                    })
                    .collect(),
            )
        }
        _ => Answer::Throttled,
    }
}

/// A short code of an answer, for the trace.
fn answer_code(answer: &Answer) -> u8 {
    match answer {
        Answer::Done => 0,
        Answer::Read { .. } => 1,
        Answer::Cancelled(_) => 2,
        Answer::ConditionFailed { .. } => 3,
        Answer::Throttled => 4,
        Answer::Transient(_) => 5,
        Answer::Permanent(_) => 6,
        Answer::Abandoned => 7,
    }
}

/// An id (a KSUID's text) from the seeded generator: 27 base62 characters, below the
/// largest KSUID.
fn id<T: std::str::FromStr>(rng: &mut StdRng) -> T {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut text = String::with_capacity(27);
    text.push(char::from(b'0' + rng.random_range(0..4)));
    for _ in 0..26 {
        text.push(char::from(BASE62[rng.random_range(0..62)]));
    }
    text.parse()
        .unwrap_or_else(|_| unreachable!("27 base62 characters below the largest KSUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a storm of lost requests a process's retry quota runs dry and the SDK hands the
    /// failures to the batch machine: the run still settles exact.
    #[test]
    fn a_storm_of_lost_requests_empties_the_retry_quota_and_the_run_still_settles() {
        let mut settings = Settings::sweep(11);
        // A quota a short run spends (the SDK's holds 500 tokens).
        settings.retry_quota = 30;
        settings.rate = 100.0;
        settings.load_ms = 20_000;
        settings.distinct_likers = true;
        settings.faults = Faults {
            lost: 40,
            slow: 0,
            throttled: 0,
            crash: 0,
        };
        let report = run(settings).expect("settles with zero drift");
        assert!(report.sdk_out_of_quota > 0, "{report:?}");
        assert!(report.sdk_retries > 0, "{report:?}");
    }

    #[test]
    fn a_seed_gives_the_same_run_bit_for_bit() {
        let first = run(Settings::sweep(7)).expect("seed 7 settles");
        let second = run(Settings::sweep(7)).expect("seed 7 settles");
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
        let other = run(Settings::sweep(8)).expect("seed 8 settles");
        assert_ne!(
            first.fingerprint, other.fingerprint,
            "another seed, another run"
        );
        assert!(first.operations > 0 && first.requests > 0, "{first:?}");
    }

    /// A like the projector never sees (here, filters that pass nothing) is missing from every
    /// count read after it: once it is older than the staleness bound, the checker fails the
    /// run during the load, long before the end's drift check.
    #[test]
    fn a_count_missing_a_like_past_the_staleness_bound_fails_the_run() {
        let mut settings = Settings::sweep(3);
        settings.load_ms = STALENESS_BOUND_MS + 5_000;
        settings.rate = 5.0;
        settings.operators.clear(); // no rebuild to count them
        settings.transactional = 0; // the projector counts every like

        let mut world = World::new(settings);
        world.filter = Filter::of([serde_json::json!({"eventName": ["NONE"]})]);
        let failure = world.run().expect_err("likes never counted");
        assert!(failure.contains("staleness bound"), "{failure}");
        assert_eq!(world.report.given_up, 0, "no batch excused it");
    }

    #[test]
    fn a_count_read_is_checked_against_the_acknowledged_history() {
        // Liked at 0 and 10, one unliked at 20: 1 like now.
        let history = [(0, 1), (10, 1), (20, -1)];
        assert_eq!(staleness(&history, 1, 100), Some(0), "up to date");
        assert_eq!(
            staleness(&history, 2, 100),
            Some(80),
            "the unlike not taken back yet"
        );
        assert_eq!(
            staleness(&history, 0, 100),
            Some(90),
            "the second like not counted yet"
        );
        assert_eq!(
            staleness(&history, -1, 100),
            Some(100),
            "neither like counted, the unlike taken back"
        );
        assert_eq!(
            staleness(&history, 3, 100),
            None,
            "more likes than ever were"
        );
        assert_eq!(staleness(&[], 1, 100), None, "a like nobody wrote");
    }

    #[test]
    fn the_end_check_sees_a_counter_off_by_one() {
        let mut world = World::new(Settings::sweep(3));
        world.run().expect("seed 3 settles");
        let (topic, post) = world.posts[0].clone();
        let write = contracts::counting::move_counter(&topic, post, 1);
        let body = wire::request(::projector::batch::count::ActionKind::Update, &write, "sim");
        world
            .table
            .call("UpdateItem", &body, world.now)
            .expect("the counter moves");
        let failure = world.check().expect_err("drift is seen");
        assert!(failure.contains("drift"), "{failure}");
    }

    /// Days later, tombstones have expired and a replay finds their unlikes trimmed from the
    /// stream; were the stream to keep records longer than tombstones live, the replay would
    /// take those likes back a second time, and the check would see it.
    #[test]
    fn tombstones_outlive_the_stream_records_they_guard() {
        let settings = Settings::sweep(4);
        assert!(settings.days_later);
        let report = run(settings.clone()).expect("seed 4 settles");
        assert!(report.expired > 0, "tombstones expired: {report:?}");

        let mut kept = settings;
        kept.table.stream_retention_ms = 2 * TOMBSTONE_TTL_SECS * 1000;
        let failure = run(kept).expect_err("an unlike replayed without its tombstone");
        assert!(failure.what.contains("drift"), "{failure}");
    }

    /// `rebuild` corrects a counter that held still between two looks at its recount; the
    /// recount reads GSI1, so the second look waits for GSI1 to show what the replay before it
    /// wrote. With the runbook's settle (longer than GSI1's delay) seed 78 settles exact; with
    /// a settle of 1 s against GSI1 taking up to 7.6 s, a like GSI1 does not show yet is taken
    /// for drift, and the check sees the counter left short.
    #[test]
    fn rebuild_waits_longer_than_gsi1_takes_to_show_a_write() {
        let settings = Settings::sweep(78);
        assert!(
            settings.table.gsi1_delay_ms.1 > 5_000,
            "{:?}",
            settings.table
        );
        let rebuilds = settings.operators.iter();
        assert!(
            rebuilds
                .filter(|(_, c)| matches!(c, Command::Rebuild { .. }))
                .count()
                > 0,
            "{:?}",
            settings.operators
        );
        let report = run(settings.clone()).expect("seed 78 settles");
        assert!(report.rebuilds > 0, "{report:?}");

        let mut hasty = settings;
        hasty.rebuild_settle_ms = 1_000;
        let failure = run(hasty).expect_err("a like GSI1 does not show yet taken for drift");
        assert!(failure.what.contains("drift"), "{failure}");
    }

    #[test]
    fn the_end_check_reads_the_likers_view_through_gsi1() {
        let mut world = World::new(Settings::sweep(3));
        world.run().expect("seed 3 settles");
        let mut stamped = None;
        world.table.scan(|item| {
            if stamped.is_none() && item.get(keys::GSI1PK).is_some() {
                stamped = Some(item);
            }
        });
        let stamped = stamped.expect("a like in the view");
        let key = serde_json::json!({keys::PK: stamped[keys::PK], keys::SK: stamped[keys::SK]});
        world.table.lose_from_gsi1(key);
        let failure = world.check().expect_err("a like missing from GSI1 is seen");
        assert!(failure.contains("GSI1 shows"), "{failure}");
    }
}
