//! The invocation deadline: against a slow DynamoDB, a batch answers a partial batch response
//! before its deadline instead of timing out, and re-delivering from the reported record
//! leaves every count exact.

use std::time::{Duration, Instant};

use bench::TestTable;
use bench::slow_proxy::SlowProxy;
use projector::apply::Applier;
use projector::deadline::Deadline;
use projector::handler::Projector;
use writer::WriteMode;

#[tokio::test]
async fn a_batch_stops_at_its_deadline_and_re_delivery_counts_the_rest() {
    let table = TestTable::new().await;
    let writer = crate::support::writer_client(&table, WriteMode::Stream).await;
    // One post with more likes than one transaction holds, behind a DynamoDB answering every
    // request in a second: screening, counting and stamping cannot all finish in time.
    let post = writer.create_post("t", "hot").await;
    for user in 0..300 {
        writer.like("t", &post, &format!("u{user}")).await;
    }
    let written = bench::app::stream_records(&table).await;
    let records = bench::app::through_filters(&written);

    let proxy = SlowProxy::start(&table.endpoint, Duration::from_millis(1000)).await;
    let slow = bench::app::client_at(&proxy.endpoint).await;
    let projector = Projector::new(Applier::new(slow, &table.name));
    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let report = projector
        .handle_before(&records, Deadline::after(budget))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < budget + Duration::from_millis(500),
        "answered {took:?} after the start, past its deadline"
    );
    let first = report
        .first_failure
        .expect("not everything fit before the deadline");
    assert!(
        report.failure_sequence.is_some(),
        "a sequence number for batchItemFailures"
    );

    // Lambda re-sends from the lowest failure (and the records after it).
    let again = crate::support::projector(&table)
        .handle(&records[first..])
        .await
        .unwrap();
    assert!(again.first_failure.is_none());
    // 300 likes of one post are more than one transaction holds: they were counted into
    // deltas, whose records come back through the stream for the second hop to fold.
    crate::support::deliver_written_since(&table, written.len()).await;
    let tallies = crate::support::until_converged(&table, Duration::from_secs(30)).await;
    assert_eq!(tallies[&post.parse().unwrap()], (300, 300, 300));
}
