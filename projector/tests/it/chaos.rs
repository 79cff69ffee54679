//! Chaos: thousands of random likes, unlikes and re-likes (Zipf-skewed posts plus one hot
//! post), projected through a delivery layer that duplicates batches, re-sends from the lowest
//! failure, bisects, crashes after k of n transactions, and runs two workers on overlapping
//! batches. At the end every post's `likeCount` equals its live likes in the base table and its
//! likes in GSI1. `CHAOS_OPS` sets the number of operations (default 5,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use bench::TestTable;
use bench::skew::PostSkew;
use contracts::change::{decode_json, from_streams_record};
use projector::apply::Applier;
use projector::handler::Projector;
use projector::plan::plan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Mutex;
use writer::WriteMode;

const USERS: usize = 300;
const COLD_POSTS: usize = 20;
const CLIENTS: usize = 8;

/// Everything the table's stream has so far, appended by a reader task.
async fn read_stream(table: &TestTable, log: Arc<Mutex<Vec<Value>>>, writing: Arc<AtomicBool>) {
    let arn = bench::app::stream_arn(table).await;
    let shard_id = bench::app::first_shard(table, &arn).await;
    let mut iterator = table
        .streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator;
    let mut idle_after_writes = 0;
    while let Some(current) = iterator {
        let out = table
            .streams
            .get_records()
            .shard_iterator(current)
            .limit(1000)
            .send()
            .await
            .unwrap();
        let records = out.records.unwrap_or_default();
        if records.is_empty() {
            if !writing.load(Ordering::SeqCst) {
                idle_after_writes += 1;
                if idle_after_writes >= 3 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            idle_after_writes = 0;
            let mut log = log.lock().await;
            log.extend(
                records
                    .into_iter()
                    .map(|r| serde_json::to_value(from_streams_record(r, &arn)).unwrap()),
            );
        }
        iterator = out.next_shard_iterator;
    }
}

/// The hostile delivery layer: takes batches from the log and projects them with every kind
/// of re-delivery Lambda can produce, and some it cannot.
struct Delivery {
    projector: Projector,
    applier: Applier,
    rng: StdRng,
    position: usize,
    batches: usize,
}

impl Delivery {
    async fn step(&mut self, log: &Mutex<Vec<Value>>) {
        let back = if self.rng.random_bool(0.3) {
            self.rng.random_range(0..50)
        } else {
            0
        };
        let start = self.position.saturating_sub(back);
        // Copy out only the window this step may touch (a batch and an overlapping one).
        let (window, end) = {
            let log = log.lock().await;
            let end = (start + self.rng.random_range(1..=300)).min(log.len());
            if start >= end {
                return;
            }
            (log[start..(end + 50).min(log.len())].to_vec(), end)
        };
        let batch = &window[..end - start];
        self.batches += 1;
        match self.rng.random_range(0..6) {
            // Plain delivery; resume at the lowest failure, as Lambda does.
            0 | 1 => self.deliver(start, batch).await,
            // The same batch twice.
            2 => {
                self.projector.handle(batch).await.unwrap();
                self.deliver(start, batch).await;
            }
            // Bisection: halves, in order.
            3 => {
                let mid = batch.len() / 2;
                self.projector.handle(&batch[..mid]).await.unwrap();
                self.deliver(start, batch).await;
            }
            // A crash after k of n counting transactions (no stamps); nothing is acknowledged.
            4 => {
                let decoded: Vec<_> = batch.iter().map(decode_json).collect();
                let mut partial = plan(&decoded);
                let k = self.rng.random_range(0..=partial.transactions.len());
                partial.transactions.truncate(k);
                partial.stamps.clear();
                let raw = |i: usize| batch[i].to_string();
                self.applier
                    .apply(
                        partial,
                        batch.len(),
                        &raw,
                        projector::deadline::Deadline::NONE,
                    )
                    .await;
            }
            // Two workers on overlapping batches at once.
            _ => {
                let (a, b) = tokio::join!(
                    self.projector.handle(batch),
                    self.projector.handle(&window[(end - start) / 3..])
                );
                let (a, _) = (a.unwrap(), b.unwrap());
                self.advance(start, batch.len(), a.first_failure);
            }
        }
    }

    async fn deliver(&mut self, start: usize, batch: &[Value]) {
        let report = self.projector.handle(batch).await.unwrap();
        self.advance(start, batch.len(), report.first_failure);
    }

    fn advance(&mut self, start: usize, len: usize, first_failure: Option<usize>) {
        let done = start + first_failure.unwrap_or(len);
        self.position = self.position.max(done);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_drift_under_duplication_redelivery_bisection_crashes_and_racing_workers() {
    let operations: usize = std::env::var("CHAOS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos: {operations} operations, CHAOS_SEED={seed}");
    let table = Arc::new(TestTable::new().await);
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    let (http, base) = (writer.http.clone(), writer.base.clone());
    // Zipf-skewed cold posts, and the hot post (index 0) one time in five.
    let skew = PostSkew::new(COLD_POSTS, 1.1, 0.2);
    let mut posts = Vec::new();
    for i in 0..skew.posts() {
        posts.push(writer.create_post("chaos", &format!("post {i}")).await);
    }

    let log = Arc::new(Mutex::new(Vec::new()));
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (table, log, writing) = (table.clone(), log.clone(), writing.clone());
        tokio::spawn(async move { read_stream(&table, log, writing).await })
    };

    // The load: CLIENTS concurrent clients, each a share of the operations.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, base, posts, skew) =
                (http.clone(), base.clone(), posts.clone(), skew.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed ^ (client as u64 + 1));
                for _ in 0..operations / CLIENTS {
                    let post = &posts[skew.pick(&mut rng)];
                    let user = rng.random_range(0..USERS);
                    let url = format!("{base}/topics/chaos/posts/{post}/like");
                    let request = if rng.random_bool(0.65) {
                        http.put(url)
                    } else {
                        http.delete(url)
                    };
                    let status = request
                        .header("x-user-id", format!("user-{user}"))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert!(status.is_success(), "{status}");
                }
            })
        })
        .collect();

    // Project while the load runs, and after it, until the whole stream is delivered.
    let mut delivery = Delivery {
        projector: crate::support::projector(&table),
        applier: Applier::new(table.client.clone(), &table.name),
        rng: StdRng::seed_from_u64(seed),
        position: 0,
        batches: 0,
    };
    let started = std::time::Instant::now();
    let load = async {
        for client in clients {
            client.await.unwrap();
        }
        writing.store(false, Ordering::SeqCst);
        println!("chaos: load done after {:?}", started.elapsed());
    };
    let project = async {
        loop {
            let reader_done = reader.is_finished();
            let logged = log.lock().await.len();
            if reader_done && delivery.position >= logged {
                break;
            }
            if delivery.position >= logged {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            delivery.step(&log).await;
        }
    };
    tokio::join!(load, project);
    println!("chaos: projection done after {:?}", started.elapsed());

    let tallies = crate::support::tallies(&table).await;
    let drift: Vec<_> = tallies
        .iter()
        .filter(|(_, (c, l, v))| c != l || l != v)
        .collect();
    assert!(
        drift.is_empty(),
        "drift after {} batches: {drift:?}",
        delivery.batches
    );
    let hot: contracts::keys::PostId = posts[PostSkew::HOT].parse().unwrap();
    let (count, live, _) = tallies[&hot];
    assert_eq!(
        crate::support::view_count(&table, &crate::support::topic("chaos"), hot).await,
        live,
        "the hot post's GSI1 view"
    );
    assert!(count > 0, "the hot post was liked");
    let likes: i64 = tallies.values().map(|(_, live, _)| live).sum();
    println!(
        "chaos: {} batches, {} records, {likes} live likes, zero drift",
        delivery.batches,
        log.lock().await.len()
    );
}
