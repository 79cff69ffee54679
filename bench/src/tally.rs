//! The true counts of a test table, through the same fold `projector verify` uses: per post,
//! the stored `likeCount`, the live likes (the truth) and the likes in the GSI1 view.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use contracts::items::Item;
use contracts::keys::{self, PostId, TopicSlug};
use projector::verify::{ScanSpec, tally};

use crate::local::{TestTable, eventually};

/// One post's figures: (stored likeCount, live likes, likes in the view).
pub type Counts = (i64, i64, i64);

/// Every post's [`Counts`].
pub async fn tallies(table: &TestTable) -> HashMap<PostId, Counts> {
    let spec = ScanSpec {
        table: table.name.clone(),
        segments: 1,
        topic: None,
        page_size: None,
    };
    let folded = tally(&table.client, &spec, &|_| {})
        .await
        .expect("scan the table");
    folded
        .posts
        .into_iter()
        .map(|(post, t)| (post.post, (t.stored.unwrap_or(0), t.live, t.in_view)))
        .collect()
}

/// Wait until every post's count equals its live likes and its GSI1 view; the counts then.
pub async fn until_converged(table: &TestTable, within: Duration) -> HashMap<PostId, Counts> {
    eventually("counts = live likes = GSI1 view", within, || async {
        let tallies = tallies(table).await;
        let drift: Vec<_> = tallies
            .iter()
            .filter(|(_, (c, l, v))| c != l || l != v)
            .collect();
        if drift.is_empty() {
            Ok(tallies.clone())
        } else {
            Err(format!("{} posts drift: {drift:?}", drift.len()))
        }
    })
    .await
}

/// Every item of the table, read consistently.
pub async fn scan(table: &TestTable) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = table
            .client
            .scan()
            .table_name(&table.name)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the table");
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Likes of one post in the GSI1 view, as the index answers: every view shard below the
/// post's count, as the likers page reads them.
pub async fn view_count(table: &TestTable, topic: &TopicSlug, post: PostId) -> i64 {
    let item = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(contracts::items::key_item(&keys::ItemKey::Post(
            topic.clone(),
            post,
        ))))
        .consistent_read(true)
        .send()
        .await
        .expect("read the post")
        .item
        .expect("the post exists");
    let shards = contracts::items::Post::view_shards_in(&item);
    let mut total = 0;
    for k in 0..shards {
        let query = table
            .client
            .query()
            .table_name(&table.name)
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :likes)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::post_view_shard(&post, k)))
            .expression_attribute_values(":likes", AttributeValue::S(keys::prefix::LIKES.into()))
            .select(Select::Count);
        let mut pages = query.into_paginator().send();
        while let Some(page) = pages.next().await {
            total += i64::from(page.expect("query the view").count);
        }
    }
    total
}
