//! The Lambda function: a DynamoDB stream event in, a partial batch response out.
//!
//! The event is taken as JSON and split into records here, so one malformed record is
//! isolated on its own instead of failing the event's deserialization as a whole.

use aws_lambda_events::streams::DynamoDbEventResponse;
use serde_json::Value;

use crate::handler::{Projector, emf_line};

/// Why an invocation failed as a whole (Lambda then retries or bisects the batch).
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("the event has no Records array")]
    NoRecords,
    #[error(transparent)]
    Unreportable(#[from] crate::handler::UnreportableFailure),
}

/// Handle one stream event; print the batch's metrics as an EMF line for CloudWatch.
pub async fn handle_event(
    projector: &Projector,
    event: &Value,
) -> Result<DynamoDbEventResponse, InvocationError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(InvocationError::NoRecords)?;
    let report = projector.handle(records).await?;
    println!("{}", emf_line(&report.metrics, chrono::Utc::now()));
    Ok(report.response())
}
