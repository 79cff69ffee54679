//! The workload: clients that like and unlike over HTTP, each owning a share of the users so
//! that every request changes something and the expected counters are known exactly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::eventually;
use bench::skew::PostSkew;
use contracts::dynamo::batch_get;
use contracts::items::{Entity, Like, Post};
use contracts::keys::{ItemKey, PostId, TopicSlug};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, mpsc};

use crate::system::Deployment;

/// The shape of the load.
#[derive(Debug, Clone)]
pub struct Shape {
    pub users: usize,
    pub posts: usize,
    /// Share of likes that go to the hot post (the rest: Zipf over the other posts).
    pub hot_share: f64,
    /// Share of operations that are unlikes (under saturation).
    pub unlike_share: f64,
    pub zipf_exponent: f64,
    pub clients: usize,
}

/// A like or an unlike by one user of one post (indexes into the run's users and posts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op {
    like: bool,
    user: usize,
    post: usize,
}

/// What one client knows: its users and which posts they like now.
struct Client {
    users: Vec<usize>,
    liked: Vec<(usize, usize)>,
    liked_set: HashSet<(usize, usize)>,
    rng: SmallRng,
}

impl Client {
    fn next(&mut self, skew: &PostSkew, unlike_share: f64) -> Option<Op> {
        if !self.liked.is_empty() && self.rng.random_bool(unlike_share) {
            let i = self.rng.random_range(0..self.liked.len());
            let (user, post) = self.liked[i];
            return Some(Op {
                like: false,
                user,
                post,
            });
        }
        let post = skew.pick(&mut self.rng);
        (0..8).find_map(|_| {
            let user = self.users[self.rng.random_range(0..self.users.len())];
            (!self.liked_set.contains(&(user, post))).then_some(Op {
                like: true,
                user,
                post,
            })
        })
    }

    fn record(&mut self, op: Op) {
        if op.like {
            self.liked.push((op.user, op.post));
            self.liked_set.insert((op.user, op.post));
        } else if let Some(i) = self.liked.iter().position(|p| *p == (op.user, op.post)) {
            self.liked.swap_remove(i);
            self.liked_set.remove(&(op.user, op.post));
        }
    }
}

/// The attempts of one operation until it was acknowledged.
#[derive(Debug, Default)]
struct Answered {
    /// Microseconds each attempt took.
    latencies: Vec<u64>,
    /// Why the refused attempts were refused.
    refusals: Vec<String>,
}

/// Figures of one phase (or several, merged).
#[derive(Clone)]
pub struct PhaseStats {
    pub elapsed: Duration,
    /// Acknowledged likes and unlikes (each changed something).
    pub ops: u64,
    pub likes: u64,
    pub hot_ops: u64,
    /// Writer latency of every answered request, in microseconds.
    pub latency: Histogram<u64>,
    /// The same for requests on the hot post.
    pub hot_latency: Histogram<u64>,
    /// Refused requests (retried until acknowledged), by status and problem type.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledgement to counted, in milliseconds (paced phases).
    pub lag: Histogram<u64>,
    /// Lag probes never seen counted before the deadline.
    pub lost_probes: u64,
}

impl PhaseStats {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("a histogram");
        Self {
            elapsed: Duration::ZERO,
            ops: 0,
            likes: 0,
            hot_ops: 0,
            latency: histogram(),
            hot_latency: histogram(),
            errors: BTreeMap::new(),
            lag: histogram(),
            lost_probes: 0,
        }
    }

    pub fn merge(&mut self, other: &PhaseStats) {
        self.elapsed += other.elapsed;
        self.ops += other.ops;
        self.likes += other.likes;
        self.hot_ops += other.hot_ops;
        self.latency.add(&other.latency).expect("same bounds");
        self.hot_latency
            .add(&other.hot_latency)
            .expect("same bounds");
        self.lag.add(&other.lag).expect("same bounds");
        self.lost_probes += other.lost_probes;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// One acknowledged operation and its attempts.
    fn record(&mut self, op: Op, answered: &Answered) {
        for &micros in &answered.latencies {
            self.latency.saturating_record(micros);
            if op.post == 0 {
                self.hot_latency.saturating_record(micros);
            }
        }
        for kind in &answered.refusals {
            *self.errors.entry(kind.clone()).or_default() += 1;
        }
        self.ops += 1;
        self.likes += u64::from(op.like);
        self.hot_ops += u64::from(op.post == 0);
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn likes_per_second(&self) -> f64 {
        self.likes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl Default for PhaseStats {
    fn default() -> Self {
        Self::new()
    }
}

/// One design's workload: its posts, its clients' state, and an HTTP client.
pub struct Workload {
    shape: Shape,
    skew: PostSkew,
    topic: TopicSlug,
    pub posts: Vec<PostId>,
    users: Vec<String>,
    clients: Vec<Arc<Mutex<Client>>>,
    http: reqwest::Client,
}

/// How to run a phase.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Every client sends its next request as soon as the last is answered.
    Saturate,
    /// Likes only, at this many per second overall, with lag probes.
    Rate(f64),
}

impl Workload {
    /// Create the topic and posts (post 0 is the hot one) through the writer.
    pub async fn prepare(deployment: &Deployment, shape: &Shape, seed: u64) -> Self {
        let http = reqwest::Client::new();
        let topic: TopicSlug = "bench".parse().expect("a slug");
        let base = &deployment.base;
        http.put(format!("{base}/topics/{topic}"))
            .header("x-user-id", "author")
            .json(&serde_json::json!({"title": "Benchmark"}))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("create the topic");
        let mut posts = Vec::with_capacity(shape.posts);
        for i in 0..shape.posts {
            let post: serde_json::Value = http
                .post(format!("{base}/topics/{topic}/posts"))
                .header("x-user-id", "author")
                .json(&serde_json::json!({"title": format!("Post {i}"), "body": "..."}))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("create a post")
                .json()
                .await
                .expect("a post");
            posts.push(
                post["postId"]
                    .as_str()
                    .expect("postId")
                    .parse()
                    .expect("an id"),
            );
        }
        let users: Vec<String> = (0..shape.users).map(|u| format!("user-{u}")).collect();
        let clients = (0..shape.clients)
            .map(|c| {
                Arc::new(Mutex::new(Client {
                    users: (c..shape.users).step_by(shape.clients).collect(),
                    liked: Vec::new(),
                    liked_set: HashSet::new(),
                    rng: SmallRng::seed_from_u64(seed ^ c as u64),
                }))
            })
            .collect();
        Self {
            skew: PostSkew::new(shape.posts - 1, shape.zipf_exponent, shape.hot_share),
            shape: shape.clone(),
            topic,
            posts,
            users,
            clients,
            http,
        }
    }

    pub fn hot_post(&self) -> ItemKey {
        ItemKey::Post(self.topic.clone(), self.posts[0])
    }

    /// Send one op until the writer acknowledges it.
    async fn send(&self, base: &str, op: Op) -> Answered {
        let mut answered = Answered::default();
        let url = format!(
            "{base}/topics/{}/posts/{}/like",
            self.topic, self.posts[op.post]
        );
        let method = if op.like {
            reqwest::Method::PUT
        } else {
            reqwest::Method::DELETE
        };
        for attempt in 0.. {
            let started = Instant::now();
            let answer = self
                .http
                .request(method.clone(), &url)
                .header("x-user-id", &self.users[op.user])
                .send()
                .await;
            answered
                .latencies
                .push(started.elapsed().as_micros() as u64);
            let kind = match answer {
                Ok(response) if response.status().is_success() => {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    // A refused attempt may still have been written (a timeout after the
                    // commit); the first attempt must change something.
                    assert!(
                        attempt > 0 || body["changed"].as_bool() == Some(true),
                        "{method} {url} as {} changed nothing: the client's model is wrong",
                        self.users[op.user]
                    );
                    return answered;
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    format!("{status} {}", body["type"].as_str().unwrap_or("-"))
                }
                Err(e) => format!(
                    "no answer ({})",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    }
                ),
            };
            answered.refusals.push(kind);
            assert!(attempt < 50, "{method} {url}: refused 50 times");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unreachable!("the loop returns or panics")
    }

    /// Run one phase for `duration` against `deployment`.
    pub async fn run(
        self: &Arc<Self>,
        deployment: &Deployment,
        pace: Pace,
        duration: Duration,
    ) -> PhaseStats {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + duration;
        let mut stats = PhaseStats::new();
        let mut prober = None;
        match pace {
            Pace::Saturate => {
                let clients: Vec<_> = (0..self.shape.clients)
                    .map(|c| {
                        let (workload, base) = (Arc::clone(self), deployment.base.clone());
                        tokio::spawn(
                            async move { workload.saturating_client(c, &base, deadline).await },
                        )
                    })
                    .collect();
                for client in clients {
                    stats.merge(&client.await.expect("a client task"));
                }
            }
            Pace::Rate(rate) => {
                let started_prober = Prober::start(deployment);
                let sender = started_prober.sender.clone();
                prober = Some(started_prober);
                stats = self.paced(&deployment.base, rate, deadline, sender).await;
            }
        }
        stats.elapsed = started.elapsed();
        if let Some(prober) = prober {
            let (lag, lost) = prober.finish().await;
            stats.lag = lag;
            stats.lost_probes = lost;
        }
        stats
    }

    /// A closed-loop client: its next request as soon as the last is acknowledged.
    async fn saturating_client(
        &self,
        index: usize,
        base: &str,
        deadline: tokio::time::Instant,
    ) -> PhaseStats {
        let mut stats = PhaseStats::new();
        while tokio::time::Instant::now() < deadline {
            let op = {
                let mut client = self.clients[index].lock().await;
                client.next(&self.skew, self.shape.unlike_share)
            };
            let Some(op) = op else { continue };
            let answered = self.send(base, op).await;
            self.clients[index].lock().await.record(op);
            stats.record(op, &answered);
        }
        stats
    }

    /// An open loop: likes at `rate` per second whatever the answer times (at most
    /// [`MAX_IN_FLIGHT`] outstanding), each sixteenth followed until it is counted.
    async fn paced(
        self: &Arc<Self>,
        base: &str,
        rate: f64,
        deadline: tokio::time::Instant,
        probes: mpsc::UnboundedSender<Probe>,
    ) -> PhaseStats {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut requests = tokio::task::JoinSet::new();
        for sent in 0u64.. {
            ticks.tick().await;
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let index = sent as usize % self.shape.clients;
            // Recorded before it is sent: the next pick of this client must not repeat it,
            // and it is sent until acknowledged.
            let op = {
                let mut client = self.clients[index].lock().await;
                let op = client.next(&self.skew, 0.0);
                if let Some(op) = op {
                    client.record(op);
                }
                op
            };
            let Some(op) = op else { continue };
            let permit = Arc::clone(&in_flight).acquire_owned().await.expect("open");
            let (workload, base, probes) = (Arc::clone(self), base.to_owned(), probes.clone());
            requests.spawn(async move {
                let answered = workload.send(&base, op).await;
                let acknowledged = Instant::now();
                drop(permit);
                if sent.is_multiple_of(PROBE_EVERY) {
                    let user = workload.users[op.user].parse().expect("a user id");
                    let key = ItemKey::Like(user, workload.posts[op.post]);
                    let _ = probes.send(Probe { key, acknowledged });
                }
                (op, answered)
            });
        }
        let mut stats = PhaseStats::new();
        while let Some(done) = requests.join_next().await {
            let (op, answered) = done.expect("a request task");
            stats.record(op, &answered);
        }
        stats
    }

    /// Live likes per post, as the clients know them.
    fn expected_counts(&self, clients: &[tokio::sync::MutexGuard<'_, Client>]) -> Vec<i64> {
        let mut counts = vec![0i64; self.posts.len()];
        for client in clients {
            for (_, post) in &client.liked {
                counts[*post] += 1;
            }
        }
        counts
    }

    /// Wait until every post's `likeCount` equals its live likes; how long that took.
    pub async fn converge(&self, deployment: &Deployment, within: Duration) -> Duration {
        let mut guards = Vec::new();
        for client in &self.clients {
            guards.push(client.lock().await);
        }
        let expected = self.expected_counts(&guards);
        let started = Instant::now();
        let what = format!(
            "{} design: every likeCount equals the likes acknowledged",
            deployment.design.name()
        );
        eventually(&what, within, || async {
            let stored = self.stored_counts(deployment).await;
            let drift: Vec<_> = (0..self.posts.len())
                .filter(|i| stored.get(&self.posts[*i]).copied().unwrap_or(0) != expected[*i])
                .map(|i| {
                    (
                        self.posts[i],
                        stored.get(&self.posts[i]).copied(),
                        expected[i],
                    )
                })
                .collect();
            if drift.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} posts drift, e.g. {:?}",
                    drift.len(),
                    &drift[..drift.len().min(3)]
                ))
            }
        })
        .await;
        started.elapsed()
    }

    async fn stored_counts(&self, deployment: &Deployment) -> HashMap<PostId, i64> {
        let keys: Vec<ItemKey> = self
            .posts
            .iter()
            .map(|p| ItemKey::Post(self.topic.clone(), *p))
            .collect();
        let table = &deployment.table;
        batch_get(&table.client, &table.name, &keys)
            .await
            .expect("read the counters")
            .into_iter()
            .map(|item| Post::from_item(item).expect("a post item"))
            .map(|post| (post.post_id, post.like_count))
            .collect()
    }
}

/// A like to follow until it is counted.
struct Probe {
    key: ItemKey,
    acknowledged: Instant,
}

/// Follows probed likes with consistent batch reads every 100 ms (few: the reads load the
/// same engine); a like is counted when its
/// `countedBy` mark is there, which the same transaction as its counter increment sets.
struct Prober {
    sender: mpsc::UnboundedSender<Probe>,
    task: tokio::task::JoinHandle<(Histogram<u64>, u64)>,
}

const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Requests a paced phase lets be outstanding at once.
const MAX_IN_FLIGHT: usize = 256;
/// One like in this many of a paced phase is probed.
const PROBE_EVERY: u64 = 16;
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

impl Prober {
    fn start(deployment: &Deployment) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Probe>();
        let client = deployment.table.client.clone();
        let table = deployment.table.name.clone();
        let task = tokio::spawn(async move {
            let mut lag =
                Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("a histogram");
            let mut pending: HashMap<ItemKey, Instant> = HashMap::new();
            let mut open = true;
            let mut last_arrival = Instant::now();
            let mut lost = 0;
            while open || !pending.is_empty() {
                tokio::time::sleep(PROBE_INTERVAL).await;
                loop {
                    match receiver.try_recv() {
                        Ok(probe) => {
                            pending.insert(probe.key, probe.acknowledged);
                            last_arrival = Instant::now();
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                if !open && last_arrival.elapsed() > PROBE_DEADLINE {
                    lost = pending.len() as u64;
                    break;
                }
                let keys: Vec<ItemKey> = pending.keys().cloned().collect();
                let Ok(items) = batch_get(&client, &table, &keys).await else {
                    continue;
                };
                let seen = Instant::now();
                let counted = items
                    .into_iter()
                    .filter_map(|item| Like::from_item(item).ok())
                    .filter(|like| like.counted_by.is_some());
                for like in counted {
                    if let Some(acknowledged) = pending.remove(&like.item_key()) {
                        lag.saturating_record(seen.duration_since(acknowledged).as_millis() as u64);
                    }
                }
            }
            (lag, lost)
        });
        Self { sender, task }
    }

    /// Stop taking probes; wait for the pending ones; the lag histogram and the probes lost.
    async fn finish(self) -> (Histogram<u64>, u64) {
        drop(self.sender);
        self.task.await.expect("the prober")
    }
}
