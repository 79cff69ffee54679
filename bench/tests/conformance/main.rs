//! What this system relies on from DynamoDB, as cases run against the local engine: each cites
//! the AWS documentation it follows. A case that fails here means the engine departs from
//! DynamoDB where the project depends on it: work around it in the test bed (`bench::departures`)
//! and write it up in docs/local-engine.md, never in production code.
//!
//! The counting protocol's own writes (`contracts::counting`) are the cases' subjects wherever
//! they apply, so what is checked is exactly what the projector and the writer send.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, TransactWriteItem};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use bench::{LocalInstance, TestTable, eventually};
use contracts::counting::{self, Write};
use contracts::items::{CountedBy, Delta, Entity, Item, Like, LikeRef, Post, attr};
use contracts::keys::{self, ItemKey, Ksuid, LikeId, PostId, TopicSlug};

fn topic() -> TopicSlug {
    "conformance".parse().unwrap()
}

async fn post(table: &TestTable) -> PostId {
    let post = Post {
        topic: topic(),
        post_id: PostId::generate(),
        title: "p".into(),
        body: String::new(),
        author_id: "a".parse().unwrap(),
        created_at: chrono::Utc::now(),
        like_count: 0,
        view_shards: 1,
    };
    table.put(post.to_item()).await;
    post.post_id
}

async fn like(table: &TestTable, user: &str, post: PostId) -> LikeRef {
    let like = Like {
        user_id: user.parse().unwrap(),
        post_id: post,
        topic: topic(),
        title: "p".into(),
        liked_at: chrono::Utc::now(),
        like_id: LikeId::generate(),
        counted_by: None,
    };
    table.put(like.to_item()).await;
    LikeRef::from(&like)
}

/// How a conditional write ended: applied, or refused with the item as it was (`ALL_OLD`).
#[derive(Debug, PartialEq)]
enum Outcome {
    Applied,
    Refused(Option<Item>),
}

async fn update(table: &TestTable, write: &Write) -> Outcome {
    match write.update_item(&table.client, &table.name).send().await {
        Ok(_) => Outcome::Applied,
        Err(e) => match e.into_service_error() {
            UpdateItemError::ConditionalCheckFailedException(c) => Outcome::Refused(c.item),
            other => panic!("{other:?}"),
        },
    }
}

async fn delete(table: &TestTable, write: &Write) -> Outcome {
    match write.delete_item(&table.client, &table.name).send().await {
        Ok(_) => Outcome::Applied,
        Err(e) => match e.into_service_error() {
            DeleteItemError::ConditionalCheckFailedException(c) => Outcome::Refused(c.item),
            other => panic!("{other:?}"),
        },
    }
}

async fn put(table: &TestTable, write: &Write) -> Outcome {
    let call = table
        .client
        .put_item()
        .table_name(&table.name)
        .set_item(Some(write.item.clone()))
        .condition_expression(&write.condition)
        .set_expression_attribute_names(Some(write.names.clone()))
        .set_expression_attribute_values(write.values_or_none())
        .set_return_values_on_condition_check_failure(write.on_failure());
    match call.send().await {
        Ok(_) => Outcome::Applied,
        Err(e) => match e.into_service_error() {
            PutItemError::ConditionalCheckFailedException(c) => Outcome::Refused(c.item),
            other => panic!("{other:?}"),
        },
    }
}

/// The updates `writes` as one transaction, ready to send.
fn transaction(
    table: &TestTable,
    writes: &[Write],
) -> aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder {
    let actions = writes.iter().map(|w| {
        TransactWriteItem::builder()
            .update(w.to_update(&table.name).unwrap())
            .build()
    });
    table
        .client
        .transact_write_items()
        .set_transact_items(Some(actions.collect()))
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Condition expressions refuse a write whose condition is false, and the refused item comes
/// back when `ReturnValuesOnConditionCheckFailure` is `ALL_OLD`.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html#DDB-UpdateItem-request-ReturnValuesOnConditionCheckFailure>
#[tokio::test]
async fn the_mark_counts_an_incarnation_once_and_a_refusal_returns_the_like() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    let mark = counting::count_like(&like, true);
    assert_eq!(update(&table, &mark).await, Outcome::Applied);
    let Outcome::Refused(Some(old)) = update(&table, &mark).await else {
        panic!("a second mark is refused with the like as it was")
    };
    assert_eq!(
        old.get(attr::COUNTED_BY)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some(CountedBy::Projector.as_str())
    );
    assert!(old.contains_key(keys::GSI1PK), "the mark stamped it");
    // Another incarnation's mark is refused: the condition on likeId holds it apart.
    let other = LikeRef {
        like_id: LikeId::generate(),
        ..like.clone()
    };
    assert!(matches!(
        update(&table, &counting::count_like(&other, false)).await,
        Outcome::Refused(_)
    ));
    // A gone like: refused, and ALL_OLD has nothing to return.
    let gone = LikeRef {
        user: "bob".parse().unwrap(),
        ..like
    };
    assert_eq!(
        update(&table, &counting::count_like(&gone, false)).await,
        Outcome::Refused(None)
    );
}

/// `SET`, `REMOVE` and `attribute_not_exists` in one update: a stamp enters one view shard and
/// clears `stampDue`; a stamp deferred sets `stampDue` only while the like is in no shard.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html>
#[tokio::test]
async fn a_stamp_enters_one_view_shard_once_and_clears_a_stamp_put_off() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    assert_eq!(
        update(&table, &counting::count_like(&like, false)).await,
        Outcome::Applied
    );
    assert_eq!(
        update(&table, &counting::defer_stamp(&like, 1)).await,
        Outcome::Applied
    );
    assert_eq!(
        update(&table, &counting::defer_stamp(&like, 2)).await,
        Outcome::Applied
    );
    assert_eq!(
        update(&table, &counting::stamp_like(&like, 3)).await,
        Outcome::Applied
    );
    let item = table
        .get(&ItemKey::Like(like.user.clone(), post))
        .await
        .unwrap();
    assert_eq!(
        item.get(keys::GSI1PK).and_then(|v| v.as_s().ok()).unwrap(),
        &keys::post_view_shard(&post, 3)
    );
    assert!(!item.contains_key(attr::STAMP_DUE), "REMOVE cleared it");
    assert!(matches!(
        update(&table, &counting::stamp_like(&like, 5)).await,
        Outcome::Refused(_)
    ));
    assert!(matches!(
        update(&table, &counting::defer_stamp(&like, 3)).await,
        Outcome::Refused(_)
    ));
}

/// `ADD` on a number that does not exist yet starts from 0; conditions compare numbers.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html#Expressions.UpdateExpressions.ADD>
#[tokio::test]
async fn counters_move_by_add_and_hot_counters_refuse_the_one_hop_move() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let key = ItemKey::Post(topic(), post);
    let now = 1_000;
    assert_eq!(
        update(&table, &counting::move_cold_counter(&topic(), post, 3, now)).await,
        Outcome::Applied
    );
    assert_eq!(
        update(&table, &counting::move_counter(&topic(), post, -1)).await,
        Outcome::Applied
    );
    assert_eq!(
        update(
            &table,
            &counting::fold_into_counter(&topic(), post, 5, now + 300)
        )
        .await,
        Outcome::Applied
    );
    let item = table.get(&key).await.unwrap();
    assert_eq!(number(&item, attr::LIKE_COUNT), Some(7));
    assert_eq!(number(&item, attr::HOT_UNTIL), Some(now + 300));
    let Outcome::Refused(Some(old)) =
        update(&table, &counting::move_cold_counter(&topic(), post, 1, now)).await
    else {
        panic!("a hot counter refuses the one-hop move")
    };
    assert_eq!(
        counting::CounterState::of(Some(&old), now),
        counting::CounterState::Hot {
            until_secs: now + 300
        }
    );
    assert_eq!(
        update(
            &table,
            &counting::move_cold_counter(&topic(), post, 1, now + 301)
        )
        .await,
        Outcome::Applied
    );
    // No post: nothing moves.
    let missing = PostId::generate();
    assert_eq!(
        update(&table, &counting::move_counter(&topic(), missing, 1)).await,
        Outcome::Refused(None)
    );
    assert!(
        table.get(&ItemKey::Post(topic(), missing)).await.is_none(),
        "no item made"
    );
    // The repair holds only while the version it read is current.
    let version = table.get(&key).await.unwrap()[attr::COUNT_VERSION]
        .as_s()
        .unwrap()
        .clone();
    assert_eq!(
        update(
            &table,
            &counting::set_counter(&topic(), post, 2, Some("stale"))
        )
        .await,
        Outcome::Refused(None)
    );
    assert_eq!(
        update(
            &table,
            &counting::set_counter(&topic(), post, 2, Some(&version))
        )
        .await,
        Outcome::Applied
    );
    assert_eq!(
        number(&table.get(&key).await.unwrap(), attr::LIKE_COUNT),
        Some(2)
    );
    // The view's shard count only grows, and a refusal says the count recorded.
    assert_eq!(
        update(&table, &counting::grow_view(&topic(), post, 4)).await,
        Outcome::Applied
    );
    let Outcome::Refused(Some(old)) = update(&table, &counting::grow_view(&topic(), post, 2)).await
    else {
        panic!("a smaller count is refused with the post")
    };
    assert_eq!(number(&old, attr::VIEW_SHARDS), Some(4));
}

/// Puts conditioned on `attribute_not_exists` happen once; deletes conditioned on
/// `attribute_exists` happen once; a delete's condition reads the item (`#counted = :writer`).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html#Expressions.ConditionExpressions.PreventingOverwrites>
#[tokio::test]
async fn tombstones_and_deltas_are_put_once_and_folded_once() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    assert_eq!(
        put(&table, &counting::tombstone(&like, 0)).await,
        Outcome::Applied
    );
    assert!(matches!(
        put(&table, &counting::tombstone(&like, 5)).await,
        Outcome::Refused(_)
    ));
    let delta = Delta {
        topic: topic(),
        post_id: post,
        delta_id: Ksuid::generate(),
        delta: 3,
    };
    assert_eq!(
        put(&table, &counting::put_delta(&delta)).await,
        Outcome::Applied
    );
    assert_eq!(
        delete(&table, &counting::fold_delta(post, delta.delta_id)).await,
        Outcome::Applied
    );
    assert!(matches!(
        delete(&table, &counting::fold_delta(post, delta.delta_id)).await,
        Outcome::Refused(_)
    ));
    // The writer owns the decrement of what it counted, and only of that.
    let Outcome::Refused(Some(old)) =
        delete(&table, &counting::delete_writer_counted(&like.user, post)).await
    else {
        panic!("a like the writer did not count is not its to delete")
    };
    assert!(!old.contains_key(attr::COUNTED_BY));
    assert_eq!(
        delete(
            &table,
            &counting::delete_not_writer_counted(&like.user, post)
        )
        .await,
        Outcome::Applied
    );
}

/// A cancelled transaction names a reason per action, in order (`None` for the actions that
/// would have applied), with the item when `ALL_OLD` was asked for; nothing of it applies.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html#API_TransactWriteItems_Errors>
#[tokio::test]
async fn a_cancelled_transaction_names_each_actions_reason_and_applies_nothing() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let counted = like(&table, "ann", post).await;
    let fresh = like(&table, "bob", post).await;
    assert_eq!(
        update(&table, &counting::count_like(&counted, false)).await,
        Outcome::Applied
    );
    let actions = [
        counting::count_like(&fresh, false),
        counting::count_like(&counted, false),
        counting::move_counter(&topic(), post, 2),
    ];
    let error = transaction(&table, &actions)
        .send()
        .await
        .expect_err("one condition fails");
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        panic!("TransactionCanceledException: {error:?}")
    };
    let reasons = cancelled.cancellation_reasons();
    let codes: Vec<_> = reasons.iter().map(|r| r.code().unwrap_or("")).collect();
    assert_eq!(codes, ["None", "ConditionalCheckFailed", "None"]);
    assert!(
        reasons[1]
            .item()
            .is_some_and(|i| i.contains_key(attr::COUNTED_BY)),
        "ALL_OLD"
    );
    let fresh_item = table
        .get(&ItemKey::Like(fresh.user.clone(), post))
        .await
        .unwrap();
    assert!(!fresh_item.contains_key(attr::COUNTED_BY), "all or nothing");
    let post_item = table.get(&ItemKey::Post(topic(), post)).await.unwrap();
    assert_eq!(number(&post_item, attr::LIKE_COUNT), Some(0));
}

/// `BatchGetItem` with `ConsistentRead` sees every write acknowledged before it; keys it does
/// not find are simply absent from the answer.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>
#[tokio::test]
async fn batch_reads_are_consistent_and_leave_out_missing_keys() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let ann = like(&table, "ann", post).await;
    let keys: Vec<ItemKey> = ["ann", "nobody"]
        .iter()
        .map(|u| ItemKey::Like(u.parse().unwrap(), post))
        .collect();
    let read = contracts::dynamo::batch_get(&table.client, &table.name, &keys)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0][attr::LIKE_ID].as_s().unwrap(), ann.like_id.as_str());
}

/// `Query` returns at most `Limit` items a page, in sort key order (descending with
/// `ScanIndexForward = false`), and `LastEvaluatedKey` until the last page.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html>
#[tokio::test]
async fn queries_page_in_sort_key_order() {
    let table = TestTable::new().await;
    let mut posts = Vec::new();
    for _ in 0..25 {
        posts.push(post(&table).await);
    }
    posts.sort_by(|a, b| b.cmp(a));
    let mut seen = Vec::new();
    let mut start: Option<Item> = None;
    let mut pages = 0;
    loop {
        let page = table
            .client
            .query()
            .table_name(&table.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :post)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("TOPIC#{}", topic())))
            .expression_attribute_values(":post", AttributeValue::S("POST#".into()))
            .scan_index_forward(false)
            .limit(10)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.items().len() <= 10);
        seen.extend(
            page.items()
                .iter()
                .map(|i| i[attr::POST_ID].as_s().unwrap().parse::<PostId>().unwrap()),
        );
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(seen, posts);
    assert!(pages >= 3);
}

/// A GSI with projection `ALL` holds every attribute of the items that carry its keys, and
/// only those (a sparse index).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html>
#[tokio::test]
async fn the_index_holds_stamped_likes_whole_and_nothing_else() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let stamped = like(&table, "ann", post).await;
    like(&table, "bob", post).await;
    assert_eq!(
        update(&table, &counting::count_like(&stamped, true)).await,
        Outcome::Applied
    );
    let found = eventually(
        "the stamped like in GSI1",
        Duration::from_secs(10),
        || async {
            let page = table
                .client
                .query()
                .table_name(&table.name)
                .index_name(keys::GSI1)
                .key_condition_expression("GSI1PK = :pk")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::post_view_partition(&post)),
                )
                .send()
                .await
                .unwrap();
            match page.items().len() {
                1 => Ok(page.items()[0].clone()),
                n => Err(n),
            }
        },
    )
    .await;
    let whole = table
        .get(&ItemKey::Like(stamped.user.clone(), post))
        .await
        .unwrap();
    assert_eq!(found, whole, "every attribute projected");
}

/// Parallel scan segments cover every item exactly once between them.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan>
#[tokio::test]
async fn parallel_scan_segments_cover_each_item_once() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    for user in 0..40 {
        like(&table, &format!("u{user}"), post).await;
    }
    let mut seen = Vec::new();
    for segment in 0..4 {
        let mut start: Option<Item> = None;
        loop {
            let page = table
                .client
                .scan()
                .table_name(&table.name)
                .segment(segment)
                .total_segments(4)
                .limit(7)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            seen.extend(
                page.items()
                    .iter()
                    .map(|i| (i["PK"].clone(), i["SK"].clone())),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    let unique: BTreeSet<_> = seen
        .iter()
        .map(|(pk, sk)| format!("{pk:?}{sk:?}"))
        .collect();
    assert_eq!(seen.len(), 41, "40 likes and the post");
    assert_eq!(unique.len(), seen.len(), "each once");
}

/// The stream of a `NEW_AND_OLD_IMAGES` table: INSERT with the new image, MODIFY with both,
/// REMOVE with the old; the item's keys on each; sequence numbers increasing for one item.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html>
#[tokio::test]
async fn stream_records_carry_their_images_keys_and_ordered_sequence_numbers() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    update(&table, &counting::count_like(&like, false)).await;
    delete(
        &table,
        &counting::delete_not_writer_counted(&like.user, post),
    )
    .await;
    let records = bench::app::stream_records(&table).await;
    let of_like: Vec<_> = records
        .iter()
        .filter(|r| r["dynamodb"]["Keys"]["PK"]["S"] == "USER#ann")
        .collect();
    let names: Vec<_> = of_like
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    let image = |r: &serde_json::Value, which: &str| {
        r["dynamodb"][which]
            .as_object()
            .is_some_and(|o| !o.is_empty())
    };
    assert!(image(of_like[0], "NewImage") && !image(of_like[0], "OldImage"));
    assert!(image(of_like[1], "NewImage") && image(of_like[1], "OldImage"));
    assert!(!image(of_like[2], "NewImage") && image(of_like[2], "OldImage"));
    assert_eq!(
        of_like[1]["dynamodb"]["NewImage"][attr::COUNTED_BY]["S"],
        "projector"
    );
    let sequence: Vec<u128> = of_like
        .iter()
        .map(|r| {
            r["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");
}

/// A TTL deletion's REMOVE record names the service: `userIdentity` type `Service`, principal
/// `dynamodb.amazonaws.com` (dynoxide spells the members differently: `bench::departures`).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-streams.html>
#[tokio::test]
async fn ttl_removals_are_the_services_in_the_stream() {
    let engine = LocalInstance::sweeping_ttl(1);
    let table = TestTable::on(&engine.endpoint()).await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    let mut tombstone = counting::tombstone(&like, 0).item;
    tombstone.insert(keys::EXPIRES_AT.into(), AttributeValue::N("1".into()));
    table.put(tombstone).await;
    let key = ItemKey::Tombstone(like.like_id);
    eventually(
        "the expired item is swept",
        Duration::from_secs(30),
        || async { table.get(&key).await.map_or(Ok(()), |_| Err("still there")) },
    )
    .await;
    let records = bench::app::stream_records(&table).await;
    let removal = records
        .iter()
        .find(|r| r["eventName"] == "REMOVE")
        .expect("the removal's record");
    assert_eq!(removal["userIdentity"]["type"], "Service");
    assert_eq!(
        removal["userIdentity"]["principalId"],
        "dynamodb.amazonaws.com"
    );
}

/// Shard iterators: `TRIM_HORIZON` from the oldest record, `LATEST` after the newest,
/// `AT_SEQUENCE_NUMBER` and `AFTER_SEQUENCE_NUMBER` at and after a given one.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html>
#[tokio::test]
async fn shard_iterators_of_every_type_start_where_they_say() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    for user in ["a", "b", "c"] {
        like(&table, user, post).await;
    }
    let arn = bench::app::stream_arn(&table).await;
    let shard = bench::app::first_shard(&table, &arn).await;
    let read = |kind: ShardIteratorType, at: Option<String>| {
        let (streams, arn, shard) = (table.streams.clone(), arn.clone(), shard.clone());
        async move {
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(at)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            let page = streams
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            (
                page.records()
                    .iter()
                    .map(|r| r.dynamodb().unwrap().sequence_number().unwrap().to_owned())
                    .collect::<Vec<_>>(),
                page.next_shard_iterator,
            )
        }
    };
    let (all, _) = read(ShardIteratorType::TrimHorizon, None).await;
    assert_eq!(all.len(), 4, "the post and three likes");
    let (at, _) = read(ShardIteratorType::AtSequenceNumber, Some(all[1].clone())).await;
    assert_eq!(at, all[1..]);
    let (after, _) = read(ShardIteratorType::AfterSequenceNumber, Some(all[1].clone())).await;
    assert_eq!(after, all[2..]);
    let (latest, next) = read(ShardIteratorType::Latest, None).await;
    assert!(latest.is_empty());
    like(&table, "d", post).await;
    let page = table
        .streams
        .get_records()
        .shard_iterator(next.expect("an open shard goes on"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 1, "LATEST reads what came after it");
}

/// `ReturnConsumedCapacity`: a write of an item under 1 KB costs 1 unit on the table and 1 on
/// each index it enters; a transaction costs 2 per item.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/provisioned-capacity-mode.html#read-write-capacity-units>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling>
#[tokio::test]
async fn writes_report_their_capacity_units() {
    let table = TestTable::new().await;
    let post = post(&table).await;
    let like = like(&table, "ann", post).await;
    let stamped = counting::count_like(&like, true)
        .update_item(&table.client, &table.name)
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .unwrap()
        .consumed_capacity
        .unwrap();
    assert_eq!(stamped.table().unwrap().capacity_units(), Some(1.0));
    assert_eq!(
        stamped.global_secondary_indexes().unwrap()[keys::GSI1].capacity_units(),
        Some(1.0)
    );
    assert_eq!(stamped.capacity_units(), Some(2.0));
    let other = self::like(&table, "bob", post).await;
    let counting = [
        counting::count_like(&other, false),
        counting::move_counter(&topic(), post, 1),
    ];
    let consumed = transaction(&table, &counting)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap()
        .consumed_capacity
        .unwrap_or_default();
    assert_eq!(consumed[0].capacity_units(), Some(4.0), "2 items x 2");
}
