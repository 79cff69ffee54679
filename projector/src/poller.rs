//! The local stand-in for Lambda's DynamoDB event source mapping, on `aws-sdk-dynamodbstreams`.
//!
//! It discovers shards, reads a parent shard to its end before any child, starts at
//! `TRIM_HORIZON` or `LATEST`, reads batches of up to `batch_size` records, and hands them to
//! the same [`Projector::handle`] as the Lambda, after the deployed event filters
//! ([`contracts::filters`], matched as Lambda matches them): the handler sees here exactly what
//! it sees on AWS. (Lambda fills a batch with records that pass; here a batch is what passed of
//! up to `batch_size` records read.) When a batch reports a failure it resumes at
//! that record (like `ReportBatchItemFailures`) with backoff; a batch that errors as a whole is
//! bisected. It never skips a record: a record that keeps failing is retried until it succeeds.
//!
//! Checkpoints are items of the table itself (`CHECKPOINT#<stream>` / `SHARD#<shard>`), which
//! the projection ignores. A checkpoint is written only after a batch that held other records,
//! so checkpoint writes do not feed on themselves through the stream.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Shard, ShardIteratorType};
use chrono::{DateTime, Utc};
use contracts::change::from_streams_record;
use contracts::dynamo::Backoff;
use contracts::event_source::{Ended, GiveUp, Redelivery};
use contracts::filters::Filter;
use contracts::items::{Checkpoint, Entity, ItemType};
use contracts::keys;
use serde_json::Value;

use crate::apply::Applier;
use crate::error::Error;
use crate::handler::{Projector, emf};

/// Where to start a shard that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartAt {
    /// From the oldest record the stream holds.
    TrimHorizon,
    /// From records written after the start.
    Latest,
}

/// `GetRecords` may answer empty pages while an iterator moves through a stretch of a shard
/// without records, and several calls may pass before the records come (AWS's documentation).
/// So replay takes an open shard as read to its end only after this many empty pages in a row,
/// over at least [`QUIET_FOR`]; a closed shard ends when its iterator does.
pub const QUIET_PAGES: u32 = 5;
/// The least time those empty pages must span.
pub const QUIET_FOR: Duration = Duration::from_secs(1);

/// The metric (EMF, namespace `Publishing/Projector`) counting reads that found records
/// trimmed before they were read.
pub const TRIMMED_METRIC: &str = "TrimmedReads";

/// How long the step under way may go on after the poller is told to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Records one `GetRecords` call returns at most.
const MAX_READ: i32 = 1000;

/// How the poller reads.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// The table whose stream is read.
    pub table: String,
    /// Where a shard without a checkpoint starts.
    pub start_at: StartAt,
    /// Records per batch (Lambda allows up to 10,000; a batch may take several reads).
    pub batch_size: i32,
    /// Pause when every shard is idle.
    pub idle_delay: Duration,
    /// How often to look for new shards.
    pub discovery_interval: Duration,
    /// How long to gather records into a batch once some arrived (Lambda's
    /// `MaximumBatchingWindowInSeconds`); zero hands over whatever one read returns.
    pub batch_window: Duration,
    /// Read and write checkpoints (off for replay, which always starts from `start_at`).
    pub checkpoints: bool,
    /// Skip records written before this time (replay `--since`).
    pub since: Option<DateTime<Utc>>,
}

impl PollerSettings {
    /// Lambda's defaults for `table`'s stream.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            start_at: StartAt::TrimHorizon,
            batch_size: 1000,
            idle_delay: Duration::from_millis(100),
            discovery_interval: Duration::from_secs(10),
            batch_window: Duration::ZERO,
            checkpoints: true,
            since: None,
        }
    }
}

/// One shard being read.
#[derive(Debug)]
struct ShardState {
    shard: Shard,
    iterator: Option<String>,
    checkpoint: Checkpoint,
    /// Empty pages read in a row from this open shard, and since when.
    empty_pages: u32,
    quiet_since: Option<tokio::time::Instant>,
    /// The stream trimmed records this shard had not read, or it was found after the poller
    /// started (a child of a rotation or split): go on from the oldest record still there,
    /// whatever `start_at` says (LATEST would skip records still retained).
    from_oldest: bool,
    /// Under `--start-at latest`, when this starting shard's LATEST iterator was taken (less
    /// [`CLOCK_MARGIN`]). Until it has a checkpoint, a new iterator starts at its oldest record
    /// and skips what was written before then: asking for LATEST again would skip what came
    /// in between.
    latest_from: Option<DateTime<Utc>>,
    /// Since the current [`Poller::catch_up`] began, this shard handed on a record written
    /// after it began: every record written before then has been read.
    past_start: bool,
}

/// How much earlier than the LATEST iterator was taken a re-read starts: stream timestamps
/// are whole seconds.
const CLOCK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

impl ShardState {
    /// Whether replay may take this open shard as read to its current end (see
    /// [`QUIET_PAGES`]).
    fn quiet(&self) -> bool {
        self.empty_pages >= QUIET_PAGES
            && self.quiet_since.is_some_and(|s| s.elapsed() >= QUIET_FOR)
    }

    fn page_read(&mut self, records: usize) {
        if records == 0 {
            self.empty_pages += 1;
            self.quiet_since
                .get_or_insert_with(tokio::time::Instant::now);
        } else {
            self.empty_pages = 0;
            self.quiet_since = None;
        }
    }
}

/// The poller: shard graph, iterators and checkpoints of one table's stream.
pub struct Poller {
    projector: Projector,
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    settings: PollerSettings,
    stream_arn: String,
    shards: Vec<ShardState>,
    /// Times the stream had trimmed records a shard had not read yet.
    trims: usize,
    /// The deployed event filters.
    filter: Filter,
    /// Whether the shards there at the start are known (shards found later start at their
    /// oldest record).
    discovered: bool,
    /// When the current [`Poller::catch_up`] began (plus [`CLOCK_MARGIN`]).
    catching_up_from: Option<DateTime<Utc>>,
}

impl Poller {
    /// Find the table's stream and load the checkpoints.
    pub async fn new(
        projector: Projector,
        dynamo: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        settings: PollerSettings,
    ) -> Result<Self, Error> {
        let table = dynamo
            .describe_table()
            .table_name(&settings.table)
            .send()
            .await
            .map_err(|e| Error::dynamo("Streams", e))?;
        let stream_arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or(Error::NoStream)?;
        let mut poller = Self {
            projector,
            streams,
            dynamo,
            settings,
            stream_arn,
            shards: Vec::new(),
            trims: 0,
            filter: Filter::deployed(),
            discovered: false,
            catching_up_from: None,
        };
        poller.discover().await?;
        Ok(poller)
    }

    /// A poller that replays `table`'s stream through a projector on `applier`: every shard
    /// from its oldest record (only those written at or after `since`, if given), without
    /// checkpoints. [`catch_up`](Self::catch_up) reads it to the end, and again later on from
    /// where it stopped.
    pub async fn replay(
        applier: Applier,
        dynamo: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
        since: Option<DateTime<Utc>>,
        batch_size: i32,
    ) -> Result<Self, Error> {
        let mut settings = PollerSettings::new(table);
        settings.checkpoints = false;
        settings.since = since;
        settings.batch_size = batch_size;
        Self::new(Projector::new(applier), dynamo, streams, settings).await
    }

    /// The stream read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// How often the stream had already trimmed records a shard had not read: records lost to
    /// the projection, for `verify` and `rebuild` to repair.
    pub fn trims(&self) -> usize {
        self.trims
    }

    /// Poll forever (until the task is dropped). Errors never stop it: after one (DynamoDB
    /// unreachable, restarted, throttling) it backs off, forgets its shard iterators and goes
    /// on from the last records it handled, which may then be handled again (harmless: the
    /// projection is idempotent).
    pub async fn run(&mut self) {
        self.run_until(std::future::pending()).await
    }

    /// [`run`](Self::run) until `stop` completes. The step under way then gets
    /// [`STOP_GRACE`] to finish, so what it projected is checkpointed; a step that cannot
    /// finish (DynamoDB down) is abandoned, and its records are read again next time.
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_discovery = tokio::time::Instant::now();
        let mut failures = 0u32;
        loop {
            let outcome = {
                let step = self.step(&mut last_discovery);
                tokio::pin!(step);
                tokio::select! {
                    outcome = &mut step => Some(outcome),
                    () = &mut stop => {
                        let _ = tokio::time::timeout(STOP_GRACE, step).await;
                        None
                    }
                }
            };
            let pause = match outcome {
                None => return,
                Some(Ok(read)) => {
                    failures = 0;
                    (read == 0).then_some(self.settings.idle_delay)
                }
                Some(Err(error)) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "polling failed: retrying from the last handled records");
                    for shard in &mut self.shards {
                        shard.iterator = None;
                    }
                    Some(RETRY.delay(failures))
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut stop => return,
                }
            }
        }
    }

    /// One round: look for new shards when it is time, then read every shard once.
    async fn step(&mut self, last_discovery: &mut tokio::time::Instant) -> Result<usize, Error> {
        if last_discovery.elapsed() >= self.settings.discovery_interval {
            self.discover().await?;
            *last_discovery = tokio::time::Instant::now();
        }
        self.poll_once().await
    }

    /// Read every record written before the call began (the end, for replay and rebuild);
    /// the records read. A shard is done when it is closed and read to its end, when it has
    /// handed on a record written after the call began (records of a shard come in the order
    /// they were written), or when it is open and quiet ([`QUIET_PAGES`]): so it ends in
    /// bounded time however fast likes keep coming. `progress` hears of each batch. Used by
    /// replay, and by rebuild again and again: each call goes on from where the last one
    /// stopped, with an end of its own.
    pub async fn catch_up(&mut self, progress: &(dyn Fn(u64) + Sync)) -> Result<u64, Error> {
        // Stream timestamps are whole seconds: a record dated past this was written after.
        self.catching_up_from = Some(Utc::now() + CLOCK_MARGIN);
        for shard in &mut self.shards {
            shard.empty_pages = 0;
            shard.quiet_since = None;
            shard.past_start = false;
        }
        let mut total = 0u64;
        loop {
            let read = self.poll_once().await? as u64;
            progress(read);
            total += read;
            if self.caught_up() {
                return Ok(total);
            }
            if read == 0 {
                tokio::time::sleep(self.settings.idle_delay).await;
            }
        }
    }

    /// Every shard that can be read is at its end (children of an unfinished parent wait).
    fn caught_up(&self) -> bool {
        let finished: HashSet<&str> = self
            .shards
            .iter()
            .filter(|s| s.checkpoint.finished)
            .map(|s| s.checkpoint.shard.as_str())
            .collect();
        self.shards.iter().all(|s| {
            s.checkpoint.finished
                || s.quiet()
                || s.past_start
                || s.shard.parent_shard_id().is_some_and(|p| {
                    !finished.contains(p) && self.shards.iter().any(|o| o.checkpoint.shard == p)
                })
        })
    }

    /// Read one batch from every shard that may be read now; the number of records read.
    pub(crate) async fn poll_once(&mut self) -> Result<usize, Error> {
        let finished: HashSet<String> = self
            .shards
            .iter()
            .filter(|s| s.checkpoint.finished)
            .map(|s| s.checkpoint.shard.clone())
            .collect();
        let known: HashSet<String> = self
            .shards
            .iter()
            .map(|s| s.checkpoint.shard.clone())
            .collect();
        let mut read = 0;
        let mut closed_any = false;
        for i in 0..self.shards.len() {
            let state = &self.shards[i];
            if state.checkpoint.finished {
                continue;
            }
            // Parents first: a child waits until its parent (if still in the stream) is done.
            let parent_pending = state
                .shard
                .parent_shard_id()
                .is_some_and(|p| known.contains(p) && !finished.contains(p));
            if parent_pending {
                continue;
            }
            let (n, closed) = self.read_shard(i).await?;
            read += n;
            closed_any |= closed;
        }
        if closed_any {
            self.discover().await?;
        }
        Ok(read)
    }

    /// Read and handle one batch of shard `i`: (records read, shard closed). Like Lambda's
    /// batching window, once a read returns records it keeps reading for up to
    /// `batch_window` until the batch is full or the shard ends.
    async fn read_shard(&mut self, i: usize) -> Result<(usize, bool), Error> {
        let mut records = Vec::new();
        let mut window_started: Option<tokio::time::Instant> = None;
        let closed = loop {
            let iterator = match self.shards[i].iterator.clone() {
                Some(iterator) => iterator,
                None => match self.iterator_for(i).await? {
                    Some(iterator) => iterator,
                    None => break true,
                },
            };
            let limit = (self.settings.batch_size - records.len() as i32).min(MAX_READ);
            let result = self
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit)
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if e.code() == Some("ExpiredIteratorException") => {
                    // Re-read after the last record taken: the records in hand go first.
                    self.shards[i].iterator = None;
                    if let Some(last) = records.last().and_then(sequence_of) {
                        self.shards[i].checkpoint.sequence = Some(last);
                    }
                    break false;
                }
                Err(e) if e.code() == Some("TrimmedDataAccessException") => {
                    self.trimmed(i);
                    break false;
                }
                Err(e) if records.is_empty() => return Err(Error::dynamo("GetRecords", e)),
                Err(e) => {
                    tracing::warn!(error = ?e.code(), "read failed mid-batch: handling the records in hand");
                    self.shards[i].iterator = None;
                    break false;
                }
            };
            let read = out.records.unwrap_or_default();
            if out.next_shard_iterator.is_some() {
                self.shards[i].page_read(read.len());
            }
            // A full read means more records are waiting: read on without pausing.
            let drained = (read.len() as i32) < limit;
            records.extend(read);
            self.shards[i].iterator = out.next_shard_iterator.clone();
            if out.next_shard_iterator.is_none() {
                break true;
            }
            if records.is_empty() || records.len() as i32 >= self.settings.batch_size {
                break false;
            }
            let started = *window_started.get_or_insert_with(tokio::time::Instant::now);
            let left = self.settings.batch_window.saturating_sub(started.elapsed());
            if left.is_zero() {
                break false;
            }
            if drained {
                tokio::time::sleep(self.settings.idle_delay.min(left)).await;
            }
        };
        let count = records.len();
        if !records.is_empty() {
            let last = records.last().and_then(sequence_of);
            let only_checkpoints = records.iter().all(is_checkpoint_record);
            if let Some(from) = self.catching_up_from
                && records
                    .iter()
                    .any(|r| created_at(r).is_some_and(|at| at >= from))
            {
                self.shards[i].past_start = true;
            }
            let since = self.settings.since.max(self.shards[i].latest_from);
            let events: Vec<Value> = records
                .into_iter()
                .filter(|r| written_since(r, since))
                .map(|r| {
                    serde_json::to_value(from_streams_record(r, &self.stream_arn))
                        .expect("event records serialize")
                })
                .filter(|event| self.filter.passes(event))
                .collect();
            if !events.is_empty() {
                self.deliver(&events).await;
            }
            self.shards[i].checkpoint.sequence = last;
            if !only_checkpoints && self.settings.checkpoints {
                self.save(i).await?;
            }
        }
        if closed {
            self.shards[i].checkpoint.finished = true;
            if self.settings.checkpoints {
                self.save(i).await?;
            }
        }
        Ok((count, closed))
    }

    /// Hand records to the projector until every one is applied, sending again what a failed
    /// batch owes as Lambda does ([`Redelivery`]), without giving up: the poller never skips a
    /// record.
    async fn deliver(&self, records: &[Value]) {
        let mut redelivery = Redelivery::default();
        let mut at = 0;
        while at < records.len() {
            let len = redelivery.next(records.len() - at);
            let ended = match self.projector.handle(&records[at..at + len]).await {
                Ok(report) => Ended::Answered {
                    first_failure: report.first_failure,
                },
                Err(whole) => {
                    tracing::warn!(%whole, size = len, "batch failed whole");
                    Ended::FunctionError
                }
            };
            let verdict = redelivery.ended(len, ended, GiveUp::NEVER, |_| Duration::ZERO);
            at += verdict.done;
            if let Some(retry) = verdict.retry {
                retry_pause(retry).await;
            }
        }
    }

    /// The stream no longer holds records shard `i` had not read (older than its retention):
    /// say so, and go on from the oldest record still there.
    fn trimmed(&mut self, i: usize) {
        self.trims += 1;
        let state = &mut self.shards[i];
        tracing::warn!(
            shard = %state.checkpoint.shard,
            after = ?state.checkpoint.sequence,
            trimmed = true,
            "records were trimmed from the stream before they were read: they are not projected; \
             run projector verify, then rebuild (docs/operations.md)"
        );
        let stage = self.projector.stage();
        println!(
            "{}",
            emf(stage, &[(TRIMMED_METRIC, "Count", 1)], Utc::now())
        );
        state.checkpoint.sequence = None;
        state.iterator = None;
        state.from_oldest = true;
    }

    /// A new iterator for shard `i`: after its checkpoint, or where `start_at` (or a trim)
    /// says; `None` when the stream holds nothing of the shard any more (all of it trimmed).
    async fn iterator_for(&mut self, i: usize) -> Result<Option<String>, Error> {
        loop {
            let state = &self.shards[i];
            let mut request = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&state.checkpoint.shard);
            let oldest = state.from_oldest
                || state.latest_from.is_some()
                || self.settings.start_at == StartAt::TrimHorizon;
            request = match &state.checkpoint.sequence {
                Some(sequence) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence),
                None if oldest => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                None => {
                    self.shards[i].latest_from = Some(Utc::now() - CLOCK_MARGIN);
                    request.shard_iterator_type(ShardIteratorType::Latest)
                }
            };
            match request.send().await {
                Ok(out) => {
                    let iterator = out
                        .shard_iterator
                        .ok_or_else(|| Error::Dynamo("no shard iterator".into()))?;
                    self.shards[i].iterator = Some(iterator.clone());
                    return Ok(Some(iterator));
                }
                // The checkpoint is older than the stream's retention.
                Err(e)
                    if e.code() == Some("TrimmedDataAccessException")
                        && self.shards[i].checkpoint.sequence.is_some() =>
                {
                    self.trimmed(i);
                }
                // Nothing of the shard is left: it must not hold its children back.
                Err(e) if e.code() == Some("TrimmedDataAccessException") => {
                    self.trims += 1;
                    tracing::warn!(shard = %self.shards[i].checkpoint.shard, trimmed = true, "the whole shard was trimmed from the stream: taken as finished");
                    return Ok(None);
                }
                Err(e) => return Err(Error::dynamo("GetShardIterator", e)),
            }
        }
    }

    /// Refresh the shard list and load checkpoints for new shards.
    async fn discover(&mut self) -> Result<(), Error> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| Error::dynamo("Streams", e))?;
            let description = out
                .stream_description
                .ok_or_else(|| Error::Dynamo("no stream description".into()))?;
            shards.extend(description.shards.unwrap_or_default());
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        let saved = if self.settings.checkpoints {
            self.load_checkpoints().await?
        } else {
            HashMap::new()
        };
        let known: HashSet<String> = self
            .shards
            .iter()
            .map(|s| s.checkpoint.shard.clone())
            .collect();
        // Lambda applies LATEST to the shards there at the start only: a shard found later
        // holds records written after the start, from its first.
        let found_later = self.discovered;
        self.discovered = true;
        for shard in shards {
            let id = shard.shard_id().unwrap_or_default().to_owned();
            if known.contains(&id) {
                continue;
            }
            let checkpoint = saved.get(&id).cloned().unwrap_or(Checkpoint {
                stream: self.stream_arn.clone(),
                shard: id,
                sequence: None,
                finished: false,
            });
            self.shards.push(ShardState {
                shard,
                iterator: None,
                checkpoint,
                empty_pages: 0,
                quiet_since: None,
                from_oldest: found_later,
                latest_from: None,
                past_start: false,
            });
        }
        Ok(())
    }

    async fn load_checkpoints(&self) -> Result<HashMap<String, Checkpoint>, Error> {
        let partition = keys::ItemKey::Checkpoint {
            stream: self.stream_arn.clone(),
            shard: String::new(),
        }
        .key()
        .pk;
        let mut checkpoints = HashMap::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .query()
                .table_name(&self.settings.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Error::dynamo("Streams", e))?;
            for item in out.items.unwrap_or_default() {
                if let Ok(checkpoint) = Checkpoint::from_item(item) {
                    checkpoints.insert(checkpoint.shard.clone(), checkpoint);
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(checkpoints);
            }
        }
    }

    async fn save(&self, i: usize) -> Result<(), Error> {
        self.dynamo
            .put_item()
            .table_name(&self.settings.table)
            .set_item(Some(self.shards[i].checkpoint.to_item()))
            .send()
            .await
            .map_err(|e| Error::dynamo("Streams", e))?;
        Ok(())
    }
}

fn written_since(
    record: &aws_sdk_dynamodbstreams::types::Record,
    since: Option<DateTime<Utc>>,
) -> bool {
    let Some(since) = since else { return true };
    created_at(record).is_none_or(|at| at.timestamp() >= since.timestamp())
}

/// A record's `ApproximateCreationDateTime`.
fn created_at(record: &aws_sdk_dynamodbstreams::types::Record) -> Option<DateTime<Utc>> {
    let at = record.dynamodb.as_ref()?.approximate_creation_date_time?;
    DateTime::from_timestamp(at.secs(), at.subsec_nanos())
}

fn sequence_of(record: &aws_sdk_dynamodbstreams::types::Record) -> Option<String> {
    record.dynamodb.as_ref()?.sequence_number.clone()
}

fn is_checkpoint_record(record: &aws_sdk_dynamodbstreams::types::Record) -> bool {
    let image = record
        .dynamodb
        .as_ref()
        .and_then(|d| d.new_image.as_ref().or(d.old_image.as_ref()));
    matches!(
        image.and_then(|i| i.get(keys::TYPE)),
        Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(t)) if t == ItemType::Checkpoint.as_str()
    )
}

/// The poller never skips a record, so it retries without a bound, backing off to 5 s.
const RETRY: Backoff = Backoff {
    attempts: u32::MAX,
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
};

async fn retry_pause(attempt: u32) {
    RETRY.wait(attempt).await;
}
