//! The local event source: checkpoints make a restarted poller resume where it stopped.

mod support;

use std::time::Duration;

use contracts::items::{Checkpoint, Entity};
use contracts::testkit::TestTable;
use support::*;
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
    let client = WriterClient::start(&table, WriteMode::Stream).await;
    let post = client.create_post("t", "p").await;

    let first = start_poller(&table).await;
    for user in ["u1", "u2"] {
        client.like("t", &post, user).await;
    }
    until_converged(&table, Duration::from_secs(20)).await;
    // The checkpoint follows the batch that it covers.
    contracts::testkit::eventually(
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
