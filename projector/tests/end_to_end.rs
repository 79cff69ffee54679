//! Writer → table → stream → poller → counters and the likers view, against DynamoDB Local.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;
use writer::WriteMode;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-user-id", user);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn post(&self) -> String {
        self.call(
            reqwest::Method::PUT,
            "/topics/t",
            "a",
            Some(json!({"title": "T"})),
        )
        .await;
        let post = self
            .call(
                reqwest::Method::POST,
                "/topics/t/posts",
                "a",
                Some(json!({"title": "P"})),
            )
            .await;
        post["postId"].as_str().unwrap().to_owned()
    }

    async fn like_count(&self, post: &str) -> i64 {
        let view = self
            .call(
                reqwest::Method::GET,
                &format!("/topics/t/posts/{post}"),
                "a",
                None,
            )
            .await;
        view["likeCount"].as_i64().unwrap()
    }
}

#[tokio::test]
async fn likes_and_unlikes_reach_the_counter_and_the_likers_view() {
    let table = contracts::testkit::TestTable::new().await;
    let client = Client {
        http: reqwest::Client::new(),
        base: serve_writer(&table, WriteMode::Stream).await,
    };
    let _poller = start_poller(&table).await;
    let cold = client.post().await;
    let hot = client.post().await;

    for user in 0..3 {
        client
            .call(
                reqwest::Method::PUT,
                &format!("/topics/t/posts/{cold}/like"),
                &format!("u{user}"),
                None,
            )
            .await;
    }
    // Enough likes in one go that the poller's batch treats the post as hot.
    let likes: Vec<_> = (0..60)
        .map(|user| {
            let (http, url) = (
                client.http.clone(),
                format!("{}/topics/t/posts/{hot}/like", client.base),
            );
            tokio::spawn(async move {
                let status = http
                    .put(url)
                    .header("x-user-id", format!("h{user}"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, StatusCode::CREATED);
            })
        })
        .collect();
    for like in likes {
        like.await.unwrap();
    }
    client
        .call(
            reqwest::Method::DELETE,
            &format!("/topics/t/posts/{cold}/like"),
            "u1",
            None,
        )
        .await;

    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    let cold_id = cold.parse().unwrap();
    let hot_id = hot.parse().unwrap();
    assert_eq!(tallies[&cold_id], (2, 2, 2));
    assert_eq!(tallies[&hot_id], (60, 60, 60));
    assert_eq!(client.like_count(&hot).await, 60);
    assert_eq!(view_count(&table, hot_id).await, 60);
    let likers = client
        .call(
            reqwest::Method::GET,
            &format!("/topics/t/posts/{cold}/likes"),
            "a",
            None,
        )
        .await;
    let users: Vec<_> = likers["likers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["userId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["u0", "u2"]);

    // Unlike and re-like: the new incarnation is counted once.
    client
        .call(
            reqwest::Method::DELETE,
            &format!("/topics/t/posts/{cold}/like"),
            "u0",
            None,
        )
        .await;
    client
        .call(
            reqwest::Method::PUT,
            &format!("/topics/t/posts/{cold}/like"),
            "u0",
            None,
        )
        .await;
    client
        .call(
            reqwest::Method::PUT,
            &format!("/topics/t/posts/{cold}/like"),
            "u7",
            None,
        )
        .await;
    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    assert_eq!(tallies[&cold_id], (3, 3, 3));
}

#[tokio::test]
async fn likes_counted_by_the_transactional_writer_are_left_alone() {
    let table = contracts::testkit::TestTable::new().await;
    let client = Client {
        http: reqwest::Client::new(),
        base: serve_writer(&table, WriteMode::Transactional).await,
    };
    let _poller = start_poller(&table).await;
    let post = client.post().await;
    for user in 0..5 {
        client
            .call(
                reqwest::Method::PUT,
                &format!("/topics/t/posts/{post}/like"),
                &format!("u{user}"),
                None,
            )
            .await;
    }
    client
        .call(
            reqwest::Method::DELETE,
            &format!("/topics/t/posts/{post}/like"),
            "u3",
            None,
        )
        .await;
    // A marker written after the likes: once the poller has projected it, it has seen them all.
    let stream_base = serve_writer(&table, WriteMode::Stream).await;
    let marker = Client {
        http: reqwest::Client::new(),
        base: stream_base,
    };
    let probe = marker.post().await;
    marker
        .call(
            reqwest::Method::PUT,
            &format!("/topics/t/posts/{probe}/like"),
            "probe",
            None,
        )
        .await;
    contracts::testkit::eventually(
        "the probe like is counted",
        Duration::from_secs(20),
        || async {
            let n = marker.like_count(&probe).await;
            if n == 1 { Ok(()) } else { Err(n) }
        },
    )
    .await;
    let tallies = tallies(&table).await;
    assert_eq!(
        tallies[&post.parse().unwrap()],
        (4, 4, 4),
        "the projector neither recounted nor uncounted"
    );
}
