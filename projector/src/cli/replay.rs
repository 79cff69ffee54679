//! `projector replay`: re-feed the stream through the projector. Idempotent: replaying twice
//! changes nothing.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::apply::Applier;
use crate::cli::{Context, batch_size};
use crate::error::Error;
use crate::poller::Poller;

/// Re-feed the stream through the projector (idempotent: replaying twice changes nothing).
///
/// Reads every shard from TRIM_HORIZON (the stream keeps 24 hours) until it is caught up,
/// without touching the poller's checkpoints. Exit code 0: everything asked for was replayed;
/// 1: some of it was no longer in the stream (then verify and rebuild); 2: error.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Only records written at or after this time (RFC 3339). Stream timestamps are whole
    /// seconds on the local engine (DynamoDB's too).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Records per batch (1-10000).
    #[arg(long, default_value_t = 1000, value_parser = batch_size)]
    pub batch_size: i32,
}

pub(crate) async fn run(args: ReplayArgs, context: &Context) -> Result<ExitCode, Error> {
    let streams = aws_sdk_dynamodbstreams::Client::new(&context.config);
    let applier = Applier::new(context.dynamo.clone(), &context.table);
    let mut poller = Poller::replay(
        applier,
        context.dynamo.clone(),
        streams,
        &context.table,
        args.since,
        args.batch_size,
    )
    .await?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} records replayed ({per_sec}) {elapsed}")
            .expect("the template is valid"),
    );
    let read = poller.catch_up(&|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    let (report, complete) = verdict(read, poller.trims(), args.since, chrono::Utc::now());
    println!("{report} (stream {})", poller.stream_arn());
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPLETE)
    })
}

/// Exit code of a replay that could not read all it was asked to.
pub const EXIT_INCOMPLETE: u8 = 1;

/// How long the stream keeps records.
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What a replay did, and whether it read everything it was asked to: not when the stream had
/// trimmed records it had to read, or when `--since` lies before what the stream keeps.
fn verdict(
    read: u64,
    trims: usize,
    since: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> (String, bool) {
    let mut report = format!("replayed {read} records");
    let too_old = since.is_some_and(|since| since < now - RETENTION);
    if trims > 0 || too_old {
        report.push_str(
            "; records were no longer in the stream (it keeps 24 hours), so some changes were \
             not replayed: run `projector verify`, then `projector rebuild`",
        );
        return (report, false);
    }
    (report, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_that_could_not_read_everything_says_how_to_recover_and_fails() {
        let now = chrono::Utc::now();
        assert_eq!(
            verdict(12, 0, None, now),
            ("replayed 12 records".into(), true)
        );
        let recent = Some(now - chrono::TimeDelta::hours(2));
        assert!(verdict(12, 0, recent, now).1);
        let (report, complete) = verdict(3, 1, None, now);
        assert!(
            !complete && report.contains("verify") && report.contains("rebuild"),
            "{report}"
        );
        let stale = Some(now - chrono::TimeDelta::hours(30));
        assert!(
            !verdict(3, 0, stale, now).1,
            "a range older than the stream's retention"
        );
    }
}
