//! The whole tenant lifecycle (issue 6) on both stores: create with a signed dossier, workloads,
//! suspend and reactivate (replicas remembered, boundary marked), delete through an approval,
//! restore, delete again, the purge timer after the tombstone with a signed deletion
//! certificate, the ledger still verifiable afterwards; approvals that expire.

use companyos_ledger::{Checkpoint, NoteVerifier};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

use crate::checks::{approve, assert_audited, audit_head, request, status_of, verified_evidence};
use crate::support::{Api, BACKENDS, START, TestServer, event};

async fn workloads(api: &Api, tenant: &str) -> Vec<(String, i64, Option<i64>)> {
    let (status, body) = api.get(&format!("/v1/tenants/{tenant}/workloads")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["replicas"].as_i64().unwrap(),
                w["suspended_replicas"].as_i64(),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, i64, Option<i64>)]) -> Vec<(String, i64, Option<i64>)> {
    rows.iter()
        .map(|(n, r, s)| ((*n).to_owned(), *r, *s))
        .collect()
}

async fn forward_auth(key: &Api) -> StatusCode {
    key.raw(Method::GET, "/v1/authz/check", None).await.0
}

async fn verifier(server: &TestServer) -> NoteVerifier {
    let (status, text) = server.anonymous().text("/v1/ledger/verifier-key").await;
    assert_eq!(status, StatusCode::OK);
    NoteVerifier::parse(text.trim()).unwrap()
}

#[tokio::test]
async fn a_tenant_from_creation_to_purge() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        let audrey = server.operator("audrey", "auditor").await;
        let ian = server.operator("ian", "ingest").await;

        // Create: 201, the API key once, a signed dossier.
        let (status, created) = olga
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme GmbH", "plan": "standard",
                       "home_region": "eu-west-1", "allowed_regions": ["eu-west-1", "eu-central-1"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?} {created}");
        assert_eq!(created["status"], json!("active"));
        assert_eq!(created["retention"]["tombstone_days"], json!(30));
        let key = server.api(created["api_key"].as_str().unwrap());
        assert!(created["api_key"].as_str().unwrap().starts_with("cos_tk"));
        let (_, shown) = olga.get("/v1/tenants/acme").await;
        assert!(shown.get("api_key").is_none(), "the key is shown only once");
        let dossier_id = created["dossier_evidence_id"].as_str().unwrap().to_owned();
        let dossier = verified_evidence(&server, &audrey, &dossier_id).await;
        assert_eq!(dossier["kind"], json!("tenant-dossier"));
        assert_eq!(dossier["tenant"]["id"], json!("acme"));
        assert_eq!(dossier["tenant"]["status"], json!("active"));
        assert_eq!(dossier["generated_by"], json!("olga"));
        assert!(
            !dossier["audit_event_ids"].as_array().unwrap().is_empty(),
            "{dossier}"
        );
        assert!(dossier["keys"]["api_key_fingerprint"].is_string());
        assert!(
            dossier["policies"]["tenant_policy_text"]
                .as_str()
                .unwrap()
                .contains("eu-central-1")
        );
        let steps: Vec<&str> = dossier["provisioning_run"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for step in ["boundary", "baseline-policies", "api-key", "dossier"] {
            assert!(steps.contains(&step), "{step} in {steps:?}");
        }
        // The directory boundary lives under the data dir: <data_dir>/tenants/<id>/.
        let boundary = server.dir.path().join("data").join("tenants").join("acme");
        assert_eq!(
            created["boundary"]["path"],
            json!(boundary.display().to_string())
        );
        assert!(boundary.is_dir(), "{}", boundary.display());
        assert_eq!(forward_auth(&key).await, StatusCode::OK);

        // Workloads and usage.
        for (name, replicas) in [("web", 3), ("worker", 2)] {
            let (status, body) = olga
                .put(
                    &format!("/v1/tenants/acme/workloads/{name}"),
                    json!({"replicas": replicas}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let running = owned(&[("web", 3, None), ("worker", 2, None)]);
        assert_eq!(workloads(&olga, "acme").await, running);
        let events: Vec<Value> = (1..=5)
            .map(|i| event("acme", &format!("e{i}"), "2", START))
            .collect();
        let (status, body) = ian.post("/v1/events", json!(events)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["accepted"], json!(5), "{body}");

        // Suspend: workloads to zero and remembered, the boundary marked, the key refused.
        let (status, body) = olga
            .post(
                "/v1/tenants/acme/suspend",
                json!({"reason": "invoice 42 unpaid"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], json!("suspended"));
        assert_eq!(
            workloads(&olga, "acme").await,
            owned(&[("web", 0, Some(3)), ("worker", 0, Some(2))])
        );
        let marker = boundary.join("SUSPENDED");
        assert!(marker.is_file(), "{backend:?} {}", marker.display());
        assert!(
            std::fs::read_to_string(&marker)
                .unwrap()
                .contains("invoice 42 unpaid")
        );
        assert_eq!(forward_auth(&key).await, StatusCode::FORBIDDEN);

        // Reactivate: the replicas exactly as before.
        let (status, body) = olga
            .post("/v1/tenants/acme/reactivate", json!({"reason": "paid"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(workloads(&olga, "acme").await, running);
        assert!(!marker.exists());
        assert_eq!(forward_auth(&key).await, StatusCode::OK);

        // Delete through an approval: deleting, the key refused, restorable.
        let approval = request(&olga, "acme", "delete").await;
        assert_eq!(
            status_of(&server, "acme").await,
            "active",
            "not before approval"
        );
        let body = approve(&anna, &approval).await;
        assert_eq!(body["tenant"]["status"], json!("deleting"), "{body}");
        let purge_after = body["tenant"]["purge_after"].as_str().unwrap().to_owned();
        assert_eq!(
            purge_after,
            companyos_domain::time_util::format_rfc3339(START + Duration::days(30))
        );
        assert_eq!(forward_auth(&key).await, StatusCode::FORBIDDEN);
        assert_eq!(key.get("/v1/tenants/acme").await.0, StatusCode::FORBIDDEN);
        assert!(marker.exists());
        assert_eq!(
            workloads(&olga, "acme").await,
            owned(&[("web", 0, Some(3)), ("worker", 0, Some(2))])
        );

        // Restore: active again, everything back.
        let (status, body) = olga
            .post(
                "/v1/tenants/acme/restore",
                json!({"reason": "changed their mind"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], json!("active"));
        assert!(body["purge_after"].is_null(), "{body}");
        assert_eq!(workloads(&olga, "acme").await, running);
        assert!(!marker.exists(), "restored: the boundary is open again");
        assert_eq!(forward_auth(&key).await, StatusCode::OK);

        // Delete again; the purge timer waits for the whole tombstone.
        let approval = request(&olga, "acme", "delete").await;
        approve(&anna, &approval).await;
        server.clock.advance(Duration::days(29));
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.clock.advance(Duration::days(2));
        let before = audit_head(&server).await;
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 1);
        let records =
            assert_audited(&server, before, &[("tenant.purge", "success")], "timer").await;
        assert_eq!(records[0]["actor"], json!("system:purge-timer"));
        assert_eq!(status_of(&server, "acme").await, "purged");
        assert!(!boundary.exists(), "the boundary directory is removed");

        // The deletion certificate: signed, naming what was deleted and what was retained.
        let (status, list) = audrey
            .get("/v1/evidence?tenant_id=acme&kind=deletion-certificate")
            .await;
        assert_eq!(status, StatusCode::OK);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        let certificate =
            verified_evidence(&server, &audrey, list[0]["id"].as_str().unwrap()).await;
        assert_eq!(certificate["kind"], json!("deletion-certificate"));
        assert_eq!(certificate["tenant"]["id"], json!("acme"));
        assert_eq!(certificate["purged_by"], json!("system:purge-timer"));
        assert_eq!(certificate["deleted"]["usage_event_payloads"], json!(5));
        assert_eq!(certificate["deleted"]["api_keys_revoked"], json!(1));
        assert_eq!(certificate["deleted"]["workloads"], json!(2));
        assert!(
            certificate["deleted"]["boundary"]["removed"]
                .as_str()
                .unwrap()
                .ends_with("tenants/acme"),
            "{certificate:#}"
        );
        let retained = certificate["retained"].to_string();
        for what in ["ledger leaves", "audit records", "tenant id"] {
            assert!(retained.contains(what), "{what}: {retained}");
        }
        assert_eq!(
            certificate["approvals"].as_array().unwrap().len(),
            2,
            "both executed delete approvals: {certificate:#}"
        );
        let verifier = verifier(&server).await;
        let last = Checkpoint::open(
            certificate["final_checkpoint"].as_str().unwrap().as_bytes(),
            Some("companyos.local/tenants/acme"),
            &verifier,
        )
        .unwrap();
        assert_eq!(last.tree_size(), 5);

        // After purge: the ledger verifies, operators still get its checkpoint and proofs, the
        // key is gone.
        let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
        assert!(problems.is_empty(), "{backend:?}: {problems:?}");
        let (status, note) = olga.text("/v1/tenants/acme/ledger/checkpoint").await;
        assert_eq!(status, StatusCode::OK, "{note}");
        let checkpoint = Checkpoint::open(
            note.as_bytes(),
            Some("companyos.local/tenants/acme"),
            &verifier,
        )
        .unwrap();
        assert_eq!(checkpoint.tree_size(), 5);
        assert_eq!(checkpoint.root(), last.root());
        let (status, consistency) = olga
            .get("/v1/tenants/acme/ledger/consistency?from=2&to=5")
            .await;
        assert_eq!(status, StatusCode::OK, "{consistency}");
        assert_eq!(
            key.get("/v1/tenants/acme").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(forward_auth(&key).await, StatusCode::UNAUTHORIZED);
        assert!(workloads(&olga, "acme").await.is_empty());
        // Usage rollups are retained.
        let (_, daily) = olga
            .get("/v1/tenants/acme/usage/daily?from=2026-03-02&to=2026-03-02")
            .await;
        assert_eq!(daily[0]["quantity"], json!("10"), "{daily}");
        // A second run changes nothing.
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        server.stop().await;
    }
}

#[tokio::test]
async fn approvals_expire_after_their_ttl() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        server.create_tenant("beta").await;
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        let first = request(&olga, "acme", "delete").await;
        let second = request(&olga, "beta", "delete").await;
        // Just before the TTL they can still be decided (we only look).
        server.clock.advance(Duration::hours(71));
        assert_eq!(server.app.approvals().expire().await.unwrap(), 0);
        let (_, pending) = anna.get("/v1/approvals?status=pending").await;
        assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");

        server.clock.advance(Duration::hours(2));
        let (_, pending) = anna.get("/v1/approvals?status=pending").await;
        assert_eq!(pending, json!([]), "past their time they read as expired");
        let before = audit_head(&server).await;
        let (status, body) = anna
            .post(&format!("/v1/approvals/{first}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {body}");
        assert_eq!(body["current_status"], json!("expired"), "{body}");
        let records = assert_audited(
            &server,
            before,
            &[
                ("approval.expire", "success"),
                ("approval.approve", "failed"),
            ],
            "approving an expired request",
        )
        .await;
        assert_eq!(records[0]["target"], json!(format!("approval:{first}")));
        assert_eq!(status_of(&server, "acme").await, "active");

        let before = audit_head(&server).await;
        assert_eq!(server.app.approvals().expire().await.unwrap(), 1);
        let records = assert_audited(
            &server,
            before,
            &[("approval.expire", "success")],
            "the expiry job",
        )
        .await;
        assert_eq!(records[0]["target"], json!(format!("approval:{second}")));
        assert_eq!(records[0]["actor"], json!("system:approval-expiry"));
        assert_eq!(records[0]["role"], json!("system"));
        assert_eq!(server.app.approvals().expire().await.unwrap(), 0);
        let (_, expired) = anna.get("/v1/approvals?status=expired").await;
        let ids: Vec<&str> = expired
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&first.as_str()) && ids.contains(&second.as_str()),
            "{expired}"
        );
        let (status, body) = anna
            .post(&format!("/v1/approvals/{second}/reject"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["current_status"], json!("expired"));
        assert_eq!(status_of(&server, "beta").await, "active");
        // A new request can be made and decided.
        let again = request(&olga, "beta", "delete").await;
        approve(&anna, &again).await;
        assert_eq!(status_of(&server, "beta").await, "deleting");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_purge_approval_left_pending_when_the_timer_purged_does_not_purge_twice() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        server.clock.advance(Duration::days(29));
        let purge = request(&olga, "acme", "purge").await;
        server.clock.advance(Duration::days(2));
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 1);
        assert_eq!(status_of(&server, "acme").await, "purged");
        let (_, tenant) = olga.get("/v1/tenants/acme").await;
        let purged_at = tenant["purged_at"].clone();
        let (status, body) = anna
            .post(&format!("/v1/approvals/{purge}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {body}");
        assert_eq!(body["current_status"], json!("purged"), "{body}");
        let (_, list) = server
            .admin()
            .get("/v1/evidence?tenant_id=acme&kind=deletion-certificate")
            .await;
        assert_eq!(list.as_array().unwrap().len(), 1, "one certificate: {list}");
        let (_, tenant) = olga.get("/v1/tenants/acme").await;
        assert_eq!(tenant["purged_at"], purged_at, "the purge is not redone");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_tenant_deleted_while_suspended_is_restored_suspended() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let key = server.create_tenant("acme").await["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = server.api(&key);
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        olga.put("/v1/tenants/acme/workloads/web", json!({"replicas": 4}))
            .await;
        let (status, _) = olga
            .post("/v1/tenants/acme/suspend", json!({"reason": "unpaid"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");
        let suspended = owned(&[("web", 0, Some(4))]);
        assert_eq!(workloads(&olga, "acme").await, suspended);
        let (status, body) = olga
            .post("/v1/tenants/acme/restore", json!({"reason": "mistake"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {body}");
        assert_eq!(body["status"], json!("suspended"), "back to where it was");
        assert_eq!(workloads(&olga, "acme").await, suspended);
        let marker = server.app.data_dir().join("tenants/acme/SUSPENDED");
        assert!(marker.exists(), "still suspended at the boundary");
        assert_eq!(forward_auth(&key).await, StatusCode::FORBIDDEN);
        let (status, _) = olga
            .post("/v1/tenants/acme/reactivate", json!({"reason": "paid"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(workloads(&olga, "acme").await, owned(&[("web", 4, None)]));
        assert!(!marker.exists());
        assert_eq!(forward_auth(&key).await, StatusCode::OK);
        server.stop().await;
    }
}
