//! One batch of stream records in, a partial batch response out: the function the Lambda, the
//! local poller and replay all call.
//!
//! Records arrive as JSON, one value each, so a malformed record is decoded (and quarantined) on
//! its own instead of failing the whole event. The response names the lowest record that was
//! not applied: Lambda resumes there and re-sends everything after it, which is safe because
//! applying is idempotent.

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use contracts::change::{Decoded, Undecodable, decode_json};
use serde_json::Value;

use crate::apply::{AppliedBatch, Applier, Outcome};
use crate::deadline::Deadline;
use crate::error::Error;

/// Counts for one batch, logged as structured fields and, in Lambda, as CloudWatch metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchMetrics {
    /// Records in the batch.
    pub records: usize,
    /// Records whose change is now in the counters and views.
    pub applied: usize,
    /// Already applied by an earlier delivery, or overtaken by a later change.
    pub redundant: usize,
    /// Records that need no projection.
    pub ignored: usize,
    /// Undecodable records put into quarantine.
    pub quarantined: usize,
    /// Records to deliver again.
    pub failed: usize,
    /// Counting transactions DynamoDB cancelled (billed in full, then retried).
    pub cancelled: usize,
    /// Now minus the oldest record's `ApproximateCreationDateTime`, in milliseconds.
    pub lag_ms: i64,
}

/// What became of a batch.
#[derive(Debug, Clone)]
pub struct BatchReport {
    /// Each record's outcome, in batch order.
    pub outcomes: Vec<Outcome>,
    /// The position of the first record not applied, if any.
    pub first_failure: Option<usize>,
    /// Its sequence number (what Lambda needs in `batchItemFailures`).
    pub failure_sequence: Option<String>,
    /// The batch's counts.
    pub metrics: BatchMetrics,
}

impl BatchReport {
    /// The Lambda partial batch response.
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence) = &self.failure_sequence {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// The projection, ready to handle batches.
#[derive(Clone, Debug)]
pub struct Projector {
    applier: Applier,
    /// The deployment stage its metrics are for (the `Stage` dimension).
    stage: String,
}

/// The stage of a projector that is not deployed (the local poller, tests).
pub const LOCAL_STAGE: &str = "local";

fn metrics(
    decoded: &[Result<Decoded, Undecodable>],
    applied: &AppliedBatch,
    now: DateTime<Utc>,
) -> BatchMetrics {
    let outcomes = &applied.outcomes;
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let oldest = decoded.iter().flatten().map(|d| d.created).min();
    BatchMetrics {
        records: outcomes.len(),
        applied: count(Outcome::Applied),
        redundant: count(Outcome::Redundant),
        ignored: count(Outcome::Ignored),
        quarantined: count(Outcome::Quarantined),
        failed: count(Outcome::Failed),
        cancelled: applied.cancelled,
        lag_ms: oldest.map_or(0, |t| (now - t).num_milliseconds().max(0)),
    }
}

impl Projector {
    /// The projection through `applier`, its metrics for the local stage.
    pub fn new(applier: Applier) -> Self {
        Self {
            applier,
            stage: LOCAL_STAGE.to_owned(),
        }
    }

    /// The same projection, its metrics for `stage` (dev and prod share a namespace).
    pub fn in_stage(self, stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            ..self
        }
    }

    /// The stage its metrics are for.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Decode, plan and apply one batch within [`Deadline::batch`] (the local poller, replay).
    pub async fn handle(&self, records: &[Value]) -> Result<BatchReport, Error> {
        self.handle_before(records, Deadline::batch()).await
    }

    /// Decode, plan and apply one batch; what `deadline` stops is reported failed.
    pub async fn handle_before(
        &self,
        records: &[Value],
        deadline: Deadline,
    ) -> Result<BatchReport, Error> {
        let decoded: Vec<Result<Decoded, Undecodable>> = records.iter().map(decode_json).collect();
        let raw = |i: usize| records[i].to_string();
        let applied = self.applier.apply_records(&decoded, &raw, deadline).await;
        let first_failure = applied.outcomes.iter().position(|o| *o == Outcome::Failed);
        let failure_sequence = match first_failure {
            None => None,
            Some(i) => Some(
                records[i]
                    .pointer("/dynamodb/SequenceNumber")
                    .and_then(Value::as_str)
                    .ok_or(Error::Unreportable(i))?
                    .to_owned(),
            ),
        };
        let metrics = metrics(&decoded, &applied, Utc::now());
        tracing::info!(
            records = metrics.records,
            applied = metrics.applied,
            redundant = metrics.redundant,
            ignored = metrics.ignored,
            quarantined = metrics.quarantined,
            failed = metrics.failed,
            cancelled = metrics.cancelled,
            lag_ms = metrics.lag_ms,
            "batch projected"
        );
        Ok(BatchReport {
            outcomes: applied.outcomes,
            first_failure,
            failure_sequence,
            metrics,
        })
    }
}

/// The batch's metrics as one CloudWatch Embedded Metric Format line.
pub(crate) fn emf_line(stage: &str, metrics: &BatchMetrics, now: DateTime<Utc>) -> String {
    emf(
        stage,
        &[
            ("Records", "Count", metrics.records as i64),
            ("Applied", "Count", metrics.applied as i64),
            ("Redundant", "Count", metrics.redundant as i64),
            ("Ignored", "Count", metrics.ignored as i64),
            ("Quarantined", "Count", metrics.quarantined as i64),
            ("Failed", "Count", metrics.failed as i64),
            ("Cancelled", "Count", metrics.cancelled as i64),
            ("LagMs", "Milliseconds", metrics.lag_ms),
        ],
        now,
    )
}

/// The dimension that tells stages apart in the projector's namespace.
pub const STAGE_DIMENSION: &str = "Stage";

/// Metrics `(name, unit, value)` of the projector's namespace, for one stage, as one EMF line.
pub(crate) fn emf(stage: &str, metrics: &[(&str, &str, i64)], now: DateTime<Utc>) -> String {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Publishing/Projector",
                "Dimensions": [[STAGE_DIMENSION]],
                "Metrics": metrics.iter().map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
    });
    line[STAGE_DIMENSION] = stage.into();
    for (name, _, value) in metrics {
        line[*name] = (*value).into();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_names_every_metric_with_its_value() {
        let metrics = BatchMetrics {
            records: 10,
            applied: 6,
            redundant: 2,
            ignored: 1,
            quarantined: 1,
            failed: 0,
            cancelled: 3,
            lag_ms: 1234,
        };
        let line: Value = serde_json::from_str(&emf_line("prod", &metrics, Utc::now())).unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Stage"]])
        );
        assert_eq!(line["Stage"], "prod");
        let declared = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(declared.len(), 8);
        for metric in declared {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_i64(), "{name} has a value");
        }
        assert_eq!(line["LagMs"], 1234);
        assert_eq!(line["Applied"], 6);
        assert_eq!(line["Cancelled"], 3);
    }
}
