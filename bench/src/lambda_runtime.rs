//! A real Lambda runtime for the deployed binaries: cargo-lambda's emulator of the Runtime
//! API (pinned in `scripts/python-tools.txt`, installed on first use), serving only loopback.
//! A test starts a binary with [`RuntimeEmulator::function_env`], as Lambda would, and sends it
//! events through the Invoke API; and AWS's own sample events, as the `aws_lambda_events` crate
//! ships them ([`sample_event`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::local::{until_listening, workspace_root};

/// The function name the emulator routes invocations to.
pub const FUNCTION_NAME: &str = "_";

/// The emulator, killed when dropped.
pub struct RuntimeEmulator {
    child: Child,
    port: u16,
}

/// The pinned Python tools' bin folder (installing them if needed).
fn python_tools() -> PathBuf {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/python-tools.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/python-tools.sh");
    assert!(out.status.success(), "installing the Python tools failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

impl RuntimeEmulator {
    /// Start the emulator on a free loopback port and wait until it listens.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(python_tools().join("cargo-lambda"))
            .args(["lambda", "watch", "--ignore-changes", "--only-lambda-apis"])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        until_listening(port, Duration::from_secs(60), "the Lambda emulator");
        Self { child, port }
    }

    /// The variables Lambda sets for a function, pointing at this emulator.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.port),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ]
    }

    /// Invoke the function with `event` (as Lambda's Invoke API does): its answer, or the
    /// error document of a failed invocation.
    pub async fn invoke(&self, event: &Value) -> Result<Value, Value> {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{FUNCTION_NAME}/invocations",
            self.port
        );
        let response = reqwest::Client::new()
            .post(url)
            .json(event)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status();
        let text = response.text().await.expect("an answer");
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        if status.is_success() {
            Ok(body)
        } else {
            Err(body)
        }
    }
}

/// A function process on the emulator, killed when dropped.
pub struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl RuntimeEmulator {
    /// Start `binary` as this emulator's function on `table` (the local engine through the
    /// standard environment variables, as the deployed function finds DynamoDB), with `env`.
    pub fn start_function(
        &self,
        binary: &str,
        table: &crate::TestTable,
        env: &[(&str, &str)],
    ) -> Function {
        let child = Command::new(binary)
            .envs(self.function_env())
            .env("TABLE_NAME", &table.name)
            .env("STAGE", "test")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &table.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        Function(child)
    }
}

impl Drop for RuntimeEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One of AWS's sample events as the `aws_lambda_events` crate ships them (`src/fixtures/`),
/// from the copy cargo downloaded.
pub fn sample_event(name: &str) -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "cargo metadata failed");
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "aws_lambda_events")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("aws_lambda_events is a dependency");
    let path = Path::new(manifest)
        .parent()
        .expect("a crate folder")
        .join("src/fixtures")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("sample events are JSON")
}
