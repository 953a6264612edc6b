//! Lifecycle deny cases (issue 6): wrong role, self-approval, missing or wrong confirmation,
//! legal hold, residency, a suspended tenant's key on every route, id reuse, illegal
//! transitions. Each refusal is checked in the response and in the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

use crate::checks::{approve, assert_audited, audit_head, request, status_of};
use crate::support::{Api, BACKENDS, Backend, START, TestServer, event};

/// The policies that decided a denial, from its audit record.
fn deciding_policies(record: &Value) -> Vec<String> {
    record["details"]["policies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn wrong_roles_and_self_approval_are_refused_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let vera = server.operator("vera", "viewer").await;
        let olga = server.operator("olga", "operator").await;
        let adam = server.operator("adam", "admin").await;
        let anna = server.operator("anna", "approver").await;

        // A viewer suspends.
        let before = audit_head(&server).await;
        let (status, body) = vera
            .post("/v1/tenants/acme/suspend", json!({"reason": "x"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        let records =
            assert_audited(&server, before, &[("tenant.suspend", "denied")], "viewer").await;
        assert_eq!(records[0]["actor"], json!("vera"));
        assert_eq!(records[0]["role"], json!("viewer"));
        assert_eq!(records[0]["tenant_id"], json!("acme"));
        assert_eq!(records[0]["target"], json!("tenant:acme"));
        assert_eq!(status_of(&server, "acme").await, "active");

        // An operator approves their own request: not an approver, and never their own.
        let approval = request(&olga, "acme", "delete").await;
        let before = audit_head(&server).await;
        let (status, body) = olga
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let records =
            assert_audited(&server, before, &[("approval.approve", "denied")], "self").await;
        assert_eq!(records[0]["actor"], json!("olga"));
        assert!(
            deciding_policies(&records[0]).contains(&"no-self-approval".to_owned()),
            "{:#}",
            records[0]
        );
        let (_, list) = server.admin().get("/v1/approvals?status=pending").await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        // The requester of a delete cannot approve it even as admin.
        let (status, _) = anna
            .post(&format!("/v1/approvals/{approval}/reject"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let approval = request(&adam, "acme", "delete").await;
        let before = audit_head(&server).await;
        let (status, body) = adam
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        let records =
            assert_audited(&server, before, &[("approval.approve", "denied")], "admin").await;
        assert_eq!(records[0]["actor"], json!("adam"));
        assert_eq!(records[0]["role"], json!("admin"));
        assert_eq!(
            deciding_policies(&records[0]),
            vec!["no-self-approval".to_owned()]
        );
        assert_eq!(status_of(&server, "acme").await, "active");
        // Another admin may.
        approve(&server.admin(), &approval).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");

        // A request whose requester was revoked meanwhile cannot be approved.
        server.create_tenant("beta").await;
        let rex = server.operator("rex", "operator").await;
        let approval = request(&rex, "beta", "delete").await;
        let rex_id = crate::checks::operator_id(&server, "rex").await;
        let (status, _) = server
            .admin()
            .call(
                Method::POST,
                &format!("/v1/operators/{rex_id}/revoke"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = anna
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {body}");
        assert_eq!(status_of(&server, "beta").await, "active");
        server.stop().await;
    }
}

/// The two-person rule is not met by one admin and an approver that admin just created: an
/// approval by an operator the requester created within the approval's lifetime is refused by
/// policy and audited; an approver somebody else created may approve.
#[tokio::test]
async fn an_approver_created_by_the_requester_cannot_approve_its_request() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let adam = server.operator("adam", "admin").await;
        // adam creates a second identity for himself, then asks for a delete.
        let (status, body) = adam
            .post("/v1/operators", json!({"name": "sock", "role": "approver"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let sock = server.api(body["token"].as_str().unwrap());
        let approval = request(&adam, "acme", "delete").await;
        let before = audit_head(&server).await;
        let (status, body) = sock
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        let records = assert_audited(
            &server,
            before,
            &[("approval.approve", "denied")],
            "created approver",
        )
        .await;
        assert_eq!(records[0]["actor"], json!("sock"));
        assert_eq!(
            deciding_policies(&records[0]),
            vec!["no-approval-by-an-operator-the-requester-created".to_owned()]
        );
        assert_eq!(status_of(&server, "acme").await, "active");
        // Nor through a go-between: adam creates an admin who creates an approver.
        let (_, body) = adam
            .post("/v1/operators", json!({"name": "proxy", "role": "admin"}))
            .await;
        let proxy = server.api(body["token"].as_str().unwrap());
        let (_, body) = proxy
            .post(
                "/v1/operators",
                json!({"name": "sock2", "role": "approver"}),
            )
            .await;
        let sock2 = server.api(body["token"].as_str().unwrap());
        let (status, body) = sock2
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        // An approver created by someone else decides it.
        let anna = server.operator("anna", "approver").await;
        approve(&anna, &approval).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.stop().await;
    }
}

#[tokio::test]
async fn delete_needs_the_exact_confirmation() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        for (body, what) in [
            (json!({"reason": "churned"}), "without confirm"),
            (
                json!({"reason": "churned", "confirm": "acme2"}),
                "wrong confirm",
            ),
            (
                json!({"reason": "churned", "confirm": "ACME"}),
                "confirm in capitals",
            ),
        ] {
            for action in ["delete", "purge"] {
                let before = audit_head(&server).await;
                let (status, problem) = olga
                    .post(&format!("/v1/tenants/acme/{action}"), body.clone())
                    .await;
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{backend:?} {action} {what}: {problem}"
                );
                assert_eq!(problem["errors"][0]["field"], json!("confirm"), "{problem}");
                assert!(
                    problem["errors"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains("acme"),
                    "{problem}"
                );
                let records = assert_audited(
                    &server,
                    before,
                    &[(&format!("tenant.{action}"), "failed")],
                    what,
                )
                .await;
                assert_eq!(records[0]["actor"], json!("olga"));
            }
        }
        // A reason is required too.
        let (status, problem) = olga
            .post("/v1/tenants/acme/delete", json!({"confirm": "acme"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("reason"), "{problem}");
        let (_, approvals) = server.admin().get("/v1/approvals").await;
        assert_eq!(approvals, json!([]));
        assert_eq!(status_of(&server, "acme").await, "active");
        server.stop().await;
    }
}

/// A server with tenant `acme` under a legal hold, an operator (olga) and an approver (anna).
async fn held_tenant(backend: Backend) -> (TestServer, Api, Api) {
    let server = TestServer::start(backend).await;
    server.create_tenant("acme").await;
    let olga = server.operator("olga", "operator").await;
    let anna = server.operator("anna", "approver").await;
    let (status, body) = olga
        .put(
            "/v1/tenants/acme/retention",
            json!({"legal_hold": true, "reason": "litigation 2026-17"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retention"]["legal_hold"], json!(true));
    (server, olga, anna)
}

#[tokio::test]
async fn a_legal_hold_blocks_purge_by_policy_and_the_purge_timer_skips_it() {
    for backend in BACKENDS {
        let (server, olga, anna) = held_tenant(backend).await;
        // Deletion (restorable) is still possible; its warning names the hold.
        let (status, body) = olga
            .post(
                "/v1/tenants/acme/delete",
                json!({"confirm": "acme", "reason": "churned"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(
            body["warnings"].to_string().contains("legal hold"),
            "{body}"
        );
        approve(&anna, body["approval"]["id"].as_str().unwrap()).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");

        // Purge is forbidden by policy, for an operator and for an admin.
        for who in [&olga, &server.admin()] {
            let before = audit_head(&server).await;
            let (status, body) = who
                .post(
                    "/v1/tenants/acme/purge",
                    json!({"confirm": "acme", "reason": "now"}),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
            let records =
                assert_audited(&server, before, &[("tenant.purge", "denied")], "hold").await;
            assert!(
                deciding_policies(&records[0]).contains(&"legal-hold-blocks-purge".to_owned()),
                "{:#}",
                records[0]
            );
        }
        // The timer skips it, however long the tombstone has run.
        server.clock.advance(Duration::days(400));
        let before = audit_head(&server).await;
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        assert_eq!(status_of(&server, "acme").await, "deleting");
        assert_audited(&server, before, &[], "the timer skips a held tenant").await;

        // While deleting, the hold cannot be lifted (the approver of the delete was told
        // nothing would be purged): restore, lift, and delete again through an approval.
        let (status, body) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"legal_hold": false, "reason": "settled"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {body}");
        let (status, body) = olga
            .post("/v1/tenants/acme/restore", json!({"reason": "held"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(status_of(&server, "acme").await, "active");
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"legal_hold": false, "reason": "settled"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");

        // A hold set after a purge was requested blocks its approval too.
        let purge = request(&olga, "acme", "purge").await;
        olga.put(
            "/v1/tenants/acme/retention",
            json!({"legal_hold": true, "reason": "new claim"}),
        )
        .await;
        let (status, body) = anna
            .post(&format!("/v1/approvals/{purge}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        assert_eq!(status_of(&server, "acme").await, "deleting");

        // Hard delete not allowed: the tombstone is kept for ever, by policy too; tightening
        // retention while deleting is always allowed, loosening it is not.
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"hard_delete_allowed": false, "reason": "regulator"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants/acme/purge",
                json!({"confirm": "acme", "reason": "now"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"hard_delete_allowed": true, "reason": "released"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.stop().await;
    }
}

/// The attack of the hardening review: a hold, a delete approved with "nothing will be
/// purged until the hold is lifted", then retention loosened while deleting so that the purge
/// timer would purge with no purge approval. Each loosening is refused and audited, and the
/// timer purges nothing, however long the tombstone has run.
#[tokio::test]
async fn loosening_retention_while_deleting_is_refused_so_nothing_is_purged_unapproved() {
    for backend in BACKENDS {
        let (server, olga, anna) = held_tenant(backend).await;
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"hard_delete_allowed": false, "reason": "claim"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");
        for (change, who) in [
            (json!({"tombstone_days": 0}), &olga),
            (json!({"legal_hold": false}), &olga),
            (json!({"hard_delete_allowed": true}), &olga),
            (
                json!({"tombstone_days": 0, "legal_hold": false, "hard_delete_allowed": true}),
                &server.admin(),
            ),
        ] {
            let mut body = change.clone();
            body["reason"] = json!("speed it up");
            let before = audit_head(&server).await;
            let (status, problem) = who.put("/v1/tenants/acme/retention", body).await;
            assert_eq!(
                status,
                StatusCode::CONFLICT,
                "{backend:?} {change} {problem}"
            );
            assert_eq!(problem["current_status"], json!("deleting"), "{problem}");
            assert!(
                problem["detail"].as_str().unwrap().contains("approval"),
                "{problem}"
            );
            assert_audited(
                &server,
                before,
                &[("tenant.retention.update", "failed")],
                "refused loosening",
            )
            .await;
        }
        let (_, tenant) = olga.get("/v1/tenants/acme").await;
        assert_eq!(tenant["retention"]["legal_hold"], json!(true), "{tenant}");
        assert_eq!(tenant["retention"]["hard_delete_allowed"], json!(false));
        // Lengthening the tombstone is tightening: allowed.
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"tombstone_days": 90, "reason": "keep longer"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        server.clock.advance(Duration::days(400));
        assert_eq!(server.app.jobs().purge_due_tenants().await.unwrap(), 0);
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.stop().await;
    }
}

/// An approval is bound to the facts its approver is shown: when the tenant's retention or
/// status changes before the decision, approving it is refused (409, `lapsed`), the approval
/// is marked lapsed for good (audited as `approval.lapse`, naming what changed) and nothing
/// runs.
#[tokio::test]
async fn an_approval_lapses_when_the_facts_it_was_requested_on_change() {
    for backend in BACKENDS {
        let (server, olga, anna) = held_tenant(backend).await;
        let delete = request(&olga, "acme", "delete").await;
        let (_, approval) = anna.get(&format!("/v1/approvals/{delete}")).await;
        assert_eq!(approval["facts"]["legal_hold"], json!(true), "{approval}");
        // The hold goes and the tombstone shrinks while the request waits (the tenant is
        // still active, so this is allowed), which would make the approved delete purge.
        let (status, _) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"legal_hold": false, "tombstone_days": 0, "reason": "settled"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let before = audit_head(&server).await;
        let (status, problem) = anna
            .post(&format!("/v1/approvals/{delete}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {problem}");
        assert_eq!(problem["current_status"], json!("lapsed"), "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("legal_hold") && detail.contains("tombstone_days"),
            "{detail}"
        );
        let records = assert_audited(
            &server,
            before,
            &[
                ("approval.lapse", "success"),
                ("approval.approve", "failed"),
            ],
            "lapse",
        )
        .await;
        let mut changed: Vec<&str> = records[0]["details"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        changed.sort_unstable();
        assert_eq!(
            changed,
            ["legal_hold", "tombstone_days"],
            "{:#}",
            records[0]
        );
        let (_, approval) = anna.get(&format!("/v1/approvals/{delete}")).await;
        assert_eq!(approval["status"], json!("lapsed"), "{approval}");
        assert_eq!(status_of(&server, "acme").await, "active");
        // Lapsed for good, even if the facts come back.
        olga.put(
            "/v1/tenants/acme/retention",
            json!({"legal_hold": true, "tombstone_days": 30, "reason": "again"}),
        )
        .await;
        let (status, _) = anna
            .post(&format!("/v1/approvals/{delete}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        // A new request, with the facts in front of the approver, goes through.
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.stop().await;
    }
}

#[tokio::test]
async fn regions_outside_residency_are_forbidden_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        for who in [&olga, &server.admin()] {
            let before = audit_head(&server).await;
            let (status, body) = who
                .post("/v1/tenants/acme/regions", json!({"add": ["us-east-1"]}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
            let records = assert_audited(
                &server,
                before,
                &[("tenant.regions.update", "denied")],
                "us",
            )
            .await;
            let policies = deciding_policies(&records[0]);
            assert!(
                policies.contains(&"residency-deploy-regions-within-allowed".to_owned()),
                "{policies:?}"
            );
            assert!(
                policies.iter().any(|p| p.contains("tenant-acme-residency")),
                "the tenant's own baseline policy decides too: {policies:?}"
            );
            assert_eq!(records[0]["details"]["add"], json!(["us-east-1"]));
        }
        // One bad region in a batch refuses the whole batch.
        let (status, _) = olga
            .post(
                "/v1/tenants/acme/regions",
                json!({"add": ["eu-central-1", "us-west-2"]}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, tenant) = olga.get("/v1/tenants/acme").await;
        assert_eq!(tenant["deploy_regions"], json!(["eu-west-1"]));
        // Inside residency it works; removing is always allowed.
        let (status, tenant) = olga
            .post("/v1/tenants/acme/regions", json!({"add": ["eu-central-1"]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{tenant}");
        assert_eq!(
            tenant["deploy_regions"],
            json!(["eu-central-1", "eu-west-1"])
        );
        let (status, tenant) = olga
            .post(
                "/v1/tenants/acme/regions",
                json!({"remove": ["eu-central-1"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tenant}");
        assert_eq!(tenant["deploy_regions"], json!(["eu-west-1"]));
        server.stop().await;
    }
}

/// Every route that names a tenant, with a body where it takes one.
fn tenant_routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    let t = format!("/v1/tenants/{id}");
    let reason = json!({"reason": "x"});
    let confirm = json!({"reason": "x", "confirm": id});
    vec![
        (Method::GET, "/v1/tenants".to_owned(), None),
        (Method::GET, t.clone(), None),
        (Method::GET, format!("{t}/provisioning"), None),
        (Method::GET, format!("{t}/workloads"), None),
        (
            Method::GET,
            format!("{t}/usage/daily?from=2026-03-01&to=2026-03-02"),
            None,
        ),
        (
            Method::GET,
            format!("{t}/reconciliation?from=2026-03-01&to=2026-03-02"),
            None,
        ),
        (Method::GET, format!("{t}/ledger/checkpoint"), None),
        (Method::GET, format!("{t}/ledger/proof?event_id=e1"), None),
        (
            Method::GET,
            format!("{t}/ledger/consistency?from=1&to=1"),
            None,
        ),
        (
            Method::POST,
            format!("{t}/integrity-report"),
            Some(json!({"from": "2026-03-01", "to": "2026-03-02"})),
        ),
        (Method::POST, format!("{t}/suspend"), Some(reason.clone())),
        (
            Method::POST,
            format!("{t}/reactivate"),
            Some(reason.clone()),
        ),
        (Method::POST, format!("{t}/delete"), Some(confirm.clone())),
        (Method::POST, format!("{t}/restore"), Some(reason.clone())),
        (Method::POST, format!("{t}/purge"), Some(confirm)),
        (Method::POST, format!("{t}/retry"), None),
        (
            Method::POST,
            format!("{t}/regions"),
            Some(json!({"add": ["eu-central-1"]})),
        ),
        (
            Method::PUT,
            format!("{t}/workloads/web"),
            Some(json!({"replicas": 1})),
        ),
        (
            Method::PUT,
            format!("{t}/retention"),
            Some(json!({"legal_hold": false, "reason": "x"})),
        ),
        (Method::GET, "/v1/authz/check".to_owned(), None),
    ]
}

#[tokio::test]
async fn a_suspended_or_deleted_tenants_key_is_refused_on_every_route() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let key = server.create_tenant("acme").await["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let tenant = server.api(&key);
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        server
            .admin()
            .post("/v1/events", json!([event("acme", "e1", "1", START)]))
            .await;
        // While active, the key reads its tenant.
        for path in [
            "/v1/tenants/acme",
            "/v1/tenants/acme/ledger/proof?event_id=e1",
            "/v1/authz/check",
        ] {
            assert_eq!(tenant.get(path).await.0, StatusCode::OK, "{path}");
        }
        let (status, _) = olga
            .post("/v1/tenants/acme/suspend", json!({"reason": "unpaid"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        for state in ["suspended", "deleting"] {
            if state == "deleting" {
                approve(&anna, &request(&olga, "acme", "delete").await).await;
            }
            assert_eq!(status_of(&server, "acme").await, state);
            for (method, path, body) in tenant_routes("acme") {
                let before = audit_head(&server).await;
                let (status, response) = tenant.call(method.clone(), &path, body).await;
                let what = format!("{backend:?} {state} key: {method} {path}");
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {response}");
                let records = crate::checks::audit_after(&server, before).await;
                assert_eq!(records.len(), 1, "{what}: {records:#?}");
                assert_eq!(records[0]["outcome"], json!("denied"), "{what}");
                assert_eq!(records[0]["actor"], json!("tenant:acme"), "{what}");
                assert_eq!(records[0]["role"], json!("tenant"), "{what}");
                assert!(
                    deciding_policies(&records[0])
                        .contains(&"tenant-keys-only-while-active".to_owned()),
                    "{what}: {:#}",
                    records[0]
                );
            }
            // Forward auth says 403 (not 401): the key is known, the tenant is not active.
            let (status, headers, _) = tenant.raw(Method::GET, "/v1/authz/check", None).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert!(headers.get("x-tenant-id").is_none());
        }
        // Nothing the refused calls asked for happened.
        assert_eq!(status_of(&server, "acme").await, "deleting");
        server.stop().await;
    }
}

#[tokio::test]
async fn purged_ids_are_never_reused_and_illegal_transitions_are_409_with_the_status() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let anna = server.operator("anna", "approver").await;
        let post = |action: &str| {
            let body = json!({"reason": "test", "confirm": "acme"});
            let olga = olga.clone();
            let path = format!("/v1/tenants/acme/{action}");
            async move { olga.post(&path, body).await }
        };
        let conflict = |body: &Value, current: &str| {
            assert_eq!(body["status"], json!(409), "{body}");
            assert_eq!(body["type"], json!("/problems/conflict"), "{body}");
            assert_eq!(body["current_status"], json!(current), "{body}");
        };

        // Active: reactivate is an idempotent no-op, restore and purge are illegal.
        let (status, body) = post("reactivate").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["changed"], json!(false));
        assert_eq!(body["status"], json!("active"));
        for action in ["restore", "purge"] {
            let before = audit_head(&server).await;
            let (status, body) = post(action).await;
            assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {action}: {body}");
            conflict(&body, "active");
            assert_audited(
                &server,
                before,
                &[(&format!("tenant.{action}"), "failed")],
                action,
            )
            .await;
        }
        let (status, body) = olga
            .call(Method::POST, "/v1/tenants/acme/retry", None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        conflict(&body, "active");

        // Suspended: workloads cannot change, restore is illegal.
        post("suspend").await;
        let (status, body) = olga
            .put("/v1/tenants/acme/workloads/web", json!({"replicas": 2}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        conflict(&body, "suspended");
        let (status, body) = post("restore").await;
        assert_eq!(status, StatusCode::CONFLICT);
        conflict(&body, "suspended");
        post("reactivate").await;

        // Deleting: suspend, reactivate, and another delete request are refused.
        approve(&anna, &request(&olga, "acme", "delete").await).await;
        for action in ["suspend", "reactivate"] {
            let (status, body) = post(action).await;
            assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {action}: {body}");
            conflict(&body, "deleting");
        }
        let (status, body) = olga
            .post("/v1/tenants/acme/regions", json!({"add": ["eu-central-1"]}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        conflict(&body, "deleting");
        // A second purge request while one is pending is a conflict as well.
        let purge = request(&olga, "acme", "purge").await;
        let (status, body) = post("purge").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        approve(&anna, &purge).await;

        // Purged: nothing but reads; the id is never reused.
        for action in ["suspend", "reactivate", "delete", "restore"] {
            let (status, body) = post(action).await;
            assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {action}: {body}");
            conflict(&body, "purged");
        }
        let (status, body) = olga
            .put(
                "/v1/tenants/acme/retention",
                json!({"legal_hold": true, "reason": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let before = audit_head(&server).await;
        let (status, body) = olga
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme again", "plan": "standard",
                       "home_region": "eu-west-1", "allowed_regions": ["eu-west-1"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?} {body}");
        conflict(&body, "purged");
        assert!(
            body["detail"].as_str().unwrap().contains("never reused"),
            "{body}"
        );
        assert_audited(&server, before, &[("tenant.create", "failed")], "reuse").await;
        // Also a live id.
        server.create_tenant("beta").await;
        let (status, body) = olga
            .post("/v1/tenants", json!({"id": "beta", "name": "Beta again"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        conflict(&body, "active");
        server.stop().await;
    }
}

#[tokio::test]
async fn racing_approvers_and_racing_creators_get_one_winner_and_clean_refusals() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let olga = server.operator("olga", "operator").await;
        let mut approvers = Vec::new();
        for i in 0..6 {
            approvers.push(server.operator(&format!("approver-{i}"), "approver").await);
        }
        let approval = request(&olga, "acme", "delete").await;
        let before = audit_head(&server).await;
        let handles: Vec<_> = approvers
            .iter()
            .cloned()
            .map(|api| {
                let path = format!("/v1/approvals/{approval}/approve");
                tokio::spawn(async move { api.post(&path, json!({})).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for handle in handles {
            let (status, body) = handle.await.unwrap();
            if status == StatusCode::CONFLICT {
                assert_eq!(body["current_status"], json!("executed"), "{body}");
            }
            statuses.push(status.as_u16());
        }
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 409, 409, 409, 409, 409],
            "{backend:?}: one approval runs once"
        );
        let written = crate::checks::audit_after(&server, before).await;
        let deletes = written
            .iter()
            .filter(|r| r["action"] == json!("tenant.delete"))
            .count();
        assert_eq!(deletes, 1, "{written:#?}");

        // The same new id from several operators at once: one tenant, the others 409.
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let api = olga.clone();
                tokio::spawn(async move {
                    api.post(
                        "/v1/tenants",
                        json!({"id": "contested", "name": format!("Contender {i}")}),
                    )
                    .await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for handle in handles {
            let (status, body) = handle.await.unwrap();
            assert!(
                status == StatusCode::CREATED || status == StatusCode::CONFLICT,
                "{backend:?} {status}: {body}"
            );
            statuses.push(status.as_u16());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409], "{backend:?}");
        assert_eq!(status_of(&server, "contested").await, "active");
        server.stop().await;
    }
}
