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
//! likes not yet folded). A post whose figures differ is observed again in a round: wait
//! `settle`, replay to the stream's end, wait `settle` again, look. It is corrected only if
//! neither its counter version (`countVersion`, renewed by every write that moves the
//! counter), its pending deltas nor its recount changed since the last look, with an update
//! conditioned on that version.
//!
//! Why this is safe live, whatever the projector's lag: a change in flight at the first look
//! (a like deleted but not yet uncounted, liked but not yet counted, counted but not yet
//! stamped, a delta not yet folded) has its record in the stream within `settle` (the stream
//! shows a write within about a second), so the replay before the second look projects it, if
//! the projector has not (the replay retries a record until it is applied, a stamp into a
//! throttled view too): counting or uncounting renews the version, a stamp changes the
//! recount, a fold changes the pending deltas. The recount reads GSI1, which shows a write
//! some time after it (AWS: within a second, longer while the index is throttled), so the
//! second wait lets it show what was written up to the replay's end. An unchanged second look
//! therefore means nothing was in flight, and the difference is real drift, as long as the
//! stream and GSI1 each show a write within `settle`: raise `--settle` while GSI1 is
//! throttled. A post that keeps moving is retried, then reported as busy, never guessed at.
//! A dry run replays nothing, so its report of what would be corrected holds only while the
//! projector's lag is below `settle`.
//!
//! The decisions are [`machine`]'s, a pure state machine the deterministic simulation drives
//! in virtual time; [`Rebuild`] is the shell that sends its requests.

pub mod machine;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use contracts::counting::set_counter;
use contracts::items::{attr, key_item};
use contracts::keys::{self, ItemKey};
use futures_util::StreamExt;
use futures_util::lock::Mutex;
use futures_util::stream::FuturesUnordered;

use crate::apply::{Applier, now_ms};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::plan::PostRef;
use crate::poller::Poller;
use crate::verify::{ScanSpec, scan_page};
use machine::{Answer, Counter, Machine, Request, Stopped};
pub use machine::{RebuildState, SegmentState, Summary};

/// How long a drifting post must stay still before it is corrected, by default: it covers the
/// stream's own delay in showing a write (about a second) and GSI1's in showing a stamp.
pub const SETTLE: Duration = Duration::from_secs(5);
/// Rounds of the counter check before a still-moving post is reported busy.
pub const ROUNDS: u32 = 5;

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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RebuildState::new(
                &settings.scan.table,
                settings.scan.segments,
            )),
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

    /// Run (or resume) the phases. `progress` hears of records replayed, items scanned (once
    /// their progress is saved) and posts checked.
    pub async fn run(&self, progress: &(dyn Fn(Phase, u64) + Sync)) -> Result<Summary, Error> {
        let settings = &self.settings;
        let replay = if settings.dry_run {
            None
        } else {
            let poller = Poller::replay(
                self.applier.clone(),
                self.client.clone(),
                self.streams.clone(),
                &settings.scan.table,
                None,
                REPLAY_BATCH,
            )
            .await?;
            Some(poller)
        };
        let replay = Mutex::new(replay);
        let mut machine = Machine::new(
            machine::Settings {
                segments: settings.scan.segments,
                dry_run: settings.dry_run,
                settle_ms: settings.settle.as_millis() as i64,
                rounds: settings.rounds,
            },
            RebuildState::load(settings)?,
        );
        let mut in_flight = FuturesUnordered::new();
        let (mut scanned, mut checked) = (machine.state().summary.items_scanned, 0);
        loop {
            for (ticket, request) in machine.poll(now_ms()) {
                let replay = &replay;
                in_flight.push(async move { (ticket, self.send(request, replay, progress).await) });
            }
            if machine.is_done() {
                break;
            }
            let Some((ticket, answer)) = in_flight.next().await else {
                // Nothing in flight: the machine waits for time.
                let wait = machine.wake_at().map_or(0, |at| at - now_ms());
                tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
                continue;
            };
            let saved = answer.as_ref().is_ok_and(|a| *a == Answer::Saved);
            machine.answer(ticket, answer?, now_ms());
            // Items scanned are reported once saved (a dry run saves nothing).
            let summary = &machine.state().summary;
            if (saved || settings.dry_run) && summary.items_scanned > scanned {
                progress(Phase::Scan, summary.items_scanned - scanned);
                scanned = summary.items_scanned;
            }
            if machine.checked() > checked {
                checked = machine.checked();
                progress(Phase::Check, 1);
            }
        }
        drop(in_flight);
        let summary = machine.finish().map_err(|stopped| match stopped {
            Stopped::WritesFailed(n) => Error::WritesFailed(n),
        })?;
        if !settings.dry_run {
            let _ = std::fs::remove_file(&settings.state_path);
        }
        Ok(summary)
    }

    /// Send one of the machine's requests.
    async fn send(
        &self,
        request: Request,
        replay: &Mutex<Option<Poller>>,
        progress: &(dyn Fn(Phase, u64) + Sync),
    ) -> Result<Answer, Error> {
        let settings = &self.settings;
        Ok(match request {
            Request::CatchUp => {
                let mut replay = replay.lock().await;
                let replayed = match replay.as_mut() {
                    Some(poller) => poller.catch_up(&|n| progress(Phase::Replay, n)).await?,
                    None => 0,
                };
                Answer::CaughtUp(replayed)
            }
            Request::Scan { segment, start } => {
                let (items, next) =
                    scan_page(&self.client, &settings.scan, segment, start, &[]).await?;
                Answer::Page { items, next }
            }
            Request::Repair { plan, records } => {
                let applied = self
                    .applier
                    .apply(plan, records, &|_| String::new(), Deadline::batch())
                    .await;
                Answer::Repaired(applied.outcomes)
            }
            Request::Save(state) => {
                state.save(&settings.state_path)?;
                Answer::Saved
            }
            Request::Counter(post) => Answer::Counter(self.counter(&post).await?),
            Request::Pending(post) => Answer::Sum(self.pending(&post).await?),
            Request::CountView { post, shards } => {
                Answer::Sum(self.count_view(&post, shards).await?)
            }
            Request::SetCount {
                post,
                count,
                version,
            } => Answer::Set(self.set_count(&post, count, version.as_deref()).await?),
        })
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
        Ok(Counter::of(&item))
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

    /// Set the counter to `count` if its version is still `version`.
    async fn set_count(
        &self,
        post: &PostRef,
        count: i64,
        version: Option<&str>,
    ) -> Result<bool, Error> {
        let write = set_counter(&post.topic, post.post, count, version);
        let result = write
            .update_item(&self.client, &self.settings.scan.table)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(post = %post.post, to = count, "counter corrected");
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
