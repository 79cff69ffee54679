//! # projector
//!
//! Turns the table's DynamoDB Stream into derived state: exact per-post like counters and the
//! GSI1 likers view. Eventually consistent, and exact under at-least-once delivery.
//!
//! - [`plan`]: pure. Decoded records in, the writes out; the exactly-once argument is in its
//!   docs (the conditions themselves are `contracts::counting`).
//! - [`batch`]: pure. One batch's projection as a state machine: every decision about a
//!   record's path (screening, retries, hot counters and views, stamps), time passed in.
//! - [`apply`]: the executor: sends the machine's requests, turns the SDK's results into its
//!   answers, sleeps until it wants to be woken, enforces the deadline.
//! - [`handler`]: one batch in, a partial batch response out. The Lambda, the local poller and
//!   replay all call it.
//! - [`lambda`]: the Lambda function around the handler; [`deadline`]: writes stop before
//!   the invocation's deadline, and what they did not finish is reported failed.
//! - [`poller`]: the local event source mapping on `aws-sdk-dynamodbstreams`; also replay.
//! - [`verify`]: true counts from a parallel scan, and the drift report.
//! - [`rebuild`]: repairs counters and stamps while writes and projection go on.
//! - [`cli`]: the operator commands (`poll`, `replay`, `verify`, `rebuild`), one module each.
//! - [`error`]: the crate's one error type.
//!
//! `main.rs` runs the Lambda function or the operator CLI.

#![warn(unreachable_pub, missing_docs)]

pub mod apply;
pub mod batch;
pub mod cli;
pub mod deadline;
pub mod error;
pub mod handler;
pub mod lambda;
pub mod plan;
pub mod poller;
pub mod rebuild;
pub mod verify;

pub use error::Error;
