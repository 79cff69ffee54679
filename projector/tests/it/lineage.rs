//! Stream lineage: the poller against a constructed shard graph that the local engine cannot
//! produce. A small DynamoDB Streams endpoint serves the table's real records, redistributed
//! over a parent, two children, a grandchild that appears only once its parent has closed,
//! and an orphan whose parent was trimmed; it expires every fourth iterator. The poller must
//! read every parent to its end before any child, read the orphan, survive the expirations,
//! and end with exact counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{projector, until_converged};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bench::TestTable;
use contracts::dynamo::{Endpoint, sdk_config};
use contracts::items::Entity;
use projector::poller::{Poller, PollerSettings};
use serde_json::{Value, json};
use writer::WriteMode;

/// One constructed shard.
struct FakeShard {
    id: String,
    parent: Option<String>,
    records: Vec<Value>,
    /// Closed shards end; the open one keeps answering with a next iterator.
    closed: bool,
    /// Listed only once this shard has been read to its end.
    listed_after: Option<String>,
    /// Empty pages still to answer before the records (as GetRecords does while an iterator
    /// crosses a stretch without records).
    empty_pages: u32,
    /// Records before this index are past the stream's retention (trimmed).
    trimmed_before: usize,
    /// An open shard closes (rotates) once the stream has answered this many reads.
    closes_after_reads: Option<u64>,
}

impl FakeShard {
    /// A shard of `records`, listed from the start, with no empty pages and nothing trimmed.
    fn new(id: &str, parent: Option<&str>, records: &[Value], closed: bool) -> Self {
        Self {
            id: id.into(),
            parent: parent.map(Into::into),
            records: records.to_vec(),
            closed,
            listed_after: None,
            empty_pages: 0,
            trimmed_before: 0,
            closes_after_reads: None,
        }
    }
}

#[derive(Default)]
struct FakeStream {
    shards: Vec<FakeShard>,
    /// Shards read to their end.
    ended: Vec<String>,
    /// Every GetRecords call: (shard, whether it ended the shard).
    reads: Vec<(String, bool)>,
    calls: u64,
    expired: u64,
    /// The next this many GetRecords calls find their iterator expired.
    expire_next: u32,
}

type Shared = Arc<Mutex<FakeStream>>;

fn wire_error(kind: &str, message: &str) -> Response {
    let body =
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message});
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn wire(body: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

/// The DynamoDB Streams JSON protocol, for DescribeStream, GetShardIterator and GetRecords.
async fn streams_api(State(stream): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    let mut s = stream.lock().unwrap();
    let calls = s.calls;
    for shard in &mut s.shards {
        shard.closed |= shard.closes_after_reads.is_some_and(|n| calls >= n);
    }
    match target.rsplit('.').next().unwrap_or_default() {
        "DescribeStream" => {
            let shards: Vec<Value> = s
                .shards
                .iter()
                .filter(|shard| {
                    shard
                        .listed_after
                        .as_ref()
                        .is_none_or(|after| s.ended.contains(after))
                })
                .map(|shard| {
                    let mut range = json!({"StartingSequenceNumber": "1"});
                    if shard.closed {
                        range["EndingSequenceNumber"] = json!("99999999999999999999999");
                    }
                    let mut out = json!({"ShardId": shard.id, "SequenceNumberRange": range});
                    if let Some(parent) = &shard.parent {
                        out["ParentShardId"] = json!(parent);
                    }
                    out
                })
                .collect();
            wire(json!({"StreamDescription": {
                "StreamArn": request["StreamArn"],
                "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "Shards": shards,
            }}))
        }
        "GetShardIterator" => {
            let id = request["ShardId"].as_str().unwrap_or_default();
            let Some(shard) = s.shards.iter().find(|shard| shard.id == id) else {
                return wire_error("ResourceNotFoundException", "no such shard");
            };
            let trimmed = shard.trimmed_before;
            let position = match request["ShardIteratorType"].as_str() {
                Some("TRIM_HORIZON")
                    if shard.closed && trimmed >= shard.records.len() && trimmed > 0 =>
                {
                    return wire_error("TrimmedDataAccessException", "the whole shard was trimmed");
                }
                Some("TRIM_HORIZON") => trimmed,
                Some("LATEST") => shard.records.len(),
                Some("AFTER_SEQUENCE_NUMBER") => {
                    let sequence = request["SequenceNumber"].as_str().unwrap_or_default();
                    match shard
                        .records
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"] == sequence)
                    {
                        Some(i) if i + 1 < trimmed => {
                            return wire_error("TrimmedDataAccessException", "past retention");
                        }
                        Some(i) => i + 1,
                        None => return wire_error("ValidationException", "unknown sequence"),
                    }
                }
                _ => return wire_error("ValidationException", "unsupported iterator type"),
            };
            wire(json!({"ShardIterator": format!("{id}|{position}")}))
        }
        "GetRecords" => {
            s.calls += 1;
            if s.expire_next > 0 {
                s.expire_next -= 1;
                s.expired += 1;
                return wire_error("ExpiredIteratorException", "iterator expired");
            }
            if s.calls % 4 == 0 {
                s.expired += 1;
                return wire_error("ExpiredIteratorException", "iterator expired");
            }
            let iterator = request["ShardIterator"].as_str().unwrap_or_default();
            let (id, position) = iterator.split_once('|').unwrap_or_default();
            let position: usize = position.parse().unwrap_or_default();
            let limit = request["Limit"].as_u64().unwrap_or(1000) as usize;
            let Some(shard) = s.shards.iter_mut().find(|shard| shard.id == id) else {
                return wire_error("ResourceNotFoundException", "no such shard");
            };
            if shard.empty_pages > 0 {
                shard.empty_pages -= 1;
                return wire(json!({"Records": [], "NextShardIterator": iterator}));
            }
            let end = (position + limit).min(shard.records.len());
            let records = shard.records[position..end].to_vec();
            let ended = shard.closed && end == shard.records.len();
            let mut out = json!({"Records": records});
            if !ended {
                out["NextShardIterator"] = json!(format!("{id}|{end}"));
            }
            let id = id.to_owned();
            s.reads.push((id.clone(), ended));
            if ended && !s.ended.contains(&id) {
                s.ended.push(id);
            }
            wire(out)
        }
        _ => wire_error("UnknownOperationException", target),
    }
}

/// Every record of the table's (single-shard) stream on the local engine, in the wire format.
async fn real_records(table: &TestTable) -> Vec<Value> {
    let http = reqwest::Client::new();
    let call = |target: &'static str, body: Value| {
        let http = http.clone();
        let endpoint = table.endpoint.clone();
        async move {
            http.post(endpoint)
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amz-target", format!("DynamoDBStreams_20120810.{target}"))
                // SigV4 requires the request's date; the engine checks it is there.
                .header("x-amz-date", "20260101T000000Z")
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, \
                     SignedHeaders=host, Signature=0",
                )
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let table_description = table
        .client
        .describe_table()
        .table_name(&table.name)
        .send()
        .await
        .unwrap();
    let arn = table_description.table.unwrap().latest_stream_arn.unwrap();
    let stream = call("DescribeStream", json!({"StreamArn": arn})).await;
    let shard = stream["StreamDescription"]["Shards"][0]["ShardId"].clone();
    let iterator = call(
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let mut iterator = iterator["ShardIterator"].clone();
    let mut records = Vec::new();
    loop {
        let page = call("GetRecords", json!({"ShardIterator": iterator})).await;
        let batch = page["Records"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            return records;
        }
        records.extend(batch);
        iterator = page["NextShardIterator"].clone();
    }
}

/// Whether a record is about a like of `post`.
fn likes_post(record: &Value, post: &str) -> bool {
    record["dynamodb"]["Keys"]["SK"]["S"]
        .as_str()
        .is_some_and(|sk| sk.ends_with(post))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_are_read_before_children_through_expired_iterators() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let a = writer.create_post("lineage", "a").await;
    let b = writer.create_post("lineage", "b").await;
    for (op, post, user) in [
        ("like", &a, "u1"),
        ("like", &b, "u1"),
        ("like", &a, "u2"),
        ("unlike", &a, "u1"),
        ("like", &b, "u2"),
        ("like", &a, "u3"),
        ("unlike", &b, "u2"),
        ("like", &a, "u1"),
        ("unlike", &a, "u2"),
        ("like", &b, "u2"),
        ("like", &a, "u4"),
        ("unlike", &a, "u3"),
        ("like", &a, "u3"),
    ] {
        match op {
            "like" => writer.like("lineage", post, user).await,
            _ => writer.unlike("lineage", post, user).await,
        }
    }
    let records = real_records(&table).await;
    assert!(records.len() >= 15, "{} records", records.len());

    // Each item's records stay on one line of descent, in order: P, then C1 and its child G
    // for post a's likes, C2 for everything else.
    let split = records.len() * 2 / 5;
    let (parent, rest) = records.split_at(split);
    let (of_a, others): (Vec<Value>, Vec<Value>) =
        rest.iter().cloned().partition(|r| likes_post(r, &a));
    let (c1, g) = of_a.split_at(of_a.len() / 2);
    let shard = |id: &str, parent: Option<&str>, records: &[Value], closed, after: Option<&str>| {
        FakeShard {
            listed_after: after.map(Into::into),
            ..FakeShard::new(id, parent, records, closed)
        }
    };
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            // Listed children first: the poller must not take list order for lineage.
            shard("shard-c2", Some("shard-p"), &others, true, None),
            shard("shard-c1", Some("shard-p"), c1, true, None),
            shard("shard-g", Some("shard-c1"), g, false, Some("shard-c1")),
            shard("shard-orphan", Some("shard-trimmed"), &[], true, None),
            shard("shard-p", None, parent, true, None),
        ],
        ..FakeStream::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", axum::routing::post(streams_api))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let streams = aws_sdk_dynamodbstreams::Client::new(
        &sdk_config(&Endpoint {
            url: Some(endpoint),
        })
        .await,
    );
    let mut settings = PollerSettings::new(&table.name);
    settings.batch_size = 2;
    settings.idle_delay = Duration::from_millis(10);
    settings.discovery_interval = Duration::from_millis(200);
    let mut poller = Poller::new(projector(&table), table.client.clone(), streams, settings)
        .await
        .unwrap();
    let polling = tokio::spawn(async move { poller.run().await });

    let tallies = until_converged(&table, Duration::from_secs(60)).await;
    let counts: HashMap<String, i64> = tallies
        .into_iter()
        .map(|(post, (count, _, _))| (post.to_string(), count))
        .collect();
    assert_eq!(counts.get(&a), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&b), Some(&2), "{counts:?}");
    polling.abort();

    let s = fake.lock().unwrap();
    let ended_at = |id: &str| {
        s.reads
            .iter()
            .position(|(shard, ended)| shard == id && *ended)
    };
    let first_read = |id: &str| s.reads.iter().position(|(shard, _)| shard == id);
    for (child, parent) in [
        ("shard-c1", "shard-p"),
        ("shard-c2", "shard-p"),
        ("shard-g", "shard-c1"),
    ] {
        let (Some(first), Some(ended)) = (first_read(child), ended_at(parent)) else {
            panic!(
                "{child} or its parent {parent} was never read: {:?}",
                s.reads
            );
        };
        assert!(
            first > ended,
            "{child} read before {parent} ended: {:?}",
            s.reads
        );
    }
    assert!(
        ended_at("shard-orphan").is_some(),
        "the orphan was never read"
    );
    assert!(s.expired >= 3, "only {} iterators expired", s.expired);
}

/// Serve `stream` as a DynamoDB Streams endpoint on a loopback port; a client of it.
async fn serve_fake(stream: Shared) -> aws_sdk_dynamodbstreams::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", axum::routing::post(streams_api))
        .with_state(stream);
    tokio::spawn(async move { axum::serve(listener, app).await });
    aws_sdk_dynamodbstreams::Client::new(
        &sdk_config(&Endpoint {
            url: Some(endpoint),
        })
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_on_through_empty_pages() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("lineage", "p").await;
    for user in ["u1", "u2", "u3", "u4"] {
        writer.like("lineage", &post, user).await;
    }
    let records = real_records(&table).await;
    let (first, second) = records.split_at(records.len() / 2);
    // Both shards answer empty pages before their records; the open one stays open.
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            FakeShard {
                empty_pages: 3,
                ..FakeShard::new("shard-closed", None, first, true)
            },
            FakeShard {
                empty_pages: 4,
                ..FakeShard::new("shard-open", None, second, false)
            },
        ],
        ..FakeStream::default()
    }));
    let streams = serve_fake(fake.clone()).await;
    let mut settings = PollerSettings::new(&table.name);
    settings.checkpoints = false;
    settings.idle_delay = Duration::from_millis(10);
    let mut replay = Poller::new(projector(&table), table.client.clone(), streams, settings)
        .await
        .unwrap();
    let replayed = replay.catch_up(&|_| {}).await.unwrap();
    assert_eq!(
        replayed as usize,
        records.len(),
        "every record, past the empty pages"
    );
    let tallies = until_converged(&table, Duration::from_secs(30)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (4, 4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_past_retention_and_a_trimmed_parent_never_stop_the_poller() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("lineage", "p").await;
    for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        writer.like("lineage", &post, user).await;
    }
    let likes: Vec<Value> = real_records(&table)
        .await
        .into_iter()
        .filter(|r| likes_post(r, &post) && r["dynamodb"]["NewImage"]["type"]["S"] == "Like")
        .collect();
    assert_eq!(likes.len(), 6);
    // The parent is gone from the stream entirely; of the child, the first two records are past
    // retention, and the poller's checkpoint points at the first of them.
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            FakeShard {
                trimmed_before: 2,
                ..FakeShard::new("shard-old", None, &likes[..2], true)
            },
            FakeShard {
                trimmed_before: 2,
                ..FakeShard::new("shard-new", Some("shard-old"), &likes[2..], false)
            },
        ],
        ..FakeStream::default()
    }));
    let arn = bench::app::stream_arn(&table).await;
    let checkpoint = contracts::items::Checkpoint {
        stream: arn,
        shard: "shard-new".into(),
        sequence: likes[2]["dynamodb"]["SequenceNumber"]
            .as_str()
            .map(str::to_owned),
        finished: false,
    };
    table
        .put(contracts::items::Entity::to_item(&checkpoint))
        .await;
    let streams = serve_fake(fake).await;
    let mut settings = PollerSettings::new(&table.name);
    // LATEST for shards without a checkpoint: a trim must still resume at the oldest record.
    settings.start_at = projector::poller::StartAt::Latest;
    settings.idle_delay = Duration::from_millis(10);
    let mut poller = Poller::new(projector(&table), table.client.clone(), streams, settings)
        .await
        .unwrap();
    let polling = tokio::spawn(async move { poller.run().await });
    // The two records still retained are counted; the trimmed ones are for verify and rebuild.
    bench::eventually(
        "the retained records are counted",
        Duration::from_secs(30),
        || async {
            let tallies = crate::support::tallies(&table).await;
            match tallies.get(&post.parse().unwrap()) {
                Some((2, _, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    polling.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_meets_trimmed_records_says_so() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("lineage", "p").await;
    for user in ["u1", "u2", "u3"] {
        writer.like("lineage", &post, user).await;
    }
    let records = real_records(&table).await;
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            FakeShard {
                trimmed_before: 1,
                ..FakeShard::new("shard-gone", None, &records[..1], true)
            },
            FakeShard::new("shard-kept", Some("shard-gone"), &records[1..], true),
        ],
        ..FakeStream::default()
    }));
    let mut settings = PollerSettings::new(&table.name);
    settings.checkpoints = false;
    settings.idle_delay = Duration::from_millis(10);
    let mut replay = Poller::new(
        projector(&table),
        table.client.clone(),
        serve_fake(fake).await,
        settings,
    )
    .await
    .unwrap();
    let replayed = replay.catch_up(&|_| {}).await.unwrap();
    assert_eq!(
        replayed as usize,
        records.len() - 1,
        "what the stream still holds"
    );
    assert_eq!(
        replay.trims(),
        1,
        "the lost shard is reported, for verify and rebuild"
    );
}

/// DynamoDB rotates an open shard: it closes, and a child that holds the records written from
/// then on appears. The poller, having read the open shard to its (then) end and polled it idle,
/// reads it to its end again, checkpoints it finished, finds the child and reads it: every
/// record once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_shard_that_rotates_while_read_hands_over_to_its_child() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("lineage", "p").await;
    for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        writer.like("lineage", &post, user).await;
    }
    writer.unlike("lineage", &post, "u2").await;
    let records = real_records(&table).await;
    let (before, after) = records.split_at(records.len() / 2);
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            FakeShard {
                closes_after_reads: Some(30),
                ..FakeShard::new("shard-open", None, before, false)
            },
            FakeShard {
                listed_after: Some("shard-open".into()),
                ..FakeShard::new("shard-next", Some("shard-open"), after, false)
            },
        ],
        ..FakeStream::default()
    }));
    let streams = serve_fake(fake.clone()).await;
    let mut settings = PollerSettings::new(&table.name);
    settings.idle_delay = Duration::from_millis(10);
    settings.discovery_interval = Duration::from_millis(100);
    let mut poller = Poller::new(projector(&table), table.client.clone(), streams, settings)
        .await
        .unwrap();
    let polling = tokio::spawn(async move { poller.run().await });
    let tallies = until_converged(&table, Duration::from_secs(30)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (5, 5, 5));
    polling.abort();

    {
        let s = fake.lock().unwrap();
        let idle_reads = s
            .reads
            .iter()
            .take_while(|(shard, ended)| shard == "shard-open" && !ended)
            .count();
        assert!(
            idle_reads > 3,
            "rotated only after idle reads: {:?}",
            s.reads
        );
        let ended = s
            .reads
            .iter()
            .position(|(shard, ended)| shard == "shard-open" && *ended);
        let child = s.reads.iter().position(|(shard, _)| shard == "shard-next");
        assert!(
            matches!((ended, child), (Some(e), Some(c)) if c > e),
            "the child read after its parent ended: {:?}",
            s.reads
        );
    }
    let arn = bench::app::stream_arn(&table).await;
    let checkpoint = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(contracts::items::key_item(
            &contracts::keys::ItemKey::Checkpoint {
                stream: arn,
                shard: "shard-open".into(),
            },
        )))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the rotated shard's checkpoint");
    assert!(
        contracts::items::Checkpoint::from_item(checkpoint)
            .unwrap()
            .finished,
        "checkpointed as finished: a restart does not read it again"
    );
}

/// `poll --start-at latest`, as Lambda's LATEST: the shards there at the start are read from
/// their newest record on, and nothing written after the start is skipped, also when an
/// iterator expires before its shard handled a record (asking for LATEST again would skip what
/// came in between) and in a child found after the start (read from its first record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_at_latest_skips_nothing_written_after_the_start() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("lineage", "p").await;
    let fake: Shared = Arc::new(Mutex::new(FakeStream {
        shards: vec![
            FakeShard::new("shard-open", None, &[], false),
            FakeShard {
                listed_after: Some("shard-open".into()),
                ..FakeShard::new("shard-next", Some("shard-open"), &[], false)
            },
        ],
        ..FakeStream::default()
    }));
    let streams = serve_fake(fake.clone()).await;
    let mut settings = PollerSettings::new(&table.name);
    settings.start_at = projector::poller::StartAt::Latest;
    settings.idle_delay = Duration::from_millis(10);
    settings.discovery_interval = Duration::from_millis(100);
    let mut poller = Poller::new(projector(&table), table.client.clone(), streams, settings)
        .await
        .unwrap();
    let polling = tokio::spawn(async move { poller.run().await });
    let reads = || fake.lock().unwrap().reads.len();
    bench::eventually(
        "the poller reads the open shard",
        Duration::from_secs(10),
        || async { if reads() >= 2 { Ok(()) } else { Err(reads()) } },
    )
    .await;

    // Likes after the start arrive on the open shard just as its iterator expires.
    let seen = real_records(&table).await.len();
    for user in ["u1", "u2", "u3"] {
        writer.like("lineage", &post, user).await;
    }
    let first = real_records(&table).await[seen..].to_vec();
    {
        let mut s = fake.lock().unwrap();
        s.shards[0].records.extend(first);
        s.expire_next = 1;
    }
    // More come on the child the shard rotates to, found after the start.
    let seen = real_records(&table).await.len();
    for user in ["u4", "u5"] {
        writer.like("lineage", &post, user).await;
    }
    writer.unlike("lineage", &post, "u1").await;
    let second = real_records(&table).await[seen..].to_vec();
    {
        let mut s = fake.lock().unwrap();
        s.shards[1].records.extend(second);
        let calls = s.calls;
        s.shards[0].closes_after_reads = Some(calls + 10);
    }
    let tallies = until_converged(&table, Duration::from_secs(30)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (4, 4, 4));
    polling.abort();
    let s = fake.lock().unwrap();
    assert!(
        s.ended.contains(&"shard-open".to_owned()),
        "the open shard rotated"
    );
    assert!(
        s.reads.iter().any(|(shard, _)| shard == "shard-next"),
        "the child was read"
    );
}
