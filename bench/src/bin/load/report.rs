//! Figures from a run, and the report: `benchmarks.md` (tables) and `benchmarks.svg` (chart).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bench::capacity;
use bench::capacity::{HotPartition, HotPostLimits, HotPostLoad, Path as WritePath};
use bench::write_log::WriteEntry;
use contracts::keys::ItemKey;
use plotters::prelude::*;

use crate::system::{Deployment, Design};
use crate::workload::{PhaseStats, Shape};

/// The units billed, split by who wrote and where.
#[derive(Debug, Clone, Copy, Default)]
pub struct Units {
    pub writer_table: f64,
    pub writer_index: f64,
    pub projector_table: f64,
    pub projector_index: f64,
    /// Write units of refused writes (included above).
    pub refused: f64,
    /// Read units of the item reads that decide writes (not included above).
    pub reads: f64,
}

impl Units {
    pub fn total(&self) -> f64 {
        self.writer_table + self.writer_index + self.projector_table + self.projector_index
    }
}

/// On-demand price of a read unit in write units ($0.125 against $0.625 per million).
const READ_PRICE: f64 = 0.2;

/// The measured phases of one design, all rounds merged.
pub struct Phases {
    pub saturated: PhaseStats,
    /// Saturated with the projection stopped: the request path alone.
    pub alone: PhaseStats,
    pub paced: PhaseStats,
    /// Time from the end of each phase's load to every counter being exact.
    pub convergence: Vec<Duration>,
}

/// Everything measured for one design.
pub struct DesignFigures {
    pub design: Design,
    pub saturated: PhaseStats,
    pub alone: PhaseStats,
    pub paced: PhaseStats,
    /// Acknowledged likes and unlikes, all phases.
    pub ops: u64,
    pub hot_ops: u64,
    pub units: Units,
    /// Writes that touched the hot post's item (its counter), not refused.
    pub hot_counter_writes: u64,
    /// Refused writes by (source, reason): how many, and the write units billed for them.
    pub refusals: BTreeMap<(String, String), (u64, f64)>,
    pub writer_rss: Option<u64>,
    pub poller_rss: Option<u64>,
    pub load: HotPostLoad,
    pub limits: HotPostLimits,
    pub convergence: Vec<Duration>,
}

impl DesignFigures {
    /// `writes`: every write of the run; `paced_writes`: those of the paced phases (likes at a
    /// sustained rate), which the capacity model replays.
    pub fn new(
        deployment: &Deployment,
        hot_post: &ItemKey,
        phases: Phases,
        writes: Vec<WriteEntry>,
        paced_writes: Vec<WriteEntry>,
    ) -> Self {
        let Phases {
            saturated,
            alone,
            paced,
            convergence,
        } = phases;
        let mut units = Units {
            reads: writes
                .iter()
                .filter(|e| e.is_read())
                .map(|e| e.table_units)
                .sum(),
            ..Units::default()
        };
        let writes: Vec<WriteEntry> = writes.into_iter().filter(capacity::is_like_cost).collect();
        let mut refusals: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
        for entry in &writes {
            let billed = capacity::billed(entry);
            if entry.failed() {
                units.refused += billed.total();
                let why = entry.refusal.clone().unwrap_or_else(|| "unknown".into());
                let refused = refusals
                    .entry((entry.source.clone(), format!("{}: {why}", entry.operation)))
                    .or_default();
                refused.0 += 1;
                refused.1 += billed.total();
            }
            match WritePath::of_source(&entry.source) {
                WritePath::Request => {
                    units.writer_table += billed.table;
                    units.writer_index += billed.index;
                }
                WritePath::Projection => {
                    units.projector_table += billed.table;
                    units.projector_index += billed.index;
                }
            }
        }
        let hot_key = hot_post.key();
        let hot_counter_writes = writes
            .iter()
            .filter(|e| !e.failed())
            .filter(|e| {
                e.items
                    .iter()
                    .any(|(pk, sk)| *pk == hot_key.pk && *sk == hot_key.sk)
            })
            .count() as u64;
        let ops = saturated.ops + alone.ops + paced.ops;
        let hot_ops = saturated.hot_ops + alone.hot_ops + paced.hot_ops;
        let load = capacity::hot_post_load(
            &paced_writes
                .into_iter()
                .filter(|e| touches_hot_post(e, hot_post))
                .collect::<Vec<_>>(),
            hot_post,
            paced.hot_ops,
        );
        let limits = capacity::hot_post_limits(&load);
        Self {
            design: deployment.design,
            ops,
            hot_ops,
            units,
            hot_counter_writes,
            refusals,
            writer_rss: deployment.writer.peak_rss(),
            poller_rss: deployment.poller.as_ref().and_then(|p| p.peak_rss()),
            load,
            limits,
            saturated,
            alone,
            paced,
            convergence,
        }
    }

    pub fn wcu_per_op(&self) -> f64 {
        self.units.total() / self.ops.max(1) as f64
    }

    pub fn hot_counter_writes_per_1000(&self) -> f64 {
        self.hot_counter_writes as f64 * 1000.0 / self.hot_ops.max(1) as f64
    }
}

/// Whether a write belongs to the hot post: its item, or a like of it. (A tombstone of an
/// unlike rides in its post's counting transaction, which writes the post item.)
fn touches_hot_post(entry: &WriteEntry, hot_post: &ItemKey) -> bool {
    let ItemKey::Post(_, post) = hot_post else {
        return false;
    };
    entry
        .items
        .iter()
        .any(|(pk, sk)| match ItemKey::parse(pk, sk) {
            Ok(ItemKey::Post(_, p)) | Ok(ItemKey::Like(_, p)) => p == *post,
            _ => false,
        })
}

/// A whole run.
pub struct Run {
    pub designs: Vec<DesignFigures>,
    pub settings: String,
    pub shape: Shape,
    pub rate: f64,
    pub phase_secs: u64,
    pub rounds: usize,
}

/// The line after which `benchmarks.md` is written by hand and kept across runs.
pub const ANALYSIS_MARKER: &str = "<!-- analysis: kept when the figures above are regenerated -->";

/// The target directory, from where this benchmark's binary is.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .expect("the benchmark's own path")
        .ancestors()
        .nth(2)
        .expect("target/<profile>/bench")
        .to_path_buf()
}

/// Records per second of criterion's `decode+plan/both/<size>`, if it ran.
fn decode_plan_rate(size: usize) -> Option<f64> {
    let path = target_dir().join(format!(
        "criterion/decode+plan/both/{size}/new/estimates.json"
    ));
    let estimates: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let nanos = estimates["mean"]["point_estimate"].as_f64()?;
    Some(size as f64 / (nanos / 1e9))
}

fn partition_name(partition: HotPartition) -> &'static str {
    match partition {
        HotPartition::PostItem => "the post item's partition",
        HotPartition::View => "the post's GSI1 partition",
    }
}

/// How a figure is read from a design's measurements.
type Reading = Box<dyn Fn(&DesignFigures) -> Option<f64>>;

/// One line of the side-by-side table: a figure of every design.
struct Figure {
    name: String,
    value: Reading,
    /// Ratios to the transactional design make sense (not for context such as memory).
    compare: bool,
}

fn figure(
    name: impl Into<String>,
    value: impl Fn(&DesignFigures) -> Option<f64> + 'static,
) -> Figure {
    Figure {
        name: name.into(),
        value: Box::new(value),
        compare: true,
    }
}

fn context(
    name: impl Into<String>,
    value: impl Fn(&DesignFigures) -> Option<f64> + 'static,
) -> Figure {
    Figure {
        compare: false,
        ..figure(name, value)
    }
}

fn quantile_ms(histogram: &hdrhistogram::Histogram<u64>, q: f64, per_ms: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(q) as f64 / per_ms)
}

impl Run {
    fn transactional(&self) -> &DesignFigures {
        self.designs
            .iter()
            .find(|d| d.design == Design::Transactional)
            .expect("the transactional design ran")
    }

    fn figures(&self) -> Vec<Figure> {
        let rate = self.rate;
        let mut figures = vec![
            figure("likes + unlikes acknowledged per second (saturated)", |d| {
                Some(d.saturated.ops_per_second())
            }),
            figure("likes acknowledged per second (saturated)", |d| {
                Some(d.saturated.likes_per_second())
            }),
        ];
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            figures.push(figure(
                format!("writer latency {name}, all posts (ms)"),
                move |d| quantile_ms(&d.saturated.latency, q, 1000.0),
            ));
            figures.push(figure(
                format!("writer latency {name}, hot post (ms)"),
                move |d| quantile_ms(&d.saturated.hot_latency, q, 1000.0),
            ));
        }
        figures.push(figure(
            "request path alone: likes + unlikes acknowledged per second",
            |d| Some(d.alone.ops_per_second()),
        ));
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            figures.push(figure(
                format!("request path alone: writer latency {name}, hot post (ms)"),
                move |d| quantile_ms(&d.alone.hot_latency, q, 1000.0),
            ));
        }
        figures.push(figure(
            "WCU per like or unlike (writer + projector + GSI)",
            |d| Some(d.wcu_per_op()),
        ));
        figures.push(figure(
            "RCU per like or unlike (reads that decide writes)",
            |d| Some(d.units.reads / d.ops.max(1) as f64),
        ));
        figures.push(figure(
            "cost per like or unlike in write units, reads at on-demand price (1 RCU = 0.2 WCU)",
            |d| Some((d.units.total() + READ_PRICE * d.units.reads) / d.ops.max(1) as f64),
        ));
        figures.push(figure(
            "writes of the hot post's counter per 1,000 of its likes and unlikes",
            |d| Some(d.hot_counter_writes_per_1000()),
        ));
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            figures.push(figure(
                format!("projection lag {name} at {rate} likes/s (ms)"),
                move |d| quantile_ms(&d.paced.lag, q, 1.0),
            ));
        }
        figures.push(context("paced rate reached (likes/s)", |d| {
            Some(d.paced.likes_per_second())
        }));
        figures.push(context("lag probes never seen counted", |d| {
            Some(d.paced.lost_probes as f64)
        }));
        figures.push(figure(
            "model: hot-post likes/s before the writer throttles",
            |d| Some(d.limits.request.map_or(f64::INFINITY, |(rate, _)| rate)),
        ));
        figures.push(context(
            "model: hot-post likes/s one view shard stamps at (the view then spreads)",
            |d| d.limits.projection_rate,
        ));
        figures.push(context("peak RSS, writer (MB)", |d| {
            d.writer_rss.map(|b| b as f64 / 1_048_576.0)
        }));
        figures.push(context("peak RSS, poller (MB)", |d| {
            d.poller_rss.map(|b| b as f64 / 1_048_576.0)
        }));
        figures
    }

    pub fn markdown(&self) -> String {
        let t = self.transactional();
        let streams: Vec<&DesignFigures> = self
            .designs
            .iter()
            .filter(|d| d.design != Design::Transactional)
            .collect();
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "# Benchmarks: stream projection against the transactional design\n"
        );
        let _ = writeln!(
            w,
            "Generated by `scripts/bench.sh` ({}) on {} cores. Every design runs on one local \
             engine ({}), each with its own table, release writer process and (stream) release poller \
             process; rounds alternate the designs. {} rounds of {} s paced ({} likes/s), {} s \
             saturated ({} clients, each sending as soon as answered) and as long saturated with \
             the poller stopped (the request path alone) per design; {} users, {} \
             posts, {:.0}% of likes on one hot post, Zipf {} over the rest, {:.0}% unlikes when \
             saturated. Every phase ends with every counter exact.\n",
            chrono::Utc::now().format("%Y-%m-%d"),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            bench::local::ENGINE,
            self.rounds,
            self.phase_secs,
            self.rate,
            self.phase_secs,
            self.shape.clients,
            self.shape.users,
            self.shape.posts,
            self.shape.hot_share * 100.0,
            self.shape.zipf_exponent,
            self.shape.unlike_share * 100.0,
        );
        let _ = writeln!(w, "![throughput and lag](benchmarks.svg)\n");
        let _ = writeln!(w, "## Side by side\n");
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for d in &self.designs {
            let _ = write!(header, " {} |", d.design.name());
            rule.push_str("---:|");
        }
        for d in &streams {
            let _ = write!(header, " {} ÷ transactional |", d.design.name());
            rule.push_str("---:|");
        }
        let _ = writeln!(w, "{header}\n{rule}");
        for f in self.figures() {
            let _ = write!(w, "| {} |", f.name);
            for d in &self.designs {
                let _ = write!(w, " {} |", show((f.value)(d)));
            }
            for d in &streams {
                let cell = match ((f.value)(d), (f.value)(t)) {
                    (Some(a), Some(b)) if f.compare && b > 0.0 && a.is_finite() => {
                        format!("{:.2}×", a / b)
                    }
                    _ => String::new(),
                };
                let _ = write!(w, " {cell} |");
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Refused requests (retried until acknowledged)\n");
        let _ = writeln!(
            w,
            "| design | status and problem type | count |\n|---|---|---:|"
        );
        for d in &self.designs {
            let mut errors = d.saturated.errors.clone();
            for (kind, n) in d.paced.errors.iter().chain(&d.alone.errors) {
                *errors.entry(kind.clone()).or_default() += n;
            }
            if errors.is_empty() {
                let _ = writeln!(w, "| {} | none | 0 |", d.design.name());
            }
            for (kind, n) in errors {
                let _ = writeln!(w, "| {} | {kind} | {n} |", d.design.name());
            }
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Write units per like or unlike\n");
        let _ = writeln!(
            w,
            "From the write logs. Single-item writes: the units the local engine reports with \
             `ReturnConsumedCapacity=INDEXES` (faithful for those; a refused write, which it \
             reports nothing for, is billed per item). Transactions: DynamoDB's published rules \
             applied to the logged request (2 units per item, 1 GSI unit per item in the view), \
             whatever an engine reports for them (DynamoDB Local reported a many-item one as a few units). Poller \
             checkpoints are left out: deployed, Lambda keeps the stream position. Read units \
             (as reported) are the projector's consistent reads of the like items it is about \
             to mark (one unit per like: a mark doomed by an unlike would cancel its whole \
             transaction) and the writers' reads of posts missing from their cache; on demand \
             a read unit costs a fifth of a write unit.\n"
        );
        let _ = writeln!(
            w,
            "| design | writer, table | writer, GSI1 | projector, table | projector, GSI1 | total | of which refused writes | read units |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for d in &self.designs {
            let n = d.ops.max(1) as f64;
            let u = d.units;
            let _ = writeln!(
                w,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                d.design.name(),
                u.writer_table / n,
                u.writer_index / n,
                u.projector_table / n,
                u.projector_index / n,
                u.total() / n,
                u.refused / n,
                u.reads / n
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "Refused writes, by who wrote and why DynamoDB refused (every refusal is retried or \
             dropped as already done; its units are billed all the same):\n"
        );
        let _ = writeln!(
            w,
            "| design | source | refusal | count | write units per 1,000 likes or unlikes |\n|---|---|---|---:|---:|"
        );
        for d in &self.designs {
            if d.refusals.is_empty() {
                let _ = writeln!(w, "| {} | | none | 0 | 0 |", d.design.name());
            }
            for ((source, why), (count, billed)) in &d.refusals {
                let _ = writeln!(
                    w,
                    "| {} | {source} | {why} | {count} | {:.1} |",
                    d.design.name(),
                    billed * 1000.0 / d.ops.max(1) as f64
                );
            }
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Capacity model: one hot post\n");
        let _ = writeln!(
            w,
            "The logged writes of the paced phases (likes at a sustained rate) that touch the hot \
             post, replayed against partitions of {:.0} WCU/s ({:.0} RCU/s; neither design reads \
             the hot partitions per like). The assumptions are in \
             `bench/src/capacity.rs`. Units per like of the hot post:\n",
            capacity::PARTITION_WCU,
            capacity::PARTITION_RCU
        );
        let _ = writeln!(
            w,
            "| design | request path: post item | request path: GSI1 view | projection: post item | projection: GSI1 view |\n|---|---:|---:|---:|---:|"
        );
        for d in &self.designs {
            let get = |p, q| d.load.per_like.get(&(p, q)).copied().unwrap_or(0.0);
            let _ = writeln!(
                w,
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                d.design.name(),
                get(WritePath::Request, HotPartition::PostItem),
                get(WritePath::Request, HotPartition::View),
                get(WritePath::Projection, HotPartition::PostItem),
                get(WritePath::Projection, HotPartition::View),
            );
        }
        let _ = writeln!(w);
        for d in &self.designs {
            let limits = d.limits;
            let _ = write!(w, "- **{}**: ", d.design.name());
            match limits.request {
                Some((rate, partition)) => {
                    let _ = write!(
                        w,
                        "the writer sustains **{rate:.0} likes/s** on one post, bound by {}. ",
                        partition_name(partition)
                    );
                }
                None => {
                    let _ = write!(
                        w,
                        "the writer's like writes land on the likers' own partitions, none on \
                         the post's: no like rate of one post throttles them (the table's \
                         default quota of {:.0} WCU/s, which AWS raises on request, would be \
                         reached at {:.0} likes/s over all posts). ",
                        capacity::TABLE_WCU_QUOTA,
                        limits.table_quota_rate
                    );
                }
            }
            match limits.projection_rate {
                None => {
                    let _ = writeln!(w, "The counter moves with each like: no lag.");
                }
                Some(projection) => {
                    let _ = writeln!(
                        w,
                        "One GSI1 view shard takes each like's stamp: **{projection:.0} \
                         likes/s** of one post (on one shard the view would fall {:.0} s per \
                         minute behind at 20,000 likes/s). Beyond, its stamps throttle and the \
                         view spreads over more shards; the counter does not wait for it (the \
                         viral-post model in `docs/benchmarks.json`, `viralPostModel`).",
                        capacity::counter_lag_after(20_000.0, Some(projection), 60.0)
                    );
                }
            }
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Projector CPU\n");
        match (decode_plan_rate(100), decode_plan_rate(1000)) {
            (Some(a), Some(b)) => {
                let _ = writeln!(
                    w,
                    "criterion, `cargo bench -p bench --bench decode_plan`, one core: decode + \
                     plan of Lambda batches runs at **{:.2} M records/s** (100 records) and \
                     **{:.2} M records/s** (1,000 records).\n",
                    a / 1e6,
                    b / 1e6
                );
            }
            _ => {
                let _ = writeln!(
                    w,
                    "(decode_plan was not run: `cargo bench -p bench --bench decode_plan`)\n"
                );
            }
        }
        if let Ok(text) = std::fs::read_to_string(target_dir().join("load/lambda-sizes.txt")) {
            let _ = writeln!(w, "## Lambda packages\n\n```\n{text}```\n");
        }
        let _ = writeln!(w, "## Convergence\n");
        for d in &self.designs {
            let times: Vec<String> = d
                .convergence
                .iter()
                .map(|t| format!("{:.1} s", t.as_secs_f64()))
                .collect();
            let _ = writeln!(
                w,
                "- {}: every counter exact {} after each phase's load stopped",
                d.design.name(),
                times.join(", ")
            );
        }
        let _ = writeln!(w, "\nSettings: `{}`", self.settings);
        out
    }

    /// Write `benchmarks.md` and `benchmarks.svg` into `dir`.
    /// The figures as JSON: every design's figures by name (units in the names), each with
    /// its ratio to the transactional design, and the targets named (with the settings
    /// `infra/` deploys: a 1 s batching window, batches of up to 1,000). Everything here is
    /// measured on the local engine, but for the `model:` figures.
    pub fn json(&self) -> serde_json::Value {
        let figures = self.figures();
        let t = self.transactional();
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        let designs: Vec<serde_json::Value> = self
            .designs
            .iter()
            .map(|d| {
                let values: serde_json::Map<String, serde_json::Value> = figures
                    .iter()
                    .map(|f| {
                        let value = (f.value)(d);
                        let ratio = match (f.compare, value, (f.value)(t)) {
                            (true, Some(v), Some(base)) if base != 0.0 => finite(Some(v / base)),
                            _ => None,
                        };
                        let value = match value {
                            Some(v) if v.is_infinite() => serde_json::json!("no limit"),
                            v => serde_json::json!(finite(v)),
                        };
                        (
                            f.name.clone(),
                            serde_json::json!({"value": value, "toTransactional": ratio}),
                        )
                    })
                    .collect();
                serde_json::json!({"design": d.design.name(), "figures": values})
            })
            .collect();
        let deployed = self.designs.iter().find(|d| {
            d.design
                == Design::Stream {
                    batch_window_ms: 1000,
                    batch_size: 1000,
                }
        });
        let targets = deployed.map(|d| {
            let ratio = |f: &dyn Fn(&DesignFigures) -> Option<f64>| {
                finite(f(d).zip(f(t)).map(|(a, b)| a / b))
            };
            serde_json::json!({
                "settings": d.design.name(),
                "writeUnitsPerLikeToTransactional": ratio(&|x| Some(x.wcu_per_op())),
                "projectionLagP99Ms": finite(quantile_ms(&d.paced.lag, 0.99, 1.0)),
                "projectionLagRateLikesPerSecond": self.rate,
                "writerThroughputToTransactional": ratio(&|x| Some(x.saturated.ops_per_second())),
                "hotCounterWritesPer1000Likes": d.hot_counter_writes_per_1000(),
                "modelHotPostLikesPerSecondProjectionKeepsUpWith": finite(d.limits.projection_rate),
            })
        });
        serde_json::json!({
            "what": format!("measured on the local engine, {} (2 cores); model figures marked model:", bench::local::ENGINE),
            "designs": designs,
            "targets": targets,
        })
    }

    /// Write `benchmarks.md` and `benchmarks.svg` into `dir`. What the existing
    /// `benchmarks.md` holds after [`ANALYSIS_MARKER`] (the hand-written reading of the
    /// figures) is kept, below the new figures.
    pub fn write(&self, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("benchmarks.md");
        let previous = std::fs::read_to_string(&path).unwrap_or_default();
        let analysis = previous
            .find(ANALYSIS_MARKER)
            .map_or_else(String::new, |at| format!("\n{}", &previous[at..]));
        std::fs::write(&path, self.markdown() + &analysis)?;
        // benchmarks.json: this run's figures, beside what other runs (the multi-shard
        // simulation) put there.
        let json_path = dir.join("benchmarks.json");
        let mut document: serde_json::Value = std::fs::read_to_string(&json_path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        document["loadBenchmark"] = self.json();
        std::fs::write(&json_path, serde_json::to_string_pretty(&document)? + "\n")?;
        self.chart(&dir.join("benchmarks.svg"))
    }

    /// Two panels: acknowledged per second (saturated); hot-post writer p99 and projection lag.
    fn chart(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1000, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        // The legend has a strip of its own, so that it covers no bar.
        let (panels, legend) = root.split_vertically(400);
        let (left, right) = panels.split_horizontally(440);
        let palette = [
            RGBColor(31, 119, 180),
            RGBColor(44, 160, 44),
            RGBColor(255, 127, 14),
            RGBColor(148, 103, 189),
        ];
        let names: Vec<String> = self.designs.iter().map(|d| d.design.name()).collect();
        let bars = |area: &DrawingArea<SVGBackend, _>,
                    title: &str,
                    unit: &str,
                    groups: &[(&str, Vec<f64>)]|
         -> Result<(), Box<dyn std::error::Error>> {
            let top = groups
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .fold(1.0f64, f64::max)
                * 1.3;
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_desc(unit)
                .draw()?;
            let width = 0.8 / names.len() as f64;
            for (g, (label, values)) in groups.iter().enumerate() {
                for (i, value) in values.iter().enumerate() {
                    let x0 = g as f64 + 0.1 + i as f64 * width;
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, *value)],
                        palette[i % palette.len()].filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{value:.0}"),
                        (x0, *value + top * 0.02),
                        ("sans-serif", 12),
                    )))?;
                }
                chart.draw_series(std::iter::once(Text::new(
                    label.to_string(),
                    (g as f64 + 0.3, -top * 0.05),
                    ("sans-serif", 13),
                )))?;
            }
            Ok(())
        };
        let column = 1000 / names.len().max(1) as i32;
        for (i, name) in names.iter().enumerate() {
            let x = 12 + i as i32 * column;
            let color = palette[i % palette.len()];
            legend.draw(&Rectangle::new([(x, 22), (x + 12, 34)], color.filled()))?;
            legend.draw(&Text::new(name.clone(), (x + 18, 22), ("sans-serif", 13)))?;
        }
        let each = |f: &dyn Fn(&DesignFigures) -> f64| -> Vec<f64> {
            self.designs.iter().map(f).collect()
        };
        bars(
            &left,
            "acknowledged per second (saturated)",
            "per second",
            &[
                ("likes + unlikes", each(&|d| d.saturated.ops_per_second())),
                ("likes", each(&|d| d.saturated.likes_per_second())),
            ],
        )?;
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64, per_ms: f64| {
            quantile_ms(h, q, per_ms).unwrap_or(0.0)
        };
        bars(
            &right,
            &format!(
                "hot-post writer p99 (saturated); lag at {} likes/s",
                self.rate
            ),
            "milliseconds",
            &[
                (
                    "writer p99",
                    each(&|d| ms(&d.saturated.hot_latency, 0.99, 1000.0)),
                ),
                (
                    "writer p99, alone",
                    each(&|d| ms(&d.alone.hot_latency, 0.99, 1000.0)),
                ),
                ("lag p50", each(&|d| ms(&d.paced.lag, 0.5, 1.0))),
                ("lag p99", each(&|d| ms(&d.paced.lag, 0.99, 1.0))),
            ],
        )?;
        root.present()?;
        Ok(())
    }
}

fn show(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v.is_infinite() => "no limit".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}
