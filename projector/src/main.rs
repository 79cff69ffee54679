//! The projector's entrypoint: the Lambda function on the table's stream when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise the operator CLI (`poll`, the local event source).

use clap::{Parser, Subcommand};
use contracts::config::{Endpoint, sdk_config};
use contracts::telemetry;
use lambda_runtime::{LambdaEvent, service_fn};
use projector::apply::Applier;
use projector::handler::Projector;
use projector::lambda::handle_event;
use projector::poller::{Poller, PollerSettings, StartAt};
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
    /// Read the table's stream continuously and project it (the local event source mapping).
    Poll {
        /// Where to start shards without a checkpoint.
        #[arg(long, value_enum, default_value = "trim-horizon")]
        start_at: StartAt,
        /// Records per batch (1-1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
        batch_size: i32,
    },
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_lambda().await;
    }
    telemetry::init(false);
    let cli = Cli::parse();
    let table = cli.table.ok_or("--table (or TABLE_NAME) is required")?;
    let config = sdk_config(&Endpoint {
        url: cli.endpoint_url,
    })
    .await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let projector = Projector::new(Applier::new(dynamo.clone(), &table));
    match cli.command {
        Command::Poll {
            start_at,
            batch_size,
        } => {
            let mut settings = PollerSettings::new(&table);
            settings.start_at = start_at;
            settings.batch_size = batch_size;
            let streams = aws_sdk_dynamodbstreams::Client::new(&config);
            let mut poller = Poller::new(projector, dynamo, streams, settings).await?;
            tracing::info!(stream = poller.stream_arn(), "polling");
            tokio::select! {
                result = poller.run() => result?,
                _ = tokio::signal::ctrl_c() => tracing::info!("stopped"),
            }
        }
    }
    Ok(())
}

/// Lambda: configuration from the environment; see [`projector::lambda`].
async fn run_lambda() -> Result<(), BoxError> {
    telemetry::init(true);
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let config = sdk_config(&Endpoint::default()).await;
    let projector = Projector::new(Applier::new(aws_sdk_dynamodb::Client::new(&config), table));
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle_event(projector, &event.payload)
            .await
            .map_err(BoxError::from)
    }))
    .await
}
