//! The deployed event filters (`infra/filters.json`) against the decoder, on the real stream
//! records of every item shape the system writes: what the filters pass is exactly what the
//! projector has work in, and what they drop it would ignore.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use contracts::change::{Change, IgnoreReason, decode_json};
use contracts::counting;
use contracts::filters::{Filter, RULES, Work};
use contracts::items::{Entity, LikeRef, Tombstone, attr};
use contracts::keys::{ItemKey, PostId, UserId};
use reqwest::Method;
use serde_json::json;
use writer::WriteMode;

use crate::support::{WriterClient, projector, start_poller, view_count, writer_client};
use bench::{LocalInstance, TestTable, eventually};

/// What a decoded record is to the projector: its work, or why it is ignored.
fn kind_of(change: &Change) -> Result<Work, &'static str> {
    match change {
        Change::LikeAdded(_) => Ok(Work::LikeAdded),
        Change::LikeRemoved(_) => Ok(Work::LikeRemoved),
        Change::DeltaAdded(_) => Ok(Work::DeltaAdded),
        Change::StampDue(_) => Ok(Work::StampDue),
        Change::Ignored(reason) => Err(match reason {
            IgnoreReason::Modified => "Modified",
            IgnoreReason::Expired => "Expired",
            IgnoreReason::CountedByWriter => "CountedByWriter",
            IgnoreReason::RemovedUncounted(_) => "RemovedUncounted",
            IgnoreReason::RemovedByWriter => "RemovedByWriter",
            IgnoreReason::Folded => "Folded",
            IgnoreReason::OtherItem => "OtherItem",
        }),
    }
}

/// The like of `user` for `post` as the projection names it, read from the table.
async fn like_ref(table: &TestTable, user: &str, post: PostId) -> LikeRef {
    let user: UserId = user.parse().unwrap();
    let item = table
        .get(&ItemKey::Like(user, post))
        .await
        .expect("the like exists");
    let like = contracts::items::Like::from_item(item).unwrap();
    LikeRef::from(&like)
}

/// Wait until the API shows `post` with `n` likes.
async fn count_is(writer: &WriterClient, post: &str, n: i64) {
    eventually(
        &format!("{post} counts {n}"),
        Duration::from_secs(30),
        || async {
            match writer.like_count("f", post).await {
                count if count == n => Ok(()),
                count => Err(count),
            }
        },
    )
    .await;
}

async fn update(table: &TestTable, write: counting::Write) {
    write
        .update_item(&table.client, &table.name)
        .send()
        .await
        .expect("the write applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_filters_pass_exactly_the_records_that_are_work() {
    // An engine of its own that expires items, so that TTL removals are in the stream.
    let engine = LocalInstance::sweeping_ttl(1);
    let table = TestTable::on(&engine.endpoint()).await;
    let writer = writer_client(&table, WriteMode::Stream).await;
    let transactional = writer_client(&table, WriteMode::Transactional).await;
    let topic = crate::support::topic("f");

    // Topic, posts and a profile, created and replaced.
    writer.create_topic("f").await;
    let a = writer.create_post("f", "a").await;
    let hot = writer.create_post("f", "hot").await;
    let due = writer.create_post("f", "due").await;
    let profile = |name: &str| Some(json!({"displayName": name}));
    writer
        .call(Method::PUT, "/users/me", "u1", profile("U"))
        .await;
    writer
        .call(Method::PUT, "/users/me", "u1", profile("V"))
        .await;

    // A like taken back before anything counted it; likes counted and stamped (the poller
    // checkpoints as it goes); a counted like taken back (its tombstone) and liked again.
    writer.like("f", &a, "u0").await;
    writer.unlike("f", &a, "u0").await;
    for user in ["u1", "u2", "u3"] {
        writer.like("f", &a, user).await;
    }
    let poller = start_poller(&table).await;
    count_is(&writer, &a, 3).await;
    writer.unlike("f", &a, "u1").await;
    count_is(&writer, &a, 2).await;
    writer.like("f", &a, "u1").await;
    count_is(&writer, &a, 3).await;

    // The transactional writer counts its like and takes it back itself.
    transactional.like("f", &a, "u5").await;
    transactional.unlike("f", &a, "u5").await;

    // A hot counter: more likes of one post in a batch than a transaction holds go through
    // deltas, which come back through the stream to be folded.
    poller.abort();
    let _ = poller.await;
    for user in 0..300 {
        writer.like("f", &hot, &format!("h{user}")).await;
    }
    // A like counted with its stamp deferred (its view throttled), and deferred once more.
    writer.like("f", &due, "d1").await;
    let due_id: PostId = due.parse().unwrap();
    let put_off = like_ref(&table, "d1", due_id).await;
    let counting_transaction = [
        counting::count_like(&put_off, false)
            .to_update(&table.name)
            .unwrap(),
        counting::move_counter(&topic, due_id, 1)
            .to_update(&table.name)
            .unwrap(),
    ];
    table
        .client
        .transact_write_items()
        .set_transact_items(Some(
            counting_transaction
                .into_iter()
                .map(|u| TransactWriteItem::builder().update(u).build())
                .collect(),
        ))
        .send()
        .await
        .expect("the counting transaction commits");
    let now_ms = chrono::Utc::now().timestamp_millis();
    update(&table, counting::defer_stamp(&put_off, now_ms)).await;
    update(&table, counting::defer_stamp(&put_off, now_ms + 1)).await;
    // View growth, and a counter repair as rebuild writes it.
    update(&table, counting::grow_view(&topic, due_id, 2)).await;
    let post = table
        .get(&ItemKey::Post(topic.clone(), due_id))
        .await
        .unwrap();
    let version = post
        .get(attr::COUNT_VERSION)
        .and_then(|v| v.as_s().ok())
        .cloned();
    update(
        &table,
        counting::set_counter(&topic, due_id, 1, version.as_deref()),
    )
    .await;

    // The poller again, from its checkpoints: the deferred stamp passes the deployed filters
    // and the like enters the view.
    let poller = start_poller(&table).await;
    count_is(&writer, &hot, 300).await;
    eventually(
        "the deferred stamp is applied",
        Duration::from_secs(30),
        || async {
            match view_count(&table, &topic, due_id).await {
                1 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    poller.abort();
    let _ = poller.await;

    // A record the projector cannot read is quarantined.
    let broken = json!({
        "eventID": "broken", "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": "1", "ApproximateCreationDateTime": 0,
                     "NewImage": {"type": {"S": "Like"}, "likeId": {"S": "not-a-ksuid"}}}
    });
    let report = projector(&table).handle(&[broken]).await.unwrap();
    assert_eq!(report.metrics.quarantined, 1);

    // An expired tombstone, removed by the engine's TTL sweep as DynamoDB's sweeper would.
    let expired = Tombstone {
        like_id: contracts::keys::LikeId::generate(),
        user_id: "u9".parse().unwrap(),
        post_id: due_id,
        expires_at: chrono::Utc::now().timestamp() - 60,
    };
    table.put(expired.to_item()).await;
    let key = expired.item_key();
    eventually(
        "the expired tombstone is swept",
        Duration::from_secs(30),
        || async {
            match table.get(&key).await {
                None => Ok(()),
                Some(item) => Err(item.len()),
            }
        },
    )
    .await;

    // Every record: the filters pass it exactly when the decoder finds work in it.
    let records = bench::app::stream_records(&table).await;
    let filter = Filter::deployed();
    let mut kinds = BTreeSet::new();
    let mut shapes = BTreeSet::new();
    for record in &records {
        let decoded = decode_json(record)
            .unwrap_or_else(|e| panic!("every record the system writes decodes: {e}"));
        let kind = kind_of(&decoded.change);
        assert_eq!(
            filter.passes(record),
            kind.is_ok(),
            "{kind:?}: the deployed filters and the decoder disagree on {record}"
        );
        let image = if record["eventName"] == "REMOVE" {
            "OldImage"
        } else {
            "NewImage"
        };
        shapes.insert(format!(
            "{} {}",
            record["eventName"].as_str().unwrap(),
            record["dynamodb"][image]["type"]["S"]
                .as_str()
                .unwrap_or("?")
        ));
        kinds.insert(kind.map(Work::name).unwrap_or_else(|reason| reason));
    }

    // The premise: every kind of work and every reason to ignore a record was seen, on every
    // item shape the system writes.
    let expected: BTreeSet<&str> = RULES
        .iter()
        .map(|rule| rule.work.name())
        .chain([
            "Modified",
            "Expired",
            "CountedByWriter",
            "RemovedUncounted",
            "RemovedByWriter",
            "Folded",
            "OtherItem",
        ])
        .collect();
    assert_eq!(kinds, expected);
    for shape in [
        "INSERT Topic",
        "INSERT Post",
        "INSERT User",
        "MODIFY User",
        "INSERT Like",
        "MODIFY Like",
        "REMOVE Like",
        "MODIFY Post",
        "INSERT Tombstone",
        "REMOVE Tombstone",
        "INSERT Delta",
        "REMOVE Delta",
        "INSERT Checkpoint",
        "MODIFY Checkpoint",
        "INSERT Quarantine",
    ] {
        assert!(shapes.contains(shape), "no {shape} record: {shapes:?}");
    }
}
