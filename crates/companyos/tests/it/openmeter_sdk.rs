//! The real OpenMeter and CloudEvents Python SDKs (from PyPI) against `companyos serve` on port
//! 0, on SQLite and PostgreSQL (CONTRACT §11): `tests/python/openmeter_sdk.py` sends
//! structured and batch CloudEvents and queries meters; then `examples/verify.rs` proves a
//! CloudEvents-sent event like a native one. The interpreter is `COMPANYOS_TEST_PYTHON` (set by
//! `.ci/run`); without it the test makes its own virtual environment, and fails loudly when it
//! cannot: it never passes without running the SDKs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{PgDatabase, Server, operator, tenant};

/// The repository root (two levels above this crate).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Python with the `openmeter` and `cloudevents` packages.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("COMPANYOS_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openmeter-sdk-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (install python3-venv, or set COMPANYOS_TEST_PYTHON)",
        );
    }
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--pre",
            "openmeter",
            "cloudevents",
        ]),
        "pip install --pre openmeter cloudevents",
    );
    python
}

/// `examples/verify` of companyos-ledger, built when `cargo test -p companyos` did not.
fn verify_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = examples.join(format!("verify{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        run(
            Command::new(cargo).current_dir(repository()).args([
                "build",
                "-p",
                "companyos-ledger",
                "--example",
                "verify",
            ]),
            "cargo build --example verify",
        );
    }
    path
}

#[test]
fn the_real_openmeter_and_cloudevents_sdks_work_against_companyos() {
    let python = python();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let pg = postgres.then(|| PgDatabase::create(&runtime));
        let env: Vec<(&str, &str)> = pg
            .as_ref()
            .map(|pg| vec![("COMPANYOS_DATABASE_URL", pg.url.as_str())])
            .unwrap_or_default();
        let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &env);
        tenant(&server, "acme");
        let billing = operator(&server, "billing-1", "billing");
        let ingest = operator(&server, "gateway", "ingest");
        let out = dir.path().join("verify");
        std::fs::create_dir_all(&out).unwrap();
        let printed = run(
            Command::new(&python)
                .arg(repository().join("tests/python/openmeter_sdk.py"))
                .env("COMPANYOS_URL", &server.url)
                .env("ADMIN_TOKEN", server.admin_token.as_deref().unwrap())
                .env("BILLING_TOKEN", &billing)
                .env("INGEST_TOKEN", &ingest)
                .env("TENANT", "acme")
                .env("OUT_DIR", &out),
            &format!("the SDK script (postgres: {postgres})"),
        );
        assert!(printed.contains("openmeter sdk checks passed"), "{printed}");
        let verified = run(
            Command::new(verify_binary())
                .arg("--proof")
                .arg(out.join("proof.json"))
                .arg("--verifier-key")
                .arg(out.join("key.txt"))
                .arg("--event")
                .arg(out.join("event.json")),
            "examples/verify on a CloudEvents-sent event",
        );
        assert!(!verified.is_empty());
        drop(server);
        if let Some(pg) = pg {
            pg.drop_with(&runtime);
        }
    }
}
