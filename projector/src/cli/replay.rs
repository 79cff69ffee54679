//! `projector replay`: re-feed the stream through the projector. Idempotent: replaying twice
//! changes nothing.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::apply::Applier;
use crate::cli::{Context, batch_size};
use crate::error::Error;
use crate::handler::Projector;
use crate::poller::{Poller, PollerSettings};

/// Re-feed the stream through the projector (idempotent: replaying twice changes nothing).
///
/// Reads every shard from TRIM_HORIZON (the stream keeps 24 hours) until it is caught up,
/// without touching the poller's checkpoints.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Only records written at or after this time (RFC 3339). Stream timestamps have
    /// one-minute resolution on DynamoDB Local.
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Records per batch (1-10000).
    #[arg(long, default_value_t = 1000, value_parser = batch_size)]
    pub batch_size: i32,
}

pub(crate) async fn run(args: ReplayArgs, context: &Context) -> Result<ExitCode, Error> {
    let mut settings = PollerSettings::new(&context.table);
    settings.checkpoints = false;
    settings.since = args.since;
    settings.batch_size = args.batch_size;
    let projector = Projector::new(Applier::new(context.dynamo.clone(), &context.table));
    let streams = aws_sdk_dynamodbstreams::Client::new(&context.config);
    let mut poller = Poller::new(projector, context.dynamo.clone(), streams, settings).await?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} records replayed ({per_sec}) {elapsed}")
            .expect("the template is valid"),
    );
    let read = poller.catch_up(&|n| bar.inc(n)).await?;
    bar.finish();
    println!("replayed {read} records from {}", poller.stream_arn());
    Ok(ExitCode::SUCCESS)
}
