//! Audit coverage (issues 3 and 6): every mutating call writes exactly one audit record naming
//! its action (an approval that runs its action: two, the decision and the action), every
//! lifecycle action and every denial is found once; reads write nothing; tampering with a stored
//! record is found by `audit().verify`; the audit log's checkpoint opens with the verifier key.

use companyos_ledger::{Checkpoint, NoteVerifier};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

use crate::checks::{approve, assert_audited, audit_after, audit_head, request};
use crate::support::{BACKENDS, START, TestServer, event};

/// Runs one call and asserts the audit records it wrote, by (action, outcome); returns the
/// response.
async fn audited(
    server: &TestServer,
    call: impl std::future::Future<Output = (StatusCode, Value)>,
    expected_status: StatusCode,
    expected: &[(&str, &str)],
    what: &str,
) -> Value {
    let before = audit_head(server).await;
    let (status, body) = call.await;
    assert_eq!(
        status, expected_status,
        "{:?} {what}: {body}",
        server.backend
    );
    assert_audited(server, before, expected, what).await;
    body
}

#[tokio::test]
async fn every_mutation_and_every_denial_writes_exactly_one_audit_record() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        let s = &server;

        // Operators.
        let created = audited(
            s,
            admin.post("/v1/operators", json!({"name": "olga", "role": "operator"})),
            StatusCode::CREATED,
            &[("operator.create", "success")],
            "operator create",
        )
        .await;
        let olga = server.api(created["token"].as_str().unwrap());
        let anna = server.operator("anna", "approver").await;
        let vera = server.operator("vera", "viewer").await;
        let ian = server.operator("ian", "ingest").await;
        let gone = server.operator("gone", "viewer").await;
        let gone_id = crate::checks::operator_id(s, "gone").await;
        audited(
            s,
            admin.call(
                Method::POST,
                &format!("/v1/operators/{gone_id}/revoke"),
                None,
            ),
            StatusCode::OK,
            &[("operator.revoke", "success")],
            "operator revoke",
        )
        .await;
        audited(
            s,
            gone.get("/v1/tenants"),
            StatusCode::UNAUTHORIZED,
            &[("auth.authenticate", "denied")],
            "a revoked token",
        )
        .await;

        // Tenant lifecycle: create, workloads, regions, retention, suspend, reactivate.
        let body = audited(
            s,
            olga.post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme", "plan": "standard",
                       "home_region": "eu-west-1", "allowed_regions": ["eu-west-1", "eu-central-1"]}),
            ),
            StatusCode::CREATED,
            &[("tenant.create", "success")],
            "tenant create",
        )
        .await;
        let key = server.api(body["api_key"].as_str().unwrap());
        audited(
            s,
            olga.put("/v1/tenants/acme/workloads/web", json!({"replicas": 3})),
            StatusCode::OK,
            &[("tenant.workloads.update", "success")],
            "workloads update",
        )
        .await;
        audited(
            s,
            olga.post("/v1/tenants/acme/regions", json!({"add": ["eu-central-1"]})),
            StatusCode::OK,
            &[("tenant.regions.update", "success")],
            "regions update",
        )
        .await;
        audited(
            s,
            olga.put(
                "/v1/tenants/acme/retention",
                json!({"tombstone_days": 10, "reason": "contract"}),
            ),
            StatusCode::OK,
            &[("tenant.retention.update", "success")],
            "retention update",
        )
        .await;
        audited(
            s,
            olga.post("/v1/tenants/acme/suspend", json!({"reason": "unpaid"})),
            StatusCode::OK,
            &[("tenant.suspend", "success")],
            "suspend",
        )
        .await;
        // An idempotent repeat is still one (audited) call.
        let again = audited(
            s,
            olga.post("/v1/tenants/acme/suspend", json!({"reason": "unpaid"})),
            StatusCode::OK,
            &[("tenant.suspend", "success")],
            "suspend again",
        )
        .await;
        assert_eq!(again["changed"], json!(false));
        audited(
            s,
            olga.post("/v1/tenants/acme/reactivate", json!({"reason": "paid"})),
            StatusCode::OK,
            &[("tenant.reactivate", "success")],
            "reactivate",
        )
        .await;

        // Delete through an approval, restore, delete again, purge through an approval.
        let body = audited(
            s,
            olga.post(
                "/v1/tenants/acme/delete",
                json!({"confirm": "acme", "reason": "churned"}),
            ),
            StatusCode::ACCEPTED,
            &[("approval.request", "success")],
            "delete request",
        )
        .await;
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        let before = audit_head(s).await;
        approve(&anna, &approval).await;
        let records = assert_audited(
            s,
            before,
            &[
                ("approval.approve", "success"),
                ("tenant.delete", "success"),
            ],
            "approve a delete",
        )
        .await;
        assert_eq!(records[0]["actor"], json!("anna"));
        assert_eq!(records[0]["target"], json!(format!("approval:{approval}")));
        assert_eq!(records[1]["actor"], json!("anna"));
        assert_eq!(records[1]["details"]["requested_by"], json!("olga"));
        assert_eq!(records[1]["details"]["approval_id"], json!(approval));
        assert_eq!(records[1]["tenant_id"], json!("acme"));
        audited(
            s,
            olga.post("/v1/tenants/acme/restore", json!({"reason": "came back"})),
            StatusCode::OK,
            &[("tenant.restore", "success")],
            "restore",
        )
        .await;
        let approval = request(&olga, "acme", "delete").await;
        crate::checks::approve(&anna, &approval).await;
        let body = audited(
            s,
            olga.post(
                "/v1/tenants/acme/purge",
                json!({"confirm": "acme", "reason": "gone for good"}),
            ),
            StatusCode::ACCEPTED,
            &[("approval.request", "success")],
            "purge request",
        )
        .await;
        let purge = body["approval"]["id"].as_str().unwrap().to_owned();
        audited(
            s,
            anna.post(&format!("/v1/approvals/{purge}/approve"), json!({})),
            StatusCode::OK,
            &[("approval.approve", "success"), ("tenant.purge", "success")],
            "approve a purge",
        )
        .await;
        assert_eq!(
            key.get("/v1/tenants/acme").await.0,
            StatusCode::UNAUTHORIZED
        );

        // Reject.
        s.create_tenant("beta").await;
        let approval = request(&olga, "beta", "delete").await;
        audited(
            s,
            anna.post(
                &format!("/v1/approvals/{approval}/reject"),
                json!({"comment": "no"}),
            ),
            StatusCode::OK,
            &[("approval.reject", "success")],
            "reject",
        )
        .await;

        // Retry of a failed provisioning: the boundary directory cannot be created while a file
        // stands in its place.
        let blocker = server.app.data_dir().join("tenants").join("gamma");
        std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
        std::fs::write(&blocker, b"in the way").unwrap();
        let body = audited(
            s,
            olga.post("/v1/tenants", json!({"id": "gamma", "name": "Gamma"})),
            StatusCode::INTERNAL_SERVER_ERROR,
            &[("tenant.create", "failed")],
            "a failed provisioning",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("boundary"),
            "{body}"
        );
        assert_eq!(
            crate::checks::status_of(s, "gamma").await,
            "provisioning_failed"
        );
        std::fs::remove_file(&blocker).unwrap();
        let body = audited(
            s,
            olga.call(Method::POST, "/v1/tenants/gamma/retry", None),
            StatusCode::OK,
            &[("tenant.retry", "success")],
            "retry",
        )
        .await;
        assert_eq!(body["status"], json!("active"), "{body}");

        // Usage, sources, metering, evidence.
        audited(
            s,
            ian.post("/v1/events", json!([event("beta", "e1", "1", START)])),
            StatusCode::OK,
            &[("usage.ingest", "success")],
            "ingest",
        )
        .await;
        audited(
            s,
            ian.post(
                "/v1/sources",
                json!({"id": "gw-1", "service": "api",
                       "public_key": companyos_sdk::SourceKey::generate("gw-1").public_key_base64()}),
            ),
            StatusCode::CREATED,
            &[("source.create", "success")],
            "source create",
        )
        .await;
        audited(
            s,
            ian.put(
                "/v1/services/api/metering",
                json!({"metrics": [{"name": "requests", "unit": "request", "aggregation": "sum",
                                    "description": "one API request"}]}),
            ),
            StatusCode::OK,
            &[("metering.declare", "success")],
            "metering declare",
        )
        .await;
        audited(
            s,
            admin.put("/v1/metering/coverage", json!({"mode": "enforce"})),
            StatusCode::OK,
            &[("metering.coverage.update", "success")],
            "deployment coverage mode",
        )
        .await;
        audited(
            s,
            admin.put("/v1/services/api/coverage", json!({"mode": "warn"})),
            StatusCode::OK,
            &[("metering.coverage.update", "success")],
            "service coverage mode",
        )
        .await;
        audited(
            s,
            olga.post(
                "/v1/tenants/beta/integrity-report",
                json!({"from": "2026-03-01", "to": "2026-03-02"}),
            ),
            StatusCode::CREATED,
            &[("evidence.create", "success")],
            "integrity report",
        )
        .await;

        // Denials: one record each, outcome denied.
        for (what, method, path, body, who, action) in [
            (
                "viewer suspends",
                Method::POST,
                "/v1/tenants/beta/suspend",
                Some(json!({"reason": "x"})),
                &vera,
                "tenant.suspend",
            ),
            (
                "viewer creates an operator",
                Method::POST,
                "/v1/operators",
                Some(json!({"name": "x1", "role": "admin"})),
                &vera,
                "operator.create",
            ),
            (
                "ingest reads the audit log",
                Method::GET,
                "/v1/audit",
                None,
                &ian,
                "audit.read",
            ),
            (
                "operator adds a region outside residency",
                Method::POST,
                "/v1/tenants/beta/regions",
                Some(json!({"add": ["us-east-1"]})),
                &olga,
                "tenant.regions.update",
            ),
            (
                "viewer reads evidence",
                Method::GET,
                "/v1/evidence",
                None,
                &vera,
                "evidence.read",
            ),
        ] {
            audited(
                s,
                who.call(method, path, body),
                StatusCode::FORBIDDEN,
                &[(action, "denied")],
                what,
            )
            .await;
        }

        // Failed attempts (bad input, illegal transitions) are audited once too.
        audited(
            s,
            olga.post("/v1/tenants/beta/delete", json!({"reason": "x"})),
            StatusCode::BAD_REQUEST,
            &[("tenant.delete", "failed")],
            "delete without confirm",
        )
        .await;
        audited(
            s,
            olga.post("/v1/tenants/beta/restore", json!({"reason": "x"})),
            StatusCode::CONFLICT,
            &[("tenant.restore", "failed")],
            "restore of an active tenant",
        )
        .await;

        // Expiry: one record per expired approval, by the system.
        let pending = request(&olga, "beta", "delete").await;
        server.clock.advance(Duration::hours(73));
        let before = audit_head(s).await;
        assert_eq!(server.app.approvals().expire().await.unwrap(), 1);
        let records = assert_audited(s, before, &[("approval.expire", "success")], "expiry").await;
        assert_eq!(records[0]["target"], json!(format!("approval:{pending}")));
        assert_eq!(records[0]["actor"], json!("system:approval-expiry"));

        // Reads write nothing.
        let before = audit_head(s).await;
        for path in [
            "/v1/tenants",
            "/v1/tenants/beta",
            "/v1/tenants/beta/workloads",
            "/v1/tenants/beta/provisioning",
            "/v1/tenants/beta/usage/daily?from=2026-03-01&to=2026-03-02",
            "/v1/tenants/beta/reconciliation?from=2026-03-01&to=2026-03-02",
            "/v1/tenants/beta/ledger/checkpoint",
            "/v1/tenants/beta/ledger/proof?event_id=e1",
            "/v1/approvals",
            "/v1/operators",
            "/v1/policies",
            "/v1/sources",
            "/v1/services",
            "/v1/metering/coverage",
            "/v1/audit",
            "/v1/audit/checkpoint",
            "/v1/evidence",
        ] {
            let (status, _, text) = admin.raw(Method::GET, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {text}");
        }
        assert!(audit_after(s, before).await.is_empty());

        // Each lifecycle action, by action name, is in the log exactly as often as it ran.
        for (action, outcome, count) in [
            ("tenant.create", "success", 2),
            ("tenant.suspend", "success", 2),
            ("tenant.reactivate", "success", 1),
            ("approval.request", "success", 5),
            ("approval.approve", "success", 3),
            ("approval.reject", "success", 1),
            ("approval.expire", "success", 1),
            ("tenant.delete", "success", 2),
            ("tenant.restore", "success", 1),
            ("tenant.purge", "success", 1),
            ("tenant.regions.update", "success", 1),
            ("tenant.workloads.update", "success", 1),
            ("tenant.retention.update", "success", 1),
            ("tenant.retry", "success", 1),
        ] {
            let records =
                crate::support::audit(s, &format!("action={action}&outcome={outcome}")).await;
            assert_eq!(
                records.len(),
                count,
                "{backend:?} {action} {outcome}: {records:#?}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn tampering_with_a_stored_audit_record_is_found_and_the_checkpoint_opens() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let vera = server.operator("vera", "viewer").await;
        olga.post("/v1/tenants/acme/suspend", json!({"reason": "x"}))
            .await;
        vera.post("/v1/tenants/acme/reactivate", json!({"reason": "x"}))
            .await;
        let head = audit_head(&server).await;
        assert!(head >= 4, "{head}");

        // The signed checkpoint of the audit log opens with the published verifier key.
        let (status, key_text) = server.anonymous().text("/v1/ledger/verifier-key").await;
        assert_eq!(status, StatusCode::OK);
        let verifier = NoteVerifier::parse(key_text.trim()).unwrap();
        let (status, note) = server.admin().text("/v1/audit/checkpoint").await;
        assert_eq!(status, StatusCode::OK, "{note}");
        let checkpoint =
            Checkpoint::open(note.as_bytes(), Some("companyos.local/audit"), &verifier)
                .unwrap_or_else(|e| panic!("{backend:?} audit checkpoint: {e}\n{note}"));
        assert_eq!(checkpoint.tree_size(), u64::try_from(head + 1).unwrap());
        // A changed note does not open.
        let forged = note.replacen(&format!("\n{}\n", head + 1), &format!("\n{}\n", head), 1);
        assert_ne!(forged, note);
        assert!(Checkpoint::open(forged.as_bytes(), None, &verifier).is_err());
        // Nor with another key.
        let other = companyos_ledger::NoteSigner::new(
            companyos_ledger::note::KeyName::parse("companyos.local").unwrap(),
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .verifier();
        assert!(Checkpoint::open(note.as_bytes(), None, &other).is_err());

        assert!(
            server.app.audit().verify().await.unwrap().is_empty(),
            "{backend:?}: an untouched log verifies"
        );
        sqlx::query("UPDATE audit_events SET reason = 'x' WHERE seq = 3")
            .execute(server.app.db().readers())
            .await
            .unwrap();
        let problems = server.app.audit().verify().await.unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.log_id == "audit" && p.leaf_index == Some(3)),
            "{backend:?} {problems:?}"
        );
        assert!(
            problems.iter().all(|p| p.leaf_index == Some(3)),
            "only seq 3 is named: {problems:?}"
        );
        // A deleted record is found too.
        sqlx::query("DELETE FROM audit_events WHERE seq = 1")
            .execute(server.app.db().readers())
            .await
            .unwrap();
        let problems = server.app.audit().verify().await.unwrap();
        assert!(
            problems.iter().any(|p| p.leaf_index == Some(1)),
            "{backend:?} {problems:?}"
        );
        server.stop().await;
    }
}
