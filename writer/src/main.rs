//! The writer's entrypoint: a Lambda function behind API Gateway when `AWS_LAMBDA_RUNTIME_API`
//! is set, otherwise the local HTTP server (or a small CLI).

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use contracts::capacity::dynamodb_client;
use contracts::config::{Endpoint, sdk_config};
use contracts::telemetry;
use writer::cache::DEFAULT_CAPACITY;
use writer::cursor::CursorCodec;
use writer::identity::IdentitySource;
use writer::store::Store;
use writer::{AppState, WriteMode, openapi, router};

#[derive(Parser)]
#[command(
    version,
    about = "The publishing API's writer: append-only HTTP API on DynamoDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API over HTTP (local development and tests).
    Serve(ServeArgs),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The DynamoDB table.
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    /// DynamoDB endpoint (DynamoDB Local); default: the AWS environment.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    endpoint_url: Option<String>,
    /// How likes are counted.
    #[arg(long, env = "WRITE_MODE", value_enum, default_value = "stream")]
    mode: WriteMode,
    /// Trust the `x-user-id` header as the caller. Local development only.
    #[arg(long)]
    dev_identity: bool,
    /// Create the table first if it does not exist.
    #[arg(long)]
    create_table: bool,
    /// Secret that signs page cursors (default: random per process).
    #[arg(long, env = "CURSOR_SECRET", hide_env_values = true)]
    cursor_secret: Option<String>,
    /// Posts and topics kept in the metadata cache.
    #[arg(long, env = "CACHE_CAPACITY", default_value_t = DEFAULT_CAPACITY)]
    cache_capacity: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn cursor_codec(secret: Option<String>) -> CursorCodec {
    match secret {
        Some(secret) if !secret.is_empty() => CursorCodec::new(secret),
        _ => {
            tracing::warn!("no CURSOR_SECRET: cursors are valid for this process only");
            CursorCodec::new(rand::random::<[u8; 32]>().to_vec())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_lambda().await;
    }
    telemetry::init(false);
    match Cli::parse().command {
        Command::Openapi => {
            print!("{}", openapi::document());
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
    }
}

/// Lambda: configuration from the environment, identity from the JWT authorizer only.
async fn run_lambda() -> Result<(), BoxError> {
    telemetry::init(true);
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let mode = match std::env::var("WRITE_MODE").as_deref() {
        Ok("transactional") => WriteMode::Transactional,
        _ => WriteMode::Stream,
    };
    let config = sdk_config(&Endpoint::default()).await;
    let state = AppState::new(
        Store::new(dynamodb_client(&config, "writer"), table),
        mode,
        IdentitySource::Authorizer,
        cursor_codec(std::env::var("CURSOR_SECRET").ok()),
        DEFAULT_CAPACITY,
    );
    lambda_http::run(router(state)).await
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let config = sdk_config(&Endpoint {
        url: args.endpoint_url.clone(),
    })
    .await;
    let client = dynamodb_client(&config, "writer");
    if args.create_table {
        contracts::table::ensure_table(&client, &args.table).await?;
    }
    let identity = if args.dev_identity {
        tracing::warn!("dev identity: the x-user-id header is trusted as the caller");
        IdentitySource::DevHeader
    } else {
        IdentitySource::Authorizer
    };
    let state = AppState::new(
        Store::new(client, &args.table),
        args.mode,
        identity,
        cursor_codec(args.cursor_secret),
        args.cache_capacity,
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, table = %args.table, mode = ?args.mode, "writer listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
