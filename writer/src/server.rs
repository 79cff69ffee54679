//! The two ways the writer runs, with their configuration: the local HTTP server and the
//! Lambda function behind API Gateway. Both parse their settings through the same clap
//! arguments ([`AppArgs`]; the Lambda from its environment), so an invalid value stops either
//! at start.

use std::net::SocketAddr;

use aws_config::SdkConfig;
use contracts::dynamo::{Endpoint, ensure_table, sdk_config};

use crate::cache::DEFAULT_CAPACITY;
use crate::cursor::CursorCodec;
use crate::error::Error;
use crate::identity::IdentitySource;
use crate::store::Store;
use crate::{AppState, WriteMode, router};

/// Settings of the API whichever way it runs.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// The DynamoDB table.
    #[arg(long = "table", env = "TABLE_NAME")]
    pub table: String,
    /// How likes are counted.
    #[arg(long, env = "WRITE_MODE", value_enum, default_value = "stream")]
    pub mode: WriteMode,
    /// Secret that signs page cursors (default: random per process).
    #[arg(long, env = "CURSOR_SECRET", hide_env_values = true)]
    pub cursor_secret: Option<String>,
    /// Posts and topics kept in the metadata cache.
    #[arg(long, env = "CACHE_CAPACITY", default_value_t = DEFAULT_CAPACITY)]
    pub cache_capacity: usize,
}

/// Serve the API over HTTP (local development and tests).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub app: AppArgs,
    /// DynamoDB endpoint (DynamoDB Local); default: the AWS environment.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    pub endpoint_url: Option<String>,
    /// Trust the `x-user-id` header as the caller. Local development only.
    #[arg(long)]
    pub dev_identity: bool,
    /// Create the table first if it does not exist.
    #[arg(long)]
    pub create_table: bool,
}

/// The Lambda function's settings, from its environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "The writer as a Lambda function behind API Gateway")]
pub struct LambdaArgs {
    #[command(flatten)]
    pub app: AppArgs,
}

/// Builds the DynamoDB client from the SDK configuration (the benchmark's logs its writes).
pub type MakeClient = fn(&SdkConfig) -> aws_sdk_dynamodb::Client;

/// The plain client.
pub fn plain_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

fn cursor_codec(secret: Option<String>) -> CursorCodec {
    match secret {
        Some(secret) if !secret.is_empty() => CursorCodec::new(secret),
        _ => {
            tracing::warn!("no CURSOR_SECRET: cursors are valid for this process only");
            CursorCodec::new(rand::random::<[u8; 32]>().to_vec())
        }
    }
}

fn state(args: AppArgs, client: aws_sdk_dynamodb::Client, identity: IdentitySource) -> AppState {
    AppState::new(
        Store::new(client, &args.table),
        args.mode,
        identity,
        cursor_codec(args.cursor_secret),
        args.cache_capacity,
    )
}

/// Serve over HTTP until Ctrl-C or SIGTERM, then finish the requests under way.
pub async fn serve(args: ServeArgs, make_client: MakeClient) -> Result<(), Error> {
    let config = sdk_config(&Endpoint {
        url: args.endpoint_url.clone(),
    })
    .await;
    let client = make_client(&config);
    if args.create_table {
        ensure_table(&client, &args.app.table)
            .await
            .map_err(|e| Error::Start(format!("create the table: {e}")))?;
    }
    let identity = if args.dev_identity {
        tracing::warn!("dev identity: the x-user-id header is trusted as the caller");
        IdentitySource::DevHeader
    } else {
        IdentitySource::Authorizer
    };
    let (table, mode) = (args.app.table.clone(), args.app.mode);
    let state = state(args.app, client, identity);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Start(format!("listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Start(e.to_string()))?;
    tracing::info!(%addr, %table, ?mode, "writer listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Error::Start(e.to_string()))
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}

/// The Lambda function: identity from the JWT authorizer only (no setting changes that).
pub async fn run_lambda(args: LambdaArgs, make_client: MakeClient) -> Result<(), Error> {
    let config = sdk_config(&Endpoint::default()).await;
    let state = state(args.app, make_client(&config), IdentitySource::Authorizer);
    lambda_http::run(router(state))
        .await
        .map_err(|e| Error::Start(e.to_string()))
}
