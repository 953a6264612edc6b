//! `companyos statement verify|generate|export` and `audit disclose` (CONTRACT §10): packs
//! written for finance verify offline with keys fetched from the server or given as files;
//! a changed byte exits 1 naming the file; bad usage exits 2.

use serde_json::Value;

use crate::support::{Server, cli, event, stderr, stdout, tenant};

#[test]
fn packs_are_generated_verified_and_tampering_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    tenant(&server, "acme");
    let events = dir.path().join("events.json");
    let batch = Value::Array(vec![event("acme", "e-1"), event("acme", "e-2")]);
    std::fs::write(&events, batch.to_string()).unwrap();
    let output = cli(
        &server,
        Some(&admin),
        &["usage", "send", events.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let now = time::OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", now.year(), now.month() as u8);
    let out = dir.path().join("packs");
    let output = cli(
        &server,
        Some(&admin),
        &[
            "statement",
            "generate",
            "--month",
            &month,
            "--all",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pack = out.join(format!("statement-pack-acme-{month}.zip"));
    let output = cli(
        &server,
        None,
        &["statement", "verify", pack.to_str().unwrap()],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("statement pack verified: acme"),
        "{}",
        stdout(&output)
    );

    // Keys as files (offline), and a pack changed by one byte: exit 1 naming the failure.
    let (_, public_key) = fetch(&server, "/v1/evidence/public-key");
    let (_, verifier) = fetch(&server, "/v1/ledger/verifier-key");
    let public_key_file = dir.path().join("minisign.pub");
    let verifier_file = dir.path().join("verifier.key");
    std::fs::write(&public_key_file, public_key).unwrap();
    std::fs::write(&verifier_file, verifier).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let tampered = dir.path().join("tampered.zip");
    // One changed byte inside the compressed files: an entry no longer unpacks or hashes.
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&tampered, &bytes).unwrap();
    let args = |path: &std::path::Path| {
        vec![
            "statement".to_owned(),
            "verify".to_owned(),
            path.to_str().unwrap().to_owned(),
            "--public-key".to_owned(),
            public_key_file.to_str().unwrap().to_owned(),
            "--verifier-key".to_owned(),
            verifier_file.to_str().unwrap().to_owned(),
        ]
    };
    let run = |path: &std::path::Path| {
        let args = args(path);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&server, None, &refs)
    };
    assert_eq!(run(&pack).status.code(), Some(0));
    let output = run(&tampered);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("FAILED"), "{}", stdout(&output));

    // The disclosure pack verifies the same way.
    let disclosure = dir.path().join("disclosure.zip");
    let day = format!("{month}-{:02}", now.day());
    let output = cli(
        &server,
        Some(&admin),
        &[
            "audit",
            "disclose",
            "--tenant",
            "acme",
            "--from",
            &day,
            "--to",
            &day,
            "--out",
            disclosure.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run(&disclosure);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("disclosure pack verified"),
        "{}",
        stdout(&output)
    );

    // Exports, and bad usage (exit 2).
    let output = cli(
        &server,
        Some(&admin),
        &[
            "statement",
            "export",
            "erp",
            "--tenant",
            "acme",
            "--month",
            &month,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("tenant_id,month,kind"));
    for bad in [
        vec![
            "statement",
            "generate",
            "--month",
            "2026-13",
            "--all",
            "--out",
            "x",
        ],
        vec!["statement", "generate", "--month", &month, "--out", "x"],
        vec![
            "statement",
            "export",
            "xml",
            "--tenant",
            "acme",
            "--month",
            &month,
        ],
    ] {
        let output = cli(&server, Some(&admin), &bad);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            stderr(&output)
        );
    }
}

fn fetch(server: &Server, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}
