//! The statement pack (issue 17, CONTRACT §10): the untouched pack verifies with only the keys
//! the server publishes (and its manifest with Debian's `minisign -V`); any changed byte, a
//! removed event or a swapped checkpoint fails naming the file; the PDF's text has the totals.

use std::collections::BTreeMap;
use std::io::Write as _;

use companyos_core::statements::verify::{PackFailure, TrustedKeys, unzip, verify_pack};
use reqwest::StatusCode;
use serde_json::json;
use time::macros::datetime;

use crate::statements::{close_through, march_with_usage};
use crate::support::{BACKENDS, TestServer, audit};

pub async fn bytes(server: &TestServer, token: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request reaches the server");
    let status = response.status();
    (status, response.bytes().await.expect("body").to_vec())
}

pub async fn trusted_keys(server: &TestServer) -> TrustedKeys {
    let (_, public_key) = server.anonymous().text("/v1/evidence/public-key").await;
    let (_, verifier) = server.anonymous().text("/v1/ledger/verifier-key").await;
    TrustedKeys {
        minisign_public_key: public_key
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned(),
        note_verifier: companyos_ledger::note::NoteVerifier::parse(verifier.trim())
            .expect("verifier key"),
    }
}

fn zip_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        writer
            .start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        writer.write_all(bytes).expect("zip write");
    }
    writer.finish().expect("zip").into_inner()
}

/// Re-signs a changed pack with the server's own key: what a forger who stole the key could
/// do, so the checks behind the signature are exercised too.
fn resign(server: &TestServer, files: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    files.remove("MANIFEST");
    files.remove("MANIFEST.minisig");
    let manifest: String = files
        .iter()
        .map(|(name, b)| format!("{}  {name}\n", companyos_ledger::hash::sha256(b).to_hex()))
        .collect();
    let signature = server
        .app
        .keys()
        .minisign
        .sign(manifest.as_bytes(), "forged");
    files.insert("MANIFEST".into(), manifest.into_bytes());
    files.insert("MANIFEST.minisig".into(), signature.into_bytes());
    zip_files(files)
}

fn failure(
    result: Result<companyos_core::statements::verify::PackSummary, PackFailure>,
) -> PackFailure {
    match result {
        Ok(summary) => panic!("a tampered pack verified: {summary:?}"),
        Err(failure) => failure,
    }
}

#[tokio::test]
async fn a_pack_verifies_and_every_tampering_is_named() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        march_with_usage(&server).await;
        close_through(&server, datetime!(2026-04-03 00:30 UTC)).await;
        let (status, pack) = bytes(
            &server,
            &server.admin_token,
            "/v1/tenants/acme/statements/2026-03/pack",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let keys = trusted_keys(&server).await;
        let summary = verify_pack(&pack, &keys).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.total, "34.84");
        assert_eq!(summary.status, "final");
        assert_eq!(summary.events, 2);
        assert!(summary.audit_records >= 2, "{summary:?}");
        assert_eq!(audit(&server, "action=statement.pack").await.len(), 1);

        let files = unzip(&pack).expect("unzips");
        let expected: Vec<&str> = vec![
            "MANIFEST",
            "MANIFEST.minisig",
            "README.txt",
            "audit-checkpoint.txt",
            "audit.ndjson",
            "checkpoint.txt",
            "events.ndjson",
            "plan.json",
            "policies/global.cedar",
            "policies/tenant.cedar",
            "proofs.json",
            "statement.csv",
            "statement.json",
            "statement.pdf",
        ];
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            expected
        );

        // Debian's minisign verifies the manifest with the published key.
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["MANIFEST", "MANIFEST.minisig"] {
            std::fs::write(dir.path().join(name), &files[name]).expect("write");
        }
        let output = std::process::Command::new("minisign")
            .args(["-V", "-P", &keys.minisign_public_key, "-m"])
            .arg(dir.path().join("MANIFEST"))
            .arg("-x")
            .arg(dir.path().join("MANIFEST.minisig"))
            .output()
            .expect("minisign runs (apt-get install minisign)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        // The PDF's text carries the totals.
        std::fs::write(dir.path().join("statement.pdf"), &files["statement.pdf"]).expect("write");
        let text = std::process::Command::new("pdftotext")
            .arg(dir.path().join("statement.pdf"))
            .arg("-")
            .output()
            .expect("pdftotext runs (apt-get install poppler-utils)");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("Total: 34.84 USD"), "{text}");
        assert!(text.contains("Base fee: 33.19 USD"), "{text}");

        // Any changed byte of any file fails, naming the file (the manifest: its signature).
        for name in files.keys() {
            let mut changed = files.clone();
            let content = changed.get_mut(name).expect("file");
            let middle = content.len() / 2;
            content[middle] ^= 0x01;
            let got = failure(verify_pack(&zip_files(&changed), &keys));
            let named = if name == "MANIFEST" {
                "MANIFEST.minisig"
            } else {
                name.as_str()
            };
            assert_eq!(got.file, named, "{name}: {got}");
        }

        // A removed event, even behind a valid signature, no longer adds up.
        let mut removed = files.clone();
        let events = String::from_utf8(removed["events.ndjson"].clone()).expect("utf-8");
        let kept: String = events.lines().skip(1).map(|l| format!("{l}\n")).collect();
        removed.insert("events.ndjson".into(), kept.into_bytes());
        let mut proofs: Vec<serde_json::Value> =
            serde_json::from_slice(&removed["proofs.json"]).expect("json");
        proofs.remove(0);
        removed.insert(
            "proofs.json".into(),
            serde_json::to_vec(&proofs).expect("json"),
        );
        let got = failure(verify_pack(&resign(&server, &mut removed), &keys));
        assert_eq!(got.file, "events.ndjson", "{got}");

        // A swapped checkpoint (another signed one of the same log) is named.
        let admin = server.admin();
        let (status, body) = admin
            .post(
                "/v1/events",
                json!([crate::support::event(
                    "acme",
                    "e-9",
                    "1",
                    datetime!(2026-04-02 10:00 UTC)
                )]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, newer) = admin.text("/v1/tenants/acme/ledger/checkpoint").await;
        let mut swapped = files.clone();
        swapped.insert("checkpoint.txt".into(), newer.into_bytes());
        let got = failure(verify_pack(&resign(&server, &mut swapped), &keys));
        assert_eq!(got.file, "checkpoint.txt", "{got}");

        // Keys from the pack are never trusted: another deployment's key fails.
        let other = companyos_core::evidence::minisign::MinisignKey::generate();
        let wrong = TrustedKeys {
            minisign_public_key: other.public_key_base64(),
            ..keys.clone()
        };
        assert_eq!(failure(verify_pack(&pack, &wrong)).file, "MANIFEST.minisig");
        server.stop().await;
    }
}
