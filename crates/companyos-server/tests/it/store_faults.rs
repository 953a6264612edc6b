//! The store failing under a running server: a full disk (SQLite on a small tmpfs) and a
//! PostgreSQL server that drops every connection (as a restart does). While writes fail the
//! server answers 503 and `/readyz` says not ready; once the store is back it recovers by
//! itself, with no restart, and nothing accepted before is lost.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::support::{Api, Backend, START, TestServer, event};

/// A tmpfs of `size` mounted on a fresh folder; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where this machine cannot mount one (not root, or no mount namespace rights).
    fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Tmpfs {
            path,
            _parent: parent,
        })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {}", self.path.display());
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn batch(from: usize, count: usize) -> Value {
    Value::Array(
        (from..from + count)
            .map(|i| {
                let mut e = event("acme", &format!("evt-{i:08}"), "1.5", START);
                // Bulk, so the disk fills in a few batches.
                e["request_id"] = json!(format!("req-{i:08}-{}", "x".repeat(110)));
                e
            })
            .collect(),
    )
}

async fn readyz(server: &TestServer) -> StatusCode {
    server.anonymous().get("/readyz").await.0
}

/// Everything a writer does, answered as it should be once the store is back (readiness comes
/// back by itself within a few seconds of the last failure).
async fn writes_work(server: &TestServer, ingest: &Api, next_event: usize) {
    let mut ready = false;
    for _ in 0..100 {
        if readyz(server).await == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz comes back");
    let (status, body) = ingest.post("/v1/events", batch(next_event, 10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], json!(10), "{body}");
    let (status, body) = server
        .admin()
        .post("/v1/tenants/acme/suspend", json!({"reason": "store back"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .admin()
        .post(
            "/v1/tenants/acme/reactivate",
            json!({"reason": "store back"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server.api("not-a-token").get("/v1/tenants").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_503_and_not_ready_then_recovers_without_a_restart() {
    let Some(disk) = Tmpfs::mount("6m") else {
        eprintln!(
            "SKIPPED a_full_disk_gives_503_and_not_ready_then_recovers_without_a_restart: \
             cannot mount a tmpfs here (needs root)"
        );
        return;
    };
    let data_dir = disk.path().join("data");
    let server = TestServer::start_with(Backend::Sqlite, |settings| {
        settings.data_dir = data_dir.clone();
    })
    .await;
    server.tenant("acme").await;
    let ingest = server.operator("meter", "ingest").await;
    server.clock.set(START + Duration::minutes(1));

    // Fill the disk.
    let mut next_event = 0;
    let mut accepted_before_full = 0;
    let mut failed = None;
    for _ in 0..400 {
        let (status, body) = ingest.post("/v1/events", batch(next_event, 500)).await;
        next_event += 500;
        if status != StatusCode::OK {
            failed = Some((status, body));
            break;
        }
        accepted_before_full += body["accepted"].as_u64().unwrap();
    }
    let (status, body) = failed.expect("the disk fills up");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(accepted_before_full > 0);

    // While writes fail: 503s with problem bodies, never 500, and not ready.
    let (status, body) = server
        .admin()
        .post("/v1/tenants/acme/suspend", json!({"reason": "disk full"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(readyz(&server).await, StatusCode::SERVICE_UNAVAILABLE);

    // Space comes back: everything works again, with no restart.
    disk.resize("256m");
    writes_work(&server, &ingest, next_event).await;
    let (_, daily) = server
        .admin()
        .get("/v1/tenants/acme/usage/daily?from=2026-03-02&to=2026-03-02")
        .await;
    assert_eq!(
        daily[0]["events"],
        json!(accepted_before_full + 10),
        "nothing accepted is lost: {daily}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropping_every_connection_is_survived_without_a_restart() {
    let server = TestServer::start(Backend::Postgres).await;
    server.tenant("acme").await;
    let ingest = server.operator("meter", "ingest").await;
    server.clock.set(START + Duration::minutes(1));
    let (status, body) = ingest.post("/v1/events", batch(0, 100)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let database = server.database_name().unwrap().to_owned();
    for round in 0..3 {
        // What a restart does to the server's sessions: every one of them ends.
        let admin = sqlx::PgPool::connect(&crate::support::postgres_server_url())
            .await
            .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
        // The first requests may meet a dead connection (503, never 500), then recover.
        let mut recovered = false;
        for _ in 0..20 {
            let (status, body) = ingest
                .post("/v1/events", batch(1000 + round * 100, 10))
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
                "{status} {body}"
            );
            if status == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(recovered, "ingestion recovers in round {round}");
        writes_work(&server, &ingest, 5000 + round * 100).await;
    }
    server.stop().await;
}
