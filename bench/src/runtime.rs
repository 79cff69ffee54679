//! `infra/runtime.json`: the timing facts of the binaries that the stack's function timeouts
//! must respect, and the event source mapping the stack deploys and the simulation follows,
//! written from the constants themselves (a test fails when the file is stale;
//! `UPDATE_CONTRACTS=1` rewrites it).

use serde::Serialize;

/// What the stack reads.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeFacts {
    /// `writer::REQUEST_BUDGET`: the writer answers 503 by then; its function timeout must
    /// be longer.
    pub writer_request_budget_seconds: u64,
    /// `projector::deadline::MARGIN`: the projector stops writing this long before its
    /// invocation's deadline.
    pub projector_deadline_margin_seconds: u64,
    /// `projector::deadline::BATCH_TIME`: the projector function's timeout, and the budget of
    /// each batch the local poller, `replay` and `rebuild` apply.
    pub projector_batch_seconds: u64,
    /// `contracts::event_source::DEPLOYED`: the projector's event source mapping.
    pub event_source: contracts::event_source::EventSource,
}

/// The facts as the binaries define them.
pub fn facts() -> RuntimeFacts {
    RuntimeFacts {
        writer_request_budget_seconds: writer::REQUEST_BUDGET.as_secs(),
        projector_deadline_margin_seconds: projector::deadline::MARGIN.as_secs(),
        projector_batch_seconds: projector::deadline::BATCH_TIME.as_secs(),
        event_source: contracts::event_source::DEPLOYED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_runtime_json_matches_the_binaries() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/runtime.json");
        let current = serde_json::to_string_pretty(&facts()).unwrap() + "\n";
        if std::env::var_os("UPDATE_CONTRACTS").is_some() {
            std::fs::write(path, &current).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            committed, current,
            "infra/runtime.json is stale: run with UPDATE_CONTRACTS=1"
        );
    }
}
