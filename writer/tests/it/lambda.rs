//! The entrypoints: the router as the Lambda function runs it (an API Gateway HTTP API payload
//! v2 event, identity from the JWT authorizer only), settings refused at start, and the local
//! server's clean stop on SIGTERM.

use bench::TestTable;
use tower::ServiceExt;
use writer::identity::IdentitySource;
use writer::{WriteMode, router};

const EVENT: &str = include_str!("../fixtures/apigw-v2-put-profile.json");

async fn lambda_router(table: &TestTable) -> axum::Router {
    router(bench::app::app_state(
        &table.client,
        &table.name,
        WriteMode::Stream,
        IdentitySource::Authorizer,
    ))
}

#[tokio::test]
async fn the_caller_is_the_authorizers_subject_never_the_dev_header() {
    let table = TestTable::new().await;
    let request = lambda_http::request::from_str(EVENT).expect("a valid API Gateway v2 event");
    let response = lambda_router(&table).await.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let user: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(user["userId"], "3f1c2a9e-7b1d-4c55-9a0e-5f0d8c6b2e11");
    assert_eq!(user["displayName"], "Jay");
}

#[tokio::test]
async fn without_authorizer_claims_writes_are_401() {
    let table = TestTable::new().await;
    let mut event: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = lambda_router(&table).await.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    // The problem names the request by API Gateway's request id, as its access logs do.
    assert_eq!(response.headers()["x-request-id"], "id");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["instance"], "urn:publishing:request:id");
}

#[test]
fn an_invalid_lambda_setting_stops_the_function_at_start() {
    // The Lambda's environment goes through the same arguments as the local server: an
    // unknown mode is refused before anything is served, never read as stream mode.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_writer"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("TABLE_NAME", "t")
        .env("WRITE_MODE", "bogus")
        .output()
        .expect("run the writer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with WRITE_MODE=bogus");
    assert!(
        stderr.contains("bogus") && stderr.contains("mode"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_writer_cleanly() {
    let table = TestTable::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut writer = std::process::Command::new(env!("CARGO_BIN_EXE_writer"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--table", &table.name, "--endpoint-url", &table.endpoint])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    bench::eventually(
        "the writer answers",
        std::time::Duration::from_secs(30),
        || async {
            reqwest::get(format!("{base}/openapi.json"))
                .await?
                .error_for_status()
        },
    )
    .await;
    let status = bench::terminate(&mut writer).await;
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}
