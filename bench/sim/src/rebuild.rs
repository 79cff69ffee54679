//! `projector rebuild` in the world: its machine (`projector::rebuild::machine`) driven in
//! virtual time as the CLI's shell (`projector::rebuild::Rebuild`) drives it. Its replay is a
//! replay consumer of its own; its page repairs run the batch machine; its saved progress is
//! the run's state file; its table requests are the shell's (the same scan page as
//! `verify::scan_page`, consistent reads of the counter and the deltas, the GSI1 recount and
//! the conditional correction of `contracts::counting::set_counter`), built by [`requests`]
//! and sent through the SDK's attempts. A run that fails, dies or leaves posts busy is run
//! again, as an operator would.

use contracts::counting::set_counter;
use contracts::items::{attr, key_item};
use contracts::keys::{self, ItemKey};
use projector::batch::count::ActionKind;
use projector::batch::{Batch, Knowledge, Settings as BatchSettings};
use projector::deadline::{BATCH_TIME, MARGIN};
use projector::plan::PostRef;
use projector::rebuild::machine::{
    Answer, Counter, Machine, RebuildState, Request, Settings as RebuildSettings, Ticket,
};
use rand::Rng;
use rustc_hash::FxHashSet;
use serde_json::{Value, json};
use std::hash::Hasher;

use crate::lambda::Kind;
use crate::table::Table;
use crate::{Event, Invocation, Owner, Process, World, sdk, wire};

/// Items per scan page: small, so a rebuild takes many pages and steps between them.
pub(crate) const PAGE_SIZE: i64 = 20;

/// The requests `send` sends for one of the machine's table requests, as (operation, body):
/// each is followed to its last page. The conformance suite sends the same ones to the engine.
pub fn requests(table: &str, request: &Request, segments: i32) -> Vec<(&'static str, Value)> {
    match request {
        Request::Scan { segment, start } => {
            let mut body = json!({
                "TableName": table,
                "Segment": segment,
                "TotalSegments": segments,
                "Limit": PAGE_SIZE,
            });
            if let Some(start) = start {
                body["ExclusiveStartKey"] = wire::item(start);
            }
            vec![("Scan", body)]
        }
        Request::Counter(post) => {
            let key = key_item(&ItemKey::Post(post.topic.clone(), post.post));
            let body = json!({"TableName": table, "Key": wire::item(&key), "ConsistentRead": true});
            vec![("GetItem", body)]
        }
        Request::Pending(post) => (0..keys::DELTA_PARTITIONS)
            .map(|k| {
                let body = json!({
                    "TableName": table,
                    "KeyConditionExpression": "#pk = :pk",
                    "ProjectionExpression": "#delta",
                    "ExpressionAttributeNames": {"#pk": keys::PK, "#delta": attr::DELTA},
                    "ExpressionAttributeValues":
                        {":pk": {"S": keys::delta_partition(&post.post, k)}},
                    "ConsistentRead": true,
                });
                ("Query", body)
            })
            .collect(),
        Request::CountView { post, shards } => (0..*shards)
            .map(|k| ("Query", count_view(table, post, k)))
            .collect(),
        Request::SetCount {
            post,
            count,
            version,
        } => {
            let write = set_counter(&post.topic, post.post, *count, version.as_deref());
            vec![(
                "UpdateItem",
                wire::request(ActionKind::Update, &write, table),
            )]
        }
        Request::CatchUp | Request::Repair { .. } | Request::Save(_) => Vec::new(),
    }
}

/// The answer to a table request, or the error code DynamoDB refused it with (the SDK may try
/// again; past its retries the shell's call fails, and with it the rebuild: the operator runs
/// it again).
pub(crate) fn send(
    table: &mut Table,
    request: &Request,
    segments: i32,
    now_ms: i64,
) -> Result<Answer, String> {
    let mut requests = requests(&table.name, request, segments);
    // Every page of each (reads are never refused: only writes meet the contention rules).
    let pages = |table: &mut Table, requests: Vec<(&str, Value)>| -> Vec<Value> {
        let all = requests.into_iter();
        all.flat_map(|(operation, body)| table.pages(operation, body, now_ms))
            .collect()
    };
    let refused = |error: Value| wire::error_name(&error).to_owned();
    Ok(match request {
        Request::Scan { .. } => {
            let (operation, body) = requests.pop().expect("one request");
            let page = table.call(operation, &body, now_ms).map_err(refused)?;
            let items = page["Items"].as_array().into_iter().flatten();
            Answer::Page {
                items: items.filter_map(wire::from_item).collect(),
                next: page.get("LastEvaluatedKey").and_then(wire::from_item),
            }
        }
        Request::Counter(_) => {
            let (operation, body) = requests.pop().expect("one request");
            let found = table.call(operation, &body, now_ms).map_err(refused)?;
            let item = found.get("Item").and_then(wire::from_item);
            Answer::Counter(Counter::of(&item.unwrap_or_default()))
        }
        Request::Pending(_) => Answer::Sum(
            pages(table, requests)
                .iter()
                .flat_map(|page| page["Items"].as_array())
                .flatten()
                .filter_map(|i| i[attr::DELTA]["N"].as_str()?.parse::<i64>().ok())
                .sum(),
        ),
        Request::CountView { .. } => Answer::Sum(
            pages(table, requests)
                .iter()
                .map(|page| page["Count"].as_i64().unwrap_or_default())
                .sum(),
        ),
        Request::SetCount { .. } => {
            let (operation, body) = requests.pop().expect("one request");
            match table.call(operation, &body, now_ms) {
                Ok(_) => Answer::Set(true),
                Err(e) if wire::error_name(&e) == "ConditionalCheckFailedException" => {
                    Answer::Set(false)
                }
                Err(e) => return Err(refused(e)),
            }
        }
        Request::CatchUp | Request::Repair { .. } | Request::Save(_) => {
            unreachable!("the world's, not the table's")
        }
    })
}

/// The query of view shard `k`'s counted likes, as `Rebuild::count_view` sends it.
fn count_view(table: &str, post: &PostRef, k: u32) -> Value {
    json!({
        "TableName": table,
        "IndexName": keys::GSI1,
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :likes)",
        "FilterExpression": "attribute_exists(#counted)",
        "ExpressionAttributeNames":
            {"#pk": keys::GSI1PK, "#sk": keys::GSI1SK, "#counted": attr::COUNTED_BY},
        "ExpressionAttributeValues": {
            ":pk": {"S": keys::post_view_shard(&post.post, k)},
            ":likes": {"S": keys::prefix::LIKES},
        },
        "Select": "COUNT",
    })
}

/// How long an operator takes to run a failed (or unfinished) `rebuild` again.
const RERUN_MS: i64 = 2_000;

/// A `rebuild` an operator runs, and runs again until it ends clean.
pub(crate) struct RebuildRun {
    pub(crate) machine: Machine,
    pub(crate) settings: RebuildSettings,
    /// Its replay's consumer.
    pub(crate) replay: usize,
    /// The catch-up it waits for, and the records its replay had applied when it began.
    pub(crate) catching_up: Option<(Ticket, u64)>,
    /// The progress saved (its state file).
    pub(crate) saved: RebuildState,
    /// What its applier knows.
    pub(crate) knowledge: Knowledge,
    /// Which run of it this is: answers to an earlier one are dropped.
    pub(crate) attempt: u32,
}

/// A call of a `rebuild` to the table, through the SDK's attempts.
#[derive(Debug)]
pub(crate) struct Call {
    run: u64,
    attempt: u32,
    ticket: Ticket,
    request: Request,
    sdk: sdk::Call,
}

impl World {
    /// An operator starts `rebuild` with its scan in `segments`.
    pub(crate) fn start_rebuild(&mut self, segments: i32) -> Result<(), String> {
        let settings = RebuildSettings {
            segments,
            dry_run: false,
            settle_ms: self.settings.rebuild_settle_ms,
            rounds: projector::rebuild::ROUNDS,
        };
        let saved = RebuildState::new(&self.table.name, segments);
        let run = self.next_rebuild;
        self.next_rebuild += 1;
        let r = RebuildRun {
            machine: Machine::new(settings, saved.clone()),
            settings,
            replay: self.add_replay(),
            catching_up: None,
            saved,
            knowledge: Knowledge::default(),
            attempt: 0,
        };
        self.rebuilds.insert(run, r);
        self.drive_rebuild(run)
    }

    /// Send what a `rebuild`'s machine asks for; end the run when it is done.
    pub(crate) fn drive_rebuild(&mut self, run: u64) -> Result<(), String> {
        let Some(r) = self.rebuilds.get_mut(&run) else {
            return Ok(());
        };
        let asked = r.machine.poll(self.now);
        let attempt = r.attempt;
        for (ticket, request) in asked {
            self.ask_rebuild(run, attempt, ticket, request)?;
        }
        let Some(r) = self.rebuilds.get_mut(&run) else {
            return Ok(());
        };
        if r.machine.is_done() {
            // Taken out to finish; a rerun builds its own from the progress saved.
            let next = Machine::new(r.settings, RebuildState::default());
            match std::mem::replace(&mut r.machine, next).finish() {
                Ok(summary) => {
                    self.report.counters_corrected += summary.counters_corrected;
                    if summary.posts_busy == 0 {
                        self.report.rebuilds += 1;
                        self.rebuilds.remove(&run);
                        return Ok(());
                    }
                    self.trace.write_u64(summary.posts_busy);
                    // The CLI removes its state file when it ends, busy posts or not.
                    r.saved = RebuildState::new(&self.table.name, r.settings.segments);
                }
                Err(_) => self.trace.write_u8(0xfe),
            }
            // Exit 1 or 2: the operator runs it again, resuming from the saved progress.
            self.fail_rebuild(run, attempt);
        } else if let Some(at) = r.machine.wake_at() {
            self.schedule(at - self.now, Event::RebuildWake { run, attempt });
        }
        Ok(())
    }

    /// Send one request of a `rebuild`: the table's through the faults, a catch-up to its
    /// replay, a repair to a batch machine of its own, a save to its state.
    pub(crate) fn ask_rebuild(
        &mut self,
        run: u64,
        attempt: u32,
        ticket: Ticket,
        request: Request,
    ) -> Result<(), String> {
        let r = self.rebuilds.get_mut(&run).expect("a rebuild");
        let answer = match request {
            Request::CatchUp => {
                let consumer = &mut self.consumers[r.replay];
                if let Kind::Replay { caught_up, .. } = &mut consumer.kind {
                    *caught_up = false;
                }
                r.catching_up = Some((ticket, consumer.applied));
                return Ok(());
            }
            Request::Save(state) => {
                r.saved = state;
                Some(Answer::Saved)
            }
            Request::Repair { plan, records } => {
                let settings = BatchSettings {
                    defers_stamps: false,
                    deadline_ms: Some(self.now + (BATCH_TIME - MARGIN).as_millis() as i64),
                    seed: self.rng.random(),
                };
                let batch = Batch::new(plan, records, &r.knowledge, self.now, settings);
                let id = self.next_invocation;
                self.next_invocation += 1;
                let owner = Owner::Rebuild {
                    run,
                    attempt,
                    ticket,
                };
                let invocation = Invocation {
                    owner,
                    batch,
                    records: Vec::new(),
                    in_flight: FxHashSet::default(),
                    crash_after: None,
                    answers: 0,
                };
                self.invocations.insert(id, invocation);
                self.schedule(
                    (BATCH_TIME - MARGIN).as_millis() as i64,
                    Event::Deadline(id),
                );
                return self.pump(id);
            }
            request => {
                let call = Call {
                    run,
                    attempt,
                    ticket,
                    request,
                    sdk: sdk::Call::new(self.now, true),
                };
                self.call(call);
                return Ok(());
            }
        };
        let after = self.rng.random_range(1..8);
        self.schedule(
            after,
            Event::Operated {
                run,
                attempt,
                ticket,
                answer,
            },
        );
        Ok(())
    }

    /// One attempt of a `rebuild`'s call to the table, as the SDK makes it: dropped (the
    /// attempt times out), landed with its answer lost (likewise), refused (a throttle, a
    /// conflict), or answered. A failed attempt is tried again after the SDK's backoff, within
    /// its attempts and its operation timeout; past them the call fails, and the run with it.
    pub(crate) fn call(&mut self, mut call: Call) {
        let Some(r) = self
            .rebuilds
            .get(&call.run)
            .filter(|r| r.attempt == call.attempt)
        else {
            return; // its run ended
        };
        let segments = r.settings.segments;
        let cut = call.sdk.attempt(self.now);
        let draw = self.fault_draw();
        let lost = self.settings.faults.lost;
        let outcome = if draw < lost / 2 {
            Err(sdk::TIMED_OUT.to_owned()) // never lands
        } else {
            let answer = send(&mut self.table, &call.request, segments, self.now);
            answer.and_then(|answer| match draw < lost {
                true => Err(sdk::TIMED_OUT.to_owned()), // lands, and its answer is lost
                false => Ok(answer),
            })
        };
        let (run, attempt, ticket) = (call.run, call.attempt, call.ticket);
        let process = Process::Rebuild { run, attempt };
        let error = match outcome {
            Ok(answer) => {
                // A correction's failed condition is an error answer: it earns no token back.
                if !matches!(answer, Answer::Set(false)) {
                    call.sdk.succeeded(self.quota(process));
                }
                let after = self.rng.random_range(1..8);
                let answer = Some(answer);
                let answered = Event::Operated {
                    run,
                    attempt,
                    ticket,
                    answer,
                };
                self.schedule(after, answered);
                return;
            }
            Err(error) => error,
        };
        let failed_at = if error == sdk::TIMED_OUT {
            cut
        } else {
            self.now + self.rng.random_range(1..8)
        };
        let cost = sdk::retry_cost(&error);
        let failed_at = match self.after_failure(process, &mut call.sdk, failed_at, cost) {
            sdk::Next::Retry { at } => {
                self.schedule(at - self.now, Event::Call(Box::new(call)));
                return;
            }
            sdk::Next::Fail | sdk::Next::OutOfQuota => failed_at,
            sdk::Next::TimedOut { at } => at,
        };
        let failed = Event::Operated {
            run,
            attempt,
            ticket,
            answer: None,
        };
        self.schedule(failed_at - self.now, failed);
    }

    /// An answer reaches a `rebuild`.
    pub(crate) fn operated(
        &mut self,
        run: u64,
        attempt: u32,
        ticket: Ticket,
        answer: Option<Answer>,
    ) -> Result<(), String> {
        let Some(r) = self.rebuilds.get_mut(&run).filter(|r| r.attempt == attempt) else {
            return Ok(()); // an earlier run's
        };
        match answer {
            Some(answer) => {
                r.machine.answer(ticket, answer, self.now);
                self.drive_rebuild(run)
            }
            None => {
                self.fail_rebuild(run, attempt);
                Ok(())
            }
        }
    }

    /// Answer the catch-ups whose replay has reached the stream's end.
    pub(crate) fn caught_up(&mut self) {
        let mut done = Vec::new();
        for (run, r) in &mut self.rebuilds {
            let consumer = &self.consumers[r.replay];
            if let Some((ticket, from)) = r.catching_up.filter(|_| consumer.idle()) {
                r.catching_up = None;
                done.push((*run, r.attempt, ticket, consumer.applied - from));
            }
        }
        done.sort_unstable();
        for (run, attempt, ticket, replayed) in done {
            let answer = Some(Answer::CaughtUp(replayed));
            self.schedule(
                0,
                Event::Operated {
                    run,
                    attempt,
                    ticket,
                    answer,
                },
            );
        }
    }

    /// A `rebuild` run ended early (a call failed, writes failed, its process died, posts
    /// kept moving): its repairs in flight die with it, and the operator runs it again.
    pub(crate) fn fail_rebuild(&mut self, run: u64, attempt: u32) {
        let Some(r) = self.rebuilds.get_mut(&run).filter(|r| r.attempt == attempt) else {
            return;
        };
        r.attempt += 1;
        r.catching_up = None;
        self.report.rebuild_reruns += 1;
        self.invocations
            .retain(|_, i| !matches!(i.owner, Owner::Rebuild { run: owner, .. } if owner == run));
        self.schedule(RERUN_MS, Event::Rerun(run));
    }

    /// Run a `rebuild` again from its saved progress, with a replay from the trim horizon.
    pub(crate) fn rerun(&mut self, run: u64) -> Result<(), String> {
        let replay = self.add_replay();
        let Some(r) = self.rebuilds.get_mut(&run) else {
            return Ok(());
        };
        r.machine = Machine::new(r.settings, r.saved.clone());
        r.replay = replay;
        r.knowledge = Knowledge::default();
        self.drive_rebuild(run)
    }
}
