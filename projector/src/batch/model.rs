//! The batch machine, driven against a model of the table in virtual time: the real decisions
//! (screening, lanes, retries, hot counters and views, stamps, deadlines), the table's
//! conditions as `contracts::counting` states them, and DynamoDB's misbehaviour drawn from a
//! seed — conflicts, throttles (of a call, of one action, of a read's keys), timeouts, answers
//! lost after the write landed, and writes abandoned at the deadline that land anyway.
//! Deliveries go as Lambda's do: from the lowest failed record on, in any window, sometimes
//! on a fresh instance, sometimes crashing mid-batch.
//!
//! After every answer the count is exact: each post's counter plus its pending deltas equals
//! the likes counted and not taken back. At quiescence (the stream delivered to its end, then
//! replayed whole) every live like is counted once, in a view shard below its post's count,
//! and no delta is left.

use contracts::change::{Change, Decoded, IgnoreReason, LikeRef, Undecodable};
use contracts::items::{Delta, Item, attr, key_item};
use contracts::keys::{self, ItemKey, Ksuid, LikeId, PostId, TopicSlug, UserId};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Action, Answer, Batch, Knowledge, Reason, Request, Settings, Ticket, actions, hot};
use crate::plan::CountTransaction;

const START_MS: i64 = 1_700_000_000_000;
/// Requests answered per batch before the driver calls the machine stuck.
const MAX_STEPS: usize = 100_000;

#[derive(Debug, Clone)]
struct LikeItem {
    like: LikeRef,
    counted: bool,
    shard: Option<u32>,
}

#[derive(Debug, Clone)]
struct PostItem {
    topic: TopicSlug,
    count: i64,
    hot_until: Option<i64>,
    view_shards: Option<u32>,
}

/// What the model saw happen, to show a run exercised the paths it claims to.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    counts: FxHashMap<&'static str, usize>,
}

impl Seen {
    fn add(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub(super) fn get(&self, what: &str) -> usize {
        self.counts.get(what).copied().unwrap_or(0)
    }
}

/// The table: likes, posts, tombstones, pending deltas, and its stream.
#[derive(Debug, Default)]
pub(super) struct Table {
    likes: FxHashMap<(UserId, PostId), LikeItem>,
    posts: FxHashMap<PostId, PostItem>,
    tombstones: FxHashSet<LikeId>,
    deltas: FxHashMap<Ksuid, Delta>,
    /// Likes removed while counted whose count is not taken back yet, and their posts.
    removed_counted: FxHashMap<LikeId, PostId>,
    stream: Vec<Change>,
    next_id: u64,
    pub(super) seen: Seen,
}

fn s(text: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(text.into())
}

fn n(number: i64) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(number.to_string())
}

impl Table {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:0>27}", self.next_id)
    }

    fn add_post(&mut self, topic: &TopicSlug) -> PostId {
        let post: PostId = self.id().parse().unwrap();
        self.posts.insert(
            post,
            PostItem {
                topic: topic.clone(),
                count: 0,
                hot_until: None,
                view_shards: None,
            },
        );
        post
    }

    fn like(&mut self, user: &UserId, post: PostId) {
        let key = (user.clone(), post);
        if self.likes.contains_key(&key) {
            return; // the writer's conditional put: a repeat changes nothing
        }
        let like = LikeRef {
            user: user.clone(),
            post,
            topic: self.posts[&post].topic.clone(),
            like_id: self.id().parse().unwrap(),
        };
        self.likes.insert(
            key,
            LikeItem {
                like: like.clone(),
                counted: false,
                shard: None,
            },
        );
        self.stream.push(Change::LikeAdded(like));
    }

    fn unlike(&mut self, user: &UserId, post: PostId) {
        if let Some(old) = self.likes.remove(&(user.clone(), post)) {
            self.stream.push(if old.counted {
                self.removed_counted.insert(old.like.like_id, post);
                Change::LikeRemoved(old.like)
            } else {
                Change::Ignored(IgnoreReason::RemovedUncounted(old.like.like_id))
            });
        }
    }

    fn like_item(&self, user: &UserId, post: PostId) -> Option<Item> {
        let like = self.likes.get(&(user.clone(), post))?;
        let mut item = key_item(&ItemKey::Like(user.clone(), post));
        item.insert(attr::LIKE_ID.into(), s(like.like.like_id.as_str()));
        if like.counted {
            item.insert(attr::COUNTED_BY.into(), s("projector"));
        }
        if let Some(shard) = like.shard {
            item.insert(keys::GSI1PK.into(), s(&keys::post_view_shard(&post, shard)));
        }
        Some(item)
    }

    fn post_item(&self, post: PostId) -> Option<Item> {
        let found = self.posts.get(&post)?;
        let mut item = key_item(&ItemKey::Post(found.topic.clone(), post));
        item.insert(attr::LIKE_COUNT.into(), n(found.count));
        if let Some(until) = found.hot_until {
            item.insert(attr::HOT_UNTIL.into(), n(until));
        }
        if let Some(shards) = found.view_shards {
            item.insert(attr::VIEW_SHARDS.into(), n(i64::from(shards)));
        }
        Some(item)
    }

    /// The request's effect and DynamoDB's true answer.
    fn apply(&mut self, request: &Request) -> Answer {
        match request {
            Request::Quarantine { .. } => Answer::Done,
            Request::Read { keys } => Answer::Read {
                items: keys
                    .iter()
                    .filter_map(|key| match key {
                        ItemKey::Like(user, post) => self.like_item(user, *post),
                        ItemKey::Post(_, post) => self.post_item(*post),
                        _ => None,
                    })
                    .collect(),
                unprocessed: Vec::new(),
            },
            Request::Count {
                transaction,
                now_secs,
            } => self.transact(transaction, *now_secs),
            Request::Stamp { like, shard } => {
                self.seen.add("stamp");
                match self.likes.get_mut(&(like.user.clone(), like.post)) {
                    Some(item) if item.like.like_id == like.like_id && item.shard.is_none() => {
                        item.shard = Some(*shard);
                        Answer::Done
                    }
                    _ => Answer::ConditionFailed { old: None },
                }
            }
            Request::Grow { post, shards, .. } => {
                self.seen.add("grow");
                let old = self.post_item(*post);
                match self.posts.get_mut(post) {
                    Some(found) if found.view_shards.is_none_or(|now| now < *shards) => {
                        found.view_shards = Some(*shards);
                        Answer::Done
                    }
                    _ => Answer::ConditionFailed { old },
                }
            }
            Request::Defer { like, .. } => {
                self.seen.add("defer");
                match self.likes.get(&(like.user.clone(), like.post)) {
                    Some(item) if item.like.like_id == like.like_id && item.shard.is_none() => {
                        self.stream.push(Change::StampDue(like.clone()));
                        Answer::Done
                    }
                    _ => Answer::ConditionFailed { old: None },
                }
            }
        }
    }

    /// A counting transaction: every condition holds and all of it is written, or nothing is
    /// and each failed action says so (with the old item where the write asks for it).
    fn transact(&mut self, transaction: &CountTransaction, now_secs: i64) -> Answer {
        let actions = actions(transaction);
        let reasons: Vec<Reason> = actions
            .iter()
            .map(|action| {
                let failed = |old| Reason::ConditionFailed { old };
                match *action {
                    Action::Counter(p) => {
                        let count = &transaction.posts[p];
                        let post = self.posts.get(&count.post.post);
                        let cold =
                            || post.is_some_and(|p| p.hot_until.is_none_or(|u| u < now_secs));
                        if count.folds.is_empty() && !cold() {
                            failed(self.post_item(count.post.post))
                        } else if post.is_none() {
                            failed(None)
                        } else {
                            Reason::None
                        }
                    }
                    Action::Delta(_) => Reason::None,
                    Action::Mark(p, m) => {
                        let like = &transaction.posts[p].marks[m].like;
                        match self.likes.get(&(like.user.clone(), like.post)) {
                            Some(item) if item.like.like_id == like.like_id && !item.counted => {
                                Reason::None
                            }
                            _ => failed(self.like_item(&like.user, like.post)),
                        }
                    }
                    Action::Uncount(p, u) => {
                        let like = &transaction.posts[p].uncounts[u].like;
                        if self.tombstones.contains(&like.like_id) {
                            failed(None)
                        } else {
                            Reason::None
                        }
                    }
                    Action::Fold(p, f) => {
                        let delta = &transaction.posts[p].folds[f].delta;
                        if self.deltas.contains_key(&delta.delta_id) {
                            Reason::None
                        } else {
                            failed(None)
                        }
                    }
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != Reason::None) {
            return Answer::Cancelled(reasons);
        }
        for count in &transaction.posts {
            let post = count.post.post;
            if count.via_delta {
                self.seen.add("delta");
                let delta = Delta {
                    topic: count.post.topic.clone(),
                    post_id: post,
                    delta_id: self.id().parse().unwrap(),
                    delta: count.moves_by(),
                };
                self.deltas.insert(delta.delta_id, delta.clone());
                self.stream.push(Change::DeltaAdded(delta));
            } else {
                let found = self.posts.get_mut(&post).expect("checked above");
                found.count += count.moves_by();
                if !count.folds.is_empty() {
                    self.seen.add("fold");
                    found.hot_until = Some(hot::hot_until(now_secs));
                }
            }
            for mark in &count.marks {
                let item = self
                    .likes
                    .get_mut(&(mark.like.user.clone(), post))
                    .expect("checked above");
                item.counted = true;
                if mark.stamp {
                    item.shard = Some(0);
                }
            }
            for uncount in &count.uncounts {
                self.tombstones.insert(uncount.like.like_id);
                self.removed_counted.remove(&uncount.like.like_id);
            }
            for fold in &count.folds {
                self.deltas.remove(&fold.delta.delta_id);
            }
        }
        Answer::Done
    }

    /// Exactly once: every post's counter plus its pending deltas is the likes counted and
    /// not taken back.
    fn check_exact(&self) -> Result<(), String> {
        for (post, item) in &self.posts {
            let pending: i64 = self
                .deltas
                .values()
                .filter(|d| d.post_id == *post)
                .map(|d| d.delta)
                .sum();
            let counted = self
                .likes
                .values()
                .filter(|l| l.like.post == *post && l.counted)
                .count() as i64;
            let unreturned = self
                .removed_counted
                .values()
                .filter(|removed| *removed == post)
                .count() as i64;
            if item.count + pending != counted + unreturned {
                return Err(format!(
                    "post {post}: counter {} + pending {pending} != counted {counted} + not taken back {unreturned}",
                    item.count
                ));
            }
        }
        Ok(())
    }
}

/// How DynamoDB misbehaves for one delivery.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weather {
    pub(super) seed: u64,
    /// Chance in 100 that an answer is not the true one.
    pub(super) faults: u32,
    /// Virtual milliseconds the batch may take, if bounded.
    pub(super) deadline_ms: Option<i64>,
    /// Requests answered before the invocation crashes, if it does.
    pub(super) crash_after: Option<usize>,
}

impl Weather {
    const CALM: Weather = Weather {
        seed: 0,
        faults: 0,
        deadline_ms: None,
        crash_after: None,
    };
}

/// The stream, a position in it, one instance's knowledge, and virtual time.
pub(super) struct World {
    pub(super) table: Table,
    records: Vec<Result<Decoded, Undecodable>>,
    position: usize,
    knowledge: Knowledge,
    now_ms: i64,
}

impl World {
    pub(super) fn new(table: Table) -> Self {
        Self {
            table,
            records: Vec::new(),
            position: 0,
            knowledge: Knowledge::default(),
            now_ms: START_MS,
        }
    }

    fn sync_records(&mut self) {
        let created = chrono::DateTime::from_timestamp_millis(START_MS).unwrap();
        while self.records.len() < self.table.stream.len() {
            let i = self.records.len();
            self.records.push(Ok(Decoded {
                sequence: i.to_string(),
                created,
                change: self.table.stream[i].clone(),
            }));
        }
    }

    /// Deliver `[position - back, + len)`; Lambda resumes from the lowest failed record, and
    /// from the same place after a crash.
    pub(super) fn deliver(
        &mut self,
        back: usize,
        len: usize,
        weather: Weather,
    ) -> Result<(), String> {
        self.sync_records();
        let start = self.position.saturating_sub(back);
        let end = (start + len.max(1)).min(self.records.len());
        if start >= end {
            return Ok(());
        }
        let batch = &self.records[start..end];
        let settings = Settings {
            defers_stamps: true,
            deadline_ms: weather.deadline_ms.map(|ms| self.now_ms + ms),
            seed: weather.seed,
        };
        let machine = Batch::of_records(batch, &self.knowledge, self.now_ms, settings);
        let ran = drive(
            machine,
            &mut self.table,
            &mut self.now_ms,
            weather,
            settings.deadline_ms,
        )?;
        if let Some((outcomes, knowledge)) = ran {
            self.knowledge.merge(knowledge);
            let failed = outcomes.iter().position(|o| *o == super::Outcome::Failed);
            self.position = self.position.max(start + failed.unwrap_or(end - start));
        }
        Ok(())
    }

    pub(super) fn fresh_instance(&mut self) {
        self.knowledge = Knowledge::default();
    }

    /// Deliver to the end in calm weather, then replay everything once; then check the end
    /// state.
    pub(super) fn quiesce(&mut self) -> Result<(), String> {
        for _ in 0..10_000 {
            self.sync_records();
            if self.position >= self.records.len() {
                break;
            }
            self.deliver(0, 10, Weather::CALM)?;
        }
        self.sync_records();
        if self.position < self.records.len() {
            return Err(format!(
                "calm deliveries did not reach the end: {} of {}",
                self.position,
                self.records.len()
            ));
        }
        let all = self.records.len();
        self.deliver(self.position, all, Weather::CALM)?;
        self.sync_records();
        if self.position < self.records.len() {
            return Err("a replay of everything wrote something new".into());
        }
        let table = &self.table;
        table.check_exact()?;
        if !table.deltas.is_empty() {
            return Err(format!(
                "deltas left: {:?}",
                table.deltas.values().collect::<Vec<_>>()
            ));
        }
        for like in table.likes.values() {
            let shards = table.posts[&like.like.post].view_shards.unwrap_or(1);
            if !like.counted || like.shard.is_none_or(|k| k >= shards) {
                return Err(format!(
                    "a live like not counted or not in a view shard below {shards}: {like:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Run a batch to its end (or its crash) against `table`, answering in-flight requests in a
/// seeded order, some of them wrongly. `None` when it crashed.
fn drive(
    mut batch: Batch,
    table: &mut Table,
    now_ms: &mut i64,
    weather: Weather,
    deadline_ms: Option<i64>,
) -> Result<Option<(Vec<super::Outcome>, Knowledge)>, String> {
    let mut rng = StdRng::seed_from_u64(weather.seed);
    let mut in_flight: Vec<(Ticket, Request)> = Vec::new();
    for step in 0..MAX_STEPS {
        in_flight.extend(batch.poll(*now_ms));
        if batch.is_done() {
            let (applied, knowledge) = batch.finish();
            return Ok(Some((applied.outcomes, knowledge)));
        }
        if weather.crash_after == Some(step) {
            // What was in flight lands or not.
            for (_, request) in &in_flight {
                if rng.random_bool(0.5) {
                    table.apply(request);
                }
            }
            table.seen.add("crash");
            return Ok(None);
        }
        if in_flight.is_empty() {
            let Some(wake) = batch.wake_at() else {
                return Err("stuck: nothing in flight, no time to wake, not done".into());
            };
            *now_ms = (*now_ms).max(wake);
            continue;
        }
        *now_ms += rng.random_range(0..20);
        let (ticket, request) = in_flight.swap_remove(rng.random_range(0..in_flight.len()));
        let answer = if deadline_ms.is_some_and(|d| *now_ms >= d) {
            // Abandoned at the deadline: it may have landed.
            if rng.random_bool(0.5) {
                table.apply(&request);
                table.seen.add("abandoned, landed");
            }
            Answer::Abandoned
        } else if rng.random_range(0..100) < weather.faults {
            misbehave(table, &request, &mut rng)
        } else {
            table.apply(&request)
        };
        batch.answer(ticket, answer, *now_ms);
        table.check_exact()?;
    }
    Err(format!("stuck: {MAX_STEPS} answers and not done"))
}

/// A wrong answer to `request`, which may still have landed.
fn misbehave(table: &mut Table, request: &Request, rng: &mut StdRng) -> Answer {
    match rng.random_range(0..5) {
        0 => {
            table.seen.add("lost answer");
            table.apply(request);
            Answer::Transient("timed out after landing".into())
        }
        1 => Answer::Transient("timed out".into()),
        2 => {
            table.seen.add("abandoned, landed");
            table.apply(request);
            Answer::Abandoned
        }
        _ => match request {
            Request::Count { transaction, .. } => {
                let actions = actions(transaction);
                let at = rng.random_range(0..actions.len());
                let contended = if rng.random_bool(0.5) {
                    table.seen.add("conflict");
                    Reason::Conflict
                } else {
                    table.seen.add(match actions[at] {
                        Action::Mark(..) => "throttled mark",
                        _ => "throttled action",
                    });
                    Reason::Throttled
                };
                // A conflict or throttle lands on the counter item, or on one action.
                let on_counter = rng.random_bool(0.5);
                Answer::Cancelled(
                    actions
                        .iter()
                        .enumerate()
                        .map(|(i, action)| {
                            let hit = if on_counter {
                                matches!(action, Action::Counter(_))
                            } else {
                                i == at
                            };
                            if hit { contended.clone() } else { Reason::None }
                        })
                        .collect(),
                )
            }
            Request::Read { keys } => {
                table.seen.add("unprocessed keys");
                let Answer::Read { items, .. } = table.apply(request) else {
                    unreachable!("a read is answered with items")
                };
                let cut = rng.random_range(0..=keys.len());
                let unprocessed = keys[cut..].to_vec();
                let items = items
                    .into_iter()
                    .filter(|item| {
                        contracts::items::key_of(item).is_some_and(|k| !unprocessed.contains(&k))
                    })
                    .collect();
                Answer::Read { items, unprocessed }
            }
            _ => {
                table.seen.add("throttled write");
                Answer::Throttled
            }
        },
    }
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Like(usize, usize),
    Unlike(usize, usize),
    Deliver {
        back: usize,
        len: usize,
        seed: u64,
        faults: u32,
        deadline_ms: Option<i64>,
        crash_after: Option<usize>,
        fresh_instance: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, 0..3usize).prop_map(|(u, p)| Op::Like(u, p)),
        2 => (0..6usize, 0..3usize).prop_map(|(u, p)| Op::Unlike(u, p)),
        3 => (
            (0..8usize, 1..12usize, any::<u64>(), 0..60u32),
            (
                proptest::option::weighted(0.3, 0..3_000i64),
                proptest::option::weighted(0.2, 0..40usize),
                proptest::bool::weighted(0.1),
            ),
        )
            .prop_map(|((back, len, seed, faults), (deadline_ms, crash_after, fresh_instance))| {
                Op::Deliver { back, len, seed, faults, deadline_ms, crash_after, fresh_instance }
            }),
    ]
}

/// Run `ops` on three posts and six users, then quiesce. The table, for what it saw.
pub(super) fn run(ops: &[Op]) -> Result<Table, String> {
    let mut table = Table::default();
    let topic: TopicSlug = "t".parse().unwrap();
    let posts: Vec<PostId> = (0..3).map(|_| table.add_post(&topic)).collect();
    let users: Vec<UserId> = (0..6)
        .map(|u| format!("user-{u}").parse().unwrap())
        .collect();
    let mut world = World::new(table);
    for op in ops {
        match *op {
            Op::Like(u, p) => world.table.like(&users[u], posts[p]),
            Op::Unlike(u, p) => world.table.unlike(&users[u], posts[p]),
            Op::Deliver {
                back,
                len,
                seed,
                faults,
                deadline_ms,
                crash_after,
                fresh_instance,
            } => {
                if fresh_instance {
                    world.fresh_instance();
                }
                let weather = Weather {
                    seed,
                    faults,
                    deadline_ms,
                    crash_after,
                };
                world.deliver(back, len, weather)?;
            }
        }
    }
    world.quiesce()?;
    Ok(world.table)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn counts_are_exact_whatever_dynamodb_and_the_delivery_do(ops in proptest::collection::vec(op(), 1..120)) {
        if let Err(failure) = run(&ops) {
            prop_assert!(false, "{}", failure);
        }
    }
}

/// The property is only as good as the paths its schedules reach: over a fixed set of seeded
/// schedules, every retry path the machine has is taken.
#[test]
fn the_schedules_reach_every_retry_path() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 60..120);
    let mut seen = Seen::default();
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let table = run(&ops).unwrap_or_else(|failure| panic!("{failure}: {ops:?}"));
        for (what, count) in table.seen.counts {
            *seen.counts.entry(what).or_default() += count;
        }
    }
    for path in [
        "conflict",
        "throttled mark",
        "throttled action",
        "throttled write",
        "unprocessed keys",
        "lost answer",
        "abandoned, landed",
        "crash",
        "delta",
        "fold",
        "stamp",
        "grow",
        "defer",
    ] {
        assert!(seen.get(path) > 0, "no schedule reached {path}: {seen:?}");
    }
}
