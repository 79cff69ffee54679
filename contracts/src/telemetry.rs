//! Logging: JSON lines in Lambda (CloudWatch parses them), readable lines locally.
//!
//! Whatever `RUST_LOG` asks for, the AWS SDK's wire traces stay off: at TRACE the SDK logs
//! DynamoDB request and response payloads, which hold users' content.

use tracing_subscriber::EnvFilter;

/// Targets whose TRACE events carry payloads; capped at DEBUG.
const PAYLOAD_TARGETS: [&str; 2] = ["aws_smithy_runtime", "aws_smithy_http_client"];

/// The filter for `directives` (`RUST_LOG` syntax), with the payload cap appended last so that
/// it wins over anything the directives say of those targets.
pub fn filter(directives: &str) -> EnvFilter {
    let caps = PAYLOAD_TARGETS.map(|target| format!("{target}=debug"));
    EnvFilter::new(format!("{directives},{}", caps.join(",")))
}

/// Install the global subscriber; `RUST_LOG` filters (default `info`).
pub fn init(json: bool) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter(&directives));
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
