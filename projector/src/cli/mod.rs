//! The operator CLI: one module per command, each with its arguments, a `run` that returns
//! the process's exit code, and its own rendering. `main.rs` only parses and dispatches.

pub mod poll;
pub mod rebuild;
pub mod replay;
pub mod verify;

use std::process::ExitCode;

use aws_config::SdkConfig;
use clap::{Parser, Subcommand};
use contracts::dynamo::{Endpoint, sdk_config};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Error;

/// The projector's command line (the operator commands; without one, the Lambda function).
#[derive(Debug, Parser)]
#[command(
    name = "projector",
    version,
    about = "Projects the table's stream into exact like counters and the likers view"
)]
pub struct Cli {
    /// The DynamoDB table.
    #[arg(long, env = "TABLE_NAME", global = true)]
    pub table: Option<String>,
    /// DynamoDB endpoint (the local engine); default: the AWS environment.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB", global = true)]
    pub endpoint_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator commands. (Each variant's help is its arguments' own doc comment, which clap
/// reads when the variant has none.)
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Replay(replay::ReplayArgs),
    Verify(verify::VerifyArgs),
    Rebuild(rebuild::RebuildArgs),
    Poll(poll::PollArgs),
}

impl Command {
    /// Scans parse pages on every core; the others wait on DynamoDB and need one thread.
    pub fn scans(&self) -> bool {
        matches!(self, Command::Verify(_) | Command::Rebuild(_))
    }
}

/// What every command works on.
pub(crate) struct Context {
    pub table: String,
    pub config: SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
}

/// Builds the DynamoDB client from the SDK configuration (the benchmark's logs its writes).
pub type MakeClient = fn(&SdkConfig) -> aws_sdk_dynamodb::Client;

/// The plain client.
pub fn plain_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// Exit code of a command that failed with an error (verify's drift is 1).
pub const EXIT_ERROR: u8 = 2;

/// Run a parsed command line.
pub async fn run(cli: Cli, make_client: MakeClient) -> ExitCode {
    match dispatch(cli, make_client).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("projector: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn dispatch(cli: Cli, make_client: MakeClient) -> Result<ExitCode, Error> {
    let table = cli
        .table
        .ok_or_else(|| Error::Usage("--table (or TABLE_NAME) is required".into()))?;
    let config = sdk_config(&Endpoint {
        url: cli.endpoint_url,
    })
    .await;
    let dynamo = make_client(&config);
    let context = Context {
        table,
        config,
        dynamo,
    };
    match cli.command {
        Command::Replay(args) => replay::run(args, &context).await,
        Command::Verify(args) => verify::run(args, &context).await,
        Command::Rebuild(args) => rebuild::run(args, &context).await,
        Command::Poll(args) => poll::run(args, &context).await,
    }
}

/// A progress bar over the table's (approximate) item count, with ETA.
pub(crate) async fn scan_bar(context: &Context) -> ProgressBar {
    let items = context
        .dynamo
        .describe_table()
        .table_name(&context.table)
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

/// `--batch-size`: records per batch, 1-10000 as Lambda's.
pub(crate) fn batch_size(text: &str) -> Result<i32, String> {
    match text.parse::<i32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("{text}: expected 1-10000")),
    }
}
