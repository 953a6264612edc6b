//! The CLI's front door: every command and flag described, one output flag, completions, and
//! errors that say what to do.

use std::process::Command;

use crate::support::{binary, free_port, stderr, stdout};

/// `companyos <path> --help`, which must succeed.
fn long_help(path: &[String]) -> String {
    let output = Command::new(binary())
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{path:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Checks one command's help and recurses into its subcommands; returns the commands seen.
fn check_command(path: Vec<String>, seen: &mut Vec<String>) {
    let help = long_help(&path);
    let lines: Vec<&str> = help.lines().collect();
    let mut section = "";
    let mut subcommands = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if section == "Commands:" && indent == 2 {
            let name = trimmed.split_whitespace().next().unwrap_or("");
            let described = trimmed.len() > name.len() && !trimmed[name.len()..].trim().is_empty();
            assert!(described, "{path:?}: command {name} has no description");
            if name != "help" {
                subcommands.push(name.to_owned());
            }
        } else if (section == "Arguments:" || section.contains("ptions"))
            && (2..=6).contains(&indent)
            && (trimmed.starts_with('-') || trimmed.starts_with('<') || trimmed.starts_with('['))
        {
            // Long help puts the description on the next line, indented further.
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                next.starts_with("          ") && !next.trim().is_empty(),
                "{path:?}: {trimmed} has no description"
            );
        }
    }
    seen.push(path.join(" "));
    for name in subcommands {
        let mut sub = path.clone();
        sub.push(name);
        check_command(sub, seen);
    }
}

#[test]
fn every_command_and_flag_has_a_description_and_globals_have_their_own_heading() {
    let mut seen = Vec::new();
    check_command(Vec::new(), &mut seen);
    for command in [
        "tenant create",
        "usage report",
        "operator reset-admin",
        "completions",
    ] {
        assert!(
            seen.iter().any(|s| s == command),
            "{command} not in {seen:?}"
        );
    }
    let top = long_help(&[]);
    // Global flags apart from the commands, the client's apart from the server's.
    let commands_at = top.find("Commands:").unwrap();
    for heading in ["Global options:", "Client options", "Server options"] {
        assert!(top.find(heading).unwrap() > commands_at, "{heading}\n{top}");
    }
    // One output flag; --token is optional in the usage line; examples in the long help.
    assert!(top.contains("--output <OUTPUT>"), "{top}");
    assert!(
        !top.contains("--format <"),
        "--format is a hidden alias: {top}"
    );
    let usage = top.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(!usage.contains("--token"), "{usage}");
    assert!(top.contains("Examples:"), "{top}");
    // The short help of a client command leaves the server settings out; the long one has them.
    let short = Command::new(binary())
        .args(["tenant", "create", "-h"])
        .output()
        .unwrap();
    assert!(
        !stdout(&short).contains("--late-window-hours"),
        "{}",
        stdout(&short)
    );
    assert!(stdout(&short).contains("--plan"), "{}", stdout(&short));
    let create = long_help(&["tenant".into(), "create".into()]);
    assert!(create.contains("--late-window-hours"), "{create}");
    for default in ["[default: standard]", "[default: the home region]"] {
        assert!(create.contains(default), "{create}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shell}: {}",
            stderr(&output)
        );
        let script = stdout(&output);
        assert!(
            script.contains("tenant") && script.contains("--output"),
            "{shell}"
        );
    }
    let script = Command::new(binary())
        .args(["completions", "bash"])
        .output()
        .unwrap()
        .stdout;
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), script).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(path.path())
        .status()
        .unwrap();
    assert!(check.success(), "the bash completion script does not parse");
    let output = Command::new(binary())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn csv_is_refused_where_a_command_prints_no_rows() {
    // Refused before any request: no server needed.
    let output = Command::new(binary())
        .args([
            "tenant",
            "list",
            "--output",
            "csv",
            "--url",
            "http://127.0.0.1:9",
        ])
        .env_remove("COMPANYOS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("usage report"), "{message}");
}

#[test]
fn a_server_that_does_not_answer_is_one_line_naming_the_setting() {
    // A port that was free a moment ago: nothing listens there.
    let url = format!("http://127.0.0.1:{}", free_port());
    let output = Command::new(binary())
        .args(["tenant", "list", "--url", &url, "--token", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains("companyos serve") && message.contains("COMPANYOS_URL"),
        "{message}"
    );
}
