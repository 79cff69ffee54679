//! What the writer logs: one line per request with method, route, status and latency, and
//! never a request body (nor the item it becomes), whether the request succeeds or fails,
//! even with `RUST_LOG=trace`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::TestWriter;
use reqwest::{Method, StatusCode};
use serde_json::json;
use writer::WriteMode;

/// Log output captured in memory (a `MakeWriter` as a `Clone + Write`).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_bodies_never_reach_the_logs() {
    let logs = Captured::default();
    // The service's logging at its most verbose (RUST_LOG=trace), as in Lambda.
    let subscriber = contracts::telemetry::subscriber(true, "trace", logs.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let w = TestWriter::start(WriteMode::Stream).await;
    let secret = "body-marker-5b1f0c";
    w.expect(
        Method::PUT,
        "/topics/t",
        Some("u"),
        Some(json!({"title": secret})),
        StatusCode::CREATED,
    )
    .await;
    w.expect(
        Method::POST,
        "/topics/t/posts",
        Some("u"),
        Some(json!({"title": secret, "body": secret})),
        StatusCode::CREATED,
    )
    .await;
    let invalid = json!({"title": secret.repeat(100)});
    w.send(Method::POST, "/topics/t/posts", Some("u"), Some(invalid))
        .await;
    let malformed = w
        .request(Method::PUT, "/users/me", Some("u"))
        .header("content-type", "application/json")
        .body(format!("{{\"displayName\": \"{secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("/topics/{topic}/posts") && text.contains("\"status\":201"),
        "requests are logged by route and status: {text}"
    );
    assert!(
        !text.contains(secret),
        "a request body reached the logs: {}",
        text.lines()
            .find(|l| l.contains(secret))
            .unwrap_or_default()
    );
}
