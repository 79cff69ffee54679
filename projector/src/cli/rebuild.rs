//! `projector rebuild`: repair drift while writes and projection go on.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Context, scan_bar};
use crate::error::Error;
use crate::rebuild::{Phase, ROUNDS, Rebuild, RebuildSettings, SETTLE, Summary};
use crate::verify::{DEFAULT_PAGE_SIZE, ScanSpec};

/// Repair drift while writes and projection go on: replay what the stream still holds, count
/// likes never counted, stamp likes missing from the view, fold pending deltas, and correct
/// counters that stay wrong after `--settle`. Exit 0: done; 1: some posts kept moving and were
/// neither found fine nor corrected (named on stderr; run it again); 2: error.
///
/// The replay comes first, so that every change still in the stream is applied (an unlike with
/// its tombstone) before a counter is recounted: a replay of the same records afterwards
/// changes nothing, whatever the order an operator runs them in. Counting uses the projector's
/// own conditional mark, and a counter is corrected only with an update conditioned on the
/// version it observed, after a second look for which the stream is replayed to its end again
/// (what was in flight at the first look is projected by then, and shown by GSI1 after
/// `--settle` more): safe next to a running projector whatever its lag. Resumable: progress
/// is saved in `--state`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Parallel scan segments.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub segments: i32,
    /// Only this topic's posts and likes.
    #[arg(long)]
    pub topic: Option<contracts::keys::TopicSlug>,
    /// Items per scan page.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub page_size: i32,
    /// Report what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds waited before the replay ahead of a second look at a drifting counter, and again
    /// after it: must cover the stream's delay in showing a write and GSI1's (each about a
    /// second; raise it while GSI1 is throttled).
    #[arg(long, default_value_t = SETTLE.as_secs_f64())]
    pub settle: f64,
    /// Progress file (default `.rebuild-<table>.json`); removed when the rebuild ends.
    #[arg(long)]
    pub state: Option<std::path::PathBuf>,
}

pub(crate) async fn run(args: RebuildArgs, context: &Context) -> Result<ExitCode, Error> {
    let table = &context.table;
    let settings = RebuildSettings {
        scan: ScanSpec {
            table: table.clone(),
            segments: args.segments,
            topic: args.topic,
            page_size: Some(args.page_size),
        },
        dry_run: args.dry_run,
        settle: Duration::from_secs_f64(args.settle.max(0.0)),
        state_path: args
            .state
            .unwrap_or_else(|| format!(".rebuild-{table}.json").into()),
        rounds: ROUNDS,
    };
    let bar = scan_bar(context).await;
    let streams = aws_sdk_dynamodbstreams::Client::new(&context.config);
    let replayed = std::sync::atomic::AtomicU64::new(0);
    let summary = Rebuild::new(context.dynamo.clone(), streams, settings)
        .run(&|phase, n| match phase {
            Phase::Replay => {
                let so_far = replayed.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                bar.set_message(format!("{so_far} records replayed"));
            }
            Phase::Scan => bar.inc(n),
            Phase::Check => bar.set_message(format!("checking counters ({n})")),
        })
        .await?;
    bar.finish_and_clear();
    println!("{}", render(&summary, args.dry_run));
    if summary.busy_posts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // A post that kept moving was neither found fine nor corrected: say which, and that a
    // rerun (once its writes calm down) is needed.
    eprintln!(
        "still moving, not checked to the end (run rebuild again): {}",
        summary.busy_posts.join(", ")
    );
    Ok(ExitCode::from(EXIT_REPAIRS_LEFT))
}

/// Exit code of a rebuild that left posts it could not check to the end (2 is an error).
pub const EXIT_REPAIRS_LEFT: u8 = 1;

fn render(summary: &Summary, dry_run: bool) -> String {
    let verb = if dry_run { "would be" } else { "were" };
    format!(
        "{} records replayed; {} items scanned; {} likes {verb} counted, {} stamped; {} posts checked, {} counters {verb} corrected, {} still moving",
        summary.records_replayed,
        summary.items_scanned,
        summary.likes_counted,
        summary.likes_stamped,
        summary.posts_checked,
        summary.counters_corrected,
        summary.posts_busy
    )
}
