//! The `conduit` binary as a child process: for what only a whole process shows (memory, signals,
//! exported traces, log lines, the command line).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::helpers::{JWT_SECRET, TestDb, test_database};

/// `conduit` with arguments and environment of a test; no variable of the test's own
/// environment leaks in.
pub fn conduit(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_conduit"));
    command.env_clear().args(args);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A served `conduit`, stopped (killed) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `conduit` on a fresh database of the tests (SQLite, or PostgreSQL with
    /// `TEST_DATABASE_URL`) with `env` added, and waits until it is ready. Its output (both
    /// streams) goes to a file that [`Server::log`] reads.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let (database_url, db) = test_database().await;
        Self::start_on(database_url, db, env).await
    }

    /// Like [`Server::start`], on a database `conduit seed` filled first with `seed_args`; the
    /// seed's output comes back too.
    pub async fn start_seeded(env: &[(&str, &str)], seed_args: &[&str]) -> (Self, String) {
        let (database_url, db) = test_database().await;
        let output = seed(&database_url, seed_args);
        assert!(
            output.status.success(),
            "seed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let server = Self::start_on(database_url, db, env).await;
        (server, String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `conduit` on a fresh SQLite database, whatever the tests run on.
    pub async fn start_sqlite(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("conduit.db").display());
        Self::start_on(url, TestDb::Sqlite(dir), env).await
    }

    async fn start_on(database_url: String, db: TestDb, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let log = dir.path().join("conduit.log");
        let output = std::fs::File::create(&log).expect("log file");
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec![
            ("DATABASE_URL", database_url.as_str()),
            ("CONDUIT_LISTEN", listen.as_str()),
            ("CONDUIT_JWT_SECRET", JWT_SECRET),
            ("CONDUIT_LOG", "warn"),
        ];
        all.extend_from_slice(env);
        let child = conduit(&[], &all)
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("the server starts");
        let mut server = Self {
            child,
            url: format!("http://{listen}"),
            log,
            _dir: dir,
            _db: db,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}: {}", self.log());
            }
            if client
                .get(format!("{}/health/ready", self.url))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready: {}", self.log());
    }

    /// Everything the server wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .expect("VmRSS")
            * 1024
    }

    /// Sends SIGTERM, as an orchestrator stopping the instance does.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Runs `conduit seed` with `args` on `database_url`.
pub fn seed(database_url: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["seed"];
    all.extend_from_slice(args);
    conduit(
        &all,
        &[("DATABASE_URL", database_url), ("CONDUIT_LOG", "warn")],
    )
    .output()
    .expect("conduit seed runs")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
