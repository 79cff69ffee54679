//! A writer served over real HTTP on a loopback port, on a table of its own.

#![allow(dead_code)]

use contracts::api::Problem;
use contracts::testkit::TestTable;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use writer::cursor::CursorCodec;
use writer::identity::{DEV_USER_HEADER, IdentitySource};
use writer::store::Store;
use writer::{AppState, WriteMode, serve_on_loopback};

pub struct TestWriter {
    pub table: TestTable,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestWriter {
    pub async fn start(mode: WriteMode) -> Self {
        Self::start_with(mode, IdentitySource::DevHeader).await
    }

    pub async fn start_with(mode: WriteMode, identity: IdentitySource) -> Self {
        let table = TestTable::new().await;
        let base = serve(
            Store::new(table.client.clone(), &table.name),
            mode,
            identity,
        )
        .await;
        Self {
            table,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A request as `user` (no identity header when `None`).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match user {
            Some(user) => builder.header(DEV_USER_HEADER, user),
            None => builder,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut builder = self.request(method, path, user);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        builder.send().await.expect("the writer answers")
    }

    /// Send and expect `status` with a JSON body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let response = self.send(method.clone(), path, user, body).await;
        let got = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    pub async fn create_topic(&self, slug: &str) {
        let body = serde_json::json!({"title": format!("Topic {slug}")});
        let status = self
            .send(
                Method::PUT,
                &format!("/topics/{slug}"),
                Some("admin"),
                Some(body),
            )
            .await
            .status();
        assert!(status.is_success(), "create topic {slug}: {status}");
    }

    /// Create a post and return its id.
    pub async fn create_post(&self, topic: &str, title: &str) -> String {
        let body = serde_json::json!({"title": title, "body": "text"});
        let post = self
            .expect(
                Method::POST,
                &format!("/topics/{topic}/posts"),
                Some("author"),
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        post["postId"].as_str().unwrap().to_owned()
    }
}

/// Serve the router on a free loopback port; the server lives as long as the test's runtime.
pub async fn serve(store: Store, mode: WriteMode, identity: IdentitySource) -> String {
    let state = AppState::new(store, mode, identity, CursorCodec::new("test-secret"), 1000);
    serve_on_loopback(state).await.expect("serve the writer")
}

/// Assert that a response is a problem document with `status`, and return it.
pub async fn problem(response: Response, status: StatusCode) -> Problem {
    let got = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "body: {text}"
    );
    let problem: Problem = serde_json::from_str(&text).unwrap();
    assert_eq!(problem.status, status.as_u16());
    problem
}
