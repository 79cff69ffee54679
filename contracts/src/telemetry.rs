//! Logging: JSON lines in Lambda (CloudWatch parses them), readable lines locally.
//!
//! Whatever `RUST_LOG` asks for, the AWS SDK's TRACE events are dropped: they carry DynamoDB
//! request and response payloads, which hold users' content.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt};

/// Targets whose TRACE events carry payloads.
const PAYLOAD_TARGETS: [&str; 2] = ["aws_smithy_runtime", "aws_smithy_http_client"];

fn carries_payloads(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::TRACE && PAYLOAD_TARGETS.iter().any(|t| meta.target().starts_with(t))
}

/// A subscriber logging what `directives` (`RUST_LOG` syntax) enable, minus payloads, to
/// `writer`: JSON lines or compact text.
pub fn subscriber<W>(json: bool, directives: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::new(directives).and(filter_fn(|meta| !carries_payloads(meta)));
    let layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .with_writer(writer)
            .boxed()
    } else {
        fmt::layer().compact().with_writer(writer).boxed()
    };
    Registry::default().with(layer.with_filter(filter))
}

/// Install the global subscriber on stdout; `RUST_LOG` filters (default `info`).
pub fn init(json: bool) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let _ = subscriber(json, &directives, std::io::stdout).try_init();
}
