//! The tenant lifecycle (CONTRACT §4): suspend blocks every access path, delete and purge go
//! through a second person, ids are never reused.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{BACKENDS, TestServer, audit};

#[tokio::test]
async fn suspend_blocks_the_tenant_key_and_forward_auth_until_reactivation() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let key = server.tenant("acme").await;
        let tenant = server.api(&key);
        let (status, _, _) = tenant
            .raw(reqwest::Method::GET, "/v1/authz/check", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, headers, _) = tenant
            .raw(reqwest::Method::GET, "/v1/authz/check", None)
            .await;
        assert_eq!(headers["x-tenant-id"], "acme");
        let operator = server.operator("olga", "operator").await;
        let (status, body) = operator
            .post(
                "/v1/tenants/acme/suspend",
                json!({"reason": "unpaid invoice"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], json!("suspended"));
        for path in [
            "/v1/authz/check",
            "/v1/tenants/acme",
            "/v1/tenants/acme/ledger/checkpoint",
            "/v1/tenants/acme/usage/daily?from=2026-03-01&to=2026-03-02",
        ] {
            let (status, _, text) = tenant.raw(reqwest::Method::GET, path, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {path}: {text}");
        }
        // Suspending again is idempotent.
        let (status, body) = operator
            .post("/v1/tenants/acme/suspend", json!({"reason": "again"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["changed"], json!(false));
        let (status, _) = operator
            .post("/v1/tenants/acme/reactivate", json!({"reason": "paid"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = tenant
            .raw(reqwest::Method::GET, "/v1/authz/check", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = server
            .api("cos_tk_unknown")
            .raw(reqwest::Method::GET, "/v1/authz/check", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_requester_cannot_approve_and_ids_are_never_reused() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        // The requester is an admin that did not create anna (the two-person rule also
        // refuses an approver the requester created).
        let adam = server.operator("adam", "admin").await;
        let (status, body) = olga
            .post("/v1/tenants/acme/delete", json!({"reason": "churned"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], json!("confirm"), "{body}");
        let (status, body) = adam
            .post(
                "/v1/tenants/acme/delete",
                json!({"reason": "churned", "confirm": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["approval"]["status"], json!("pending"));
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        let (status, body) = adam
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        let (status, _) = olga
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an operator is not an approver"
        );
        let body = crate::checks::approve(&anna, &approval).await;
        assert_eq!(body["tenant"]["status"], json!("deleting"));
        let (_, body) = adam
            .post(
                "/v1/tenants/acme/purge",
                json!({"reason": "gone", "confirm": "acme"}),
            )
            .await;
        let purge = body["approval"]["id"].as_str().unwrap().to_owned();
        assert!(
            body["warnings"][0]
                .as_str()
                .unwrap()
                .contains("IRREVERSIBLE"),
            "{body}"
        );
        let (status, body) = anna
            .post(&format!("/v1/approvals/{purge}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["tenant"]["status"], json!("purged"));
        let certificate = body["evidence_id"].as_str().unwrap().to_owned();
        let (status, text) = server
            .admin()
            .text(&format!("/v1/evidence/{certificate}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["kind"], json!("deletion-certificate"));
        assert_eq!(
            document["approvals"].as_array().unwrap().len(),
            2,
            "{document}"
        );
        let (status, _) = server
            .admin()
            .post("/v1/tenants", json!({"id": "acme", "name": "Acme again"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let denied = audit(&server, "action=approval.approve&outcome=denied").await;
        assert_eq!(denied.len(), 2);
        server.stop().await;
    }
}

/// The names of a tenant object's `allowed_actions`.
fn action_names(tenant: &serde_json::Value) -> Vec<String> {
    tenant["allowed_actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no allowed_actions: {tenant}"))
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

/// What a console needs (issue 21): the actions this caller may take in this state, decided by
/// the policies and the state machine, and the pending approval; never reactivate on a purged
/// tenant.
#[tokio::test]
async fn the_tenant_names_the_actions_its_caller_may_take_and_its_pending_approval() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let key = server.tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let vera = server.operator("vera", "viewer").await;
        let anna = server.operator("anna", "approver").await;
        let (status, body) = olga.get("/v1/tenants/acme").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(action_names(&body), ["suspend", "delete"], "{backend:?}");
        assert_eq!(body["allowed_actions"][1]["needs_approval"], json!(true));
        assert_eq!(body["allowed_actions"][0]["needs_approval"], json!(false));
        assert_eq!(body["pending_approval"], json!(null));
        assert_eq!(body["retention"]["tombstone_days"], json!(30), "{body}");
        // A viewer and the tenant's own key may act on nothing.
        let (_, body) = vera.get("/v1/tenants").await;
        assert!(action_names(&body[0]).is_empty(), "{body}");
        let (_, body) = server.api(&key).get("/v1/tenants/acme").await;
        assert!(action_names(&body).is_empty(), "{body}");
        // A requested delete is pending: staff see it; the tenant changes only when approved.
        let (status, body) = olga
            .post(
                "/v1/tenants/acme/delete",
                json!({"reason": "churned", "confirm": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        let (_, body) = vera.get("/v1/tenants/acme").await;
        assert_eq!(body["pending_approval"]["id"], json!(approval), "{body}");
        let (_, body) = anna
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(body["tenant"]["status"], json!("deleting"), "{body}");
        let (_, body) = olga.get("/v1/tenants/acme").await;
        assert_eq!(action_names(&body), ["restore", "purge"], "{body}");
        assert_eq!(body["pending_approval"], json!(null));
        assert!(body["purge_after"].is_string(), "{body}");
        let (_, body) = olga
            .post(
                "/v1/tenants/acme/purge",
                json!({"reason": "gone", "confirm": "acme"}),
            )
            .await;
        let purge = body["approval"]["id"].as_str().unwrap().to_owned();
        let (_, body) = anna
            .post(&format!("/v1/approvals/{purge}/approve"), json!({}))
            .await;
        assert_eq!(body["tenant"]["status"], json!("purged"), "{body}");
        // Purged: nothing applies, not even for the admin.
        let (_, body) = server.admin().get("/v1/tenants/acme").await;
        assert!(action_names(&body).is_empty(), "{body}");
        server.stop().await;
    }
}
