//! The projector's integration tests: one binary, a module per concern, on the local engine.

mod chaos;
mod deadline;
mod end_to_end;
mod faults;
mod filters;
mod lambda;
mod lineage;
mod operations;
mod poller;
mod runtime;
mod shards;

/// The shared test support these modules use, from the `bench` test bed.
mod support {
    pub use bench::app::{
        deliver_written_since, projector, start_poller, start_poller_at, writer_client,
    };
    pub use bench::load::{Load, assert_acknowledged_hold};
    pub use bench::tally::{scan, tallies, until_converged, view_count};
    pub use bench::writer_client::WriterClient;

    pub fn topic(slug: &str) -> contracts::keys::TopicSlug {
        slug.parse().unwrap()
    }
}
