//! The writer and the projector built in-process on a test table: the one way tests make an
//! `AppState`, a `Projector` and a running poller.

use std::time::Duration;

use projector::apply::Applier;
use projector::handler::Projector;
use projector::poller::{Poller, PollerSettings, StartAt};
use writer::cursor::CursorCodec;
use writer::identity::IdentitySource;
use writer::store::Store;
use writer::{AppState, WriteMode, serve_on_loopback};

use crate::local::TestTable;
use crate::permissions::{Function, dynamodb_for, streams_for};
use crate::writer_client::WriterClient;

/// The cursor secret of in-process writers.
pub const CURSOR_SECRET: &str = "test-secret";

/// A DynamoDB client of `endpoint` (a proxy in front of the local engine, or nothing at all), as
/// the binaries configure theirs.
pub async fn client_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = contracts::dynamo::sdk_config(&contracts::dynamo::Endpoint {
        url: Some(endpoint.to_owned()),
    })
    .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// The writer's state on `table` through `client`, signing cursors with [`CURSOR_SECRET`].
pub fn app_state(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mode: WriteMode,
    identity: IdentitySource,
) -> AppState {
    app_state_signing(
        client,
        table,
        mode,
        identity,
        CursorCodec::new(CURSOR_SECRET),
    )
}

/// [`app_state`] with cursors of its own.
pub fn app_state_signing(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mode: WriteMode,
    identity: IdentitySource,
    cursors: CursorCodec,
) -> AppState {
    AppState::new(
        Store::new(dynamodb_for(client, Function::Writer), table),
        mode,
        identity,
        cursors,
        1000,
    )
}

/// The writer served over HTTP on a loopback port (dev identity header); its base URL.
pub async fn serve_writer(table: &TestTable, mode: WriteMode, identity: IdentitySource) -> String {
    serve_on_loopback(app_state(&table.client, &table.name, mode, identity))
        .await
        .expect("serve the writer")
}

/// A client of a writer served on `table` (dev identity header).
pub async fn writer_client(table: &TestTable, mode: WriteMode) -> WriterClient {
    WriterClient::new(serve_writer(table, mode, IdentitySource::DevHeader).await)
}

/// The projection of `table`, as the projector Lambda runs it.
pub fn projector(table: &TestTable) -> Projector {
    Projector::new(Applier::new(
        dynamodb_for(&table.client, Function::Projector),
        &table.name,
    ))
}

/// The projection of `table` as one Lambda instance whose every call goes through `model`
/// (which may inject faults).
pub async fn projector_through(
    model: &crate::contention::ContentionModel,
    table: &TestTable,
) -> Projector {
    Projector::new(Applier::new(client_at(&model.endpoint).await, &table.name))
}

/// A client of the writer (dev identity header) on `table`, served on a loopback port, whose
/// every call goes through `model`.
pub async fn writer_through(
    model: &crate::contention::ContentionModel,
    table: &TestTable,
    mode: WriteMode,
) -> WriterClient {
    let client = client_at(&model.endpoint).await;
    let state = app_state(&client, &table.name, mode, IdentitySource::DevHeader);
    WriterClient::new(serve_on_loopback(state).await.expect("serve the writer"))
}

/// The records of `records` that the deployed event filters pass, in order: what Lambda's
/// event source hands the function.
pub fn through_filters(records: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let filter = contracts::filters::Filter::deployed();
    records
        .iter()
        .filter(|r| filter.passes(r))
        .cloned()
        .collect()
}

/// The second hop, as the event source would hand it on: the stream's records after its first
/// `seen` (the deltas counting wrote), through the deployed filters, to a fresh projector; all
/// of them applied.
pub async fn deliver_written_since(
    table: &TestTable,
    seen: usize,
) -> projector::handler::BatchReport {
    let written = stream_records(table).await;
    let report = projector(table)
        .handle(&through_filters(&written[seen..]))
        .await
        .expect("records with sequence numbers");
    assert!(report.first_failure.is_none(), "{:?}", report.metrics);
    report
}

/// A DynamoDB client as the operator commands (`replay`, `verify`, `rebuild`) use it.
pub fn operator_client(table: &TestTable) -> aws_sdk_dynamodb::Client {
    dynamodb_for(&table.client, Function::Operator)
}

/// A Streams client as the operator commands use it.
pub fn operator_streams(table: &TestTable) -> aws_sdk_dynamodbstreams::Client {
    streams_for(&table.streams, Function::Operator)
}

/// `replay` of `table`'s stream, as the operator command runs it: no checkpoints, every call
/// made with the operator's permissions.
pub async fn replay(table: &TestTable) -> Poller {
    Poller::replay(
        Applier::new(operator_client(table), &table.name),
        operator_client(table),
        operator_streams(table),
        &table.name,
        None,
        1000,
    )
    .await
    .expect("replay starts")
}

/// Poller settings for tests: quick idle polls.
fn poller_settings(table: &TestTable, start_at: StartAt) -> PollerSettings {
    let mut settings = PollerSettings::new(&table.name);
    settings.start_at = start_at;
    settings.idle_delay = Duration::from_millis(20);
    settings
}

/// A poller on `table` with `settings`.
async fn poller(table: &TestTable, settings: PollerSettings) -> Poller {
    Poller::new(
        projector(table),
        table.client.clone(),
        table.streams.clone(),
        settings,
    )
    .await
    .expect("poller starts")
}

/// The poller, running in the background until the handle is aborted or dropped with the
/// runtime.
pub async fn start_poller(table: &TestTable) -> tokio::task::JoinHandle<()> {
    start_poller_at(table, StartAt::TrimHorizon).await
}

/// The poller, starting shards without a checkpoint at `start_at`.
pub async fn start_poller_at(table: &TestTable, start_at: StartAt) -> tokio::task::JoinHandle<()> {
    let mut poller = poller(table, poller_settings(table, start_at)).await;
    tokio::spawn(async move {
        poller.run().await;
    })
}

/// The ARN of `table`'s stream.
pub async fn stream_arn(table: &TestTable) -> String {
    table
        .client
        .describe_table()
        .table_name(&table.name)
        .send()
        .await
        .expect("describe the table")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream")
}

/// The id of the first shard of `table`'s stream (the local engine's only one).
pub async fn first_shard(table: &TestTable, arn: &str) -> String {
    shard_ids(&table.streams, arn)
        .await
        .into_iter()
        .next()
        .expect("the stream has a shard")
}

/// The ids of the stream's shards, as `DescribeStream` lists them.
async fn shard_ids(streams: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Vec<String> {
    streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .expect("describe the stream")
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|shard| shard.shard_id)
        .collect()
}

/// Every record of `table`'s stream so far, as Lambda delivers them (the table is quiet: the
/// stream is read until a read returns nothing).
pub async fn stream_records(table: &TestTable) -> Vec<serde_json::Value> {
    let arn = stream_arn(table).await;
    let mut records = Vec::new();
    for mut iterator in trim_horizon_iterators(&table.streams, &arn).await {
        while let Some(current) = iterator {
            let page = table
                .streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("read the stream");
            let read = page.records.unwrap_or_default();
            if read.is_empty() {
                break;
            }
            records.extend(read.into_iter().map(|r| {
                serde_json::to_value(contracts::change::from_streams_record(r, &arn))
                    .expect("records serialize")
            }));
            iterator = page.next_shard_iterator;
        }
    }
    records
}

/// An iterator at the oldest record of each of the stream's shards.
pub async fn trim_horizon_iterators(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
) -> Vec<Option<String>> {
    let shards = shard_ids(streams, arn).await;
    let mut iterators = Vec::with_capacity(shards.len());
    for shard in shards {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator;
        iterators.push(iterator);
    }
    iterators
}
