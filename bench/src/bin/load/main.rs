//! Load benchmark: the stream-projection design against the classic transactional one, side by
//! side on one local engine.
//!
//! Each design gets its own table, its own writer process (and for the stream design a
//! `projector poll` process): this binary's `writer` and `projector` subcommands, which run
//! the real entrypoints with a client logging every write with the capacity DynamoDB reports
//! (`WRITE_LOG`). The stream design runs once per poller setting (`--streams`:
//! batching window and batch size, which trade lag for coalescing). Rounds alternate the
//! designs (stream, transactional, stream, ...) so that machine noise hits all alike.
//!
//! After a warm-up (a short saturated phase per design, not measured: the engine
//! compiles its hot paths), a round runs, per design:
//!
//! 1. a **paced** phase: likes at `--rate` per second, every sixteenth followed until it is
//!    counted: projection lag; its writes (likes only, a sustained rate) feed the capacity
//!    model (`bench::capacity`);
//! 2. a **saturated** phase: `--clients` clients like and unlike as fast as the writer answers
//!    (Zipf-skewed posts plus one hot post): throughput, latency, refusals;
//! 3. the same with the poller stopped: the **request path alone**, since on the local engine
//!    (one lock for everything) the projection's writes queue with the writer's;
//!
//! each followed by **convergence**: every post's `likeCount` must equal the likes the clients
//! hold. The write logs give WCU per operation and the hot counter's writes. `--report docs` writes `benchmarks.md` and
//! `benchmarks.svg` there. `scripts/bench.sh` builds the binaries and runs everything.

mod engine;
mod report;
mod system;
mod workload;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use std::process::ExitCode;

use bench::LocalInstance;
use bench::write_log::logged_client;

use report::{DesignFigures, Phases, Run};
use system::{Deployment, Design};
use workload::{Pace, PhaseStats, Shape, Workload};

/// How long counters may take to become exact once a phase's load stops.
const CONVERGENCE: Duration = Duration::from_secs(300);

#[derive(Parser)]
#[command(
    name = "bench",
    about = "The load benchmark and its instrumented processes"
)]
enum Cli {
    /// Stream projection against the transactional design, interleaved.
    Load(Args),
    /// The writer's `serve`, its DynamoDB writes logged to `WRITE_LOG`.
    Writer(writer::server::ServeArgs),
    /// The projector's CLI, its DynamoDB writes logged to `WRITE_LOG`.
    Projector(projector::cli::Cli),
    /// A viral post's likes projected over many virtual stream shards, with transaction
    /// conflicts and partition throttling modelled in front of the local engine.
    Shards(ShardArgs),
    /// The local engine's write rate as a table's stream grows.
    Engine(engine::EngineArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct ShardArgs {
    /// Likes, one per user.
    #[arg(long, default_value_t = 10_000)]
    likes: usize,
    /// Likes written per second while the projection runs.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Share of the likes on the hot post.
    #[arg(long, default_value_t = 0.3)]
    hot_share: f64,
    /// Virtual stream shards.
    #[arg(long, default_value_t = 16)]
    shards: usize,
    /// Lambda's parallelization factor.
    #[arg(long, default_value_t = 2)]
    parallelization: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Lambda's batching window, in milliseconds.
    #[arg(long, default_value_t = 200)]
    batching_window_ms: u64,
    /// Write the figures into this JSON file (its `multiShardSimulation` member).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Run the simulation twice, each on an engine of its own: the viral load, and the same
/// number of likes with no hot post (the lag the other posts would have without it). Print the
/// figures, and merge them into `--json`.
async fn shards(args: ShardArgs) {
    let settings = bench::shards::ShardSettings {
        batch_size: args.batch_size,
        batching_window: Duration::from_millis(args.batching_window_ms),
        ..bench::shards::ShardSettings::consumers(args.shards, args.parallelization)
    };
    let run = |hot_share: f64| async move {
        let dynamodb = LocalInstance::start(None);
        let table = bench::TestTable::on(&dynamodb.endpoint()).await;
        let load = bench::shards::ViralLoad::new(args.likes, 20, hot_share);
        let figures = bench::shards::simulate(&table, &load, settings, args.rate).await;
        let counts = bench::tally::until_converged(&table, CONVERGENCE).await;
        let exact = load.posts.iter().all(|post| {
            let likes = load.likes_of(post.post_id);
            counts.get(&post.post_id).copied().unwrap_or_default() == (likes, likes, likes)
        });
        assert!(exact, "the simulation left drift: {counts:?}");
        figures
    };
    let viral = run(args.hot_share).await;
    let even = run(0.0).await;
    let ratio = viral.other_posts_lag_p99_ms / even.other_posts_lag_p99_ms.max(1.0);
    let figures = serde_json::json!({
        "viral": viral,
        "evenlySpread": even,
        "driftingPosts": 0,
        "otherPostsLagP99Ratio": ratio,
    });
    let model = viral_post_model();
    println!("{}", serde_json::to_string_pretty(&model).expect("JSON"));
    println!("{}", serde_json::to_string_pretty(&figures).expect("JSON"));
    if let Some(path) = &args.json {
        let mut document: serde_json::Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        document["multiShardSimulation"] = serde_json::json!({
            "what": format!(
                "simulated: the local engine ({}) behind the contention model \
                 (bench::contention), stream shards virtual and tailed live (bench::shards)",
                bench::local::ENGINE
            ),
            "design": "the projection as of this run",
            "figures": figures,
        });
        document["viralPostModel"] = model;
        std::fs::write(
            path,
            serde_json::to_string_pretty(&document).expect("JSON") + "\n",
        )
        .expect("write the figures");
    }
}

/// The capacity model's verdict on one post at 20,000 likes/s over 100 shards × 2, with the
/// deployed batching (1 s window, batches of 1,000), and at the simulation's 16 × 2.
fn viral_post_model() -> serde_json::Value {
    let deployed = bench::capacity::EventSourceLoad::deployed;
    serde_json::json!({
        "what": "model: bench::capacity::EventSourceLoad (assumptions in its docs)",
        "assumed": {"invocationS": 0.1, "transactionS": 0.025, "streamS": 0.5,
                    "batchingWindowS": 1.0, "batchSize": 1000, "parallelization": 2},
        "shards100Rate20000": deployed(100.0, 20_000.0).model(),
        "shards16Rate3000": deployed(16.0, 3_000.0).model(),
        "targets": {
            "counterWithinS": 5.0,
            "viewCompleteWithinS": 10.0,
            "counterWritesPerSecondMax": 10.0,
        },
    })
}

fn writer_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    logged_client(config, "writer")
}

fn projector_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    logged_client(config, "projector")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = match &cli {
        // The projector's processes run as deployed: one thread (see its main.rs).
        Cli::Projector(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        match cli {
            Cli::Load(args) => {
                load(args).await;
                ExitCode::SUCCESS
            }
            Cli::Writer(args) => {
                contracts::telemetry::init(false);
                match writer::server::serve(args, writer_client).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("writer: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Cli::Projector(cli) => {
                contracts::telemetry::init(false);
                projector::cli::run(cli, projector_client).await
            }
            Cli::Shards(args) => {
                shards(args).await;
                ExitCode::SUCCESS
            }
            Cli::Engine(args) => {
                engine::run(args).await;
                ExitCode::SUCCESS
            }
        }
    })
}

#[derive(clap::Args, Debug, Clone)]
struct Args {
    /// Distinct users (each client owns a share).
    #[arg(long, default_value_t = 50_000)]
    users: usize,
    /// Posts; the first is the hot one.
    #[arg(long, default_value_t = 200)]
    posts: usize,
    /// Share of likes on the hot post.
    #[arg(long, default_value_t = 0.3)]
    hot_share: f64,
    /// Share of operations that are unlikes (saturated phases).
    #[arg(long, default_value_t = 0.2)]
    unlike_share: f64,
    /// Zipf exponent over the other posts.
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Rounds; each runs every design.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    phase_secs: u64,
    /// Likes per second in the paced phases.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// The stream design's poller settings, `WINDOW_MS:BATCH_SIZE` (Lambda's batching window
    /// and batch size): one stream deployment each.
    #[arg(long, value_delimiter = ',', default_value = "0:1000,1000:1000,5000:2000", value_parser = stream_settings)]
    streams: Vec<(u64, u32)>,
    /// Write benchmarks.md and benchmarks.svg into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where the write logs go.
    #[arg(long, default_value = "target/load")]
    out: PathBuf,
}

/// `WINDOW_MS:BATCH_SIZE`.
fn stream_settings(text: &str) -> Result<(u64, u32), String> {
    let (window, size) = text
        .split_once(':')
        .ok_or_else(|| format!("{text}: expected WINDOW_MS:BATCH_SIZE"))?;
    let window = window.parse().map_err(|e| format!("{window}: {e}"))?;
    let size = size.parse().map_err(|e| format!("{size}: {e}"))?;
    Ok((window, size))
}

async fn load(args: Args) {
    std::fs::create_dir_all(&args.out).expect("the output directory");
    for old in std::fs::read_dir(&args.out)
        .expect("the output directory")
        .flatten()
    {
        if old.path().extension().is_some_and(|e| e == "jsonl") {
            std::fs::remove_file(old.path()).expect("remove an old log");
        }
    }
    let shape = Shape {
        users: args.users,
        posts: args.posts.max(2),
        hot_share: args.hot_share,
        unlike_share: args.unlike_share,
        zipf_exponent: args.zipf,
        clients: args.clients,
    };
    let dynamodb = LocalInstance::start(None);
    let endpoint = dynamodb.endpoint();
    eprintln!("the local engine ({}) at {endpoint}", bench::local::ENGINE);

    let mut deployments = Vec::new();
    let designs = args
        .streams
        .iter()
        .map(|&(batch_window_ms, batch_size)| Design::Stream {
            batch_window_ms,
            batch_size,
        })
        .chain([Design::Transactional]);
    for design in designs {
        let deployment = Deployment::start(design, &endpoint, &args.out).await;
        let workload = Arc::new(Workload::prepare(&deployment, &shape, 7).await);
        deployments.push((deployment, workload));
    }
    let phase = Duration::from_secs(args.phase_secs);
    for (deployment, workload) in &deployments {
        workload.run(deployment, Pace::Saturate, phase / 2).await;
        workload.converge(deployment, CONVERGENCE).await;
        deployment.until_projection_idle().await;
    }
    eprintln!("warmed up");
    let started_ms = chrono::Utc::now().timestamp_millis();
    let mut saturated: Vec<PhaseStats> = vec![PhaseStats::default(); deployments.len()];
    let mut paced: Vec<PhaseStats> = vec![PhaseStats::default(); deployments.len()];
    let mut alone: Vec<PhaseStats> = vec![PhaseStats::default(); deployments.len()];
    let mut convergence: Vec<Vec<Duration>> = vec![Vec::new(); deployments.len()];
    let mut paced_windows: Vec<Vec<RangeInclusive<i64>>> = vec![Vec::new(); deployments.len()];
    for round in 1..=args.rounds {
        for (i, (deployment, workload)) in deployments.iter().enumerate() {
            let name = deployment.design.name();
            let paced_from = chrono::Utc::now().timestamp_millis();
            let stats = workload.run(deployment, Pace::Rate(args.rate), phase).await;
            eprintln!(
                "round {round} {name:>13}: paced {:>7.1} likes/s, lag p50 {} ms p99 {} ms",
                stats.likes_per_second(),
                stats.lag.value_at_quantile(0.5),
                stats.lag.value_at_quantile(0.99),
            );
            paced[i].merge(&stats);
            convergence[i].push(workload.converge(deployment, CONVERGENCE).await);
            deployment.until_projection_idle().await;
            paced_windows[i].push(paced_from..=chrono::Utc::now().timestamp_millis());

            let stats = workload.run(deployment, Pace::Saturate, phase).await;
            eprintln!(
                "round {round} {name:>13}: saturated {:>7.1} ops/s, p99 {:>6.1} ms, {} refused",
                stats.ops_per_second(),
                stats.latency.value_at_quantile(0.99) as f64 / 1000.0,
                stats.errors.values().sum::<u64>(),
            );
            saturated[i].merge(&stats);
            let took = workload.converge(deployment, CONVERGENCE).await;
            eprintln!("round {round} {name:>13}: counters exact {took:?} after the load");
            convergence[i].push(took);
            deployment.until_projection_idle().await;

            // The request path alone: the poller stopped (on DynamoDB, projection writes do not
            // queue behind one server's lock with the writer's as on the local engine).
            deployment.pause_projection(true);
            let stats = workload.run(deployment, Pace::Saturate, phase).await;
            deployment.pause_projection(false);
            eprintln!(
                "round {round} {name:>13}: request path alone {:>7.1} ops/s, p99 {:>6.1} ms",
                stats.ops_per_second(),
                stats.latency.value_at_quantile(0.99) as f64 / 1000.0,
            );
            alone[i].merge(&stats);
            convergence[i].push(workload.converge(deployment, CONVERGENCE).await);
            deployment.until_projection_idle().await;
        }
    }

    let mut designs = Vec::new();
    for (i, (deployment, workload)) in deployments.iter().enumerate() {
        let writes = deployment.writes_since(started_ms);
        let paced_writes = writes
            .iter()
            .filter(|e| paced_windows[i].iter().any(|w| w.contains(&e.at_ms)))
            .cloned()
            .collect();
        designs.push(DesignFigures::new(
            deployment,
            &workload.hot_post(),
            Phases {
                saturated: saturated[i].clone(),
                alone: alone[i].clone(),
                paced: paced[i].clone(),
                convergence: convergence[i].clone(),
            },
            writes,
            paced_writes,
        ));
    }
    let run = Run {
        designs,
        settings: format!("{args:?}"),
        shape,
        rate: args.rate,
        phase_secs: args.phase_secs,
        rounds: args.rounds,
    };
    println!("{}", run.markdown());
    if let Some(dir) = &args.report {
        run.write(dir).expect("write the report");
        eprintln!("report written to {}", dir.display());
    }
}
