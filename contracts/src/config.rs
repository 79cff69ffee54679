//! One way to build AWS SDK configuration for every binary and test.
//!
//! Timeouts are short and explicit: an unreachable endpoint must turn into a quick 503 (writer)
//! or a retried batch (projector), never a request that hangs.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Where the SDK sends requests.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// An explicit endpoint (DynamoDB Local); `None` uses the environment (`AWS_ENDPOINT_URL`,
    /// region and credentials chain) as deployed.
    pub url: Option<String>,
}

/// SDK configuration with bounded timeouts. With an explicit endpoint, static test credentials
/// and `us-east-1` are used unless the environment names a region.
pub async fn sdk_config(endpoint: &Endpoint) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
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
