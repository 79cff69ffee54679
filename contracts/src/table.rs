//! The table's definition: the one description that tests, the local stack and the CDK app
//! (through `table.json`, checked by an infra test) all follow.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use serde::Serialize;

use crate::keys;

/// What the table must look like, independent of its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDefinition {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub gsi1: IndexDefinition,
    /// All key attributes are strings.
    pub key_attribute_type: &'static str,
    pub stream_view_type: &'static str,
    pub ttl_attribute: &'static str,
    pub billing_mode: &'static str,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDefinition {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub projection: &'static str,
}

/// The table this service runs on.
pub const TABLE: TableDefinition = TableDefinition {
    partition_key: keys::PK,
    sort_key: keys::SK,
    gsi1: IndexDefinition {
        name: keys::GSI1,
        partition_key: keys::GSI1PK,
        sort_key: keys::GSI1SK,
        projection: "ALL",
    },
    key_attribute_type: "S",
    stream_view_type: "NEW_AND_OLD_IMAGES",
    ttl_attribute: keys::EXPIRES_AT,
    billing_mode: "PAY_PER_REQUEST",
};

impl TableDefinition {
    /// The definition as JSON, for the infra tests.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("definition serializes") + "\n"
    }
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
    fn committed_table_json_matches_the_definition() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/table.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if std::env::var_os("UPDATE_CONTRACTS").is_some() {
            std::fs::write(path, TABLE.to_json()).unwrap();
        } else {
            assert_eq!(
                committed,
                TABLE.to_json(),
                "contracts/table.json is stale: run with UPDATE_CONTRACTS=1"
            );
        }
    }
}
