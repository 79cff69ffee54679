//! Projector CPU: decode + plan of Lambda stream batches of 100 and 1,000 records on one core
//! (criterion; `cargo bench -p bench --bench decode_plan`). A batch mixes like inserts
//! (a third of them on one hot post, the rest over 50 posts) with unlike removals, as the
//! event filter passes them.

use contracts::change::decode_json;
use contracts::keys::{LikeId, PostId};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use projector::plan::plan;
use serde_json::{Value, json};

fn image(user: &str, post: &str, like_id: &str) -> Value {
    json!({
        "PK": {"S": format!("USER#{user}")},
        "SK": {"S": format!("LIKE#{post}")},
        "type": {"S": "Like"},
        "userId": {"S": user},
        "postId": {"S": post},
        "topic": {"S": "rust"},
        "title": {"S": "Streams as projections"},
        "likedAt": {"S": "2026-11-23T21:40:00.123Z"},
        "likeId": {"S": like_id},
    })
}

fn batch(size: usize) -> Vec<Value> {
    let hot = PostId::generate().to_string();
    let posts: Vec<String> = (0..50).map(|_| PostId::generate().to_string()).collect();
    (0..size)
        .map(|i| {
            let user = format!("user-{i}");
            let post = if i % 3 == 0 { &hot } else { &posts[i % 50] };
            let like = image(&user, post, &LikeId::generate().to_string());
            let (name, images) = if i % 5 == 4 {
                ("REMOVE", json!({"OldImage": like.clone()}))
            } else {
                ("INSERT", json!({"NewImage": like.clone()}))
            };
            let mut change = json!({
                "ApproximateCreationDateTime": 1795470000.0,
                "Keys": {"PK": like["PK"], "SK": like["SK"]},
                "SequenceNumber": format!("{:021}", 100_000_000_001_000_000_000u128 + i as u128),
                "SizeBytes": 250,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            });
            for (k, v) in images.as_object().unwrap() {
                change[k] = v.clone();
            }
            json!({
                "eventID": format!("e{i}"),
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": change,
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1",
            })
        })
        .collect()
}

fn decode_and_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode+plan");
    for size in [100, 1000] {
        let records = batch(size);
        assert!(records.iter().all(|r| decode_json(r).is_ok()));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("decode", size), &records, |b, records| {
            b.iter(|| records.iter().map(decode_json).collect::<Vec<_>>())
        });
        let decoded: Vec<_> = records.iter().map(decode_json).collect();
        group.bench_with_input(BenchmarkId::new("plan", size), &decoded, |b, decoded| {
            b.iter(|| plan(decoded))
        });
        group.bench_with_input(BenchmarkId::new("both", size), &records, |b, records| {
            b.iter(|| {
                let decoded: Vec<_> = records.iter().map(decode_json).collect();
                plan(&decoded)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode_and_plan);
criterion_main!(benches);
