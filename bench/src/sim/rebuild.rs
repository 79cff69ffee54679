//! What the shell of `projector rebuild` (`projector::rebuild::Rebuild`) does with a request
//! of its machine that reads or writes the table, done on the simulated table: the same scan
//! page (`verify::scan_page`), consistent reads of the counter and the deltas, the GSI1 recount
//! and the conditional correction (`contracts::counting::set_counter`). The replay, the
//! repairs and the saved progress are the world's ([`super::World`]).

use contracts::counting::set_counter;
use contracts::items::{attr, key_item};
use contracts::keys::{self, ItemKey};
use projector::batch::count::ActionKind;
use projector::plan::PostRef;
use projector::rebuild::machine::{Answer, Counter, Request};
use serde_json::{Value, json};

use super::table::Table;
use super::wire;

/// Items per scan page: small, so a rebuild takes many pages and steps between them.
pub(crate) const PAGE_SIZE: i64 = 20;

/// The requests `send` sends for one of the machine's table requests, as (operation, body):
/// each is followed to its last page. The conformance suite sends the same ones to the engine.
pub fn requests(table: &str, request: &Request, segments: i32) -> Vec<(&'static str, Value)> {
    match request {
        Request::Scan { segment, start } => {
            let mut body = json!({
                "TableName": table,
                "Segment": segment,
                "TotalSegments": segments,
                "Limit": PAGE_SIZE,
            });
            if let Some(start) = start {
                body["ExclusiveStartKey"] = wire::item(start);
            }
            vec![("Scan", body)]
        }
        Request::Counter(post) => {
            let key = key_item(&ItemKey::Post(post.topic.clone(), post.post));
            let body = json!({"TableName": table, "Key": wire::item(&key), "ConsistentRead": true});
            vec![("GetItem", body)]
        }
        Request::Pending(post) => (0..keys::DELTA_PARTITIONS)
            .map(|k| {
                let body = json!({
                    "TableName": table,
                    "KeyConditionExpression": "#pk = :pk",
                    "ProjectionExpression": "#delta",
                    "ExpressionAttributeNames": {"#pk": keys::PK, "#delta": attr::DELTA},
                    "ExpressionAttributeValues":
                        {":pk": {"S": keys::delta_partition(&post.post, k)}},
                    "ConsistentRead": true,
                });
                ("Query", body)
            })
            .collect(),
        Request::CountView { post, shards } => (0..*shards)
            .map(|k| ("Query", count_view(table, post, k)))
            .collect(),
        Request::SetCount {
            post,
            count,
            version,
        } => {
            let write = set_counter(&post.topic, post.post, *count, version.as_deref());
            vec![(
                "UpdateItem",
                wire::request(ActionKind::Update, &write, table),
            )]
        }
        Request::CatchUp | Request::Repair { .. } | Request::Save(_) => Vec::new(),
    }
}

/// The answer to a table request, or `None` if DynamoDB refused it (the shell's call fails,
/// and with it the rebuild: the operator runs it again).
pub(crate) fn send(
    table: &mut Table,
    request: &Request,
    segments: i32,
    now_ms: i64,
) -> Option<Answer> {
    let mut requests = requests(&table.name, request, segments);
    // Every page of each (reads are never refused: only writes meet the contention rules).
    let pages = |table: &mut Table, requests: Vec<(&str, Value)>| -> Vec<Value> {
        let all = requests.into_iter();
        all.flat_map(|(operation, body)| table.pages(operation, body, now_ms))
            .collect()
    };
    Some(match request {
        Request::Scan { .. } => {
            let (operation, body) = requests.pop()?;
            let page = table.call(operation, body, now_ms).ok()?;
            let items = page["Items"].as_array().into_iter().flatten();
            Answer::Page {
                items: items.filter_map(wire::from_item).collect(),
                next: page.get("LastEvaluatedKey").and_then(wire::from_item),
            }
        }
        Request::Counter(_) => {
            let (operation, body) = requests.pop()?;
            let found = table.call(operation, body, now_ms).ok()?;
            let item = found.get("Item").and_then(wire::from_item);
            Answer::Counter(Counter::of(&item.unwrap_or_default()))
        }
        Request::Pending(_) => Answer::Sum(
            pages(table, requests)
                .iter()
                .flat_map(|page| page["Items"].as_array())
                .flatten()
                .filter_map(|i| i[attr::DELTA]["N"].as_str()?.parse::<i64>().ok())
                .sum(),
        ),
        Request::CountView { .. } => Answer::Sum(
            pages(table, requests)
                .iter()
                .map(|page| page["Count"].as_i64().unwrap_or_default())
                .sum(),
        ),
        Request::SetCount { .. } => {
            let (operation, body) = requests.pop()?;
            match table.call(operation, body, now_ms) {
                Ok(_) => Answer::Set(true),
                Err(e) if wire::error_name(&e) == "ConditionalCheckFailedException" => {
                    Answer::Set(false)
                }
                Err(_) => return None,
            }
        }
        Request::CatchUp | Request::Repair { .. } | Request::Save(_) => {
            unreachable!("the world's, not the table's")
        }
    })
}

/// The query of view shard `k`'s counted likes, as `Rebuild::count_view` sends it.
fn count_view(table: &str, post: &PostRef, k: u32) -> Value {
    json!({
        "TableName": table,
        "IndexName": keys::GSI1,
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :likes)",
        "FilterExpression": "attribute_exists(#counted)",
        "ExpressionAttributeNames":
            {"#pk": keys::GSI1PK, "#sk": keys::GSI1SK, "#counted": attr::COUNTED_BY},
        "ExpressionAttributeValues": {
            ":pk": {"S": keys::post_view_shard(&post.post, k)},
            ":likes": {"S": keys::prefix::LIKES},
        },
        "Select": "COUNT",
    })
}
