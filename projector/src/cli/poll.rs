//! `projector poll`: read the table's stream continuously and project it (the local event
//! source mapping). Stops on Ctrl-C or SIGTERM, after checkpointing the step under way.

use std::process::ExitCode;
use std::time::Duration;

use crate::apply::Applier;
use crate::cli::{Context, batch_size};
use crate::error::Error;
use crate::handler::Projector;
use crate::poller::{Poller, PollerSettings, StartAt};

/// Read the table's stream continuously and project it (the local event source mapping).
#[derive(Debug, Clone, clap::Args)]
pub struct PollArgs {
    /// Where to start the shards there at the start that have no checkpoint. As Lambda's
    /// LATEST: shards found later (a rotation's children) are read from their first record,
    /// and nothing written after the start is skipped.
    #[arg(long, value_enum, default_value = "trim-horizon")]
    pub start_at: StartAt,
    /// Records per batch (1-10000, as Lambda's; records are gathered over several reads).
    #[arg(long, default_value_t = 1000, value_parser = batch_size)]
    pub batch_size: i32,
    /// Milliseconds to gather records into a batch once some arrived (Lambda's batching
    /// window; the deployed mapping uses 1,000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pub batch_window_ms: u64,
}

pub(crate) async fn run(args: PollArgs, context: &Context) -> Result<ExitCode, Error> {
    let mut settings = PollerSettings::new(&context.table);
    settings.start_at = args.start_at;
    settings.batch_size = args.batch_size;
    settings.batch_window = Duration::from_millis(args.batch_window_ms);
    let projector = Projector::new(Applier::new(context.dynamo.clone(), &context.table));
    let streams = aws_sdk_dynamodbstreams::Client::new(&context.config);
    let mut poller = Poller::new(projector, context.dynamo.clone(), streams, settings).await?;
    tracing::info!(stream = poller.stream_arn(), "polling");
    poller.run_until(shutdown()).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
