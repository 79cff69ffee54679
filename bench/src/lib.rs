//! # bench
//!
//! The test bed and the benchmarks: everything that runs the system rather than being it.
//! The writer's and the projector's integration tests, the load benchmark and the criterion
//! benches use it; no deployed binary links it.
//!
//! - [`local`]: the local engine (dynoxide, the `engine` binary of this crate), a uniquely
//!   named table per test, and [`local::eventually`], the way tests wait for eventual
//!   consistency; [`departures`]: where the engine departs from DynamoDB, worked around.
//! - [`app`]: the writer and the projector built in-process on a test table.
//! - [`writer_client`]: the writer's HTTP API as tests and the benchmark call it.
//! - [`tally`]: the true counts of a table (stored counter, live likes, likes in the view).
//! - [`skew`]: which post a client likes next: one hot post and a Zipf tail.
//! - [`slow_proxy`]: an endpoint made slow, for tests of deadlines and timeouts.
//! - [`runtime`]: `infra/runtime.json`, the timing facts the stack's function timeouts respect.
//! - [`lambda_runtime`]: a real Lambda runtime (cargo-lambda's emulator) and AWS's sample events.
//! - [`load`]: clients liking and unliking until stopped, with what was acknowledged.
//! - [`write_log`]: an SDK interceptor that logs every write with its consumed capacity.
//! - [`capacity`]: the capacity model that replays those logs against DynamoDB's limits.
//! - [`contention`]: transaction conflicts and partition throttling, modelled in front of
//!   the local engine; [`shards`]: Lambda's delivery over many stream shards, simulated.
//! - [`permissions`]: the IAM actions each deployed function calls, recorded in the tests.
//!
//! The deterministic simulation is its own crate (`bench/sim`), built on [`contention`].
//!
//! The `bench` binary (`src/bin/load`) is the load benchmark; `bench writer` and `bench
//! projector` run the real entrypoints with a write-logging client.

#![warn(unreachable_pub, missing_docs)]

pub mod app;
pub mod capacity;
pub mod contention;
pub mod departures;
pub mod lambda_runtime;
pub mod load;
pub mod local;
pub mod permissions;
pub mod runtime;
pub mod shards;
pub mod skew;
pub mod slow_proxy;
pub mod tally;
pub mod write_log;
pub mod writer_client;

pub use local::{LocalInstance, TestTable, eventually, local_engine, terminate};
