//! Verify throughput on the local engine: items/s of the parallel scan and tally with 1, 4 and 8
//! segments over a table of 100,000 likes (`VERIFY_BENCH_LIKES` to change).
//!
//! `cargo bench -p bench --bench verify` (uses `DYNAMODB_LOCAL_ENDPOINT`, or starts one).

use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use bench::TestTable;
use chrono::Utc;
use contracts::items::{CountedBy, Entity, Like, Post};
use contracts::keys::{LikeId, PostId};
use futures_util::{StreamExt, stream};
use projector::verify::{DEFAULT_PAGE_SIZE, ScanSpec, tally};

const POSTS: usize = 1_000;

#[tokio::main]
async fn main() {
    let likes: usize = std::env::var("VERIFY_BENCH_LIKES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let table = TestTable::new().await;
    let posts: Vec<PostId> = (0..POSTS).map(|_| PostId::generate()).collect();
    let mut items = Vec::with_capacity(likes + POSTS);
    for (i, post) in posts.iter().enumerate() {
        let likes_of_post = likes / POSTS + usize::from(i < likes % POSTS);
        items.push(
            Post {
                topic: "bench".parse().unwrap(),
                post_id: *post,
                author_id: "author".parse().unwrap(),
                title: format!("post {i}"),
                body: String::new(),
                created_at: Utc::now(),
                like_count: likes_of_post as i64,
                view_shards: 1,
            }
            .to_item(),
        );
        for user in 0..likes_of_post {
            items.push(
                Like {
                    user_id: format!("user-{user}").parse().unwrap(),
                    post_id: *post,
                    topic: "bench".parse().unwrap(),
                    title: format!("post {i}"),
                    liked_at: Utc::now(),
                    like_id: LikeId::generate(),
                    counted_by: Some(CountedBy::Projector),
                }
                .to_item_in_view(0),
            );
        }
    }
    let loading = Instant::now();
    let total = items.len();
    let chunks: Vec<Vec<_>> = items.chunks(25).map(|c| c.to_vec()).collect();
    stream::iter(chunks)
        .for_each_concurrent(8, |chunk| {
            let table = &table;
            async move {
                let mut requests: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder().set_item(Some(item)).build().unwrap(),
                            )
                            .build()
                    })
                    .collect();
                while !requests.is_empty() {
                    let sent = table
                        .client
                        .batch_write_item()
                        .request_items(&table.name, requests.clone())
                        .send()
                        .await;
                    // A timed-out batch is sent again whole; puts are idempotent.
                    if let Ok(out) = sent {
                        requests = out
                            .unprocessed_items
                            .and_then(|mut u| u.remove(&table.name))
                            .unwrap_or_default();
                    }
                }
            }
        })
        .await;
    println!(
        "loaded {total} items ({likes} likes, {POSTS} posts) in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    // Items per scan page (`VERIFY_BENCH_PAGE`, as verify's `--page-size`; 0: 1 MB pages).
    let page_size = match std::env::var("VERIFY_BENCH_PAGE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(0) => None,
        Some(items) => Some(items),
        None => Some(DEFAULT_PAGE_SIZE),
    };
    for segments in [1, 4, 8] {
        let spec = ScanSpec {
            table: table.name.clone(),
            segments,
            topic: None,
            page_size,
        };
        let started = Instant::now();
        let tallies = tally(&table.client, &spec, &|_| {}).await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert!(tallies.drift().is_empty());
        println!(
            "verify, {segments} segment(s): {} items in {seconds:.2} s = {:.0} items/s",
            tallies.items,
            tallies.items as f64 / seconds
        );
    }
}
