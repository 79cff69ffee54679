//! What the projector's executor (`projector::apply`) does with a request of the batch
//! machine, done on the simulated table: the same writes (`projector::batch::count`'s
//! `transaction_writes`, `contracts::counting`), DynamoDB's JSON answer read back as the
//! machine's [`Answer`] by the rules the executor reads the SDK's errors with
//! (`contracts::dynamo::is_throttle`, `retryable`).

use contracts::counting;
use contracts::dynamo::{CONDITION_FAILED, is_throttle, retryable};
use contracts::items::{Entity, key_of};
use contracts::keys::Ksuid;
use projector::apply::quarantined;
use projector::batch::count::{ActionKind, transaction_writes};
use projector::batch::{Answer, Reason, Request};
use serde_json::Value;

use crate::table::Table;
use crate::wire;

/// Send `request` to `table` at `now_ms`; delta ids come from `delta_id`, an undecodable
/// record's text from `raw`.
pub(crate) fn send(
    table: &mut Table,
    request: &Request,
    now_ms: i64,
    delta_id: impl FnMut() -> Ksuid,
    raw: impl FnOnce(usize) -> String,
) -> Answer {
    let name = table.name.clone();
    let update = |table: &mut Table, write: counting::Write| {
        let body = wire::request(ActionKind::Update, &write, &name);
        single_answer(table.call("UpdateItem", body, now_ms))
    };
    match request {
        Request::Quarantine {
            position,
            record,
            now_ms: at,
        } => {
            let item = quarantined(record, raw(*position), *at).to_item();
            let body = serde_json::json!({"TableName": name, "Item": wire::item(&item)});
            single_answer(table.call("PutItem", body, now_ms))
        }
        Request::Read { keys } => {
            match table.call("BatchGetItem", wire::batch_get(keys, &name), now_ms) {
                Ok(answer) => {
                    let items = answer["Responses"][&name]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(wire::from_item)
                        .collect();
                    let unprocessed = answer["UnprocessedKeys"][&name]["Keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|key| key_of(&wire::from_item(key)?))
                        .collect();
                    Answer::Read { items, unprocessed }
                }
                Err(error) => error_answer(&error),
            }
        }
        Request::Count {
            transaction,
            now_secs,
        } => {
            let writes = transaction_writes(transaction, *now_secs, delta_id);
            match table.call(
                "TransactWriteItems",
                wire::transaction(&writes, &name),
                now_ms,
            ) {
                Ok(_) => Answer::Done,
                Err(error) => error_answer(&error),
            }
        }
        Request::Stamp { like, shard } => update(table, counting::stamp_like(like, *shard)),
        Request::Grow {
            topic,
            post,
            shards,
        } => update(table, counting::grow_view(topic, *post, *shards)),
        Request::Defer { like, now_ms: at } => update(table, counting::defer_stamp(like, *at)),
    }
}

/// A single write's answer: a failed condition brings the old item, as the executor's
/// `update_answer` reads it.
fn single_answer(result: Result<Value, Value>) -> Answer {
    match result {
        Ok(_) => Answer::Done,
        Err(error) if wire::error_name(&error) == "ConditionalCheckFailedException" => {
            Answer::ConditionFailed {
                old: error.get("Item").and_then(wire::from_item),
            }
        }
        Err(error) => error_answer(&error),
    }
}

/// An error answer as the executor's `answer_of` reads it.
fn error_answer(error: &Value) -> Answer {
    let name = wire::error_name(error);
    if is_throttle(Some(name)) {
        return Answer::Throttled;
    }
    match name {
        "ConditionalCheckFailedException" => Answer::ConditionFailed { old: None },
        "TransactionCanceledException" => Answer::Cancelled(
            error["CancellationReasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(reason_of)
                .collect(),
        ),
        name if retryable(Some(name)) => Answer::Transient(name.to_owned()),
        name => Answer::Permanent(format!("{name}: {}", error["message"])),
    }
}

/// One cancellation reason as the executor's `reason_of` reads it.
fn reason_of(reason: &Value) -> Reason {
    match reason["Code"].as_str() {
        None | Some("None") => Reason::None,
        Some(CONDITION_FAILED) => Reason::ConditionFailed {
            old: reason.get("Item").and_then(wire::from_item),
        },
        Some("TransactionConflict") => Reason::Conflict,
        code if is_throttle(code) => Reason::Throttled,
        Some(other) => Reason::Other(other.to_owned()),
    }
}
