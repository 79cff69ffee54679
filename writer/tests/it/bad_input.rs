//! Every class of bad input gets its status and a problem document, and changes nothing.

use crate::TestWriter;
use bench::writer_client::problem;
use reqwest::{Method, StatusCode};
use serde_json::json;
use writer::WriteMode;
use writer::identity::IdentitySource;

#[tokio::test]
async fn malformed_json_ids_and_cursors_are_400() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let post = w.create_post("t", "p").await;

    let broken = w
        .request(Method::POST, "/topics/t/posts", Some("u"))
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    problem(broken, StatusCode::BAD_REQUEST).await;

    for path in [
        "/topics/t/posts/not-a-ksuid".to_owned(),
        "/topics/t/posts/not-a-ksuid/like".to_owned(),
        "/users/bad%23id".to_owned(),
        "/topics/t/posts?limit=ten".to_owned(),
        "/topics/t/posts?cursor=abc".to_owned(),
        "/topics/t/posts?cursor=eyJQSyI6IlRPUElDI3QifQ.AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        format!("/topics/t/posts/{post}/likes?cursor=%00%ff"),
    ] {
        let method = if path.ends_with("/like") {
            Method::PUT
        } else {
            Method::GET
        };
        problem(
            w.send(method, &path, Some("u"), None).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn a_cursor_only_works_where_it_came_from() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("a").await;
    w.create_topic("b").await;
    for i in 0..3 {
        w.create_post("a", &format!("a{i}")).await;
        w.create_post("b", &format!("b{i}")).await;
    }
    let page = w
        .expect(
            Method::GET,
            "/topics/a/posts?limit=1",
            None,
            None,
            StatusCode::OK,
        )
        .await;
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    w.expect(
        Method::GET,
        &format!("/topics/a/posts?limit=1&cursor={cursor}"),
        None,
        None,
        StatusCode::OK,
    )
    .await;
    let transplanted = w
        .send(
            Method::GET,
            &format!("/topics/b/posts?cursor={cursor}"),
            None,
            None,
        )
        .await;
    problem(transplanted, StatusCode::BAD_REQUEST).await;

    // Edit the payload to point at topic b, keeping the signature: refused.
    let (payload, tag) = cursor.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let forged = format!(
        "{}.{tag}",
        engine.encode(text.replace("TOPIC#a", "TOPIC#b"))
    );
    let response = w
        .send(
            Method::GET,
            &format!("/topics/b/posts?cursor={forged}"),
            None,
            None,
        )
        .await;
    problem(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn validation_failures_are_422_and_name_the_field() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let cases = [
        (
            Method::POST,
            "/topics/t/posts",
            json!({"title": ""}),
            "title",
        ),
        (
            Method::POST,
            "/topics/t/posts",
            json!({"title": "x".repeat(201)}),
            "title",
        ),
        (
            Method::POST,
            "/topics/t/posts",
            json!({"title": "ok", "body": "b".repeat(8 * 1024 + 1)}),
            "body",
        ),
        (
            Method::PUT,
            "/topics/Bad_Slug",
            json!({"title": "x"}),
            "topic",
        ),
        (
            Method::PUT,
            &format!("/topics/{}", "a".repeat(65)),
            json!({"title": "x"}),
            "topic",
        ),
        (
            Method::PUT,
            "/users/me",
            json!({"displayName": ""}),
            "displayName",
        ),
    ];
    for (method, path, body, field) in cases {
        let p = problem(
            w.send(method, path, Some("u"), Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(p.errors.iter().any(|e| e.field == field), "{path}: {p:?}");
    }
    for limit in ["0", "101", "-1"] {
        let p = problem(
            w.send(
                Method::GET,
                &format!("/topics/t/posts?limit={limit}"),
                None,
                None,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p.errors[0].field, "limit");
    }
    let unknown = json!({"title": "x", "authorId": "mallory"});
    let p = problem(
        w.send(Method::POST, "/topics/t/posts", Some("u"), Some(unknown))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p.detail.unwrap().contains("unknown field"));
    let wrong_type = json!({"title": 5});
    problem(
        w.send(Method::POST, "/topics/t/posts", Some("u"), Some(wrong_type))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let page = w
        .expect(Method::GET, "/topics/t/posts", None, None, StatusCode::OK)
        .await;
    assert!(
        page["posts"].as_array().unwrap().is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn bodies_over_16_kib_are_413() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let big = json!({"title": "x", "body": "b".repeat(17 * 1024)});
    problem(
        w.send(Method::POST, "/topics/t/posts", Some("u"), Some(big))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn writes_need_an_identity() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let post = w.create_post("t", "p").await;
    let body = || Some(json!({"title": "x"}));
    for (method, path, body) in [
        (Method::PUT, "/topics/u".to_owned(), body()),
        (Method::POST, "/topics/t/posts".to_owned(), body()),
        (Method::PUT, format!("/topics/t/posts/{post}/like"), None),
        (Method::DELETE, format!("/topics/t/posts/{post}/like"), None),
        (
            Method::PUT,
            "/users/me".to_owned(),
            Some(json!({"displayName": "x"})),
        ),
        (Method::GET, "/users/me".to_owned(), None),
    ] {
        problem(
            w.send(method.clone(), &path, None, body.clone()).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        let bad_id = w
            .request(method, &path, Some("bad id"))
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(bad_id, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn without_the_dev_flag_the_identity_header_is_ignored() {
    let w = TestWriter::start_with(WriteMode::Stream, IdentitySource::Authorizer).await;
    let response = w
        .send(
            Method::PUT,
            "/topics/t",
            Some("alice"),
            Some(json!({"title": "x"})),
        )
        .await;
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let w = TestWriter::start(WriteMode::Stream).await;
    problem(
        w.send(Method::GET, "/nowhere", None, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        w.send(Method::PATCH, "/topics/t", Some("u"), None).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
}

/// Serve `state` and create a topic through it: the answer, and how long it took.
async fn timed_topic_creation(state: writer::AppState) -> (reqwest::Response, std::time::Duration) {
    let base = writer::serve_on_loopback(state).await.unwrap();
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .put(format!("{base}/topics/t"))
        .header("x-user-id", "u")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    (response, started.elapsed())
}

#[tokio::test]
async fn an_unreachable_database_is_a_quick_503_with_retry_after() {
    // A port that refuses connections: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = bench::app::client_at(&format!("http://127.0.0.1:{port}")).await;
    let state = bench::app::app_state(&client, "t", WriteMode::Stream, IdentitySource::DevHeader);
    let (response, elapsed) = timed_topic_creation(state).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let p = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        !p.detail.unwrap().contains("127.0.0.1"),
        "no internals in the answer"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "answered in {elapsed:?}"
    );
}

#[tokio::test]
async fn a_slow_database_is_a_503_with_retry_after_within_the_request_budget() {
    let table = bench::TestTable::new().await;
    let proxy = bench::slow_proxy::SlowProxy::start(
        &table.endpoint,
        std::time::Duration::from_millis(1500),
    )
    .await;
    let client = bench::app::client_at(&proxy.endpoint).await;
    let budget = std::time::Duration::from_secs(1);
    let state = bench::app::app_state(
        &client,
        &table.name,
        WriteMode::Stream,
        IdentitySource::DevHeader,
    )
    .with_budget(budget);
    let (response, elapsed) = timed_topic_creation(state).await;
    assert_eq!(response.headers()["retry-after"], "1");
    problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        elapsed < budget + std::time::Duration::from_millis(500),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn every_problem_names_its_request() {
    let w = TestWriter::start(WriteMode::Stream).await;
    let response = w.send(Method::GET, "/no/such/route", None, None).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let p = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(p.instance, Some(format!("urn:publishing:request:{id}")));
    let other = w.send(Method::GET, "/no/such/route", None, None).await;
    assert_ne!(
        other.headers()["x-request-id"].to_str().unwrap(),
        id,
        "one id per request"
    );
}
