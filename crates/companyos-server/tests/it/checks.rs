//! Shared checks of the deny-matrix, audit-coverage, lifecycle and boundary suites: what the
//! audit log gained from one call, evidence verified with minisign, approvals driven to the end.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, TestServer};

/// The seq of the newest audit record (-1 when the log is empty), read from the store.
pub async fn audit_head(server: &TestServer) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), -1) FROM audit_events")
        .fetch_one(server.app.db().readers())
        .await
        .expect("read the audit head")
}

/// The audit records written after `seq`, read through the API as the bootstrap admin (reads
/// write no audit record, so reading does not change what is read).
pub async fn audit_after(server: &TestServer, seq: i64) -> Vec<Value> {
    let (status, body) = server
        .admin()
        .get(&format!("/v1/audit?after={seq}&limit=10000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().expect("an array of audit records")
}

/// `(action, outcome)` of each record, in log order.
pub fn summary(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("?").to_owned(),
                r["outcome"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// Asserts that exactly `expected` (action, outcome) records were written after `before`;
/// returns them.
pub async fn assert_audited(
    server: &TestServer,
    before: i64,
    expected: &[(&str, &str)],
    what: &str,
) -> Vec<Value> {
    let records = audit_after(server, before).await;
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
        .collect();
    assert_eq!(
        summary(&records),
        expected,
        "{:?} {what}: audit records {records:#?}",
        server.backend
    );
    records
}

/// Fetches an artifact, its signature and the public key, checks the minisign signature with
/// nothing but the public key, and returns the artifact parsed as JSON.
pub async fn verified_evidence(server: &TestServer, reader: &Api, id: &str) -> Value {
    let (status, bytes) = reader.text(&format!("/v1/evidence/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{bytes}");
    let (status, signature) = reader.text(&format!("/v1/evidence/{id}/signature")).await;
    assert_eq!(status, StatusCode::OK, "{signature}");
    let (status, public_key) = server.anonymous().text("/v1/evidence/public-key").await;
    assert_eq!(status, StatusCode::OK);
    companyos_core::evidence::minisign::verify(public_key.trim(), bytes.as_bytes(), &signature)
        .unwrap_or_else(|e| panic!("evidence {id} does not verify: {e}"));
    // A changed byte does not verify.
    let mut tampered = bytes.clone().into_bytes();
    tampered[0] ^= 0x20;
    assert!(
        companyos_core::evidence::minisign::verify(public_key.trim(), &tampered, &signature)
            .is_err(),
        "a changed artifact must not verify"
    );
    serde_json::from_str(&bytes).expect("evidence is JSON")
}

/// Requests `action` (`delete` or `purge`) of `tenant` as `requester`; returns the approval id.
pub async fn request(requester: &Api, tenant: &str, action: &str) -> String {
    let (status, body) = requester
        .post(
            &format!("/v1/tenants/{tenant}/{action}"),
            json!({"confirm": tenant, "reason": format!("{action} requested by a test")}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action} {tenant}: {body}");
    assert_eq!(body["approval"]["status"], json!("pending"), "{body}");
    assert_eq!(
        body["approval"]["action"],
        json!(format!("tenant.{action}"))
    );
    body["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_owned()
}

/// Approves `approval` as `approver`; returns the response body.
pub async fn approve(approver: &Api, approval: &str) -> Value {
    let (status, body) = approver
        .post(
            &format!("/v1/approvals/{approval}/approve"),
            json!({"comment": "approved by a test"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "approve {approval}: {body}");
    assert_eq!(body["approval"]["status"], json!("executed"), "{body}");
    body
}

/// A tenant's status, read as the bootstrap admin.
pub async fn status_of(server: &TestServer, tenant: &str) -> String {
    let (status, body) = server.admin().get(&format!("/v1/tenants/{tenant}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["status"].as_str().expect("status").to_owned()
}

/// The id of the operator named `name`.
pub async fn operator_id(server: &TestServer, name: &str) -> String {
    let (status, list) = server.admin().get("/v1/operators").await;
    assert_eq!(status, StatusCode::OK);
    list.as_array()
        .expect("operators")
        .iter()
        .find(|o| o["name"] == json!(name))
        .and_then(|o| o["id"].as_str())
        .unwrap_or_else(|| panic!("no operator {name}"))
        .to_owned()
}
