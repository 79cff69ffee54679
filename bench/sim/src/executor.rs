//! What the projector's executor (`projector::apply`) does with a request of the batch
//! machine, done on the simulated table: the same writes (`projector::batch::count`'s
//! `transaction_writes`, `contracts::counting`), DynamoDB's JSON answer read back as the
//! machine's [`Answer`] by the rules the executor reads the SDK's errors with
//! (`contracts::dynamo::is_throttle`, `retryable`).

use contracts::counting;
use contracts::dynamo::{CONDITION_FAILED, is_throttle, retryable};
use contracts::items::{Entity, key_of};
use contracts::keys::Ksuid;
use projector::apply::quarantined;
use projector::batch::count::{ActionKind, transaction_writes};
use projector::batch::{Answer, Reason, Request};
use serde_json::Value;

use crate::table::Table;
use crate::wire;

/// A request as the executor sends it through the SDK: built once (its delta ids minted, an
/// undecodable record's text read), then sent as it is by every attempt.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) request: Request,
    operation: &'static str,
    body: Value,
    /// The delta ids its transaction writes.
    pub(crate) minted: Vec<Ksuid>,
}

impl Prepared {
    /// Whether it goes through the client with the SDK's retries: every request but a stamp
    /// (`Applier`'s `stamp_client` makes one attempt).
    pub(crate) fn retried(&self) -> bool {
        !matches!(self.request, Request::Stamp { .. })
    }
}

/// Build `request` for table `name`; delta ids come from `delta_id`, an undecodable record's
/// text from `raw`.
pub(crate) fn prepare(
    name: &str,
    request: Request,
    mut delta_id: impl FnMut() -> Ksuid,
    raw: impl FnOnce(usize) -> String,
) -> Prepared {
    let mut minted = Vec::new();
    let update = |write: counting::Write| {
        (
            "UpdateItem",
            wire::request(ActionKind::Update, &write, name),
        )
    };
    let (operation, body) = match &request {
        Request::Quarantine {
            position,
            record,
            now_ms: at,
        } => {
            let item = quarantined(record, raw(*position), *at).to_item();
            let body = serde_json::json!({"TableName": name, "Item": wire::item(&item)});
            ("PutItem", body)
        }
        Request::Read { keys } => ("BatchGetItem", wire::batch_get(keys, name)),
        Request::Count {
            transaction,
            now_secs,
        } => {
            let mint = || {
                let id = delta_id();
                minted.push(id);
                id
            };
            let writes = transaction_writes(transaction, *now_secs, mint);
            ("TransactWriteItems", wire::transaction(&writes, name))
        }
        Request::Stamp { like, shard } => update(counting::stamp_like(like, *shard)),
        Request::Grow {
            topic,
            post,
            shards,
        } => update(counting::grow_view(topic, *post, *shards)),
        Request::Defer { like, now_ms: at } => update(counting::defer_stamp(like, *at)),
    };
    Prepared {
        request,
        operation,
        body,
        minted,
    }
}

/// Send a prepared request to `table` at `now_ms`, and read DynamoDB's answer as the executor
/// reads the SDK's.
pub(crate) fn send(table: &mut Table, prepared: &Prepared, now_ms: i64) -> Answer {
    let result = table.call(prepared.operation, &prepared.body, now_ms);
    match &prepared.request {
        Request::Read { .. } => match result {
            Ok(answer) => {
                let name = &table.name;
                let items = answer["Responses"][name]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(wire::from_item)
                    .collect();
                let unprocessed = answer["UnprocessedKeys"][name]["Keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|key| key_of(&wire::from_item(key)?))
                    .collect();
                Answer::Read { items, unprocessed }
            }
            Err(error) => error_answer(&error),
        },
        Request::Count { .. } => match result {
            Ok(_) => Answer::Done,
            Err(error) => error_answer(&error),
        },
        _ => single_answer(result),
    }
}

/// A single write's answer: a failed condition brings the old item, as the executor's
/// `update_answer` reads it.
fn single_answer(result: Result<Value, Value>) -> Answer {
    match result {
        Ok(_) => Answer::Done,
        Err(error) if wire::error_name(&error) == "ConditionalCheckFailedException" => {
            Answer::ConditionFailed {
                old: error.get("Item").and_then(wire::from_item),
            }
        }
        Err(error) => error_answer(&error),
    }
}

/// An error answer as the executor's `answer_of` reads it.
fn error_answer(error: &Value) -> Answer {
    let name = wire::error_name(error);
    if is_throttle(Some(name)) {
        return Answer::Throttled;
    }
    match name {
        "ConditionalCheckFailedException" => Answer::ConditionFailed { old: None },
        "TransactionCanceledException" => Answer::Cancelled(
            error["CancellationReasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(reason_of)
                .collect(),
        ),
        name if retryable(Some(name)) => Answer::Transient(name.to_owned()),
        name => Answer::Permanent(format!("{name}: {}", error["message"])),
    }
}

/// One cancellation reason as the executor's `reason_of` reads it.
fn reason_of(reason: &Value) -> Reason {
    match reason["Code"].as_str() {
        None | Some("None") => Reason::None,
        Some(CONDITION_FAILED) => Reason::ConditionFailed {
            old: reason.get("Item").and_then(wire::from_item),
        },
        Some("TransactionConflict") => Reason::Conflict,
        code if is_throttle(code) => Reason::Throttled,
        Some(other) => Reason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use contracts::items::{Like, LikeRef, Post, attr};
    use contracts::keys::{LikeId, PostId};
    use projector::plan::{CountTransaction, Mark, PostCount, PostRef};
    use serde_json::json;

    use super::*;
    use crate::table::{Table, TableSettings};

    /// The SDK sends a request again as it was built: a count whose first attempt landed (its
    /// answer lost) is cancelled by its own first write, and counts once.
    #[test]
    fn a_count_attempted_again_after_it_landed_is_cancelled_and_counts_once() {
        let now = 1_767_225_600_000;
        let mut table = Table::new("executor", now, TableSettings::default(), 1);
        let post = Post {
            topic: "executor".parse().unwrap(),
            post_id: PostId::generate(),
            title: "p".into(),
            body: String::new(),
            author_id: "a".parse().unwrap(),
            created_at: Utc.timestamp_millis_opt(now).unwrap(),
            like_count: 0,
            view_shards: 1,
        };
        let like = Like {
            user_id: "ann".parse().unwrap(),
            post_id: post.post_id,
            topic: post.topic.clone(),
            title: "p".into(),
            liked_at: Utc.timestamp_millis_opt(now).unwrap(),
            like_id: LikeId::generate(),
            counted_by: None,
        };
        for item in [post.to_item(), like.to_item()] {
            let put = json!({"TableName": "executor", "Item": wire::item(&item)});
            table.call("PutItem", &put, now).expect("put");
        }
        let count = PostCount {
            post: PostRef {
                topic: post.topic.clone(),
                post: post.post_id,
            },
            marks: vec![Mark {
                records: vec![0],
                like: LikeRef::from(&like),
                stamp: false,
            }],
            uncounts: Vec::new(),
            folds: Vec::new(),
            via_delta: true,
        };
        let request = Request::Count {
            transaction: CountTransaction { posts: vec![count] },
            now_secs: now / 1000,
        };
        let prepared = prepare("executor", request, Ksuid::generate, |_| String::new());
        assert_eq!(prepared.minted.len(), 1, "{prepared:?}");

        assert_eq!(send(&mut table, &prepared, now + 1_000), Answer::Done);
        let again = send(&mut table, &prepared, now + 2_000);
        let Answer::Cancelled(reasons) = &again else {
            panic!("the second attempt is cancelled: {again:?}");
        };
        assert!(
            reasons
                .iter()
                .any(|r| matches!(r, Reason::ConditionFailed { .. })),
            "{reasons:?}"
        );
        let scan = json!({"TableName": "executor", "ConsistentRead": true});
        let items = table.call("Scan", &scan, now + 3_000).expect("scan");
        let deltas = items["Items"].as_array().expect("items").iter();
        let deltas: Vec<_> = deltas.filter(|i| i.get(attr::DELTA).is_some()).collect();
        assert_eq!(deltas.len(), 1, "{deltas:?}");
    }
}
