//! `projector verify`: recompute every post's true like count and report drift.

use std::process::ExitCode;

use crate::cli::{Context, scan_bar};
use crate::error::Error;
use crate::verify::{DEFAULT_PAGE_SIZE, ScanSpec, Tallies, drift_table, tally};

/// Exit code when some post drifts.
pub const EXIT_DRIFT: u8 = 1;

/// Recompute every post's true like count from the base table and report drift.
///
/// Exit code 0: no drift; 1: drift; 2: error. Likes still in flight through the projector
/// count as drift: verify when the projector has caught up.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Parallel scan segments, read concurrently.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub segments: i32,
    /// Only this topic's posts.
    #[arg(long)]
    pub topic: Option<contracts::keys::TopicSlug>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Items per scan page.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub page_size: i32,
}

pub(crate) async fn run(args: VerifyArgs, context: &Context) -> Result<ExitCode, Error> {
    let spec = ScanSpec {
        table: context.table.clone(),
        segments: args.segments,
        topic: args.topic,
        page_size: Some(args.page_size),
    };
    let bar = scan_bar(context).await;
    let tallies = tally(&context.dynamo, &spec, &|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    print!("{}", render(&tallies, args.json));
    Ok(if tallies.drift().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DRIFT)
    })
}

/// The report: one JSON line, or a summary line and the drift table.
fn render(tallies: &Tallies, json: bool) -> String {
    let drift = tallies.drift();
    if json {
        let report = serde_json::json!({
            "itemsScanned": tallies.items,
            "posts": tallies.posts.len(),
            "drift": drift,
        });
        return format!("{report}\n");
    }
    let mut out = format!(
        "{} items scanned, {} posts, {} drifting\n",
        tallies.items,
        tallies.posts.len(),
        drift.len()
    );
    if !drift.is_empty() {
        out.push_str(&drift_table(&drift));
    }
    out
}
