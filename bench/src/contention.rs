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
//!   over budget throttles the base write that feeds it.
//!
//! Everything else is forwarded to the local engine unchanged. Items are under 1 KB here, so a
//! write is one unit. Which writes touch GSI1 is read from the request: a put with `GSI1PK`, an
//! update that sets it, and a delete of a like (stamped likes are in the view; taken to be in
//! view shard 0, as the model does not see the item). An update of a like stamped earlier
//! also rewrites its GSI1 entry in DynamoDB; the model does not see that (it would need the
//! item), so it undercounts GSI1 load slightly.
//!
//! The proxy also counts what it did ([`ContentionStats`]) and when each post item was written,
//! for the hot counter's writes per second.

use std::collections::{HashMap, HashSet};
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
type ItemId = (String, String);

/// A partition: of the table or of GSI1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Partition {
    Table(String),
    Index(String),
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Model {
    held: HashSet<ItemId>,
    buckets: HashMap<Partition, Bucket>,
    stats: ContentionStats,
    /// When each post item was written.
    post_writes: HashMap<ItemId, Vec<Instant>>,
}

struct Shared {
    settings: ContentionSettings,
    /// Requests the fault met so far.
    faulted: std::sync::atomic::AtomicU64,
    target: String,
    http: reqwest::Client,
    model: Mutex<Model>,
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
struct WriteAction {
    item: ItemId,
    units: f64,
    index: Option<String>,
}

fn item_of(value: &Value) -> Option<ItemId> {
    let pk = value.get(keys::PK)?.get("S")?.as_str()?;
    let sk = value.get(keys::SK)?.get("S")?.as_str()?;
    Some((pk.to_owned(), sk.to_owned()))
}

/// The GSI1 partition a write touches, if any (see the module docs).
fn index_partition(kind: &str, action: &Value, item: &ItemId) -> Option<String> {
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
        "Delete" => item
            .1
            .strip_prefix("LIKE#")
            .map(|post| format!("POST#{post}")),
        _ => None,
    }
}

/// The write actions of a request, by operation (empty for reads and the rest).
fn write_actions(operation: &str, body: &Value) -> Vec<WriteAction> {
    let single = |kind: &str, holder: &str| -> Vec<WriteAction> {
        item_of(&body[holder])
            .map(|item| WriteAction {
                index: index_partition(kind, body, &item),
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
                        .then(|| index_partition(kind, inner, &item))
                        .flatten(),
                    units: if writes { 2.0 } else { 1.0 },
                    item,
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Model {
    fn refill(&mut self, partition: &Partition, rate: f64, now: Instant) -> &mut Bucket {
        let bucket = self.buckets.entry(partition.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        bucket
    }

    /// Take the units of `actions` from their partitions' buckets, all or nothing; the
    /// positions of the actions over budget otherwise.
    fn take_units(&mut self, actions: &[WriteAction], rate: f64) -> Result<(), Vec<usize>> {
        let now = Instant::now();
        let mut demand: HashMap<Partition, f64> = HashMap::new();
        for action in actions {
            *demand
                .entry(Partition::Table(action.item.0.clone()))
                .or_default() += action.units;
            if let Some(index) = &action.index {
                *demand.entry(Partition::Index(index.clone())).or_default() += 1.0;
            }
        }
        let mut over: HashSet<Partition> = HashSet::new();
        for (partition, units) in &demand {
            if self.refill(partition, rate, now).tokens < *units {
                over.insert(partition.clone());
            }
        }
        if over.is_empty() {
            for (partition, units) in demand {
                self.refill(&partition, rate, now).tokens -= units;
            }
            return Ok(());
        }
        Err(actions
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                over.contains(&Partition::Table(a.item.0.clone()))
                    || a.index
                        .as_ref()
                        .is_some_and(|i| over.contains(&Partition::Index(i.clone())))
            })
            .map(|(i, _)| i)
            .collect())
    }
}

/// A DynamoDB error answer.
fn refusal(kind: &str, message: &str, reasons: Option<Vec<Value>>) -> Response {
    let mut body =
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message});
    if let Some(reasons) = reasons {
        body["CancellationReasons"] = Value::Array(reasons);
        body["Message"] = Value::from(message);
    }
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn reasons(len: usize, failed: &HashSet<usize>, code: &str) -> Vec<Value> {
    (0..len)
        .map(|i| {
            if failed.contains(&i) {
                json!({"Code": code})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect()
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
        self.shared.lock().held.len()
    }

    /// What the model did so far.
    pub fn stats(&self) -> ContentionStats {
        self.shared.lock().stats.clone()
    }

    /// The most writes one post item took within any one second.
    pub fn max_post_writes_per_second(&self, post: &str) -> usize {
        let model = self.shared.lock();
        let Some(times) = model
            .post_writes
            .iter()
            .find(|((_, sk), _)| sk.strip_prefix("POST#") == Some(post))
            .map(|(_, t)| t)
        else {
            return 0;
        };
        let mut sorted = times.clone();
        sorted.sort();
        let mut best = 0;
        let mut start = 0;
        for end in 0..sorted.len() {
            while sorted[end].duration_since(sorted[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
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

/// DynamoDB's answer to a request over a partition's throughput.
fn throttling() -> Response {
    let body = json!({
        "__type": "com.amazon.coral.availability#ThrottlingException",
        "message": "Throughput exceeds the current capacity of your table or index.",
    });
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
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
            return refusal(
                "AccessDeniedException",
                &format!("not authorized to perform: dynamodb:{operation}"),
                None,
            );
        }
        Some(FaultEffect::Stalled(delay)) => tokio::time::sleep(delay).await,
        Some(FaultEffect::Throttled) => {
            shared.lock().stats.throttled += 1;
            return throttling();
        }
        None => {}
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let actions = write_actions(&operation, &parsed);
    if actions.is_empty() {
        return shared.forward(&headers, body).await;
    }
    let transaction = operation == "TransactWriteItems";
    let rate = shared.settings.partition_wcu;
    {
        let mut model = shared.lock();
        if transaction {
            model.stats.transactions += 1;
        }
        let held: HashSet<usize> = actions
            .iter()
            .enumerate()
            .filter(|(_, a)| model.held.contains(&a.item))
            .map(|(i, _)| i)
            .collect();
        if !held.is_empty() {
            return if transaction {
                model.stats.conflicts += 1;
                let reasons = reasons(actions.len(), &held, "TransactionConflict");
                refusal(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    Some(reasons),
                )
            } else {
                model.stats.write_conflicts += 1;
                refusal(
                    "TransactionConflictException",
                    "Transaction is ongoing for the item",
                    None,
                )
            };
        }
        if let Err(over) = model.take_units(&actions, rate) {
            model.stats.throttled += 1;
            let over: HashSet<usize> = over.into_iter().collect();
            return if transaction {
                refusal(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    Some(reasons(actions.len(), &over, "ThrottlingError")),
                )
            } else {
                throttling()
            };
        }
        if transaction {
            model.held.extend(actions.iter().map(|a| a.item.clone()));
        }
    }
    let answer = shared.forward(&headers, body).await;
    if transaction {
        tokio::time::sleep(shared.settings.hold).await;
    }
    let mut model = shared.lock();
    if transaction {
        for action in &actions {
            model.held.remove(&action.item);
        }
    }
    if answer.status().is_success() {
        let now = Instant::now();
        for action in actions.iter().filter(|a| a.item.1.starts_with("POST#")) {
            model
                .post_writes
                .entry(action.item.clone())
                .or_default()
                .push(now);
        }
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
        let actions = write_actions("TransactWriteItems", &body);
        assert_eq!(actions.len(), 3);
        assert!(actions.iter().all(|a| a.units == 2.0));
        assert_eq!(actions[0].index, None, "the post is not in GSI1");
        assert_eq!(actions[1].index.as_deref(), Some("POST#p1"), "a stamp");
        assert_eq!(actions[2].index, None);
        let plain = write_actions("PutItem", &json!({"Item": like("b")}));
        assert_eq!(plain[0].units, 1.0);
        assert_eq!(plain[0].index, None, "the writer appends without GSI1 keys");
        assert!(write_actions("GetItem", &json!({"Key": like("b")})).is_empty());
    }

    #[test]
    fn a_partition_takes_its_rate_and_refuses_the_rest_all_or_nothing() {
        let mut model = Model::default();
        let action = |pk: &str, index: Option<&str>| WriteAction {
            item: (pk.into(), "SK".into()),
            units: 2.0,
            index: index.map(str::to_owned),
        };
        let hot = vec![action("TOPIC#t", Some("POST#p")); 5];
        assert!(model.take_units(&hot, 10.0).is_ok(), "10 units of 10");
        let refused = model.take_units(&[action("USER#a", None), action("TOPIC#t", None)], 10.0);
        assert_eq!(
            refused,
            Err(vec![1]),
            "only the hot partition's action is over"
        );
        assert!(
            model.take_units(&[action("USER#a", None)], 10.0).is_ok(),
            "nothing was taken from the other partition"
        );
    }
}
