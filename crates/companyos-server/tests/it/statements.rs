//! Monthly statements (issue 17, CONTRACT §10): open while a day of the month is open, final
//! once every day is closed, the stored bytes never change, later usage of a final month is an
//! adjustment of the next statement; who may read them; on both engines.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use time::macros::datetime;

use crate::boundaries::{signature_headers, tenant_with_audit_webhook};
use crate::support::{BACKENDS, TestServer, allow_loopback, audit, event};

fn pro_plan() -> Value {
    json!({
        "name": "Pro", "currency": "USD", "base_fee": "49.00", "features": ["sso"],
        "quotas": [{"metric": "requests", "period": "month", "included": "1000",
                    "thresholds_percent": [100], "enforcement": "soft",
                    "overage_unit_price": "0.002"}]
    })
}

/// acme, created on 2026-03-02 (standard), on pro from the 11th; usage on the 5th and 20th,
/// one duplicate resent.
pub async fn march_with_usage(server: &TestServer) -> String {
    let billing = server.operator("bill", "billing").await;
    let (status, body) = billing.put("/v1/plans/pro", pro_plan()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = server.tenant("acme").await;
    server.clock.advance(Duration::days(9));
    let (status, body) = billing
        .put(
            "/v1/tenants/acme/plan",
            json!({"plan": "pro", "effective": "now", "reason": "upgrade"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let batch = json!([
        event("acme", "e-1", "600", datetime!(2026-03-05 10:00 UTC)),
        event("acme", "e-2", "1500", datetime!(2026-03-11 10:00 UTC)),
        event("acme", "e-2", "1500", datetime!(2026-03-11 10:00 UTC)),
    ]);
    let (status, body) = server.admin().post("/v1/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicates"], json!(1), "{body}");
    key
}

pub async fn close_through(server: &TestServer, at: time::OffsetDateTime) {
    let now = server.app.now();
    server.clock.advance(at - now);
    for job in ["checkpoints", "day-close", "month-close"] {
        server.app.jobs().run_job(job).await.expect("job runs");
    }
}

#[tokio::test]
async fn a_statement_is_open_then_final_and_never_changes() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        march_with_usage(&server).await;
        let admin = server.admin();
        let (status, open) = admin.get("/v1/tenants/acme/statements/2026-03").await;
        assert_eq!(status, StatusCode::OK, "{open}");
        assert_eq!(open["status"], json!("open"));
        assert_eq!(open["currency"], json!("USD"));
        // standard 9 days (2nd to 11th), pro 21 days: base fee 49 * 21/31 = 33.19.
        assert_eq!(open["base_fee"], json!("33.19"), "{open:#}");
        let pro_line = open["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["plan"] == json!("pro"))
            .cloned()
            .unwrap_or_else(|| panic!("{open:#}"));
        // included 1000 * 21/31 = 677.419355; overage 822.580645 * 0.002 = 1.645.. -> 1.65
        assert_eq!(pro_line["included"], json!("677.419355"));
        assert_eq!(pro_line["overage"], json!("822.580645"));
        assert_eq!(pro_line["amount"], json!("1.65"));
        assert_eq!(open["total"], json!("34.84"));
        assert_eq!(open["counts"]["accepted"], json!(1));
        assert_eq!(
            open["counts"]["late"],
            json!(1),
            "the 5th is past the late window"
        );
        assert_eq!(open["counts"]["duplicates"], json!(1));
        assert_eq!(open["ledger"]["from_seq"], json!(0));
        assert_eq!(open["ledger"]["to_seq"], json!(1));
        assert!(
            open["ledger"]["checkpoint"]
                .as_str()
                .unwrap()
                .contains("\n2\n")
        );
        assert_eq!(open["plans"].as_array().unwrap().len(), 2);
        assert_eq!(open["policies"].as_array().unwrap().len(), 2);

        // Every day of March closes once the late window (48 h) after the 31st has passed.
        close_through(&server, datetime!(2026-04-03 00:30 UTC)).await;
        let (status, list) = admin.get("/v1/tenants/acme/statements").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(
            list,
            json!([{"month": "2026-04", "status": "open"}, {"month": "2026-03", "status": "final"}])
        );
        let (status, final_text) = admin.text("/v1/tenants/acme/statements/2026-03").await;
        assert_eq!(status, StatusCode::OK, "{final_text}");
        let final_json: Value = serde_json::from_str(&final_text).unwrap();
        assert_eq!(final_json["status"], json!("final"));
        assert_eq!(final_json["total"], json!("34.84"));
        let finalised = audit(&server, "action=statement.finalize").await;
        assert_eq!(finalised.len(), 1, "{finalised:#?}");
        // Running the job again (another node) changes nothing.
        server
            .app
            .jobs()
            .run_job("month-close")
            .await
            .expect("job runs");
        assert_eq!(audit(&server, "action=statement.finalize").await.len(), 1);

        // A late event of March: the final bytes stay, April carries the adjustment.
        let late = json!([event("acme", "e-3", "100", datetime!(2026-03-25 10:00 UTC))]);
        let (status, body) = admin.post("/v1/events", late).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["late"], json!(1), "{body}");
        server
            .app
            .jobs()
            .run_job("checkpoints")
            .await
            .expect("job runs");
        let (_, again) = admin.text("/v1/tenants/acme/statements/2026-03").await;
        assert_eq!(again, final_text, "a final statement never changes");
        let (status, april) = admin.get("/v1/tenants/acme/statements/2026-04").await;
        assert_eq!(status, StatusCode::OK, "{april}");
        assert_eq!(
            april["adjustments"],
            json!([{"for_month": "2026-03", "service": "api", "metric": "requests",
                    "unit": "request", "quantity": "100", "amount": "0.20"}]),
            "{april:#}"
        );
        // The April base fee (49) and the adjustment.
        assert_eq!(april["total"], json!("49.20"));

        let (status, csv) = admin
            .text("/v1/tenants/acme/statements/2026-03?format=csv")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(csv.starts_with("kind,month,for_month,service,metric,unit,plan,version,quantity"));
        assert!(csv.contains("total,2026-03,,,,,,,,,,,34.84"), "{csv}");
        server.stop().await;
    }
}

#[tokio::test]
async fn statements_are_read_by_whom_policy_allows() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme_key = march_with_usage(&server).await;
        let other_key = server.tenant("globex").await;
        let own = server.api(&acme_key);
        let (status, body) = own.get("/v1/tenants/acme/statements/2026-03").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = own.get("/v1/tenants/acme/statements").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = server
            .api(&other_key)
            .get("/v1/tenants/acme/statements/2026-03")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let viewer = server.operator("vera", "viewer").await;
        let (status, _) = viewer.get("/v1/tenants/acme/statements").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let denied = audit(&server, "action=statement.read&tenant_id=acme").await;
        let outcomes: Vec<&Value> = denied.iter().map(|r| &r["outcome"]).collect();
        assert_eq!(
            outcomes,
            vec![&json!("denied"), &json!("denied")],
            "{denied:#?}"
        );
        for (path, field) in [
            ("/v1/tenants/acme/statements/2026-13", "month"),
            ("/v1/tenants/acme/statements/2026-03?format=xml", "format"),
            ("/v1/tenants/Acme/statements", "id"),
        ] {
            let (status, body) = server.admin().get(path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert_eq!(body["errors"][0]["field"], json!(field), "{body}");
        }
        let (status, _) = server
            .admin()
            .get("/v1/tenants/acme/statements/2026-02")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "before the tenant existed");
        server.stop().await;
    }
}

#[tokio::test]
async fn statements_export_to_stripe_and_an_erp_csv() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        march_with_usage(&server).await;
        let admin = server.admin();
        let (status, items) = admin
            .get("/v1/tenants/acme/statements/2026-03?format=stripe")
            .await;
        assert_eq!(status, StatusCode::OK, "{items}");
        let items = items.as_array().cloned().unwrap_or_default();
        // The base fee and the pro line; the standard line costs nothing and is left out.
        let amounts: Vec<&Value> = items.iter().map(|i| &i["amount"]).collect();
        assert_eq!(amounts, vec![&json!(3319), &json!(165)], "{items:#?}");
        assert!(
            items
                .iter()
                .all(|i| i["currency"] == json!("usd") && i["customer"] == json!("acme"))
        );
        assert_eq!(items[0]["period"]["start"], json!(1_772_323_200));
        let (status, csv) = admin
            .text("/v1/tenants/acme/statements/2026-03?format=erp")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            csv.starts_with("tenant_id,month,kind,for_month,service"),
            "{csv}"
        );
        assert!(
            csv.contains("acme,2026-03,base_fee,,,,,,,33.19,USD"),
            "{csv}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_month_close_delivers_statement_final_once_signed() {
    for backend in BACKENDS {
        let server = TestServer::start_with(backend, allow_loopback).await;
        let (received, receiver, secret) = tenant_with_audit_webhook(&server, "acme").await;
        let usage = json!([event("acme", "e-1", "7", datetime!(2026-03-05 10:00 UTC))]);
        let (status, body) = server.admin().post("/v1/events", usage).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        close_through(&server, datetime!(2026-04-03 00:30 UTC)).await;
        // Another node's run of the job, and a second delivery pass, send nothing more.
        server
            .app
            .jobs()
            .run_job("month-close")
            .await
            .expect("job runs");
        server.app.jobs().deliver_outbox().await.unwrap();
        server.app.jobs().deliver_outbox().await.unwrap();
        let (status, statement) = server
            .admin()
            .text("/v1/tenants/acme/statements/2026-03")
            .await;
        assert_eq!(status, StatusCode::OK, "{statement}");
        let sha256 = companyos_ledger::hash::sha256(statement.as_bytes()).to_hex();
        let deliveries = received.0.lock().unwrap().clone();
        let finals: Vec<Value> = deliveries
            .iter()
            .filter_map(|(headers, body)| {
                let value: Value = serde_json::from_slice(body).unwrap();
                if value["topic"] != json!("statement.final") {
                    return None;
                }
                let (timestamp, signature) = signature_headers(headers);
                assert!(
                    companyos_core::lifecycle::boundary::verify_webhook_signature(
                        &secret, timestamp, timestamp, body, signature
                    ),
                    "signed with the tenant's hook secret"
                );
                assert!(
                    !companyos_core::lifecycle::boundary::verify_webhook_signature(
                        "another secret",
                        timestamp,
                        timestamp,
                        body,
                        signature
                    ),
                    "not with another secret"
                );
                Some(value)
            })
            .collect();
        assert_eq!(finals.len(), 1, "{backend:?}: one delivery only");
        let payload = &finals[0]["payload"];
        assert_eq!(finals[0]["tenant_id"], json!("acme"));
        assert_eq!(payload["type"], json!("statement.final"));
        assert_eq!(payload["tenant_id"], json!("acme"));
        assert_eq!(payload["month"], json!("2026-03"));
        assert_eq!(
            payload["sha256"],
            json!(sha256),
            "the served statement's SHA-256"
        );
        receiver.abort();
        server.stop().await;
    }
}
