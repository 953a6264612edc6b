//! Runs the real binary: servers as child processes on a free port, CLI commands with captured
//! output and exit codes. What the suites share (databases, event builders) is
//! `companyos-test-support`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use companyos_test_support::events::usage_event;
use serde_json::{Value, json};

pub use companyos_test_support::postgres::PgDatabase;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_companyos"))
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `companyos serve` child process.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub admin_token: Option<String>,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `serve` on `listen` and waits for "listening on".
    pub fn start(data_dir: &Path, listen: &str, extra_env: &[(&str, &str)]) -> Server {
        let stderr = match std::env::var_os("COMPANYOS_TEST_SERVER_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("server log file")),
            None => Stdio::null(),
        };
        Self::start_with_stderr(data_dir, listen, extra_env, stderr)
    }

    /// Starts `serve` with its stderr on `stderr` (a broken log sink in the tests of it).
    pub fn start_with_stderr(
        data_dir: &Path,
        listen: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .env("COMPANYOS_JOB_INTERVAL_SECONDS", "1")
            .env_remove("COMPANYOS_DATABASE_URL")
            .env_remove("COMPANYOS_TOKEN")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start companyos serve");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut admin_token = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            assert!(Instant::now() < deadline, "serve did not print its address");
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("serve exited before listening");
            }
            if let Some(token) = line.strip_prefix("admin token (shown once, keep it safe): ") {
                admin_token = Some(token.trim().to_owned());
            }
            if let Some(address) = line.strip_prefix("listening on ") {
                break address.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Server {
            child,
            url,
            admin_token,
            data_dir: data_dir.to_owned(),
        }
    }

    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a CLI command against `server` with `token`.
pub fn cli(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("COMPANYOS_URL", &server.url)
        .env("COMPANYOS_DATA_DIR", &server.data_dir)
        .env_remove("COMPANYOS_DATABASE_URL");
    match token {
        Some(token) => command.env("COMPANYOS_TOKEN", token),
        None => command.env_remove("COMPANYOS_TOKEN"),
    };
    command.output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Creates an operator through the CLI; returns its token.
pub fn operator(server: &Server, name: &str, role: &str) -> String {
    let output = cli(
        server,
        server.admin_token.as_deref(),
        &[
            "operator", "create", "--name", name, "--role", role, "--output", "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: Value = serde_json::from_str(&stdout(&output)).unwrap();
    value["token"].as_str().unwrap().to_owned()
}

/// Creates a tenant through the CLI; returns its API key.
pub fn tenant(server: &Server, id: &str) -> String {
    let output = cli(
        server,
        server.admin_token.as_deref(),
        &["tenant", "create", id, "--name", id, "--output", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: Value = serde_json::from_str(&stdout(&output)).unwrap();
    value["api_key"].as_str().unwrap().to_owned()
}

/// A valid event now.
pub fn event(tenant: &str, id: &str) -> Value {
    let mut event = usage_event(tenant, id, "1", time::OffsetDateTime::now_utc());
    event["request_id"] = json!(format!("r-{id}"));
    event
}
