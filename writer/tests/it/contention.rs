//! The writer against DynamoDB's transaction conflicts (modelled in front of the local engine,
//! which never conflicts): an unlike that meets the projector's transaction on the same like
//! waits for it instead of answering 503.

use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use bench::contention::{ContentionModel, ContentionSettings};
use bench::{TestTable, eventually};
use contracts::counting;
use contracts::items::{Entity, Like, LikeRef};
use contracts::keys::ItemKey;
use reqwest::{Method, StatusCode};
use writer::WriteMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlike_racing_the_projectors_mark_of_its_like_waits_for_it() {
    let table = TestTable::new().await;
    let settings = ContentionSettings {
        hold: Duration::from_millis(500),
        ..ContentionSettings::default()
    };
    let model = ContentionModel::start(&table.endpoint, settings).await;
    let client = bench::app::client_at(&model.endpoint).await;
    let writer = bench::app::writer_through(&model, &table, WriteMode::Stream).await;
    let post = writer.create_post("t", "p").await;
    writer.like("t", &post, "u").await;

    // The projector marks the like: a transaction that holds the like item for a while.
    let key = ItemKey::Like("u".parse().unwrap(), post.parse().unwrap());
    let like = LikeRef::from(&Like::from_item(table.get(&key).await.unwrap()).unwrap());
    let mark = TransactWriteItem::builder()
        .update(
            counting::count_like(&like, true)
                .to_update(&table.name)
                .unwrap(),
        )
        .build();
    let marking = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .transact_write_items()
                .transact_items(mark)
                .send()
                .await
        })
    };
    eventually(
        "the mark holds the like",
        Duration::from_secs(10),
        || async {
            if model.held_items() > 0 {
                Ok(())
            } else {
                Err("nothing held yet")
            }
        },
    )
    .await;

    let path = format!("/topics/t/posts/{post}/like");
    let answer = writer
        .expect(Method::DELETE, &path, Some("u"), None, StatusCode::OK)
        .await;
    assert_eq!(answer["changed"], true);
    marking.await.unwrap().expect("the mark committed first");
    assert!(
        model.stats().write_conflicts >= 1,
        "the unlike met the transaction: {:?}",
        model.stats()
    );
}

/// The transactional writer on a viral post whose view the projector has spread: each like
/// goes, in its counting transaction, to the view shard its liker's id picks among the post's,
/// not all to shard 0 (the partition that throttled), and under the concurrent likes' conflicts
/// on the post's counter every like is answered, none with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transactional_writer_spreads_a_viral_posts_likes_over_its_view_shards() {
    use contracts::keys::{PostId, UserId, post_view_shard, view_shard_of};
    use futures_util::StreamExt;

    const SHARDS: u32 = 8;
    const LIKES: usize = 160;
    let table = TestTable::new().await;
    let model = ContentionModel::start(&table.endpoint, ContentionSettings::default()).await;
    let writer = bench::app::writer_through(&model, &table, WriteMode::Transactional).await;
    let post = writer.create_post("t", "viral").await;
    let post_id: PostId = post.parse().unwrap();
    counting::grow_view(&"t".parse().unwrap(), post_id, SHARDS)
        .update_item(&table.client, &table.name)
        .send()
        .await
        .expect("the view spread, as the projector spreads a throttled one");

    let path = format!("/topics/t/posts/{post}/like");
    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..LIKES)
        .map(|i| {
            let (writer, path) = (&writer, &path);
            async move {
                writer
                    .send(Method::PUT, path, Some(&format!("fan-{i}")), None)
                    .await
                    .status()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "every like answered 201: {statuses:?}"
    );
    assert!(
        model.stats().conflicts > 0,
        "the likes contended on the post's counter: {:?}",
        model.stats()
    );
    assert_eq!(writer.like_count("t", &post).await, LIKES as i64);

    let mut shards_used = std::collections::BTreeSet::new();
    for i in 0..LIKES {
        let user: UserId = format!("fan-{i}").parse().unwrap();
        let item = table
            .get(&ItemKey::Like(user.clone(), post_id))
            .await
            .unwrap();
        let shard = view_shard_of(&user, SHARDS);
        assert_eq!(
            item[contracts::keys::GSI1PK].as_s().unwrap(),
            &post_view_shard(&post_id, shard),
            "{user} in the shard its id picks"
        );
        shards_used.insert(shard);
    }
    assert_eq!(shards_used.len(), SHARDS as usize, "every shard took likes");
}
