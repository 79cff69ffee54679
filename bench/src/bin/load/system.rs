//! The system under load: per design, a table on one local engine, a writer process, and
//! (stream design) a poller process: this release binary's `writer` and `projector`
//! subcommands, each logging its writes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bench::write_log::{WRITE_LOG_VAR, WriteEntry};
use bench::{TestTable, eventually};
use tokio::process::{Child, Command};

/// A design as deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Design {
    /// Append-only writer; the projector counts from the stream, gathering up to `batch_size`
    /// records for up to `batch_window_ms` (Lambda's batching window).
    Stream {
        batch_window_ms: u64,
        batch_size: u32,
    },
    /// Like and counter in one transaction.
    Transactional,
}

impl Design {
    /// The writer's `--mode`.
    pub fn mode(self) -> &'static str {
        match self {
            Design::Stream { .. } => "stream",
            Design::Transactional => "transactional",
        }
    }

    /// How the report names it.
    pub fn name(self) -> String {
        match self {
            Design::Stream {
                batch_window_ms,
                batch_size,
            } => format!("stream, {batch_window_ms} ms window, batches ≤ {batch_size}"),
            Design::Transactional => "transactional".into(),
        }
    }

    /// How files name it.
    fn slug(self) -> String {
        match self {
            Design::Stream {
                batch_window_ms,
                batch_size,
            } => format!("stream-{batch_window_ms}ms-{batch_size}"),
            Design::Transactional => "transactional".into(),
        }
    }
}

/// A child process, killed when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    fn spawn(command: &mut Command) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Self { child }
    }

    /// Stop (SIGSTOP) or continue (SIGCONT) the process.
    pub fn signal(&self, pause: bool) {
        let Some(pid) = self.child.id() else { return };
        let signal = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on the pid of our own child, which is still running (not reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }

    /// Peak resident set (VmHWM) so far, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

/// One design, running.
pub struct Deployment {
    pub design: Design,
    pub table: TestTable,
    /// The writer's base URL.
    pub base: String,
    pub writer: Process,
    pub poller: Option<Process>,
    logs: Vec<PathBuf>,
}

/// This benchmark's own binary: its `writer` and `projector` subcommands run the real
/// entrypoints with a write-logging client.
fn own_binary() -> PathBuf {
    std::env::current_exe().expect("the benchmark's own path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Deployment {
    /// A fresh table on `endpoint`, its writer and (stream design) its poller, with write logs
    /// in `out`.
    pub async fn start(design: Design, endpoint: &str, out: &Path) -> Self {
        let table = TestTable::on(endpoint).await;
        let writer_log = out.join(format!("writes-{}-writer.jsonl", design.slug()));
        let port = free_port();
        let writer = Process::spawn(
            Command::new(own_binary())
                .args(["writer", "--dev-identity", "--mode", design.mode()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--table", &table.name, "--endpoint-url", endpoint])
                .env("RUST_LOG", "warn")
                .env(WRITE_LOG_VAR, &writer_log),
        );
        let mut logs = vec![writer_log];
        let poller = match design {
            Design::Stream {
                batch_window_ms,
                batch_size,
            } => Some((batch_window_ms, batch_size)),
            Design::Transactional => None,
        }
        .map(|(batch_window_ms, batch_size)| {
            let log = out.join(format!("writes-{}-projector.jsonl", design.slug()));
            let process = Process::spawn(
                Command::new(own_binary())
                    .args([
                        "projector",
                        "--table",
                        &table.name,
                        "--endpoint-url",
                        endpoint,
                        "poll",
                    ])
                    .args(["--batch-window-ms", &batch_window_ms.to_string()])
                    .args(["--batch-size", &batch_size.to_string()])
                    .env("RUST_LOG", "warn")
                    .env(WRITE_LOG_VAR, &log),
            );
            logs.push(log);
            process
        });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("the writer answers", Duration::from_secs(30), || async {
            http.get(format!("{base}/openapi.json"))
                .send()
                .await?
                .error_for_status()
        })
        .await;
        Self {
            design,
            table,
            base,
            writer,
            poller,
            logs,
        }
    }

    /// Stop or continue the poller (if any).
    pub fn pause_projection(&self, pause: bool) {
        if let Some(poller) = &self.poller {
            poller.signal(pause);
        }
    }

    /// Wait until the projection has written nothing for a second (stamps may follow counters),
    /// so that the next phase, of either design, starts on an idle engine.
    pub async fn until_projection_idle(&self) {
        let Some(log) = self.logs.get(1) else { return };
        let size = || std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let last = std::cell::Cell::new((size(), std::time::Instant::now()));
        eventually("the projection goes idle", Duration::from_secs(300), || {
            let (last, size) = (&last, &size);
            async move {
                let now = size();
                if now != last.get().0 {
                    last.set((now, std::time::Instant::now()));
                }
                if last.get().1.elapsed() >= Duration::from_secs(1) {
                    Ok(())
                } else {
                    Err(format!("{now} bytes of writes logged"))
                }
            }
        })
        .await;
    }

    /// Every write logged by this design's processes from `since_ms` on.
    pub fn writes_since(&self, since_ms: i64) -> Vec<WriteEntry> {
        let mut entries = Vec::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for line in text.lines() {
                let entry: WriteEntry = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad line {line}: {e}", log.display()));
                if entry.at_ms >= since_ms {
                    entries.push(entry);
                }
            }
        }
        entries
    }
}
