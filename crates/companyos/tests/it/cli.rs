//! The CLI surface (CONTRACT §1): init, serve, exit codes, client commands, store verification.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use serde_json::Value;

use crate::support::{Server, binary, cli, event, operator, stderr, stdout, tenant};

#[test]
fn init_is_idempotent_and_writes_the_token_file_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("admin.token");
    let run = || {
        Command::new(binary())
            .args(["init", "--data-dir"])
            .arg(&data)
            .arg("--admin-token-file")
            .arg(&token_file)
            .env_remove("COMPANYOS_DATABASE_URL")
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        token.starts_with("cos_op_") && token.trim().len() > 70,
        "{token}"
    );
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_mode = std::fs::metadata(data.join("keys/checkpoint.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let second = run();
    assert_eq!(second.status.code(), Some(0));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token,
        "later runs change nothing"
    );
    // The token from init works against serve on the same data dir.
    let server = Server::start(&data, "127.0.0.1:0", &[]);
    assert!(
        server.admin_token.is_none(),
        "serve does not print a token it did not create"
    );
    let output = cli(&server, Some(token.trim()), &["tenant", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    // Bad usage: unknown flag, missing argument.
    assert_eq!(
        cli(&server, Some(&admin), &["tenant", "list", "--no-such-flag"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        cli(&server, Some(&admin), &["tenant", "create"])
            .status
            .code(),
        Some(2)
    );
    // Input the server refuses (400) is bad usage too, with one line naming the field.
    let output = cli(
        &server,
        Some(&admin),
        &["tenant", "create", "Bad_Id", "--name", "x"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("id"), "{message}");
    // A denied operation fails (1).
    let viewer = operator(&server, "vera", "viewer");
    let output = cli(
        &server,
        Some(&viewer),
        &["tenant", "create", "acme", "--name", "Acme"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("403"), "{}", stderr(&output));
    // No token: 401, failure, and the one line says what to set.
    let output = cli(&server, None, &["tenant", "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("COMPANYOS_TOKEN") && stderr(&output).contains("--token"),
        "{}",
        stderr(&output)
    );
    let output = cli(&server, Some("cos_op_wrong"), &["tenant", "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown or revoked"),
        "{}",
        stderr(&output)
    );
    // A URL without a scheme is bad usage naming the setting, not "builder error".
    let output = Command::new(binary())
        .args([
            "tenant",
            "list",
            "--url",
            "127.0.0.1:8080",
            "--token",
            &admin,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("COMPANYOS_URL") && !stderr(&output).contains("builder"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stderr(&output).trim().lines().count(), 1);
    // A bad setting is bad usage, named at start-up in one line.
    let output = Command::new(binary())
        .args(["serve", "--late-window-hours", "0", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim().lines().count(),
        1,
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("late_window_hours"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn lifecycle_through_the_cli_with_an_approval() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    tenant(&server, "acme");
    let olga = operator(&server, "olga", "operator");
    let anna = operator(&server, "anna", "approver");
    let output = cli(
        &server,
        Some(&olga),
        &["tenant", "suspend", "acme", "--reason", "drill"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("suspended"));
    cli(
        &server,
        Some(&olga),
        &["tenant", "reactivate", "acme", "--reason", "drill"],
    );
    let output = cli(
        &server,
        Some(&olga),
        &[
            "tenant",
            "delete",
            "acme",
            "--reason",
            "drill",
            "--confirm",
            "acme",
            // The old name of --output, kept for scripts.
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pending: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let approval = pending["approval"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        cli(&server, Some(&olga), &["approval", "approve", &approval])
            .status
            .code(),
        Some(1)
    );
    let output = cli(
        &server,
        Some(&anna),
        &["approval", "approve", &approval, "--comment", "ok"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = cli(
        &server,
        Some(&admin),
        &["tenant", "show", "acme", "--output", "json"],
    );
    let shown: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(shown["status"], "deleting");
    let output = cli(
        &server,
        Some(&admin),
        &["tenant", "list", "--status", "deleting"],
    );
    assert!(stdout(&output).contains("acme"), "{}", stdout(&output));
}

#[test]
fn usage_send_reports_and_ledger_verify_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    tenant(&server, "acme");
    let ingest = operator(&server, "meter", "ingest");
    // A JSON array file, streamed in batches of 7.
    let mut events: Vec<Value> = (0..50).map(|i| event("acme", &format!("e{i}"))).collect();
    events.push(events[3].clone());
    let mut bad = event("acme", "bad");
    bad["quantity"] = Value::String("-1".to_owned());
    events.push(bad);
    let file = dir.path().join("events.json");
    std::fs::write(&file, serde_json::to_string(&events).unwrap()).unwrap();
    let output = cli(
        &server,
        Some(&ingest),
        &["usage", "send", file.to_str().unwrap(), "--batch-size", "7"],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "a rejected event makes the send fail"
    );
    let text = stdout(&output);
    assert!(
        text.contains("50 accepted, 1 duplicates, 0 late, 1 rejected"),
        "{text}"
    );
    assert!(
        text.contains("event #51 (bad): rejected quantity"),
        "{text}"
    );
    // stderr is a pipe here, not a terminal: no `\r` progress counter in it.
    assert!(!stderr(&output).contains('\r'), "{:?}", stderr(&output));
    // NDJSON, all duplicates now: success.
    let ndjson = dir.path().join("events.ndjson");
    let lines: Vec<String> = events[..10].iter().map(Value::to_string).collect();
    std::fs::write(&ndjson, lines.join("\n")).unwrap();
    let output = cli(
        &server,
        Some(&ingest),
        &["usage", "send", ndjson.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("0 accepted, 10 duplicates"),
        "{}",
        stdout(&output)
    );
    // Reports in three formats.
    let today = companyos_domain::time_util::format_day(time::OffsetDateTime::now_utc().date());
    for format in ["table", "json", "csv"] {
        let output = cli(
            &server,
            Some(&admin),
            &[
                "usage", "report", "--tenant", "acme", "--from", &today, "--to", &today,
                "--output", format,
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{format}: {}",
            stderr(&output)
        );
        assert!(
            stdout(&output).contains("50"),
            "{format}: {}",
            stdout(&output)
        );
        if format == "csv" {
            // One CSV table: one header line, the daily usage by default.
            let text = stdout(&output);
            assert_eq!(
                text.lines().filter(|l| l.starts_with("date,")).count(),
                1,
                "{text}"
            );
            assert!(text.contains("metric"), "{text}");
        }
    }
    let output = cli(
        &server,
        Some(&admin),
        &[
            "usage",
            "report",
            "--tenant",
            "acme",
            "--from",
            &today,
            "--to",
            &today,
            "--output",
            "csv",
            "--what",
            "reconciliation",
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        text.starts_with("date,") && text.contains("accepted"),
        "{text}"
    );
    assert!(!text.contains("metric"), "{text}");
    // A proof through the CLI.
    let output = cli(
        &server,
        Some(&admin),
        &["ledger", "proof", "--tenant", "acme", "--event-id", "e7"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let proof: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(proof["leaf_index"], 7);
    // The store verifies; then one changed byte in a stored leaf is found, naming tenant and leaf.
    let verify = |args: &[&str]| {
        Command::new(binary())
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("COMPANYOS_DATABASE_URL")
            .output()
            .unwrap()
    };
    // One-shot commands log at warn by default, and the progress bar hides itself when stderr
    // is not a terminal: nothing on stderr when all is well.
    for command in [["ledger", "verify"], ["audit", "verify"]] {
        let output = verify(&command);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{command:?}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{command:?}");
    }
    let db = format!("sqlite://{}", data.join("companyos.db").display());
    // Usage leaves are stored by what varies (bundles::LeafLayout::Usage): the event id after
    // its length byte.
    tamper_leaf_data(&db, "tenant/acme", b"\x03e12", b"\x03e99");
    let output = verify(&["ledger", "verify", "--tenant", "acme"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("tenant acme leaf 12"),
        "{}",
        stdout(&output)
    );
    tamper(
        &db,
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
    );
    let output = verify(&["audit", "verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("audit record 2"),
        "{}",
        stdout(&output)
    );
}

/// Replaces the first occurrence of `find` in a log's stored leaf data (same length).
fn tamper_leaf_data(url: &str, log_id: &str, find: &[u8], replace: &[u8]) {
    assert_eq!(find.len(), replace.len());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::{Connection as _, Row as _};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        let rows = sqlx::query(
            "SELECT first_index, leaf_data FROM ledger_leaf_bundles WHERE log_id = $1 \
             ORDER BY first_index",
        )
        .bind(log_id)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for row in &rows {
            let mut data: Vec<u8> = row.get("leaf_data");
            let Some(at) = data.windows(find.len()).position(|w| w == find) else {
                continue;
            };
            data[at..at + find.len()].copy_from_slice(replace);
            let result = sqlx::query(
                "UPDATE ledger_leaf_bundles SET leaf_data = $1 WHERE log_id = $2 \
                 AND first_index = $3",
            )
            .bind(data)
            .bind(log_id)
            .bind(row.get::<i64, _>("first_index"))
            .execute(&mut conn)
            .await
            .unwrap();
            assert_eq!(result.rows_affected(), 1);
            return;
        }
        panic!("{log_id}: no leaf holds {find:?}");
    });
}

fn tamper(url: &str, sql: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        let result = sqlx::query(sql).execute(&mut conn).await.unwrap();
        assert_eq!(result.rows_affected(), 1, "{sql}");
    });
}

#[test]
fn metering_check_lints_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "service = \"api\"\n[[metrics]]\nname = \"requests\"\nunit = \"request\"\naggregation = \"sum\"\ndescription = \"HTTP requests served\"\n").unwrap();
    let output = Command::new(binary())
        .args(["metering", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "service = \"Api\"\n[[metrics]]\nname = \"requests\"\nunit = \"\"\naggregation = \"avg\"\n",
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["metering", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for field in [
        "service",
        "metrics[0].unit",
        "metrics[0].aggregation",
        "metrics[0].description",
    ] {
        assert!(text.contains(field), "{field} named in: {text}");
    }
}

#[test]
fn sigterm_shuts_down_gracefully_and_the_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    tenant(&server, "acme");
    assert_eq!(server.terminate(), Some(0));
    let server = Server::start(&data, "127.0.0.1:0", &[]);
    let output = cli(&server, Some(&admin), &["tenant", "show", "acme"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// The demo's evidence verifies with Debian's minisign from its public key file alone
/// (`minisign -V -p FILE`: the standard two-line key file).
#[test]
fn the_demo_evidence_verifies_with_minisign_and_its_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo-output");
    let output = Command::new(binary())
        .arg("demo")
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .env_remove("COMPANYOS_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // Quiet by default: no INFO lines (COMPANYOS_LOG=info brings them back).
    assert!(!stderr(&output).contains("INFO"), "{}", stderr(&output));
    let evidence = out.join("evidence");
    let key = std::fs::read_to_string(evidence.join("minisign.pub")).unwrap();
    assert!(key.starts_with("untrusted comment: "), "{key}");
    assert_eq!(key.lines().count(), 2, "{key}");
    let mut verified = 0;
    for entry in std::fs::read_dir(&evidence).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let status = Command::new("minisign")
                .arg("-V")
                .arg("-q")
                .arg("-p")
                .arg(evidence.join("minisign.pub"))
                .arg("-m")
                .arg(&path)
                .status()
                .expect("minisign is required (.ci/run installs it)");
            assert!(status.success(), "{}", path.display());
            verified += 1;
        }
    }
    assert!(verified >= 5, "{verified} artifacts verified");
    // The demo's store has its own log name; opening it without says which setting to use.
    let verify = |extra: &[&str]| {
        Command::new(binary())
            .args(["ledger", "verify", "--data-dir"])
            .arg(out.join("store"))
            .args(extra)
            .env_remove("COMPANYOS_DATABASE_URL")
            .env_remove("COMPANYOS_LOG_NAME")
            .output()
            .unwrap()
    };
    let output = verify(&[]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("--log-name demo.companyos.local"),
        "{message}"
    );
    let output = verify(&["--log-name", "demo.companyos.local"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_missing_postgres_database_is_one_line_that_says_how_to_create_it() {
    let server = companyos_test_support::postgres::server_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    let name = format!("companyos_missing_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .args(["init", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--database-url", &format!("{base}/{name}")])
        .env_remove("COMPANYOS_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(message.matches("does not exist").count(), 1, "{message}");
    assert!(
        message.contains("createdb -h ") && message.contains(&format!("CREATE DATABASE {name}")),
        "{message}"
    );
}
