//! Faults: the local engine killed and restarted in the middle of a load, and the poller killed
//! mid-batch again and again. Nothing a client was told is done may be lost, and every counter
//! must end exact.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Load, WriterClient, assert_acknowledged_hold, start_poller, until_converged};
use bench::{LocalInstance, TestTable, eventually, local_engine};
use rand::{Rng, SeedableRng};
use writer::WriteMode;

const TOPIC: &str = "faults";

async fn posts(writer: &WriterClient, n: usize) -> Vec<String> {
    let mut posts = Vec::new();
    for i in 0..n {
        posts.push(writer.create_post(TOPIC, &format!("post {i}")).await);
    }
    posts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_killed_mid_load_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().unwrap();
    let mut database = LocalInstance::start(Some(data.path()));
    let table = TestTable::on(&database.endpoint()).await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let posts = posts(&writer, 4).await;
    let poller = start_poller(&table).await;
    let load = Load::start(&writer.base, TOPIC, &posts, 6);
    load.until_acknowledged(150, Duration::from_secs(60)).await;

    database.kill();
    let unavailable = load.unavailable.load(std::sync::atomic::Ordering::SeqCst);
    eventually(
        "the writer answers 503 while the database is down",
        Duration::from_secs(30),
        || async {
            let now = load.unavailable.load(std::sync::atomic::Ordering::SeqCst);
            if now >= unavailable + 5 {
                Ok(())
            } else {
                Err(format!("{} answers 503 so far", now - unavailable))
            }
        },
    )
    .await;
    database.restart();
    load.until_acknowledged(150, Duration::from_secs(60)).await;
    let report = load.stop().await;

    let tallies = until_converged(&table, Duration::from_secs(60)).await;
    assert_eq!(tallies.len(), posts.len());
    assert_acknowledged_hold(&table, TOPIC, &report).await;
    let statuses: Vec<u16> = report.failures.keys().copied().collect();
    assert!(
        statuses.iter().all(|s| *s == 503),
        "only 503 while the database was down, got {:?}",
        report.failures
    );
    assert_eq!(
        report.retry_after,
        report.failures.get(&503).copied().unwrap_or(0),
        "every 503 carries Retry-After"
    );
    poller.abort();
}

/// Every post's stored `likeCount`, in post order.
async fn stored_counts(table: &TestTable) -> Vec<i64> {
    let mut counts: Vec<_> = crate::support::tallies(table)
        .await
        .into_iter()
        .map(|(post, t)| (post, t.0))
        .collect();
    counts.sort();
    counts.into_iter().map(|(_, count)| count).collect()
}

/// The projector binary polling the table's stream.
fn spawn_poller(table: &TestTable) -> Child {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .args([
            "poll",
            "--table",
            &table.name,
            "--endpoint-url",
            &table.endpoint,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the projector binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poller_killed_mid_batch_again_and_again_ends_exact() {
    let table = TestTable::on(local_engine()).await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let posts = posts(&writer, 3).await;
    let load = Load::start(&writer.base, TOPIC, &posts, 6);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let kills = 12;
    for _ in 0..kills {
        let before = stored_counts(&table).await;
        let mut poller = spawn_poller(&table);
        load.until_acknowledged(20, Duration::from_secs(60)).await;
        eventually(
            "the poller projects before it is killed",
            Duration::from_secs(30),
            || async {
                let now = stored_counts(&table).await;
                if now != before { Ok(()) } else { Err(now) }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        poller.kill().expect("SIGKILL the poller");
        poller.wait().unwrap();
    }
    let report = load.stop().await;
    let mut poller = spawn_poller(&table);
    let tallies = until_converged(&table, Duration::from_secs(120)).await;
    poller.kill().unwrap();
    poller.wait().unwrap();

    assert_eq!(tallies.len(), posts.len());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_acknowledged_hold(&table, TOPIC, &report).await;
}

#[tokio::test]
async fn sigterm_stops_the_poller_cleanly_with_its_checkpoint_saved() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post(TOPIC, "p").await;
    let mut poller = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args([
            "--table",
            &table.name,
            "--endpoint-url",
            &table.endpoint,
            "poll",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writer.like(TOPIC, &post, "u1").await;
    until_converged(&table, Duration::from_secs(30)).await;
    let status = bench::terminate(&mut poller).await;
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let checkpoints = crate::support::scan(&table)
        .await
        .into_iter()
        .filter(|item| {
            item.get("type")
                .and_then(|t| t.as_s().ok())
                .map(String::as_str)
                == Some("Checkpoint")
        })
        .count();
    assert_eq!(checkpoints, 1, "the poller saved where it stands");
}

/// A hot view's likes are stamped apart from counting; when counting fails (here every
/// transaction is denied, as for a role without the permission), none of them may enter the
/// likers view uncounted: the records are reported failed and stamped on re-delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_whose_counting_failed_stays_out_of_the_view() {
    let (_dynamodb, table) = TestTable::on_own_instance().await;
    // One batch with projector::plan::HOT_POST_LIKES likes of one post: its view is hot.
    let load = bench::shards::ViralLoad::hot_view(&table).await;
    let post = &load.posts[bench::skew::PostSkew::HOT];
    let written = bench::app::stream_records(&table).await;
    let records = bench::app::through_filters(&written);

    let denied = bench::contention::ContentionSettings {
        fault: Some(bench::contention::Fault::denied("TransactWriteItems")),
        ..Default::default()
    };
    let model = bench::contention::ContentionModel::start(&table.endpoint, denied).await;
    let projector = bench::app::projector_through(&model, &table).await;
    let report = projector.handle(&records).await.unwrap();
    assert!(report.first_failure.is_some(), "counting failed");
    assert_eq!(
        bench::tally::view_count(&table, &post.topic, post.post_id).await,
        0,
        "no uncounted like in the view"
    );

    let again = crate::support::projector(&table)
        .handle(&records)
        .await
        .unwrap();
    assert!(again.first_failure.is_none(), "{:?}", again.metrics);
    crate::support::deliver_written_since(&table, written.len()).await;
    let likes = load.likes_of(post.post_id);
    assert_eq!(likes, projector::plan::HOT_POST_LIKES as i64);
    assert_eq!(
        until_converged(&table, Duration::from_secs(60)).await[&post.post_id],
        (likes, likes, likes)
    );
}

/// The like items of `table` that are in a likers view, with their GSI1 partition.
async fn stamped(table: &TestTable) -> Vec<(String, String)> {
    bench::tally::scan(table)
        .await
        .into_iter()
        .filter_map(|item| {
            let view = item.get(contracts::keys::GSI1PK)?.as_s().ok()?.clone();
            let key = item.get(contracts::keys::PK)?.as_s().ok()?.clone();
            Some((key, view))
        })
        .collect()
}

/// A hot view's likes are stamped apart from counting; when their post does not exist (an
/// operator removed it), no counter shows them (a cold counter's move fails, a hot counter's
/// deltas find no counter to fold into), and the view must not either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_of_a_post_that_does_not_exist_are_not_shown() {
    let table = TestTable::new().await;
    let load = bench::shards::ViralLoad::hot_view(&table).await;
    let post = &load.posts[bench::skew::PostSkew::HOT];
    table
        .delete(&contracts::keys::ItemKey::Post(
            post.topic.clone(),
            post.post_id,
        ))
        .await;
    crate::support::deliver_written_since(&table, 0).await;
    assert_eq!(
        stamped(&table).await,
        [],
        "no like of the missing post in a view"
    );
}

/// A condition that fails without anything to drop (here the counter's `hotUntil` is not a
/// number, so the one-hop move's condition can never hold and the post reads as not hot) is
/// retried as the backoff allows, then the records fail (to be re-delivered): the batch ends.
/// Once the post is repaired, the re-delivery counts the like once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_keeps_failing_ends_the_batch_with_its_records_failed() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post(TOPIC, "p").await;
    writer.like(TOPIC, &post, "u").await;
    let key = contracts::items::key_item(&contracts::keys::ItemKey::Post(
        crate::support::topic(TOPIC),
        post.parse().unwrap(),
    ));
    let set_hot_until = |value: aws_sdk_dynamodb::types::AttributeValue| {
        table
            .client
            .update_item()
            .table_name(&table.name)
            .set_key(Some(key.clone()))
            .update_expression("SET #hot = :v")
            .expression_attribute_names("#hot", contracts::items::attr::HOT_UNTIL)
            .expression_attribute_values(":v", value)
            .send()
    };
    set_hot_until(aws_sdk_dynamodb::types::AttributeValue::S("soon".into()))
        .await
        .unwrap();
    let written = bench::app::stream_records(&table).await;
    let records = bench::app::through_filters(&written);
    let projector = crate::support::projector(&table);

    let report = tokio::time::timeout(Duration::from_secs(60), projector.handle(&records))
        .await
        .expect("the batch ended")
        .unwrap();
    assert!(report.first_failure.is_some(), "the like's record failed");
    assert_eq!(writer.like_count(TOPIC, &post).await, 0);

    set_hot_until(aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .await
        .unwrap();
    let again = projector.handle(&records).await.unwrap();
    assert_eq!(again.first_failure, None, "{:?}", again.metrics);
    assert_eq!(writer.like_count(TOPIC, &post).await, 1, "counted once");
}
