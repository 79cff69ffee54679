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

/// The answer to a table request, or `None` if DynamoDB refused it (the shell's call fails,
/// and with it the rebuild: the operator runs it again).
pub(crate) fn send(
    table: &mut Table,
    request: &Request,
    segments: i32,
    now_ms: i64,
) -> Option<Answer> {
    let name = table.name.clone();
    Some(match request {
        Request::Scan { segment, start } => {
            let mut body = json!({
                "TableName": name,
                "Segment": segment,
                "TotalSegments": segments,
                "Limit": PAGE_SIZE,
            });
            if let Some(start) = start {
                body["ExclusiveStartKey"] = wire::item(start);
            }
            let page = table.call("Scan", body, now_ms).ok()?;
            let items = page["Items"].as_array().into_iter().flatten();
            Answer::Page {
                items: items.filter_map(wire::from_item).collect(),
                next: page.get("LastEvaluatedKey").and_then(wire::from_item),
            }
        }
        Request::Counter(post) => {
            let key = key_item(&ItemKey::Post(post.topic.clone(), post.post));
            let body = json!({"TableName": name, "Key": wire::item(&key), "ConsistentRead": true});
            let found = table.call("GetItem", body, now_ms).ok()?;
            let item = found.get("Item").and_then(wire::from_item);
            Answer::Counter(Counter::of(&item.unwrap_or_default()))
        }
        Request::Pending(post) => Answer::Sum(
            (0..keys::DELTA_PARTITIONS)
                .map(|k| {
                    let body = json!({
                        "TableName": name,
                        "KeyConditionExpression": "#pk = :pk",
                        "ProjectionExpression": "#delta",
                        "ExpressionAttributeNames": {"#pk": keys::PK, "#delta": attr::DELTA},
                        "ExpressionAttributeValues":
                            {":pk": {"S": keys::delta_partition(&post.post, k)}},
                        "ConsistentRead": true,
                    });
                    let pages = table.pages("Query", body, now_ms);
                    let items = pages.iter().flat_map(|p| p["Items"].as_array()).flatten();
                    items
                        .filter_map(|i| i[attr::DELTA]["N"].as_str()?.parse::<i64>().ok())
                        .sum::<i64>()
                })
                .sum(),
        ),
        Request::CountView { post, shards } => {
            Answer::Sum(count_view(table, post, *shards, now_ms))
        }
        Request::SetCount {
            post,
            count,
            version,
        } => {
            let write = set_counter(&post.topic, post.post, *count, version.as_deref());
            let body = wire::request(ActionKind::Update, &write, &name);
            match table.call("UpdateItem", body, now_ms) {
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

/// The counted likes GSI1 shows in the post's view shards below `shards`.
fn count_view(table: &mut Table, post: &PostRef, shards: u32, now_ms: i64) -> i64 {
    (0..shards)
        .flat_map(|k| {
            let body: Value = json!({
                "TableName": table.name,
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
            });
            table.pages("Query", body, now_ms)
        })
        .map(|page| page["Count"].as_i64().unwrap_or_default())
        .sum()
}
