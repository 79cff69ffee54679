//! # contracts
//!
//! What every part of the service agrees on, in one place:
//!
//! - [`keys`]: the key schema. Every PK, SK, GSI1PK and GSI1SK is built and parsed here.
//! - [`items`]: entities (topic, post, user, like) and their DynamoDB items.
//! - [`api`]: the HTTP API's bodies and validation rules.
//! - [`table`]: the table definition used by tests, the local stack and the CDK app.
//! - [`change`]: stream records (Lambda or SDK) decoded into typed changes.
//! - [`config`]: AWS SDK configuration with bounded timeouts, local or deployed.
//! - [`capacity`]: the benchmarks' log of DynamoDB writes and the capacity they consumed.
//! - `telemetry` (feature `telemetry`): log setup shared by the binaries.
//! - `testkit` (feature `testkit`): DynamoDB Local and a table per test.
//!
//! Data flows one way: HTTP request → writer → table → stream → projector → table. The writer
//! and the projector never talk to each other; they only share these definitions.

pub mod api;
pub mod capacity;
pub mod change;
pub mod config;
pub mod items;
pub mod keys;
pub mod table;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
