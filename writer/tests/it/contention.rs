//! The writer against DynamoDB's transaction conflicts (modelled in front of the local engine,
//! which never conflicts): an unlike that meets the projector's transaction on the same like
//! waits for it instead of answering 503.

use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use bench::contention::{ContentionModel, ContentionSettings};
use bench::writer_client::WriterClient;
use bench::{TestTable, eventually};
use contracts::counting;
use contracts::items::{Entity, Like, LikeRef};
use contracts::keys::ItemKey;
use reqwest::{Method, StatusCode};
use writer::WriteMode;
use writer::identity::IdentitySource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlike_racing_the_projectors_mark_of_its_like_waits_for_it() {
    let table = TestTable::new().await;
    let settings = ContentionSettings {
        hold: Duration::from_millis(500),
        ..ContentionSettings::default()
    };
    let model = ContentionModel::start(&table.endpoint, settings).await;
    let client = bench::app::client_at(&model.endpoint).await;
    let state = bench::app::app_state(
        &client,
        &table.name,
        WriteMode::Stream,
        IdentitySource::DevHeader,
    );
    let writer = WriterClient::new(writer::serve_on_loopback(state).await.unwrap());
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
