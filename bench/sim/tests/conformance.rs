//! The simulation's table (`sim::table`) against the local engine: every kind of request
//! the system makes — each condition, update, transaction shape, read, query and stream read of
//! the writer and the projector, built by the very functions the simulation sends them with —
//! goes to both, and the answers (success or the error's name, each cancellation reason with
//! its item, the items returned), the items left and the stream records must agree.
//!
//! The model departs on purpose only where DynamoDB departs from one engine on one machine:
//! overlapping transactions (`TransactionConflict`), throughput per partition (throttles). Here
//! both are out of reach (no hold, unlimited units), so any difference is a fault of the model;
//! the departures themselves are tested below against what the AWS documentation states.

use bench::TestTable;
use chrono::Utc;
use contracts::counting::{self, Write};
use contracts::items::{Delta, Entity, Like, LikeRef, Post, attr};
use contracts::keys::{self, ItemKey, Ksuid, LikeId, PostId, TopicSlug, UserId};
use projector::batch::count::{ActionKind, transaction_writes};
use projector::plan::{CountTransaction, Fold, Mark, PostCount, PostRef, Uncount};
use projector::rebuild::machine::Request;
use serde_json::{Value, json};
use sim::table::{Table, TableSettings};
use sim::{rebuild, wire};

/// One table on the engine and one in the model, sent the same requests.
struct Differential {
    engine: TestTable,
    model: Table,
    http: reqwest::Client,
    /// Requests compared.
    compared: usize,
}

/// What of an answer must agree: success and the items returned, or the error's name, its
/// cancellation reasons' codes and items, and the item a failed condition returns.
fn essence(answer: &Result<Value, Value>) -> Value {
    match answer {
        Ok(body) => {
            let mut body = body.clone();
            if let Some(map) = body.as_object_mut() {
                map.remove("ConsumedCapacity");
                map.remove("ItemCollectionMetrics");
            }
            if let Some(Value::Object(responses)) = body.get_mut("Responses") {
                for items in responses.values_mut() {
                    if let Value::Array(items) = items {
                        items.sort_by_key(|i| i.to_string());
                    }
                }
            }
            json!({"ok": body})
        }
        Err(error) => json!({
            "error": wire::error_name(error),
            "reasons": error.get("CancellationReasons").cloned().unwrap_or(Value::Null),
            "item": error.get("Item").cloned().unwrap_or(Value::Null),
        }),
    }
}

impl Differential {
    async fn new() -> Self {
        let engine = TestTable::new().await;
        let model = Table::new(
            &engine.name,
            Utc::now().timestamp_millis(),
            TableSettings {
                partition_wcu: f64::INFINITY,
                hold_ms: 0,
                // The engine's index shows a write at once.
                gsi1_delay_ms: (0, 0),
                ..TableSettings::default()
            },
            0,
        );
        Self {
            engine,
            model,
            http: reqwest::Client::new(),
            compared: 0,
        }
    }

    /// A request to the engine over HTTP, as DynamoDB's JSON.
    async fn engine(&self, operation: &str, body: &Value) -> Result<Value, Value> {
        let service = match operation {
            "DescribeStream" | "GetShardIterator" | "GetRecords" => "DynamoDBStreams_20120810",
            _ => "DynamoDB_20120810",
        };
        let answer = self
            .http
            .post(&self.engine.endpoint)
            .header("x-amz-target", format!("{service}.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-date", Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("the engine answers");
        let ok = answer.status().is_success();
        let body: Value = answer.json().await.expect("a JSON answer");
        if ok { Ok(body) } else { Err(body) }
    }

    /// Send to both; the answers must agree. The engine's answer.
    async fn send(&mut self, operation: &str, body: Value) -> Result<Value, Value> {
        let engine = self.engine(operation, &body).await;
        let model = self
            .model
            .call(operation, &body, Utc::now().timestamp_millis());
        assert_eq!(
            essence(&model),
            essence(&engine),
            "the model and the engine answer {operation} differently: {body}"
        );
        self.compared += 1;
        engine
    }

    async fn write(&mut self, kind: ActionKind, write: &Write) -> Result<Value, Value> {
        let body = wire::request(kind, write, &self.engine.name);
        self.send(wire::operation(kind), body).await
    }

    async fn transact(&mut self, writes: &[(ActionKind, Write)]) -> Result<Value, Value> {
        let body = wire::transaction(writes, &self.engine.name);
        self.send("TransactWriteItems", body).await
    }

    async fn put(
        &mut self,
        item: &contracts::items::Item,
        condition: Option<&str>,
    ) -> Result<Value, Value> {
        let mut body = json!({"TableName": self.engine.name, "Item": wire::item(item)});
        if let Some(condition) = condition {
            body["ConditionExpression"] = Value::from(condition);
            body["ExpressionAttributeNames"] = json!({"#pk": keys::PK});
        }
        self.send("PutItem", body).await
    }

    /// The engine's stream records, from its start, as the model's are read.
    async fn engine_records(&self) -> Vec<Value> {
        let table = self
            .engine("DescribeTable", &json!({"TableName": self.engine.name}))
            .await
            .expect("the table");
        let arn = table["Table"]["LatestStreamArn"].clone();
        let stream = self
            .engine("DescribeStream", &json!({"StreamArn": arn}))
            .await
            .expect("the stream");
        let mut records = Vec::new();
        for shard in stream["StreamDescription"]["Shards"]
            .as_array()
            .expect("shards")
        {
            let iterator = self
                .engine(
                    "GetShardIterator",
                    &json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await
                .expect("an iterator");
            let mut next = iterator["ShardIterator"].clone();
            while next.is_string() {
                let page = self
                    .engine("GetRecords", &json!({"ShardIterator": next}))
                    .await
                    .expect("records");
                let page_records = page["Records"].as_array().cloned().unwrap_or_default();
                if page_records.is_empty() {
                    break;
                }
                records.extend(page_records);
                next = page["NextShardIterator"].clone();
            }
        }
        records
    }
}

/// What of a stream record must agree: its event, keys and images, in order.
fn record_essence(record: &Value) -> Value {
    let change = &record["dynamodb"];
    json!([
        record["eventName"],
        change["Keys"],
        change["NewImage"],
        change["OldImage"],
        change["StreamViewType"]
    ])
}

fn like_of(user: &UserId, topic: &TopicSlug, post: PostId) -> Like {
    Like {
        user_id: user.clone(),
        post_id: post,
        topic: topic.clone(),
        title: "conformance".into(),
        liked_at: Utc::now(),
        like_id: LikeId::generate(),
        counted_by: None,
    }
}

fn post_count(post: &PostRef) -> PostCount {
    PostCount {
        post: post.clone(),
        marks: Vec::new(),
        uncounts: Vec::new(),
        folds: Vec::new(),
        via_delta: false,
    }
}

fn mark(like: &Like, stamp: bool) -> Mark {
    Mark {
        records: vec![0],
        like: LikeRef::from(like),
        stamp,
    }
}

fn count(posts: Vec<PostCount>) -> Vec<(ActionKind, Write)> {
    let now = Utc::now().timestamp();
    transaction_writes(&CountTransaction { posts }, now, Ksuid::generate)
}

#[tokio::test]
async fn the_model_answers_every_request_of_the_system_as_the_engine_does() {
    let mut both = Differential::new().await;
    let topic: TopicSlug = "conformance".parse().unwrap();
    let post = Post {
        topic: topic.clone(),
        post_id: PostId::generate(),
        title: "p".into(),
        body: String::new(),
        author_id: "a".parse().unwrap(),
        created_at: Utc::now(),
        like_count: 0,
        view_shards: 1,
    };
    let post_ref = PostRef {
        topic: topic.clone(),
        post: post.post_id,
    };
    let pid = post.post_id;
    both.put(&post.to_item(), None).await.unwrap();
    let (ann, bob, cid, dan): (UserId, UserId, UserId, UserId) = (
        "ann".parse().unwrap(),
        "bob".parse().unwrap(),
        "cid".parse().unwrap(),
        "dan".parse().unwrap(),
    );

    // The writer's append, and a repeat refused.
    let ann_like = like_of(&ann, &topic, pid);
    let bob_like = like_of(&bob, &topic, pid);
    for like in [&ann_like, &bob_like] {
        both.put(&like.to_item(), Some("attribute_not_exists(#pk)"))
            .await
            .unwrap();
    }
    let again = both
        .put(&ann_like.to_item(), Some("attribute_not_exists(#pk)"))
        .await;
    assert!(again.is_err(), "a repeated like is refused");

    // Screening reads: found, and a missing key left out.
    let keys = [
        ItemKey::Like(ann.clone(), pid),
        ItemKey::Post(topic.clone(), pid),
        ItemKey::Like(dan.clone(), pid),
    ];
    both.send(
        "BatchGetItem",
        wire::batch_get(&keys, &both.engine.name.clone()),
    )
    .await
    .unwrap();

    // The one-hop count, stamping in the same transaction; a second is refused with the like.
    let mut cold = post_count(&post_ref);
    cold.marks.push(mark(&ann_like, true));
    both.transact(&count(vec![cold.clone()])).await.unwrap();
    let refused = both.transact(&count(vec![cold])).await.unwrap_err();
    assert_eq!(wire::error_name(&refused), "TransactionCanceledException");

    // A count without the stamp, then the stamp, a repeated stamp, a deferral of each.
    let mut unstamped = post_count(&post_ref);
    unstamped.marks.push(mark(&bob_like, false));
    both.transact(&count(vec![unstamped])).await.unwrap();
    let bob_ref = LikeRef::from(&bob_like);
    let ann_ref = LikeRef::from(&ann_like);
    let now_ms = Utc::now().timestamp_millis();
    both.write(ActionKind::Update, &counting::defer_stamp(&bob_ref, now_ms))
        .await
        .unwrap();
    both.write(ActionKind::Update, &counting::defer_stamp(&ann_ref, now_ms))
        .await
        .unwrap_err();
    both.write(ActionKind::Update, &counting::stamp_like(&bob_ref, 0))
        .await
        .unwrap();
    both.write(ActionKind::Update, &counting::stamp_like(&bob_ref, 1))
        .await
        .unwrap_err();

    // The view grows, once.
    both.write(ActionKind::Update, &counting::grow_view(&topic, pid, 2))
        .await
        .unwrap();
    both.write(ActionKind::Update, &counting::grow_view(&topic, pid, 2))
        .await
        .unwrap_err();

    // The hot counter: a delta in the counter's place, folded once.
    let cid_like = like_of(&cid, &topic, pid);
    both.put(&cid_like.to_item(), Some("attribute_not_exists(#pk)"))
        .await
        .unwrap();
    let mut hot = post_count(&post_ref);
    hot.via_delta = true;
    hot.marks.push(mark(&cid_like, false));
    let delta_writes = count(vec![hot]);
    both.transact(&delta_writes).await.unwrap();
    let delta = Delta::from_item(delta_writes[0].1.item.clone()).expect("the delta put");
    let mut fold = post_count(&post_ref);
    fold.folds.push(Fold {
        records: vec![0],
        delta: delta.clone(),
    });
    let folding = count(vec![fold]);
    both.transact(&folding).await.unwrap();
    both.transact(&folding).await.unwrap_err();
    // The one-hop move is refused while the counter is hot.
    let mut late = post_count(&post_ref);
    late.marks.push(mark(&cid_like, false));
    both.transact(&count(vec![late])).await.unwrap_err();

    // An unlike of a projector-counted like: the plain delete, then its tombstone, once.
    both.write(
        ActionKind::Delete,
        &counting::delete_not_writer_counted(&ann, pid),
    )
    .await
    .unwrap();
    both.write(
        ActionKind::Delete,
        &counting::delete_not_writer_counted(&ann, pid),
    )
    .await
    .unwrap_err();
    let mut uncount = post_count(&post_ref);
    uncount.folds.clear();
    uncount.uncounts.push(Uncount {
        records: vec![0],
        like: ann_ref.clone(),
    });
    let mut hot_uncount = uncount.clone();
    hot_uncount.via_delta = true;
    both.transact(&count(vec![hot_uncount.clone()]))
        .await
        .unwrap();
    both.transact(&count(vec![hot_uncount])).await.unwrap_err();

    // The transactional writer: like and count, a repeat refused; unlike with its decrement.
    let dan_like = like_of(&dan, &topic, pid);
    let like_and_count = [
        (ActionKind::Put, counting::put_counted_like(&dan_like, 1)),
        (ActionKind::Update, counting::move_counter(&topic, pid, 1)),
    ];
    both.transact(&like_and_count).await.unwrap();
    both.transact(&like_and_count).await.unwrap_err();
    both.write(
        ActionKind::Delete,
        &counting::delete_not_writer_counted(&dan, pid),
    )
    .await
    .unwrap_err();
    let unlike_counted = [
        (
            ActionKind::Delete,
            counting::delete_writer_counted(&dan, pid),
        ),
        (ActionKind::Update, counting::move_counter(&topic, pid, -1)),
    ];
    both.transact(&unlike_counted).await.unwrap();
    both.transact(&unlike_counted).await.unwrap_err();

    // The reads of the API and of the tools: the likers view, a user's likes, the whole table.
    let name = both.engine.name.clone();
    for shard in 0..2 {
        both.send(
            "Query",
            json!({"TableName": name, "IndexName": keys::GSI1,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": keys::GSI1PK},
                "ExpressionAttributeValues": {":pk": {"S": keys::post_view_shard(&pid, shard)}}}),
        )
        .await
        .unwrap();
    }
    both.send(
        "Query",
        json!({"TableName": name, "ConsistentRead": true,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": keys::PK, "#sk": keys::SK},
            "ExpressionAttributeValues": {":pk": {"S": format!("USER#{bob}")}, ":prefix": {"S": "LIKE#"}}}),
    )
    .await
    .unwrap();
    let engine_items = both
        .send("Scan", json!({"TableName": name, "ConsistentRead": true}))
        .await
        .unwrap();
    assert!(
        engine_items["Count"].as_u64().unwrap() >= 5,
        "the scan saw the items: {engine_items}"
    );

    // `rebuild`'s reads and correction, as the simulation sends them: scan pages of a
    // segment, the counter and the deltas read consistently, the GSI1 recount, and the
    // correction on a version that moved, then on the one read.
    let reads = [
        Request::Scan {
            segment: 0,
            start: None,
        },
        Request::Scan {
            segment: 1,
            start: None,
        },
        Request::Pending(post_ref.clone()),
        Request::CountView {
            post: post_ref.clone(),
            shards: 2,
        },
        Request::SetCount {
            post: post_ref.clone(),
            count: 1,
            version: Some("moved-since".into()),
        },
    ];
    for request in &reads {
        for (operation, body) in rebuild::requests(&name, request, 2) {
            let _ = both.send(operation, body).await;
        }
    }
    let [(operation, body)] = &rebuild::requests(&name, &Request::Counter(post_ref.clone()), 2)[..]
    else {
        panic!("one read of the counter")
    };
    let counter = both.send(operation, body.clone()).await.unwrap();
    let version = counter["Item"][attr::COUNT_VERSION]["S"]
        .as_str()
        .map(str::to_owned);
    let correct = Request::SetCount {
        post: post_ref.clone(),
        count: 1,
        version,
    };
    for (operation, body) in rebuild::requests(&name, &correct, 2) {
        both.send(operation, body)
            .await
            .expect("corrected on the version read");
    }

    // The stream: the same records, in the same order.
    let engine: Vec<Value> = both
        .engine_records()
        .await
        .iter()
        .map(record_essence)
        .collect();
    let model: Vec<Value> = both
        .model
        .new_records()
        .iter()
        .map(|raw| record_essence(&raw.value()))
        .collect();
    assert!(
        engine.len() >= 15,
        "the engine's stream holds every write: {}",
        engine.len()
    );
    assert_eq!(
        model, engine,
        "the model's stream differs from the engine's"
    );
    assert!(both.compared >= 30, "{} requests compared", both.compared);
}

/// Where the model departs on purpose, it follows DynamoDB's documentation: "Transactions will
/// be canceled [when] there is an ongoing TransactWriteItems operation that conflicts with a
/// concurrent TransactWriteItems request" (TransactionConflict as that item's reason); a
/// `PutItem`, `UpdateItem` or `DeleteItem` on an item a transaction holds is rejected with
/// `TransactionConflictException`; a partition takes at most 1,000 write units a second and
/// throttles beyond ("Throughput exceeds the current capacity"; in a transaction the reason
/// `ThrottlingError`), a transactional write costing two units per item
/// (developerguide/transaction-apis.html, bp-partition-key-design.html).
#[test]
fn the_models_departures_are_dynamodbs_conflicts_and_throttles() {
    let start = 1_767_225_600_000;
    let mut model = Table::new(
        "departures",
        start,
        TableSettings {
            partition_wcu: 10.0,
            hold_ms: 50,
            gsi1_delay_ms: (0, 0),
            ..TableSettings::default()
        },
        0,
    );
    let topic: TopicSlug = "t".parse().unwrap();
    // Posts of one topic share a partition; each put a fifth of a second apart.
    let posts: Vec<PostId> = (0..8).map(|_| PostId::generate()).collect();
    let put = |post: PostId| {
        let item = contracts::items::key_item(&ItemKey::Post(topic.clone(), post));
        json!({"TableName": "departures", "Item": wire::item(&item)})
    };
    for (i, post) in posts.iter().enumerate() {
        model
            .call("PutItem", &put(*post), start + 200 * i as i64)
            .unwrap();
    }
    let counter = |post: PostId| {
        wire::transaction(
            &[(ActionKind::Update, counting::move_counter(&topic, post, 1))],
            "departures",
        )
    };
    let now = start + 10_000;
    model
        .call("TransactWriteItems", &counter(posts[0]), now)
        .unwrap();
    let conflict = model
        .call("TransactWriteItems", &counter(posts[0]), now + 20)
        .unwrap_err();
    assert_eq!(
        conflict["CancellationReasons"][0]["Code"],
        "TransactionConflict"
    );
    let single = model.call("PutItem", &put(posts[0]), now + 30).unwrap_err();
    assert_eq!(wire::error_name(&single), "TransactionConflictException");
    model
        .call("TransactWriteItems", &counter(posts[0]), now + 60)
        .unwrap();

    // A full bucket of 10 units: five transactional writes (2 units each), then throttles.
    let now = now + 10_000;
    for (i, post) in posts[..5].iter().enumerate() {
        model
            .call("TransactWriteItems", &counter(*post), now + i as i64)
            .unwrap();
    }
    let throttled = model
        .call("TransactWriteItems", &counter(posts[5]), now + 5)
        .unwrap_err();
    assert_eq!(
        throttled["CancellationReasons"][0]["Code"],
        "ThrottlingError"
    );
    let plain = model.call("PutItem", &put(posts[6]), now + 6).unwrap_err();
    assert_eq!(wire::error_name(&plain), "ThrottlingException");
    // A second later the partition has its units again.
    model
        .call("TransactWriteItems", &counter(posts[5]), now + 1_006)
        .unwrap();
    assert_eq!(model.stats().conflicts, 1);
    assert_eq!(model.stats().write_conflicts, 1);
    assert_eq!(model.stats().throttled, 2);
}
