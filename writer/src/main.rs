//! The writer's entrypoint: a Lambda function behind API Gateway when `AWS_LAMBDA_RUNTIME_API`
//! is set, otherwise the local HTTP server (or a small CLI). See [`writer::server`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use contracts::telemetry;
use writer::openapi;
use writer::server::{self, LambdaArgs, ServeArgs, plain_client};

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

#[tokio::main]
async fn main() -> ExitCode {
    let result = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let args = LambdaArgs::parse_from(["writer"]);
        telemetry::init(true);
        server::run_lambda(args, plain_client).await
    } else {
        telemetry::init(false);
        match Cli::parse().command {
            Command::Openapi => {
                print!("{}", openapi::document());
                Ok(())
            }
            Command::Serve(args) => server::serve(args, plain_client).await,
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the writer stopped");
            eprintln!("writer: {e}");
            ExitCode::FAILURE
        }
    }
}
