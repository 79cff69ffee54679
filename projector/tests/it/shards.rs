//! The projection as AWS runs it: the stream tailed live into 16 virtual shards × a
//! parallelization factor of 2, every batch its own invocation of a projector of its own,
//! against DynamoDB Local with transaction conflicts and partition throttling modelled in front
//! of it. One post takes 30 % of the likes, so its likes arrive through every shard at once:
//! its counter goes hot and is counted through deltas folded by a second hop.

use std::time::Duration;

use bench::TestTable;
use bench::shards::{ShardSettings, ViralLoad, simulate};
use contracts::items::ItemType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viral_post_over_many_shards_is_counted_exactly_through_deltas() {
    let (_dynamodb, table) = TestTable::on_own_instance().await;
    let load = ViralLoad::new(1_500, 20, 0.3);
    let settings = ShardSettings {
        batch_size: 100,
        batching_window: Duration::from_secs(1),
        ..ShardSettings::lanes(16, 2)
    };
    let figures = simulate(&table, &load, settings, 300.0).await;
    println!("shards: {figures:?}");

    let tallies = crate::support::until_converged(&table, Duration::from_secs(60)).await;
    for post in &load.posts {
        let likes = load.likes_of(post.post_id);
        assert_eq!(
            tallies.get(&post.post_id).copied().unwrap_or_default(),
            (likes, likes, likes)
        );
    }
    let deltas = bench::tally::scan(&table)
        .await
        .into_iter()
        .filter(|item| {
            item.get(contracts::keys::TYPE).and_then(|t| t.as_s().ok())
                == Some(&ItemType::Delta.as_str().to_owned())
        })
        .count();
    assert_eq!(deltas, 0, "every delta folded");
    assert!(
        figures.deltas_folded > 0,
        "the hot counter went through deltas: {figures:?}"
    );
    assert_eq!(
        figures.records_resent, 0,
        "conflicts are retried or avoided, never a failed record: {figures:?}"
    );
    assert!(
        figures.hot_counter_writes_per_second_max <= 10,
        "the hot counter is written at most ten times a second: {figures:?}"
    );
}
