//! How Lambda feeds the projector from the table's stream: the event source mapping's settings,
//! as the stack deploys them (through `infra/runtime.json`, written from this constant and
//! checked by a test) and as the simulation's event source behaves.

use serde::Serialize;

/// The settings of the projector's event source mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// Records per invocation at most.
    pub batch_size: u32,
    /// How long Lambda gathers records before it invokes: the window trades lag for coalescing
    /// (a post's likes in one batch share counter writes; docs/benchmarks.md).
    pub max_batching_window_seconds: u32,
    /// Split a batch whose invocation fails as a whole, to isolate a record that crashes it.
    pub bisect_batch_on_error: bool,
    /// Retries of a failing batch before it goes to the failure destination.
    pub retry_attempts: u32,
    /// A failing batch with a record older than this goes to the failure destination.
    pub max_record_age_seconds: u32,
    /// Concurrent batches per shard. Order is kept per partition key (per item) only: the
    /// projection tolerates that, since every write is conditioned on its item's state.
    pub parallelization_factor: u32,
    /// The handler answers a partial batch response (the lowest record not applied).
    pub report_batch_item_failures: bool,
}

/// What the stack deploys.
pub const DEPLOYED: EventSource = EventSource {
    batch_size: 1000,
    max_batching_window_seconds: 1,
    bisect_batch_on_error: true,
    retry_attempts: 10,
    max_record_age_seconds: 6 * 3600,
    parallelization_factor: 2,
    report_batch_item_failures: true,
};
