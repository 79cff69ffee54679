//! The counting protocol's writes as DynamoDB's JSON requests, and JSON answers as the SDK's
//! items: how the simulation's projector and writer speak to the JSON [`Table`](super::table::Table).
//! Every condition, update and item comes from `contracts::counting` and `contracts::items`.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use contracts::counting::Write;
use contracts::items::{Item, key_item};
use contracts::keys::ItemKey;
use projector::batch::count::ActionKind;
use serde_json::{Map, Value, json};

/// An attribute value as DynamoDB's JSON writes it.
pub fn value(value: &AttributeValue) -> Value {
    use base64::Engine;
    let base64 = |b: &Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(b) => json!({"NULL": b}),
        AttributeValue::B(b) => json!({"B": base64(b)}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(base64).collect::<Vec<_>>()}),
        AttributeValue::L(v) => json!({"L": v.iter().map(self::value).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": item(m)}),
        _ => Value::Null,
    }
}

/// An item (or a key, or expression values) as DynamoDB's JSON writes it.
pub fn item(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, v)| (name.clone(), value(v)))
            .collect::<Map<_, _>>(),
    )
}

/// An attribute value read from DynamoDB's JSON.
pub fn from_value(value: &Value) -> Option<AttributeValue> {
    use base64::Engine;
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = || -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let blob = |b: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(b.as_str()?)
            .ok()
            .map(Blob::new)
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "B" => AttributeValue::B(blob(inner)?),
        "SS" => AttributeValue::Ss(strings()?),
        "NS" => AttributeValue::Ns(strings()?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(from_value)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(from_item(inner)?),
        _ => return None,
    })
}

/// An item read from DynamoDB's JSON.
pub fn from_item(item: &Value) -> Option<Item> {
    item.as_object()?
        .iter()
        .map(|(name, v)| Some((name.clone(), from_value(v)?)))
        .collect()
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
            json!({name: request(*kind, write, table)})
        })
        .collect();
    json!({"TransactItems": actions})
}

/// A consistent `BatchGetItem` of `keys` (at most 100).
pub fn batch_get(keys: &[ItemKey], table: &str) -> Value {
    let keys: Vec<Value> = keys.iter().map(|key| item(&key_item(key))).collect();
    json!({"RequestItems": {table: {"Keys": keys, "ConsistentRead": true}}})
}

/// The name after `#` in an error's `__type`.
pub fn error_name(error: &Value) -> &str {
    let kind = error["__type"].as_str().unwrap_or_default();
    kind.rsplit('#').next().unwrap_or(kind)
}
