//! Every route end to end over real HTTP against the local engine.

use std::collections::HashSet;

use crate::TestWriter;
use aws_sdk_dynamodb::types::AttributeValue;
use bench::writer_client::problem;
use reqwest::{Method, StatusCode};
use serde_json::json;
use writer::WriteMode;

/// Like items of one user for one post, straight from the base table.
async fn like_items(w: &TestWriter, user: &str, post: &str) -> usize {
    let out = w
        .table
        .client
        .query()
        .table_name(&w.table.name)
        .key_condition_expression("PK = :pk AND SK = :sk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("USER#{user}")))
        .expression_attribute_values(":sk", AttributeValue::S(format!("LIKE#{post}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items().len()
}

#[tokio::test]
async fn topics_are_created_once_by_slug() {
    let w = TestWriter::start(WriteMode::Stream).await;
    let first = w
        .expect(
            Method::PUT,
            "/topics/rust",
            Some("alice"),
            Some(json!({"title": "Rust"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(first["slug"], "rust");
    assert_eq!(first["createdBy"], "alice");
    let again = w
        .expect(
            Method::PUT,
            "/topics/rust",
            Some("bob"),
            Some(json!({"title": "Other"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(again, first, "a repeat returns the topic unchanged");
}

#[tokio::test]
async fn posts_are_created_read_and_listed_newest_first_across_pages() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("news").await;
    w.create_topic("other").await;
    w.create_post("other", "elsewhere").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(w.create_post("news", &format!("post {i}")).await);
    }

    let response = w
        .send(
            Method::POST,
            "/topics/news/posts",
            Some("carol"),
            Some(json!({"title": "located"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let located: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/topics/news/posts/{}", located["postId"].as_str().unwrap())
    );
    assert_eq!(located["authorId"], "carol");
    let fetched = w
        .expect(Method::GET, &location, None, None, StatusCode::OK)
        .await;
    assert_eq!(fetched, located);
    assert_eq!(fetched["likeCount"], 0);
    created.push(located["postId"].as_str().unwrap().to_owned());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/topics/news/posts?limit=3&cursor={c}"),
            None => "/topics/news/posts?limit=3".to_owned(),
        };
        let page = w
            .expect(Method::GET, &path, None, None, StatusCode::OK)
            .await;
        let posts = page["posts"].as_array().unwrap();
        assert!(posts.len() <= 3);
        seen.extend(
            posts
                .iter()
                .map(|p| p["postId"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match page.get("nextCursor").and_then(|c| c.as_str()) {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert!(pages >= 3);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
    // Newest first to the ids' 4 ms resolution; posts created within one tick come in
    // descending id order (their random part), as the API documents.
    let tick = |id: &String| id.parse::<contracts::keys::PostId>().unwrap().millis();
    assert!(
        created.windows(2).all(|w| tick(&w[0]) <= tick(&w[1])),
        "ids take the time they were created at"
    );
    let mut newest_first = created.clone();
    newest_first.sort_by(|a, b| tick(b).cmp(&tick(a)).then(b.cmp(a)));
    assert_eq!(seen, newest_first, "every post once, newest first");
}

#[tokio::test]
async fn a_like_is_one_item_however_often_it_is_sent() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let post = w.create_post("t", "liked").await;
    let path = format!("/topics/t/posts/{post}/like");

    let first = w
        .expect(Method::PUT, &path, Some("dave"), None, StatusCode::CREATED)
        .await;
    assert_eq!(
        (first["liked"].as_bool(), first["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let repeat = w
        .expect(Method::PUT, &path, Some("dave"), None, StatusCode::OK)
        .await;
    assert_eq!(repeat["changed"], false);
    assert_eq!(like_items(&w, "dave", &post).await, 1);

    let gone = w
        .expect(Method::DELETE, &path, Some("dave"), None, StatusCode::OK)
        .await;
    assert_eq!(
        (gone["liked"].as_bool(), gone["changed"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(like_items(&w, "dave", &post).await, 0);
    let again = w
        .expect(Method::DELETE, &path, Some("dave"), None, StatusCode::OK)
        .await;
    assert_eq!(again["changed"], false, "unlike is idempotent");

    w.expect(Method::PUT, &path, Some("dave"), None, StatusCode::CREATED)
        .await;
    assert_eq!(
        like_items(&w, "dave", &post).await,
        1,
        "re-like after unlike"
    );
}

#[tokio::test]
async fn stream_mode_appends_without_counting_or_entering_the_view() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let post = w.create_post("t", "p").await;
    w.expect(
        Method::PUT,
        &format!("/topics/t/posts/{post}/like"),
        Some("erin"),
        None,
        StatusCode::CREATED,
    )
    .await;
    let item = w
        .table
        .client
        .get_item()
        .table_name(&w.table.name)
        .key("PK", AttributeValue::S("USER#erin".into()))
        .key("SK", AttributeValue::S(format!("LIKE#{post}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the like item");
    assert!(!item.contains_key("GSI1PK") && !item.contains_key("countedBy"));
    assert_eq!(
        item["title"].as_s().unwrap(),
        "p",
        "title copied from the post"
    );
    let post_view = w
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        post_view["likeCount"], 0,
        "the writer never counts in stream mode"
    );
}

#[tokio::test]
async fn likes_of_missing_posts_and_topics_are_404() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let elsewhere = w.create_post("t", "p").await;
    let missing = contracts::keys::PostId::generate();
    for (method, path) in [
        (Method::PUT, format!("/topics/t/posts/{missing}/like")),
        (Method::DELETE, format!("/topics/t/posts/{missing}/like")),
        (Method::PUT, format!("/topics/other/posts/{elsewhere}/like")),
        (Method::GET, format!("/topics/t/posts/{missing}")),
        (Method::GET, format!("/topics/t/posts/{missing}/likes")),
        (Method::GET, "/topics/nope/posts".to_owned()),
        (Method::GET, "/users/nobody".to_owned()),
    ] {
        problem(
            w.send(method, &path, Some("u"), None).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let body = json!({"title": "x"});
    problem(
        w.send(Method::POST, "/topics/nope/posts", Some("u"), Some(body))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn users_show_their_profile_and_liked_posts_with_titles() {
    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let mut posts = Vec::new();
    for i in 0..5 {
        let post = w.create_post("t", &format!("title {i}")).await;
        w.expect(
            Method::PUT,
            &format!("/topics/t/posts/{post}/like"),
            Some("fay"),
            None,
            StatusCode::CREATED,
        )
        .await;
        posts.push(post);
    }
    let profile = json!({"displayName": "Fay", "bio": "writes"});
    let me = w
        .expect(
            Method::PUT,
            "/users/me",
            Some("fay"),
            Some(profile),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (me["userId"].as_str(), me["displayName"].as_str()),
        (Some("fay"), Some("Fay"))
    );

    let first = w
        .expect(
            Method::GET,
            "/users/fay?limit=2",
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(first["user"]["bio"], "writes");
    let mut liked: Vec<(String, String)> = Vec::new();
    let mut page = first;
    loop {
        for like in page["likes"].as_array().unwrap() {
            liked.push((
                like["postId"].as_str().unwrap().into(),
                like["title"].as_str().unwrap().into(),
            ));
        }
        let Some(cursor) = page.get("nextCursor").and_then(|c| c.as_str()) else {
            break;
        };
        page = w
            .expect(
                Method::GET,
                &format!("/users/fay?limit=2&cursor={cursor}"),
                None,
                None,
                StatusCode::OK,
            )
            .await;
    }
    let expected: Vec<(String, String)> = posts
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (p.clone(), format!("title {i}")))
        .collect();
    assert_eq!(
        liked, expected,
        "every liked post once, newest post first, with titles"
    );

    let mine = w
        .expect(
            Method::GET,
            "/users/me?limit=100",
            Some("fay"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(mine["likes"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn transactional_mode_counts_and_lists_likers_at_once() {
    let w = TestWriter::start(WriteMode::Transactional).await;
    w.create_topic("t").await;
    let post = w.create_post("t", "p").await;
    for user in ["u3", "u1", "u2"] {
        w.expect(
            Method::PUT,
            &format!("/topics/t/posts/{post}/like"),
            Some(user),
            None,
            StatusCode::CREATED,
        )
        .await;
    }
    w.expect(
        Method::PUT,
        &format!("/topics/t/posts/{post}/like"),
        Some("u1"),
        None,
        StatusCode::OK,
    )
    .await;
    let first = w
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}/likes?limit=2"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(first["post"]["likeCount"], 3);
    let cursor = first["nextCursor"].as_str().expect("a second page");
    let second = w
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}/likes?limit=2&cursor={cursor}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    let users: Vec<_> = first["likers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["likers"].as_array().unwrap())
        .map(|l| l["userId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["u1", "u2", "u3"], "likers by user id, each once");
    w.expect(
        Method::DELETE,
        &format!("/topics/t/posts/{post}/like"),
        Some("u2"),
        None,
        StatusCode::OK,
    )
    .await;
    let after = w
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(after["likeCount"], 2);
}

#[tokio::test]
async fn transactional_mode_stays_exact_under_50_concurrent_likes_and_unlikes() {
    let w = std::sync::Arc::new(TestWriter::start(WriteMode::Transactional).await);
    w.create_topic("hot").await;
    let post = w.create_post("hot", "viral").await;
    let path = format!("/topics/hot/posts/{post}/like");
    let run = |method: Method, expected: StatusCode| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (w, path, method) = (w.clone(), path.clone(), method.clone());
                tokio::spawn(async move {
                    let user = format!("user-{i}");
                    let status = w.send(method, &path, Some(&user), None).await.status();
                    assert_eq!(status, expected, "{user}");
                })
            })
            .collect();
        futures_join(handles)
    };
    run(Method::PUT, StatusCode::CREATED).await;
    let view = w
        .expect(
            Method::GET,
            &format!("/topics/hot/posts/{post}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["likeCount"], 50);
    run(Method::DELETE, StatusCode::OK).await;
    let view = w
        .expect(
            Method::GET,
            &format!("/topics/hot/posts/{post}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["likeCount"], 0);
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        handle.await.expect("request task");
    }
}

#[tokio::test]
async fn a_writer_counted_like_is_uncounted_by_a_stream_mode_unlike() {
    // Both modes on one table: whoever counted a like owns its decrement.
    let txn = TestWriter::start(WriteMode::Transactional).await;
    txn.create_topic("t").await;
    let post = txn.create_post("t", "p").await;
    let path = format!("/topics/t/posts/{post}/like");
    txn.expect(Method::PUT, &path, Some("gus"), None, StatusCode::CREATED)
        .await;

    let stream_base = bench::app::serve_writer(
        &txn.table,
        WriteMode::Stream,
        writer::identity::IdentitySource::DevHeader,
    )
    .await;
    let response = txn
        .http
        .delete(format!("{stream_base}{path}"))
        .header("x-user-id", "gus")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let view = txn
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["likeCount"], 0);
    assert_eq!(like_items(&txn, "gus", &post).await, 0);
}

/// A hot post's likers view spread over view shards (as the projector stamps them): pages merge
/// the shards by user id, and a reader paging while the shard count grows gets every like
/// that was in the view when it started once, in order, and every later one above its cursor.
#[tokio::test]
async fn likers_are_paged_by_user_id_across_view_shards_while_their_count_grows() {
    use contracts::counting::{grow_view, stamp_like};
    use contracts::items::{Entity, Like, LikeRef};
    use contracts::keys::{LikeId, PostId, TopicSlug, view_shard_of};

    let w = TestWriter::start(WriteMode::Stream).await;
    w.create_topic("t").await;
    let post_id = w.create_post("t", "p").await;
    let post: PostId = post_id.parse().unwrap();
    let topic: TopicSlug = "t".parse().unwrap();
    let stamped = |user: String, shards: u32| {
        let (topic, table) = (topic.clone(), &w.table);
        async move {
            let like = Like {
                user_id: user.parse().unwrap(),
                post_id: post,
                topic,
                title: "p".into(),
                liked_at: chrono::Utc::now(),
                like_id: LikeId::generate(),
                counted_by: None,
            };
            table.put(like.to_item()).await;
            stamp_like(&LikeRef::from(&like), view_shard_of(&like.user_id, shards))
                .update_item(&table.client, &table.name)
                .send()
                .await
                .unwrap();
        }
    };
    let page = |cursor: Option<String>| {
        let path = match cursor {
            None => format!("/topics/t/posts/{post_id}/likes?limit=7"),
            Some(c) => format!("/topics/t/posts/{post_id}/likes?limit=7&cursor={c}"),
        };
        let w = &w;
        async move {
            let page = w
                .expect(Method::GET, &path, None, None, StatusCode::OK)
                .await;
            let users: Vec<String> = page["likers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["userId"].as_str().unwrap().to_owned())
                .collect();
            (users, page["nextCursor"].as_str().map(str::to_owned))
        }
    };

    let users: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    let (early, late): (Vec<_>, Vec<_>) = users
        .iter()
        .cloned()
        .partition(|u| u.ends_with(['0', '2', '4', '6', '8']));
    let grow = |shards: u32| {
        let write = grow_view(&topic, post, shards);
        let table = &w.table;
        async move {
            write
                .update_item(&table.client, &table.name)
                .send()
                .await
                .unwrap();
        }
    };
    grow(2).await;
    for user in &early {
        stamped(user.clone(), 2).await;
    }
    let (mut seen, mut cursor) = page(None).await;
    assert_eq!(
        seen,
        early[..7],
        "the first page merges both shards by user id"
    );
    // The view spreads over eight shards while the reader pages; more likes come in.
    grow(8).await;
    for user in &late {
        stamped(user.clone(), 8).await;
    }
    while let Some(next) = cursor {
        let (users, after) = page(Some(next)).await;
        seen.extend(users);
        cursor = after;
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "each like once, by user id: {seen:?}"
    );
    let first_cursor = &early[6];
    for user in early
        .iter()
        .chain(late.iter().filter(|u| *u > first_cursor))
    {
        assert!(seen.contains(user), "{user} missing: {seen:?}");
    }
}
