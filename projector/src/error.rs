//! The projector's one error type.

use std::path::PathBuf;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Why a projector operation stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DynamoDB or DynamoDB Streams call failed: its operation and error code.
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    /// The table has no stream to read.
    #[error("the table has no stream")]
    NoStream,
    /// A Lambda event without records.
    #[error("the event has no Records array")]
    NoRecords,
    /// A record that must be retried has no sequence number to report.
    #[error("record {0} failed and has no sequence number to report; the batch is retried whole")]
    Unreportable(usize),
    /// The rebuild state file could not be read or written.
    #[error("rebuild state file {0}: {1}")]
    RebuildState(PathBuf, String),
    /// The rebuild state file belongs to another table.
    #[error("the rebuild state file is for table {0}, not this one")]
    OtherTable(String),
    /// Rebuild writes failed; a rerun resumes.
    #[error("{0} writes failed; run rebuild again to resume")]
    WritesFailed(u64),
    /// The Lambda runtime failed.
    #[error("Lambda runtime: {0}")]
    Runtime(String),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// The invocation's deadline passed before the work was done.
    #[error("the invocation's deadline passed")]
    DeadlinePassed,
}

impl Error {
    /// A failed SDK call, by its code and message (never its payload).
    pub fn dynamo<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        operation: &str,
        e: SdkError<E, R>,
    ) -> Self {
        let code = e.code().map(str::to_owned).unwrap_or_else(|| match &e {
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::DispatchFailure(_) => "unreachable".into(),
            _ => "unknown".into(),
        });
        Error::Dynamo(format!(
            "{operation}: {code}{}",
            e.message().map(|m| format!(" ({m})")).unwrap_or_default()
        ))
    }
}

impl Error {
    /// The variant's name: how a failed invocation names its error to Lambda.
    fn kind(&self) -> &'static str {
        match self {
            Error::Dynamo(_) => "Dynamo",
            Error::NoStream => "NoStream",
            Error::NoRecords => "NoRecords",
            Error::Unreportable(_) => "Unreportable",
            Error::RebuildState(..) => "RebuildState",
            Error::OtherTable(_) => "OtherTable",
            Error::WritesFailed(_) => "WritesFailed",
            Error::Runtime(_) => "Runtime",
            Error::Usage(_) => "Usage",
            Error::DeadlinePassed => "DeadlinePassed",
        }
    }
}

/// A failed invocation as Lambda reports it: `errorType` the variant, `errorMessage` the text.
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind().into(),
            error_message: e.to_string(),
        }
    }
}

impl From<contracts::dynamo::BatchGetError> for Error {
    fn from(e: contracts::dynamo::BatchGetError) -> Self {
        Error::Dynamo(e.to_string())
    }
}
