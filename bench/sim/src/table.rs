//! The simulation's table: dynoxide's storage, in process and on the world's clock, evaluates
//! items, condition and update expressions, transactions with their cancellation reasons, and
//! writes the stream; in front of it, the contention rules of [`bench::contention`] (the same
//! code as the proxy's) answer what one engine on one machine never does: transactions that
//! overlap on an item, single writes meeting a transaction, partitions over 1,000 write units
//! a second. Behind it, what the engine does at once and DynamoDB does not: GSI1 shows writes
//! late ([`crate::replica`]), the stream trims records older than 24 hours, and TTL removes
//! items when the world says time has passed ([`Table::expire`]). Requests and answers are
//! DynamoDB's JSON, as on the wire, so the conformance suite can send each one to this table
//! and to the local engine and compare.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use contracts::keys;
use contracts::table::TABLE;
use dynoxide::actions;
use dynoxide::storage::Storage;
use dynoxide::storage_backend::Clock;
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::replica::{Replica, Viewed};
use bench::contention::{
    ContentionStats, ItemId, Limits, Rules, SecondUsage, refusal_body, write_actions,
};
use bench::local::STREAM_INDEXES;

/// The world's clock, in epoch milliseconds, as dynoxide reads it (stream record times,
/// sequence numbers, TTL).
#[derive(Debug, Default)]
pub(crate) struct VirtualClock(AtomicI64);

impl VirtualClock {
    pub(crate) fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_unix_secs(&self) -> u64 {
        (self.0.load(Ordering::SeqCst) / 1000) as u64
    }

    fn now_unix_secs_f64(&self) -> f64 {
        self.0.load(Ordering::SeqCst) as f64 / 1000.0
    }
}

/// How the table behaves beyond what the engine evaluates.
#[derive(Debug, Clone, Copy)]
pub struct TableSettings {
    /// Write units a second of one partition of the table or of GSI1 (DynamoDB: 1,000).
    pub partition_wcu: f64,
    /// How long a transaction holds its items after it lands (DynamoDB's commit).
    pub hold_ms: i64,
    /// Write units a second of the whole table, and of GSI1: the table-level quota
    /// (DynamoDB on demand: 40,000 unless raised).
    pub table_wcu: f64,
    /// How long GSI1 takes to show a write, drawn per write in `[min, max]` milliseconds
    /// ([`crate::replica`]).
    pub gsi1_delay_ms: (i64, i64),
    /// How long the stream keeps a record (DynamoDB Streams: 24 hours).
    pub stream_retention_ms: i64,
}

impl Default for TableSettings {
    fn default() -> Self {
        Self {
            partition_wcu: 1_000.0,
            hold_ms: 10,
            table_wcu: 40_000.0,
            gsi1_delay_ms: (10, 1_000),
            stream_retention_ms: STREAM_RETENTION_MS,
        }
    }
}

/// How long DynamoDB Streams keeps a record: 24 hours.
pub const STREAM_RETENTION_MS: i64 = 24 * 3_600_000;

/// DynamoDB's error answer: its body, with `__type` naming the error.
pub type Refusal = Value;

/// The table and its stream.
pub struct Table {
    storage: Storage,
    clock: Arc<VirtualClock>,
    /// The table's name.
    pub name: String,
    rules: Rules,
    settings: TableSettings,
    stream_arn: String,
    shard_id: String,
    /// The last stream record read from the engine: each record is read once, handed to the
    /// replica, kept in `fresh` for the event source and in `log` for replays.
    pulled_to: Option<u128>,
    /// Records read from the engine that [`Table::new_records`] has not handed out yet.
    fresh: Vec<RawRecord>,
    /// The stream's last records as read from the engine, at most `log_records`; a replay
    /// reads older ones from the engine again.
    log: VecDeque<RawRecord>,
    log_records: usize,
    /// The log holds every record after this one (`None`: every record).
    log_after: Option<u128>,
    /// GSI1 as readers see it.
    replica: Replica,
    /// Likes that entered GSI1 since [`Table::viewed`] last handed them out.
    viewed: Vec<Viewed>,
    /// (last sequence number, time) after each write the replica has not taken yet.
    written: VecDeque<(u128, i64)>,
    /// The sequence number of the last stream record written: readers already past it have
    /// nothing to read (most polls, once the load stops), so they skip the engine.
    latest: Option<u128>,
}

/// Run one of dynoxide's actions on a JSON request: the request parsed as the engine's
/// server parses it, the answer or the error as it would write it.
macro_rules! dispatch {
    ($storage:expr, $operation:expr, $body:expr, { $($name:literal => $module:ident :: $request:ident),* $(,)? }) => {
        match $operation {
            $($name => match <actions::$module::$request as serde::Deserialize>::deserialize($body) {
                Err(e) => Err(json!({
                    "__type": "com.amazon.coral.validate#ValidationException",
                    "message": e.to_string(),
                })),
                Ok(request) => actions::$module::execute($storage, request)
                    .now_or_never()
                    .expect("dynoxide's storage never waits")
                    .map(|answer| serde_json::to_value(answer).expect("answers serialize"))
                    .map_err(|e| serde_json::from_str(&e.to_json()).expect("errors serialize")),
            },)*
            other => Err(json!({
                "__type": "com.amazon.coral.service#UnknownOperationException",
                "message": format!("the simulation's table does not serve {other}"),
            })),
        }
    };
}

impl Table {
    /// A table named `name`, as `contracts::table::TABLE` defines it, with its stream, at
    /// `now_ms`; `seed` draws GSI1's delays.
    pub fn new(name: &str, now_ms: i64, settings: TableSettings, seed: u64) -> Self {
        let clock = Arc::new(VirtualClock::default());
        clock.set(now_ms);
        let storage = Storage::memory()
            .expect("an in-memory database")
            .with_clock(clock.clone());
        storage
            .conn()
            .execute_batch(STREAM_INDEXES)
            .expect("index the stream records");
        // Room for every statement the table and its replica run, so that none is parsed
        // again (bench/vendor/dynoxide-rs.patch).
        storage
            .conn()
            .set_prepared_statement_cache_capacity(STATEMENTS);
        let mut table = Self {
            storage,
            clock,
            name: name.to_owned(),
            rules: Rules::default(),
            settings,
            stream_arn: String::new(),
            shard_id: String::new(),
            pulled_to: None,
            fresh: Vec::new(),
            log: VecDeque::new(),
            log_records: LOG_RECORDS,
            log_after: None,
            replica: Replica::new(format!("{name}-gsi1"), settings.gsi1_delay_ms, seed),
            viewed: Vec::new(),
            written: VecDeque::new(),
            latest: None,
        };
        let mut replica = create_table_body(&table.replica.name);
        replica
            .as_object_mut()
            .expect("a request")
            .remove("StreamSpecification");
        table
            .engine("CreateTable", &replica)
            .expect("create GSI1's replica");
        let created = table
            .engine("CreateTable", &create_table_body(name))
            .expect("create the table");
        table.stream_arn = created["TableDescription"]["LatestStreamArn"]
            .as_str()
            .expect("a stream")
            .to_owned();
        table
            .engine(
                "UpdateTimeToLive",
                &json!({"TableName": name, "TimeToLiveSpecification":
                    {"AttributeName": TABLE.ttl_attribute, "Enabled": true}}),
            )
            .expect("enable TTL");
        let stream = table
            .engine("DescribeStream", &json!({"StreamArn": table.stream_arn}))
            .expect("describe the stream");
        table.shard_id = stream["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .expect("a shard")
            .to_owned();
        table
    }

    fn limits(&self) -> Limits {
        Limits {
            partition: self.settings.partition_wcu,
            table: self.settings.table_wcu,
        }
    }

    /// What the contention rules did so far.
    pub fn stats(&self) -> &ContentionStats {
        &self.rules.stats
    }

    /// Each virtual second's write units and throttles, by epoch second.
    pub fn usage(&self) -> &BTreeMap<i64, SecondUsage> {
        self.rules.seconds()
    }

    /// The most write units one partition, and the whole table, took in one virtual second.
    pub fn peak_units(&self) -> (f64, f64) {
        self.rules.peak_units()
    }

    /// The most writes the item of `post` took within any one virtual second.
    pub fn max_post_writes_per_second(&self, post: &str) -> usize {
        self.rules.max_post_writes_per_second(post)
    }

    /// A request to the engine alone, at the clock's time.
    fn engine(&self, operation: &str, body: &Value) -> Result<Value, Refusal> {
        let storage = &self.storage;
        dispatch!(storage, operation, body, {
            "CreateTable" => create_table::CreateTableRequest,
            "UpdateTimeToLive" => update_time_to_live::UpdateTimeToLiveRequest,
            "DescribeStream" => describe_stream::DescribeStreamRequest,
            "GetItem" => get_item::GetItemRequest,
            "BatchGetItem" => batch_get_item::BatchGetItemRequest,
            "Query" => query::QueryRequest,
            "Scan" => scan::ScanRequest,
            "PutItem" => put_item::PutItemRequest,
            "UpdateItem" => update_item::UpdateItemRequest,
            "DeleteItem" => delete_item::DeleteItemRequest,
            "TransactWriteItems" => transact_write_items::TransactWriteItemsRequest,
        })
    }

    /// Put an item before the run, outside DynamoDB's limits (the world's starting data).
    pub fn load(&mut self, item: &contracts::items::Item) {
        let body = json!({"TableName": self.name, "Item": crate::wire::item(item)});
        self.engine("PutItem", &body).expect("put an item");
        let now_ms = self.now_ms();
        self.mark_written(now_ms);
    }

    /// Grow the database past SQLite's page at 1 GiB (`PENDING_BYTE`) before a run that will
    /// write that much anyway; the pages, freed, then take the table's items.
    ///
    /// The database is in memory, where the page cache is the database, and each commit trims
    /// that cache to the database's size. A B-tree rebalance that swaps two pages parks one at
    /// the page past 1 GiB, and while the database is smaller than that, the trim scans the
    /// whole cache: every write that rebalanced cost time in proportion to the database (24 %
    /// of a 3 s viral run, growing until the database passed 1 GiB). (SQLite's `memdb`, whose
    /// cache is small, stops short of 2 GiB; a viral minute's table is larger.)
    pub fn presize(&mut self) {
        self.storage
            .conn()
            .execute_batch(&format!(
                "CREATE TABLE sim_presize (filler BLOB);
                 INSERT INTO sim_presize VALUES (zeroblob({half})), (zeroblob({half}));
                 DROP TABLE sim_presize;",
                half = PRESIZE_BYTES / 2,
            ))
            .expect("presize the database");
    }

    /// A request as DynamoDB answers it at `now_ms`: refused for contention, else evaluated
    /// by the engine. A transaction it admits holds its items for the settings' `hold_ms`,
    /// whether its conditions hold or not (DynamoDB locks them while it decides).
    pub fn call(&mut self, operation: &str, body: &Value, now_ms: i64) -> Result<Value, Refusal> {
        self.clock.set(now_ms);
        if operation == "Query" && body["IndexName"] == TABLE.gsi1.name {
            self.propagate(now_ms);
            let mut body = body.clone();
            body["TableName"] = Value::from(self.replica.name.clone());
            return self.engine(operation, &body);
        }
        let stored = |item: &ItemId| self.stored_index(item);
        let writes = write_actions(operation, body, &stored);
        if writes.is_empty() {
            return self.engine(operation, body);
        }
        let now = now_ms as f64 / 1000.0;
        let transaction = operation == "TransactWriteItems";
        if let Err(refused) = self.rules.admit(&writes, transaction, self.limits(), now) {
            return Err(refusal_body(&refused, writes.len(), transaction));
        }
        let answer = self.engine(operation, body);
        if answer.is_ok() {
            self.mark_written(now_ms);
        }
        if transaction {
            let until = (now_ms + self.settings.hold_ms) as f64 / 1000.0;
            self.rules.hold(&writes, until);
        }
        if answer.is_ok() {
            self.rules.written(&writes, now);
        }
        answer
    }

    /// The GSI1 partition of an item as stored, if it is in GSI1.
    fn stored_index(&self, (pk, sk): &ItemId) -> Option<String> {
        let key = json!({keys::PK: {"S": pk}, keys::SK: {"S": sk}});
        let found = self
            .engine(
                "GetItem",
                &json!({"TableName": self.name, "Key": key, "ConsistentRead": true}),
            )
            .ok()?;
        found["Item"][keys::GSI1PK]["S"].as_str().map(str::to_owned)
    }

    /// Up to `limit` stream records after the one with sequence number `after` (from the
    /// trim horizon without one), in order: the engine's stream has one shard, so its
    /// iterator is the position itself, made as `GetShardIterator` makes it.
    fn stream_page(&self, after: Option<u128>, limit: usize) -> Vec<actions::get_records::Record> {
        let position = after
            .or_else(|| self.trimmed_to())
            .map_or(0, |sequence| (sequence - SEQUENCE_OFFSET) as i64);
        let request = actions::get_records::GetRecordsRequest {
            shard_iterator: actions::get_shard_iterator::encode_shard_iterator(
                &self.name,
                &self.shard_id,
                position,
            ),
            limit: Some(limit.min(1000)),
        };
        actions::get_records::execute(&self.storage, request)
            .now_or_never()
            .expect("dynoxide's storage never waits")
            .expect("stream records")
            .records
    }

    /// A record of [`Self::stream_page`] as Lambda's event carries it.
    fn raw(&self, record: &actions::get_records::Record) -> RawRecord {
        let json = serde_json::to_string(&InEvent {
            record,
            event_source_arn: &self.stream_arn,
        })
        .expect("records serialize");
        RawRecord {
            sequence: sequence(record),
            json: json.into(),
        }
    }

    /// Up to `limit` records after the one with sequence number `after` (from the trim
    /// horizon without one) as Lambda's event carries them: a replay's read.
    pub fn records_after(&mut self, after: Option<u128>, limit: usize) -> Vec<RawRecord> {
        self.pull();
        let after = after.or_else(|| self.trimmed_to());
        let logged = match (self.log_after, after) {
            (None, _) => true,
            (Some(log_after), Some(after)) => log_after <= after,
            (Some(_), None) => false,
        };
        if !logged {
            return self
                .stream_page(after, limit)
                .iter()
                .map(|record| self.raw(record))
                .collect();
        }
        let start = after.map_or(0, |after| {
            self.log.partition_point(|raw| raw.sequence <= after)
        });
        self.log.range(start..).take(limit).cloned().collect()
    }

    /// The last record the stream has trimmed (older than its retention), if any: a read from
    /// the trim horizon starts after it. The engine keeps every record.
    fn trimmed_to(&self) -> Option<u128> {
        let horizon = (self.now_ms() - self.settings.stream_retention_ms).div_euclid(1000);
        self.last_sequence(horizon)
    }

    /// The stream's last sequence number among the records written before `before_secs`.
    fn last_sequence(&self, before_secs: i64) -> Option<u128> {
        let stored: Option<i64> = self
            .storage
            .conn()
            .prepare_cached(
                "SELECT MAX(CAST(sequence_number AS INTEGER)) FROM _stream_records
                 WHERE table_name = ?1 AND created_at < ?2",
            )
            .and_then(|mut statement| {
                statement.query_row(rusqlite::params![&self.name, before_secs], |row| row.get(0))
            })
            .expect("the stream's sequence numbers");
        stored.map(public_sequence)
    }

    /// Remove the items whose time to live passed by `now_ms`, as DynamoDB's TTL does (each
    /// removal in the stream as the service's); how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        self.clock.set(now_ms);
        let expired = dynoxide::ttl::sweep_expired_items(&self.storage)
            .now_or_never()
            .expect("dynoxide's storage never waits")
            .expect("a TTL sweep");
        self.mark_written(now_ms);
        expired
    }

    /// Note that the stream's records so far were written by `now_ms` (the engine dates
    /// records to the second; GSI1's delays run from the millisecond).
    fn mark_written(&mut self, now_ms: i64) {
        let last = self.last_sequence(i64::MAX);
        let Some(last) = last else { return };
        self.latest = Some(last);
        if self
            .written
            .back()
            .is_none_or(|(sequence, _)| *sequence < last)
        {
            self.written.push_back((last, now_ms));
        }
    }

    /// When the record with `sequence` was written: the first mark at or after it.
    fn written_at(&mut self, sequence: u128) -> i64 {
        while self
            .written
            .front()
            .is_some_and(|(marked, _)| *marked < sequence)
        {
            self.written.pop_front();
        }
        self.written.front().map_or(self.now_ms(), |(_, at)| *at)
    }

    fn now_ms(&self) -> i64 {
        (self.clock.now_unix_secs_f64() * 1000.0).round() as i64
    }

    /// Whether records were written after the one with sequence number `after`.
    fn unread(&self, after: Option<u128>) -> bool {
        match (self.latest, after) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(latest), Some(after)) => after < latest,
        }
    }

    /// Read what the stream holds since the last read, once: GSI1 takes each record on its
    /// way, and the event source finds it in `fresh`.
    fn pull(&mut self) {
        while self.unread(self.pulled_to) {
            let page = self.stream_page(self.pulled_to, 1000);
            let Some(last) = page.last() else {
                break;
            };
            self.pulled_to = Some(sequence(last));
            for record in &page {
                let written = self.written_at(sequence(record));
                self.replica.take(record, written);
                let raw = self.raw(record);
                self.fresh.push(raw.clone());
                self.log.push_back(raw);
            }
            while self.log.len() > self.log_records {
                self.log_after = self.log.pop_front().map(|raw| raw.sequence);
            }
        }
    }

    /// Send GSI1 what was written since it last looked, and show it what is due by `now_ms`.
    pub fn propagate(&mut self, now_ms: i64) {
        self.clock.set(now_ms);
        self.pull();
        let viewed = self.replica.show(&self.storage, now_ms);
        self.viewed.extend(viewed);
    }

    /// The likes that entered GSI1 since the last call, and when.
    pub fn viewed(&mut self) -> Vec<Viewed> {
        std::mem::take(&mut self.viewed)
    }

    /// Lose an item from GSI1 alone (a test of the checks that read it).
    #[cfg(test)]
    pub(crate) fn lose_from_gsi1(&mut self, key: Value) {
        let body = json!({"TableName": self.replica.name, "Key": key});
        self.engine("DeleteItem", &body)
            .expect("the replica drops it");
    }

    /// When GSI1 will have shown every write taken so far (`None`: it has).
    pub fn gsi1_settles_at(&self) -> Option<i64> {
        self.replica.settled_at()
    }

    /// Stream records written since the last call, in order.
    pub fn new_records(&mut self) -> Vec<RawRecord> {
        self.pull();
        std::mem::take(&mut self.fresh)
    }

    /// Every item of the table, read consistently, handed to `each` page by page: a viral
    /// post's table is gigabytes as JSON trees, too large to hold at once.
    pub fn scan(&mut self, mut each: impl FnMut(Value)) {
        let body = json!({"TableName": self.name, "ConsistentRead": true, "Limit": READ_PAGE});
        let now_ms = self.now_ms();
        self.each_page("Scan", body, now_ms, |mut page| {
            if let Value::Array(items) = page["Items"].take() {
                items.into_iter().for_each(&mut each);
            }
        });
    }

    /// Every page of a `Scan` or `Query`, following `LastEvaluatedKey`.
    pub fn pages(&mut self, operation: &str, body: Value, now_ms: i64) -> Vec<Value> {
        let mut pages = Vec::new();
        self.each_page(operation, body, now_ms, |page| pages.push(page));
        pages
    }

    /// Each page of a `Scan` or `Query` in turn, following `LastEvaluatedKey`.
    fn each_page(
        &mut self,
        operation: &str,
        mut request: Value,
        now_ms: i64,
        mut each: impl FnMut(Value),
    ) {
        loop {
            let page = self
                .call(operation, &request, now_ms)
                .unwrap_or_else(|e| panic!("{operation} answers: {e}"));
            let next = page
                .get("LastEvaluatedKey")
                .filter(|k| !k.is_null())
                .cloned();
            each(page);
            let Some(start) = next else {
                return;
            };
            request["ExclusiveStartKey"] = start;
        }
    }
}

/// Items a page of the simulation's own reads (its checks, not the system's requests) asks
/// for. Without a `Limit` the engine reads the whole rest of a scan or query from SQLite and
/// then cuts its page at 1 MB, so every page costs the rest of the table: the checks of a viral
/// minute took 580 s of its 1,409.
pub const READ_PAGE: usize = 1_000;

/// Prepared statements the engine keeps (rusqlite's default is 16).
const STATEMENTS: usize = 64;

/// What [`Table::presize`] grows the database to: past SQLite's `PENDING_BYTE` (1 GiB).
const PRESIZE_BYTES: i64 = (1 << 30) + (64 << 20);

/// What the engine adds to a stored sequence number to make its public form (10^20).
const SEQUENCE_OFFSET: u128 = 100_000_000_000_000_000_000;

/// The public form of a sequence number as the engine stores it.
fn public_sequence(stored: i64) -> u128 {
    stored.max(0) as u128 + SEQUENCE_OFFSET
}

/// A record's sequence number.
fn sequence(record: &actions::get_records::Record) -> u128 {
    record
        .dynamodb
        .sequence_number
        .parse()
        .expect("a numeric sequence number")
}

/// How many of the stream's last records the table keeps as it read them, for replays: a
/// simulation's whole stream, the last seconds of the viral post's.
const LOG_RECORDS: usize = 100_000;

/// A stream record as Lambda's event carries it, as JSON text: most records are the
/// projector's own writes, which the filters drop, so none is parsed before it passes.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Its sequence number.
    pub sequence: u128,
    /// The record, with its `eventSourceARN`.
    pub json: std::rc::Rc<str>,
}

impl RawRecord {
    /// The record as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("a record is JSON")
    }
}

/// A record of the engine's `GetRecords` with the stream it came from, as in Lambda's event.
#[derive(serde::Serialize)]
struct InEvent<'a> {
    #[serde(flatten)]
    record: &'a actions::get_records::Record,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
}

/// `CreateTable` as `contracts::table::TABLE` defines the table.
pub fn create_table_body(name: &str) -> Value {
    let attribute =
        |name: &str| json!({"AttributeName": name, "AttributeType": TABLE.key_attribute_type});
    let schema = |pk: &str, sk: &str| json!([{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]);
    json!({
        "TableName": name,
        "BillingMode": TABLE.billing_mode,
        "AttributeDefinitions": [
            attribute(TABLE.partition_key),
            attribute(TABLE.sort_key),
            attribute(TABLE.gsi1.partition_key),
            attribute(TABLE.gsi1.sort_key),
        ],
        "KeySchema": schema(TABLE.partition_key, TABLE.sort_key),
        "GlobalSecondaryIndexes": [{
            "IndexName": TABLE.gsi1.name,
            "KeySchema": schema(TABLE.gsi1.partition_key, TABLE.gsi1.sort_key),
            "Projection": {"ProjectionType": TABLE.gsi1.projection},
        }],
        "StreamSpecification": {"StreamEnabled": true, "StreamViewType": TABLE.stream_view_type},
    })
}

#[cfg(test)]
mod tests {
    use contracts::keys;
    use serde_json::json;

    use super::{RawRecord, STREAM_RETENTION_MS, Table, TableSettings};

    const START: i64 = 1_767_225_600_000;

    fn essence(records: &[RawRecord]) -> Vec<(u128, serde_json::Value)> {
        records
            .iter()
            .map(|raw| (raw.sequence, raw.value()))
            .collect()
    }

    /// A replay reads the same records whether the table still keeps them or reads them from
    /// the engine again, from any position, and from the trim horizon once records age out.
    #[test]
    fn a_replay_reads_the_stream_as_the_engine_holds_it() {
        let mut table = Table::new("log", START, TableSettings::default(), 1);
        table.log_records = 4;
        let put = |pk: String, now: i64, table: &mut Table| {
            let item = json!({keys::PK: {"S": pk}, keys::SK: {"S": "A"}});
            let body = json!({"TableName": table.name, "Item": item});
            table.call("PutItem", &body, now).expect("a put");
        };
        for n in 0..10 {
            put(format!("P#{n}"), START + n, &mut table);
        }
        let fresh = table.new_records();
        assert_eq!(fresh.len(), 10, "the event source reads every record");
        assert_eq!(table.log.len(), 4, "the log keeps only its last records");
        let from_engine = |table: &Table, after: Option<u128>, limit: usize| {
            let page = table.stream_page(after, limit);
            essence(
                &page
                    .iter()
                    .map(|record| table.raw(record))
                    .collect::<Vec<_>>(),
            )
        };
        for after in std::iter::once(None).chain(fresh.iter().map(|raw| Some(raw.sequence))) {
            for limit in [1, 3, 100] {
                let read = essence(&table.records_after(after, limit));
                assert_eq!(
                    read,
                    from_engine(&table, after, limit),
                    "after {after:?}, {limit}"
                );
            }
        }
        assert_eq!(essence(&table.records_after(None, 100)), essence(&fresh));

        let later = START + STREAM_RETENTION_MS + 5_000;
        put("P#late".into(), later, &mut table);
        let horizon = table.records_after(None, 100);
        assert_eq!(
            horizon.len(),
            1,
            "older records are trimmed: {:?}",
            essence(&horizon)
        );
        assert_eq!(essence(&horizon), essence(&table.new_records()));
    }

    /// A presized database is past SQLite's page at 1 GiB, its filler's pages free for items,
    /// and it serves the table as before.
    #[test]
    fn a_presized_table_is_past_one_gib_and_serves_as_before() {
        let mut table = Table::new("presized", START, TableSettings::default(), 1);
        table.presize();
        let pragma = |table: &Table, name: &str| -> i64 {
            let sql = format!("PRAGMA {name}");
            table
                .storage
                .conn()
                .query_row(&sql, [], |row| row.get(0))
                .expect("a pragma")
        };
        let page_size = pragma(&table, "page_size");
        assert!(pragma(&table, "page_count") * page_size > 1 << 30);
        assert!(pragma(&table, "freelist_count") * page_size > 1 << 30);
        let key = json!({keys::PK: {"S": "P#1"}, keys::SK: {"S": "A"}});
        let body = json!({"TableName": table.name, "Item": key});
        table.call("PutItem", &body, START).expect("a put");
        assert_eq!(table.new_records().len(), 1);
        let body = json!({"TableName": table.name, "Key": key, "ConsistentRead": true});
        let got = table.call("GetItem", &body, START).expect("a get");
        assert_eq!(got["Item"], key);
    }
}
