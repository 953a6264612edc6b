//! Plans, entitlements and quotas (issue 16, CONTRACT §9): the versioned catalog, tenants' plan
//! history and the periods statements prorate by, and every deny case, on both engines.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use time::macros::date;

use crate::support::{BACKENDS, TestServer, audit};

fn pro_plan(included: &str) -> Value {
    json!({
        "name": "Pro", "currency": "EUR", "base_fee": "49.00", "features": ["sso", "api"],
        "quotas": [{"metric": "requests", "period": "month", "included": included,
                    "thresholds_percent": [80, 100], "enforcement": "hard",
                    "overage_unit_price": "0.002"}]
    })
}

#[tokio::test]
async fn plans_are_versioned_immutable_and_hashed() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let billing = server.operator("bill", "billing").await;
        let (status, plans) = billing.get("/v1/plans").await;
        assert_eq!(status, StatusCode::OK, "{plans}");
        let names: Vec<&str> = plans
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["plan"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["enterprise", "free", "standard"], "{backend:?}");
        assert!(
            plans
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["version"] == json!(1))
        );

        let (status, first) = billing.put("/v1/plans/pro", pro_plan("1000")).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["version"], json!(1));
        assert_eq!(first["created"], json!(true));
        assert_eq!(first["base_fee"], json!("49.00"));
        assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
        // The same content (numbers written differently) is the same version.
        let (status, same) = billing.put("/v1/plans/pro", pro_plan("1000.0")).await;
        assert_eq!(status, StatusCode::OK, "{same}");
        assert_eq!(same["version"], json!(1));
        assert_eq!(same["created"], json!(false));
        assert_eq!(same["sha256"], first["sha256"]);
        let (status, second) = billing.put("/v1/plans/pro", pro_plan("2000")).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second["version"], json!(2));
        assert_ne!(second["sha256"], first["sha256"]);

        let (_, latest) = billing.get("/v1/plans/pro").await;
        assert_eq!(latest["version"], json!(2));
        let (status, v1) = billing.get("/v1/plans/pro/versions/1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v1["quotas"][0]["included"], json!("1000"));
        assert_eq!(v1["sha256"], first["sha256"]);
        let (status, _) = billing.get("/v1/plans/pro/versions/3").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let updates = audit(&server, "action=plan.update").await;
        assert_eq!(updates.len(), 3, "{updates:#?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_tenants_plan_history_splits_the_period() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let billing = server.operator("bill", "billing").await;
        billing.put("/v1/plans/pro", pro_plan("1000")).await;
        // Created on 2026-03-02 with the standard plan.
        server.tenant("acme").await;
        let (status, plan) = billing.get("/v1/tenants/acme/plan").await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        assert_eq!(plan["plan"], json!("standard"));
        assert_eq!(plan["version"], json!(1));
        assert_eq!(plan["effective_from"], json!("2026-03-02"));

        // On the 11th, upgraded now; on the 20th a downgrade for the next period.
        server.clock.advance(Duration::days(9));
        let (status, change) = billing
            .put(
                "/v1/tenants/acme/plan",
                json!({"plan": "pro", "effective": "now", "reason": "upgrade"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{change}");
        assert_eq!(change["plan"], json!("pro"));
        assert_eq!(change["version"], json!(1));
        assert_eq!(change["effective_from"], json!("2026-03-11"));
        server.clock.advance(Duration::days(9));
        let (status, change) = billing
            .put(
                "/v1/tenants/acme/plan",
                json!({"plan": "free", "effective": "next_period", "reason": "downgrade"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{change}");
        assert_eq!(change["effective_from"], json!("2026-04-01"));

        let (_, plan) = billing.get("/v1/tenants/acme/plan").await;
        assert_eq!(plan["plan"], json!("pro"), "the downgrade is pending");
        assert_eq!(plan["history"].as_array().unwrap().len(), 3);
        let (_, tenant) = billing.get("/v1/tenants/acme").await;
        assert_eq!(tenant["plan"], json!("pro"));

        let acme = companyos_domain::TenantId::parse("acme").unwrap();
        let in_force = server
            .app
            .billing()
            .plans_in_force(&acme, date!(2026 - 03 - 01), date!(2026 - 05 - 01))
            .await
            .unwrap();
        let seen: Vec<(String, u32, String, String)> = in_force
            .iter()
            .map(|p| {
                (
                    p.version.plan.as_str().to_owned(),
                    p.version.version,
                    p.from.to_string(),
                    p.to.to_string(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "standard".into(),
                    1,
                    "2026-03-02".into(),
                    "2026-03-11".into()
                ),
                ("pro".into(), 1, "2026-03-11".into(), "2026-04-01".into()),
                ("free".into(), 1, "2026-04-01".into(), "2026-05-01".into()),
            ],
            "{backend:?}"
        );

        let changes = audit(&server, "action=tenant.plan_change").await;
        let upgrade = changes
            .iter()
            .find(|r| r["details"]["plan"] == json!("pro"))
            .unwrap();
        assert_eq!(upgrade["details"]["old_plan"], json!("standard"));
        assert_eq!(upgrade["details"]["old_version"], json!(1));
        assert_eq!(upgrade["outcome"], json!("success"));

        // The scheduled change reaches the tenant row (and its policy entitlements) once its
        // day has come.
        server
            .clock
            .set(time::macros::datetime!(2026-04-01 00:00:05 UTC));
        let moved = server.app.billing().apply_due_plan_changes().await.unwrap();
        assert_eq!(moved, 1);
        let (_, tenant) = billing.get("/v1/tenants/acme").await;
        assert_eq!(tenant["plan"], json!("free"));
        server.stop().await;
    }
}

#[tokio::test]
async fn tenants_from_before_the_catalog_get_version_one() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        // As a store written before the catalog: no history, no projected features.
        sqlx::query("DELETE FROM tenant_plan_assignments")
            .execute(server.app.db().writer())
            .await
            .unwrap();
        sqlx::query("UPDATE tenants SET entitlements = NULL")
            .execute(server.app.db().writer())
            .await
            .unwrap();
        server.app.billing().seed().await.unwrap();
        server.app.billing().seed().await.unwrap();
        let (_, plan) = server.admin().get("/v1/tenants/acme/plan").await;
        assert_eq!(plan["plan"], json!("standard"));
        assert_eq!(plan["version"], json!(1));
        assert_eq!(plan["effective_from"], json!("2026-03-02"));
        assert_eq!(plan["history"].as_array().unwrap().len(), 1, "{plan}");
        server.stop().await;
    }
}

#[tokio::test]
async fn plan_deny_cases_are_refused_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme_key = server.tenant("acme").await;
        server.tenant("globex").await;
        let viewer = server.operator("vera", "viewer").await;
        let operator = server.operator("olga", "operator").await;
        let billing = server.operator("bill", "billing").await;

        // A viewer (or an operator) changes a plan: 403, audited.
        for (who, api) in [("vera", &viewer), ("olga", &operator)] {
            let (status, body) = api
                .put(
                    "/v1/tenants/acme/plan",
                    json!({"plan": "free", "reason": "x"}),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} {body}");
            let (status, body) = api.put("/v1/plans/pro", pro_plan("10")).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} {body}");
        }
        let denied = audit(&server, "action=tenant.plan_change").await;
        assert_eq!(denied.len(), 2);
        assert!(denied.iter().all(|r| r["outcome"] == json!("denied")));
        assert_eq!(denied[0]["tenant_id"], json!("acme"));
        let denied = audit(&server, "action=plan.update").await;
        assert_eq!(denied.len(), 2);
        // A viewer reads the catalog, though.
        assert_eq!(viewer.get("/v1/plans").await.0, StatusCode::OK);

        // A tenant key reads its own plan, not another tenant's.
        let acme = server.api(&acme_key);
        assert_eq!(acme.get("/v1/tenants/acme/plan").await.0, StatusCode::OK);
        let (status, _) = acme.get("/v1/tenants/globex/plan").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = acme.put("/v1/plans/pro", pro_plan("10")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // A plan with a quota on an undeclared metric: 400 naming the field.
        let mut body = pro_plan("10");
        body["quotas"][0]["metric"] = json!("gpu_seconds");
        let (status, problem) = billing.put("/v1/plans/pro", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(
            problem["errors"][0]["field"],
            json!("quotas[0].metric"),
            "{problem}"
        );
        // Unknown plan, unknown version, bad effective: 400 naming the field.
        let (status, problem) = billing
            .put("/v1/tenants/acme/plan", json!({"plan": "nope"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("plan"));
        let (status, problem) = billing
            .put(
                "/v1/tenants/acme/plan",
                json!({"plan": "free", "version": 7}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("version"));
        let (status, problem) = billing
            .put(
                "/v1/tenants/acme/plan",
                json!({"plan": "free", "effective": "later"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("effective"));
        let (status, _) = billing
            .put("/v1/tenants/nobody/plan", json!({"plan": "free"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // POST /v1/tenants with a plan outside the catalog.
        let (status, problem) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "initech", "name": "I", "plan": "gold"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], json!("plan"));
        server.stop().await;
    }
}
