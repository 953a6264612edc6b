//! README.md's "First steps" run as written: the operator's first hour must work word for word.

use std::process::Command;

use crate::support::{PgDatabase, Server, binary, stderr, stdout};

const README: &str = include_str!("../../../../README.md");

/// The fenced blocks of `language` in the README section that starts with `heading`.
fn blocks(heading: &str, language: &str) -> Vec<String> {
    let section = README
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let fence = format!("```{language}\n");
    section
        .split(fence.as_str())
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .map(str::to_owned)
        .collect()
}

/// Runs the second block of "First steps" against a server on `data` (and PostgreSQL when
/// `database_url` is given), from a folder laid out like a clone after `cargo build --release`.
fn first_steps(database_url: Option<&str>) {
    let steps = blocks("First steps", "sh");
    assert_eq!(steps.len(), 2, "build-and-serve, then the client steps");
    // The first block is what the test does itself (the build is the binary under test).
    for line in [
        "cargo build --release",
        "export PATH=\"$PWD/target/release:$PATH\"",
        "companyos serve",
    ] {
        assert!(steps[0].contains(line), "{line:?} in {}", steps[0]);
    }
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    std::fs::create_dir_all(clone.join("target/release")).unwrap();
    std::os::unix::fs::symlink(binary(), clone.join("target/release/companyos")).unwrap();
    let mut env = Vec::new();
    if let Some(url) = database_url {
        env.push(("COMPANYOS_DATABASE_URL", url));
    }
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &env);
    let admin = server
        .admin_token
        .clone()
        .expect("a fresh store prints its token");
    assert!(steps[1].contains("<admin token>"), "{}", steps[1]);
    let script = steps[1].replace("<admin token>", &admin);
    let output = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .current_dir(&clone)
        .env("COMPANYOS_URL", &server.url)
        .env_remove("COMPANYOS_TOKEN")
        .env_remove("COMPANYOS_DATABASE_URL")
        .env_remove("COMPANYOS_DATA_DIR")
        .output()
        .unwrap();
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("api key (shown once)"), "{out}");
    assert!(out.contains("denied (exit 1)"), "{out}");
    assert!(err.contains("403"), "{err}");
    assert!(out.contains("\"outcome\":\"denied\""), "{out}");
    assert!(
        out.contains("Signature and comment signature verified"),
        "{out}\n{err}"
    );

    // The metering declaration of the README lints and registers as shown.
    let declarations = blocks("Metering declarations", "toml");
    assert_eq!(declarations.len(), 1);
    let path = dir.path().join("search.toml");
    std::fs::write(&path, &declarations[0]).unwrap();
    for (command, token) in [("check", None), ("declare", Some(admin.as_str()))] {
        let mut run = Command::new(binary());
        run.args(["metering", command])
            .arg(&path)
            .env("COMPANYOS_URL", &server.url)
            .env_remove("COMPANYOS_TOKEN");
        if let Some(token) = token {
            run.env("COMPANYOS_TOKEN", token);
        }
        let output = run.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "metering {command}: {}{}",
            stdout(&output),
            stderr(&output)
        );
    }
    // Table mode prints tables: the coverage findings, the tenants with their allowed regions.
    let run = |args: &[&str]| {
        let output = Command::new(binary())
            .args(args)
            .env("COMPANYOS_URL", &server.url)
            .env("COMPANYOS_TOKEN", &admin)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        stdout(&output)
    };
    let coverage = run(&["metering", "coverage"]);
    assert!(coverage.starts_with("coverage mode: warn\n"), "{coverage}");
    assert!(
        coverage.contains("PROBLEM") && coverage.contains("declared, never seen"),
        "{coverage}"
    );
    let tenants = run(&["tenant", "list"]);
    assert!(tenants.contains("ALLOWED_REGIONS"), "{tenants}");
    assert!(tenants.contains("eu-west-1,eu-central-1"), "{tenants}");
}

#[test]
fn readme_first_steps_work_as_written_on_sqlite() {
    first_steps(None);
}

#[test]
fn readme_first_steps_work_as_written_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = PgDatabase::create(&runtime);
    first_steps(Some(&database.url));
    database.drop_with(&runtime);
}
