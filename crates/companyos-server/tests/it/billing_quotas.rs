//! Quotas (issue 16, CONTRACT §9): usage kept by ingestion (accepted and late, never a duplicate
//! or a conflict twice), threshold events once each with their audit record and webhook,
//! entitlements, forward auth by feature and metric (200 / 403 / 429 + Retry-After, and
//! X-Quota-Exceeded over a soft quota), top-ups, the gauge, and the deny cases; both engines.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::support::{BACKENDS, START, TestServer, audit, event};

/// A plan with a hard monthly quota on requests and a soft daily one on storage.
fn metered_plan() -> Value {
    json!({
        "name": "Metered", "currency": "USD", "base_fee": "10", "features": ["api"],
        "quotas": [
            {"metric": "requests", "period": "month", "included": "100",
             "thresholds_percent": [50, 100], "enforcement": "hard", "overage_unit_price": "0.01"},
            {"metric": "storage_gb_hours", "period": "day", "included": "10",
             "thresholds_percent": [100], "enforcement": "soft", "overage_unit_price": "0.5"}
        ]
    })
}

fn storage(tenant: &str, id: &str, quantity: &str, at: time::OffsetDateTime) -> Value {
    let mut event = event(tenant, id, quantity, at);
    event["metric"] = json!("storage_gb_hours");
    event["unit"] = json!("gb_hour");
    event
}

async fn send(server: &TestServer, key: &str, events: Vec<Value>) -> Value {
    let (status, body) = server.api(key).post("/v1/events", json!(events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn check(
    server: &TestServer,
    key: &str,
    query: &str,
) -> (StatusCode, reqwest::header::HeaderMap) {
    let (status, headers, _) = server
        .api(key)
        .raw(Method::GET, &format!("/v1/authz/check{query}"), None)
        .await;
    (status, headers)
}

fn quota<'a>(entitlements: &'a Value, metric: &str) -> &'a Value {
    entitlements["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["metric"] == json!(metric))
        .unwrap()
}

#[tokio::test]
async fn quotas_count_usage_emit_events_once_and_gate_forward_auth() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let billing = server.operator("bill", "billing").await;
        assert_eq!(
            billing.put("/v1/plans/metered", metered_plan()).await.0,
            StatusCode::OK
        );
        let (status, created) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme", "plan": "metered",
                       "audit_webhook_url": "https://hooks.example.com/acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let key = created["api_key"].as_str().unwrap().to_owned();
        let ingest = server.operator("meter", "ingest").await;
        let ingest_key = ingest.token.clone().unwrap();

        // 40, then a duplicate and a conflict of it (never counted), then 20: 60 crosses 50%.
        send(&server, &ingest_key, vec![event("acme", "e1", "40", START)]).await;
        let outcome = send(
            &server,
            &ingest_key,
            vec![
                event("acme", "e1", "40", START),
                event("acme", "e1", "41", START),
                event("acme", "e2", "20", START),
            ],
        )
        .await;
        assert_eq!(outcome["duplicates"], json!(1));
        assert_eq!(outcome["conflicts"], json!(1));
        let (status, entitlements) = server.api(&key).get("/v1/tenants/acme/entitlements").await;
        assert_eq!(status, StatusCode::OK, "{entitlements}");
        assert_eq!(entitlements["plan"], json!("metered"));
        let requests = quota(&entitlements, "requests");
        assert_eq!(requests["usage"], json!("60"), "{backend:?} {entitlements}");
        assert_eq!(requests["remaining"], json!("40"));
        assert_eq!(requests["period_start"], json!("2026-03-01"));
        assert_eq!(requests["period_end"], json!("2026-04-01"));
        assert_eq!(requests["has_access"], json!(true));
        let sso = entitlements["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == json!("sso"))
            .unwrap();
        assert_eq!(sso["has_access"], json!(false));

        // Forward auth: entitled to api, not to sso; the hard quota is open.
        assert_eq!(
            check(&server, &key, "?feature=api&metric=requests").await.0,
            StatusCode::OK
        );
        assert_eq!(
            check(&server, &key, "?feature=sso").await.0,
            StatusCode::FORBIDDEN
        );

        // 50 more: 110 crosses 100%; the hard quota is used up: 429 until April.
        send(&server, &ingest_key, vec![event("acme", "e3", "50", START)]).await;
        let (status, headers) = check(&server, &key, "?metric=requests").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert_eq!(
            retry_after,
            (datetime!(2026-04-01 00:00 UTC) - START).whole_seconds()
        );
        // Other metrics and plain checks still pass.
        assert_eq!(check(&server, &key, "").await.0, StatusCode::OK);
        // Usage is never refused for a quota.
        let outcome = send(&server, &ingest_key, vec![event("acme", "e4", "5", START)]).await;
        assert_eq!(outcome["accepted"], json!(1));

        let (_, events) = server
            .api(&key)
            .get("/v1/tenants/acme/quota-events?period=2026-03")
            .await;
        let thresholds: Vec<u64> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["threshold_percent"].as_u64().unwrap())
            .collect();
        assert_eq!(thresholds, vec![50, 100], "{backend:?} {events}");
        assert_eq!(events[1]["usage"], json!("110"));
        assert_eq!(events[1]["overage"], json!("10"));
        assert_eq!(events[1]["period"], json!("2026-03"));
        assert_eq!(audit(&server, "action=quota.threshold").await.len(), 2);
        let outbox: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE topic = 'quota.threshold'")
                .fetch_one(server.app.db().readers())
                .await
                .unwrap();
        assert_eq!(outbox, 2);

        // A one-off top-up of 20 for March reopens the path, audited; usage 115 of 120.
        let (status, after) = billing
            .post(
                "/v1/tenants/acme/quota-top-ups",
                json!({"metric": "requests", "quantity": "20", "reason": "goodwill"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{after}");
        assert_eq!(after["top_up"], json!("20"));
        assert_eq!(after["remaining"], json!("5"));
        assert_eq!(
            check(&server, &key, "?metric=requests").await.0,
            StatusCode::OK
        );
        assert_eq!(audit(&server, "action=quota.top_up").await.len(), 1);

        // A soft daily quota over its limit admits, with X-Quota-Exceeded.
        send(
            &server,
            &ingest_key,
            vec![storage("acme", "s1", "12", START)],
        )
        .await;
        let (status, headers) = check(&server, &key, "?metric=storage_gb_hours").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-quota-exceeded"], "storage_gb_hours");

        // The gauge.
        let (_, metrics) = server.admin().text("/metrics").await;
        assert!(
            metrics.contains("companyos_quota_used_ratio{tenant=\"acme\",metric=\"requests\"}"),
            "{metrics}"
        );

        // A late event for a day that is over pushes that day over its threshold: the event
        // is for that past period.
        server.clock.set(datetime!(2026-03-04 01:00 UTC));
        let late = send(
            &server,
            &ingest_key,
            vec![storage("acme", "s2", "11", datetime!(2026-03-03 10:00 UTC))],
        )
        .await;
        assert!(
            ["accepted", "late"].contains(&late["results"][0]["status"].as_str().unwrap()),
            "{late}"
        );
        let (_, day_events) = server
            .api(&key)
            .get("/v1/tenants/acme/quota-events?period=2026-03-03")
            .await;
        assert_eq!(day_events.as_array().unwrap().len(), 1, "{day_events}");
        assert_eq!(day_events[0]["period"], json!("2026-03-03"));

        // April: a new period; the hard quota is open again.
        server.clock.set(datetime!(2026-04-01 00:00:01 UTC));
        assert_eq!(
            check(&server, &key, "?metric=requests").await.0,
            StatusCode::OK
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn quota_deny_cases_are_refused_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme = server.tenant("acme").await;
        server.tenant("globex").await;
        let viewer = server.operator("vera", "viewer").await;
        let acme_api = server.api(&acme);

        // A tenant key reads its own entitlements, never another tenant's.
        assert_eq!(
            acme_api.get("/v1/tenants/acme/entitlements").await.0,
            StatusCode::OK
        );
        let (status, _) = acme_api.get("/v1/tenants/globex/entitlements").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = acme_api.get("/v1/tenants/globex/quota-events").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A viewer reads entitlements but grants no top-up.
        assert_eq!(
            viewer.get("/v1/tenants/acme/entitlements").await.0,
            StatusCode::OK
        );
        let (status, _) = viewer
            .post(
                "/v1/tenants/acme/quota-top-ups",
                json!({"metric": "requests", "quantity": "5"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = acme_api
            .post(
                "/v1/tenants/acme/quota-top-ups",
                json!({"metric": "requests", "quantity": "5"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let denied = audit(&server, "action=quota.top_up").await;
        assert_eq!(denied.len(), 2);
        assert!(denied.iter().all(|r| r["outcome"] == json!("denied")));
        // A missing feature is a denied forward auth, audited.
        let (status, _) = check(&server, &acme, "?feature=dedicated-boundary").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let checks = audit(&server, "action=authz.check").await;
        assert!(
            checks
                .iter()
                .any(|r| r["details"]["policies"] == json!(["forward-auth-needs-the-feature"])),
            "{checks:#?}"
        );
        // An operator token never passes forward auth.
        let (status, _) = server.admin().get("/v1/authz/check?feature=api").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Bad parameters name the field.
        let (status, problem) = acme_api.get("/v1/authz/check?metric=Bad!").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("metric"));
        for (body, field) in [
            (json!({"metric": "gpu", "quantity": "5"}), "metric"),
            (json!({"metric": "requests", "quantity": "-1"}), "quantity"),
        ] {
            let admin = server.admin();
            let (status, problem) = admin.post("/v1/tenants/acme/quota-top-ups", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
            assert_eq!(problem["errors"][0]["field"], json!(field));
        }
        let (status, problem) = acme_api
            .get("/v1/tenants/acme/quota-events?period=March")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("period"));
        server.stop().await;
    }
}
