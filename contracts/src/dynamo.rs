//! DynamoDB plumbing shared by every binary: SDK configuration, the one retry policy, bounded
//! batch reads, and creating the table.
//!
//! Timeouts are short and explicit: an unreachable endpoint must turn into a quick 503
//! (writer) or a retried batch (projector), never a request that hangs. What is worth
//! retrying is decided by [`retryable`] alone, over error codes and transaction cancellation
//! reasons, and every retry loop waits as [`Backoff`] says.

use std::fmt::Debug;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CancellationReason, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use rand::Rng;

use crate::items::{Item, key_item, key_of};
use crate::keys::ItemKey;
use crate::table::TABLE;

/// Where the SDK sends requests.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// An explicit endpoint (the local engine); `None` uses the environment (`AWS_ENDPOINT_URL`,
    /// region and credentials chain) as deployed.
    pub url: Option<String>,
}

/// The SDK's own limits on one call: connect, one attempt, and the whole call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The SDK's limit on one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The SDK's limit on a whole call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// SDK configuration with bounded timeouts. With an explicit endpoint, static test credentials
/// and `us-east-1` are used unless the environment names a region.
pub async fn sdk_config(endpoint: &Endpoint) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(url) = &endpoint.url {
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        loader = loader
            .endpoint_url(url)
            .region(Region::new(region))
            .credentials_provider(Credentials::new("local", "local", None, None, "static"));
    }
    loader.load().await
}

/// Error codes, and transaction cancellation reasons, that mean "try again later": throttling,
/// DynamoDB's own transient faults, and transactions that met another on an item.
const RETRYABLE: [&str; 11] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    // Cancellation reasons of a transaction.
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "InternalError",
];

/// Whether an error code or cancellation reason is worth retrying.
pub fn retryable(code: Option<&str>) -> bool {
    code.is_some_and(|c| RETRYABLE.contains(&c))
}

/// Whether an error code, or a transaction's cancellation reason, says a partition (of the
/// table or an index) took more than its throughput.
pub fn is_throttle(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
        )
    )
}

/// The cancellation reason of a failed condition.
pub const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// How a failed call reads, whatever the operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A condition was false (a single-item write's `ConditionalCheckFailedException`).
    ConditionFailed,
    /// A transaction was cancelled; the reasons, one per action.
    Cancelled(Vec<CancellationReason>),
    /// Throttled, contended, timed out or unreachable: try again later.
    Transient(String),
    /// Anything else: a bug or a misconfiguration.
    Permanent(String),
}

impl Failure {
    /// Classify an SDK error.
    pub fn of<E, R>(err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + Debug + 'static,
        R: Debug,
    {
        match err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => Failure::Transient(format!("{err:?}")),
            SdkError::ServiceError(service) => {
                let e = service.err();
                let any: &dyn std::any::Any = e;
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    any.downcast_ref::<TransactWriteItemsError>()
                {
                    return Failure::Cancelled(c.cancellation_reasons().to_vec());
                }
                match e.code() {
                    Some("ConditionalCheckFailedException") => Failure::ConditionFailed,
                    code if retryable(code) => Failure::Transient(code.unwrap_or_default().into()),
                    code => Failure::Permanent(format!(
                        "{}: {}",
                        code.unwrap_or("unknown"),
                        e.message().unwrap_or_default()
                    )),
                }
            }
            _ => Failure::Permanent(format!("{err:?}")),
        }
    }

    /// Worth another attempt: transient, or a transaction cancelled for transient reasons
    /// only (no condition failed).
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Transient(_) => true,
            Failure::Cancelled(reasons) => !reasons.iter().any(is_condition_failed),
            _ => false,
        }
    }

    /// A short description for logs (codes, never payloads).
    pub fn describe(&self) -> String {
        match self {
            Failure::ConditionFailed => "ConditionalCheckFailed".into(),
            Failure::Cancelled(reasons) => {
                let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
                format!("TransactionCanceled [{}]", codes.join(", "))
            }
            Failure::Transient(what) | Failure::Permanent(what) => what.clone(),
        }
    }
}

/// Whether a cancellation reason is a failed condition.
pub fn is_condition_failed(reason: &CancellationReason) -> bool {
    reason.code() == Some(CONDITION_FAILED)
}

/// The retry policy: bounded attempts, exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause after the first failure; it doubles up to `cap`.
    pub base: Duration,
    /// The longest pause.
    pub cap: Duration,
}

impl Backoff {
    /// For writes that a later attempt (or a re-delivery) may still complete.
    pub const STANDARD: Backoff = Backoff {
        attempts: 8,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(640),
    };

    /// The pause after failed attempt `attempt` (1-based): half the backoff plus up to the
    /// other half at random, so that contending clients spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.jittered(attempt, rand::rng().random())
    }

    /// [`delay`](Self::delay) with the random part given: `jitter` (0 to 1) of the way
    /// through the upper half. For callers that keep their own randomness (a seeded machine).
    pub fn jittered(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0)) / 2
    }

    /// Whether attempt `attempt` (1-based) may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// Wait after failed attempt `attempt`.
    pub async fn wait(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

/// Why a batch read gave up.
#[derive(Debug, thiserror::Error)]
pub enum BatchGetError {
    /// The call failed (described, without payloads).
    #[error("BatchGetItem: {0}")]
    Failed(String),
    /// Keys DynamoDB kept leaving unprocessed, after that many attempts.
    #[error("{0} keys still unprocessed after {1} attempts")]
    Unprocessed(usize, u32),
}

/// The error of one `BatchGetItem` call.
pub type ReadError = SdkError<BatchGetItemError, HttpResponse>;

/// One consistent `BatchGetItem` call for `keys` (at most 100): the items found, and the keys
/// DynamoDB left unprocessed (short of capacity). The projector's batch machine retries
/// through its own answers; [`batch_get`] retries here.
pub async fn read_once(
    client: &Client,
    table: &str,
    keys: &[ItemKey],
) -> Result<(Vec<Item>, Vec<ItemKey>), ReadError> {
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys.iter().map(key_item).collect()))
        .consistent_read(true)
        .build()
        .expect("keys are set");
    let mut answer = client
        .batch_get_item()
        .request_items(table, request)
        .send()
        .await?;
    let items = answer
        .responses
        .as_mut()
        .and_then(|r| r.remove(table))
        .unwrap_or_default();
    let unprocessed = answer
        .unprocessed_keys
        .as_mut()
        .and_then(|u| u.remove(table))
        .map(|rest| rest.keys().iter().filter_map(key_of).collect())
        .unwrap_or_default();
    Ok((items, unprocessed))
}

/// The items of `keys` that exist, read consistently 100 keys a request. Keys DynamoDB leaves
/// unprocessed (short of capacity) are asked again as [`Backoff::STANDARD`] says, then the
/// read gives up. Order is DynamoDB's, not the keys'.
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: &[ItemKey],
) -> Result<Vec<Item>, BatchGetError> {
    let policy = Backoff::STANDARD;
    let mut items = Vec::new();
    for chunk in keys.chunks(100) {
        let mut left = chunk.to_vec();
        for attempt in 1.. {
            match read_once(client, table, &left).await {
                Ok((found, unprocessed)) => {
                    items.extend(found);
                    if unprocessed.is_empty() {
                        break;
                    }
                    if !policy.may_retry(attempt) {
                        return Err(BatchGetError::Unprocessed(unprocessed.len(), attempt));
                    }
                    left = unprocessed;
                }
                Err(e) => {
                    let failure = Failure::of(&e);
                    if !(failure.is_transient() && policy.may_retry(attempt)) {
                        return Err(BatchGetError::Failed(failure.describe()));
                    }
                }
            }
            policy.wait(attempt).await;
        }
    }
    Ok(items)
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type are set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

/// Create the table as [`TABLE`] defines it, with TTL on (for tests and the local stack; the
/// CDK app creates the deployed one).
pub async fn create_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let t = &TABLE;
    let gsi1 = GlobalSecondaryIndex::builder()
        .index_name(t.gsi1.name)
        .key_schema(key(t.gsi1.partition_key, KeyType::Hash))
        .key_schema(key(t.gsi1.sort_key, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("index is complete");
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(t.partition_key))
        .attribute_definitions(string_attribute(t.sort_key))
        .attribute_definitions(string_attribute(t.gsi1.partition_key))
        .attribute_definitions(string_attribute(t.gsi1.sort_key))
        .key_schema(key(t.partition_key, KeyType::Hash))
        .key_schema(key(t.sort_key, KeyType::Range))
        .global_secondary_indexes(gsi1)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream is complete"),
        )
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(t.ttl_attribute)
                .build()
                .expect("ttl is complete"),
        )
        .send()
        .await?;
    Ok(())
}

/// Create the table unless it exists already (the local stack restarts on a persistent DB).
pub async fn ensure_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            create_table(client, name).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_within_bounds() {
        let policy = Backoff::STANDARD;
        for attempt in 1..=12 {
            let exp = (policy.base * (1 << (attempt - 1).min(16))).min(policy.cap);
            let delay = policy.delay(attempt);
            assert!(
                delay >= exp / 2 && delay <= exp,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(policy.may_retry(policy.attempts - 1));
        assert!(!policy.may_retry(policy.attempts));
    }

    #[test]
    fn cancelled_transactions_retry_only_without_a_failed_condition() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        let conflict = Failure::Cancelled(vec![reason("None"), reason("TransactionConflict")]);
        assert!(conflict.is_transient());
        let condition =
            Failure::Cancelled(vec![reason(CONDITION_FAILED), reason("ThrottlingError")]);
        assert!(!condition.is_transient());
        assert!(retryable(Some("ThrottlingException")));
        assert!(!retryable(Some("ValidationException")));
        assert!(!retryable(None));
    }
}
