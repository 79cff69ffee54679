//! # projector
//!
//! Turns the table's DynamoDB Stream into derived state: exact per-post like counters and the
//! GSI1 likers view.
//!
//! - [`plan`]: pure. A batch of decoded records in, the writes out (with the exactly-once
//!   argument in its docs).
pub mod plan;
