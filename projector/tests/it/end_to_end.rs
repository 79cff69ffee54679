//! Writer → table → stream → poller → counters and the likers view, against the local engine.

use std::time::Duration;

use crate::support::*;
use bench::{TestTable, eventually};
use writer::WriteMode;

#[tokio::test]
async fn likes_and_unlikes_reach_the_counter_and_the_likers_view() {
    let table = TestTable::new().await;
    let client = crate::support::writer_client(&table, WriteMode::Stream).await;
    let _poller = start_poller(&table).await;
    let cold = client.create_post("t", "cold").await;
    let hot = client.create_post("t", "hot").await;

    for user in ["u0", "u1", "u2"] {
        client.like("t", &cold, user).await;
    }
    // Enough likes at once that the poller's batch treats the post as hot.
    let likes: Vec<_> = (0..60)
        .map(|user| {
            let (client, hot) = (client.clone(), hot.clone());
            tokio::spawn(async move { client.like("t", &hot, &format!("h{user}")).await })
        })
        .collect();
    for like in likes {
        like.await.unwrap();
    }
    client.unlike("t", &cold, "u1").await;

    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    let (cold_id, hot_id) = (cold.parse().unwrap(), hot.parse().unwrap());
    assert_eq!(tallies[&cold_id], (2, 2, 2));
    assert_eq!(tallies[&hot_id], (60, 60, 60));
    assert_eq!(client.like_count("t", &hot).await, 60);
    assert_eq!(
        view_count(&table, &crate::support::topic("t"), hot_id).await,
        60
    );
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
    client.unlike("t", &cold, "u0").await;
    client.like("t", &cold, "u0").await;
    client.like("t", &cold, "u7").await;
    let tallies = until_converged(&table, Duration::from_secs(20)).await;
    assert_eq!(tallies[&cold_id], (3, 3, 3));
}

#[tokio::test]
async fn likes_counted_by_the_transactional_writer_are_left_alone() {
    let table = TestTable::new().await;
    let transactional = crate::support::writer_client(&table, WriteMode::Transactional).await;
    let _poller = start_poller(&table).await;
    let post = transactional.create_post("t", "p").await;
    for user in ["u0", "u1", "u2", "u3", "u4"] {
        transactional.like("t", &post, user).await;
    }
    transactional.unlike("t", &post, "u3").await;
    // A like written after those: once the poller has counted it, it has seen them all.
    let stream = crate::support::writer_client(&table, WriteMode::Stream).await;
    let probe = stream.create_post("t", "probe").await;
    stream.like("t", &probe, "probe").await;
    eventually(
        "the probe like is counted",
        Duration::from_secs(20),
        || async {
            let n = stream.like_count("t", &probe).await;
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
