//! The projector binary on a real Lambda runtime (cargo-lambda's emulator), answering AWS's own
//! sample DynamoDB stream events: items of other shapes never fail the batch, and records that
//! share a sequence number are quarantined each on its own.

use bench::TestTable;
use bench::lambda_runtime::{RuntimeEmulator, sample_event};
use serde_json::{Value, json};

fn quarantined(items: &[contracts::items::Item]) -> Vec<String> {
    let mut keys: Vec<String> = items
        .iter()
        .filter(|i| {
            i.get("type")
                .and_then(|t| t.as_s().ok())
                .map(String::as_str)
                == Some("Quarantine")
        })
        .filter_map(|i| i.get("SK").and_then(|k| k.as_s().ok()).cloned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awss_sample_stream_events_never_fail_a_batch_on_a_real_runtime() {
    let table = TestTable::new().await;
    let emulator = RuntimeEmulator::start();
    let _function = emulator.start_function(env!("CARGO_BIN_EXE_projector"), &table, &[]);

    // Two records of another table's items, sharing one sequence number.
    let event = sample_event("example-dynamodb-event.json");
    let records = event["Records"].as_array().unwrap();
    assert_eq!(
        records[0]["dynamodb"]["SequenceNumber"], records[1]["dynamodb"]["SequenceNumber"],
        "the sample's records share a sequence number"
    );
    let answer = emulator.invoke(&event).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}), "nothing to retry");
    let items = crate::support::scan(&table).await;
    let sequence = records[0]["dynamodb"]["SequenceNumber"].as_str().unwrap();
    let mut expected: Vec<String> = records
        .iter()
        .map(|r| format!("SEQ#{sequence}#{}", r["eventID"].as_str().unwrap()))
        .collect();
    expected.sort();
    assert_eq!(
        quarantined(&items),
        expected,
        "each record quarantined on its own"
    );

    // A record with optional fields only (no sequence number, no creation time).
    let record = sample_event("example-dynamodb-event-record-with-optional-fields.json");
    let answer = emulator
        .invoke(&json!({"Records": [record]}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let items = crate::support::scan(&table).await;
    assert_eq!(
        quarantined(&items).len(),
        3,
        "quarantined too: {:?}",
        quarantined(&items)
    );

    // Not an event at all: the invocation fails (Lambda retries and bisects), the function lives.
    let failed = emulator.invoke(&json!({"foo": 1})).await.unwrap_err();
    assert_eq!(failed["errorType"], "NoRecords", "{failed}");
    let answer: Value = emulator.invoke(&event).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}), "still serving");
}
