//! Audit hooks (LIFE-1): a tenant's audit records are delivered to its webhook, signed; and the
//! ledger keeps answering proofs after purge; forward auth refuses operator tokens by policy.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::boundaries::{signature_headers, tenant_with_audit_webhook};
use crate::support::{BACKENDS, START, TestServer, allow_loopback, audit, event};

#[tokio::test]
async fn a_tenants_audit_records_reach_its_webhook_signed() {
    for backend in BACKENDS {
        let server = TestServer::start_with(backend, allow_loopback).await;
        let (received, receiver, secret) = tenant_with_audit_webhook(&server, "acme").await;
        server
            .admin()
            .post("/v1/tenants/acme/suspend", json!({"reason": "hook test"}))
            .await;
        let queued = server.app.jobs().enqueue_audit_hooks().await.unwrap();
        assert_eq!(queued, 2, "tenant.create and tenant.suspend of acme");
        assert_eq!(
            server.app.jobs().enqueue_audit_hooks().await.unwrap(),
            0,
            "each record once"
        );
        server.app.jobs().deliver_outbox().await.unwrap();
        let deliveries = received.0.lock().unwrap().clone();
        let actions: Vec<String> = deliveries
            .iter()
            .filter_map(|(headers, body)| {
                let (timestamp, signature) = signature_headers(headers);
                assert!(
                    companyos_core::lifecycle::boundary::verify_webhook_signature(
                        &secret, timestamp, timestamp, body, signature
                    ),
                    "signed with the tenant's hook secret"
                );
                let value: Value = serde_json::from_slice(body).ok()?;
                (value["topic"] == json!("audit.record"))
                    .then(|| value["payload"]["action"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(actions, ["tenant.create", "tenant.suspend"], "{backend:?}");
        receiver.abort();
        server.stop().await;
    }
}

#[tokio::test]
async fn proofs_still_answer_after_purge_and_operators_cannot_use_forward_auth() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let events: Vec<Value> = (0..5)
            .map(|i| event("acme", &format!("e{i}"), "1", START))
            .collect();
        ingest.post("/v1/events", json!(events)).await;
        let (status, _, _) = server
            .admin()
            .raw(reqwest::Method::GET, "/v1/authz/check", None)
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an admin token is not a tenant key"
        );
        let denied = audit(&server, "action=authz.check&outcome=denied").await;
        assert_eq!(denied.len(), 1);
        assert_eq!(
            denied[0]["details"]["policies"],
            json!(["forward-auth-is-for-tenant-keys"])
        );
        let approver = server.operator("anna", "approver").await;
        let requester = server.operator("olga", "operator").await;
        for action in ["delete", "purge"] {
            let (_, body) = requester
                .post(
                    &format!("/v1/tenants/acme/{action}"),
                    json!({"reason": "test", "confirm": "acme"}),
                )
                .await;
            let id = body["approval"]["id"].as_str().unwrap().to_owned();
            let (status, body) = approver
                .post(&format!("/v1/approvals/{id}/approve"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (status, proof) = server
            .admin()
            .get("/v1/tenants/acme/ledger/proof?event_id=e3")
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {proof}");
        assert_eq!(proof["leaf_index"], json!(3));
        assert!(proof["checkpoint"].is_string());
        let (status, _) = server
            .admin()
            .get("/v1/tenants/acme/ledger/proof?event_id=nope")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}
