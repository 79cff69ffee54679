//! The projector's entrypoint: the Lambda function on the table's stream when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise the operator CLI (`poll`, the local event source).

use clap::{Parser, Subcommand};
use contracts::capacity::dynamodb_client;
use contracts::config::{Endpoint, sdk_config};
use contracts::telemetry;
use indicatif::{ProgressBar, ProgressStyle};
use lambda_runtime::{LambdaEvent, service_fn};
use projector::apply::Applier;
use projector::handler::Projector;
use projector::lambda::handle_event;
use projector::poller::{Poller, PollerSettings, StartAt};
use projector::rebuild::{Phase, Rebuild, RebuildSettings};
use projector::verify::{DEFAULT_PAGE_SIZE, ScanSpec, drift_table, tally};
use serde_json::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(
    version,
    about = "Projects the table's stream into exact like counters and the likers view"
)]
struct Cli {
    /// The DynamoDB table.
    #[arg(long, env = "TABLE_NAME", global = true)]
    table: Option<String>,
    /// DynamoDB endpoint (DynamoDB Local); default: the AWS environment.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB", global = true)]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Re-feed the stream through the projector (idempotent: replaying twice changes nothing).
    ///
    /// Reads every shard from TRIM_HORIZON (the stream keeps 24 hours) until it is caught up,
    /// without touching the poller's checkpoints.
    Replay {
        /// Only records written at or after this time (RFC 3339). Stream timestamps have
        /// one-minute resolution on DynamoDB Local.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Records per batch (1-10000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        batch_size: i32,
    },
    /// Recompute every post's true like count from the base table and report drift.
    ///
    /// Exit code 0: no drift; 1: drift; 2: error. Likes still in flight through the projector
    /// count as drift: verify when the projector has caught up.
    Verify {
        /// Parallel scan segments, read concurrently.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
        segments: i32,
        /// Only this topic's posts.
        #[arg(long)]
        topic: Option<contracts::keys::TopicSlug>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Items per scan page.
        #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        page_size: i32,
    },
    /// Repair drift while writes and projection go on: count likes never counted, stamp likes
    /// missing from the view, and correct counters that stay wrong after `--settle`.
    ///
    /// Counting uses the projector's own conditional mark, and a counter is corrected only with
    /// an update conditioned on the version it observed, so it is safe next to a running
    /// projector whose lag is below `--settle`. Resumable: progress is saved in `--state`.
    Rebuild {
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
        segments: i32,
        /// Only this topic's posts and likes.
        #[arg(long)]
        topic: Option<contracts::keys::TopicSlug>,
        /// Items per scan page.
        #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        page_size: i32,
        /// Report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds a drifting counter must stay unchanged before it is corrected.
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
        /// Progress file (default `.rebuild-<table>.json`); removed when the rebuild ends.
        #[arg(long)]
        state: Option<std::path::PathBuf>,
    },
    /// Read the table's stream continuously and project it (the local event source mapping).
    Poll {
        /// Where to start shards without a checkpoint.
        #[arg(long, value_enum, default_value = "trim-horizon")]
        start_at: StartAt,
        /// Records per batch (1-10000, as Lambda's; records are gathered over several reads).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        batch_size: i32,
        /// Milliseconds to gather records into a batch once some arrived (Lambda's batching
        /// window; the deployed mapping uses 1,000).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300_000))]
        batch_window_ms: u64,
    },
}

fn main() -> Result<(), BoxError> {
    let cli = match std::env::var_os("AWS_LAMBDA_RUNTIME_API") {
        Some(_) => None,
        None => Some(Cli::parse()),
    };
    // Projecting waits on DynamoDB, so one thread does it: a 128 MB Lambda has a fraction of a
    // core, and one thread keeps one allocator arena (a batch's records, freed, stay with the
    // arena that held them). Verify and rebuild parse scan pages on every core.
    let scans = matches!(
        cli.as_ref().map(|c| &c.command),
        Some(Command::Verify { .. } | Command::Rebuild { .. })
    );
    let mut runtime = if scans {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime.enable_all().build()?.block_on(async move {
        match cli {
            None => run_lambda().await,
            Some(cli) => run_cli(cli).await,
        }
    })
}

/// The operator CLI and the local poller.
async fn run_cli(cli: Cli) -> Result<(), BoxError> {
    telemetry::init(false);
    let table = cli.table.ok_or("--table (or TABLE_NAME) is required")?;
    let config = sdk_config(&Endpoint {
        url: cli.endpoint_url,
    })
    .await;
    let dynamo = dynamodb_client(&config, "projector");
    let projector = Projector::new(Applier::new(dynamo.clone(), &table));
    match cli.command {
        Command::Replay { since, batch_size } => {
            let mut settings = PollerSettings::new(&table);
            settings.checkpoints = false;
            settings.since = since;
            settings.batch_size = batch_size;
            let streams = aws_sdk_dynamodbstreams::Client::new(&config);
            let mut poller = Poller::new(projector, dynamo, streams, settings).await?;
            let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
                "{spinner} {pos} records replayed ({per_sec}) {elapsed}",
            )?);
            let read = poller.catch_up(&|n| bar.inc(n)).await?;
            bar.finish();
            println!("replayed {read} records from {}", poller.stream_arn());
        }
        Command::Verify {
            segments,
            topic,
            json,
            page_size,
        } => {
            let spec = ScanSpec {
                table: table.clone(),
                segments,
                topic,
                page_size: Some(page_size),
            };
            let bar = scan_bar(&dynamo, &table).await;
            let tallies = match tally(&dynamo, &spec, &|n| bar.inc(n)).await {
                Ok(tallies) => tallies,
                Err(e) => {
                    eprintln!("verify failed: {e}");
                    std::process::exit(2);
                }
            };
            bar.finish_and_clear();
            let drift = tallies.drift();
            if json {
                let report = serde_json::json!({
                    "itemsScanned": tallies.items,
                    "posts": tallies.posts.len(),
                    "drift": drift,
                });
                println!("{report}");
            } else {
                println!(
                    "{} items scanned, {} posts, {} drifting",
                    tallies.items,
                    tallies.posts.len(),
                    drift.len()
                );
                if !drift.is_empty() {
                    print!("{}", drift_table(&drift));
                }
            }
            std::process::exit(if drift.is_empty() { 0 } else { 1 });
        }
        Command::Rebuild {
            segments,
            topic,
            page_size,
            dry_run,
            settle,
            state,
        } => {
            let settings = RebuildSettings {
                scan: ScanSpec {
                    table: table.clone(),
                    segments,
                    topic,
                    page_size: Some(page_size),
                },
                dry_run,
                settle: std::time::Duration::from_secs_f64(settle.max(0.0)),
                state_path: state.unwrap_or_else(|| format!(".rebuild-{table}.json").into()),
                rounds: 5,
            };
            let bar = scan_bar(&dynamo, &table).await;
            let summary = Rebuild::new(dynamo, settings)
                .run(&|phase, n| match phase {
                    Phase::Scan => bar.inc(n),
                    Phase::Check => bar.set_message(format!("checking counters ({n})")),
                })
                .await?;
            bar.finish_and_clear();
            let verb = if dry_run { "would be" } else { "were" };
            println!(
                "{} items scanned; {} likes {verb} counted, {} stamped; {} posts checked, {} counters {verb} corrected, {} still moving",
                summary.items_scanned,
                summary.likes_counted,
                summary.likes_stamped,
                summary.posts_checked,
                summary.counters_corrected,
                summary.posts_busy
            );
        }
        Command::Poll {
            start_at,
            batch_size,
            batch_window_ms,
        } => {
            let mut settings = PollerSettings::new(&table);
            settings.start_at = start_at;
            settings.batch_size = batch_size;
            settings.batch_window = std::time::Duration::from_millis(batch_window_ms);
            let streams = aws_sdk_dynamodbstreams::Client::new(&config);
            let mut poller = Poller::new(projector, dynamo, streams, settings).await?;
            tracing::info!(stream = poller.stream_arn(), "polling");
            tokio::select! {
                _ = poller.run() => {}
                _ = tokio::signal::ctrl_c() => tracing::info!("stopped"),
            }
        }
    }
    Ok(())
}

/// A progress bar over the table's (approximate) item count, with ETA.
async fn scan_bar(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> ProgressBar {
    let items = dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|t| t.table?.item_count)
        .unwrap_or(0);
    let style =
        ProgressStyle::with_template("{bar:40} {pos}/{len} items ({per_sec}, ETA {eta}) {msg}")
            .expect("the template is valid");
    ProgressBar::new(items.max(0) as u64).with_style(style)
}

/// Lambda: configuration from the environment; see [`projector::lambda`].
async fn run_lambda() -> Result<(), BoxError> {
    telemetry::init(true);
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let config = sdk_config(&Endpoint::default()).await;
    let projector = Projector::new(Applier::new(dynamodb_client(&config, "projector"), table));
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle_event(projector, &event.payload)
            .await
            .map_err(BoxError::from)
    }))
    .await
}
