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
    /// Secret that signs page cursors. Locally it defaults to a random key per process.
    #[arg(long, env = "CURSOR_SECRET", hide_env_values = true)]
    pub cursor_secret: Option<String>,
    /// A Secrets Manager secret holding the cursor secret, read once at start (how the
    /// deployed function gets it: every execution environment must sign with the same key).
    #[arg(long, env = "CURSOR_SECRET_ARN", conflicts_with = "cursor_secret")]
    pub cursor_secret_arn: Option<String>,
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
    /// The settings shared with the Lambda function.
    #[command(flatten)]
    pub app: AppArgs,
    /// DynamoDB endpoint (the local engine); default: the AWS environment.
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
    /// The settings shared with the local server.
    #[command(flatten)]
    pub app: AppArgs,
}

/// Builds the DynamoDB client from the SDK configuration (the benchmark's logs its writes).
pub type MakeClient = fn(&SdkConfig) -> aws_sdk_dynamodb::Client;

/// The plain client.
pub fn plain_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// Whether a process may sign cursors with a key of its own when none is configured: the
/// local server may (its cursors then last as long as the process), a Lambda function may not
/// (each execution environment would refuse the others' cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSecret {
    /// Sign with a random key of the process's own.
    RandomKey,
    /// Refuse to start.
    Refuse,
}

/// The cursor codec: the secret given, the one stored in Secrets Manager, or (locally) a
/// random key.
pub async fn cursor_codec(
    args: &AppArgs,
    config: &SdkConfig,
    missing: MissingSecret,
) -> Result<CursorCodec, Error> {
    if let Some(arn) = &args.cursor_secret_arn {
        return Ok(CursorCodec::new(read_secret(config, arn).await?));
    }
    match (&args.cursor_secret, missing) {
        (Some(secret), _) if !secret.is_empty() => Ok(CursorCodec::new(secret.clone())),
        (_, MissingSecret::RandomKey) => {
            tracing::warn!("no CURSOR_SECRET: cursors are valid for this process only");
            Ok(CursorCodec::new(rand::random::<[u8; 32]>().to_vec()))
        }
        (_, MissingSecret::Refuse) => Err(Error::Start(
            "no cursor secret: set CURSOR_SECRET_ARN (or CURSOR_SECRET)".into(),
        )),
    }
}

/// The secret string stored at `arn`.
async fn read_secret(config: &SdkConfig, arn: &str) -> Result<String, Error> {
    let answer = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("unreachable")
                .to_owned();
            Error::Start(format!("read the cursor secret {arn}: {code}"))
        })?;
    match answer.secret_string {
        Some(secret) if !secret.is_empty() => Ok(secret),
        _ => Err(Error::Start(format!("the cursor secret {arn} is empty"))),
    }
}

fn state(
    args: AppArgs,
    client: aws_sdk_dynamodb::Client,
    identity: IdentitySource,
    cursors: CursorCodec,
) -> AppState {
    AppState::new(
        Store::new(client, &args.table),
        args.mode,
        identity,
        cursors,
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
    let cursors = cursor_codec(&args.app, &config, MissingSecret::RandomKey).await?;
    let state = state(args.app, client, identity, cursors);
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
    let cursors = cursor_codec(&args.app, &config, MissingSecret::Refuse).await?;
    let state = state(
        args.app,
        make_client(&config),
        IdentitySource::Authorizer,
        cursors,
    );
    lambda_http::run(router(state))
        .await
        .map_err(|e| Error::Start(e.to_string()))
}
