//! The writer's one error type: why a database call or the server's start failed. Handlers
//! turn it into a problem answer (`problem::ApiError`).

/// A failure of the writer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Throttled, timed out, unreachable or contended: the client may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else a database call did: a bug or a misconfiguration.
    #[error("internal: {0}")]
    Internal(String),
    /// The server could not start.
    #[error("cannot start: {0}")]
    Start(String),
}
