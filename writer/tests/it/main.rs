//! The writer's integration tests: one binary, a module per concern, on the local engine.

mod api;
mod bad_input;
mod contention;
mod cursors;
mod docs;
mod fuzz;
mod lambda;
mod likers;
mod logging;
mod runtime;

use bench::TestTable;
use bench::writer_client::WriterClient;
use writer::WriteMode;
use writer::identity::IdentitySource;

/// A writer served over real HTTP on a loopback port, on a table of its own. It is a
/// [`WriterClient`] of that writer.
pub struct TestWriter {
    pub table: TestTable,
    client: WriterClient,
}

impl std::ops::Deref for TestWriter {
    type Target = WriterClient;
    fn deref(&self) -> &WriterClient {
        &self.client
    }
}

impl TestWriter {
    pub async fn start(mode: WriteMode) -> Self {
        Self::start_with(mode, IdentitySource::DevHeader).await
    }

    pub async fn start_with(mode: WriteMode, identity: IdentitySource) -> Self {
        let table = TestTable::new().await;
        let base = bench::app::serve_writer(&table, mode, identity).await;
        Self {
            table,
            client: WriterClient::new(base),
        }
    }
}
