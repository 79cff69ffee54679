//! A model of DynamoDB's partitions, fed with a recorded write log: how fast can one hot post
//! be liked before a partition throttles, and what does a like cost?
//!
//! # Assumptions
//!
//! - Each partition (of the table, or of GSI1) absorbs [`PARTITION_WCU`] write units per second
//!   ([`PARTITION_RCU`] read units: neither design reads the hot post's partitions per like,
//!   since the writer caches post metadata and the projector reads the stream).
//! - Costs follow DynamoDB's published rules: a write of an item up to 1 KB is 1 unit, 2 inside
//!   a transaction; each GSI entry an item write adds, changes or removes is 1 unit on the
//!   GSI's partition; a refused write (failed condition, cancelled transaction) still costs its
//!   items. The local engine reports table and GSI units faithfully for single-item writes;
//!   transactions, which engines report differently, the write log costs by rule
//!   ([`crate::write_log::transaction_units`]).
//! - A GSI write that throttles throttles the base write that feeds it, so GSI units count
//!   against the path (request or projection) that wrote the base item.
//! - Items with distinct partition keys are spread over partitions (DynamoDB splits hot
//!   ranges), so only partitions whose key is the hot post's can limit it: the post item's own
//!   (`TOPIC#<slug>`, a single item cannot be split) and its GSI1 collection (`POST#<id>`,
//!   shared by the post and its likers).
//! - When no hot partition lies on the request path, the post's partitions never throttle the
//!   writer; what remains is the table's throughput quota ([`TABLE_WCU_QUOTA`] by default, a
//!   soft limit AWS raises on request), shared by every write of every like.
//! - The projection keeps a counter exact while its partitions absorb the rate; beyond, a
//!   backlog grows by the excess, and the counter falls behind by that backlog.
//!
//! The log-driven model above sees one stream shard (the local engine's). [`EventSourceLoad`]
//! models what AWS adds: many shards times the parallelization factor, overlapping
//! transactions on the counter, and the two hops of a hot counter; its assumptions are on it.

use std::collections::BTreeMap;

use crate::write_log::WriteEntry;
use contracts::keys::ItemKey;

/// Write units per second one partition absorbs.
pub const PARTITION_WCU: f64 = 1_000.0;
/// Read units per second one partition serves.
pub const PARTITION_RCU: f64 = 3_000.0;
/// DynamoDB's default per-table write throughput quota (on-demand), in units per second.
pub const TABLE_WCU_QUOTA: f64 = 40_000.0;

/// The units one logged write is billed, by DynamoDB's rules.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Billed {
    /// Units on the base table.
    pub table: f64,
    /// Units on GSI1.
    pub index: f64,
}

impl Billed {
    /// Both.
    pub fn total(&self) -> f64 {
        self.table + self.index
    }
}

/// Billed units of one write: for transactions, the units the log computed by rule; otherwise
/// reported table units (one per item when refused, as the local engine reports nothing then)
/// plus reported GSI units.
pub fn billed(entry: &WriteEntry) -> Billed {
    if entry.by_rule {
        return Billed {
            table: entry.table_units,
            index: entry.index_units,
        };
    }
    let factor = if entry.transactional() { 2.0 } else { 1.0 };
    let table = if entry.failed() {
        entry.items.len() as f64
    } else {
        entry.table_units
    };
    Billed {
        table: table * factor,
        index: entry.index_units,
    }
}

/// Whether a write is part of what a like costs in write units. Reads are not, nor are poller
/// checkpoints: deployed, Lambda keeps the stream position itself.
pub fn is_like_cost(entry: &WriteEntry) -> bool {
    !entry.is_read()
        && !entry
            .items
            .iter()
            .all(|(pk, sk)| matches!(ItemKey::parse(pk, sk), Ok(ItemKey::Checkpoint { .. })))
}

/// Who wrote: the request path (throttling it fails or slows the caller) or the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    /// A client's request: the writer.
    Request,
    /// The projector.
    Projection,
}

impl Path {
    /// The path of a log's `source` (`writer` or `projector`).
    pub fn of_source(source: &str) -> Path {
        if source == "writer" {
            Path::Request
        } else {
            Path::Projection
        }
    }
}

/// A partition of the hot post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HotPartition {
    /// The base-table partition holding the post item (and its counter).
    PostItem,
    /// The GSI1 collection of the post and its likers.
    View,
}

/// Units per like of the hot post, by path and partition, from a log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HotPostLoad {
    /// Units per like on each of the hot post's partitions, by path.
    pub per_like: BTreeMap<(Path, HotPartition), f64>,
    /// Billed units per like on every partition (the table quota's view).
    pub total_per_like: f64,
}

impl HotPostLoad {
    fn units(&self, path: Path, partition: HotPartition) -> f64 {
        self.per_like
            .get(&(path, partition))
            .copied()
            .unwrap_or(0.0)
    }

    /// Units per like on a partition, both paths together (they share its capacity).
    pub fn on(&self, partition: HotPartition) -> f64 {
        self.units(Path::Request, partition) + self.units(Path::Projection, partition)
    }
}

/// Attribute a log of writes caused by `likes` likes (and unlikes) of the hot post `post`.
///
/// Table units go to the post item's partition when the item written is the hot post; GSI units
/// are shared by the request's items that have GSI1 keys, and go to the view when such an item
/// belongs to the hot post's collection.
pub fn hot_post_load(entries: &[WriteEntry], post: &ItemKey, likes: u64) -> HotPostLoad {
    let view = match post {
        ItemKey::Post(_, id) => Some(contracts::keys::post_view_partition(id)),
        _ => None,
    };
    let post_key = post.key();
    let mut load = HotPostLoad::default();
    let likes = likes.max(1) as f64;
    for entry in entries.iter().filter(|e| is_like_cost(e)) {
        let units = billed(entry);
        let path = Path::of_source(&entry.source);
        load.total_per_like += units.total() / likes;
        let per_item = units.table / entry.items.len().max(1) as f64;
        let mut indexed = 0usize;
        let mut indexed_hot = 0usize;
        for (pk, sk) in &entry.items {
            if *pk == post_key.pk && *sk == post_key.sk {
                *load
                    .per_like
                    .entry((path, HotPartition::PostItem))
                    .or_default() += per_item / likes;
            }
            if let Some(gsi) = ItemKey::parse(pk, sk).ok().and_then(|k| k.gsi1()) {
                indexed += 1;
                indexed_hot += usize::from(Some(&gsi.pk) == view.as_ref());
            }
        }
        if indexed_hot > 0 {
            *load.per_like.entry((path, HotPartition::View)).or_default() +=
                units.index * indexed_hot as f64 / indexed as f64 / likes;
        }
    }
    load
}

/// The model's verdict for one design.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotPostLimits {
    /// The highest like rate of one post the request path sustains without throttling, and
    /// the partition that sets it; `None` when the request path writes none of the post's
    /// partitions.
    pub request: Option<(f64, HotPartition)>,
    /// The like rate (all posts together) at which the table's default quota is reached.
    pub table_quota_rate: f64,
    /// The highest like rate the projection keeps up with (`None`: nothing is projected).
    pub projection_rate: Option<f64>,
}

/// The rate a set of partitions allows for the writes of `path` (with everything else that
/// lands on those partitions), or `None` if `path` writes none of them.
fn partition_limit(load: &HotPostLoad, path: Path) -> Option<(f64, HotPartition)> {
    [HotPartition::PostItem, HotPartition::View]
        .into_iter()
        .filter(|p| load.units(path, *p) > 0.0)
        .map(|p| (PARTITION_WCU / load.on(p), p))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The limits a design's load puts on one hot post.
pub fn hot_post_limits(load: &HotPostLoad) -> HotPostLimits {
    HotPostLimits {
        request: partition_limit(load, Path::Request),
        table_quota_rate: TABLE_WCU_QUOTA / load.total_per_like.max(f64::MIN_POSITIVE),
        projection_rate: partition_limit(load, Path::Projection).map(|(rate, _)| rate),
    }
}

/// How far (in seconds of likes) the counter is behind after `seconds` at `rate` likes/s when
/// the projection absorbs `projection_rate`: zero backlog while it keeps up.
pub fn counter_lag_after(rate: f64, projection_rate: Option<f64>, seconds: f64) -> f64 {
    match projection_rate {
        Some(limit) if rate > limit => seconds * (1.0 - limit / rate),
        _ => 0.0,
    }
}

// ---- Many shards: the event source, the counter's two hops and the view. ----

/// Write units a delta costs: its put in a counting transaction and its delete in a fold, two
/// each.
pub const DELTA_WCU: f64 = 4.0;
/// Deltas one fold adds up (with the counter update, a transaction's 100 actions).
pub const DELTAS_PER_FOLD: f64 = 99.0;
/// Folds a second one delta partition may take: one slot of 100 ms in every round of the
/// four partitions (`projector::apply::fold_slot`).
pub const FOLDS_PER_PARTITION_S: f64 = 10.0 / contracts::keys::DELTA_PARTITIONS as f64;

/// Lambda's event source over a table with many stream shards, and the load on one hot post.
///
/// # Assumptions
///
/// - Records spread evenly over `shards × parallelization` consumers (a post's likes live in its
///   likers' partitions, which the table spreads over all shards).
/// - A consumer invokes when its batching window has passed or its batch is full, and one at a
///   time: `invocation_s` is what handling a batch takes on top of the window.
/// - A hot counter's counting transactions hold at most 99 of its changes, one delta each; a
///   batch with fewer hot likes than that still writes one delta when it has any (expected
///   `1 − e^−k` of them for `k` hot likes per batch on average).
/// - One-hop counting writes the counter once per batch that holds a hot like; transactions on
///   one item commit one at a time, each holding it `transaction_s`, and overlapping ones are
///   cancelled (`TransactionConflict`).
/// - A delta's second hop takes `stream_s` to appear in the stream, then its consumer's batching
///   window, then up to one round of fold slots (400 ms).
/// - The view starts on one GSI1 partition (one stamp write unit per like; the post item is not
///   in GSI1, so counter writes cost it nothing). While the stamps offered exceed
///   what its shards take, they throttle, and the count of view shards doubles once per
///   `projector::apply::GROW_PAUSE` plus a batch cycle (the throttle must be seen, then the
///   count learnt), up to `contracts::keys::MAX_VIEW_SHARDS`; each shard takes
///   [`PARTITION_WCU`] stamps a second (users spread evenly). Stamps wait in line, first come
///   first served: a like's view lag is the backlog over the capacity, plus its trip through
///   the stream and a batch. (A deferred stamp waits its turn back through the stream; the
///   write that puts it off, one unit on the liker's partition, is not in the table's units.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventSourceLoad {
    /// Stream shards.
    pub shards: f64,
    /// Lambda's parallelization factor.
    pub parallelization: f64,
    /// Lambda's batching window, in seconds.
    pub batching_window_s: f64,
    /// Records per batch at most.
    pub batch_size: f64,
    /// Seconds to handle a batch.
    pub invocation_s: f64,
    /// Likes per second of the hot post.
    pub hot_rate: f64,
    /// Records per second of everything else.
    pub other_rate: f64,
    /// Seconds per counting transaction.
    pub transaction_s: f64,
    /// Seconds from a write to its stream record.
    pub stream_s: f64,
}

/// What the model says about one hot post under an [`EventSourceLoad`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HotCounterModel {
    /// Shards × parallelization: invocations side by side.
    pub consumers: f64,
    /// Invocations a second of each consumer.
    pub invocations_per_consumer_s: f64,
    /// The hot post's likes in one batch.
    pub hot_likes_per_batch: f64,
    /// One hop: counter writes offered per second, the share that would overlap another, and
    /// the likes a second the counter item can commit.
    pub one_hop_counter_writes_s: f64,
    /// The share of those that would overlap another.
    pub one_hop_overlap: f64,
    /// The likes a second the counter item can commit in one hop.
    pub one_hop_counted_rate: f64,
    /// Two hops: deltas written per second, write units per second on each delta partition,
    /// counter writes per second, and how long a like takes to reach the counter.
    pub deltas_s: f64,
    /// Write units a second on each delta partition.
    pub delta_partition_wcu: f64,
    /// Counter writes a second.
    pub counter_writes_s: f64,
    /// Seconds from a like to the counter.
    pub counter_lag_s: f64,
    /// The hot post's like rate the two hops keep current (deltas and folds within capacity).
    pub two_hop_counted_rate: f64,
    /// The likers view on one GSI1 partition: the rate it keeps current, and how far behind
    /// its likes it would be after a minute at `hot_rate`.
    pub one_shard_view_rate: f64,
    /// How far behind its likes one shard would be after a minute.
    pub one_shard_view_lag_after_minute_s: f64,
    /// The view over shards grown as it throttles, from a standing start at `hot_rate`: the
    /// shards it grows to, the longest any like waits for the view in the first minute, and
    /// when the view has caught up for good.
    pub view_shards: u32,
    /// The longest any like waits for the view in the first minute.
    pub view_lag_s: f64,
    /// When the view has caught up for good.
    pub view_caught_up_after_s: f64,
    /// Write units a second the hot post's likes cost the table (its quota must allow them):
    /// the writer's put (1), the mark (2, in a transaction) and its stamp (1, GSI1) per like,
    /// plus deltas and counter writes (2 each, in transactions).
    pub table_wcu_s: f64,
}

impl EventSourceLoad {
    /// One post liked at `hot_rate` over `shards` shards, with the event source `infra/`
    /// deploys (parallelization factor 2, 1 s window, batches of 1,000), 0.1 s to handle a
    /// batch, 25 ms per transaction, 0.5 s from a write to its stream record.
    pub fn deployed(shards: f64, hot_rate: f64) -> Self {
        Self {
            shards,
            parallelization: 2.0,
            batching_window_s: 1.0,
            batch_size: 1_000.0,
            invocation_s: 0.1,
            hot_rate,
            other_rate: 0.0,
            transaction_s: 0.025,
            stream_s: 0.5,
        }
    }

    /// What the model says for this load.
    pub fn model(&self) -> HotCounterModel {
        let consumers = self.shards * self.parallelization;
        let consumer_rate = (self.hot_rate + self.other_rate) / consumers;
        let cycle = self.batching_window_s + self.invocation_s;
        let invocations = (1.0 / cycle)
            .max(consumer_rate / self.batch_size)
            .min(1.0 / self.invocation_s);
        let k = self.hot_rate / consumers / invocations;
        let transactions_per_batch = (1.0 - (-k).exp()) + (k / DELTAS_PER_FOLD).floor();
        // One-hop: a counter write per hot transaction; two hops: a delta per hot transaction.
        let deltas_s = consumers * invocations * transactions_per_batch;
        let partitions = contracts::keys::DELTA_PARTITIONS as f64;
        let delta_partition_wcu = deltas_s * DELTA_WCU / partitions;
        let folds_needed = partitions * invocations.max(deltas_s / partitions / DELTAS_PER_FOLD);
        let counter_writes_s = folds_needed.min(partitions * FOLDS_PER_PARTITION_S);
        let fold_capacity = partitions * FOLDS_PER_PARTITION_S * DELTAS_PER_FOLD;
        let delta_capacity = PARTITION_WCU * partitions / DELTA_WCU;
        let likes_per_delta = self.hot_rate / deltas_s.max(f64::MIN_POSITIVE);
        let two_hop_counted_rate = self
            .hot_rate
            .min(fold_capacity.min(delta_capacity) * likes_per_delta);
        let slot_round = 1.0 / FOLDS_PER_PARTITION_S;
        let counter_lag_s = 2.0 * cycle + self.stream_s + slot_round;
        let one_shard_view_rate = PARTITION_WCU;
        let view = self.sharded_view();
        HotCounterModel {
            consumers,
            invocations_per_consumer_s: invocations,
            hot_likes_per_batch: k,
            one_hop_counter_writes_s: deltas_s,
            one_hop_overlap: 1.0 - (-deltas_s * self.transaction_s).exp(),
            one_hop_counted_rate: self.hot_rate.min(likes_per_delta / self.transaction_s),
            deltas_s,
            delta_partition_wcu,
            counter_writes_s,
            counter_lag_s,
            two_hop_counted_rate,
            one_shard_view_rate,
            one_shard_view_lag_after_minute_s: counter_lag_after(
                self.hot_rate,
                Some(one_shard_view_rate),
                60.0,
            ),
            view_shards: view.shards,
            view_lag_s: view.lag_s,
            view_caught_up_after_s: view.caught_up_after_s,
            table_wcu_s: self.hot_rate * 4.0 + deltas_s * DELTA_WCU + counter_writes_s * 2.0,
        }
    }
}

/// The likers view's shards, worst lag and catch-up time over a minute (see
/// [`EventSourceLoad`]'s assumptions).
struct ShardedView {
    shards: u32,
    lag_s: f64,
    caught_up_after_s: f64,
}

impl EventSourceLoad {
    fn sharded_view(&self) -> ShardedView {
        const STEP_S: f64 = 0.01;
        const MINUTE: usize = (60.0 / STEP_S) as usize;
        let cycle = self.batching_window_s + self.invocation_s;
        let grow_every = projector::apply::GROW_PAUSE.as_secs_f64() + cycle;
        let trip = self.stream_s + cycle;
        // Stamps done by each step, over two minutes (likes of the first wait into the second).
        let (mut shards, mut backlog, mut waited, mut done) = (1u32, 0.0f64, 0.0f64, 0.0f64);
        let mut caught_up_after_s = 0.0f64;
        let mut stamped = Vec::with_capacity(2 * MINUTE);
        for step in 1..=2 * MINUTE {
            let capacity = f64::from(shards) * PARTITION_WCU;
            let offered = if step <= MINUTE { self.hot_rate } else { 0.0 } * STEP_S + backlog;
            let served = offered.min(capacity * STEP_S);
            backlog = offered - served;
            done += served;
            stamped.push(done);
            if backlog > 0.0 {
                caught_up_after_s = step as f64 * STEP_S;
                waited += STEP_S;
                if waited >= grow_every && shards < contracts::keys::MAX_VIEW_SHARDS {
                    shards *= 2;
                    waited = 0.0;
                }
            }
        }
        // First come, first served: the like that arrives at step i is stamped at the first
        // step by which as many stamps are done as likes have come.
        let mut lag_s = trip;
        let mut at = 0;
        for i in 1..=MINUTE {
            let arrived = self.hot_rate * i as f64 * STEP_S;
            while at < stamped.len() - 1 && stamped[at] + 1e-6 < arrived {
                at += 1;
            }
            lag_s = lag_s.max(trip + (at + 1).saturating_sub(i) as f64 * STEP_S);
        }
        ShardedView {
            shards,
            lag_s,
            caught_up_after_s: caught_up_after_s.min(60.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::keys::PostId;

    #[track_caller]
    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    fn entry(
        source: &str,
        operation: &str,
        items: &[(&str, &str)],
        units: (f64, f64),
    ) -> WriteEntry {
        WriteEntry {
            at_ms: 0,
            source: source.into(),
            operation: operation.into(),
            items: items
                .iter()
                .map(|(pk, sk)| (pk.to_string(), sk.to_string()))
                .collect(),
            table_units: units.0,
            index_units: units.1,
            by_rule: false,
            refusal: None,
        }
    }

    #[test]
    fn transactions_are_billed_double_and_refusals_still_cost() {
        let mut write = entry(
            "writer",
            "TransactWriteItems",
            &[("a", "1"), ("b", "2")],
            (2.0, 2.0),
        );
        let reported = Billed {
            table: 4.0,
            index: 2.0,
        };
        assert_eq!(billed(&write), reported);
        // Costed by rule when logged: taken as is.
        let by_rule = WriteEntry {
            by_rule: true,
            table_units: 4.0,
            ..write.clone()
        };
        assert_eq!(billed(&by_rule), reported);
        write.refusal = Some("TransactionCanceledException: ConditionalCheckFailed".into());
        write.table_units = 0.0;
        write.index_units = 0.0;
        assert_eq!(billed(&write).total(), 4.0);
        let put = entry("writer", "PutItem", &[("a", "1")], (1.0, 0.0));
        assert_eq!(billed(&put).total(), 1.0);
    }

    fn viral(shards: f64, hot_rate: f64) -> EventSourceLoad {
        EventSourceLoad::deployed(shards, hot_rate)
    }

    #[test]
    fn a_viral_post_over_100_shards_keeps_its_counter_current_in_two_hops() {
        let model = viral(100.0, 20_000.0).model();
        assert_close(model.consumers, 200.0);
        assert_close(model.invocations_per_consumer_s, 1.0 / 1.1);
        assert_close(model.hot_likes_per_batch, 110.0);
        // Two transactions per consumer's batch: 200 consumers × 1/1.1 s × 2 deltas.
        assert!((model.deltas_s - 363.6).abs() < 0.1, "{model:?}");
        assert!(model.delta_partition_wcu < PARTITION_WCU);
        assert!(model.counter_writes_s <= 10.0);
        assert_close(model.two_hop_counted_rate, 20_000.0);
        assert!(model.counter_lag_s < 5.0);
        // One hop, the counter item would be offered as many writes and almost all overlap.
        assert!(model.one_hop_overlap > 0.99);
        assert!(model.one_hop_counted_rate < 20_000.0);
        // One view shard takes 1,000 stamps a second; grown as it throttles, the view
        // grows past the 20 shards the rate needs (it keeps growing while the backlog drains)
        // and keeps within ten seconds of the likes.
        assert_close(model.one_shard_view_rate, 1_000.0);
        assert!(model.one_shard_view_lag_after_minute_s > 50.0);
        assert!(model.view_shards >= 32, "{model:?}");
        assert!(model.view_lag_s < 10.0, "{model:?}");
        assert!(model.view_caught_up_after_s < 60.0, "{model:?}");
        // Past the default 40,000 units a second: the quota must be raised.
        assert!(model.table_wcu_s > TABLE_WCU_QUOTA && model.table_wcu_s < 2.1 * TABLE_WCU_QUOTA);
    }

    #[test]
    fn counter_writes_stay_bounded_and_deltas_run_out_of_partitions_only_past_1000_lanes() {
        for shards in [1.0, 16.0, 100.0, 500.0] {
            for rate in [100.0, 5_000.0, 20_000.0, 100_000.0] {
                let model = viral(shards, rate).model();
                assert!(model.counter_writes_s <= 10.0, "{shards} {rate} {model:?}");
            }
        }
        // A post liked slower than one shard takes keeps one shard, a stream trip behind.
        let modest = viral(16.0, 500.0).model();
        assert_eq!(modest.view_shards, 1);
        assert_close(modest.view_lag_s, 0.5 + 1.1);
        assert_close(modest.view_caught_up_after_s, 0.0);
        let crowded = viral(1_000.0, 100_000.0).model();
        assert!(crowded.delta_partition_wcu > PARTITION_WCU);
        assert!(crowded.two_hop_counted_rate < 100_000.0);
    }

    /// The classic design: like and counter in one transaction; the like enters the view.
    #[test]
    fn the_transactional_design_is_bound_by_the_post_item() {
        let post = PostId::generate();
        let post_key = ItemKey::Post("t".parse().unwrap(), post);
        let key = post_key.key();
        let like_sk = format!("LIKE#{post}");
        let likes: Vec<WriteEntry> = (0..10)
            .map(|i| {
                let user = format!("USER#u{i}");
                let items = [
                    (key.pk.as_str(), key.sk.as_str()),
                    (user.as_str(), like_sk.as_str()),
                ];
                entry("writer", "TransactWriteItems", &items, (2.0, 1.0))
            })
            .collect();
        let load = hot_post_load(&likes, &post_key, 10);
        assert_close(load.on(HotPartition::PostItem), 2.0);
        assert_close(load.on(HotPartition::View), 1.0);
        assert_close(load.total_per_like, 5.0);
        let limits = hot_post_limits(&load);
        let (rate, partition) = limits.request.unwrap();
        assert_close(rate, 500.0);
        assert_eq!(partition, HotPartition::PostItem);
        assert_eq!(limits.projection_rate, None);
        assert_eq!(
            counter_lag_after(10_000.0, limits.projection_rate, 60.0),
            0.0
        );
    }

    /// Append-only writes on users' partitions; the projection counts 100 likes per counter
    /// write and stamps each like into the view.
    #[test]
    fn the_stream_design_keeps_the_request_path_off_the_posts_partitions() {
        let post = PostId::generate();
        let post_key = ItemKey::Post("t".parse().unwrap(), post);
        let key = post_key.key();
        let like_sk = format!("LIKE#{post}");
        let mut log = Vec::new();
        for i in 0..100 {
            let user = format!("USER#u{i}");
            log.push(entry("writer", "PutItem", &[(&user, &like_sk)], (1.0, 0.0)));
            log.push(entry(
                "projector",
                "UpdateItem",
                &[(&user, &like_sk)],
                (1.0, 1.0),
            ));
        }
        log.push(entry(
            "projector",
            "UpdateItem",
            &[(&key.pk, &key.sk)],
            (1.0, 0.0),
        ));
        log.push(entry(
            "projector",
            "PutItem",
            &[("CHECKPOINT#s", "SHARD#1")],
            (1.0, 0.0),
        ));
        let load = hot_post_load(&log, &post_key, 100);
        assert_close(load.total_per_like, 3.01);
        assert_close(load.on(HotPartition::View), 1.0);
        let limits = hot_post_limits(&load);
        assert_eq!(limits.request, None);
        assert_close(limits.table_quota_rate, 40_000.0 / 3.01);
        let projection = limits.projection_rate.unwrap();
        assert_close(projection, 1_000.0);
        let lag = counter_lag_after(2.0 * projection, Some(projection), 60.0);
        assert_close(lag, 30.0);
    }
}
