//! `sim`: the deterministic simulation (this crate's library). One seed (`--seed N`), printed as
//! a report; a sweep of seeds for a time box (`--seconds S`) or a count (`--seeds N`), across
//! threads, stopping at the first failure with its seed and the command that replays it;
//! `--shrink` replays a failing seed with the smallest settings that still fail.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sim::{self, Failure, Report, Settings};

// The simulation allocates for every request and stream record: mimalloc runs the viral
// post a quarter faster than glibc's malloc. Its own binary, so the load benchmark's
// writer and projector keep the allocator they are deployed with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The deterministic simulation: one seed, a sweep of seeds, or the viral post")]
struct SimArgs {
    /// Run this seed alone and print its report.
    #[arg(long)]
    seed: Option<u64>,
    /// With `--seed`: shrink the failing run to the smallest settings that still fail.
    #[arg(long, requires = "seed")]
    shrink: bool,
    /// Sweep seeds for this many seconds of wall time.
    #[arg(long)]
    seconds: Option<u64>,
    /// Sweep this many seeds.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a sweep.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Threads of a sweep; with `--viral`, 1 runs the viral post and the even spread one
    /// after the other (half the memory: a full minute of each took up to 10 GB).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The viral post at scale: one post's likes at `--viral-rate`, beside the same load
    /// spread evenly; print both reports.
    #[arg(long, conflicts_with_all = ["seed", "seconds", "seeds"])]
    viral: bool,
    /// Likes a second of the viral post.
    #[arg(long, default_value_t = 20_000.0)]
    viral_rate: f64,
    /// Likes a second over the other posts.
    #[arg(long, default_value_t = 1_000.0)]
    others_rate: f64,
    /// The other posts.
    #[arg(long, default_value_t = 1_000)]
    others: usize,
    /// Virtual seconds of load.
    #[arg(long, default_value_t = 60)]
    viral_seconds: i64,
    /// Stream shards (Lambda runs the deployed parallelization factor on each).
    #[arg(long, default_value_t = 100)]
    shards: usize,
    /// With `--viral`: the table's write quota, units a second. DynamoDB's default is 40,000;
    /// the viral load asks about 95,000 (measured here without a quota: 4.5 units a like at
    /// 21,000 likes a second), so AWS is asked for a quarter more (docs/benchmarks.md).
    #[arg(long, default_value_t = 120_000.0)]
    table_quota: f64,
    /// With `--viral`: merge the figures into this JSON file, as its field `--json-key`.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// With `--json`: the document's field the figures go to (`scripts/bench.sh` publishes
    /// the full minute and a shorter run of several seeds side by side).
    #[arg(long, default_value = "simulatedViralPost", requires = "json")]
    json_key: String,
    /// With `--viral`: write each run's virtual seconds (`sim::Second`, one JSON object a
    /// line) to `seed-N-viral.jsonl` and `seed-N-even.jsonl` in this folder.
    #[arg(long)]
    series: Option<std::path::PathBuf>,
    /// With `--viral`: the first seed (its runs' figures are published in full).
    #[arg(long, default_value_t = 1)]
    viral_seed: u64,
    /// With `--viral`: how many seeds to run from `--viral-seed`, one after another; with more
    /// than one, the JSON holds each seed's main figures (`acrossSeeds`).
    #[arg(long, default_value_t = 1)]
    viral_seeds: u64,
}

fn main() -> ExitCode {
    let args = <SimArgs as clap::Parser>::parse();
    if args.viral {
        return viral(&args);
    }
    if let Some(seed) = args.seed {
        let settings = Settings::sweep(seed);
        let settings = if args.shrink {
            shrink(settings)
        } else {
            settings
        };
        eprintln!("{settings:#?}");
        return match sim::run(settings) {
            Ok(report) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report")
                );
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    sweep(&args)
}

/// Totals of a sweep.
#[derive(Default)]
struct Totals {
    runs: u64,
    operations: u64,
    requests: u64,
    sdk_retries: u64,
    sdk_out_of_quota: u64,
    faults: u64,
    commands: u64,
    given_up: u64,
    conflicts: u64,
    throttled: u64,
    events: u64,
    /// Runs in which a fault struck, and in which an operator command ran.
    faulted: u64,
    repaired: u64,
    count_reads: u64,
    max_read_staleness_ms: i64,
    most_folds_per_second: u32,
    expired: u64,
    rotations: u64,
    splits: u64,
    rebuilds: u64,
    rebuild_reruns: u64,
    counters_corrected: u64,
}

impl Totals {
    fn add(&mut self, report: &Report) {
        self.runs += 1;
        self.operations += report.operations;
        self.requests += report.requests;
        self.sdk_retries += report.sdk_retries;
        self.sdk_out_of_quota += report.sdk_out_of_quota;
        self.faults += report.faults;
        self.commands += report.commands;
        self.given_up += report.given_up;
        self.conflicts += report.conflicts;
        self.throttled += report.throttled;
        self.events += report.events;
        self.faulted += u64::from(report.faults > 0);
        self.repaired += u64::from(report.commands > 0);
        self.count_reads += report.count_reads;
        self.expired += report.expired;
        self.rotations += report.rotations;
        self.splits += report.splits;
        self.rebuilds += report.rebuilds;
        self.rebuild_reruns += report.rebuild_reruns;
        self.counters_corrected += report.counters_corrected;
        self.most_folds_per_second = self.most_folds_per_second.max(report.most_folds_per_second);
        self.max_read_staleness_ms = self.max_read_staleness_ms.max(report.max_read_staleness_ms);
    }
}

fn sweep(args: &SimArgs) -> ExitCode {
    let started = Instant::now();
    let budget = args.seconds.map(Duration::from_secs);
    let last = args.seeds.map(|n| args.from + n);
    let next = Arc::new(AtomicU64::new(args.from));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let failure: Arc<Mutex<Option<Failure>>> = Arc::default();
    let threads: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (next, stop, totals, failure) =
                (next.clone(), stop.clone(), totals.clone(), failure.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && budget.is_none_or(|b| started.elapsed() < b) {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if last.is_some_and(|last| seed >= last) {
                        return;
                    }
                    match sim::run(Settings::sweep(seed)) {
                        Ok(report) => totals.lock().expect("totals").add(&report),
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            failure.lock().expect("failure").get_or_insert(e);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a sweep thread");
    }
    let totals = totals.lock().expect("totals");
    println!(
        "simulation sweep: {} schedules in {:.0} s, {} with faults, {} with operator commands ({} events, {} writer operations, {} projector requests ({} of them the SDK's retries, {} more refused for want of retry quota), {} faults, {} operator commands, {} rebuilds run to a clean end after {} reruns correcting {} counters, {} batches given up and replayed, {} conflicts, {} partition throttles, {} shard rotations splitting {} shards); {} counts read during the load, each one an acknowledged history allows within the {} s staleness bound (most stale: {} ms); at most {} folds into one counter in a virtual second; every finished one settled with zero drift, and again days later, after {} tombstones expired and a replay of what the stream still held",
        totals.runs,
        started.elapsed().as_secs_f64(),
        totals.faulted,
        totals.repaired,
        totals.events,
        totals.operations,
        totals.requests,
        totals.sdk_retries,
        totals.sdk_out_of_quota,
        totals.faults,
        totals.commands,
        totals.rebuilds,
        totals.rebuild_reruns,
        totals.counters_corrected,
        totals.given_up,
        totals.conflicts,
        totals.throttled,
        totals.rotations,
        totals.splits,
        totals.count_reads,
        sim::STALENESS_BOUND_MS / 1000,
        totals.max_read_staleness_ms,
        totals.most_folds_per_second,
        totals.expired,
    );
    if let Some(failure) = failure.lock().expect("failure").take() {
        eprintln!("{failure}");
        eprintln!(
            "  shrunk: cargo run -p sim -- --seed {} --shrink",
            failure.seed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The smallest settings derived from `settings` that still fail: each knob halved or zeroed
/// in turn, a change kept while the run still fails, until no change helps.
fn shrink(mut settings: Settings) -> Settings {
    let fails = |s: &Settings| sim::run(s.clone()).is_err();
    if !fails(&settings) {
        eprintln!("seed {} does not fail: nothing to shrink", settings.seed);
        return settings;
    }
    type Step = fn(&mut Settings) -> bool;
    let steps: [Step; 14] = [
        |s| halve(&mut s.load_ms, 100),
        |s| halve(&mut s.rate, 1.0),
        |s| halve(&mut s.users, 1),
        |s| halve(&mut s.clients, 1),
        |s| halve(&mut s.posts, 1),
        |s| halve(&mut s.topics, 1),
        |s| halve(&mut s.source.shards, 1),
        |s| halve(&mut s.source.batch_size, 1),
        |s| s.operators.pop().is_some(),
        |s| std::mem::take(&mut s.faults.crash) > 0,
        |s| std::mem::take(&mut s.faults.lost) + std::mem::take(&mut s.faults.slow) > 0,
        |s| std::mem::take(&mut s.days_later),
        |s| s.rotations.pop().is_some(),
        |s| std::mem::take(&mut s.table.gsi1_delay_ms) != (0, 0),
    ];
    loop {
        let mut shrunk = false;
        for step in steps {
            let mut smaller = settings.clone();
            if step(&mut smaller) && fails(&smaller) {
                settings = smaller;
                shrunk = true;
            }
        }
        if !shrunk {
            return settings;
        }
    }
}

/// Halve `value`, not below `floor`; whether it shrank.
fn halve<T>(value: &mut T, floor: T) -> bool
where
    T: Copy + PartialOrd + From<u8> + std::ops::Div<Output = T>,
{
    let old = *value;
    let half = old / T::from(2);
    *value = if half < floor { floor } else { half };
    *value < old
}

/// The viral post and the same likes spread evenly, side by side on two threads (or one after
/// the other on one), for each seed in turn.
fn viral(args: &SimArgs) -> ExitCode {
    let seeds = args.viral_seed..args.viral_seed + args.viral_seeds.max(1);
    let mut runs = Vec::new();
    for seed in seeds.clone() {
        match viral_pair(args, seed) {
            Ok(pair) => runs.push(pair),
            Err(()) => return ExitCode::FAILURE,
        }
    }
    let Some(path) = &args.json else {
        return ExitCode::SUCCESS;
    };
    let [(viral, viral_took), (spread, spread_took)] = &runs[0];
    let ratio = |viral: &Report, spread: &Report| {
        viral.counter_lag_others.p99_ms as f64 / spread.counter_lag_others.p99_ms.max(1) as f64
    };
    let across = |pick: fn(&Report) -> serde_json::Value| {
        let pick_all = |i: usize| runs.iter().map(|pair| pick(&pair[i].0)).collect::<Vec<_>>();
        serde_json::json!({"viral": pick_all(0), "spreadEvenly": pick_all(1)})
    };
    let mut document: serde_json::Value = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let mut figures = serde_json::json!({
        "what": "simulated: the sim crate (bench/sim), the projector's batch machine and dynoxide's storage in virtual time, DynamoDB's conflicts, partition limits, table quota and GSI1 delay and the SDK's retries modelled",
        "settings": {
            "viralLikesPerSecond": args.viral_rate,
            "otherLikesPerSecond": args.others_rate,
            "otherPosts": args.others,
            "virtualSeconds": args.viral_seconds,
            "shards": args.shards,
            "tableQuotaUnitsPerSecond": args.table_quota,
            "eventSource": contracts::event_source::DEPLOYED,
        },
        "viral": viral,
        "spreadEvenly": spread,
        "wallSeconds": [viral_took.as_secs(), spread_took.as_secs()],
        "otherPostsCounterLagP99Ratio": ratio(viral, spread),
    });
    if runs.len() > 1 {
        figures["acrossSeeds"] = serde_json::json!({
            "seeds": seeds.collect::<Vec<_>>(),
            "counterLagHot": across(|r| serde_json::json!(r.counter_lag_hot)),
            "viewLagHot": across(|r| serde_json::json!(r.view_lag_hot)),
            "counterLagOthers": across(|r| serde_json::json!(r.counter_lag_others)),
            "throttled": across(|r| serde_json::json!(r.throttled)),
            "conflicts": across(|r| serde_json::json!(r.conflicts)),
            "hotCounterWritesPerSecond": across(|r| serde_json::json!(r.hot_counter_writes_per_second)),
            "otherPostsCounterLagP99Ratio": runs.iter().map(|[(v, _), (s, _)]| ratio(v, s)).collect::<Vec<_>>(),
        });
    }
    document[args.json_key.as_str()] = figures;
    std::fs::write(
        path,
        serde_json::to_string_pretty(&document).expect("JSON") + "\n",
    )
    .expect("write the figures");
    ExitCode::SUCCESS
}

/// One seed's viral run and even run, side by side on two threads (one after the other with
/// `--threads 1`); each report is printed.
fn viral_pair(args: &SimArgs, seed: u64) -> Result<[(Report, Duration); 2], ()> {
    let run = |spread: bool| {
        let mut settings = Settings::viral(
            args.viral_rate,
            args.others_rate,
            args.others,
            args.viral_seconds * 1000,
            args.shards,
            spread,
        );
        settings.table.table_wcu = args.table_quota;
        settings.seed = seed;
        move || {
            let started = Instant::now();
            (spread, sim::run(settings), started.elapsed())
        }
    };
    let [viral, spread] = if args.threads > 1 {
        [false, true]
            .map(|spread| std::thread::spawn(run(spread)))
            .map(|thread| print_viral(args, seed, thread.join().expect("a viral run")))
    } else {
        [false, true].map(|spread| print_viral(args, seed, run(spread)()))
    };
    Ok([viral?, spread?])
}

/// Print one viral run's report (its failure to stderr), and write its seconds if asked.
fn print_viral(
    args: &SimArgs,
    seed: u64,
    (spread, result, took): (bool, Result<Report, Failure>, Duration),
) -> Result<(Report, Duration), ()> {
    let name = if spread {
        "spread evenly"
    } else {
        "viral post"
    };
    match result {
        Ok(report) => {
            eprintln!(
                "{name}, seed {seed}: {:.0} s of wall time",
                took.as_secs_f64()
            );
            if let Some(folder) = &args.series {
                let run = if spread { "even" } else { "viral" };
                let lines: String = report
                    .series
                    .iter()
                    .map(|second| serde_json::to_string(second).expect("a second") + "\n")
                    .collect();
                let path = folder.join(format!("seed-{seed}-{run}.jsonl"));
                std::fs::create_dir_all(folder)
                    .and_then(|()| std::fs::write(&path, lines))
                    .expect("write the series");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("a report")
            );
            Ok((report, took))
        }
        Err(failure) => {
            eprintln!("{name}: {failure}");
            Err(())
        }
    }
}
