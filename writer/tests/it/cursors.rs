//! Cursors across processes: every writer of a deployment signs with one secret, read from
//! Secrets Manager once at start, so page 2 works wherever it is served; without a secret the
//! Lambda function refuses to start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use bench::TestTable;
use bench::writer_client::WriterClient;
use contracts::dynamo::{Endpoint, sdk_config};
use reqwest::Method;
use serde_json::{Value, json};
use writer::WriteMode;
use writer::cursor::CursorCodec;
use writer::identity::IdentitySource;
use writer::server::{AppArgs, MissingSecret, cursor_codec};

/// A writer on `table` signing with `cursors`.
async fn writer_signing(table: &TestTable, cursors: CursorCodec) -> WriterClient {
    let state = bench::app::app_state_signing(
        &table.client,
        &table.name,
        WriteMode::Stream,
        IdentitySource::DevHeader,
        cursors,
    );
    WriterClient::new(writer::serve_on_loopback(state).await.unwrap())
}

/// Page 2 of the topic's posts, from page 1's cursor, as `status`.
async fn second_page(from: &WriterClient, on: &WriterClient, status: StatusCode) {
    let first = from
        .expect(
            Method::GET,
            "/topics/t/posts?limit=1",
            None,
            None,
            StatusCode::OK,
        )
        .await;
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let path = format!("/topics/t/posts?limit=1&cursor={cursor}");
    on.expect(Method::GET, &path, None, None, status).await;
}

/// A stand-in for Secrets Manager on a loopback port: answers `GetSecretValue` for `arn`
/// with `secret`, and counts the reads.
async fn secrets_manager(arn: &'static str, secret: &'static str) -> (String, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = reads.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let counted = counted.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let request: Value = serde_json::from_str(&body).unwrap_or_default();
            if target != "secretsmanager.GetSecretValue" || request["SecretId"] != arn {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unexpected {target} {body}"),
                );
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = json!({"ARN": arn, "Name": "cursor", "SecretString": secret});
            (StatusCode::OK, answer.to_string())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, reads)
}

fn args(arn: Option<&str>, secret: Option<&str>) -> AppArgs {
    AppArgs {
        table: "t".into(),
        mode: WriteMode::Stream,
        cursor_secret: secret.map(str::to_owned),
        cursor_secret_arn: arn.map(str::to_owned),
        cache_capacity: 10,
    }
}

#[tokio::test]
async fn writers_sharing_the_stored_secret_accept_each_others_cursors() {
    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cursor-AbCdEf";
    let table = TestTable::new().await;
    let (endpoint, reads) = secrets_manager(ARN, "one secret for every writer").await;
    let config = sdk_config(&Endpoint {
        url: Some(endpoint),
    })
    .await;
    let stored = cursor_codec(&args(Some(ARN), None), &config, MissingSecret::Refuse)
        .await
        .expect("the secret is read");
    assert_eq!(reads.load(Ordering::SeqCst), 1, "read once, at start");

    let first = writer_signing(&table, stored).await;
    let second = writer_signing(&table, CursorCodec::new("one secret for every writer")).await;
    let other = writer_signing(&table, CursorCodec::new("another deployment")).await;
    first.create_topic("t").await;
    for i in 0..3 {
        first.create_post("t", &format!("post {i}")).await;
    }
    second_page(&first, &second, StatusCode::OK).await;
    second_page(&second, &first, StatusCode::OK).await;
    second_page(&first, &other, StatusCode::BAD_REQUEST).await;
    assert_eq!(reads.load(Ordering::SeqCst), 1, "never read again");
}

#[tokio::test]
async fn without_a_secret_the_function_refuses_to_start_and_the_local_server_signs_alone() {
    let config = sdk_config(&Endpoint {
        url: Some("http://127.0.0.1:9".into()),
    })
    .await;
    let refused = cursor_codec(&args(None, None), &config, MissingSecret::Refuse).await;
    assert!(
        refused.is_err(),
        "a function without a secret must not start"
    );
    assert!(
        cursor_codec(&args(None, None), &config, MissingSecret::RandomKey)
            .await
            .is_ok()
    );
    // An unreadable secret stops the start too, rather than signing with a key of its own.
    let unreadable = cursor_codec(&args(Some("arn:x"), None), &config, MissingSecret::Refuse).await;
    assert!(unreadable.is_err());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_writer"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("TABLE_NAME", "t")
        .env_remove("CURSOR_SECRET")
        .env_remove("CURSOR_SECRET_ARN")
        .output()
        .expect("run the writer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a cursor secret");
    assert!(stderr.contains("cursor secret"), "{stderr}");
}
