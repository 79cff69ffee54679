//! The likers page as it holds on AWS: GSI1 lags the table and its partitions throttle, which
//! the local engine never does; both are written or modelled here.

use aws_sdk_dynamodb::types::AttributeValue;
use bench::contention::{ContentionModel, ContentionSettings, Fault};
use bench::writer_client::WriterClient;
use bench::{TestTable, app};
use chrono::{DateTime, Utc};
use contracts::counting;
use contracts::items::{Entity, Like, LikeRef};
use contracts::keys::{self, ItemKey, LikeId, PostId, UserId, view_shard_of};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use writer::WriteMode;

/// Spread the post's likers view over `shards`, as the projector does when its view throttles.
async fn spread_view(table: &TestTable, post: PostId, shards: u32) {
    counting::grow_view(&"t".parse().unwrap(), post, shards)
        .update_item(&table.client, &table.name)
        .send()
        .await
        .expect("the view spread");
}

/// Stamp `user`'s like of `post` into the view shard its id picks among 4, as the projector
/// does once the view is spread; the like as it is.
async fn stamp_spread(table: &TestTable, user: &UserId, post: PostId) -> Like {
    let like =
        Like::from_item(table.get(&ItemKey::Like(user.clone(), post)).await.unwrap()).unwrap();
    counting::stamp_like(&LikeRef::from(&like), view_shard_of(user, 4))
        .update_item(&table.client, &table.name)
        .send()
        .await
        .expect("the like stamped");
    like
}

async fn likers(writer: &WriterClient, post: &str) -> Vec<(String, String)> {
    let page = writer
        .expect(
            Method::GET,
            &format!("/topics/t/posts/{post}/likes?limit=50"),
            None,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(page["nextCursor"], Value::Null, "one page: {page}");
    page["likers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["userId"].as_str().unwrap().to_owned(),
                l["likedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A liker who unliked and liked again after the view was spread is stamped into another
/// shard than before; GSI1 is updated after the table, so for a moment a query still finds
/// the old incarnation in its old shard. The local engine updates GSI1 with the table, so that
/// moment is written here as an item of its own carrying the old incarnation's view keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liker_seen_in_two_view_shards_is_listed_once_as_the_later_like() {
    let table = TestTable::new().await;
    let writer = app::writer_client(&table, WriteMode::Stream).await;
    let post = writer.create_post("t", "p").await;
    let post_id: PostId = post.parse().unwrap();
    spread_view(&table, post_id, 4).await;
    let user = (0..)
        .map(|i| format!("liker-{i}"))
        .find(|u| view_shard_of(&u.parse().unwrap(), 4) != 0)
        .unwrap();
    let user_id: UserId = user.parse().unwrap();

    // The old incarnation, stamped into shard 0 while the view was one shard.
    let old_id = LikeId::generate();
    let old_liked_at: DateTime<Utc> = Utc::now() - chrono::Duration::minutes(5);
    writer.like("t", &post, "someone-else").await;
    writer.like("t", &post, &user).await;
    stamp_spread(&table, &"someone-else".parse().unwrap(), post_id).await;
    let new = stamp_spread(&table, &user_id, post_id).await;
    let mut lagging = Like {
        like_id: old_id,
        liked_at: old_liked_at,
        ..new.clone()
    }
    .to_item_in_view(0);
    lagging.insert(
        keys::PK.into(),
        AttributeValue::S(format!("GSI1-LAG#{user}")),
    );
    table.put(lagging).await;
    assert!(old_id < new.like_id, "the re-like is the later incarnation");

    let listed = likers(&writer, &post).await;
    let users: Vec<&str> = listed.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(
        users,
        [user.as_str(), "someone-else"],
        "each liker once, by user id"
    );
    let (_, liked_at) = &listed[0];
    assert_eq!(
        liked_at.parse::<DateTime<Utc>>().unwrap(),
        new.liked_at,
        "the later incarnation wins"
    );
}

/// A view shard's query that DynamoDB throttles more often than the SDK retries is asked again
/// within the request budget: the page lists every liker, none left out for the cursor to
/// pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_view_shard_is_read_again_and_the_page_lists_every_liker() {
    let table = TestTable::new().await;
    let plain = app::writer_client(&table, WriteMode::Transactional).await;
    let post = plain.create_post("t", "p").await;
    for user in ["a", "b", "c"] {
        plain.like("t", &post, user).await;
    }
    // The SDK tries a call three times: four throttles outlast it.
    let model = ContentionModel::start(
        &table.endpoint,
        ContentionSettings {
            fault: Some(Fault::throttled("Query").times(4)),
            ..ContentionSettings::default()
        },
    )
    .await;
    let writer = app::writer_through(&model, &table, WriteMode::Transactional).await;

    let users: Vec<String> = likers(&writer, &post)
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(users, ["a", "b", "c"]);
    assert_eq!(model.stats().throttled, 4, "the view was throttled");
}
