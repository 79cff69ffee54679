//! The projection as AWS runs it: the stream tailed live into 16 virtual shards × a
//! parallelization factor of 2, every batch its own invocation of a projector of its own,
//! against the local engine with transaction conflicts and partition throttling modelled in front
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
        ..ShardSettings::consumers(16, 2)
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

/// A hot view whose GSI1 partition throttles spreads over view shards: the stamps that throttle
/// grow the post's `viewShards` (only ever grown) and are deferred rather than failing their
/// records, later stamps go to the new shards, every like ends up in exactly one, and the
/// writer's likers pages give each liker once, by user id.
/// DynamoDB's partitions take 100 write units a second here, so a thousand likes in one batch
/// (a hot view: stamps apart from counting) throttle a single view partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_view_that_throttles_spreads_over_view_shards_fails_no_record_and_pages_each_liker_once()
 {
    use bench::contention::{ContentionModel, ContentionSettings};
    use reqwest::{Method, StatusCode};

    let (_dynamodb, table) = TestTable::on_own_instance().await;
    let load = ViralLoad::hot_view(&table).await;
    let hot = &load.posts[bench::skew::PostSkew::HOT];
    let model = ContentionModel::start(
        &table.endpoint,
        ContentionSettings {
            partition_wcu: 100.0,
            ..ContentionSettings::default()
        },
    )
    .await;
    let lambda = bench::app::projector_through(&model, &table).await;
    // Lambda hands on what the stream holds, batch after batch: the likes, the deltas of the
    // hot counter, and the likes whose stamps were deferred coming back. The view's throttling
    // fails no record (so it slows no other post's).
    let likes = load.likes_of(hot.post_id);
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let put_off = std::sync::atomic::AtomicUsize::new(0);
    bench::eventually(
        "every like in the view, no record failed",
        Duration::from_secs(90),
        || async {
            let records = bench::app::stream_records(&table).await;
            let from = seen.swap(records.len(), std::sync::atomic::Ordering::SeqCst);
            if records.len() > from {
                let delivered = bench::app::through_filters(&records[from..]);
                let due = delivered.iter().filter(|r| {
                    matches!(
                        contracts::change::decode_json(r).map(|d| d.change),
                        Ok(contracts::change::Change::StampDue(_))
                    )
                });
                put_off.fetch_add(due.count(), std::sync::atomic::Ordering::SeqCst);
                let report = lambda.handle(&delivered).await.unwrap();
                assert_eq!(report.first_failure, None, "{:?}", report.metrics);
            }
            let in_view = bench::tally::view_count(&table, &hot.topic, hot.post_id).await;
            if in_view == likes {
                Ok(())
            } else {
                Err(in_view)
            }
        },
    )
    .await;
    // Whether a stamp is deferred here depends on how fast the view grew (it may grow before
    // any stamp is throttled twice): filters.rs proves a deferred stamp passes the filters.
    let _ = put_off.into_inner();
    // The hot counter's deltas written meanwhile: the second hop folds them.
    crate::support::deliver_written_since(&table, seen.into_inner()).await;
    assert_eq!(
        crate::support::until_converged(&table, Duration::from_secs(60)).await[&hot.post_id],
        (likes, likes, likes),
        "counted once and in the view once"
    );
    let post = table
        .get(&contracts::keys::ItemKey::Post(
            hot.topic.clone(),
            hot.post_id,
        ))
        .await
        .unwrap();
    let post = <contracts::items::Post as contracts::items::Entity>::from_item(post).unwrap();
    assert!(post.view_shards > 1, "the view was spread: {post:?}");
    let in_shard_zero = table
        .client
        .query()
        .table_name(&table.name)
        .index_name(contracts::keys::GSI1)
        .key_condition_expression("GSI1PK = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(contracts::keys::post_view_partition(
                &hot.post_id,
            )),
        )
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count;
    assert!(
        i64::from(in_shard_zero) < likes,
        "later stamps went to the new shards: {in_shard_zero} of {likes} in shard 0"
    );

    let writer = crate::support::writer_client(&table, writer::WriteMode::Stream).await;
    let (mut likers, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = format!(
            "/topics/{}/posts/{}/likes?limit=100{}",
            hot.topic,
            hot.post_id,
            cursor.map(|c| format!("&cursor={c}")).unwrap_or_default()
        );
        let page = writer
            .expect(Method::GET, &path, None, None, StatusCode::OK)
            .await;
        likers.extend(
            page["likers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["userId"].as_str().unwrap().to_owned()),
        );
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(likers.len() as i64, likes, "every liker");
    assert!(
        likers.windows(2).all(|pair| pair[0] < pair[1]),
        "each once, by user id"
    );
}

/// An instance that has never stamped a post's likes reads the post's view shard count before
/// its first stamps of a hot view: a view another instance spread is not stamped into shard 0
/// until that throttles, each like goes to the shard its liker's id picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_instance_stamps_a_spread_hot_view_into_the_shards_from_the_first_stamp() {
    use contracts::keys::{ItemKey, post_view_shard, view_shard_of};

    const SHARDS: u32 = 8;
    let table = TestTable::new().await;
    let load = ViralLoad::hot_view(&table).await;
    let hot = &load.posts[bench::skew::PostSkew::HOT];
    contracts::counting::grow_view(&hot.topic, hot.post_id, SHARDS)
        .update_item(&table.client, &table.name)
        .send()
        .await
        .unwrap();
    crate::support::deliver_written_since(&table, 0).await;
    let likes = load.likes_of(hot.post_id);
    assert_eq!(likes, projector::plan::HOT_POST_LIKES as i64, "a hot view");
    for like in load.likes.iter().filter(|l| l.post_id == hot.post_id) {
        let item = table
            .get(&ItemKey::Like(like.user_id.clone(), like.post_id))
            .await
            .unwrap();
        assert_eq!(
            item[contracts::keys::GSI1PK].as_s().unwrap(),
            &post_view_shard(&hot.post_id, view_shard_of(&like.user_id, SHARDS)),
            "{} in the shard its id picks",
            like.user_id
        );
    }
}
