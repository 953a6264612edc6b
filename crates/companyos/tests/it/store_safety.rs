//! Operational safety of the store commands (issue #20, points 10 and 11): secrets are written
//! 0600 whatever existed and never through a link, the SQLite files are private, a first
//! `serve` that cannot listen initialises nothing, `operator reset-admin` recovers a lost admin
//! token, and a read-only data dir fails at once with its reason.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{PgDatabase, Server, binary, free_port, stderr, stdout};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The binary with `args` on `data` (and `database_url`, when PostgreSQL).
fn store_command(data: &Path, database_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("COMPANYOS_DATABASE_URL")
        .env_remove("COMPANYOS_TOKEN");
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command.output().unwrap()
}

#[test]
fn init_tightens_an_existing_token_file_refuses_a_symlink_and_keeps_the_store_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A world-readable file already there: the token must not land in it readable.
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "old contents that are longer than nothing\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A link planted where the token goes: refused, its target untouched.
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "not a token\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("link.token");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = store_command(
        &data,
        None,
        &["init", "--admin-token-file", link.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a token\n");
    assert_eq!(mode(&target), 0o644);

    // Refused before the store was created: the token was never made, so none is lost.
    assert!(
        !data.join("companyos.db").exists(),
        "init created a token it could not write"
    );
    let output = store_command(
        &data,
        None,
        &["init", "--admin-token-file", token_file.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        token.starts_with("cos_op_") && token.ends_with('\n'),
        "{token}"
    );

    // The data dir and every SQLite file are private, also after a server wrote to them.
    let server = Server::start(&data, "127.0.0.1:0", &[]);
    let created = crate::support::cli(&server, Some(token.trim()), &["tenant", "list"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    assert_eq!(mode(&data), 0o700);
    for name in ["companyos.db", "companyos.db-wal", "companyos.db-shm"] {
        let path = data.join(name);
        assert!(path.exists(), "{name}");
        assert_eq!(mode(&path), 0o600, "{name}");
    }
    drop(server);
    // An existing store whose database file was left world-readable is tightened on start.
    std::fs::set_permissions(
        data.join("companyos.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let again = store_command(&data, None, &["init"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(mode(&data.join("companyos.db")), 0o600);
    assert_eq!(mode(&data), 0o700);
}

#[test]
fn a_first_serve_that_cannot_listen_initialises_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pg = postgres.then(|| PgDatabase::create(&runtime));
        let url = pg.as_ref().map(|pg| pg.url.clone());
        let output = store_command(&data, url.as_deref(), &["serve", "--listen", &listen]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(stderr(&output).contains(&listen), "{}", stderr(&output));
        assert!(
            !data.join("companyos.db").exists(),
            "the SQLite store was created"
        );
        if let Some(url) = &url {
            let tables: i64 = runtime.block_on(async {
                use sqlx::Connection as _;
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'operators'",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap()
            });
            assert_eq!(tables, 0, "the PostgreSQL store was initialised");
        }
        // The next start that can listen creates the store and shows the admin token.
        let server = match &url {
            Some(url) => Server::start(&data, "127.0.0.1:0", &[("COMPANYOS_DATABASE_URL", url)]),
            None => Server::start(&data, "127.0.0.1:0", &[]),
        };
        assert!(
            server.admin_token.is_some(),
            "the first real start shows the token"
        );
        drop(server);
        if let Some(pg) = pg {
            pg.drop_with(&runtime);
        }
    }
}

/// `GET path` with `token`: the status and the JSON body.
fn get(runtime: &tokio::runtime::Runtime, url: &str, token: &str) -> (u16, serde_json::Value) {
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    })
}

#[test]
fn reset_admin_issues_a_working_token_revokes_the_old_one_and_is_audited() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pg = postgres.then(|| PgDatabase::create(&runtime));
        let url = pg.as_ref().map(|pg| pg.url.clone());
        let env: Vec<(&str, &str)> = url
            .as_deref()
            .map(|url| vec![("COMPANYOS_DATABASE_URL", url)])
            .unwrap_or_default();
        let server = Server::start(&data, &format!("127.0.0.1:{}", free_port()), &env);
        let old = server.admin_token.clone().unwrap();
        let operators = format!("{}/v1/operators", server.url);
        assert_eq!(get(&runtime, &operators, &old).0, 200);

        // Reset while the server runs: the store is shared, the old token stops at once.
        let token_file = dir.path().join("new-admin.token");
        let reset_admin = |token_file: &std::path::Path| {
            let token_file = token_file.to_str().unwrap();
            let arguments = ["operator", "reset-admin", "--token-file", token_file];
            store_command(&data, url.as_deref(), &arguments)
        };
        let output = reset_admin(&token_file);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(mode(&token_file), 0o600);
        let new = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_owned();
        assert_ne!(new, old);
        // A token file that cannot take the token (a link) refuses before anything changes.
        let link = dir.path().join("link.token");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        let output = reset_admin(&link);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(!dir.path().join("elsewhere").exists());
        assert_eq!(
            get(&runtime, &operators, &old).0,
            401,
            "the old token is revoked"
        );
        let (status, listed) = get(&runtime, &operators, &new);
        assert_eq!(status, 200, "{listed}");
        let (status, audit) = get(
            &runtime,
            &format!("{}/v1/audit?action=operator.reset_admin", server.url),
            &new,
        );
        assert_eq!(status, 200, "{audit}");
        let records = audit.as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 1, "{audit}");
        assert_eq!(records[0]["actor"], "local:reset-admin");
        assert_eq!(records[0]["outcome"], "success");

        // Without a file the new token is printed once, and it too replaces the previous one.
        let output = store_command(&data, url.as_deref(), &["operator", "reset-admin"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let printed = stdout(&output)
            .lines()
            .find_map(|l| l.strip_prefix("admin token (shown once, keep it safe): "))
            .map(str::to_owned)
            .unwrap();
        assert_eq!(get(&runtime, &operators, &new).0, 401);
        assert_eq!(get(&runtime, &operators, &printed).0, 200);
        drop(server);
        if let Some(pg) = pg {
            pg.drop_with(&runtime);
        }
    }
}

/// Unmounts the read-only mount when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_data_dir_fails_at_once_naming_the_dir_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Tests run as root, for whom permission bits do not stop writes: a read-only mount does.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&data)
        .output();
    match mounted {
        Ok(output) if output.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED a_read_only_data_dir_fails_at_once: cannot mount a read-only tmpfs here ({other:?})"
            );
            return;
        }
    }
    let _mount = Mount(data.clone());
    for args in [&["init"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let started = Instant::now();
        let output = store_command(&data, None, args);
        let took = started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stdout(&output)
        );
        let message = stderr(&output);
        assert!(message.contains(&data.display().to_string()), "{message}");
        assert!(
            message.contains("not writable") && message.contains("Read-only"),
            "{message}"
        );
        // The pool's acquire timeout was 30 s; failing up front is far below that bound.
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
    }
}
