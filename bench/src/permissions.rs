//! The IAM actions each deployed function needs, recorded from the calls the code makes while
//! the integration tests run, and checked against the committed `infra/permissions.json`,
//! which the CDK app builds the roles from.
//!
//! The local engine checks no permission, so without this a role could lack an action the code
//! calls (and fail only in AWS) or grant one nothing calls. A [`Recorder`] on a client labels
//! every request with the function that makes it ([`Function`]) and notes the IAM action on
//! the resource it touches: a transaction needs the action of each of its parts
//! (`dynamodb:UpdateItem` for an `Update`), a query on GSI1 the index's ARN. With
//! `PERMISSIONS_LOG=<dir>` set, each test process appends what it saw to a file there; the
//! ignored test `permissions::tests::infra_permissions_are_what_the_tests_called` (run by
//! `scripts/test.sh` after the suite) merges them and fails when `infra/permissions.json`
//! differs (`UPDATE_CONTRACTS=1` rewrites it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable naming the directory of recordings.
pub const PERMISSIONS_LOG_VAR: &str = "PERMISSIONS_LOG";

/// A deployed caller, each with a role (or policy) of its own in `infra/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Function {
    /// The writer Lambda.
    Writer,
    /// The projector Lambda (the code on a batch; the event source mapping's own reads of the
    /// stream are Lambda's, declared in `infra/`).
    Projector,
    /// The operator commands `replay`, `verify` and `rebuild`.
    Operator,
}

/// What an action is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// The table's items.
    Table,
    /// GSI1.
    Index,
    /// The table's stream.
    Stream,
}

/// One recorded need: `function` calls `action` on `resource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Need {
    /// The Lambda function.
    pub function: Function,
    /// The IAM action (`dynamodb:UpdateItem`, ...).
    pub action: String,
    /// What it is called on.
    pub resource: Resource,
}

/// Per function, per resource, the actions: the shape of `infra/permissions.json`.
pub type Permissions = BTreeMap<Function, BTreeMap<Resource, BTreeSet<String>>>;

/// The IAM actions and resources a request needs, from its target and body.
pub fn needs_of(target: &str, body: &Value) -> Vec<(String, Resource)> {
    let (service, operation) = target.split_once('.').unwrap_or(("", target));
    let streams = service.starts_with("DynamoDBStreams");
    let mut needs = Vec::new();
    match operation {
        "TransactWriteItems" => {
            for action in body["TransactItems"].as_array().into_iter().flatten() {
                for (part, iam) in [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                ] {
                    if action.get(part).is_some() {
                        needs.push((format!("dynamodb:{iam}"), Resource::Table));
                    }
                }
            }
        }
        "TransactGetItems" => needs.push(("dynamodb:GetItem".into(), Resource::Table)),
        "Query" | "Scan" if body.get("IndexName").is_some() => {
            needs.push((format!("dynamodb:{operation}"), Resource::Index));
        }
        _ if streams => needs.push((format!("dynamodb:{operation}"), Resource::Stream)),
        _ => needs.push((format!("dynamodb:{operation}"), Resource::Table)),
    }
    needs
}

/// An SDK interceptor noting what `function` calls; cheap to clone. Works on the DynamoDB and
/// the DynamoDB Streams clients alike (they share the interceptor trait).
#[derive(Debug, Clone)]
pub struct Recorder {
    function: Function,
    seen: Arc<Mutex<HashSet<Need>>>,
    file: PathBuf,
}

impl Recorder {
    /// A recorder for `function`, if `PERMISSIONS_LOG` names a directory.
    pub fn from_env(function: Function) -> Option<Self> {
        let dir = std::env::var_os(PERMISSIONS_LOG_VAR)?;
        std::fs::create_dir_all(&dir).ok()?;
        Some(Self {
            function,
            seen: Arc::default(),
            file: Path::new(&dir).join(format!("{}.jsonl", std::process::id())),
        })
    }

    fn note(&self, needs: Vec<(String, Resource)>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        for (action, resource) in needs {
            let need = Need {
                function: self.function,
                action,
                resource,
            };
            if seen.insert(need.clone()) {
                lines.extend(serde_json::to_vec(&need).expect("needs serialize"));
                lines.push(b'\n');
            }
        }
        if lines.is_empty() {
            return;
        }
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| f.write_all(&lines));
        if let Err(e) = appended {
            panic!("record permissions in {}: {e}", self.file.display());
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "PermissionRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let Some(target) = request.headers().get("x-amz-target") else {
            return Ok(());
        };
        let body = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .unwrap_or(Value::Null);
        self.note(needs_of(target, &body));
        Ok(())
    }
}

/// `client` with a recorder for `function` (itself when nothing is recorded).
pub fn dynamodb_for(
    client: &aws_sdk_dynamodb::Client,
    function: Function,
) -> aws_sdk_dynamodb::Client {
    match Recorder::from_env(function) {
        None => client.clone(),
        Some(recorder) => aws_sdk_dynamodb::Client::from_conf(
            client.config().to_builder().interceptor(recorder).build(),
        ),
    }
}

/// `client` with a recorder for `function` (itself when nothing is recorded).
pub fn streams_for(
    client: &aws_sdk_dynamodbstreams::Client,
    function: Function,
) -> aws_sdk_dynamodbstreams::Client {
    match Recorder::from_env(function) {
        None => client.clone(),
        Some(recorder) => aws_sdk_dynamodbstreams::Client::from_conf(
            client.config().to_builder().interceptor(recorder).build(),
        ),
    }
}

/// Everything recorded in `dir`, merged.
pub fn recorded(dir: &Path) -> std::io::Result<Permissions> {
    let mut permissions = Permissions::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let need: Need = serde_json::from_str(line).map_err(std::io::Error::other)?;
            permissions
                .entry(need.function)
                .or_default()
                .entry(need.resource)
                .or_default()
                .insert(need.action);
        }
    }
    Ok(permissions)
}

/// The committed file the CDK app reads.
pub fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/permissions.json")
}

/// The file's text for `permissions`.
pub fn to_json(permissions: &Permissions) -> String {
    serde_json::to_string_pretty(permissions).expect("permissions serialize") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_transaction_needs_the_action_of_each_part_and_an_index_query_the_index() {
        let transaction = json!({"TransactItems": [
            {"Update": {"TableName": "t"}}, {"Put": {"TableName": "t"}},
            {"Delete": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "t"}},
        ]});
        let needs = needs_of("DynamoDB_20120810.TransactWriteItems", &transaction);
        let actions: Vec<&str> = needs.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "dynamodb:UpdateItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem"
            ]
        );
        assert_eq!(
            needs_of("DynamoDB_20120810.Query", &json!({"IndexName": "GSI1"})),
            [("dynamodb:Query".to_owned(), Resource::Index)]
        );
        assert_eq!(
            needs_of("DynamoDB_20120810.Query", &json!({})),
            [("dynamodb:Query".to_owned(), Resource::Table)]
        );
        assert_eq!(
            needs_of("DynamoDBStreams_20120810.GetRecords", &json!({})),
            [("dynamodb:GetRecords".to_owned(), Resource::Stream)]
        );
    }

    /// Run after the whole suite with `PERMISSIONS_LOG` set (scripts/test.sh does).
    #[test]
    #[ignore = "needs the recordings of the whole suite: scripts/test.sh runs it last"]
    fn infra_permissions_are_what_the_tests_called() {
        let dir = std::env::var_os(PERMISSIONS_LOG_VAR)
            .expect("PERMISSIONS_LOG names the recordings of the suite");
        let observed = recorded(Path::new(&dir)).expect("read the recordings");
        for function in [Function::Writer, Function::Projector, Function::Operator] {
            assert!(
                observed.contains_key(&function),
                "nothing recorded for {function:?}: did the whole suite run with PERMISSIONS_LOG?"
            );
        }
        let path = committed_path();
        let text = to_json(&observed);
        if std::env::var_os("UPDATE_CONTRACTS").is_some() {
            std::fs::write(&path, &text).expect("write infra/permissions.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, text,
            "infra/permissions.json is stale: the code now calls what the left side lacks, or no \
             longer calls what it has; run scripts/test.sh with UPDATE_CONTRACTS=1"
        );
    }
}
