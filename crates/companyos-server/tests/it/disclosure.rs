//! The disclosure pack (issue 17, ADM-3, CONTRACT §10): every audit record about a tenant in
//! the range, each exactly once, with proofs that verify offline; auditors and admins only,
//! every other caller 403 and audited; on both engines.

use std::collections::BTreeMap;

use companyos_core::statements::verify::verify_disclosure;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::checks::{approve, request};
use crate::statement_pack::{bytes, trusted_keys};
use crate::support::{BACKENDS, TestServer, audit};

#[tokio::test]
async fn every_lifecycle_action_appears_exactly_once_in_the_disclosure_pack() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let operator = server.operator("olga", "operator").await;
        let approver = server.operator("anna", "approver").await;
        let auditor = server.operator("audrey", "auditor").await;
        let key = server.tenant("acme").await;
        server.tenant("globex").await;
        for action in ["suspend", "reactivate"] {
            let (status, body) = operator
                .post(
                    &format!("/v1/tenants/acme/{action}"),
                    json!({"reason": "a test"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{action}: {body}");
        }
        let approval = request(&operator, "acme", "delete").await;
        approve(&approver, &approval).await;
        let (status, body) = operator
            .post("/v1/tenants/acme/restore", json!({"reason": "a test"}))
            .await;
        assert_eq!(status, StatusCode::OK, "restore: {body}");
        // A denied attempt is about the tenant too.
        let viewer = server.operator("vera", "viewer").await;
        let (status, _) = viewer
            .post(
                "/v1/tenants/acme/suspend",
                json!({"reason": "not mine to do"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let expected: Vec<Value> = audit(&server, "tenant_id=acme").await;
        let actions: Vec<&str> = expected
            .iter()
            .filter_map(|r| r["action"].as_str())
            .collect();
        for action in [
            "tenant.create",
            "tenant.suspend",
            "tenant.reactivate",
            "tenant.delete",
            "tenant.restore",
        ] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        let (status, pack) = bytes(
            &server,
            auditor.token.as_deref().unwrap_or_default(),
            "/v1/tenants/acme/disclosure?from=2026-03-01&to=2026-03-31",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&pack));
        let summary = verify_disclosure(&pack, &trusted_keys(&server).await)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &summary.record_ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
        for record in &expected {
            let id = record["id"].as_str().unwrap_or_default();
            assert_eq!(
                seen.get(id),
                Some(&1),
                "{} {id} once in the pack",
                record["action"]
            );
        }
        assert_eq!(
            summary.record_ids.len(),
            expected.len(),
            "only records about acme"
        );

        // Everyone else: 403, audited.
        let (status, _) = operator
            .get("/v1/tenants/acme/disclosure?from=2026-03-01&to=2026-03-31")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = server
            .api(&key)
            .get("/v1/tenants/acme/disclosure?from=2026-03-01&to=2026-03-31")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let disclosures = audit(&server, "action=tenant.disclose").await;
        let outcomes: Vec<&str> = disclosures
            .iter()
            .filter_map(|r| r["outcome"].as_str())
            .collect();
        assert_eq!(
            outcomes,
            ["success", "denied", "denied"],
            "{disclosures:#?}"
        );
        let (status, body) = auditor
            .get("/v1/tenants/acme/disclosure?from=2026-03-31&to=2026-03-01")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errors"][0]["field"], json!("to"));
        server.stop().await;
    }
}
