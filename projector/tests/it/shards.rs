//! The projection as AWS runs it: the stream split into 16 virtual shards × a
//! parallelization factor of 2, every batch its own invocation, against DynamoDB Local with
//! transaction conflicts and partition throttling modelled in front of it. One post takes 30 %
//! of the likes, so its likes arrive through every shard at once. The counts end exact.

use std::time::Duration;

use bench::TestTable;
use bench::shards::{ShardSettings, ViralLoad, simulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viral_post_over_many_shards_is_counted_exactly_despite_conflicts() {
    let table = TestTable::new().await;
    let load = ViralLoad::write(&table, 1_500, 20, 0.3).await;
    let settings = ShardSettings {
        shards: 16,
        parallelization: 2,
        batch_size: 100,
    };
    let figures = simulate(&table, &load, settings).await;
    println!("shards: {figures:?}");

    let tallies = crate::support::until_converged(&table, Duration::from_secs(60)).await;
    for post in &load.posts {
        let likes = load.likes_of(post.post_id);
        assert_eq!(
            tallies.get(&post.post_id).copied().unwrap_or_default(),
            (likes, likes, likes)
        );
    }
    assert!(
        figures.transaction_conflicts > 0,
        "32 lanes updating one counter at once must overlap: {figures:?}"
    );
}
