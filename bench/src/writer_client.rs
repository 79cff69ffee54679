//! The writer's HTTP API as tests and the benchmark call it, with the dev identity header.

use contracts::api::Problem;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use writer::identity::DEV_USER_HEADER;

/// Who creates topics and posts in tests.
pub const AUTHOR: &str = "author";

/// A writer's base URL and an HTTP client.
#[derive(Clone, Debug)]
pub struct WriterClient {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The writer's base URL.
    pub base: String,
}

impl WriterClient {
    /// A client of the writer at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    /// A request as `user` (no identity header when `None`).
    pub fn request(&self, method: Method, path: &str, user: Option<&str>) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match user {
            Some(user) => builder.header(DEV_USER_HEADER, user),
            None => builder,
        }
    }

    /// Send a request as `user`, with a JSON `body` if any; the response.
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

    /// Send as `user` and expect a 2xx JSON answer.
    pub async fn call(&self, method: Method, path: &str, user: &str, body: Option<Value>) -> Value {
        let response = self.send(method.clone(), path, Some(user), body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    }

    /// Create the topic (idempotent: the first title wins).
    pub async fn create_topic(&self, slug: &str) {
        let body = json!({"title": format!("Topic {slug}")});
        self.call(Method::PUT, &format!("/topics/{slug}"), AUTHOR, Some(body))
            .await;
    }

    /// Create (or reuse) the topic and a new post in it; the post's id.
    pub async fn create_post(&self, topic: &str, title: &str) -> String {
        self.create_topic(topic).await;
        let body = json!({"title": title, "body": "text"});
        let post = self
            .expect(
                Method::POST,
                &format!("/topics/{topic}/posts"),
                Some(AUTHOR),
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        post["postId"].as_str().unwrap().to_owned()
    }

    /// Like a post as `user`.
    pub async fn like(&self, topic: &str, post: &str, user: &str) {
        let path = format!("/topics/{topic}/posts/{post}/like");
        self.call(Method::PUT, &path, user, None).await;
    }

    /// Unlike a post as `user`.
    pub async fn unlike(&self, topic: &str, post: &str, user: &str) {
        let path = format!("/topics/{topic}/posts/{post}/like");
        self.call(Method::DELETE, &path, user, None).await;
    }

    /// The post's `likeCount` as the API answers it.
    pub async fn like_count(&self, topic: &str, post: &str) -> i64 {
        let path = format!("/topics/{topic}/posts/{post}");
        let view = self.call(Method::GET, &path, AUTHOR, None).await;
        view["likeCount"].as_i64().unwrap()
    }
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
