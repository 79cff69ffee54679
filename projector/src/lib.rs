//! # projector
//!
//! Turns the table's DynamoDB Stream into derived state: exact per-post like counters and the
//! GSI1 likers view. (Being built: see the projector issue.)
