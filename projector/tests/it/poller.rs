//! The local event source: checkpoints make a restarted poller resume where it stopped.

use std::time::Duration;

use crate::support::*;
use bench::TestTable;
use contracts::items::{Checkpoint, Entity};
use writer::WriteMode;

async fn checkpoints(table: &TestTable) -> Vec<Checkpoint> {
    scan(table)
        .await
        .into_iter()
        .filter_map(|item| Checkpoint::from_item(item).ok())
        .collect()
}

#[tokio::test]
async fn a_restarted_poller_resumes_from_its_checkpoint() {
    let table = TestTable::new().await;
    let client = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = client.create_post("t", "p").await;

    let first = start_poller(&table).await;
    for user in ["u1", "u2"] {
        client.like("t", &post, user).await;
    }
    until_converged(&table, Duration::from_secs(20)).await;
    // The checkpoint follows the batch that it covers.
    bench::eventually(
        "a checkpoint after the likes",
        Duration::from_secs(10),
        || async {
            let saved = checkpoints(&table).await;
            match saved.as_slice() {
                [one] if one.sequence.is_some() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    first.abort();
    let _ = first.await;

    // Likes while no poller runs, then a new poller told to start at LATEST: only its
    // checkpoint can make it see them.
    for user in ["u3", "u4", "u5"] {
        client.like("t", &post, user).await;
    }
    let second = start_poller_at(&table, projector::poller::StartAt::Latest).await;
    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (5, 5, 5));
    second.abort();
}

#[tokio::test]
async fn a_batching_window_gathers_likes_into_one_counter_write() {
    let table = TestTable::new().await;
    let client = crate::support::writer_client(&table, WriteMode::Stream).await;
    let post = client.create_post("t", "p").await;
    // The projector's writes, as the write log sees them.
    let log = tempfile::NamedTempFile::new().unwrap();
    let path = log.path().to_str().unwrap();
    let logged = bench::write_log::WriteLog::open(path, "projector").unwrap();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&table.config)
            .interceptor(logged)
            .build(),
    );
    let mut settings = projector::poller::PollerSettings::new(&table.name);
    settings.start_at = projector::poller::StartAt::Latest;
    settings.batch_window = Duration::from_secs(3);
    settings.idle_delay = Duration::from_millis(20);
    let mut poller = projector::poller::Poller::new(
        projector::handler::Projector::new(projector::apply::Applier::new(
            dynamo.clone(),
            &table.name,
        )),
        dynamo,
        table.streams.clone(),
        settings,
    )
    .await
    .unwrap();
    let polling = tokio::spawn(async move { poller.run().await });

    for user in ["u1", "u2", "u3", "u4", "u5"] {
        client.like("t", &post, user).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (5, 5, 5));
    let counter_writes = || {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<bench::write_log::WriteEntry>(line).unwrap())
            .filter(|entry| !entry.failed())
            .filter(|entry| {
                let key = contracts::keys::ItemKey::Post(topic("t"), post.parse().unwrap()).key();
                entry.items.contains(&(key.pk, key.sk))
            })
            .count()
    };
    // The answer to the last write may still be on its way to the interceptor.
    bench::eventually(
        "the counter write is logged",
        Duration::from_secs(10),
        || async {
            if counter_writes() > 0 {
                Ok(())
            } else {
                Err("no counter write logged")
            }
        },
    )
    .await;
    polling.abort();
    assert_eq!(
        counter_writes(),
        1,
        "five likes within the window, one counter write"
    );
}
