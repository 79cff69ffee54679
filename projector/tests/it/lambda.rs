//! The Lambda function on a recorded DynamoDB stream event, against the local engine.

use bench::TestTable;
use chrono::Utc;
use contracts::items::{Entity, Like, Post, key_item};
use contracts::keys::ItemKey;
use projector::apply::Outcome;
use projector::deadline::Deadline;
use projector::lambda::handle_event;
use serde_json::Value;

const EVENT: &str = include_str!("../fixtures/stream-event.json");

/// The items the recorded event speaks of: the post and the two likes.
async fn seed(table: &TestTable, event: &Value) {
    let post = Post {
        topic: "rust".parse().unwrap(),
        post_id: "3MWegQAzX131iEzNiqwKNUSMIPx".parse().unwrap(),
        author_id: "ann".parse().unwrap(),
        title: "Streams as projections".into(),
        body: String::new(),
        created_at: Utc::now(),
        like_count: 0,
        view_shards: 1,
    };
    let mut items = vec![post.to_item()];
    for record in &event["Records"].as_array().unwrap()[..2] {
        let image: serde_dynamo::Item =
            serde_json::from_value(record["dynamodb"]["NewImage"].clone()).unwrap();
        let like: Like = Like::from_item(image.into()).unwrap();
        items.push(like.to_item());
    }
    for item in items {
        table.put(item).await;
    }
}

async fn like_count(table: &TestTable) -> i64 {
    let key = ItemKey::Post(
        "rust".parse().unwrap(),
        "3MWegQAzX131iEzNiqwKNUSMIPx".parse().unwrap(),
    );
    Post::from_item(table.get(&key).await.unwrap())
        .unwrap()
        .like_count
}

#[tokio::test]
async fn a_recorded_event_is_projected_and_its_bad_record_quarantined() {
    let table = TestTable::new().await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    seed(&table, &event).await;
    let projector = crate::support::projector(&table);

    let response = handle_event(&projector, &event, Deadline::NONE)
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "the bad record does not fail the batch"
    );
    assert_eq!(like_count(&table).await, 2);

    let quarantined = crate::support::scan(&table)
        .await
        .into_iter()
        .filter(|item| {
            item.get("type")
                .and_then(|t| t.as_s().ok())
                .is_some_and(|t| t == "Quarantine")
        })
        .collect::<Vec<_>>();
    assert_eq!(
        quarantined.len(),
        1,
        "the undecodable record is kept for operators"
    );
    assert_eq!(
        quarantined[0]["sequence"].as_s().unwrap(),
        "100000000001000000004"
    );
    assert!(
        quarantined[0]["record"]
            .as_s()
            .unwrap()
            .contains("not a DynamoDB type")
    );

    // Lambda delivers at least once: the same event again changes nothing.
    let again = handle_event(&projector, &event, Deadline::NONE)
        .await
        .unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(like_count(&table).await, 2);
}

#[tokio::test]
async fn a_like_taken_back_before_it_is_counted_cancels_no_transaction() {
    let table = TestTable::new().await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    seed(&table, &event).await;
    // Ben unlikes before the projector reads his like; the REMOVE is in a later batch.
    let records = event["Records"].as_array().unwrap();
    let image: serde_dynamo::Item =
        serde_json::from_value(records[1]["dynamodb"]["NewImage"].clone()).unwrap();
    let bens = Like::from_item(image.into()).unwrap();
    table
        .client
        .delete_item()
        .table_name(&table.name)
        .set_key(Some(key_item(&bens.item_key())))
        .send()
        .await
        .unwrap();

    let report = crate::support::projector(&table)
        .handle(records)
        .await
        .unwrap();
    assert_eq!(report.outcomes[0], Outcome::Applied, "ann's like counts");
    assert_eq!(report.outcomes[1], Outcome::Redundant, "ben's is gone");
    assert_eq!(
        report.metrics.cancelled, 0,
        "the doomed mark was dropped before it could cancel the transaction it shared with ann's"
    );
    assert!(report.first_failure.is_none());
    assert_eq!(like_count(&table).await, 1);
}

#[tokio::test]
async fn a_batch_that_cannot_be_applied_reports_its_lowest_record() {
    // A table that does not exist: every write fails, so the first record to apply is reported.
    let table = TestTable::new().await;
    let projector = projector::handler::Projector::new(projector::apply::Applier::new(
        table.client.clone(),
        "no-such-table",
    ));
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let response = handle_event(&projector, &event, Deadline::NONE)
        .await
        .unwrap();
    let failures: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failures, [Some("100000000001000000001".to_owned())]);
}

#[tokio::test]
async fn an_event_without_records_fails_the_invocation() {
    let table = TestTable::new().await;
    let projector = crate::support::projector(&table);
    assert!(
        handle_event(&projector, &serde_json::json!({"foo": 1}), Deadline::NONE)
            .await
            .is_err()
    );
}

#[test]
fn the_function_without_a_table_stops_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env_remove("TABLE_NAME")
        .env("STAGE", "test")
        .output()
        .expect("run the projector");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without TABLE_NAME");
    assert!(
        stderr.contains("TABLE_NAME") || stderr.contains("--table"),
        "{stderr}"
    );
}
