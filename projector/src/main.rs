//! The projector's entrypoint: the Lambda function on the table's stream when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise the operator CLI (see [`projector::cli`]).

use std::process::ExitCode;

use clap::Parser;
use contracts::dynamo::{Endpoint, sdk_config};
use contracts::telemetry;
use projector::apply::Applier;
use projector::cli::{self, Cli, plain_client};
use projector::handler::Projector;
use projector::lambda::{self, LambdaArgs};

fn main() -> ExitCode {
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // Projecting waits on DynamoDB, so one thread does it: a 128 MB Lambda has a fraction of a
    // core, and one thread keeps one allocator arena (a batch's records, freed, stay with the
    // arena that held them). Verify and rebuild parse scan pages on every core.
    let (cli, lambda_args) = if lambda {
        (None, Some(LambdaArgs::parse_from(["projector"])))
    } else {
        (Some(Cli::parse()), None)
    };
    let mut runtime = if cli.as_ref().is_some_and(|c| c.command.scans()) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("projector: cannot start the runtime: {e}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    runtime.block_on(async move {
        telemetry::init(lambda);
        match (cli, lambda_args) {
            (Some(cli), _) => cli::run(cli, plain_client).await,
            (None, Some(args)) => {
                let config = sdk_config(&Endpoint::default()).await;
                let projector = Projector::new(Applier::new(plain_client(&config), args.table))
                    .in_stage(args.stage);
                match lambda::run(projector).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "the function stopped");
                        ExitCode::from(cli::EXIT_ERROR)
                    }
                }
            }
            (None, None) => unreachable!("one of the two is parsed"),
        }
    })
}
