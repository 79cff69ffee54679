//! # contracts
//!
//! What the writer and the projector share, and nothing else:
//!
//! - [`keys`]: the key schema. Every PK, SK, GSI1PK and GSI1SK is built and parsed here.
//! - [`items`]: entities (topic, post, user, like, ...) and their DynamoDB items.
//! - [`counting`]: the counting protocol: every condition and update that decides whether a
//!   like is counted, and the argument for why each like counts once.
//! - [`table`]: the table definition used by tests, the local stack and the CDK app.
//! - [`dynamo`]: DynamoDB plumbing: SDK configuration, the retry policy, bounded batch reads,
//!   creating the table.
//! - `api` (feature `api`, the writer's): the HTTP API's bodies and validation rules.
//! - `change` (feature `stream`, the projector's): stream records decoded into typed changes.
//! - [`event_source`]: the event source mapping's settings, deployed by the stack and
//!   followed by the simulation.
//! - `filters` (feature `stream`): which stream records are work: the rules the decoder checks
//!   and the deployed event filters are written from.
//! - `telemetry` (feature `telemetry`): log setup shared by the binaries.
//!
//! Data flows one way: HTTP request → writer → table → stream → projector → table. The writer
//! and the projector never talk to each other; they only share these definitions. Test support
//! and benchmarks live in the `bench` workspace member, never in here.

#![warn(unreachable_pub, missing_docs)]

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "stream")]
pub mod change;
pub mod counting;
pub mod dynamo;
pub mod event_source;
#[cfg(feature = "stream")]
pub mod filters;
pub mod items;
pub mod keys;
pub mod table;
#[cfg(feature = "telemetry")]
pub mod telemetry;
