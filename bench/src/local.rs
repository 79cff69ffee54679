//! The local engine, a table per test, and polling with a deadline instead of sleeping.
//!
//! The engine is dynoxide (open source), built with the workspace as bench's `engine` binary.
//! `LOCAL_ENGINE_ENDPOINT` names a running one to reuse (the test command starts one for the
//! whole run); without it, the first test of a process starts its own, which dies with the
//! process.

use std::fmt::Debug;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use rand::Rng;

use contracts::dynamo::{Endpoint, create_table, sdk_config};

/// The engine every figure and test here runs on, as reports name it.
pub const ENGINE: &str = "dynoxide 3.2.0, stream records indexed";

/// The environment variable naming a running local engine.
pub const ENDPOINT_VAR: &str = "LOCAL_ENGINE_ENDPOINT";

/// The endpoint of the local engine this test process uses.
pub fn local_engine() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => start_shared_engine(),
    })
}

/// The workspace's root folder (where `scripts/` is).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench is inside the workspace")
        .to_path_buf()
}

/// Start the shared in-memory engine of this process.
fn start_shared_engine() -> String {
    let instance = LocalInstance::start(None);
    let endpoint = instance.endpoint();
    // The shared instance lives as long as the process.
    std::mem::forget(instance);
    endpoint
}

/// What a write's next sequence number and a shard's reads look up, indexed: SQLite indexes
/// on the very expressions dynoxide's queries use (dynoxide 3.2 finds each write's sequence
/// number by scanning every stream record). The engine binary and the simulation's table
/// both add them.
pub const STREAM_INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS engine_stream_sequence
        ON _stream_records (table_name, CAST(sequence_number AS INTEGER));
    CREATE INDEX IF NOT EXISTS engine_stream_shard_sequence
        ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER));";

/// The `engine` binary beside the running executable (a test binary in `target/<profile>/deps`
/// or a binary in `target/<profile>`), built first if it is not there yet.
pub fn engine_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the running executable's path");
            let mut dir = exe.parent().expect("an executable's folder");
            if dir.ends_with("deps") {
                dir = dir.parent().expect("target/<profile>");
            }
            let binary = dir.join("engine");
            if !binary.exists() {
                let mut build = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
                build.current_dir(workspace_root()).args([
                    "build",
                    "--workspace",
                    "--locked",
                    "--bin",
                    "engine",
                ]);
                if dir.ends_with("release") {
                    build.arg("--release");
                }
                let status = build.status().expect("run cargo to build the engine");
                assert!(status.success(), "cargo build --bin engine failed");
            }
            binary
        })
        .clone()
}

/// An engine process of a test's own: in memory, or in a SQLite file so that it can be killed
/// and restarted with its data, as the fault tests do.
pub struct LocalInstance {
    port: u16,
    db_path: Option<PathBuf>,
    /// The engine's flags beyond port and data (`engine --help`).
    flags: Vec<String>,
    running: Option<(u32, std::thread::JoinHandle<()>)>,
}

impl LocalInstance {
    /// Start on a free loopback port; keep the data in the folder `db_path` when given.
    pub fn start(db_path: Option<&Path>) -> Self {
        Self::launch(db_path, Vec::new())
    }

    /// In memory, deleting expired items (TTL) every `secs` seconds as DynamoDB's sweeper
    /// does, for a test of what expiry writes to the stream. (The shared engine never sweeps,
    /// so that no test's items expire under another's feet.)
    pub fn sweeping_ttl(secs: u64) -> Self {
        Self::launch(None, vec!["--ttl-sweep-secs".into(), secs.to_string()])
    }

    /// In memory, with `flags` (`engine --help`).
    pub fn with_flags(flags: &[&str]) -> Self {
        Self::launch(None, flags.iter().map(|f| f.to_string()).collect())
    }

    fn launch(db_path: Option<&Path>, flags: Vec<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut instance = Self {
            port,
            db_path: db_path.map(Path::to_path_buf),
            flags,
            running: None,
        };
        instance.restart();
        instance
    }

    /// Where it listens.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL the process: no shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some((pid, waiter)) = self.running.take() {
            // SAFETY: kill(2) on the pid of our own child, which `waiter` has not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            let _ = waiter.join();
        }
    }

    /// Start the process (again) on the same port and wait until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new(engine_binary());
        command.args(["--port", &self.port.to_string()]);
        command.args(&self.flags);
        if let Some(folder) = &self.db_path {
            command.arg("--db-path").arg(folder.join("engine.db"));
        }
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // The child gets SIGKILL when the thread that spawned it dies; that thread waits for
        // the child, so no instance outlives its handle or the process.
        let (spawned, started) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = spawned.send(Ok(child.id()));
                // Drain what it prints (its endpoint) so that it never blocks on a full pipe.
                if let Some(out) = child.stdout.take() {
                    for _ in BufReader::new(out).lines() {}
                }
                let _ = child.wait();
            }
            Err(e) => {
                let _ = spawned.send(Err(e));
            }
        });
        let pid = started
            .recv()
            .expect("the spawning thread answers")
            .expect("start the engine");
        self.running = Some((pid, waiter));
        until_listening(self.port, Duration::from_secs(60), "the local engine");
    }
}

/// Wait (polling) until a process of ours listens on loopback `port`; panic after `within`.
pub(crate) fn until_listening(port: u16, within: Duration, what: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + within;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A uniquely named table of its own for one test, deleted when dropped.
pub struct TestTable {
    /// The table's name.
    pub name: String,
    /// The engine's endpoint.
    pub endpoint: String,
    /// The SDK configuration for the engine.
    pub config: SdkConfig,
    /// A DynamoDB client for the engine.
    pub client: aws_sdk_dynamodb::Client,
    /// A DynamoDB Streams client for the engine.
    pub streams: aws_sdk_dynamodbstreams::Client,
}

impl TestTable {
    /// Create a fresh table as `contracts::table::TABLE` defines it.
    pub async fn new() -> Self {
        Self::on(local_engine()).await
    }

    /// Create a fresh table on the engine at `endpoint`.
    pub async fn on(endpoint: &str) -> Self {
        let endpoint = endpoint.to_owned();
        let config = sdk_config(&Endpoint {
            url: Some(endpoint.clone()),
        })
        .await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let streams = crate::departures::streams_client(&config);
        let name = format!("test-{:016x}", rand::rng().random::<u64>());
        match create_table(&client, &name).await {
            Ok(()) => {}
            // The name is unique to this test: "in use" means an attempt that timed out on a
            // busy engine did create it before the SDK retried.
            Err(aws_sdk_dynamodb::Error::ResourceInUseException(_)) => {}
            Err(e) => panic!("create table {name} on {endpoint}: {e:?}"),
        }
        Self {
            name,
            endpoint,
            config,
            client,
            streams,
        }
    }
}

impl TestTable {
    /// A table on an engine of its own, for a test whose load would hold up every other test's
    /// (the engine serializes writes): keep the instance while the table is used.
    pub async fn on_own_instance() -> (LocalInstance, Self) {
        let instance = LocalInstance::start(None);
        let table = Self::on(&instance.endpoint()).await;
        (instance, table)
    }

    /// Write `item` as it is (behind the API's back: fixtures and injected states).
    pub async fn put(&self, item: contracts::items::Item) {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .expect("put an item");
    }

    /// Delete the item at `key` (behind the API's back: an operator's removal).
    pub async fn delete(&self, key: &contracts::keys::ItemKey) {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(contracts::items::key_item(key)))
            .send()
            .await
            .expect("delete an item");
    }

    /// The item at `key`, read consistently.
    pub async fn get(&self, key: &contracts::keys::ItemKey) -> Option<contracts::items::Item> {
        self.client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(contracts::items::key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .expect("get an item")
            .item
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let (endpoint, name) = (self.endpoint.clone(), self.name.clone());
        // Drop cannot await, and the test's runtime (which drives the client's connections) is
        // blocked here: a short-lived runtime on its own thread, with its own client, deletes.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let config = sdk_config(&Endpoint {
                    url: Some(endpoint),
                })
                .await;
                let client = aws_sdk_dynamodb::Client::new(&config);
                let _ = client.delete_table().table_name(name).send().await;
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

/// Poll `probe` until it returns `Ok`, or panic at the deadline with `what` and the last
/// `Err` it gave. The way tests wait for eventual consistency.
pub async fn eventually<T, E, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not reached within {within:?}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Send SIGTERM to `child` and wait (polling) for it to exit; its exit status.
pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    eventually(
        "the process exits after SIGTERM",
        Duration::from_secs(20),
        || {
            let status = child.try_wait();
            async move {
                match status {
                    Ok(Some(status)) => Ok(status),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
}
