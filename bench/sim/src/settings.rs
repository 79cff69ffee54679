//! What one run of the simulation is: its world's size, load, event source, limits, faults and
//! operator commands, drawn from a seed for a sweep or set for the viral post.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::table::TableSettings;
use bench::shards::ShardSettings;
use contracts::event_source::GiveUp;

/// How often faults strike, in percent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    /// Of requests: dropped before landing, or landed with the answer lost.
    pub lost: u32,
    /// Of requests: answered after several seconds (past the deadline, sometimes).
    pub slow: u32,
    /// Of requests: throttled though the partition's budget holds (DynamoDB throttles a
    /// partition it splits or isolates, too); in a transaction, one action's reason.
    pub throttled: u32,
    /// Of invocations: crash after a few answers.
    pub crash: u32,
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seeds every draw.
    pub seed: u64,
    /// Posts (the first is the hot one), post `i` in topic `i % topics` (a topic's posts
    /// share a partition).
    pub posts: usize,
    /// Topics.
    pub topics: usize,
    /// Users.
    pub users: usize,
    /// Writer clients; `transactional` of them in transactional mode.
    pub clients: usize,
    /// Clients in transactional mode.
    pub transactional: usize,
    /// Operations a second, all clients together.
    pub rate: f64,
    /// Share of operations on the hot post.
    pub hot_share: f64,
    /// Share of operations that are unlikes.
    pub unlike_share: f64,
    /// Every like by a new user (a viral post's likers), instead of users drawn from `users`.
    pub distinct_likers: bool,
    /// How long the load lasts.
    pub load_ms: i64,
    /// The event source.
    pub source: ShardSettings,
    /// The table's limits.
    pub table: TableSettings,
    /// Faults while the load runs, and for `fault_tail_ms` after it.
    pub faults: Faults,
    /// How long faults go on after the load stops (the projection's work outlasts the load).
    pub fault_tail_ms: i64,
    /// Operator commands during the load: (when, what).
    pub operators: Vec<(i64, Command)>,
    /// After the checks, go on days later ([`crate::World::days_later`]) and check again.
    pub days_later: bool,
    /// When the stream's shards rotate ([`crate::stream`]).
    pub rotations: Vec<i64>,
    /// The share of shards a rotation splits in two.
    pub split_share: f64,
    /// The `--settle` operators give `rebuild` ([`Settings::runbook_settle_ms`]).
    pub rebuild_settle_ms: i64,
    /// Each process's retry quota, in the SDK's tokens (the SDK's: 500).
    pub retry_quota: u32,
}

/// An operator's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Command {
    /// Replay the whole stream.
    Replay,
    /// Tally the table and report drift.
    Verify,
    /// Repair counters and views while the load goes on, with the scan in `segments`
    /// (run again from its saved progress until it ends clean).
    Rebuild {
        /// Parallel scan segments.
        segments: i32,
    },
    /// The first post's counter drifts by this much (a bad manual edit, a restore of an old
    /// backup): only a `rebuild` after it repairs it.
    Drift(i64),
}

impl Settings {
    /// The settings a sweep draws for `seed`: a small world with faults and at least one
    /// operator command.
    pub fn sweep(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        // Mostly short schedules (many interleavings a second), some long ones.
        let load_ms = if rng.random_bool(0.1) {
            rng.random_range(3_000..10_000)
        } else {
            rng.random_range(300..2_000)
        };
        let mut operators = vec![(
            rng.random_range(0..load_ms),
            if rng.random_bool(0.5) {
                Command::Replay
            } else {
                Command::Verify
            },
        )];
        if rng.random_bool(0.5) {
            operators.push((rng.random_range(0..load_ms), Command::Replay));
        }
        let clients = rng.random_range(1..8);
        let mut settings = Self {
            seed,
            posts: rng.random_range(1..5),
            topics: rng.random_range(1..3),
            users: rng.random_range(2..20),
            clients,
            transactional: if rng.random_bool(0.3) {
                rng.random_range(0..=clients)
            } else {
                0
            },
            rate: rng.random_range(5.0..80.0),
            hot_share: rng.random_range(0.0..0.9),
            unlike_share: rng.random_range(0.0..0.5),
            distinct_likers: false,
            load_ms,
            source: {
                // Drawn in this order, so that a seed keeps its schedule.
                let shards = rng.random_range(1..5);
                let parallelization = rng.random_range(1..3);
                let batch_size = rng.random_range(1..40);
                let batching_window = Duration::from_millis(rng.random_range(0..1_500));
                let retries = Some(rng.random_range(0..4));
                let timeout = Some(Duration::from_millis(rng.random_range(3_000..10_000)));
                let record_age = rng
                    .random_bool(0.3)
                    .then(|| Duration::from_millis(rng.random_range(1_000..20_000)));
                ShardSettings {
                    shards,
                    parallelization,
                    batch_size,
                    batching_window,
                    give_up: GiveUp {
                        retries,
                        record_age,
                    },
                    timeout,
                }
            },
            table: TableSettings {
                // At least a 100-action transaction's 200 units, as every DynamoDB partition.
                partition_wcu: rng.random_range(200.0..1_000.0),
                hold_ms: rng.random_range(1..30),
                ..TableSettings::default()
            },
            faults: Faults {
                lost: rng.random_range(2..15),
                slow: rng.random_range(0..6),
                throttled: rng.random_range(0..10),
                crash: rng.random_range(5..30),
            },
            fault_tail_ms: rng.random_range(0..8_000),
            operators,
            days_later: true,
            rotations: Vec::new(),
            split_share: 0.0,
            rebuild_settle_ms: 0,
            retry_quota: crate::sdk::QUOTA,
        };
        // Drawn last, so the draws above are those of earlier versions' seeds. Mostly within
        // a second, as AWS states; now and then GSI1 struggling for seconds.
        let slowest = if rng.random_bool(0.8) {
            1_000
        } else {
            rng.random_range(1_000..10_000)
        };
        settings.table.gsi1_delay_ms = (rng.random_range(0..50), slowest);
        settings.rotations = (0..rng.random_range(0..3))
            .map(|_| rng.random_range(0..load_ms))
            .collect();
        settings.split_share = rng.random_range(0.0..0.6);
        settings.rebuild_settle_ms = Self::runbook_settle_ms(&settings.table);
        if rng.random_bool(0.5) {
            let at = rng.random_range(0..load_ms);
            let segments = rng.random_range(1..4);
            settings.operators.push((at, Command::Rebuild { segments }));
            if rng.random_bool(0.5) {
                let by = if rng.random_bool(0.5) { -2 } else { 3 };
                settings
                    .operators
                    .push((rng.random_range(0..=at), Command::Drift(by)));
            }
        }
        settings
    }

    /// The `--settle` an operator gives `rebuild`, as the runbook says: longer than GSI1 takes
    /// to show a write (AWS: within a second; longer while the index is throttled, which
    /// CloudWatch shows), and at least the CLI's default.
    pub fn runbook_settle_ms(table: &TableSettings) -> i64 {
        let default = projector::rebuild::SETTLE.as_millis() as i64;
        default.max(table.gsi1_delay_ms.1 + 1_000)
    }

    /// A viral post: `hot_rate` likes a second on the first post and `others_rate` over
    /// `others` more posts, every like by a new user, for `load_ms`, on the deployed event
    /// source over `shards` shards, DynamoDB's limits, no faults. `spread`: the same likes
    /// over all the posts evenly instead (what the other posts' lag is compared with).
    pub fn viral(
        hot_rate: f64,
        others_rate: f64,
        others: usize,
        load_ms: i64,
        shards: usize,
        spread: bool,
    ) -> Self {
        let rate = hot_rate + others_rate;
        Self {
            seed: 1,
            posts: others + 1,
            topics: 100,
            users: 1,
            clients: 1_000,
            transactional: 0,
            rate,
            hot_share: if spread { 0.0 } else { hot_rate / rate },
            unlike_share: 0.0,
            distinct_likers: true,
            load_ms,
            source: ShardSettings::deployed(shards),
            table: TableSettings::default(),
            faults: Faults::default(),
            fault_tail_ms: 0,
            operators: Vec::new(),
            days_later: false,
            rotations: Vec::new(),
            split_share: 0.0,
            rebuild_settle_ms: Self::runbook_settle_ms(&TableSettings::default()),
            retry_quota: crate::sdk::QUOTA,
        }
    }
}
