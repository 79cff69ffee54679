//! `rebuild`: repair counters and the likers view while writes and projection go on.
//!
//! **Phase 0** replays what the stream still holds through a projector of its own: every
//! change still there is applied, an unlike with its tombstone, before any counter is
//! recounted. Without it, an unlike whose record went to the failure queue would be taken back
//! twice: once by the recount below (its like is gone from the view) and once more when the
//! record is replayed afterwards.
//!
//! **Phase 1** scans the table (resumable: each segment's position is saved to a state file
//! after every page). A like never counted is counted through the projector's own conditional
//! mark transaction, so if the projector counts it at the same moment one of the two finds
//! its condition false and nothing is counted twice. A counted like missing its GSI1 keys is
//! stamped (idempotent). A hot counter's pending delta is folded into its counter through the
//! projector's own fold transaction (a delta is deleted in the transaction that adds it, so a
//! fold by the projector at the same moment finds it gone): a delta whose stream record was
//! lost is folded here. Every post seen is remembered for phase 2.
//!
//! **Phase 2** recounts each post from its view: the counted likes in every GSI1 view shard
//! below the post's `viewShards`, against `likeCount` plus the deltas still pending (counted
//! likes not yet folded). A post whose figures differ is observed again after `settle` and
//! after the replay has gone on to the stream's end; it is corrected only if neither its
//! counter version (`countVersion`, renewed by every write that moves the counter), its pending
//! deltas nor its recount changed meanwhile, with an update conditioned on that version.
//!
//! Why this is safe live, whatever the projector's lag: a change in flight at the first look
//! (a like deleted but not yet uncounted, liked but not yet counted, counted but not yet
//! stamped, a delta not yet folded) has its record in the stream within `settle` (the stream
//! shows a write within about a second), so the replay before the second look projects it, if
//! the projector has not (the replay retries a record until it is applied, a stamp into a
//! throttled view too): counting or uncounting renews the version, a stamp changes the
//! recount, a fold changes the pending deltas. An unchanged second look therefore means
//! nothing was in flight, and the difference is real drift. A post that keeps moving is
//! retried, then reported as busy, never guessed at. A dry run replays nothing, so its report
//! of what would be corrected holds only while the projector's lag is below `settle`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use contracts::change::{Change, LikeRef};
use contracts::counting::set_counter;
use contracts::items::{Delta, Entity, Item, ItemType, Like, Post, attr, key_item};
use contracts::keys::{self, ItemKey};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::apply::{Applier, Outcome};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::plan::{PostRef, Stamp, plan_changes};
use crate::poller::Poller;
use crate::verify::{ScanSpec, scan_page};

/// Records per batch of rebuild's replay.
const REPLAY_BATCH: i32 = 1000;

/// How to rebuild.
#[derive(Debug, Clone)]
pub struct RebuildSettings {
    /// What to scan.
    pub scan: ScanSpec,
    /// Report what would change, change nothing.
    pub dry_run: bool,
    /// How long a drifting post must stay still before it is corrected.
    pub settle: Duration,
    /// Where progress is saved (and resumed from).
    pub state_path: PathBuf,
    /// Rounds of phase 2 before a still-moving post is reported busy.
    pub rounds: u32,
}

/// What a rebuild did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Stream records replayed in phase 0.
    pub records_replayed: u64,
    /// Items the scan read.
    pub items_scanned: u64,
    /// Likes the scan found uncounted and counted.
    pub likes_counted: u64,
    /// Likes the scan found counted but not in the view and stamped.
    pub likes_stamped: u64,
    /// Posts whose counter was checked.
    pub posts_checked: u64,
    /// Counters set to a recount.
    pub counters_corrected: u64,
    /// Posts still moving after every round: left for a rerun.
    pub posts_busy: u64,
    /// The posts still moving at the last look (`<topic>/<post>`): repairs left, for a rerun.
    #[serde(default)]
    pub busy_posts: Vec<String>,
}

/// A scan segment's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentState {
    /// The segment was scanned to its end.
    pub done: bool,
    /// Where its scan resumes (`LastEvaluatedKey`).
    pub resume: Option<HashMap<String, String>>,
}

/// Everything needed to resume: saved after every page of phase 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildState {
    /// The table rebuilt.
    pub table: String,
    /// Each scan segment's position.
    pub segments: Vec<SegmentState>,
    /// Posts seen so far, as `(topic, post id)`.
    pub posts: BTreeSet<(String, String)>,
    /// The work done so far.
    pub summary: Summary,
}

fn to_strings(key: Item) -> HashMap<String, String> {
    key.into_iter()
        .filter_map(|(k, v)| match v {
            AttributeValue::S(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

fn to_item(key: HashMap<String, String>) -> Item {
    key.into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect()
}

impl RebuildState {
    fn load(settings: &RebuildSettings) -> Result<Self, Error> {
        let path = &settings.state_path;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let state: RebuildState = serde_json::from_str(&text)
                    .map_err(|e| Error::RebuildState(path.clone(), e.to_string()))?;
                if state.table != settings.scan.table {
                    return Err(Error::OtherTable(state.table));
                }
                if state.segments.len() != settings.scan.segments as usize {
                    return Err(Error::RebuildState(
                        path.clone(),
                        format!("saved with {} segments", state.segments.len()),
                    ));
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RebuildState {
                table: settings.scan.table.clone(),
                segments: vec![SegmentState::default(); settings.scan.segments as usize],
                ..Default::default()
            }),
            Err(e) => Err(Error::RebuildState(path.clone(), e.to_string())),
        }
    }

    fn save(&self, path: &PathBuf) -> Result<(), Error> {
        let fail = |e: std::io::Error| Error::RebuildState(path.clone(), e.to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let temporary = path.with_extension("tmp");
        let text = serde_json::to_string(self).expect("state serializes");
        std::fs::write(&temporary, text).map_err(fail)?;
        std::fs::rename(&temporary, path).map_err(fail)
    }
}

/// The repairs one page of items asks for (pure).
#[derive(Debug, Default)]
struct PageRepairs {
    uncounted: Vec<LikeRef>,
    unstamped: Vec<LikeRef>,
    pending: Vec<Delta>,
    posts: Vec<PostRef>,
}

fn page_repairs(items: Vec<Item>) -> PageRepairs {
    let mut repairs = PageRepairs::default();
    for item in items {
        let kind = item.get(keys::TYPE).and_then(|t| t.as_s().ok()).cloned();
        if kind.as_deref() == Some(ItemType::Delta.as_str()) {
            if let Ok(delta) = Delta::from_item(item) {
                repairs.pending.push(delta);
            }
        } else if kind.as_deref() == Some(ItemType::Like.as_str()) {
            let in_view = item.contains_key(keys::GSI1PK);
            if let Ok(like) = Like::from_item(item) {
                match like.counted_by {
                    None => repairs.uncounted.push(LikeRef::from(&like)),
                    Some(_) if !in_view => repairs.unstamped.push(LikeRef::from(&like)),
                    Some(_) => {}
                }
            }
        } else if kind.as_deref() == Some(ItemType::Post.as_str())
            && let Ok(post) = Post::from_item(item)
        {
            repairs.posts.push(PostRef {
                topic: post.topic,
                post: post.post_id,
            });
        }
    }
    repairs
}

/// A post item's counter, its version and its number of view shards.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counter {
    stored: Option<i64>,
    version: Option<String>,
    view_shards: u32,
}

/// A post's counter, its pending deltas and its recount, seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observation {
    stored: Option<i64>,
    version: Option<String>,
    pending: i64,
    counted_in_view: i64,
}

impl Observation {
    fn drifts(&self) -> bool {
        self.stored.unwrap_or(0) + self.pending != self.counted_in_view
    }

    /// The counter that, with the pending deltas, equals the recount.
    fn corrected(&self) -> i64 {
        self.counted_in_view - self.pending
    }
}

/// The rebuild of one table.
pub struct Rebuild {
    client: Client,
    streams: aws_sdk_dynamodbstreams::Client,
    applier: Applier,
    settings: RebuildSettings,
}

impl Rebuild {
    /// A rebuild by `settings` through `client`.
    pub fn new(
        client: Client,
        streams: aws_sdk_dynamodbstreams::Client,
        settings: RebuildSettings,
    ) -> Self {
        // Its recount must see every stamp it asked for: none is deferred.
        let applier = Applier::new(client.clone(), &settings.scan.table).stamping_in_place();
        Self {
            client,
            streams,
            applier,
            settings,
        }
    }

    /// Run (or resume) the phases. `progress` hears of records replayed, items scanned and
    /// posts checked.
    pub async fn run(&self, progress: &(dyn Fn(Phase, u64) + Sync)) -> Result<Summary, Error> {
        let mut replay = None;
        let mut replayed = 0;
        if !self.settings.dry_run {
            let mut poller = Poller::replay(
                self.applier.clone(),
                self.client.clone(),
                self.streams.clone(),
                &self.settings.scan.table,
                None,
                REPLAY_BATCH,
            )
            .await?;
            replayed = poller.catch_up(&|n| progress(Phase::Replay, n)).await?;
            replay = Some(poller);
        }
        let state = Mutex::new(RebuildState::load(&self.settings)?);
        let failed = std::sync::atomic::AtomicU64::new(0);
        let segments = (0..self.settings.scan.segments).map(|segment| {
            let (state, failed) = (&state, &failed);
            async move {
                let mut start = {
                    let s = state.lock().expect("state lock");
                    let saved = &s.segments[segment as usize];
                    if saved.done {
                        return Ok::<_, Error>(());
                    }
                    saved.resume.clone().map(to_item)
                };
                loop {
                    let (items, next) =
                        scan_page(&self.client, &self.settings.scan, segment, start, &[]).await?;
                    let scanned = items.len() as u64;
                    let PageRepairs {
                        uncounted,
                        unstamped,
                        pending,
                        posts,
                    } = page_repairs(items);
                    let (counted, stamped, errors) =
                        self.repair(uncounted, unstamped, pending).await;
                    failed.fetch_add(errors, std::sync::atomic::Ordering::SeqCst);
                    progress(Phase::Scan, scanned);
                    let mut s = state.lock().expect("state lock");
                    s.summary.items_scanned += scanned;
                    s.summary.likes_counted += counted;
                    s.summary.likes_stamped += stamped;
                    s.posts.extend(
                        posts
                            .into_iter()
                            .map(|p| (p.topic.to_string(), p.post.to_string())),
                    );
                    let saved = &mut s.segments[segment as usize];
                    saved.resume = next.clone().map(to_strings);
                    saved.done = next.is_none();
                    if !self.settings.dry_run {
                        s.save(&self.settings.state_path)?;
                    }
                    drop(s);
                    start = next;
                    if start.is_none() {
                        return Ok(());
                    }
                }
            }
        });
        try_join_all(segments).await?;
        let failures = failed.load(std::sync::atomic::Ordering::SeqCst);
        if failures > 0 {
            return Err(Error::WritesFailed(failures));
        }

        let state = state.into_inner().expect("state lock");
        let mut summary = state.summary;
        summary.records_replayed += replayed;
        let posts: Vec<PostRef> = state
            .posts
            .iter()
            .filter_map(|(topic, post)| {
                Some(PostRef {
                    topic: topic.parse().ok()?,
                    post: post.parse().ok()?,
                })
            })
            .collect();
        let (corrected, busy, replayed) = self.correct(&posts, replay, progress).await?;
        summary.records_replayed += replayed;
        summary.posts_checked = posts.len() as u64;
        summary.counters_corrected = corrected;
        summary.posts_busy = busy.len() as u64;
        summary.busy_posts = busy
            .iter()
            .map(|p| format!("{}/{}", p.topic, p.post))
            .collect();
        if !self.settings.dry_run {
            let _ = std::fs::remove_file(&self.settings.state_path);
        }
        Ok(summary)
    }

    /// Count the uncounted likes, stamp the unstamped ones and fold the pending deltas of one
    /// page: (counted, stamped, failed writes).
    async fn repair(
        &self,
        uncounted: Vec<LikeRef>,
        unstamped: Vec<LikeRef>,
        pending: Vec<Delta>,
    ) -> (u64, u64, u64) {
        if self.settings.dry_run {
            return (uncounted.len() as u64, unstamped.len() as u64, 0);
        }
        let likes = uncounted.len();
        let changes: Vec<Change> = uncounted
            .into_iter()
            .map(Change::LikeAdded)
            .chain(pending.into_iter().map(Change::DeltaAdded))
            .collect();
        let mut repairs = plan_changes(&changes);
        let first_stamp = changes.len();
        let total = first_stamp + unstamped.len();
        repairs
            .stamps
            .extend(unstamped.into_iter().enumerate().map(|(i, like)| Stamp {
                records: vec![first_stamp + i],
                like,
            }));
        let outcomes = self
            .applier
            .apply(repairs, total, &|_| String::new(), Deadline::batch())
            .await
            .outcomes;
        let (marks, stamps) = outcomes.split_at(first_stamp);
        let counted = marks[..likes]
            .iter()
            .filter(|o| **o == Outcome::Applied)
            .count() as u64;
        let stamped = stamps.iter().filter(|o| **o != Outcome::Failed).count() as u64;
        let failed = outcomes.iter().filter(|o| **o == Outcome::Failed).count() as u64;
        (counted, stamped, failed)
    }

    /// Phase 2: (counters corrected, posts still busy, records replayed).
    async fn correct(
        &self,
        posts: &[PostRef],
        mut replay: Option<Poller>,
        progress: &(dyn Fn(Phase, u64) + Sync),
    ) -> Result<(u64, Vec<PostRef>, u64), Error> {
        // Each post to look at again, with what it showed if it held still for the last look:
        // a drifting one, and one that moved during its recount (a hot counter folds up to
        // ten times a second), which is never taken as fine.
        let mut drifting: Vec<(PostRef, Option<Observation>)> = Vec::new();
        for post in posts {
            match self.observe(post).await? {
                Some(seen) if !seen.drifts() => {}
                seen => drifting.push((post.clone(), seen)),
            }
            progress(Phase::Check, 1);
        }
        let (mut corrected, mut replayed) = (0, 0);
        for _ in 0..self.settings.rounds {
            if drifting.is_empty() {
                break;
            }
            tokio::time::sleep(self.settings.settle).await;
            // What was in flight at the last look is in the stream by now: project it.
            if let Some(poller) = replay.as_mut() {
                replayed += poller.catch_up(&|n| progress(Phase::Replay, n)).await?;
            }
            let mut still = Vec::new();
            for (post, before) in drifting {
                let Some(now) = self.observe(&post).await? else {
                    still.push((post.clone(), before));
                    continue;
                };
                if !now.drifts() {
                    continue; // the projector caught up: it was not drift
                }
                if before.as_ref() != Some(&now) {
                    still.push((post, Some(now))); // moved: observe again after another settle
                    continue;
                }
                if self.settings.dry_run || self.set_count(&post, &now).await? {
                    corrected += 1;
                } else {
                    still.push((post, Some(now)));
                }
            }
            drifting = still;
        }
        let busy = drifting.into_iter().map(|(post, _)| post).collect();
        Ok((corrected, busy, replayed))
    }

    /// The post's counter, version, pending deltas and recount; `None` if the counter or the
    /// deltas moved during the recount.
    async fn observe(&self, post: &PostRef) -> Result<Option<Observation>, Error> {
        let first = (self.counter(post).await?, self.pending(post).await?);
        let counted_in_view = self.count_view(post, first.0.view_shards).await?;
        let second = (self.counter(post).await?, self.pending(post).await?);
        Ok((first == second).then_some(Observation {
            stored: first.0.stored,
            version: first.0.version,
            pending: first.1,
            counted_in_view,
        }))
    }

    /// The sum of the post's pending deltas, read consistently.
    async fn pending(&self, post: &PostRef) -> Result<i64, Error> {
        let mut total = 0i64;
        for k in 0..keys::DELTA_PARTITIONS {
            let query = self
                .client
                .query()
                .table_name(&self.settings.scan.table)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#delta")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#delta", attr::DELTA)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::delta_partition(&post.post, k)),
                )
                .consistent_read(true);
            total += sum_pages(query, |page| {
                page.items()
                    .iter()
                    .filter_map(|item| item.get(attr::DELTA)?.as_n().ok()?.parse::<i64>().ok())
                    .sum()
            })
            .await?;
        }
        Ok(total)
    }

    async fn counter(&self, post: &PostRef) -> Result<Counter, Error> {
        let item = self
            .client
            .get_item()
            .table_name(&self.settings.scan.table)
            .set_key(Some(key_item(&ItemKey::Post(
                post.topic.clone(),
                post.post,
            ))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", e))?
            .item
            .unwrap_or_default();
        let number = |name: &str| item.get(name)?.as_n().ok()?.parse().ok();
        Ok(Counter {
            stored: number(attr::LIKE_COUNT),
            version: item
                .get(attr::COUNT_VERSION)
                .and_then(|v| v.as_s().ok())
                .cloned(),
            view_shards: Post::view_shards_in(&item),
        })
    }

    /// The counted likes in every view shard of the post.
    async fn count_view(&self, post: &PostRef, shards: u32) -> Result<i64, Error> {
        let mut total = 0;
        for k in 0..shards {
            let query = self
                .client
                .query()
                .table_name(&self.settings.scan.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :likes)")
                .filter_expression("attribute_exists(#counted)")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_names("#sk", keys::GSI1SK)
                .expression_attribute_names("#counted", attr::COUNTED_BY)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::post_view_shard(&post.post, k)),
                )
                .expression_attribute_values(
                    ":likes",
                    AttributeValue::S(keys::prefix::LIKES.into()),
                )
                .select(Select::Count);
            total += sum_pages(query, |page| i64::from(page.count)).await?;
        }
        Ok(total)
    }

    /// Set the counter to the recount less the pending deltas, if its version is still the one
    /// observed.
    async fn set_count(&self, post: &PostRef, seen: &Observation) -> Result<bool, Error> {
        let write = set_counter(
            &post.topic,
            post.post,
            seen.corrected(),
            seen.version.as_deref(),
        );
        let result = write
            .update_item(&self.client, &self.settings.scan.table)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(post = %post.post, from = ?seen.stored, to = seen.corrected(), pending = seen.pending, "counter corrected");
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }
}

/// The sum of `each` over every page of a query (the SDK's paginator follows the pages).
async fn sum_pages(
    query: QueryFluentBuilder,
    each: impl Fn(&QueryOutput) -> i64,
) -> Result<i64, Error> {
    let mut pages = query.into_paginator().send();
    let mut total = 0;
    while let Some(page) = pages.next().await {
        total += each(&page.map_err(|e| Error::dynamo("Query", e))?);
    }
    Ok(total)
}

/// Which part of the work progress is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Phase 0: the stream replayed.
    Replay,
    /// Phase 1: the scan.
    Scan,
    /// Phase 2: the counters checked.
    Check,
}
