//! The Lambda function: a DynamoDB stream event in, a partial batch response out.
//!
//! The event is taken as JSON and split into records here, so one malformed record is
//! quarantined on its own instead of failing the event's deserialization as a whole.

use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::deadline::Deadline;
use crate::error::Error;
use crate::handler::{Projector, emf_line};

/// The function's configuration, from its environment (parsed like the CLI's arguments: a
/// missing or invalid value stops it at start).
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "The projector as a Lambda function on the table's stream")]
pub struct LambdaArgs {
    /// The DynamoDB table.
    #[arg(long, env = "TABLE_NAME")]
    pub table: String,
    /// The deployment stage (`dev`, `prod`): the `Stage` dimension of every metric, so that
    /// stages sharing an account keep their alarms and dashboards apart.
    #[arg(long, env = "STAGE")]
    pub stage: String,
}

/// Handle one stream event by `deadline`; print the batch's metrics as an EMF line for
/// CloudWatch.
pub async fn handle_event(
    projector: &Projector,
    event: &Value,
    deadline: Deadline,
) -> Result<DynamoDbEventResponse, Error> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(Error::NoRecords)?;
    let report = projector.handle_before(records, deadline).await?;
    println!(
        "{}",
        emf_line(projector.stage(), &report.metrics, chrono::Utc::now())
    );
    Ok(report.response())
}

/// Serve invocations until the runtime stops.
pub async fn run(projector: Projector) -> Result<(), Error> {
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::lambda(event.context.deadline);
        handle_event(projector, &event.payload, deadline).await
    }))
    .await
    .map_err(|e| Error::Runtime(e.to_string()))
}
