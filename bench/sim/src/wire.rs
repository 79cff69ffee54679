//! The counting protocol's writes as DynamoDB's JSON requests, and JSON answers as the SDK's
//! items: how the simulation's projector and writer speak to the JSON [`Table`](crate::table::Table).
//! Every condition, update and item comes from `contracts::counting` and `contracts::items`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use contracts::counting::Write;
use contracts::items::{Item, key_item};
use contracts::keys::ItemKey;
use projector::batch::count::ActionKind;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// An item (or a key, or expression values) as DynamoDB's JSON writes it (serde_dynamo's
/// `Item` is that format).
pub fn item(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item.clone())).expect("items serialize")
}

/// An item read from DynamoDB's JSON.
pub fn from_item(item: &Value) -> Option<Item> {
    serde_dynamo::Item::deserialize(item).ok().map(Into::into)
}

/// A write's expressions, as the members of its request or transaction action.
fn expressions(write: &Write, table: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("TableName".into(), Value::from(table));
    body.insert(
        "ConditionExpression".into(),
        Value::from(write.condition.clone()),
    );
    if !write.names.is_empty() {
        body.insert("ExpressionAttributeNames".into(), json!(write.names));
    }
    if !write.values.is_empty() {
        body.insert("ExpressionAttributeValues".into(), item(&write.values));
    }
    if write.old_on_failure {
        body.insert(
            "ReturnValuesOnConditionCheckFailure".into(),
            Value::from("ALL_OLD"),
        );
    }
    body
}

/// A write as a single request's body (`PutItem`, `UpdateItem` or `DeleteItem`).
pub fn request(kind: ActionKind, write: &Write, table: &str) -> Value {
    let mut body = expressions(write, table);
    match kind {
        ActionKind::Put => {
            body.insert("Item".into(), item(&write.item));
        }
        ActionKind::Update => {
            body.insert("Key".into(), item(&write.item));
            if let Some(update) = &write.update {
                body.insert("UpdateExpression".into(), Value::from(update.clone()));
            }
        }
        ActionKind::Delete => {
            body.insert("Key".into(), item(&write.item));
        }
    }
    Value::Object(body)
}

/// The operation of a single write.
pub fn operation(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Put => "PutItem",
        ActionKind::Update => "UpdateItem",
        ActionKind::Delete => "DeleteItem",
    }
}

/// Writes as one `TransactWriteItems` body.
pub fn transaction(writes: &[(ActionKind, Write)], table: &str) -> Value {
    let actions: Vec<Value> = writes
        .iter()
        .map(|(kind, write)| {
            let name = match kind {
                ActionKind::Put => "Put",
                ActionKind::Update => "Update",
                ActionKind::Delete => "Delete",
            };
            object([(name, request(*kind, write, table))])
        })
        .collect();
    object([("TransactItems", Value::Array(actions))])
}

/// A JSON object of `members`, moved in: `json!` would copy each value it is given.
fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(
        members
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

/// A consistent `BatchGetItem` of `keys` (at most 100).
pub fn batch_get(keys: &[ItemKey], table: &str) -> Value {
    let keys: Vec<Value> = keys.iter().map(|key| item(&key_item(key))).collect();
    let request = object([
        ("Keys", Value::Array(keys)),
        ("ConsistentRead", Value::Bool(true)),
    ]);
    object([("RequestItems", object([(table, request)]))])
}

/// The name after `#` in an error's `__type`.
pub fn error_name(error: &Value) -> &str {
    let kind = error["__type"].as_str().unwrap_or_default();
    kind.rsplit('#').next().unwrap_or(kind)
}
