//! The local DynamoDB-compatible engine: dynoxide (MIT OR Apache-2.0, Rust over SQLite) serving
//! DynamoDB's and DynamoDB Streams' JSON APIs on loopback, pinned by Cargo.lock and built with
//! the workspace, so nothing is installed apart from it. The test command, the local stack, the
//! benchmark and the tests that kill and restart an engine of their own all start this binary
//! (through `scripts/engine.sh` or `bench::local`).
//!
//! What it adds to dynoxide's own server:
//! - indexes on the stream records' table, so that a write costs the same however long the
//!   stream has grown (dynoxide 3.2 finds each write's sequence number by scanning every stream
//!   record of every table; `--no-stream-indexes` shows it);
//! - a TTL sweeper (`--ttl-sweep-secs`), since dynoxide's server deletes no expired item by
//!   itself, while DynamoDB does within days of expiry;
//! - one line on standard output, the endpoint, once it listens.
//!
//! Where dynoxide departs from DynamoDB, and how each departure is handled:
//! docs/local-engine.md.

use std::time::Duration;

use clap::Parser;
use dynoxide::Database;

#[derive(Parser)]
#[command(about = "The local DynamoDB-compatible engine (dynoxide), on 127.0.0.1")]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one (the endpoint is printed either way).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Keep the data in this SQLite file (created if missing); in memory without it.
    #[arg(long)]
    db_path: Option<std::path::PathBuf>,
    /// Delete expired items (TTL) every so many seconds, as DynamoDB's sweeper does (within
    /// days on AWS); 0 never sweeps.
    #[arg(long, default_value_t = 0)]
    ttl_sweep_secs: u64,
    /// Leave the stream records unindexed, as dynoxide does (to measure what the indexes save).
    #[arg(long)]
    no_stream_indexes: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    // In memory: a named shared-cache database, so that a second connection can index it.
    let location = match &args.db_path {
        Some(path) => {
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder)
                    .map_err(|e| format!("{}: {e}", folder.display()))?;
            }
            path.to_string_lossy().into_owned()
        }
        None => format!(
            "file:engine-{}?mode=memory&cache=shared",
            std::process::id()
        ),
    };
    let db = Database::new(&location).map_err(|e| format!("open the database: {e}"))?;
    if !args.no_stream_indexes {
        rusqlite::Connection::open(&location)
            .and_then(|index| index.execute_batch(bench::local::STREAM_INDEXES))
            .map_err(|e| format!("index the stream records: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("listen on 127.0.0.1:{}: {e}", args.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("http://{addr}");
    if args.ttl_sweep_secs > 0 {
        let (db, every) = (db.clone(), Duration::from_secs(args.ttl_sweep_secs));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                if let Err(e) = db.sweep_ttl() {
                    eprintln!("TTL sweep failed: {e}");
                }
            }
        });
    }
    dynoxide::server::serve_with_shutdown(listener, db, shutdown()).await
}

/// SIGTERM or Ctrl-C.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
