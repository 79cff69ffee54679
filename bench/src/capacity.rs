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
//!   items. DynamoDB Local reports table and GSI units faithfully for single-item writes, but
//!   not for transactions, which the write log costs by rule
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
    pub table: f64,
    pub index: f64,
}

impl Billed {
    pub fn total(&self) -> f64 {
        self.table + self.index
    }
}

/// Billed units of one write: for transactions, the units the log computed by rule; otherwise
/// reported table units (one per item when refused, as DynamoDB Local reports nothing then)
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
    Request,
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
    let view = post.gsi1().map(|k| k.pk);
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

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::keys::Ksuid;

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

    /// The classic design: like and counter in one transaction, both in the post's view.
    #[test]
    fn the_transactional_design_is_bound_by_the_post_item_and_its_view() {
        let post = Ksuid::generate();
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
                entry("writer", "TransactWriteItems", &items, (2.0, 2.0))
            })
            .collect();
        let load = hot_post_load(&likes, &post_key, 10);
        assert_close(load.on(HotPartition::PostItem), 2.0);
        assert_close(load.on(HotPartition::View), 2.0);
        assert_close(load.total_per_like, 6.0);
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
        let post = Ksuid::generate();
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
            (1.0, 1.0),
        ));
        log.push(entry(
            "projector",
            "PutItem",
            &[("CHECKPOINT#s", "SHARD#1")],
            (1.0, 0.0),
        ));
        let load = hot_post_load(&log, &post_key, 100);
        assert_close(load.total_per_like, 3.02);
        assert_close(load.on(HotPartition::View), 1.01);
        let limits = hot_post_limits(&load);
        assert_eq!(limits.request, None);
        assert_close(limits.table_quota_rate, 40_000.0 / 3.02);
        let projection = limits.projection_rate.unwrap();
        assert_close(projection, 1_000.0 / 1.01);
        let lag = counter_lag_after(2.0 * projection, Some(projection), 60.0);
        assert_close(lag, 30.0);
    }
}
