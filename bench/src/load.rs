//! Clients liking and unliking through the writer until stopped, remembering per (user, post)
//! the last operation and whether it was acknowledged: what fault tests check against the
//! table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use contracts::items::{Entity, Like};
use rand::{Rng, SeedableRng};
use writer::identity::DEV_USER_HEADER;

use crate::local::{TestTable, eventually};
use crate::skew::PostSkew;

/// A like or an unlike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `PUT .../like`.
    Like,
    /// `DELETE .../like`.
    Unlike,
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered 2xx.
    pub acknowledged: u64,
    /// Answers that were not 2xx (or no answer: status 0), by status.
    pub failures: BTreeMap<u16, u64>,
    /// 503 answers that carried `Retry-After`.
    pub retry_after: u64,
    /// Per (user, post): the last operation sent and whether it was acknowledged. Each key
    /// belongs to one client, so its operations never overlap.
    pub last: HashMap<(String, String), (Op, bool)>,
}

impl LoadReport {
    fn merge(mut self, other: LoadReport) -> LoadReport {
        self.acknowledged += other.acknowledged;
        for (status, n) in other.failures {
            *self.failures.entry(status).or_default() += n;
        }
        self.retry_after += other.retry_after;
        self.last.extend(other.last);
        self
    }
}

/// Clients liking and unliking through the writer until stopped; `acknowledged` counts the
/// 2xx answers as they come, so a test can wait for progress.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// 2xx answers so far.
    pub acknowledged: Arc<AtomicU64>,
    /// 503 answers so far.
    pub unavailable: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// `clients` clients, each with 20 users of its own, over `posts` of `topic` (chosen
    /// uniformly).
    pub fn start(base: &str, topic: &str, posts: &[String], clients: usize) -> Self {
        let skew = PostSkew::new(posts.len() - 1, 0.0, 1.0 / posts.len() as f64);
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let clients = (0..clients)
            .map(|client| {
                let (stop, acknowledged, unavailable) =
                    (stop.clone(), acknowledged.clone(), unavailable.clone());
                let (http, base, topic, posts, skew) = (
                    http.clone(),
                    base.to_owned(),
                    topic.to_owned(),
                    posts.to_vec(),
                    skew.clone(),
                );
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
                    let mut report = LoadReport::default();
                    while !stop.load(Ordering::SeqCst) {
                        let user = format!("c{client}-u{}", rng.random_range(0..20));
                        let post = posts[skew.pick(&mut rng)].clone();
                        let op = if rng.random_bool(0.7) {
                            Op::Like
                        } else {
                            Op::Unlike
                        };
                        let url = format!("{base}/topics/{topic}/posts/{post}/like");
                        let request = match op {
                            Op::Like => http.put(url),
                            Op::Unlike => http.delete(url),
                        };
                        let answer = request.header(DEV_USER_HEADER, &user).send().await;
                        let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
                        let acked = (200..300).contains(&status);
                        if acked {
                            report.acknowledged += 1;
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        } else {
                            *report.failures.entry(status).or_default() += 1;
                        }
                        if status == 503 {
                            unavailable.fetch_add(1, Ordering::SeqCst);
                            let retry_after = answer
                                .as_ref()
                                .is_ok_and(|r| r.headers().contains_key("retry-after"));
                            report.retry_after += u64::from(retry_after);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        report.last.insert((user, post), (op, acked));
                    }
                    report
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            unavailable,
            clients,
        }
    }

    /// Wait until `n` more requests than now have been acknowledged.
    pub async fn until_acknowledged(&self, more: u64, within: Duration) {
        let target = self.acknowledged.load(Ordering::SeqCst) + more;
        eventually("the load makes progress", within, || async {
            let now = self.acknowledged.load(Ordering::SeqCst);
            if now >= target {
                Ok(())
            } else {
                Err(format!("{now} of {target} requests acknowledged"))
            }
        })
        .await
    }

    /// Stop the clients; what they did.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = LoadReport::default();
        for client in self.clients {
            report = report.merge(client.await.expect("load client"));
        }
        report
    }
}

/// Every acknowledged last operation holds in the base table: an acknowledged like is there,
/// an acknowledged unlike is not. Keys whose last request failed may go either way.
pub async fn assert_acknowledged_hold(table: &TestTable, topic: &str, report: &LoadReport) {
    let live: HashSet<(String, String)> = crate::tally::scan(table)
        .await
        .into_iter()
        .filter_map(|item| Like::from_item(item).ok())
        .map(|like| (like.user_id.to_string(), like.post_id.to_string()))
        .collect();
    let mut lost = Vec::new();
    for ((user, post), (op, acked)) in &report.last {
        let present = live.contains(&(user.clone(), post.clone()));
        if *acked && present != (*op == Op::Like) {
            lost.push(format!("{op:?} by {user} of {topic}/{post}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged operations are not in the table: {lost:?}",
        lost.len()
    );
}
