//! Figures from a run, and the report: `benchmarks.md` (tables) and `benchmarks.svg` (chart).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use contracts::capacity::WriteEntry;
use contracts::capacity::model::{
    self, HotPartition, HotPostLimits, HotPostLoad, Path as WritePath,
};
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
}

impl Units {
    pub fn total(&self) -> f64 {
        self.writer_table + self.writer_index + self.projector_table + self.projector_index
    }
}

/// The measured phases of one design, all rounds merged.
pub struct Phases {
    pub saturated: PhaseStats,
    pub paced: PhaseStats,
    /// Time from the end of each phase's load to every counter being exact.
    pub convergence: Vec<Duration>,
}

/// Everything measured for one design.
pub struct DesignFigures {
    pub design: Design,
    pub saturated: PhaseStats,
    pub paced: PhaseStats,
    /// Acknowledged likes and unlikes, all phases.
    pub ops: u64,
    pub hot_ops: u64,
    pub units: Units,
    /// Writes that touched the hot post's item (its counter), not refused.
    pub hot_counter_writes: u64,
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
            paced,
            convergence,
        } = phases;
        let writes: Vec<WriteEntry> = writes.into_iter().filter(model::is_like_cost).collect();
        let mut units = Units::default();
        for entry in &writes {
            let billed = model::billed(entry);
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
            .filter(|e| !e.failed)
            .filter(|e| {
                e.items
                    .iter()
                    .any(|(pk, sk)| *pk == hot_key.pk && *sk == hot_key.sk)
            })
            .count() as u64;
        let ops = saturated.ops + paced.ops;
        let hot_ops = saturated.hot_ops + paced.hot_ops;
        let load = model::hot_post_load(
            &paced_writes
                .into_iter()
                .filter(|e| touches_hot_post(e, hot_post))
                .collect::<Vec<_>>(),
            hot_post,
            paced.hot_ops,
        );
        let limits = model::hot_post_limits(&load);
        Self {
            design: deployment.design,
            ops,
            hot_ops,
            units,
            hot_counter_writes,
            writer_rss: deployment.writer.peak_rss(),
            poller_rss: deployment.poller.as_ref().and_then(|p| p.peak_rss()),
            load,
            limits,
            saturated,
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
    pub batch_window_ms: u64,
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |b| {
        format!("{:.1} MB", b as f64 / 1_048_576.0)
    })
}

fn ratio(stream: f64, transactional: f64) -> String {
    if transactional > 0.0 {
        format!("{:.2}×", stream / transactional)
    } else {
        "–".into()
    }
}

/// The target directory, from where this benchmark's binary is.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_projector"))
        .ancestors()
        .nth(2)
        .expect("target/<profile>/projector")
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

impl Run {
    fn design(&self, design: Design) -> &DesignFigures {
        self.designs
            .iter()
            .find(|d| d.design == design)
            .expect("both designs ran")
    }

    pub fn markdown(&self) -> String {
        let s = self.design(Design::Stream);
        let t = self.design(Design::Transactional);
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "# Benchmarks: stream projection against the transactional design\n"
        );
        let _ = writeln!(
            w,
            "Generated by `scripts/bench.sh` ({}). Both designs run on one DynamoDB Local, \
             each with its own table, release writer process and (stream) release poller process; \
             rounds alternate the designs. {} rounds of {} s saturated ({} clients, as fast as \
             answered) and {} s paced ({} likes/s) per design; {} users, {} posts, {:.0}% of likes \
             on one hot post, Zipf {} over the rest, {:.0}% unlikes when saturated; poller \
             batching window {} ms. Every round ends with every counter exact.\n",
            chrono::Utc::now().format("%Y-%m-%d"),
            self.rounds,
            self.phase_secs,
            self.shape.clients,
            self.phase_secs,
            self.rate,
            self.shape.users,
            self.shape.posts,
            self.shape.hot_share * 100.0,
            self.shape.zipf_exponent,
            self.shape.unlike_share * 100.0,
            self.batch_window_ms,
        );
        let _ = writeln!(w, "![throughput and lag](benchmarks.svg)\n");
        let _ = writeln!(w, "## Side by side\n");
        let _ = writeln!(
            w,
            "| figure | stream | transactional | stream / transactional |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|");
        let row = |w: &mut String, name: &str, a: f64, b: f64, unit: &str| {
            let _ = writeln!(
                w,
                "| {name} | {a:.2}{unit} | {b:.2}{unit} | {} |",
                ratio(a, b)
            );
        };
        row(
            w,
            "likes + unlikes acknowledged per second (saturated)",
            s.saturated.ops_per_second(),
            t.saturated.ops_per_second(),
            "",
        );
        row(
            w,
            "likes acknowledged per second (saturated)",
            s.saturated.likes_per_second(),
            t.saturated.likes_per_second(),
            "",
        );
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            row(
                w,
                &format!("writer latency {name}, all posts (ms)"),
                s.saturated.latency.value_at_quantile(q) as f64 / 1000.0,
                t.saturated.latency.value_at_quantile(q) as f64 / 1000.0,
                "",
            );
            row(
                w,
                &format!("writer latency {name}, hot post (ms)"),
                s.saturated.hot_latency.value_at_quantile(q) as f64 / 1000.0,
                t.saturated.hot_latency.value_at_quantile(q) as f64 / 1000.0,
                "",
            );
        }
        row(
            w,
            "WCU per like or unlike (writer + projector + GSI)",
            s.wcu_per_op(),
            t.wcu_per_op(),
            "",
        );
        row(
            w,
            "writes of the hot post's counter per 1,000 of its likes and unlikes",
            s.hot_counter_writes_per_1000(),
            t.hot_counter_writes_per_1000(),
            "",
        );
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            row(
                w,
                &format!("projection lag {name} at {} likes/s (ms)", self.rate),
                s.paced.lag.value_at_quantile(q) as f64,
                t.paced.lag.value_at_quantile(q) as f64,
                "",
            );
        }
        let request = |d: &DesignFigures| {
            d.limits
                .request
                .map_or("no limit".to_owned(), |(rate, _)| format!("{rate:.0}"))
        };
        let _ = writeln!(
            w,
            "| model: hot-post likes/s before the writer throttles | {} | {} | |",
            request(s),
            request(t)
        );
        let _ = writeln!(
            w,
            "| peak RSS, writer | {} | {} | |\n| peak RSS, poller | {} | – | |",
            mb(s.writer_rss),
            mb(t.writer_rss),
            mb(s.poller_rss)
        );
        let _ = writeln!(
            w,
            "| paced rate reached (likes/s) | {:.1} | {:.1} | |\n| lag probes never counted | {} | {} | |",
            s.paced.likes_per_second(),
            t.paced.likes_per_second(),
            s.paced.lost_probes,
            t.paced.lost_probes
        );
        let _ = writeln!(w);

        let _ = writeln!(w, "## Refused requests (retried until acknowledged)\n");
        let _ = writeln!(
            w,
            "| design | status and problem type | count |\n|---|---|---:|"
        );
        for d in &self.designs {
            let mut errors = d.saturated.errors.clone();
            for (kind, n) in &d.paced.errors {
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
            "From the write logs: the units DynamoDB Local reports with `ReturnConsumedCapacity=INDEXES`, \
             with the published rules applied where it is not faithful (transactions billed 2× per \
             item, refused writes billed per item). Poller checkpoints are left out: deployed, \
             Lambda keeps the stream position.\n"
        );
        let _ = writeln!(
            w,
            "| design | writer, table | writer, GSI1 | projector, table | projector, GSI1 | total |\n|---|---:|---:|---:|---:|---:|"
        );
        for d in &self.designs {
            let n = d.ops.max(1) as f64;
            let u = d.units;
            let _ = writeln!(
                w,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                d.design.name(),
                u.writer_table / n,
                u.writer_index / n,
                u.projector_table / n,
                u.projector_index / n,
                u.total() / n
            );
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Capacity model: one hot post\n");
        let _ = writeln!(
            w,
            "The logged writes of the hot post, replayed against partitions of {:.0} WCU/s \
             ({:.0} RCU/s; neither design reads the hot partitions per like). The assumptions are \
             in `contracts/src/capacity/model.rs`. Units per like of the hot post:\n",
            model::PARTITION_WCU,
            model::PARTITION_RCU
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
                        model::TABLE_WCU_QUOTA,
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
                        "The projection keeps the counter within its batching window up to \
                         **{projection:.0} likes/s** of one post, bound by the post's GSI1 \
                         partition, which takes each like's stamp (and the post item's own \
                         entry). Beyond, it falls behind by the excess: at 20,000 likes/s, \
                         {:.0} s per minute.",
                        model::counter_lag_after(20_000.0, Some(projection), 60.0)
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
                    "criterion, `cargo bench -p projector --bench decode_plan`, one core: decode + \
                     plan of Lambda batches runs at **{:.2} M records/s** (100 records) and \
                     **{:.2} M records/s** (1,000 records).\n",
                    a / 1e6,
                    b / 1e6
                );
            }
            _ => {
                let _ = writeln!(
                    w,
                    "(decode_plan was not run: `cargo bench -p projector --bench decode_plan`)\n"
                );
            }
        }
        let sizes = target_dir().join("load/lambda-sizes.txt");
        if let Ok(text) = std::fs::read_to_string(sizes) {
            let _ = writeln!(w, "## Lambda packages\n\n```\n{}```\n", text);
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
                "- {}: every counter exact {} after the rounds' loads stopped",
                d.design.name(),
                times.join(", ")
            );
        }
        let _ = writeln!(w, "\nSettings: `{}`", self.settings);
        out
    }

    /// Write `benchmarks.md` and `benchmarks.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("benchmarks.md"), self.markdown())?;
        self.chart(&dir.join("benchmarks.svg"))
    }

    /// Two panels: likes/s acknowledged (saturated), and projection lag p50/p99 (paced).
    fn chart(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 380)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(450);
        let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
        let bars = |area: &DrawingArea<SVGBackend, _>,
                    title: &str,
                    unit: &str,
                    groups: &[(&str, [f64; 2])]|
         -> Result<(), Box<dyn std::error::Error>> {
            let top = groups
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .fold(1.0f64, f64::max)
                * 1.2;
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
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
            for (g, (label, values)) in groups.iter().enumerate() {
                for (i, value) in values.iter().enumerate() {
                    let x0 = g as f64 + 0.15 + i as f64 * 0.35;
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x0 + 0.33, *value)],
                        colors[i].filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{value:.0}"),
                        (x0 + 0.05, *value + top * 0.02),
                        ("sans-serif", 13),
                    )))?;
                }
                chart.draw_series(std::iter::once(Text::new(
                    label.to_string(),
                    (g as f64 + 0.3, -top * 0.06),
                    ("sans-serif", 13),
                )))?;
            }
            for (i, design) in Design::ALL.iter().enumerate() {
                chart
                    .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                    .label(design.name())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colors[i].filled())
                    });
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()?;
            Ok(())
        };
        let s = self.design(Design::Stream);
        let t = self.design(Design::Transactional);
        bars(
            &left,
            "acknowledged per second (saturated)",
            "per second",
            &[
                (
                    "likes + unlikes",
                    [s.saturated.ops_per_second(), t.saturated.ops_per_second()],
                ),
                (
                    "likes",
                    [
                        s.saturated.likes_per_second(),
                        t.saturated.likes_per_second(),
                    ],
                ),
            ],
        )?;
        let hot_p99 =
            |d: &DesignFigures| d.saturated.hot_latency.value_at_quantile(0.99) as f64 / 1000.0;
        let lag = |d: &DesignFigures, q| d.paced.lag.value_at_quantile(q) as f64;
        bars(
            &right,
            &format!("hot-post writer p99; lag at {} likes/s", self.rate),
            "milliseconds",
            &[
                ("writer p99", [hot_p99(s), hot_p99(t)]),
                ("lag p50", [lag(s, 0.5), lag(t, 0.5)]),
                ("lag p99", [lag(s, 0.99), lag(t, 0.99)]),
            ],
        )?;
        root.present()?;
        Ok(())
    }
}
