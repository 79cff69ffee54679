//! Write accounting for the benchmarks: a log of every DynamoDB write a process makes (and of
//! the item reads that decide writes), with the capacity DynamoDB reported for it.
//!
//! [`logged_client`] attaches an SDK interceptor that asks each write or item read for
//! `ReturnConsumedCapacity=INDEXES` and appends one JSON line per request: the keys it
//! touched, whether it was a transaction, the table and GSI units reported, and why DynamoDB
//! refused it. The code that writes does not know: the interceptor reads and amends the
//! request on the wire. Only the benchmark's own processes (`bench writer`, `bench
//! projector`) use it; the deployed binaries never link it. The capacity model
//! ([`crate::capacity`]) replays these logs.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::ConsumedCapacity;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use contracts::keys;

/// The environment variable naming the log file.
pub const WRITE_LOG_VAR: &str = "WRITE_LOG";

/// One request as logged: a write, or an item read ([`WriteEntry::is_read`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteEntry {
    /// Unix time in milliseconds when the answer arrived.
    pub at_ms: i64,
    /// Which process wrote (`writer`, `projector`).
    pub source: String,
    /// `PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`, `BatchWriteItem`; or
    /// `GetItem`, `BatchGetItem`.
    pub operation: String,
    /// (PK, SK) of every item written (or read), in request order.
    pub items: Vec<(String, String)>,
    /// Table units as the engine reported them;
    /// read units for a read.
    pub table_units: f64,
    /// GSI1 units as reported.
    pub index_units: f64,
    /// The units are DynamoDB's published rules applied to the request, not a report:
    /// transactions are costed by rule (see [`transaction_units`]).
    #[serde(default)]
    pub by_rule: bool,
    /// Why a refused request (a failed condition, a cancelled transaction, throttling) was
    /// refused, `None` when it succeeded: the error code, and for a cancelled transaction the
    /// reasons DynamoDB gave, e.g. `TransactionCanceledException: ConditionalCheckFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl WriteEntry {
    /// Whether it was a transaction.
    pub fn transactional(&self) -> bool {
        self.operation == "TransactWriteItems"
    }

    /// DynamoDB refused it.
    pub fn failed(&self) -> bool {
        self.refusal.is_some()
    }

    /// A read (its units are read units, not write units).
    pub fn is_read(&self) -> bool {
        READS.contains(&self.operation.as_str())
    }
}

/// The write operations the log follows.
const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

/// The item reads the log follows.
const READS: [&str; 2] = ["GetItem", "BatchGetItem"];

/// What the interceptor learned from a request, kept until its answer.
#[derive(Debug, Clone)]
struct PendingWrite {
    operation: String,
    items: Vec<(String, String)>,
    /// (table, GSI1) units by rule, for transactions.
    rule_units: Option<(f64, f64)>,
}

impl Storable for PendingWrite {
    type Storer = StoreReplace<Self>;
}

/// The interceptor; cheap to clone (the file is shared).
#[derive(Debug, Clone)]
pub struct WriteLog {
    source: String,
    file: Arc<Mutex<File>>,
}

impl WriteLog {
    /// Append to `path` (created if missing) as `source`.
    pub fn open(path: &str, source: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            source: source.into(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn append(&self, entry: &WriteEntry) {
        let mut line = serde_json::to_vec(entry).expect("entries serialize");
        line.push(b'\n');
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(&line);
        }
    }
}

/// A DynamoDB client for `config`, logging its writes to the file `WRITE_LOG` names (a plain
/// client when it is unset).
pub fn logged_client(config: &aws_config::SdkConfig, source: &str) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
    if let Ok(path) = std::env::var(WRITE_LOG_VAR) {
        match WriteLog::open(&path, source) {
            Ok(log) => builder = builder.interceptor(log),
            Err(e) => tracing::warn!(%path, error = %e, "cannot open the write log"),
        }
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// The operation a request calls, from its `X-Amz-Target` header.
fn operation(target: &str) -> Option<&'static str> {
    let name = target.rsplit('.').next()?;
    WRITES.iter().chain(&READS).copied().find(|w| *w == name)
}

fn key_of(item: &Value) -> Option<(String, String)> {
    let pk = item.get(keys::PK)?.get("S")?.as_str()?;
    let sk = item.get(keys::SK)?.get("S")?.as_str()?;
    Some((pk.to_owned(), sk.to_owned()))
}

/// (PK, SK) of every item a request body writes (or reads).
pub fn written_keys(operation: &str, body: &Value) -> Vec<(String, String)> {
    match operation {
        "PutItem" => key_of(&body["Item"]).into_iter().collect(),
        "UpdateItem" | "DeleteItem" | "GetItem" => key_of(&body["Key"]).into_iter().collect(),
        "BatchGetItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(|table| table["Keys"].as_array())
            .flatten()
            .filter_map(key_of)
            .collect(),
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|action| {
                let inner = ["Put", "Update", "Delete", "ConditionCheck"]
                    .iter()
                    .find_map(|kind| action.get(*kind))?;
                key_of(inner.get("Item").unwrap_or(&inner["Key"]))
            })
            .collect(),
        "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|request| {
                key_of(&request["PutRequest"]["Item"])
                    .or_else(|| key_of(&request["DeleteRequest"]["Key"]))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// (table, GSI1) units of a `TransactWriteItems` body by DynamoDB's published rules: 2 per
/// item written (items here are under 1 KB), and 1 on GSI1 per item that is or becomes part
/// of it: a put or update that sets `GSI1PK`, a delete of a like (only the transactional
/// writer deletes in a transaction, and its likes are in the view), an item whose key is in
/// GSI1 (`ItemKey::gsi1`).
///
/// Engines report transactions differently (DynamoDB Local reported a hundred-item one as a
/// few units), so transactions are costed by rule, whatever the engine says.
pub fn transaction_units(body: &Value) -> (f64, f64) {
    let mut units = (0.0, 0.0);
    for action in body["TransactItems"].as_array().into_iter().flatten() {
        let (kind, inner) = match ["Put", "Update", "Delete"]
            .iter()
            .find_map(|kind| Some((*kind, action.get(*kind)?)))
        {
            Some(found) => found,
            None => continue, // a ConditionCheck writes nothing
        };
        let Some((pk, sk)) = key_of(inner.get("Item").unwrap_or(&inner["Key"])) else {
            continue;
        };
        let item = keys::ItemKey::parse(&pk, &sk).ok();
        let sets_view = match kind {
            "Put" => inner["Item"].get(keys::GSI1PK).is_some(),
            "Update" => inner["ExpressionAttributeNames"]
                .as_object()
                .is_some_and(|names| names.values().any(|n| n == keys::GSI1PK)),
            _ => false,
        };
        let in_view = match item {
            Some(keys::ItemKey::Like(..)) => sets_view || kind == "Delete",
            Some(other) => sets_view || other.gsi1().is_some(),
            None => sets_view,
        };
        units.0 += 2.0;
        units.1 += if in_view { 1.0 } else { 0.0 };
    }
    units
}

/// Why DynamoDB refused a request, from its error body: the error type, and for a cancelled
/// transaction its distinct cancellation reasons (in order of first appearance).
pub fn refusal_reason(body: &Value) -> Option<String> {
    let kind = body["__type"].as_str()?;
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    let mut reasons: Vec<&str> = Vec::new();
    for code in body["CancellationReasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Code"].as_str())
        .filter(|code| *code != "None")
    {
        if !reasons.contains(&code) {
            reasons.push(code);
        }
    }
    Some(if reasons.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", reasons.join(", "))
    })
}

/// (table, GSI1) units summed over what DynamoDB reported.
fn units(consumed: &[ConsumedCapacity]) -> (f64, f64) {
    consumed.iter().fold((0.0, 0.0), |(table, index), c| {
        let t = c.table().and_then(|t| t.capacity_units()).unwrap_or(0.0);
        let i = c
            .global_secondary_indexes()
            .and_then(|g| g.get(keys::GSI1))
            .and_then(|g| g.capacity_units())
            .unwrap_or(0.0);
        (table + t, index + i)
    })
}

impl Intercept for WriteLog {
    fn name(&self) -> &'static str {
        "WriteLog"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let Some(operation) = request.headers().get("x-amz-target").and_then(operation) else {
            return Ok(());
        };
        let Some(mut body) = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        else {
            return Ok(());
        };
        let items = written_keys(operation, &body);
        let rule_units = (operation == "TransactWriteItems").then(|| transaction_units(&body));
        body["ReturnConsumedCapacity"] = Value::from("INDEXES");
        let bytes = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        cfg.interceptor_state().store_put(PendingWrite {
            operation: operation.to_owned(),
            items,
            rule_units,
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let Some(pending) = cfg.load::<PendingWrite>().cloned() else {
            return Ok(());
        };
        let (table_units, index_units, refusal) = match context.output_or_error() {
            Ok(output) => {
                let consumed: Vec<ConsumedCapacity> = if let Some(o) =
                    output.downcast_ref::<aws_sdk_dynamodb::operation::put_item::PutItemOutput>()
                {
                    o.consumed_capacity().cloned().into_iter().collect()
                } else if let Some(o) = output
                    .downcast_ref::<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput>()
                {
                    o.consumed_capacity().cloned().into_iter().collect()
                } else if let Some(o) = output
                    .downcast_ref::<aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput>()
                {
                    o.consumed_capacity().cloned().into_iter().collect()
                } else if let Some(o) = output.downcast_ref::<
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
                >() {
                    o.consumed_capacity().to_vec()
                } else if let Some(o) = output.downcast_ref::<
                    aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput,
                >() {
                    o.consumed_capacity().to_vec()
                } else if let Some(o) =
                    output.downcast_ref::<aws_sdk_dynamodb::operation::get_item::GetItemOutput>()
                {
                    o.consumed_capacity().cloned().into_iter().collect()
                } else if let Some(o) = output.downcast_ref::<
                    aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput,
                >() {
                    o.consumed_capacity().to_vec()
                } else {
                    Vec::new()
                };
                let (table, index) = units(&consumed);
                (table, index, None)
            }
            Err(_) => {
                let body = context
                    .response()
                    .body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok());
                let why = body.as_ref().and_then(refusal_reason);
                (
                    0.0,
                    0.0,
                    Some(why.unwrap_or_else(|| "no answer".to_owned())),
                )
            }
        };
        let (table_units, index_units) = pending.rule_units.unwrap_or((table_units, index_units));
        self.append(&WriteEntry {
            at_ms: chrono::Utc::now().timestamp_millis(),
            source: self.source.clone(),
            operation: pending.operation,
            items: pending.items,
            table_units,
            index_units,
            by_rule: pending.rule_units.is_some(),
            refusal,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_from_every_kind_of_write() {
        let key = |pk: &str, sk: &str| json!({"PK": {"S": pk}, "SK": {"S": sk}, "x": {"N": "1"}});
        assert_eq!(
            written_keys("PutItem", &json!({"Item": key("a", "1")})),
            vec![("a".into(), "1".into())]
        );
        let transaction = json!({"TransactItems": [
            {"Update": {"Key": key("p", "post")}},
            {"Put": {"Item": key("u", "like")}},
            {"Delete": {"Key": key("u", "old")}},
        ]});
        assert_eq!(
            written_keys("TransactWriteItems", &transaction),
            vec![
                ("p".into(), "post".into()),
                ("u".into(), "like".into()),
                ("u".into(), "old".into())
            ]
        );
        let post = "2lPNkfHnGyd3WnfyeBX4bRb3X2b";
        let counting = json!({"TransactItems": [
            {"Update": {"Key": key("TOPIC#t", &format!("POST#{post}"))}},
            {"Update": {"Key": key("USER#a", &format!("LIKE#{post}")),
                        "ExpressionAttributeNames": {"#gpk": "GSI1PK"}}},
            {"Update": {"Key": key("USER#b", &format!("LIKE#{post}"))}},
            {"Put": {"Item": key("TOMB#2lPNkfHnGyd3WnfyeBX4bRb3X2c", "TOMB#2lPNkfHnGyd3WnfyeBX4bRb3X2c")}},
            {"ConditionCheck": {"Key": key("USER#c", "USER#c")}},
        ]});
        // The stamping mark enters the view; counter, unstamped mark and tombstone do not.
        assert_eq!(transaction_units(&counting), (8.0, 1.0));
        let batch = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": key("a", "1")}},
            {"DeleteRequest": {"Key": key("b", "2")}},
        ]}});
        assert_eq!(written_keys("BatchWriteItem", &batch).len(), 2);
        assert_eq!(
            operation("DynamoDB_20120810.GetItem"),
            Some("GetItem"),
            "reads that decide writes are logged"
        );
        assert_eq!(operation("DynamoDB_20120810.Query"), None);
        let read = json!({"RequestItems": {"t": {"Keys": [key("a", "1"), key("b", "2")]}}});
        assert_eq!(written_keys("BatchGetItem", &read).len(), 2);
        assert_eq!(
            operation("DynamoDB_20120810.UpdateItem"),
            Some("UpdateItem")
        );
    }

    #[test]
    fn refusals_name_the_error_and_each_cancellation_reason_once() {
        let cancelled = json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled",
            "CancellationReasons": [
                {"Code": "None"}, {"Code": "ConditionalCheckFailed"},
                {"Code": "TransactionConflict"}, {"Code": "ConditionalCheckFailed"}
            ]
        });
        assert_eq!(
            refusal_reason(&cancelled).as_deref(),
            Some("TransactionCanceledException: ConditionalCheckFailed, TransactionConflict")
        );
        let failed =
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"});
        assert_eq!(
            refusal_reason(&failed).as_deref(),
            Some("ConditionalCheckFailedException")
        );
        assert_eq!(refusal_reason(&json!({"unexpected": true})), None);
    }
}
