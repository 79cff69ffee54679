//! What DynamoDB does that the local engine does not, modelled in front of it: an HTTP proxy on a
//! loopback port that answers as DynamoDB would when
//!
//! - **transactions overlap on an item**: a `TransactWriteItems` holds each of its items from
//!   send to answer (plus [`ContentionSettings::hold`], DynamoDB's own commit time); another
//!   transaction touching a held item is cancelled with `TransactionConflict` as that item's
//!   reason (`None` for the others), and a single-item write to a held item fails with
//!   `TransactionConflictException`;
//! - **a partition is over its throughput**: a token bucket of
//!   [`ContentionSettings::partition_wcu`] write units a second per table partition key and per
//!   GSI1 partition key, by DynamoDB's rules (1 unit per item written, 2 in a transaction, 1 per
//!   GSI1 entry written); a write over budget fails as DynamoDB's does (`ThrottlingError` as the
//!   cancellation reason in a transaction, `ThrottlingException` otherwise), and a GSI1 entry
//!   over budget throttles the base write that feeds it;
//! - **the table is over its quota** (the simulation only; the proxy sets none): an on-demand
//!   table and each of its GSIs take at most the table-level quota, 40,000 write units a second
//!   by default ("your on-demand throughput rate is bounded by 40,000 table-level read and
//!   write throughput AWS service quota", DynamoDB developer guide, *maximum throughput for
//!   on-demand tables*), a token bucket of its own, refused as a partition over budget is.
//!
//! Everything else is forwarded to the local engine unchanged. Items are under 1 KB here, so a
//! write is one unit. Which writes touch GSI1 is read from the request: a put with `GSI1PK`, an
//! update that sets it, and a delete of an item in GSI1 (the proxy does not see the item and
//! takes a like to be in view shard 0; the simulation's table reads it).
//!
//! The rules themselves (`Rules`: holds, buckets, what was refused) take the time as an
//! argument: the proxy gives them the wall clock, the simulation (`crate::sim::table`) its
//! virtual one, so both model DynamoDB with one code. An update of a like stamped earlier
//! also rewrites its GSI1 entry in DynamoDB; the model does not see that (it would need the
//! item), so it undercounts GSI1 load slightly.
//!
//! The proxy also counts what it did ([`ContentionStats`]) and when each post item was written,
//! for the hot counter's writes per second.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use contracts::keys;

/// How the model behaves.
#[derive(Debug, Clone, Copy)]
pub struct ContentionSettings {
    /// Write units a second one partition takes (DynamoDB: 1,000).
    pub partition_wcu: f64,
    /// How long a transaction holds its items after the local engine answered: DynamoDB's
    /// commit takes longer than the local engine's in-memory one.
    pub hold: Duration,
    /// A fault injected into one operation.
    pub fault: Option<Fault>,
}

/// A fault injected into the first `times` requests of one operation (`None`: all of them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// The operation (`TransactWriteItems`, `UpdateItem`, ...).
    pub operation: &'static str,
    /// How many requests meet it (`None`: all).
    pub times: Option<u64>,
    /// What they meet.
    pub effect: FaultEffect,
}

/// What a faulty request meets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultEffect {
    /// Refused with `AccessDeniedException`, as for a role lacking the permission.
    Denied,
    /// Held this long before it goes on to DynamoDB: an answer slower than an invocation has
    /// left, so Lambda ends the invocation mid-write.
    Stalled(Duration),
    /// Refused with `ThrottlingException`, as a partition over its throughput answers (reads
    /// too: the model's own buckets count write units only).
    Throttled,
}

impl Fault {
    /// Every request of `operation` denied.
    pub fn denied(operation: &'static str) -> Self {
        Self {
            operation,
            times: None,
            effect: FaultEffect::Denied,
        }
    }

    /// Every request of `operation` throttled.
    pub fn throttled(operation: &'static str) -> Self {
        Self {
            operation,
            times: None,
            effect: FaultEffect::Throttled,
        }
    }

    /// Every request of `operation` held for `delay`.
    pub fn stalled(operation: &'static str, delay: Duration) -> Self {
        Self {
            operation,
            times: None,
            effect: FaultEffect::Stalled(delay),
        }
    }

    /// Only the first `n` requests.
    pub fn times(self, n: u64) -> Self {
        Self {
            times: Some(n),
            ..self
        }
    }
}

impl Default for ContentionSettings {
    fn default() -> Self {
        Self {
            partition_wcu: 1_000.0,
            hold: Duration::from_millis(10),
            fault: None,
        }
    }
}

/// What the model did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentionStats {
    /// Transactions the model saw.
    pub transactions: u64,
    /// Transactions cancelled because another held one of their items.
    pub conflicts: u64,
    /// Single-item writes refused because a transaction held their item.
    pub write_conflicts: u64,
    /// Requests refused for a partition over its throughput.
    pub throttled: u64,
}

/// An item, as (PK, SK).
pub type ItemId = (String, String);

/// A partition: of the table or of GSI1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Partition {
    Table(String),
    Index(String),
    /// The table as a whole: its throughput quota.
    WholeTable,
    /// GSI1 as a whole: the same quota.
    WholeIndex,
}

/// The write units a second DynamoDB allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One partition of the table or of GSI1 (DynamoDB: 1,000).
    pub partition: f64,
    /// The whole table, and GSI1 (on-demand: the table-level quota, 40,000 by default).
    pub table: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    /// Seconds, on the caller's clock.
    at: f64,
}

/// Why DynamoDB refuses a write before evaluating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A transaction under way holds these actions' items.
    Conflict(Vec<usize>),
    /// These actions' partitions are over their throughput.
    Throttled(Vec<usize>),
}

/// DynamoDB's contention rules (the module docs), on the caller's clock: the proxy's is the
/// wall clock, the simulation's virtual. Times are seconds from any origin.
#[derive(Debug, Default)]
pub struct Rules {
    /// Each held item, and until when.
    held: HashMap<ItemId, f64>,
    buckets: HashMap<Partition, Bucket>,
    /// What the rules refused and admitted so far.
    pub stats: ContentionStats,
    /// When each post item was written.
    post_writes: HashMap<ItemId, Vec<f64>>,
    usage: Usage,
}

/// Write units taken: this second's per partition, the busiest partition's peak in the seconds
/// before, and each second's totals.
#[derive(Debug, Default)]
struct Usage {
    second: i64,
    partitions: HashMap<Partition, f64>,
    peak_partition: f64,
    seconds: BTreeMap<i64, SecondUsage>,
}

/// What the table took, and refused, in one second of the caller's clock.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SecondUsage {
    /// Write units the table took (its base partitions together).
    pub table: f64,
    /// Write units GSI1 took.
    pub index: f64,
    /// Requests refused for a partition, the table or GSI1 over its throughput.
    pub throttled: u64,
}

/// The most units one partition (of the table or GSI1) took.
fn busiest(partitions: &HashMap<Partition, f64>) -> f64 {
    partitions
        .iter()
        .filter(|(p, _)| matches!(p, Partition::Table(_) | Partition::Index(_)))
        .map(|(_, units)| *units)
        .fold(0.0, f64::max)
}

impl Usage {
    fn take(&mut self, demand: &HashMap<Partition, f64>, now: f64) {
        let second = now.floor() as i64;
        if second != self.second {
            self.peak_partition = self.peak_partition.max(busiest(&self.partitions));
            self.partitions.clear();
            self.second = second;
        }
        let totals = self.seconds.entry(second).or_default();
        for (partition, units) in demand {
            *self.partitions.entry(partition.clone()).or_default() += units;
            match partition {
                Partition::WholeTable => totals.table += units,
                Partition::WholeIndex => totals.index += units,
                Partition::Table(_) | Partition::Index(_) => {}
            }
        }
    }

    fn throttled(&mut self, now: f64) {
        self.seconds
            .entry(now.floor() as i64)
            .or_default()
            .throttled += 1;
    }
}

impl Rules {
    /// The most write units one partition (of the table or GSI1) took in one second, and the
    /// table's base partitions together.
    pub fn peak_units(&self) -> (f64, f64) {
        let table = self.usage.seconds.values().map(|s| s.table);
        (
            self.usage
                .peak_partition
                .max(busiest(&self.usage.partitions)),
            table.fold(0.0, f64::max),
        )
    }

    /// Each second's units taken and requests throttled, by second of the caller's clock.
    pub fn seconds(&self) -> &BTreeMap<i64, SecondUsage> {
        &self.usage.seconds
    }

    fn refill(&mut self, partition: &Partition, rate: f64, now: f64) -> &mut Bucket {
        let bucket = self.buckets.entry(partition.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = (now - bucket.at).max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        bucket
    }

    /// Take the units of `actions` from their partitions' buckets, all or nothing; the
    /// positions of the actions over budget otherwise.
    fn take_units(
        &mut self,
        actions: &[WriteAction],
        limits: Limits,
        now: f64,
    ) -> Result<(), Vec<usize>> {
        let mut demand: HashMap<Partition, f64> = HashMap::default();
        for action in actions {
            *demand
                .entry(Partition::Table(action.item.0.clone()))
                .or_default() += action.units;
            *demand.entry(Partition::WholeTable).or_default() += action.units;
            if let Some(index) = &action.index {
                *demand.entry(Partition::Index(index.clone())).or_default() += 1.0;
                *demand.entry(Partition::WholeIndex).or_default() += 1.0;
            }
        }
        let rate = |partition: &Partition| match partition {
            Partition::WholeTable | Partition::WholeIndex => limits.table,
            Partition::Table(_) | Partition::Index(_) => limits.partition,
        };
        let mut over: HashSet<Partition> = HashSet::default();
        for (partition, units) in &demand {
            if self.refill(partition, rate(partition), now).tokens < *units {
                over.insert(partition.clone());
            }
        }
        if over.is_empty() {
            self.usage.take(&demand, now);
            for (partition, units) in demand {
                self.refill(&partition, rate(&partition), now).tokens -= units;
            }
            return Ok(());
        }
        let whole = over.contains(&Partition::WholeTable) || over.contains(&Partition::WholeIndex);
        Err(actions
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                whole
                    || over.contains(&Partition::Table(a.item.0.clone()))
                    || a.index
                        .as_ref()
                        .is_some_and(|i| over.contains(&Partition::Index(i.clone())))
            })
            .map(|(i, _)| i)
            .collect())
    }

    /// Admit a request's write actions at `now`, or say why DynamoDB refuses it: an item held
    /// by a transaction under way, else a partition, the table or GSI1 over its `limits`
    /// (the whole request's actions then, as the quota holds for every partition).
    pub fn admit(
        &mut self,
        actions: &[WriteAction],
        transaction: bool,
        limits: Limits,
        now: f64,
    ) -> Result<(), Refused> {
        if transaction {
            self.stats.transactions += 1;
        }
        self.held.retain(|_, until| *until > now);
        let held: Vec<usize> = actions
            .iter()
            .enumerate()
            .filter(|(_, a)| self.held.get(&a.item).is_some_and(|until| *until > now))
            .map(|(i, _)| i)
            .collect();
        if !held.is_empty() {
            if transaction {
                self.stats.conflicts += 1;
            } else {
                self.stats.write_conflicts += 1;
            }
            return Err(Refused::Conflict(held));
        }
        self.take_units(actions, limits, now).map_err(|over| {
            self.stats.throttled += 1;
            self.usage.throttled(now);
            Refused::Throttled(over)
        })
    }

    /// A transaction holds its items until `until` (or until [`release`](Self::release)d).
    pub fn hold(&mut self, actions: &[WriteAction], until: f64) {
        for action in actions {
            self.held.insert(action.item.clone(), until);
        }
    }

    /// The transaction's answer is out: its items are free.
    pub fn release(&mut self, actions: &[WriteAction]) {
        for action in actions {
            self.held.remove(&action.item);
        }
    }

    /// A write succeeded at `now`: remember when each post item was written.
    pub fn written(&mut self, actions: &[WriteAction], now: f64) {
        for action in actions.iter().filter(|a| a.item.1.starts_with("POST#")) {
            self.post_writes
                .entry(action.item.clone())
                .or_default()
                .push(now);
        }
    }

    /// Items held by transactions under way at `now`.
    pub fn held_at(&self, now: f64) -> usize {
        self.held.values().filter(|until| **until > now).count()
    }

    /// The most writes the item of `post` took within any one second.
    pub fn max_post_writes_per_second(&self, post: &str) -> usize {
        let Some(times) = self
            .post_writes
            .iter()
            .find(|((_, sk), _)| sk.strip_prefix("POST#") == Some(post))
            .map(|(_, t)| t)
        else {
            return 0;
        };
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let mut best = 0;
        let mut start = 0;
        for end in 0..sorted.len() {
            while sorted[end] - sorted[start] >= 1.0 {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

struct Shared {
    settings: ContentionSettings,
    /// Requests the fault met so far.
    faulted: std::sync::atomic::AtomicU64,
    target: String,
    http: reqwest::Client,
    model: Mutex<Rules>,
    /// The origin of the rules' clock.
    start: Instant,
}

/// The running proxy; it stops with the test's runtime.
#[derive(Clone)]
pub struct ContentionModel {
    /// Where to send requests.
    pub endpoint: String,
    shared: Arc<Shared>,
}

/// One write action of a request: its item, the units it costs, and its GSI1 partition.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAction {
    /// The item written.
    pub item: ItemId,
    units: f64,
    index: Option<String>,
}

fn item_of(value: &Value) -> Option<ItemId> {
    let pk = value.get(keys::PK)?.get("S")?.as_str()?;
    let sk = value.get(keys::SK)?.get("S")?.as_str()?;
    Some((pk.to_owned(), sk.to_owned()))
}

/// The GSI1 partition a write touches, if any; a delete's is the deleted item's, which
/// `stored` says.
fn index_partition(
    kind: &str,
    action: &Value,
    item: &ItemId,
    stored: &dyn Fn(&ItemId) -> Option<String>,
) -> Option<String> {
    match kind {
        "Put" => action["Item"][keys::GSI1PK]["S"]
            .as_str()
            .map(str::to_owned),
        "Update" => {
            let names = action["ExpressionAttributeNames"].as_object()?;
            let placeholder = names.iter().find(|(_, v)| *v == keys::GSI1PK)?.0;
            let expression = action["UpdateExpression"].as_str()?;
            let after = expression.split(placeholder.as_str()).nth(1)?;
            let value = after.trim_start().strip_prefix('=')?.trim_start();
            let value: String = value
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == ':' || *c == '_')
                .collect();
            action["ExpressionAttributeValues"][value]["S"]
                .as_str()
                .map(str::to_owned)
        }
        "Delete" => stored(item),
        _ => None,
    }
}

/// The GSI1 partition of a stored item as the proxy guesses it without seeing the item (the
/// module docs): a like's post's view shard 0.
fn guessed_index(item: &ItemId) -> Option<String> {
    item.1
        .strip_prefix("LIKE#")
        .map(|post| format!("POST#{post}"))
}

/// The write actions of a request, by operation (empty for reads and the rest); `stored` names
/// the GSI1 partition of an item a delete removes.
pub fn write_actions(
    operation: &str,
    body: &Value,
    stored: &dyn Fn(&ItemId) -> Option<String>,
) -> Vec<WriteAction> {
    let single = |kind: &str, holder: &str| -> Vec<WriteAction> {
        item_of(&body[holder])
            .map(|item| WriteAction {
                index: index_partition(kind, body, &item, stored),
                units: 1.0,
                item,
            })
            .into_iter()
            .collect()
    };
    match operation {
        "PutItem" => single("Put", "Item"),
        "UpdateItem" => single("Update", "Key"),
        "DeleteItem" => single("Delete", "Key"),
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|action| {
                let (kind, inner) = ["Put", "Update", "Delete", "ConditionCheck"]
                    .iter()
                    .find_map(|kind| Some((*kind, action.get(*kind)?)))?;
                let item = item_of(inner.get("Item").unwrap_or(&inner["Key"]))?;
                let writes = kind != "ConditionCheck";
                Some(WriteAction {
                    index: writes
                        .then(|| index_partition(kind, inner, &item, stored))
                        .flatten(),
                    units: if writes { 2.0 } else { 1.0 },
                    item,
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `__type` of a DynamoDB error (the SDK reads the name after `#`).
fn dynamodb_error(kind: &str) -> String {
    format!("com.amazonaws.dynamodb.v20120810#{kind}")
}

/// The `__type` DynamoDB answers a request over a partition's throughput with.
const THROTTLING: &str = "com.amazon.coral.availability#ThrottlingException";

/// A DynamoDB error body, with a transaction's cancellation reasons if it has them.
fn error_body(error_type: &str, message: &str, reasons: Option<Vec<Value>>) -> Value {
    let mut body = json!({"__type": error_type, "message": message});
    if let Some(reasons) = reasons {
        body["CancellationReasons"] = Value::Array(reasons);
        body["Message"] = Value::from(message);
    }
    body
}

/// DynamoDB's error body for a refused request of `actions` write actions.
pub fn refusal_body(refused: &Refused, actions: usize, transaction: bool) -> Value {
    const CANCELLED: &str =
        "Transaction cancelled, please refer cancellation reasons for specific reasons";
    let reasons = |failed: &[usize], code: &str| -> Vec<Value> {
        (0..actions)
            .map(|i| json!({"Code": if failed.contains(&i) { code } else { "None" }}))
            .collect()
    };
    let cancelled = |reasons| {
        error_body(
            &dynamodb_error("TransactionCanceledException"),
            CANCELLED,
            Some(reasons),
        )
    };
    match refused {
        Refused::Conflict(held) if transaction => cancelled(reasons(held, "TransactionConflict")),
        Refused::Conflict(_) => error_body(
            &dynamodb_error("TransactionConflictException"),
            "Transaction is ongoing for the item",
            None,
        ),
        Refused::Throttled(over) if transaction => cancelled(reasons(over, "ThrottlingError")),
        Refused::Throttled(_) => error_body(
            THROTTLING,
            "Throughput exceeds the current capacity of your table or index.",
            None,
        ),
    }
}

/// An error body as DynamoDB's HTTP answer.
fn error_response(body: Value) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

impl ContentionModel {
    /// Start the model in front of the DynamoDB (Local) at `target`.
    pub async fn start(target: &str, settings: ContentionSettings) -> Self {
        let shared = Arc::new(Shared {
            settings,
            faulted: Default::default(),
            target: target.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            model: Mutex::default(),
            start: Instant::now(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, shared }
    }

    /// Items held by transactions under way now.
    pub fn held_items(&self) -> usize {
        self.shared.lock().held_at(self.shared.now())
    }

    /// What the model did so far.
    pub fn stats(&self) -> ContentionStats {
        self.shared.lock().stats.clone()
    }

    /// The most writes one post item took within any one second.
    pub fn max_post_writes_per_second(&self, post: &str) -> usize {
        self.shared.lock().max_post_writes_per_second(post)
    }
}

impl Shared {
    /// Seconds since the proxy started: the rules' clock.
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn forward(&self, headers: &HeaderMap, body: Bytes) -> Response {
        let mut request = self.http.post(format!("{}/", self.target)).body(body);
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(answer) => {
                let status = answer.status();
                let mut out = HeaderMap::new();
                for (name, value) in answer.headers() {
                    if name != "content-length" && name != "transfer-encoding" {
                        out.insert(name, value.clone());
                    }
                }
                let body = answer.bytes().await.unwrap_or_default();
                (status, out, body).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

/// A request, carried through to its end even if its client stops waiting: DynamoDB goes on
/// with a request it received (a write whose caller gave up may still land).
async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    tokio::spawn(answer(shared, headers, body))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn answer(shared: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    let fault = shared
        .settings
        .fault
        .filter(|f| f.operation == operation)
        .filter(|f| {
            let met = shared
                .faulted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            met < f.times.unwrap_or(u64::MAX)
        });
    match fault.map(|f| f.effect) {
        Some(FaultEffect::Denied) => {
            return error_response(error_body(
                &dynamodb_error("AccessDeniedException"),
                &format!("not authorized to perform: dynamodb:{operation}"),
                None,
            ));
        }
        Some(FaultEffect::Stalled(delay)) => tokio::time::sleep(delay).await,
        Some(FaultEffect::Throttled) => {
            shared.lock().stats.throttled += 1;
            return error_response(refusal_body(&Refused::Throttled(Vec::new()), 0, false));
        }
        None => {}
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let actions = write_actions(&operation, &parsed, &guessed_index);
    if actions.is_empty() {
        return shared.forward(&headers, body).await;
    }
    let transaction = operation == "TransactWriteItems";
    let admitted = {
        let mut rules = shared.lock();
        let now = shared.now();
        let limits = Limits {
            partition: shared.settings.partition_wcu,
            table: f64::INFINITY,
        };
        let admitted = rules.admit(&actions, transaction, limits, now);
        if admitted.is_ok() && transaction {
            rules.hold(&actions, f64::INFINITY);
        }
        admitted
    };
    if let Err(refused) = admitted {
        return error_response(refusal_body(&refused, actions.len(), transaction));
    }
    let answer = shared.forward(&headers, body).await;
    if transaction {
        tokio::time::sleep(shared.settings.hold).await;
    }
    let mut rules = shared.lock();
    if transaction {
        rules.release(&actions);
    }
    if answer.status().is_success() {
        rules.written(&actions, shared.now());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cost_units_on_their_partitions_and_gsi1() {
        let like =
            |user: &str| json!({"PK": {"S": format!("USER#{user}")}, "SK": {"S": "LIKE#p1"}});
        let post = json!({"PK": {"S": "TOPIC#t"}, "SK": {"S": "POST#p1"}});
        let body = json!({"TransactItems": [
            {"Update": {"Key": post, "UpdateExpression": "ADD #count :delta"}},
            {"Update": {"Key": like("a"),
                        "UpdateExpression": "SET #counted = :projector, #gpk = :gpk, #gsk = :gsk",
                        "ExpressionAttributeNames": {"#gpk": "GSI1PK"},
                        "ExpressionAttributeValues": {":gpk": {"S": "POST#p1"}}}},
            {"Put": {"Item": {"PK": {"S": "TOMB#x"}, "SK": {"S": "TOMB#x"}}}},
        ]});
        let actions = write_actions("TransactWriteItems", &body, &guessed_index);
        assert_eq!(actions.len(), 3);
        assert!(actions.iter().all(|a| a.units == 2.0));
        assert_eq!(actions[0].index, None, "the post is not in GSI1");
        assert_eq!(actions[1].index.as_deref(), Some("POST#p1"), "a stamp");
        assert_eq!(actions[2].index, None);
        let plain = write_actions("PutItem", &json!({"Item": like("b")}), &guessed_index);
        assert_eq!(plain[0].units, 1.0);
        assert_eq!(plain[0].index, None, "the writer appends without GSI1 keys");
        assert!(write_actions("GetItem", &json!({"Key": like("b")}), &guessed_index).is_empty());
    }

    #[test]
    fn a_partition_takes_its_rate_and_refuses_the_rest_all_or_nothing() {
        let mut model = Rules::default();
        let action = |pk: &str, index: Option<&str>| WriteAction {
            item: (pk.into(), "SK".into()),
            units: 2.0,
            index: index.map(str::to_owned),
        };
        let ten = Limits {
            partition: 10.0,
            table: f64::INFINITY,
        };
        let hot = vec![action("TOPIC#t", Some("POST#p")); 5];
        assert!(model.take_units(&hot, ten, 0.0).is_ok(), "10 units of 10");
        let refused =
            model.take_units(&[action("USER#a", None), action("TOPIC#t", None)], ten, 0.0);
        assert_eq!(
            refused,
            Err(vec![1]),
            "only the hot partition's action is over"
        );
        assert!(
            model
                .take_units(&[action("USER#a", None)], ten, 0.0)
                .is_ok(),
            "nothing was taken from the other partition"
        );
    }

    /// The table's quota bounds all its partitions together: a request that fits its own
    /// partitions is refused whole once the table's second is spent, and admitted again as
    /// the quota refills.
    #[test]
    fn the_table_quota_bounds_every_partition_together() {
        let mut model = Rules::default();
        let limits = Limits {
            partition: 1_000.0,
            table: 4.0,
        };
        let put = |pk: &str| WriteAction {
            item: (pk.into(), "SK".into()),
            units: 1.0,
            index: None,
        };
        for user in ["USER#a", "USER#b", "USER#c", "USER#d"] {
            assert!(model.take_units(&[put(user)], limits, 0.0).is_ok());
        }
        assert_eq!(
            model.take_units(&[put("USER#e"), put("USER#f")], limits, 0.0),
            Err(vec![0, 1]),
            "a fifth unit in the second: the whole request"
        );
        assert!(model.take_units(&[put("USER#e")], limits, 0.25).is_ok());
        assert_eq!(model.peak_units(), (1.0, 5.0));
    }
}
