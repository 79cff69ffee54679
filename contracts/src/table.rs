//! The table's definition: the one description that tests, the local stack (both through
//! `dynamo::create_table`) and the CDK app (through `table.json`, checked by an infra test)
//! all follow.

use serde::Serialize;

use crate::keys;

/// What the table must look like, independent of its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDefinition {
    /// The partition key attribute.
    pub partition_key: &'static str,
    /// The sort key attribute.
    pub sort_key: &'static str,
    /// GSI1.
    pub gsi1: IndexDefinition,
    /// All key attributes are strings.
    pub key_attribute_type: &'static str,
    /// What the stream carries (`NEW_AND_OLD_IMAGES`: the projector reads both).
    pub stream_view_type: &'static str,
    /// The attribute TTL removes items by.
    pub ttl_attribute: &'static str,
    /// `PAY_PER_REQUEST` (on demand).
    pub billing_mode: &'static str,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDefinition {
    /// The index's name.
    pub name: &'static str,
    /// Its partition key attribute.
    pub partition_key: &'static str,
    /// Its sort key attribute.
    pub sort_key: &'static str,
    /// Which attributes it holds.
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
